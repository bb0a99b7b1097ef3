//! Rotation functions and notification targets (Kura.ListRotationFunctions,
//! CreateRotationFunction, DeleteRotationFunction, ListNotificationTargets,
//! CreateNotificationTarget, DeleteNotificationTarget): the operations `kura function` and
//! `kura notify` call, for administrators. A signing secret kura generates is shown once, in
//! the answer to the POST that made it.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{Ctx, Params, call, layout};
use crate::service::rotation::Event;
use crate::service::types::{
    CreateNotificationTargetRequest, CreateRotationFunctionRequest, Empty, NameRequest, SecretText,
    TargetIdRequest,
};

pub(super) async fn functions(ctx: Ctx) -> Response {
    functions_page(&ctx, None, None).await
}

/// The functions page; `created` is a function just made and the signing secret kura
/// generated for it, shown this once.
async fn functions_page(
    ctx: &Ctx,
    created: Option<(String, String)>,
    error: Option<String>,
) -> Response {
    let list = call!(ctx, ListRotationFunctions, Empty {});
    let body = html! {
        h1 { "Rotation functions" }
        @if let Some((name, secret)) = &created {
            div.flash.ok role="status" {
                p { "Created the function " (name) ". Copy its signing secret now: it is not shown again." }
                code #signing-secret { (secret) }
            }
        }
        @if let Some(e) = &error { div.flash.error role="alert" { (e) } }
        @match &list {
            Err(e) => (layout::error_box(e)),
            Ok(r) => div.scroll { table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Runs" } th scope="col" { "Attempts" } th scope="col" { span.sr { "Actions" } } } }
                tbody { @for f in &r.rotation_functions { tr {
                    td { code { (f.name) } }
                    td { (f.kind) @if f.built_in { " " span.badge { "built in" } } }
                    td.wrap {
                        @if let Some(cmd) = &f.command { code { (cmd.join(" ")) } }
                        @else if let Some(u) = &f.url { code { (u) } }
                        @else { span.muted { "—" } }
                    }
                    td { (f.max_attempts) " × " (f.timeout_seconds) " s" }
                    td { @if !f.built_in {
                        form.inline method="post" action="/console/functions/delete" {
                            (layout::csrf(ctx))
                            input type="hidden" name="name" value=(f.name);
                            button type="submit" aria-label={ "Delete function " (f.name) } { "Delete" }
                        }
                    } }
                } } }
            } },
        }
        section aria-labelledby="new-function" {
            h2 #new-function { "Create a function" }
            form.stack method="post" action="/console/functions" {
                (layout::csrf(ctx))
                div.field {
                    label for="fn_name" { "Name" }
                    input #fn_name name="name" required maxlength="64" spellcheck="false" autocapitalize="off";
                }
                div.field {
                    label for="fn_type" { "Type" }
                    select #fn_type name="type" {
                        option value="webhook" { "webhook: the step event POSTed to a URL" }
                        option value="command" { "command: a program run on the kura server (administrators only)" }
                        option value="kura-password" { "kura-password with your own password rules" }
                    }
                }
                div.field {
                    label for="fn_url" { "URL (webhook)" }
                    input #fn_url name="url" type="url" placeholder="https://rotator.internal/kura" spellcheck="false";
                }
                div.field {
                    label for="fn_command" { "Program and arguments (command), one a line" }
                    textarea #fn_command name="command" rows="3" spellcheck="false" placeholder="/usr/bin/python3\n/opt/rotation/rotate.py" {}
                }
                div.field {
                    label for="fn_length" { "Password length (kura-password)" }
                    input #fn_length name="length" type="number" min="1" max="4096" placeholder="32";
                }
                div.row {
                    div.field {
                        label for="fn_timeout" { "Timeout (seconds, optional)" }
                        input #fn_timeout name="timeout" type="number" min="1";
                    }
                    div.field {
                        label for="fn_attempts" { "Attempts (optional)" }
                        input #fn_attempts name="attempts" type="number" min="1";
                    }
                }
                div.actions { button.primary type="submit" { "Create function" } }
            }
        }
    };
    let status = match (&list, &error) {
        (Err(e), _) => layout::status_of(e),
        (_, Some(_)) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    layout::page("Rotation functions", Some(ctx), body, status)
}

