//! The HTTP doors: `POST /` for the AWS protocol, `GET /health`. Thin: it authenticates,
//! decodes, calls the service and serialises the answer or the error.

mod auth;
pub mod conn;
#[cfg(test)]
mod props;
mod sts;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
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
pub use conn::Limits;
use kura_store::AuditRecord;

pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Largest body accepted: a 64 KiB binary value is ~88 KiB in base64, plus the rest.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most headers a request may carry, and most bytes their names and values may add up to.
/// The SDKs send about a dozen headers in under 2 KiB; proxies add a few.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

pub struct AppState {
    pub service: Arc<Service>,
    pub signing_keys: SigningKeyCache,
    /// How long a request body may take to arrive once its head has.
    pub body_read_timeout: Duration,
}

#[derive(Clone)]
struct RequestId(String);

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", post(aws).fallback(not_found))
        .route("/health", get(health))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), header_limits))
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
    let e = Error::new(
        ErrorCode::UnknownOperation,
        "kura serves the AWS Secrets Manager protocol at POST / and health at GET /health.",
    );
    let refused = Refused {
        request_id,
        peer,
        method: &method,
        uri: &uri,
        headers: &headers,
    };
    refuse(&state, refused, e, None).await
}

/// Refuses a request whose headers exceed kura's limits, as an AWS error with an audit record
/// (hyper's own limits, set above these, answer a bare 431).
async fn header_limits(
    State(state): State<Arc<AppState>>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if headers.len() <= MAX_HEADERS && bytes <= MAX_HEADER_BYTES {
        return next.run(req).await;
    }
    let e = Error::validation(format!(
        "The request has {} headers of {bytes} bytes; kura accepts at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes in all. Send fewer or shorter headers.",
        headers.len()
    ));
    let refused = Refused {
        request_id,
        peer,
        method: req.method(),
        uri: req.uri(),
        headers,
    };
    refuse(
        &state,
        refused,
        e,
        Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
    )
    .await
}

/// A request refused before it reached an operation.
struct Refused<'a> {
    request_id: String,
    peer: std::net::SocketAddr,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

/// Answers `e` (with `status` instead of its usual one) after writing the audit record and
/// the log line every request gets.
async fn refuse(
    state: &AppState,
    r: Refused<'_>,
    mut e: Error,
    status: Option<StatusCode>,
) -> Response {
    let started = Instant::now();
    let meta = request_meta(r.peer, r.headers);
    let entry = AuditRecord {
        time: state.service.now_ms(),
        request_id: r.request_id.clone(),
        kind: "request".into(),
        principal: "-".into(),
        action: format!("http:{}", r.method),
        resource: r.uri.path().chars().take(2048).collect(),
        source_ip: meta.source_ip.map(|ip| ip.to_string()),
        user_agent: meta.user_agent,
        decision: "-".into(),
        outcome: "Error".into(),
        error_code: Some(e.code.as_str().to_string()),
        duration_us: started.elapsed().as_micros() as i64,
        ..Default::default()
    };
    let mut status = status;
    if let Err(audit) = state.service.audit(entry).await {
        e = audit_failed(&audit);
        status = None;
    }
    tracing::info!(
        request_id = r.request_id,
        op = "-",
        method = %r.method,
        path = r.uri.path(),
        outcome = e.code.as_str()
    );
    let mut response = error_response(&e);
    if let Some(status) = status {
        *response.status_mut() = status;
        // Whatever of the request is still unread is not wanted: do not wait for it.
        response
            .headers_mut()
            .insert("connection", HeaderValue::from_static("close"));
    }
    response
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
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = read_body(&parts.headers, body, state.body_read_timeout).await;
    let req = Received {
        started: Instant::now(),
        meta: request_meta(peer, &parts.headers),
        state,
        request_id,
        parts,
    };
    if sts::is_query_request(&req.parts.headers)
        && let Ok(body) = &body
    {
        return sts::serve(req, body).await;
    }
    crate::service::with_request_scope(aws_request(req, body)).await
}

