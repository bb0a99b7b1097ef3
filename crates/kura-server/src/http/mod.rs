//! The HTTP doors: `POST /` for the AWS protocol, `GET /health`. Thin: it authenticates,
//! decodes, calls the service and serialises the answer or the error.

mod auth;
#[cfg(test)]
mod props;
mod sts;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kura_core::{Error, ErrorCode, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::service::authz::{RequestFacts, RequestMeta};
use crate::service::{Principal, Service};
pub use auth::SigningKeyCache;
use kura_store::AuditRecord;

pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Largest body accepted: a 64 KiB binary value is ~88 KiB in base64, plus the rest.
const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct AppState {
    pub service: Arc<Service>,
    pub signing_keys: SigningKeyCache,
}

#[derive(Clone)]
struct RequestId(String);

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", post(aws).fallback(not_found))
        .route("/health", get(health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Every answer carries `x-amzn-RequestId`, errors included.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

async fn health() -> impl IntoResponse {
    ([("content-type", "application/json")], r#"{"status":"ok"}"#)
}

/// Anything but `POST /` and `GET /health`: refused, and audited like every other request
/// (probes of other paths are worth knowing about).
async fn not_found(
    State(state): State<Arc<AppState>>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let mut e = Error::new(
        ErrorCode::UnknownOperation,
        "kura serves the AWS Secrets Manager protocol at POST / and health at GET /health.",
    );
    let meta = request_meta(peer, &headers);
    let entry = AuditRecord {
        time: state.service.now_ms(),
        request_id: request_id.clone(),
        kind: "request".into(),
        principal: "-".into(),
        action: format!("http:{method}"),
        resource: uri.path().chars().take(2048).collect(),
        source_ip: meta.source_ip.map(|ip| ip.to_string()),
        user_agent: meta.user_agent,
        decision: "-".into(),
        outcome: "Error".into(),
        error_code: Some(e.code.as_str().to_string()),
        duration_us: started.elapsed().as_micros() as i64,
        ..Default::default()
    };
    if let Err(audit) = state.service.audit(entry).await {
        e = audit_failed(&audit);
    }
    tracing::info!(
        request_id,
        op = "-",
        method = %method,
        path = uri.path(),
        outcome = e.code.as_str()
    );
    error_response(&e)
}

fn error_response(e: &Error) -> Response {
    let body = serde_json::json!({"__type": e.code.as_str(), "message": e.message});
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [
            ("content-type", JSON_CONTENT_TYPE),
            ("x-amzn-ErrorType", e.code.as_str()),
        ],
        body.to_string(),
    )
        .into_response()
}

fn parse<T: DeserializeOwned>(op: &str, body: &[u8]) -> Result<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    // serde's messages can quote the offending value, which may be a secret: say only where.
    serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => {
                "a field has the wrong type or a required field is missing"
            }
            _ => "the body is not valid JSON",
        };
        Error::new(
            ErrorCode::Serialization,
            format!(
                "Could not read the {op} request: {what} (line {}, column {}).",
                e.line(),
                e.column()
            ),
        )
    })
}

fn to_body<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::internal(format!("serialising a response: {e}")))
}

macro_rules! invoke {
    ($svc:ident, $p:ident, $op:ident, $body:ident, $method:ident) => {
        to_body(&$svc.$method($p, parse($op, $body)?).await?)
    };
}

/// kura's own operations (`X-Amz-Target: Kura.<Op>`), same conventions as the AWS ones.
async fn dispatch_kura(
    svc: &Arc<Service>,
    p: &Principal,
    op: &str,
    body: &[u8],
) -> Result<Vec<u8>> {
    match op {
        "SetClock" => invoke!(svc, p, op, body, set_clock),
        "AdvanceClock" => invoke!(svc, p, op, body, advance_clock),
        "CreateRotationFunction" => invoke!(svc, p, op, body, create_rotation_function),
        "ListRotationFunctions" => invoke!(svc, p, op, body, list_rotation_functions),
        "DeleteRotationFunction" => invoke!(svc, p, op, body, delete_rotation_function),
        "CreateNotificationTarget" => invoke!(svc, p, op, body, create_notification_target),
        "ListNotificationTargets" => invoke!(svc, p, op, body, list_notification_targets),
        "DeleteNotificationTarget" => invoke!(svc, p, op, body, delete_notification_target),
        "CreateUser" => invoke!(svc, p, op, body, create_user),
        "DeleteUser" => invoke!(svc, p, op, body, delete_user),
        "ListUsers" => invoke!(svc, p, op, body, list_users),
        "CreateAccessKey" => invoke!(svc, p, op, body, create_user_access_key),
        "UpdateAccessKey" => invoke!(svc, p, op, body, update_access_key),
        "DeleteAccessKey" => invoke!(svc, p, op, body, delete_user_access_key),
        "ListAccessKeys" => invoke!(svc, p, op, body, list_user_access_keys),
        "PutUserPolicy" => invoke!(svc, p, op, body, put_user_policy),
        "GetUserPolicy" => invoke!(svc, p, op, body, get_user_policy),
        "DeleteUserPolicy" => invoke!(svc, p, op, body, delete_user_policy),
        "ListUserPolicies" => invoke!(svc, p, op, body, list_user_policies),
        "GetCallerIdentity" => invoke!(svc, p, op, body, get_caller_identity),
        "LookupAuditEvents" => invoke!(svc, p, op, body, lookup_audit_events),
        _ => Err(Error::new(
            ErrorCode::UnknownOperation,
            format!("kura has no extension operation {op:?}."),
        )),
    }
}