fn number(form: &Params, field: &str, what: &str) -> Result<Option<i64>, String> {
    match form.opt(field) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("The {what} {v:?} is not a whole number.")),
    }
}

pub(super) async fn create_function(ctx: Ctx, body: Bytes) -> Response {
    let form = Params::parse(&body);
    if let Err(r) = ctx.check_csrf(&form, "/console/functions").await {
        return r;
    }
    let name = form.get("name").trim().to_string();
    let kind = form.get("type").to_string();
    let numbers = (|| {
        Ok::<_, String>((
            number(&form, "timeout", "timeout")?,
            number(&form, "attempts", "number of attempts")?,
            number(&form, "length", "password length")?,
        ))
    })();
    let (timeout, attempts, length) = match numbers {
        Ok(n) => n,
        Err(why) => return functions_page(&ctx, None, Some(why)).await,
    };
    let command: Vec<String> = form
        .get("command")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let req = CreateRotationFunctionRequest {
        name: name.clone(),
        kind: kind.clone(),
        command: (kind == "command").then_some(command),
        environment: None,
        url: (kind == "webhook").then(|| form.get("url").trim().to_string()),
        signing_secret: None,
        password_rules: (kind == "kura-password" && length.is_some()).then(|| {
            crate::service::types::GetRandomPasswordRequest {
                password_length: length,
                ..Default::default()
            }
        }),
        timeout_seconds: timeout,
        max_attempts: attempts,
        policy: None,
    };
    match call!(ctx, CreateRotationFunction, req) {
        Ok(r) => match r.signing_secret {
            Some(SecretText(s)) => functions_page(&ctx, Some((name, s.to_string())), None).await,
            None => {
                ctx.flash(true, format!("Created the function {name}."));
                Redirect::to("/console/functions").into_response()
            }
        },
        Err(e) => functions_page(&ctx, None, Some(layout::error_text(&e))).await,
    }
}

pub(super) async fn delete_function(ctx: Ctx, body: Bytes) -> Response {
    let form = Params::parse(&body);
    if let Err(r) = ctx.check_csrf(&form, "/console/functions/delete").await {
        return r;
    }
    let name = form.get("name").to_string();
    match call!(
        ctx,
        DeleteRotationFunction,
        NameRequest { name: name.clone() }
    ) {
        Ok(_) => ctx.flash(true, format!("Deleted the function {name}.")),
        Err(e) => ctx.flash_error(&e),
    }
    Redirect::to("/console/functions").into_response()
}

pub(super) async fn targets(ctx: Ctx) -> Response {
    targets_page(&ctx, None, None).await
}

/// "30, 7, 1" (commas or spaces) as days; the service checks their range.
fn days(text: &str) -> Result<Vec<i64>, String> {
    text.split([',', ' '])
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse().map_err(|_| {
                format!("Days before expiry: {d:?} is not a whole number of days; write them as 30, 7, 1.")
            })
        })
        .collect()
}

fn event_boxes() -> Markup {
    html! {
        fieldset {
            legend { "Events" }
            @for e in Event::ALL {
                div.field.check {
                    input id={ "ev-" (e.as_str()) } type="checkbox" name="event" value=(e.as_str());
                    label for={ "ev-" (e.as_str()) } { (e.as_str()) }
                }
            }
        }
    }
}