/// A request whose body has been read, as both doors (awsJson and STS's query protocol) take
/// it: what authenticating, auditing and logging it need besides the body.
struct Received {
    state: Arc<AppState>,
    request_id: String,
    started: Instant,
    meta: RequestMeta,
    parts: axum::http::request::Parts,
}

impl Received {
    /// Who signed the request for `service`, with where it came from.
    async fn authenticate(&self, body: &[u8], service: &str) -> Result<Principal> {
        let incoming = auth::Incoming {
            method: &self.parts.method,
            uri: &self.parts.uri,
            headers: &self.parts.headers,
            body,
        };
        let state = &self.state;
        let mut p =
            auth::authenticate(&state.service, &state.signing_keys, incoming, service).await?;
        p.meta = self.meta.clone();
        Ok(p)
    }

    /// Fail closed: an answer goes out only once its audit record is durable.
    async fn audited<T>(&self, entry: AuditRecord, result: Result<T>) -> Result<T> {
        match self.state.service.audit(entry).await {
            Ok(()) => result,
            Err(e) => Err(audit_failed(&e)),
        }
    }

    /// The request's one log line; an internal error's detail goes to the log only.
    fn log(&self, op: &str, who: &str, outcome: std::result::Result<(), &Error>) {
        let request_id = self.request_id.as_str();
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        match outcome {
            Ok(()) => tracing::info!(
                request_id,
                op,
                principal = who,
                outcome = "ok",
                duration_ms = ms
            ),
            Err(e) if e.code == ErrorCode::InternalServiceError => tracing::error!(
                request_id,
                op,
                principal = who,
                outcome = e.code.as_str(),
                duration_ms = ms,
                detail = e.detail.as_deref().unwrap_or("")
            ),
            Err(e) => tracing::info!(
                request_id,
                op,
                principal = who,
                outcome = e.code.as_str(),
                duration_ms = ms
            ),
        }
    }
}

/// Why a body was not read, and the status to answer with.
type BodyRefusal = (StatusCode, Error);

/// Reads the body, at most `MAX_BODY_BYTES` of it and within `timeout`: a client that
/// announces more than it sends does not hold the connection longer than that.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    timeout: Duration,
) -> std::result::Result<Bytes, BodyRefusal> {
    let too_large = |n: &dyn std::fmt::Display| {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Error::validation(format!(
                "The request body is {n} bytes; kura accepts at most {MAX_BODY_BYTES} bytes. A secret value may be at most 65536 bytes."
            )),
        )
    };
    let announced = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = announced.filter(|n| *n > MAX_BODY_BYTES as u64) {
        return Err(too_large(&n));
    }
    let read = async {
        use hyper::body::Body as _;
        let mut body = std::pin::pin!(body);
        let mut data = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            let frame = frame.map_err(|_| {
                (
                    StatusCode::BAD_REQUEST,
                    Error::new(
                        ErrorCode::Serialization,
                        "The request body could not be read: the connection failed or the body is not valid HTTP framing.",
                    ),
                )
            })?;
            if let Ok(chunk) = frame.into_data() {
                if data.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(too_large(&format!("more than {MAX_BODY_BYTES}")));
                }
                data.extend_from_slice(&chunk);
            }
        }
        Ok(Bytes::from(data))
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(read) => read,
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            Error::new(
                ErrorCode::RequestTimeout,
                format!(
                    "The request body did not arrive within {} s of its headers (it is shorter than its Content-Length, or the connection is too slow). Send the whole body at once.",
                    timeout.as_secs_f64()
                ),
            ),
        )),
    }
}

