//! The HTTP doors: `POST /` for the AWS protocol (`aws`) and STS's query protocol (`sts`),
//! `GET /health`. Thin: they authenticate, decode an operation, call the service's pipeline
//! and encode the answer or the error.

pub(crate) mod auth;
mod aws;
pub mod conn;
mod metrics;
mod operator;
#[cfg(test)]
mod props;
mod sts;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kura_core::{Error, ErrorCode, Result};

use crate::node::{Live, Node};
use crate::service::authz::RequestMeta;
use crate::service::{Principal, RequestInfo};
pub use conn::{Limits, Transport};
pub use tls::{Tls, TlsFiles};

pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Largest body accepted: a 64 KiB binary value is ~88 KiB in base64, plus the rest.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most headers a request may carry, and most bytes their names and values may add up to.
/// The SDKs send about a dozen headers in under 2 KiB; proxies add a few.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

pub struct AppState {
    pub node: Arc<Node>,
    /// How long a request body may take to arrive once its head has.
    pub body_read_timeout: Duration,
    /// Serve `GET /metrics` on this listener (`--metrics main`).
    pub metrics_on_main: bool,
    /// The web console's sessions.
    pub console: crate::console::Console,
}

/// Where `GET /metrics` is served (`--metrics`, `--metrics-listen`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsExposure {
    /// Not at all.
    Off,
    /// On the API listener, beside `/health`.
    Main,
    /// On a listener of its own (plain HTTP), and not on the API's.
    Listen(std::net::SocketAddr),
}

#[derive(Clone)]
pub(crate) struct RequestId(pub(crate) String);

pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new();
    if state.metrics_on_main {
        router = router.route("/metrics", get(metrics));
    }
    router
        .route("/", post(aws).fallback(not_found))
        .route("/health", get(health))
        .route("/pki/{name}/{file}", get(pki))
        .route("/.well-known/acme-challenge/{token}", get(acme_challenge))
        .route("/operator/seal-status", get(operator::seal_status))
        .route("/operator/init", post(operator::init))
        .route("/operator/unseal", post(operator::unseal))
        .route(
            "/operator/generate-root/challenge",
            post(operator::root_challenge),
        )
        .route("/operator/generate-root", post(operator::generate_root))
        .merge(crate::console::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), header_limits))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// The router of a listener serving `GET /metrics` only (`--metrics-listen`).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "this listener serves GET /metrics only\n",
            )
        })
        .with_state(state)
}

/// `GET /metrics`: Prometheus' text format. Unauthenticated, as Prometheus scrapes; what it
/// shows is counts, never names or values (restrict it with `--metrics-listen` or turn it off).
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        metrics::render(&state.node).await,
    )
        .into_response()
}

/// Every answer carries `x-amzn-RequestId`, errors included. A request's reads of the
/// store's cache share one freshness barrier (a cluster's round trip; see `one_barrier`).
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = kura_store::one_barrier(next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

/// `GET /health`: the process is up (and whether it is sealed). `GET /health?ready`: it can
/// serve requests now (unsealed, its database answers, audit records can be written), so a
/// load balancer can take a node out while it is sealed or its database is away; the body
/// names each check and the failed ones.
async fn health(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    let ready = uri.query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "ready" || p.starts_with("ready="))
    });
    let json = [("content-type", "application/json")];
    let Some(live) = state.node.live() else {
        let status = if ready {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        let body = if ready {
            r#"{"status":"sealed","sealed":"unavailable","failed":["sealed"]}"#
        } else {
            r#"{"status":"sealed"}"#
        };
        return (status, json, body).into_response();
    };
    if !ready {
        return (json, r#"{"status":"ok"}"#).into_response();
    }
    let mut failed = Vec::new();
    let database = match live.service.store().ping().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(
                detail = e.detail.as_deref().unwrap_or(""),
                "readiness: the database does not answer"
            );
            failed.push("database");
            "unavailable"
        }
    };
    let audit = match live.service.audit_writable() {
        Ok(()) => "ok",
        Err(why) => {
            tracing::warn!(detail = %why, "readiness: the audit trail cannot be written");
            failed.push("audit");
            "unavailable"
        }
    };
    let ok = failed.is_empty();
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "unavailable" },
        "sealed": "ok",
        "database": database,
        "audit": audit,
        "failed": failed,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, json, body.to_string()).into_response()
}

/// The answer to every API request while the node is sealed: nothing can be read or
/// recorded without the root key.
fn sealed_response() -> Response {
    let mut r = error_response(&Error::new(
        ErrorCode::ServiceUnavailable,
        "kura is sealed: an operator must unseal it (`kura operator unseal`) before it answers requests.",
    ));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r
}

