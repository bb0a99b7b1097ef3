//! Input validation: sizes, names, value kinds, tokens.

mod common;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::create_secret::CreateSecretOutput;
use aws_sdk_secretsmanager::primitives::Blob;
use common::*;

const MAX_VALUE: usize = 65_536;

async fn setup() -> (Server, Client) {
    let server = Server::start().await;
    let client = server.client().await;
    (server, client)
}

async fn create(client: &Client, name: &str, value: &str) -> Result<CreateSecretOutput, ApiError> {
    res(client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await)
}

/// Refused with ValidationException (AWS's code for a name or length outside the model), and
/// nothing named `name` exists afterwards.
async fn assert_create_refused(client: &Client, name: &str, value: &str) {
    let err = create(client, name, value)
        .await
        .expect_err("CreateSecret must be refused");
    assert_eq!(err.code, "ValidationException", "{err:?}");
    assert_eq!(err.status, 400, "{err:?}");
    assert_no_secret(client, name).await;
}

#[tokio::test]
async fn secret_string_over_64_kib_is_refused() {
    let (_server, client) = setup().await;
    assert_create_refused(&client, "big", &"x".repeat(MAX_VALUE + 1)).await;
}

#[tokio::test]
async fn secret_string_of_exactly_64_kib_is_accepted() {
    let (_server, client) = setup().await;
    let value = "y".repeat(MAX_VALUE);
    create(&client, "big", &value)
        .await
        .expect("65,536 bytes are allowed");
    assert_eq!(get_string(&client, "big").await, value);
}

#[tokio::test]
async fn multibyte_secret_string_is_measured_in_bytes() {
    let (_server, client) = setup().await;
    // 21,846 three-byte characters = 65,538 bytes, far below 65,536 characters.
    assert_create_refused(&client, "utf8", &"€".repeat(21_846)).await;
}

#[tokio::test]
async fn put_secret_value_over_64_kib_is_refused_and_adds_no_version() {
    let (_server, client) = setup().await;
    create_string(&client, "s", "versioned-value-1", &token(1)).await;
    let put = client
        .put_secret_value()
        .secret_id("s")
        .secret_string("x".repeat(MAX_VALUE + 1));
    assert_validation_err(put.send().await);
    assert_eq!(
        list_versions(&client, "s", true).await,
        stages_of(&[(&token(1), &["AWSCURRENT"])])
    );
}

#[tokio::test]
async fn secret_binary_over_64_kib_is_refused() {
    let (_server, client) = setup().await;
    let create = client
        .create_secret()
        .name("bin")
        .secret_binary(Blob::new(vec![7u8; MAX_VALUE + 1]));
    assert_validation_err(create.send().await);
    assert_no_secret(&client, "bin").await;
}

#[tokio::test]
async fn name_with_space_and_bang_is_refused() {
    let (_server, client) = setup().await;
    assert_create_refused(&client, "bad name!", "validation-value").await;
}

#[tokio::test]
async fn name_of_513_chars_is_refused_and_512_accepted() {
    let (_server, client) = setup().await;
    assert_create_refused(&client, &"n".repeat(513), "validation-value").await;
    let name = "m".repeat(512);
    create(&client, &name, "validation-value")
        .await
        .expect("a 512-character name is allowed");
    assert_eq!(get_string(&client, &name).await, "validation-value");
}

#[tokio::test]
async fn name_with_every_allowed_character_is_accepted() {
    let (_server, client) = setup().await;
    let name = "Az09/_+=.@-path";
    create(&client, name, "validation-value")
        .await
        .expect("all of A-Za-z0-9/_+=.@- are allowed");
    assert_eq!(get_string(&client, name).await, "validation-value");
}

#[tokio::test]
async fn string_and_binary_together_are_refused() {
    let (_server, client) = setup().await;
    let create = client
        .create_secret()
        .name("both")
        .secret_string("string-value")
        .secret_binary(Blob::new(b"binary-value".to_vec()));
    // Both fields are valid on their own; AWS refuses the pair as a bad parameter.
    assert_api_err(create.send().await, "InvalidParameterException", None);
    assert_no_secret(&client, "both").await;
}

#[tokio::test]
async fn client_request_token_of_31_chars_is_refused_and_32_accepted() {
    let (_server, client) = setup().await;
    let short = "a".repeat(31);
    let create = client
        .create_secret()
        .name("tok")
        .secret_string("validation-value")
        .client_request_token(&short);
    assert_validation_err(create.send().await);
    assert_no_secret(&client, "tok").await;

    let exact = "b".repeat(32);
    create_string(&client, "tok", "validation-value", &exact).await;
}

