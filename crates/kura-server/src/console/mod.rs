//! The web console at `/console/`: server-rendered pages (maud), one embedded stylesheet, no
//! script at all, so the Content-Security-Policy allows none. It is one more door: every
//! action is an [`Operation`] run through [`Service::call`](crate::service::Service::call) as
//! the signed-in user, so the user's policies decide and the audit trail records it exactly
//! as it would an API call. The console never reads the store itself (sign-in aside, which
//! checks a key as SigV4 does).

mod admin;
mod audit;
mod certificates;
mod flash;
mod form;
mod layout;
mod schedule;
mod secret;
mod secrets;
pub mod session;
mod signin;
mod users;
mod wizard;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use kura_core::{Error, ErrorCode};
use zeroize::Zeroizing;

use crate::http::AppState;
use crate::node::Live;
use crate::service::{Caller, Operation, Outcome, Principal};
use flash::Flash;
use session::Current;
pub use session::{Console, Settings};

/// The session cookie; its path keeps it away from the API.
const COOKIE: &str = "kura_console";

/// No script, no frames, nothing from elsewhere: forms post back here only.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(home))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/icon.svg", get(icon))
        .route("/console/sign-in", get(signin::form).post(signin::submit))
        .route("/console/sign-out", axum::routing::post(signin::sign_out))
        .route("/console/secrets", get(secrets::list))
        .route(
            "/console/secrets/new",
            get(secrets::new_form).post(secrets::create),
        )
        .route(
            "/console/secrets/new/{kind}",
            get(wizard::form).post(wizard::submit),
        )
        .route("/console/secret", get(secret::show))
        .route(
            "/console/secret/reveal",
            axum::routing::post(secret::reveal),
        )
        .route(
            "/console/secret/value",
            axum::routing::post(secret::put_value),
        )
        .route(
            "/console/secret/rotate",
            axum::routing::post(secret::rotate),
        )
        .route(
            "/console/secret/delete",
            axum::routing::post(secret::delete),
        )
        .route(
            "/console/secret/restore",
            axum::routing::post(secret::restore),
        )
        .route(
            "/console/secret/label",
            axum::routing::post(secret::move_label),
        )
        .route(
            "/console/secret/policy",
            axum::routing::post(secret::put_policy),
        )
        .route(
            "/console/secret/policy/delete",
            axum::routing::post(secret::delete_policy),
        )
        .route("/console/secret/tag", axum::routing::post(secret::tag))
        .route("/console/secret/untag", axum::routing::post(secret::untag))
        .route(
            "/console/secret/rotation",
            axum::routing::post(secret::set_rotation),
        )
        .route(
            "/console/secret/rotation/off",
            axum::routing::post(secret::rotation_off),
        )
        .route("/console/audit", get(audit::trail))
        .route(
            "/console/functions",
            get(admin::functions).post(admin::create_function),
        )
        .route(
            "/console/functions/delete",
            axum::routing::post(admin::delete_function),
        )
        .route(
            "/console/targets",
            get(admin::targets).post(admin::create_target),
        )
        .route(
            "/console/targets/delete",
            axum::routing::post(admin::delete_target),
        )
        .route("/console/certificates", get(certificates::list))
        .route(
            "/console/certificates/ca",
            get(certificates::show_ca).post(certificates::create_ca),
        )
        .route(
            "/console/certificates/template",
            axum::routing::post(certificates::create_template),
        )
        .route(
            "/console/certificates/revoke",
            axum::routing::post(certificates::revoke),
        )
        .route("/console/users", get(users::list))
        .route("/console/users/new", axum::routing::post(users::create))
        .route("/console/user", get(users::show))
        .route("/console/user/key", axum::routing::post(users::create_key))
        .route(
            "/console/user/key/update",
            axum::routing::post(users::update_key),
        )
        .route(
            "/console/user/policy",
            axum::routing::post(users::put_policy),
        )
        .route(
            "/console/user/policy/delete",
            axum::routing::post(users::delete_policy),
        )
        .route("/console/user/delete", axum::routing::post(users::delete))
        .layer(middleware::from_fn(flash::carry))
        .layer(middleware::map_response(harden))
}

/// Headers every console answer carries: pages are never cached (they may show a value) nor
/// framed, and run no script.
async fn harden(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on the
    // console's own form posts, and sign-in refuses any Origin but this server's.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

async fn home(ctx: std::result::Result<Ctx, Response>) -> Response {
    match ctx {
        Ok(_) => Redirect::to("/console/secrets").into_response(),
        Err(r) => r,
    }
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("console.css"),
    )
        .into_response()
}

async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("icon.svg"),
    )
        .into_response()
}

/// Form fields or query parameters, in order, and the files a form sent. Values are zeroized
/// when dropped: a form may carry a secret value or a secret key.
#[derive(Default)]
pub(crate) struct Params {
    fields: Vec<(String, Zeroizing<String>)>,
    files: Vec<form::Upload>,
}

