//! One secret's page (DescribeSecret, ListSecretVersionIds) and its actions: reveal the value
//! (GetSecretValue, on an explicit POST so the value is never in a URL), store a new value,
//! rotate now, delete (with a recovery window, or at once after typing the name), restore.

use axum::body::Bytes;
use axum::http::Uri;
use axum::response::{IntoResponse, Redirect, Response};
use kura_core::model::{RotationPhase, SecretRecord, ValueKind};
use maud::{Markup, html};

use super::secrets::{schedule, value_of};
use super::{Ctx, Params, call, enc, layout};
use crate::service::types::{
    DeleteSecretRequest, GetSecretValueRequest, GetSecretValueResponse,
    ListSecretVersionIdsRequest, PutSecretValueRequest, RotateSecretRequest, SecretIdRequest,
};

pub(super) async fn show(ctx: Ctx, uri: Uri) -> Response {
    let id = Params::query(&uri).get("id").to_string();
    page(&ctx, &id, None).await
}

fn href(id: &str) -> String {
    format!("/console/secret?id={}", enc(id))
}

/// The secret page, with the value when it was just revealed.
async fn page(ctx: &Ctx, id: &str, revealed: Option<GetSecretValueResponse>) -> Response {
    let described = call!(
        ctx,
        DescribeSecret,
        SecretIdRequest {
            secret_id: id.to_string()
        }
    );
    let d = match described {
        Ok(d) => d,
        Err(e) => return layout::failed("Secret", ctx, &e),
    };
    let versions = call!(
        ctx,
        ListSecretVersionIds,
        ListSecretVersionIdsRequest {
            secret_id: id.to_string(),
            max_results: Some(100),
            next_token: None,
            include_deprecated: Some(false),
        }
    );
    let s = &d.secret;
    let deleted = s.deleted_at.is_some();
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/console/secrets" { "Secrets" } " / " }
        div.titlebar {
            h1 { (s.name) }
            @if deleted { span.badge.warn { "Pending deletion" } }
        }
        div.columns {
        section aria-labelledby="details" {
            h2 #details { "Details" }
            dl.grid {
                dt { "ARN" } dd { code { (s.arn) } }
                dt { "Description" } dd { (s.description.as_deref().unwrap_or("—")) }
                dt { "Encryption key" } dd { (s.kms_key_id.as_deref().unwrap_or(crate::service::DEFAULT_KEY)) }
                dt { "Created" } dd { (layout::time(s.created_at)) }
                dt { "Last changed" } dd { (layout::time(s.changed_at)) }
                // Kept at day granularity, as AWS does.
                dt { "Last accessed" } dd { (layout::opt_day(s.accessed_at)) }
                @if let Some(purge) = s.purge_at.filter(|_| deleted) {
                    dt { "Deletion date" } dd { (layout::time(purge)) }
                }
            }
            p { a href={ "/console/audit?resource=" (enc(&s.arn)) } { "Audit trail of this secret" } }
        }
            (rotation_section(ctx, s))
        }
        (value_section(ctx, s, revealed.as_ref()))
        section aria-labelledby="versions" {
            h2 #versions { "Versions" }
            @match &versions {
                Err(e) => (layout::error_box(e)),
                Ok(v) => div.scroll { table {
                    thead { tr { th scope="col" { "Version" } th scope="col" { "Labels" } th scope="col" { "Created" } th scope="col" { "Last accessed" } } }
                    tbody { @for v in &v.versions { tr {
                        td { code { (v.version_id) } }
                        td { @for l in &v.version_stages { span.badge.label { (l) } " " } }
                        td { (layout::time(v.created_date)) }
                        td { (layout::opt_day(v.last_accessed_date)) }
                    } } }
                } }
            }
        }
        section aria-labelledby="tags" {
            h2 #tags { "Tags" }
            @if s.tags.is_empty() {
                p.muted { "No tags." }
            } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } } }
                    tbody { @for t in &s.tags { tr { td { (t.key) } td { (t.value) } } } }
                } }
            }
        }
        (delete_section(ctx, s))
    };
    layout::ok(&s.name, ctx, body)
}