async fn dispatch(svc: &Service, p: &Principal, op: &str, body: &[u8]) -> Result<Vec<u8>> {
    macro_rules! call {
        ($method:ident) => {
            invoke!(svc, p, op, body, $method)
        };
    }
    match op {
        "CreateSecret" => call!(create_secret),
        "GetSecretValue" => call!(get_secret_value),
        "PutSecretValue" => call!(put_secret_value),
        "UpdateSecret" => call!(update_secret),
        "UpdateSecretVersionStage" => call!(update_secret_version_stage),
        "DescribeSecret" => call!(describe_secret),
        "ListSecrets" => call!(list_secrets),
        "ListSecretVersionIds" => call!(list_secret_version_ids),
        "DeleteSecret" => call!(delete_secret),
        "RestoreSecret" => call!(restore_secret),
        "GetRandomPassword" => call!(get_random_password),
        "TagResource" => call!(tag_resource),
        "UntagResource" => call!(untag_resource),
        "BatchGetSecretValue" => call!(batch_get_secret_value),
        "PutResourcePolicy" => call!(put_resource_policy),
        "GetResourcePolicy" => call!(get_resource_policy),
        "DeleteResourcePolicy" => call!(delete_resource_policy),
        "ValidateResourcePolicy" => call!(validate_resource_policy),
        "RotateSecret" => call!(rotate_secret),
        "CancelRotateSecret" => call!(cancel_rotate_secret),
        "ReplicateSecretToRegions"
        | "RemoveRegionsFromReplication"
        | "StopReplicationToReplica" => Err(Error::invalid_request(format!(
            "{op}: replication to other regions is not available on this kura server. Run one kura per site against a shared PostgreSQL instead."
        ))),
        _ => Err(Error::new(
            ErrorCode::UnknownOperation,
            format!("kura does not implement the operation {op:?}."),
        )),
    }
}

async fn aws(
    State(state): State<Arc<AppState>>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if sts::is_query_request(&headers) {
        return sts::serve(state, request_id, peer, method, uri, headers, &body).await;
    }
    crate::service::with_request_scope(aws_request(
        state, request_id, peer, method, uri, headers, body,
    ))
    .await
}

async fn aws_request(
    state: Arc<AppState>,
    request_id: String,
    peer: std::net::SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (family, op) = target.split_once('.').unwrap_or(("", &target));
    let principal = auth::authenticate(
        &state.service,
        &state.signing_keys,
        auth::Incoming {
            method: &method,
            uri: &uri,
            headers: &headers,
            body: &body,
        },
    )
    .await;
    let meta = request_meta(peer, &headers);
    let principal = principal.map(|mut p| {
        p.meta = meta.clone();
        p
    });
    // Read once for authorization and the audit record; holds no value field.
    let facts: Result<RequestFacts> = parse(op, &body);
    let allowed = match &principal {
        Ok(p) if family == "secretsmanager" || family == "Kura" => {
            state.service.authorize(p, family, op, facts.as_ref()).await
        }
        _ => Ok(()),
    };
    let decision = match (&principal, &allowed) {
        (Err(_), _) => "-",
        (Ok(_), Ok(())) => "Allow",
        (Ok(_), Err(_)) => "Deny",
    };
    let result = match (&principal, allowed) {
        (Ok(_), Err(e)) => Err(e),
        (Ok(p), Ok(())) if family == "secretsmanager" => {
            dispatch(&state.service, p, op, &body).await
        }
        (Ok(p), Ok(())) if family == "Kura" => dispatch_kura(&state.service, p, op, &body).await,
        (Ok(_), Ok(())) => Err(Error::new(
            ErrorCode::UnknownOperation,
            "Set X-Amz-Target to secretsmanager.<Operation> or Kura.<Operation>.",
        )),
        (Err(e), _) => Err(e.clone()),
    };
    let who = principal.as_ref().map(|p| p.arn.as_str()).unwrap_or("-");
    // Fail closed: an answer goes out only once its audit record is durable.
    let entry = audit_entry(
        &state.service,
        AuditFacts {
            request_id: &request_id,
            family,
            op,
            principal: principal.as_ref().ok(),
            meta: &meta,
            headers: &headers,
            request: facts.as_ref().ok(),
            decision,
            result: &result,
            started,
        },
    );
    let result = match state.service.audit(entry).await {
        Ok(()) => result,
        Err(e) => Err(audit_failed(&e)),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(body) => {
            tracing::info!(
                request_id,
                op,
                principal = who,
                outcome = "ok",
                duration_ms = ms
            );
            ([("content-type", JSON_CONTENT_TYPE)], body).into_response()
        }
        Err(e) => {
            if e.code == ErrorCode::InternalServiceError {
                tracing::error!(
                    request_id,
                    op,
                    principal = who,
                    outcome = e.code.as_str(),
                    duration_ms = ms,
                    detail = e.detail.as_deref().unwrap_or("")
                );
            } else {
                tracing::info!(
                    request_id,
                    op,
                    principal = who,
                    outcome = e.code.as_str(),
                    duration_ms = ms
                );
            }
            error_response(&e)
        }
    }
}