/// Anything but `POST /` and `GET /health`: refused, and audited like every other request
/// (probes of other paths are worth knowing about).
async fn not_found(
    State(state): State<Arc<AppState>>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    transport: Option<axum::Extension<Transport>>,
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
        tls: transport.is_some_and(|t| t.tls),
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
        tls: is_tls(req.extensions()),
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
    tls: bool,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

/// Answers `e` (with `status` instead of its usual one) once the service has recorded it.
async fn refuse(
    state: &AppState,
    r: Refused<'_>,
    e: Error,
    status: Option<StatusCode>,
) -> Response {
    let Some(live) = state.node.live() else {
        return sealed_response();
    };
    let info = request_info(r.request_id, r.peer, r.tls, r.headers);
    let resource: String = r.uri.path().chars().take(2048).collect();
    let action = format!("http:{}", r.method);
    let answered = live
        .service
        .refuse(&info, None, &action, &resource, e.clone())
        .await;
    let mut response = error_response(&answered);
    if let Some(status) = status.filter(|_| answered == e) {
        *response.status_mut() = status;
        // Whatever of the request is still unread is not wanted: do not wait for it.
        response
            .headers_mut()
            .insert("connection", HeaderValue::from_static("close"));
    }
    response
}

/// `GET /.well-known/acme-challenge/<token>`: an ACME server validating an `http-01`
/// challenge of a kura-acme-certificate rotation in flight on this node. Unauthenticated, as
/// the ACME server calls it; a key authorization is public by design (RFC 8555 §8.3).
async fn acme_challenge(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    let answer = state
        .node
        .live()
        .and_then(|live| live.service.acme_http01(&token));
    match answer {
        Some(key_authorization) => (
            [("content-type", "application/octet-stream")],
            key_authorization,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no ACME order in flight here has this token\n",
        )
            .into_response(),
    }
}

/// `GET /pki/<ca>/ca.pem` (the CA's certificate, PEM) and `GET /pki/<ca>/crl` (its CRL, DER,
/// as RFC 5280 has HTTP CRL distribution points serve it). Unauthenticated, as clients that
/// verify certificates fetch them; neither holds anything secret.
async fn pki(
    State(state): State<Arc<AppState>>,
    axum::extract::Path((name, file)): axum::extract::Path<(String, String)>,
) -> Response {
    let Some(live) = state.node.live() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "kura is sealed\n").into_response();
    };
    let svc = &live.service;
    let answer = match file.as_str() {
        "ca.pem" => svc
            .ca_certificate_pem(&name)
            .await
            .map(|pem| ([("content-type", "application/x-pem-file")], pem).into_response()),
        "crl" => svc
            .ca_crl_der(&name)
            .await
            .map(|der| ([("content-type", "application/pkix-crl")], der).into_response()),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "kura serves /pki/<ca>/ca.pem and /pki/<ca>/crl\n",
            )
                .into_response();
        }
    };
    match answer {
        Ok(r) => r,
        Err(e) if e.code == ErrorCode::InternalServiceError => {
            tracing::error!(authority = %name, detail = e.detail.as_deref().unwrap_or(""), "cannot serve a CA file");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
        Err(e) => (StatusCode::NOT_FOUND, format!("{}\n", e.message)).into_response(),
    }
}

fn error_response(e: &Error) -> Response {
    let body = serde_json::json!({"__type": e.code.as_str(), "message": e.message});
    let status = aws::status_of(e.code);
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

async fn aws(
    State(state): State<Arc<AppState>>,
    axum::Extension(RequestId(request_id)): axum::Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    req: Request,
) -> Response {
    let started = std::time::Instant::now();
    let operation = crate::metrics::operation_label(
        req.headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let response = answer(state, request_id, peer, req).await;
    let outcome = if response.status().is_success() {
        "success"
    } else {
        response
            .headers()
            .get("x-amzn-ErrorType")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("error")
    };
    crate::metrics::request(operation, outcome, started.elapsed().as_secs_f64());
    response
}

async fn answer(
    state: Arc<AppState>,
    request_id: String,
    peer: std::net::SocketAddr,
    req: Request,
) -> Response {
    let Some(live) = state.node.live() else {
        return sealed_response();
    };
    let (parts, body) = req.into_parts();
    let info = request_info(request_id, peer, is_tls(&parts.extensions), &parts.headers);
    let body = read_body(&parts.headers, body, state.body_read_timeout).await;
    let req = Received { live, info, parts };
    if sts::is_query_request(&req.parts.headers)
        && let Ok(body) = &body
    {
        return sts::serve(req, body).await;
    }
    aws::serve(req, body).await
}

/// A request as both doors (awsJson and STS's query protocol) take it: what authenticating it
/// needs besides the body.
struct Received {
    live: Arc<Live>,
    info: RequestInfo,
    parts: axum::http::request::Parts,
}

impl Received {
    /// Who signed the request for `service`.
    async fn authenticate(&self, body: &[u8], service: &str) -> Result<Principal> {
        let incoming = auth::Incoming {
            method: &self.parts.method,
            uri: &self.parts.uri,
            headers: &self.parts.headers,
            body,
        };
        let live = &self.live;
        auth::authenticate(&live.service, &live.signing_keys, incoming, service).await
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

/// Whether the connection a request came on is a TLS one.
pub(crate) fn is_tls(extensions: &axum::http::Extensions) -> bool {
    extensions.get::<Transport>().is_some_and(|t| t.tls)
}

/// What the door knows of a request before reading it: where it came from, over what, and
/// which key it claims to be signed with (recorded when authentication fails).
pub(crate) fn request_info(
    id: String,
    peer: std::net::SocketAddr,
    tls: bool,
    headers: &HeaderMap,
) -> RequestInfo {
    let meta = RequestMeta {
        source_ip: Some(peer.ip()),
        secure_transport: tls,
        user_agent: headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect()),
    };
    let mut info = RequestInfo::new(id, meta);
    info.claimed_key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .map(|k| k.chars().take(128).collect::<String>())
        .unwrap_or_default();
    info
}

/// The AWS door's codec on its own, for the micro-benchmarks in `benches/codec.rs`: not an API.
#[doc(hidden)]
pub mod bench_support {
    use kura_core::Result;

    use crate::service::{Operation, Outcome};

    /// `X-Amz-Target` and body to the typed operation, as the door decodes a request.
    pub fn decode(target: &str, body: &[u8]) -> Result<Operation> {
        super::aws::target(target).and_then(|(family, name)| super::aws::decode(family, name, body))
    }

    /// An operation's answer to the response body, as the door encodes it.
    pub fn encode(outcome: Outcome) -> Result<Vec<u8>> {
        super::aws::encode(outcome)
    }
}