async fn aws_request(req: Received, body: std::result::Result<Bytes, BodyRefusal>) -> Response {
    let state = &req.state;
    let headers = &req.parts.headers;
    // A body that could not be read cannot be authenticated: answer why, and audit it.
    let (body, refused) = match body {
        Ok(b) => (b, None),
        Err(r) => (Bytes::new(), Some(r)),
    };
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (family, op) = target.split_once('.').unwrap_or(("", &target));
    let principal = match &refused {
        Some((_, e)) => Err(e.clone()),
        None => req.authenticate(&body, auth::SERVICE_NAME).await,
    };
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
    let who = principal.as_ref().map(|p| p.arn.as_str()).unwrap_or("-");
    let audit_facts = AuditFacts {
        req: &req,
        family,
        op,
        principal: principal.as_ref().ok(),
        request: facts.as_ref().ok(),
        decision,
    };
    // An allowed call runs with its record as a draft: the transaction that makes its change
    // commits the record too, so a request refused for want of its record did nothing.
    let (result, recorded) = match (&principal, allowed) {
        (Ok(_), Err(e)) => (Err(e), false),
        (Ok(p), Ok(())) if family == "secretsmanager" || family == "Kura" => {
            let draft = kura_store::AuditDraft {
                record: audit_entry(audit_facts, Ok(&[])),
                started: req.started,
                clock: state.service.clock.clone(),
            };
            let call = async {
                if family == "secretsmanager" {
                    dispatch(&state.service, p, op, &body).await
                } else {
                    dispatch_kura(&state.service, p, op, &body).await
                }
            };
            kura_store::with_audit_draft(draft, call).await
        }
        (Ok(_), Ok(())) => (
            Err(Error::new(
                ErrorCode::UnknownOperation,
                "Set X-Amz-Target to secretsmanager.<Operation> or Kura.<Operation>.",
            )),
            false,
        ),
        (Err(e), _) => (Err(e.clone()), false),
    };
    let result = if recorded {
        if let Err(e) = &result {
            // Its change committed (with a Success record); only what came after failed.
            tracing::warn!(
                request_id = req.request_id.as_str(),
                op,
                code = e.code.as_str(),
                "the request's change was committed and audited, then the request failed"
            );
        }
        result
    } else {
        let entry = audit_entry(audit_facts, result.as_deref());
        req.audited(entry, result).await
    };
    req.log(op, who, result.as_ref().map(|_| ()));
    match result {
        Ok(body) => ([("content-type", JSON_CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            let mut response = error_response(&e);
            if let Some((status, refusal)) = refused
                && refusal == e
            {
                *response.status_mut() = status;
                // The rest of the body is not wanted: do not wait for it on this connection.
                response
                    .headers_mut()
                    .insert("connection", HeaderValue::from_static("close"));
            }
            response
        }
    }
}

#[derive(Clone, Copy)]
struct AuditFacts<'a> {
    req: &'a Received,
    family: &'a str,
    op: &'a str,
    principal: Option<&'a Principal>,
    request: Option<&'a RequestFacts>,
    decision: &'static str,
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
    let detail = Some(format!(
        "audit record not written, request not answered: {}",
        e.detail.as_deref().unwrap_or(&e.message)
    ));
    if e.is_disk_full() {
        return Error {
            detail,
            ..e.clone()
        };
    }
    Error {
        detail,
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
fn audit_entry(f: AuditFacts<'_>, result: std::result::Result<&[u8], &Error>) -> AuditRecord {
    let svc = &f.req.state.service;
    let empty = RequestFacts::default();
    let req = f.request.unwrap_or(&empty);
    let resp: AnswerFacts = match result {
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
        "sts" => format!("sts:{}", f.op),
        _ => f.op.to_string(),
    };
    let (outcome, error_code) = match result {
        Ok(_) => ("Success", None),
        Err(e) => ("Error", Some(e.code.as_str().to_string())),
    };
    // Unauthenticated requests are recorded with the key id they claimed, if any.
    let claimed_key = || {
        f.req
            .parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .map(|k| k.chars().take(128).collect::<String>())
            .unwrap_or_default()
    };
    AuditRecord {
        time: svc.now_ms(),
        request_id: f.req.request_id.clone(),
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
        source_ip: f.req.meta.source_ip.map(|ip| ip.to_string()),
        user_agent: f.req.meta.user_agent.clone(),
        decision: f.decision.into(),
        outcome: outcome.into(),
        error_code,
        duration_us: f.req.started.elapsed().as_micros() as i64,
        ..Default::default()
    }
}