#[tokio::test]
async fn client_request_token_of_65_chars_is_refused() {
    let (_server, client) = setup().await;
    let long = "c".repeat(65);
    let create = client
        .create_secret()
        .name("tok")
        .secret_string("validation-value")
        .client_request_token(long);
    assert_validation_err(create.send().await);
    assert_no_secret(&client, "tok").await;
}

/// What AWS's tag pattern refuses: control characters and punctuation outside `_.:/=+-@`.
const BAD_TAG_TEXT: &[&str] = &[
    "nul\u{0}",
    "new\nline",
    "esc\u{1b}[0m",
    "<script>",
    "semi;colon",
];

#[tokio::test]
async fn tags_outside_aws_pattern_are_refused_on_every_operation() {
    let server = Server::start().await;
    let root = server.client().await;
    create_plain(&root, "t", "validation-value").await;
    for bad in BAD_TAG_TEXT {
        for (op, body) in [
            (
                "CreateSecret",
                serde_json::json!({"Name": "t2", "SecretString": "validation-value", "Tags": [{"Key": bad, "Value": "v"}]}),
            ),
            (
                "CreateSecret",
                serde_json::json!({"Name": "t2", "SecretString": "validation-value", "Tags": [{"Key": "k", "Value": bad}]}),
            ),
            (
                "TagResource",
                serde_json::json!({"SecretId": "t", "Tags": [{"Key": bad, "Value": "v"}]}),
            ),
            (
                "TagResource",
                serde_json::json!({"SecretId": "t", "Tags": [{"Key": "k", "Value": bad}]}),
            ),
            (
                "UntagResource",
                serde_json::json!({"SecretId": "t", "TagKeys": [bad]}),
            ),
        ] {
            let msg = server
                .raw(op, &body.to_string(), SignMode::Root)
                .await
                .assert_error("ValidationException");
            assert!(
                msg.contains("letters, digits, spaces and _.:/=+-@"),
                "{op} {bad:?}: {msg}"
            );
        }
        let msg = server
            .kura(
                "CreateUser",
                &serde_json::json!({"UserName": "u", "Tags": [{"Key": "k", "Value": bad}]})
                    .to_string(),
            )
            .await
            .assert_error("ValidationException");
        assert!(msg.contains("tag"), "{bad:?}: {msg}");
    }
    assert_no_secret(&root, "t2").await;
    assert!(describe_tags(&root, "t").await.is_empty());
    // Letters of any script, digits, spaces and the allowed punctuation pass.
    let good = "Ünï 日本 9_.:/=+-@";
    ok(root
        .tag_resource()
        .secret_id("t")
        .tags(tag(good, good))
        .send()
        .await);
    assert_eq!(describe_tags(&root, "t").await[good], good);
}

#[tokio::test]
async fn reserved_aws_tag_keys_are_refused_in_any_case() {
    let server = Server::start().await;
    let root = server.client().await;
    create_plain(&root, "t", "validation-value").await;
    for key in ["aws:team", "AWS:team", "Aws:x"] {
        let err = assert_api_err(
            root.tag_resource()
                .secret_id("t")
                .tags(tag(key, "v"))
                .send()
                .await,
            "InvalidParameterException",
            None,
        );
        assert!(err.message.contains("aws:"), "{err:?}");
    }
}

#[tokio::test]
async fn descriptions_with_control_characters_are_refused() {
    let server = Server::start().await;
    let root = server.client().await;
    create_plain(&root, "d", "validation-value").await;
    for bad in ["nul\u{0}", "two\nlines", "\u{1b}[31mred"] {
        let msg = server
            .raw(
                "CreateSecret",
                &serde_json::json!({"Name": "d2", "SecretString": "validation-value", "Description": bad})
                    .to_string(),
                SignMode::Root,
            )
            .await
            .assert_error("ValidationException");
        assert!(msg.contains("Description"), "{msg}");
        let msg = server
            .raw(
                "UpdateSecret",
                &serde_json::json!({"SecretId": "d", "Description": bad}).to_string(),
                SignMode::Root,
            )
            .await
            .assert_error("ValidationException");
        assert!(msg.contains("control characters"), "{msg}");
    }
    assert_no_secret(&root, "d2").await;
    // Angle brackets and other printable text stay allowed in descriptions.
    ok(root
        .update_secret()
        .secret_id("d")
        .description("<b>ok</b> & fine")
        .send()
        .await);
}
