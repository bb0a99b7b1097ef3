//! The frame every console page shares, and small pieces pages reuse.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kura_core::{Error, ErrorCode, Timestamp};
use maud::{DOCTYPE, Markup, html};

use super::Ctx;

/// A whole page: header with navigation (when signed in), the flash message, `body`.
pub(crate) fn page(title: &str, ctx: Option<&Ctx>, body: Markup, status: StatusCode) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · kura" }
                link rel="icon" href="/console/assets/icon.svg";
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                header.top {
                    a.brand href="/console/" { img src="/console/assets/icon.svg" alt="" width="20" height="20"; "kura" }
                    @if let Some(ctx) = ctx {
                        nav aria-label="Main" {
                            a href="/console/secrets" { "Secrets" }
                            a href="/console/audit" { "Audit" }
                            a href="/console/users" { "Users" }
                            a href="/console/functions" { "Functions" }
                            a href="/console/targets" { "Notifications" }
                            a href="/console/certificates" { "Certificates" }
                        }
                        div.who {
                            span.user title=(ctx.principal.arn) { (ctx.principal.user_name) }
                            form method="post" action="/console/sign-out" {
                                input type="hidden" name="csrf" value=(ctx.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main {
                    @if let Some(f) = ctx.and_then(|c| c.flash.as_ref()) {
                        div class={ "flash " (if f.ok { "ok" } else { "error" }) } role=(if f.ok { "status" } else { "alert" }) {
                            (f.text)
                        }
                    }
                    (body)
                }
            }
        }
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

pub(crate) fn ok(title: &str, ctx: &Ctx, body: Markup) -> Response {
    page(title, Some(ctx), body, StatusCode::OK)
}

/// The page for a request the node cannot serve now (its database unreachable, say).
pub(crate) fn unavailable(e: &Error) -> Response {
    page(
        "Unavailable",
        None,
        html! {
            h1 { "The console cannot answer now" }
            (error_box(e))
            p { "Try again in a moment." }
        },
        StatusCode::SERVICE_UNAVAILABLE,
    )
}

/// The page of a sealed node.
pub(crate) fn sealed() -> Response {
    page(
        "Sealed",
        None,
        html! {
            h1 { "kura is sealed" }
            p { "An operator must unseal it (" code { "kura operator unseal" } ") before anyone can sign in." }
        },
        StatusCode::SERVICE_UNAVAILABLE,
    )
}

/// An error as the console shows it: the AWS error code, then kura's message.
pub(crate) fn error_text(e: &Error) -> String {
    format!("{}: {}", e.code.as_str(), e.message)
}

pub(crate) fn error_box(e: &Error) -> Markup {
    html! {
        div.flash.error role="alert" { (error_text(e)) }
    }
}

/// The status a page answering with `e` carries.
pub(crate) fn status_of(e: &Error) -> StatusCode {
    match e.code {
        ErrorCode::AccessDenied => StatusCode::FORBIDDEN,
        ErrorCode::ResourceNotFound => StatusCode::NOT_FOUND,
        ErrorCode::InternalServiceError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A page that could not be built: what went wrong, and the way back.
pub(crate) fn failed(title: &str, ctx: &Ctx, e: &Error) -> Response {
    page(
        title,
        Some(ctx),
        html! {
            h1 { (title) }
            (error_box(e))
            p { a href="/console/secrets" { "Back to secrets" } }
        },
        status_of(e),
    )
}

/// A date as `2026-12-01 14:05 UTC`, machine-readable in `datetime`.
pub(crate) fn time(t: Timestamp) -> Markup {
    match chrono::DateTime::from_timestamp_millis(t.millis()) {
        Some(d) => html! {
            time datetime=(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
                (d.format("%Y-%m-%d %H:%M UTC"))
            }
        },
        None => html! { "—" },
    }
}

/// A date kept at day granularity (last accessed), as `2026-12-01`.
pub(crate) fn opt_day(t: Option<Timestamp>) -> Markup {
    match t.and_then(|t| chrono::DateTime::from_timestamp_millis(t.millis())) {
        Some(d) => html! { time datetime=(d.format("%Y-%m-%d")) { (d.format("%Y-%m-%d")) } },
        None => html! { span.muted { "—" } },
    }
}

/// A moment to the second, for the audit trail.
pub(crate) fn instant(t: Timestamp) -> Markup {
    match chrono::DateTime::from_timestamp_millis(t.millis()) {
        Some(d) => html! {
            time datetime=(d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)) {
                (d.format("%Y-%m-%d %H:%M:%S"))
            }
        },
        None => html! { "—" },
    }
}

pub(crate) fn opt_time(t: Option<Timestamp>) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { span.muted { "—" } },
    }
}

/// A hidden CSRF field, for every state-changing form.
pub(crate) fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}