impl Params {
    /// An `application/x-www-form-urlencoded` body or a query string.
    pub(crate) fn parse(bytes: &[u8]) -> Params {
        Params {
            fields: url::form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), form::field_text(v.into_owned())))
                .collect(),
            files: Vec::new(),
        }
    }

    /// The file sent in the field `name`, if one was chosen.
    pub(crate) fn file(&self, name: &str) -> Option<&form::Upload> {
        self.files.iter().find(|f| f.field == name)
    }

    pub(crate) fn query(uri: &axum::http::Uri) -> Params {
        Params::parse(uri.query().unwrap_or("").as_bytes())
    }

    /// The first value of `name`, trimmed of nothing; "" when absent.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// The first value of `name` unless it is empty or blank.
    pub(crate) fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name).trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// Every field, in order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub(crate) fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `s` percent-encoded for a query string.
pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The signed-in user's request: their session, and what the pipeline needs to know of the
/// request. Extracting it redirects to the sign-in page when there is no live session.
pub(crate) struct Ctx {
    live: Arc<Live>,
    state: Arc<AppState>,
    sid: String,
    pub principal: Principal,
    pub csrf: String,
    pub flash: Option<Flash>,
    flash_out: flash::Slot,
    peer: SocketAddr,
    tls: bool,
    headers: HeaderMap,
}

/// The value of the cookie `name`, if the request carries it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
        .map(str::to_string)
        .next()
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

fn peer_of(parts: &Parts) -> SocketAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

impl FromRequestParts<Arc<AppState>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        let Some(live) = state.node.live() else {
            return Err(layout::sealed());
        };
        let Some(sid) = session_id(&parts.headers) else {
            return Err(Redirect::to("/console/sign-in").into_response());
        };
        let store = &*live.service.store;
        let Some(Current { principal, csrf }) = state
            .console
            .use_session(store, &sid)
            .await
            .map_err(|e| layout::unavailable(&e))?
        else {
            return Err(Redirect::to("/console/sign-in?ended=1").into_response());
        };
        // A key deactivated or deleted (or root disabled) ends the sessions it opened.
        if !crate::http::auth::key_still_valid(&live.service, &principal).await {
            state
                .console
                .end(store, &sid)
                .await
                .map_err(|e| layout::unavailable(&e))?;
            return Err(Redirect::to("/console/sign-in?ended=1").into_response());
        }
        // Present whenever the console's router runs (`flash::carry`).
        let flash_out = parts
            .extensions
            .get::<flash::Slot>()
            .cloned()
            .unwrap_or_default();
        let flash = flash_out.take(&parts.headers, &csrf);
        Ok(Ctx {
            live,
            state: state.clone(),
            sid,
            principal,
            csrf,
            flash,
            flash_out,
            peer: peer_of(parts),
            tls: crate::http::is_tls(&parts.extensions),
            headers: parts.headers.clone(),
        })
    }
}

impl Ctx {
    fn request_info(&self) -> crate::service::RequestInfo {
        crate::http::request_info(
            uuid::Uuid::new_v4().to_string(),
            self.peer,
            self.tls,
            &self.headers,
        )
    }

    /// The service's clock (a test server's manual one in tests).
    pub(crate) fn now(&self) -> kura_core::Timestamp {
        self.live.service.clock.now()
    }

    /// Runs `op` as the signed-in user, through the pipeline: authorized and audited as an
    /// API call (each call its own request id and record).
    pub(crate) async fn call(&self, op: Operation) -> kura_core::Result<Outcome> {
        let caller = Caller::new(self.principal.clone(), self.request_info());
        self.live.service.call(&caller, op).await
    }

    /// Refuses a state-changing form whose CSRF token is missing or wrong (403), recording
    /// the refusal in the audit trail.
    pub(crate) async fn check_csrf(&self, form: &Params, path: &str) -> Result<(), Response> {
        let sent = form.get("csrf");
        if aws_lc_rs::constant_time::verify_slices_are_equal(sent.as_bytes(), self.csrf.as_bytes())
            .is_ok()
        {
            return Ok(());
        }
        let e = Error::new(
            ErrorCode::AccessDenied,
            "The form's CSRF token is missing or wrong: it did not come from a console page of this session. Reload the page and submit it again.",
        );
        let info = self.request_info();
        let e = self
            .live
            .service
            .refuse(&info, Some(&self.principal), "console:POST", path, e)
            .await;
        let body = layout::page(
            "Request refused",
            Some(self),
            maud::html! {
                h1 { "Request refused" }
                (layout::error_box(&e))
                p { a href="/console/secrets" { "Back to secrets" } }
            },
            StatusCode::FORBIDDEN,
        );
        Err(body)
    }

    /// Shows `flash` on the next page this session sees.
    pub(crate) fn flash(&self, ok: bool, text: impl Into<String>) {
        let flash = Flash {
            ok,
            text: text.into(),
        };
        self.flash_out.set(&self.csrf, &flash);
    }

    pub(crate) fn flash_error(&self, e: &Error) {
        self.flash(false, layout::error_text(e));
    }
}

/// Unpacks the outcome of `Ctx::call` for one operation: `call!(ctx, ListSecrets, req)`.
macro_rules! call {
    ($ctx:expr, $op:ident, $req:expr) => {
        match $ctx.call($crate::service::Operation::$op($req)).await {
            Ok($crate::service::Outcome::$op(r)) => Ok(r),
            Ok(_) => Err(kura_core::Error::internal(concat!(
                "the console got another outcome than ",
                stringify!($op)
            ))),
            Err(e) => Err(e),
        }
    };
}
pub(crate) use call;
