//! Sign-in with an access key, and sign-out.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use kura_core::{Error, ErrorCode};
use maud::{Markup, html};

use super::{COOKIE, Ctx, Params, layout};
use crate::http::{AppState, Transport};
use crate::service::Caller;

/// What the failures say, and what the audit trail calls the attempt.
const ACTION: &str = "console:SignIn";

fn form_page(notice: Option<Markup>, status: StatusCode) -> Response {
    layout::page(
        "Sign in",
        None,
        html! {
            div.signin {
                h1 { "Sign in to kura" }
                @if let Some(n) = notice { (n) }
                form method="post" action="/console/sign-in" {
                    label for="access_key_id" { "Access key ID" }
                    input #access_key_id name="access_key_id" autocomplete="username" required spellcheck="false" autocapitalize="off";
                    label for="secret_access_key" { "Secret access key" }
                    input #secret_access_key name="secret_access_key" type="password" autocomplete="current-password" required;
                    button.primary type="submit" { "Sign in" }
                }
                p.hint {
                    "Use an access key of your kura user. The first one is root's, in the "
                    code { "root-credentials" } " file of the data directory."
                }
            }
        },
        status,
    )
}

pub(super) async fn form(uri: Uri) -> Response {
    let q = Params::query(&uri);
    let notice = if !q.get("ended").is_empty() {
        Some(
            html! { div.flash.info role="status" { "Your session ended (it was idle too long, reached its time limit, or its key was deactivated). Sign in again." } },
        )
    } else if !q.get("signed_out").is_empty() {
        Some(html! { div.flash.ok role="status" { "You signed out." } })
    } else {
        None
    };
    form_page(notice, StatusCode::OK)
}

pub(super) async fn submit(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    transport: Option<Extension<Transport>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(live) = state.node.live() else {
        return layout::sealed();
    };
    let tls = transport.is_some_and(|t| t.tls);
    let form = Params::parse(&body);
    let key_id = form.get("access_key_id").trim();
    let mut info = crate::http::request_info(uuid::Uuid::new_v4().to_string(), peer, tls, &headers);
    info.claimed_key = key_id.chars().take(128).collect();

    let refused = |e: Error, status: StatusCode| {
        let info = info.clone();
        let service = live.service.clone();
        async move {
            let e = service.refuse(&info, None, ACTION, "console", e).await;
            form_page(Some(layout::error_box(&e)), status)
        }
    };
    // Login CSRF: a page elsewhere must not sign this browser in (to its own key). Browsers
    // send Origin with every form POST; it must name this server.
    if !same_origin(&headers) {
        let e = Error::new(
            ErrorCode::AccessDenied,
            "This sign-in form was sent from another site (its Origin is not this server). Open the console's own sign-in page.",
        );
        return refused(e, StatusCode::FORBIDDEN).await;
    }
    if state.console.throttled(peer.ip()) {
        let e = Error::new(
            ErrorCode::LimitExceeded,
            "Too many failed sign-ins from your address: wait 5 minutes, then try again.",
        );
        return refused(e, StatusCode::TOO_MANY_REQUESTS).await;
    }
    let principal = match crate::http::auth::sign_in(
        &live.service,
        key_id,
        form.get("secret_access_key"),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            state.console.failed(peer.ip());
            return refused(e, StatusCode::UNAUTHORIZED).await;
        }
    };
    // The sign-in itself is recorded as the user asking who they are, through the pipeline.
    let caller = Caller::new(principal.clone(), info.clone());
    let op = crate::service::Operation::GetCallerIdentity(crate::service::types::Empty {});
    if let Err(e) = live.service.call(&caller, op).await {
        return form_page(Some(layout::error_box(&e)), layout::status_of(&e));
    }
    let id = match state.console.open(&*live.service.store, principal).await {
        Ok(id) => id,
        Err(e) => return form_page(Some(layout::error_box(&e)), StatusCode::SERVICE_UNAVAILABLE),
    };
    let secure = if tls { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict{secure}");
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/console/secrets"),
    )
        .into_response()
}

/// Whether the request's `Origin`, if it has one, is the host it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

pub(super) async fn sign_out(
    ctx: Result<Ctx, Response>,
    transport: Option<Extension<Transport>>,
    body: Bytes,
) -> Response {
    let ctx = match ctx {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(r) = ctx
        .check_csrf(&Params::parse(&body), "/console/sign-out")
        .await
    {
        return r;
    }
    if let Err(e) = ctx
        .state
        .console
        .end(&*ctx.live.service.store, &ctx.sid)
        .await
    {
        return layout::unavailable(&e);
    }
    let secure = if transport.is_some_and(|t| t.tls) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/console/sign-in?signed_out=1"),
    )
        .into_response()
}