struct AuditFacts<'a> {
    request_id: &'a str,
    family: &'a str,
    op: &'a str,
    principal: Option<&'a Principal>,
    meta: &'a RequestMeta,
    headers: &'a HeaderMap,
    request: Option<&'a RequestFacts>,
    decision: &'static str,
    result: &'a Result<Vec<u8>>,
    started: Instant,
}

/// Where a request came from, read once from the connection and its headers.
fn request_meta(peer: std::net::SocketAddr, headers: &HeaderMap) -> RequestMeta {
    RequestMeta {
        source_ip: Some(peer.ip()),
        user_agent: headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
    }
}

/// The answer to give when a request's audit record could not be written (fail closed).
fn audit_failed(e: &Error) -> Error {
    Error {
        detail: Some(format!(
            "audit record not written, request not answered: {}",
            e.detail.as_deref().unwrap_or(&e.message)
        )),
        ..Error::new(
            ErrorCode::InternalServiceError,
            "kura could not record this request in its audit trail, so it does not answer it. See the server log.",
        )
    }
}

/// The two fields of an answer the audit record keeps. Reading only these skips the rest of
/// the body (a GetSecretValue answer holds the value) without copying it.
#[derive(serde::Deserialize, Default)]
struct AnswerFacts {
    #[serde(rename = "ARN")]
    arn: Option<String>,
    #[serde(rename = "VersionId")]
    version_id: Option<String>,
}

/// The audit record of one request: named, non-secret fields of the request and the answer,
/// never a value, a password or a policy document.
fn audit_entry(svc: &Service, f: AuditFacts<'_>) -> AuditRecord {
    let empty = RequestFacts::default();
    let req = f.request.unwrap_or(&empty);
    let resp: AnswerFacts = match f.result {
        Ok(body) => serde_json::from_slice(body).unwrap_or_default(),
        Err(_) => AnswerFacts::default(),
    };
    let resource = resp
        .arn
        .or_else(|| req.secret_id.clone())
        .or_else(|| req.name.clone())
        .or_else(|| req.user_name.as_deref().map(|u| svc.user_arn(u)))
        .or_else(|| req.target_id.clone())
        .unwrap_or_else(|| "*".to_string());
    let action = match f.family {
        "secretsmanager" => format!("secretsmanager:{}", f.op),
        "Kura" => format!("kura:{}", f.op),
        _ => f.op.to_string(),
    };
    let (outcome, error_code) = match f.result {
        Ok(_) => ("Success", None),
        Err(e) => ("Error", Some(e.code.as_str().to_string())),
    };
    // Unauthenticated requests are recorded with the key id they claimed, if any.
    let claimed_key = || {
        f.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .map(|k| k.chars().take(128).collect::<String>())
            .unwrap_or_default()
    };
    AuditRecord {
        time: svc.now_ms(),
        request_id: f.request_id.to_string(),
        kind: "request".into(),
        principal: f
            .principal
            .map(|p| p.arn.clone())
            .unwrap_or_else(|| "-".into()),
        access_key_id: f
            .principal
            .map(|p| p.access_key_id.clone())
            .unwrap_or_else(claimed_key),
        action: action.chars().take(256).collect(),
        resource: resource.chars().take(2048).collect(),
        version_id: req.version_id.clone().or(resp.version_id),
        version_stage: req.version_stage.clone(),
        source_ip: f.meta.source_ip.map(|ip| ip.to_string()),
        user_agent: f.meta.user_agent.clone(),
        decision: f.decision.into(),
        outcome: outcome.into(),
        error_code,
        duration_us: f.started.elapsed().as_micros() as i64,
        ..Default::default()
    }
}
