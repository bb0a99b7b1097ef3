//! `/operator/…`: what an operator does to a node that has no keys yet or is sealed — nothing
//! here can be signed, since no access key can be checked without the root key. `init` is
//! accepted only while the installation is uninitialised; `unseal` takes shares, which are
//! their own authentication. Sealing again (`Kura.Seal`) is an ordinary signed operation.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kura_core::{Error, ErrorCode};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{
    AppState, JSON_CONTENT_TYPE, RequestId, error_response, is_tls, read_body, request_info,
    sealed_response,
};

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [("content-type", JSON_CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

/// The JSON body, or the error answer saying what is wrong with it.
async fn body<T: for<'de> Deserialize<'de>>(
    state: &AppState,
    req: Request<Body>,
) -> Result<T, Response> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(&parts.headers, body, state.body_read_timeout)
        .await
        .map_err(|(status, e)| {
            let mut r = error_response(&e);
            *r.status_mut() = status;
            r
        })?;
    let bytes = Zeroizing::new(bytes.to_vec());
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes.as_slice()
    };
    serde_json::from_slice(text).map_err(|e| {
        // Only where it broke: serde's own text can quote what was sent, and a body here may
        // hold an unseal share.
        error_response(&Error::new(
            ErrorCode::Serialization,
            format!(
                "The request body is not the JSON this call takes (line {}, column {}): send an object with the fields this call documents.",
                e.line(),
                e.column()
            ),
        ))
    })
}

pub(super) async fn seal_status(State(state): State<Arc<AppState>>) -> Response {
    let status = state.node.status().await;
    json(StatusCode::OK, serde_json::json!(status))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct InitRequest {
    shares: Option<u8>,
    threshold: Option<u8>,
}

pub(super) async fn init(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let r: InitRequest = match body(&state, req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (shares, threshold) = (r.shares.unwrap_or(5), r.threshold.unwrap_or(3));
    match state.node.init(shares, threshold).await {
        Ok(done) => {
            let shares: Vec<&str> = done.shares.iter().map(|s| s.as_str()).collect();
            json(
                StatusCode::OK,
                serde_json::json!({
                    "Shares": shares,
                    "Threshold": done.threshold,
                    "RootCredentialsFile": done.credentials_file.display().to_string(),
                }),
            )
        }
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct UnsealRequest {
    key: Option<Zeroizing<String>>,
    #[serde(default)]
    reset: bool,
}

pub(super) async fn unseal(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    let r: UnsealRequest = match body(&state, req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match state
        .node
        .unseal(r.key.as_deref().map(String::as_str), r.reset)
        .await
    {
        Ok(status) => json(StatusCode::OK, serde_json::json!(status)),
        Err(e) => failed(e),
    }
}

/// `POST /operator/generate-root/challenge`: bytes sealed under the keyring, for
/// `kura operator generate-root` to open with the root key it opened from the seal.
pub(super) async fn root_challenge(State(state): State<Arc<AppState>>) -> Response {
    let Some(live) = state.node.live() else {
        return sealed_response();
    };
    match live.service.root_challenge() {
        Ok(c) => json(StatusCode::OK, serde_json::json!(c)),
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct GenerateRootRequest {
    challenge_id: String,
    answer: Zeroizing<String>,
    #[serde(default)]
    keep_old_keys: bool,
}

/// `POST /operator/generate-root`: the challenge opened, so new root credentials. The
/// answer is its own authentication, as unseal shares are.
pub(super) async fn generate_root(
    State(state): State<Arc<AppState>>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    req: Request<Body>,
) -> Response {
    let Some(live) = state.node.live() else {
        return sealed_response();
    };
    let info = request_info(request_id, peer, is_tls(req.extensions()), req.headers());
    let r: GenerateRootRequest = match body(&state, req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match live
        .service
        .generate_root(&info, &r.challenge_id, &r.answer, r.keep_old_keys)
        .await
    {
        Ok(done) => json(
            StatusCode::OK,
            serde_json::json!({
                "AccessKeyId": done.access_key_id,
                "SecretAccessKey": done.secret_access_key.as_str(),
                "DeletedAccessKeyIds": done.deleted,
                "KeptAccessKeyIds": done.kept,
                "ReEnabled": done.re_enabled,
            }),
        ),
        Err(e) => failed(e),
    }
}

fn failed(e: Error) -> Response {
    if let Some(detail) = &e.detail {
        tracing::error!(detail = detail.as_str(), "operator call failed");
    }
    error_response(&e)
}
