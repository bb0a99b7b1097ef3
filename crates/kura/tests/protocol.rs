//! Wire-level details of the awsJson1.1 protocol: headers, error shape, omitted fields, timestamps.

mod common;

use common::*;
use serde_json::Value;

const CREATE: &str = r#"{"Name":"wire","SecretString":"wire-value-1f3a","ClientRequestToken":"00000000-0000-4000-8000-000000000001"}"#;

/// Panics on any JSON `null`, anywhere.
fn assert_no_nulls(value: &Value, path: &str) {
    match value {
        Value::Null => panic!("null at {path}; unset fields must be omitted"),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| assert_no_nulls(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| assert_no_nulls(v, &format!("{path}.{k}"))),
        _ => {}
    }
}

fn request_id(resp: &RawResponse) -> String {
    resp.header("x-amzn-RequestId")
        .expect("x-amzn-RequestId")
        .to_string()
}

#[tokio::test]
async fn success_has_request_id_and_json_content_type() {
    let server = Server::start().await;
    let json = server
        .raw("CreateSecret", CREATE, SignMode::Root)
        .await
        .assert_ok();
    assert_eq!(json["Name"], "wire");
    assert_eq!(json["VersionId"], "00000000-0000-4000-8000-000000000001");
}

#[tokio::test]
async fn request_ids_differ_between_requests() {
    let server = Server::start().await;
    let a = server.raw("ListSecrets", "{}", SignMode::Root).await;
    let b = server.raw("ListSecrets", "{}", SignMode::Root).await;
    assert_ne!(request_id(&a), request_id(&b));
}

#[tokio::test]
async fn not_found_error_shape() {
    let server = Server::start().await;
    let resp = server
        .raw("GetSecretValue", r#"{"SecretId":"nope"}"#, SignMode::Root)
        .await;
    assert_eq!(
        resp.assert_error("ResourceNotFoundException"),
        NOT_FOUND_MSG
    );
}

#[tokio::test]
async fn auth_error_shape() {
    let server = Server::start().await;
    server
        .raw("ListSecrets", "{}", SignMode::Unsigned)
        .await
        .assert_error("MissingAuthenticationTokenException");
}

#[tokio::test]
async fn unknown_operation() {
    let server = Server::start().await;
    let resp = server.raw("FrobnicateSecret", "{}", SignMode::Root).await;
    resp.assert_error("UnknownOperationException");
}

#[tokio::test]
async fn malformed_json_body_is_a_400() {
    let server = Server::start().await;
    let resp = server.raw("ListSecrets", "{not json", SignMode::Root).await;
    assert_eq!(resp.status, 400, "{resp:?}");
    assert_common_headers(&resp.headers);
    assert!(resp.header("x-amzn-ErrorType").is_some(), "{resp:?}");
}

#[tokio::test]
async fn describe_omits_unset_fields_and_uses_epoch_seconds() {
    let server = Server::start().await;
    server
        .raw("CreateSecret", CREATE, SignMode::Root)
        .await
        .assert_ok();
    let json = server
        .raw("DescribeSecret", r#"{"SecretId":"wire"}"#, SignMode::Root)
        .await
        .assert_ok();
    assert_no_nulls(&json, "DescribeSecret");
    for absent in [
        "Description",
        "DeletedDate",
        "RotationLambdaARN",
        "RotationRules",
        "KmsKeyId",
        "RotationEnabled",
        "Tags",
    ] {
        assert!(
            json.get(absent).is_none(),
            "{absent} present on a plain secret: {json}"
        );
    }
    let created = json["CreatedDate"]
        .as_f64()
        .unwrap_or_else(|| panic!("CreatedDate not a number: {json}"));
    assert!(
        (created - now_secs() as f64).abs() < 600.0,
        "CreatedDate {created} is not epoch seconds"
    );

    let listed = server
        .raw("ListSecrets", "{}", SignMode::Root)
        .await
        .assert_ok();
    assert_no_nulls(&listed, "ListSecrets");
    let value = server
        .raw("GetSecretValue", r#"{"SecretId":"wire"}"#, SignMode::Root)
        .await
        .assert_ok();
    assert_no_nulls(&value, "GetSecretValue");
    assert!(value.get("SecretBinary").is_none(), "{value}");
}

#[tokio::test]
async fn secret_binary_is_base64_on_the_wire() {
    let server = Server::start().await;
    let bytes = [0u8, 1, 2, 0xFE, 0xFF, 0x80, 0x7F, 0x10, 0x20, 0xAB];
    let body = format!(r#"{{"Name":"b64","SecretBinary":"{}"}}"#, base64(&bytes));
    server
        .raw("CreateSecret", &body, SignMode::Root)
        .await
        .assert_ok();
    let json = server
        .raw("GetSecretValue", r#"{"SecretId":"b64"}"#, SignMode::Root)
        .await
        .assert_ok();
    assert_eq!(json["SecretBinary"].as_str(), Some(base64(&bytes).as_str()));
    assert!(json.get("SecretString").is_none(), "{json}");
}