fn value_section(ctx: &Ctx, s: &SecretRecord, revealed: Option<&GetSecretValueResponse>) -> Markup {
    let deleted = s.deleted_at.is_some();
    html! {
        section aria-labelledby="value" {
            h2 #value { "Value" }
            @if let Some(v) = revealed {
                p.muted { "Version " code { (v.version_id) } " (" (v.version_stages.join(", ")) "). Reading it was recorded in the audit trail." }
                @match v.value.kind() {
                    ValueKind::String => pre.value tabindex="0" aria-label="Secret value" { (String::from_utf8_lossy(v.value.bytes())) },
                    ValueKind::Binary => {
                        p.muted { "Binary, shown as base64:" }
                        pre.value tabindex="0" aria-label="Secret value (base64)" { (base64_of(v.value.bytes())) }
                    },
                }
                p { a href=(href(&s.name)) { "Hide value" } }
            } @else if !deleted {
                form.inline method="post" action="/console/secret/reveal" {
                    (layout::csrf(ctx))
                    input type="hidden" name="id" value=(s.name);
                    button type="submit" { "Reveal value" }
                    span.hint { " Shows AWSCURRENT; recorded as GetSecretValue." }
                }
            }
            @if !deleted {
                details {
                    summary { "Store a new value" }
                    form.stack method="post" action="/console/secret/value" {
                        (layout::csrf(ctx))
                        input type="hidden" name="id" value=(s.name);
                        div.field {
                            label for="plaintext" { "New value" }
                            textarea #plaintext name="plaintext" rows="4" required spellcheck="false" autocomplete="off" {}
                            small { "Becomes AWSCURRENT; the current value becomes AWSPREVIOUS." }
                        }
                        div.actions { button.primary type="submit" { "Store value" } }
                    }
                }
            }
        }
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn rotation_section(ctx: &Ctx, s: &SecretRecord) -> Markup {
    let r = &s.rotation;
    let function = r
        .function_arn
        .as_deref()
        .map(|a| a.rsplit(':').next().unwrap_or(a));
    html! {
        section aria-labelledby="rotation" {
            h2 #rotation { "Rotation" }
            dl.grid {
                dt { "Automatic rotation" } dd { @if r.enabled { span.badge.on { "On" } " " (schedule(s)) } @else { span.badge { "Off" } } }
                dt { "Function" } dd { (function.unwrap_or("—")) }
                @if let Some(w) = &r.duration { dt { "Window" } dd { (w) } }
                dt { "Last rotated" } dd { (layout::opt_time(r.last_rotated_at)) }
                dt { "Next rotation" } dd { (layout::opt_time(r.next_rotation_at)) }
                dt { "Status" } dd { (phase(s.run.phase)) }
                @if let Some(e) = &s.run.last_error {
                    dt { "Last error" } dd.error { (e) }
                }
            }
            @if s.deleted_at.is_none() {
                @if function.is_some() {
                    form.inline method="post" action="/console/secret/rotate" {
                        (layout::csrf(ctx))
                        input type="hidden" name="id" value=(s.name);
                        button type="submit" { "Rotate now" }
                        span.hint { " Runs the function now: a new version becomes AWSCURRENT." }
                    }
                } @else {
                    p.hint { "No rotation function is set. Give it one with " code { "kura secret rotate " (s.name) " --function kura-password" } "." }
                }
            }
        }
    }
}

fn phase(p: RotationPhase) -> Markup {
    match p {
        RotationPhase::Idle => html! { "Idle" },
        RotationPhase::InProgress => html! { span.badge { "In progress" } },
        RotationPhase::Succeeded => html! { span.badge.ok { "Succeeded" } },
        RotationPhase::Failed => html! { span.badge.warn { "Failed" } },
    }
}

fn delete_section(ctx: &Ctx, s: &SecretRecord) -> Markup {
    html! {
        section.danger aria-labelledby="delete" {
            @if s.deleted_at.is_some() {
                h2 #delete { "Restore" }
                p { "This secret is scheduled for deletion. Restoring it cancels the deletion; its versions and settings are kept." }
                form.inline method="post" action="/console/secret/restore" {
                    (layout::csrf(ctx))
                    input type="hidden" name="id" value=(s.name);
                    button.primary type="submit" { "Restore secret" }
                }
            } @else {
                h2 #delete { "Delete" }
                form.inline method="post" action="/console/secret/delete" {
                    (layout::csrf(ctx))
                    input type="hidden" name="id" value=(s.name);
                    div.field {
                        label for="days" { "Recovery window (days)" }
                        input #days type="number" name="days" min="7" max="30" value="30" required;
                    }
                    button.danger type="submit" { "Schedule deletion" }
                }
                form.inline method="post" action="/console/secret/delete" {
                    (layout::csrf(ctx))
                    input type="hidden" name="id" value=(s.name);
                    input type="hidden" name="now" value="1";
                    div.field {
                        label for="confirm" { "Delete immediately, without recovery: type " strong { (s.name) } }
                        input #confirm name="confirm" required autocomplete="off" spellcheck="false" autocapitalize="off";
                    }
                    button.danger type="submit" { "Delete now" }
                }
            }
        }
    }
}

/// Checks a secret action's form; the secret it names.
async fn checked(ctx: &Ctx, body: &Bytes, path: &str) -> Result<(Params, String), Response> {
    let form = Params::parse(body);
    ctx.check_csrf(&form, path).await?;
    let id = form.get("id").to_string();
    Ok((form, id))
}

fn back(id: &str) -> Response {
    Redirect::to(&href(id)).into_response()
}

pub(super) async fn reveal(ctx: Ctx, body: Bytes) -> Response {
    let (_, id) = match checked(&ctx, &body, "/console/secret/reveal").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let req = GetSecretValueRequest {
        secret_id: id.clone(),
        version_id: None,
        version_stage: None,
    };
    match call!(ctx, GetSecretValue, req) {
        Ok(v) => page(&ctx, &id, Some(v)).await,
        Err(e) => {
            ctx.flash_error(&e);
            back(&id)
        }
    }
}

pub(super) async fn put_value(ctx: Ctx, body: Bytes) -> Response {
    let (form, id) = match checked(&ctx, &body, "/console/secret/value").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let value = match value_of(&form) {
        Ok(Some(v)) => v,
        Ok(None) => {
            ctx.flash(false, "The new value is empty: type the value to store.");
            return back(&id);
        }
        Err(why) => {
            ctx.flash(false, why);
            return back(&id);
        }
    };
    let req = PutSecretValueRequest {
        secret_id: id.clone(),
        client_request_token: None,
        value: Some(value),
        version_stages: None,
    };
    match call!(ctx, PutSecretValue, req) {
        Ok(v) => ctx.flash(
            true,
            format!(
                "Stored a new value: version {} is AWSCURRENT.",
                v.version_id.unwrap_or_default()
            ),
        ),
        Err(e) => ctx.flash_error(&e),
    }
    back(&id)
}

pub(super) async fn rotate(ctx: Ctx, body: Bytes) -> Response {
    let (_, id) = match checked(&ctx, &body, "/console/secret/rotate").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let req = RotateSecretRequest {
        secret_id: id.clone(),
        client_request_token: None,
        rotation_lambda_arn: None,
        rotation_rules: None,
        rotate_immediately: None,
    };
    match call!(ctx, RotateSecret, req) {
        Ok(v) => ctx.flash(
            true,
            format!(
                "Rotation started: version {} is being made.",
                v.version_id.unwrap_or_default()
            ),
        ),
        Err(e) => ctx.flash_error(&e),
    }
    back(&id)
}

pub(super) async fn delete(ctx: Ctx, body: Bytes) -> Response {
    let (form, id) = match checked(&ctx, &body, "/console/secret/delete").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let now = !form.get("now").is_empty();
    if now && form.get("confirm").trim() != id {
        ctx.flash(
            false,
            format!("Nothing was deleted: to delete it immediately, type the secret's name, {id}, exactly."),
        );
        return back(&id);
    }
    let days = if now {
        None
    } else {
        match form.get("days").trim().parse::<i64>() {
            Ok(d) => Some(d),
            Err(_) => {
                ctx.flash(
                    false,
                    "The recovery window must be a number of days from 7 to 30.",
                );
                return back(&id);
            }
        }
    };
    let req = DeleteSecretRequest {
        secret_id: id.clone(),
        recovery_window_in_days: days,
        force_delete_without_recovery: now.then_some(true),
    };
    match call!(ctx, DeleteSecret, req) {
        Ok(_) if now => {
            ctx.flash(true, format!("Deleted the secret {id}."));
            Redirect::to("/console/secrets").into_response()
        }
        Ok(_) => {
            ctx.flash(
                true,
                format!(
                    "The secret {id} will be deleted after its recovery window; restore it until then."
                ),
            );
            back(&id)
        }
        Err(e) => {
            ctx.flash_error(&e);
            back(&id)
        }
    }
}

pub(super) async fn restore(ctx: Ctx, body: Bytes) -> Response {
    let (_, id) = match checked(&ctx, &body, "/console/secret/restore").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match call!(
        ctx,
        RestoreSecret,
        SecretIdRequest {
            secret_id: id.clone()
        }
    ) {
        Ok(_) => ctx.flash(true, format!("Restored the secret {id}.")),
        Err(e) => ctx.flash_error(&e),
    }
    back(&id)
}
