//! The harness's own checks can fail: a value planted in the log in any form, a test that stored
//! only values too short to search, and a response without its audit record are each caught.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::*;

/// Appends `text` to the server log, runs the leak check, and puts the log back.
fn leak_check_with_planted(server: &Server, text: &[u8]) -> bool {
    let original = std::fs::read(server.log_path()).unwrap();
    let mut planted = original.clone();
    planted.extend_from_slice(b"\nplanted: ");
    planted.extend_from_slice(text);
    planted.push(b'\n');
    std::fs::write(server.log_path(), &planted).unwrap();
    let caught = catch_unwind(AssertUnwindSafe(|| server.assert_no_stored_value_leaked())).is_err();
    std::fs::write(server.log_path(), &original).unwrap();
    caught
}

#[tokio::test]
async fn a_value_sent_through_the_sdk_is_found_in_every_form() {
    let server = Server::start().await;
    let c = server.client().await;
    // A quote and a newline, so the JSON-escaped form differs from the raw one.
    let value = format!("planted \"{}\"\n", unique_suffix());
    create_plain(&c, "harness/sdk", &value).await;
    server.assert_no_stored_value_leaked();

    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
    let escaped = serde_json::to_string(&value).unwrap();
    let mut forms = vec![
        ("raw", value.clone()),
        ("JSON-escaped", escaped.trim_matches('"').to_string()),
        ("hex", hex.clone()),
        ("upper-case hex", hex.to_uppercase()),
    ];
    for prefix in ["", "a", "ab"] {
        forms.push(("base64", base64(format!("{prefix}{value}").as_bytes())));
    }
    for (form, text) in forms {
        assert!(
            leak_check_with_planted(&server, text.as_bytes()),
            "the {form} form of a stored value was not caught"
        );
    }
    server.assert_no_stored_value_leaked();
}

#[tokio::test]
async fn values_the_server_returns_and_raw_requests_send_are_tracked() {
    let server = Server::start().await;
    let c = server.client().await;
    let password = ok(c.get_random_password().password_length(40).send().await)
        .random_password()
        .unwrap()
        .to_string();
    assert!(
        leak_check_with_planted(&server, password.as_bytes()),
        "a generated password the server returned was not caught"
    );

    let raw_value = format!("raw-json-{}", unique_suffix());
    server
        .raw(
            "CreateSecret",
            &serde_json::json!({"Name": "harness/raw", "SecretString": raw_value}).to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok();
    assert!(
        leak_check_with_planted(&server, raw_value.as_bytes()),
        "a value sent through Server::raw was not caught"
    );

    server
        .kura("CreateUser", r#"{"UserName": "harness-user"}"#)
        .await
        .assert_ok();
    let key = server
        .kura("CreateAccessKey", r#"{"UserName": "harness-user"}"#)
        .await
        .assert_ok();
    let secret = key["AccessKey"]["SecretAccessKey"]
        .as_str()
        .unwrap_or_else(|| panic!("CreateAccessKey without a SecretAccessKey: {key}"))
        .to_string();
    assert!(
        leak_check_with_planted(&server, secret.as_bytes()),
        "a secret access key the server generated was not caught"
    );
}

#[tokio::test]
async fn storing_only_values_too_short_to_search_fails_the_check() {
    let server = Server::start().await;
    let c = server.client().await;
    create_plain(&c, "harness/short", "v1").await;
    let caught = catch_unwind(AssertUnwindSafe(|| server.assert_no_stored_value_leaked()));
    assert!(
        caught.is_err(),
        "a test that stored only a 2-byte value passed the leak check"
    );
    // A searchable value makes the server's own check at drop pass.
    put_string(&c, "harness/short", &unique_suffix(), &token(2)).await;
    server.assert_no_stored_value_leaked();
}

#[tokio::test]
async fn a_response_without_its_audit_record_fails_the_check() {
    let server = Server::start().await;
    let c = server.client().await;
    ok(c.list_secrets().send().await);
    server.assert_one_audit_record_per_request();

    // The record missing from the file.
    let path = server.data_dir.join("audit.jsonl");
    let original = std::fs::read_to_string(&path).unwrap();
    let kept = original
        .trim_end()
        .rsplit_once('\n')
        .map_or("", |(kept, _)| kept);
    std::fs::write(&path, format!("{kept}\n")).unwrap();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        server.assert_one_audit_record_per_request()
    }));
    std::fs::write(&path, &original).unwrap();
    assert!(caught.is_err(), "a record missing from audit.jsonl passed");
    server.assert_one_audit_record_per_request();

    // The record missing from the table only.
    let resp = server.raw("ListSecrets", "{}", SignMode::Root).await;
    resp.assert_ok();
    let id = resp.header("x-amzn-RequestId").unwrap().to_string();
    sqlite(
        &server.data_dir.join("kura.db"),
        &format!("DELETE FROM audit_log WHERE request_id = '{id}'"),
    );
    let caught = catch_unwind(AssertUnwindSafe(|| {
        server.assert_one_audit_record_per_request()
    }));
    assert!(caught.is_err(), "a record missing from audit_log passed");
    server.exempt_audit_trail("a record was deleted from audit_log on purpose");
}
