//! SigV4 authentication failures, on the wire and through the SDK.

mod common;

use std::time::{Duration, SystemTime};

use common::*;

const LIST: &str = "ListSecrets";

fn root_with_secret(server: &Server, secret: &str) -> SignMode {
    SignMode::Custom {
        akid: server.credentials().access_key_id,
        secret: secret.to_string(),
    }
}

#[tokio::test]
async fn unsigned_request_is_missing_authentication_token() {
    let server = Server::start().await;
    let resp = server.raw(LIST, "{}", SignMode::Unsigned).await;
    resp.assert_error("MissingAuthenticationTokenException");
}

#[tokio::test]
async fn root_signed_request_succeeds() {
    let server = Server::start().await;
    let json = server.raw(LIST, "{}", SignMode::Root).await.assert_ok();
    assert!(json["SecretList"].is_array(), "{json}");
}

#[tokio::test]
async fn wrong_secret_key_is_invalid_signature() {
    let server = Server::start().await;
    let resp = server
        .raw(LIST, "{}", root_with_secret(&server, "not-the-secret-key"))
        .await;
    resp.assert_error("InvalidSignatureException");
}

#[tokio::test]
async fn wrong_secret_key_through_the_sdk() {
    let server = Server::start().await;
    let client = server
        .client_with(&server.credentials().access_key_id, "not-the-secret-key")
        .await;
    assert_api_err(
        client.list_secrets().send().await,
        "InvalidSignatureException",
        None,
    );
}

#[tokio::test]
async fn unknown_access_key_is_unrecognized_client() {
    let server = Server::start().await;
    let mode = SignMode::Custom {
        akid: "AKIAIOSFODNN7EXAMPLE".into(),
        secret: "whatever".into(),
    };
    server
        .raw(LIST, "{}", mode)
        .await
        .assert_error("UnrecognizedClientException");
    let client = server.client_with("AKIAIOSFODNN7EXAMPLE", "whatever").await;
    assert_api_err(
        client.list_secrets().send().await,
        "UnrecognizedClientException",
        None,
    );
}

#[tokio::test]
async fn signature_20_minutes_old_is_expired() {
    let server = Server::start().await;
    let at = SystemTime::now() - Duration::from_secs(20 * 60);
    let message = server
        .raw(LIST, "{}", SignMode::RootAt(at))
        .await
        .assert_error("InvalidSignatureException");
    assert!(
        message.starts_with("Signature expired"),
        "message: {message:?}"
    );
}

#[tokio::test]
async fn signature_20_minutes_ahead_is_refused() {
    let server = Server::start().await;
    let at = SystemTime::now() + Duration::from_secs(20 * 60);
    let resp = server.raw(LIST, "{}", SignMode::RootAt(at)).await;
    resp.assert_error("InvalidSignatureException");
}

#[tokio::test]
async fn signature_5_minutes_old_is_accepted() {
    let server = Server::start().await;
    let at = SystemTime::now() - Duration::from_secs(5 * 60);
    server
        .raw(LIST, "{}", SignMode::RootAt(at))
        .await
        .assert_ok();
}

#[tokio::test]
async fn malformed_authorization_is_incomplete_signature() {
    let server = Server::start().await;
    let mode = SignMode::Authorization("AWS4-HMAC-SHA256 garbage".into());
    server
        .raw(LIST, "{}", mode)
        .await
        .assert_error("IncompleteSignatureException");
}

#[tokio::test]
async fn body_changed_after_signing_is_invalid_signature() {
    let server = Server::start().await;
    // Sign one body, send another: the payload hash must be verified.
    let signed = server
        .raw_signed_with_body(LIST, "{}", "{\"MaxResults\":1}")
        .await;
    signed.assert_error("InvalidSignatureException");
}