async fn targets_page(
    ctx: &Ctx,
    created: Option<(String, String)>,
    error: Option<String>,
) -> Response {
    let list = call!(ctx, ListNotificationTargets, Empty {});
    let body = html! {
        h1 { "Notification targets" }
        @if let Some((id, secret)) = &created {
            div.flash.ok role="status" {
                p { "Created the target " (id) ". Copy its signing secret now: it is not shown again." }
                code #signing-secret { (secret) }
            }
        }
        @if let Some(e) = &error { div.flash.error role="alert" { (e) } }
        @match &list {
            Err(e) => (layout::error_box(e)),
            Ok(r) if r.notification_targets.is_empty() => p.empty { "No notification targets." },
            Ok(r) => div.scroll { table {
                thead { tr { th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "Created" } th scope="col" { span.sr { "Actions" } } } }
                tbody { @for t in &r.notification_targets { tr {
                    td.wrap { code { (t.url) } }
                    td {
                        (t.events.join(", "))
                        @if let Some(d) = &t.expiring_days {
                            " (expiring: " (d.iter().map(|d| format!("{d} d")).collect::<Vec<_>>().join(", ")) ")"
                        }
                    }
                    td { (layout::time(t.created_date)) }
                    td {
                        form.inline method="post" action="/console/targets/delete" {
                            (layout::csrf(ctx))
                            input type="hidden" name="target_id" value=(t.target_id);
                            button type="submit" aria-label={ "Delete target " (t.url) } { "Delete" }
                        }
                    }
                } } }
            } },
        }
        section aria-labelledby="new-target" {
            h2 #new-target { "Add a target" }
            form.stack method="post" action="/console/targets" {
                (layout::csrf(ctx))
                div.field {
                    label for="target_url" { "URL" }
                    input #target_url name="url" type="url" required placeholder="https://hooks.example/kura" spellcheck="false";
                }
                (event_boxes())
                div.field {
                    label for="expiring_days" { "Days before expiry (for SecretExpiring)" }
                    input #expiring_days name="expiring_days" inputmode="numeric" placeholder="30, 7, 1" aria-describedby="expiring_days_help";
                    small #expiring_days_help { "A SecretExpiring notice goes out this many days before a secret expires; blank: 30, 7 and 1." }
                }
                div.actions { button.primary type="submit" { "Add target" } }
            }
        }
    };
    let status = match (&list, &error) {
        (Err(e), _) => layout::status_of(e),
        (_, Some(_)) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    layout::page("Notification targets", Some(ctx), body, status)
}

pub(super) async fn create_target(ctx: Ctx, body: Bytes) -> Response {
    let form = Params::parse(&body);
    if let Err(r) = ctx.check_csrf(&form, "/console/targets").await {
        return r;
    }
    // Blank: the default days (30, 7, 1) when SecretExpiring is picked.
    let expiring_days = match form.opt("expiring_days").map(|d| days(&d)).transpose() {
        Ok(d) => d,
        Err(why) => return targets_page(&ctx, None, Some(why)).await,
    };
    let req = CreateNotificationTargetRequest {
        url: form.get("url").trim().to_string(),
        events: form.all("event").map(str::to_string).collect(),
        signing_secret: None,
        expiring_days,
    };
    match call!(ctx, CreateNotificationTarget, req) {
        Ok(r) => match r.signing_secret {
            Some(SecretText(s)) => {
                targets_page(&ctx, Some((r.target.target_id, s.to_string())), None).await
            }
            None => {
                ctx.flash(true, format!("Added the target {}.", r.target.url));
                Redirect::to("/console/targets").into_response()
            }
        },
        Err(e) => targets_page(&ctx, None, Some(layout::error_text(&e))).await,
    }
}

pub(super) async fn delete_target(ctx: Ctx, body: Bytes) -> Response {
    let form = Params::parse(&body);
    if let Err(r) = ctx.check_csrf(&form, "/console/targets/delete").await {
        return r;
    }
    let id = form.get("target_id").to_string();
    match call!(
        ctx,
        DeleteNotificationTarget,
        TargetIdRequest {
            target_id: id.clone()
        }
    ) {
        Ok(_) => ctx.flash(true, format!("Deleted the target {id}.")),
        Err(e) => ctx.flash_error(&e),
    }
    Redirect::to("/console/targets").into_response()
}
