//! One secret's page (DescribeSecret, ListSecretVersionIds) and its actions: reveal the value
//! (GetSecretValue, on an explicit POST so the value is never in a URL), store a new value,
//! rotate now, delete (with a recovery window, or at once after typing the name), restore.

use axum::body::Bytes;
use axum::http::Uri;
use axum::response::{IntoResponse, Redirect, Response};
use kura_core::Error;
use kura_core::labels;
use kura_core::model::{RotationPhase, SecretRecord, ValueKind};
use kura_core::schedule::Window;
use kura_rotation::functions::managed::Managed;
use maud::{Markup, html};
use serde_json::Value;

use super::schedule::{self as builder, ScheduleForm};
use super::secrets::{schedule, value_of};
use super::{Ctx, Params, call, enc, layout};
use crate::service::Plain;
use crate::service::types::{
    DeleteSecretRequest, GetSecretValueRequest, GetSecretValueResponse,
    ListSecretVersionIdsRequest, PutResourcePolicyRequest, PutSecretValueRequest,
    RotateSecretRequest, SecretIdRequest, Tag, TagResourceRequest, UntagResourceRequest,
    UpdateSecretVersionStageRequest, ValidateResourcePolicyRequest, ValidateResourcePolicyResponse,
};

pub(super) async fn show(ctx: Ctx, uri: Uri) -> Response {
    let id = Params::query(&uri).get("id").to_string();
    page(&ctx, &id, None, None, None).await
}

fn href(id: &str) -> String {
    format!("/console/secret?id={}", enc(id))
}

/// The rotation editor as a form left it: its fields, and what Preview showed.
type Editor = (ScheduleForm, Option<Result<Vec<Window>, String>>);

/// The secret page, with the value when it was just revealed, or the rotation editor open
/// as a form left it.
async fn page(
    ctx: &Ctx,
    id: &str,
    revealed: Option<GetSecretValueResponse>,
    editor: Option<Editor>,
    policy: Option<PolicyDraft>,
) -> Response {
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
                @if let Some(expires) = s.expires_at {
                    dt { "Expires" } dd {
                        (layout::time(expires))
                        @if expires <= ctx.now() { " " span.badge.warn { "Expired" } }
                    }
                }
                @if let Some(purge) = s.purge_at.filter(|_| deleted) {
                    dt { "Deletion date" } dd { (layout::time(purge)) }
                }
            }
            p { a href={ "/console/audit?resource=" (enc(&s.arn)) } { "Audit trail of this secret" } }
        }
            (rotation_section(ctx, s, editor.as_ref()))
        }
        @if is_certificate(s) { (certificate_section(ctx, s, revealed.as_ref())) }
        (value_section(ctx, s, revealed.as_ref()))
        section aria-labelledby="versions" {
            h2 #versions { "Versions" }
            @match &versions {
                Err(e) => (layout::error_box(e)),
                Ok(list) => {
                  div.scroll { table {
                    thead { tr { th scope="col" { "Version" } th scope="col" { "Labels" } th scope="col" { "Created" } th scope="col" { "Last accessed" } } }
                    tbody { @for v in &list.versions { tr {
                        td { code { (v.version_id) } }
                        td { @for l in &v.version_stages { span.badge.label { (l) } " " } }
                        td { (layout::time(v.created_date)) }
                        td { (layout::opt_day(v.last_accessed_date)) }
                    } } }
                  } }
                  @if !deleted && !list.versions.is_empty() {
                      (label_form(ctx, s, &d.stages, &list.versions))
                  }
                }
            }
        }
        (tags_section(ctx, s))
        (policy_section(ctx, s, policy).await)
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
                (reveal_form(ctx, s, "Reveal value"))
            }
            @if !deleted {
                details #new-value {
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

/// The explicit, audited reveal: the value is read only on this POST, never on a page view.
fn reveal_form(ctx: &Ctx, s: &SecretRecord, label: &str) -> Markup {
    html! {
        form.inline method="post" action="/console/secret/reveal" {
            (layout::csrf(ctx))
            input type="hidden" name="id" value=(s.name);
            button type="submit" { (label) }
            span.hint { " Shows AWSCURRENT; recorded as GetSecretValue." }
        }
    }
}

/// A secret a certificate function (a kura CA's or ACME's) issues certificates into.
fn is_certificate(s: &SecretRecord) -> bool {
    s.rotation
        .function_arn
        .as_deref()
        .and_then(|a| Managed::from_name(a.rsplit(':').next()?))
        .is_some_and(Managed::issues_certificates)
}

/// A certificate secret's certificate: subject, names, issuer, serial, expiry and key
/// algorithm. The metadata holds none of them, so they are read from the value, and only
/// once the user has revealed it (the value holds the private key too).
fn certificate_section(
    ctx: &Ctx,
    s: &SecretRecord,
    revealed: Option<&GetSecretValueResponse>,
) -> Markup {
    let value = revealed.and_then(|v| serde_json::from_slice::<Value>(v.value.bytes()).ok());
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let list = |v: &Value, k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    html! {
        section #certificate aria-labelledby="certificate-title" {
            h2 #certificate-title { "Certificate" }
            @match (revealed, &value) {
                (None, _) => {
                    p.muted { "Its subject, names, issuer, serial number and expiry are read from the value, which holds its private key too: reveal the value to see them." }
                    @if s.deleted_at.is_none() { (reveal_form(ctx, s, "Reveal certificate details")) }
                },
                (Some(_), Some(v)) if field(v, "certificate").is_some() => {
                    @let pem = field(v, "certificate").unwrap_or_default();
                    @let info = kura_pki::certificate_info("The certificate", &pem);
                    @let sans = [list(v, "alt_names"), list(v, "ip_sans")].concat();
                    dl.grid #certificate-facts {
                        @match &info {
                            Ok(i) => { dt { "Subject" } dd { code { (i.subject) } } },
                            Err(e) => { dt { "Subject" } dd.error { (e.message) } },
                        }
                        dt { "Common name" } dd { (field(v, "common_name").unwrap_or_default()) }
                        dt { "Alternative names" } dd { @if sans.is_empty() { span.muted { "—" } } @else { (sans.join(", ")) } }
                        dt { "Issuer" } dd {
                            // A kura CA's certificate (it names a template) links to its CA.
                            @match (field(v, "issuer"), field(v, "template")) {
                                (Some(ca), Some(_)) => a href=(super::certificates::ca_href(&ca)) { (ca) },
                                (Some(issuer), None) => (issuer),
                                (None, _) => span.muted { "—" },
                            }
                        }
                        dt { "Serial number" } dd { code { (field(v, "serial_number").unwrap_or_default()) } }
                        dt { "Not after" } dd {
                            @match &info {
                                Ok(i) => (layout::time(i.not_after)),
                                Err(_) => (field(v, "expiration_date").unwrap_or_default()),
                            }
                        }
                        dt { "Key algorithm" } dd { (field(v, "key_algorithm").unwrap_or_default()) }
                        @if let Some(t) = field(v, "template") { dt { "Template" } dd { (t) } }
                        @if let Some(d) = field(v, "directory_url") { dt { "ACME directory" } dd { code { (d) } } }
                    }
                },
                (Some(_), _) => p.muted { "No certificate has been issued into this value yet: its first rotation issues one (see Rotation)." },
            }
        }
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn rotation_section(ctx: &Ctx, s: &SecretRecord, editor: Option<&Editor>) -> Markup {
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
                    (rotate_now_form(ctx, s))
                } @else {
                    p.hint #no-function {
                        "No rotation function is set, so nothing can rotate a value in. To use a value of your own now, "
                        a href="#new-value" { "store a new value" }
                        ": it becomes AWSCURRENT at once, and nothing outside kura changes. To rotate, turn on automatic rotation below."
                    }
                }
                (rotation_editor(ctx, s, editor))
            }
        }
    }
}

/// Rotate now: with a value the function generates, or with a custom one, staged as
/// AWSPENDING and rotated in (AWS's way: PutSecretValue with VersionStages [AWSPENDING], then
/// RotateSecret with the same ClientRequestToken).
fn rotate_now_form(ctx: &Ctx, s: &SecretRecord) -> Markup {
    html! {
        form.stack #rotate-now method="post" action="/console/secret/rotate" {
            (layout::csrf(ctx))
            input type="hidden" name="id" value=(s.name);
            fieldset {
                legend { "Rotate now" }
                div.field.check {
                    input #source-generated type="radio" name="source" value="generated" checked;
                    label for="source-generated" { "Let the function generate the new value" }
                }
                div.field.check {
                    input #source-custom type="radio" name="source" value="custom";
                    label for="source-custom" { "Use a custom value" }
                }
                div.field {
                    label for="custom" { "Custom value" }
                    textarea #custom name="custom" rows="3" spellcheck="false" autocomplete="off" aria-describedby="custom-hint" {}
                    small #custom-hint {
                        "The whole new value (for a JSON secret, the whole JSON). It is staged as AWSPENDING, then the function sets it where the credential is used, tests it and moves AWSCURRENT to it."
                    }
                }
            }
            div.actions { button type="submit" { "Rotate now" } }
        }
    }
}

/// Moves a staging label (AWSCURRENT or one of your own) onto a version.
fn label_form(
    ctx: &Ctx,
    s: &SecretRecord,
    stages: &kura_core::labels::Stages,
    versions: &[crate::service::types::VersionEntry],
) -> Markup {
    html! {
        form.inline method="post" action="/console/secret/label" {
            (layout::csrf(ctx))
            input type="hidden" name="id" value=(s.name);
            div.field {
                label for="label" { "Label" }
                input #label name="label" list="labels" required value="AWSCURRENT" spellcheck="false" autocapitalize="off";
                datalist #labels { @for l in stages.keys() { option value=(l) {} } }
            }
            div.field {
                label for="to" { "Move to version" }
                select #to name="to" {
                    @for v in versions {
                        option value=(v.version_id) {
                            (v.version_id.get(..8).unwrap_or(&v.version_id)) "…"
                            @if !v.version_stages.is_empty() { " (" (v.version_stages.join(", ")) ")" }
                        }
                    }
                }
            }
            button type="submit" { "Move label" }
        }
    }
}

/// Turns rotation on or changes it (RotateSecret with a function and rules), or off
/// (CancelRotateSecret). `editor` is the form as last posted (open, with its preview).
fn rotation_editor(ctx: &Ctx, s: &SecretRecord, editor: Option<&Editor>) -> Markup {
    let r = &s.rotation;
    let (sf, preview) = match editor {
        Some((sf, preview)) => (sf.clone(), preview.as_ref()),
        None => (ScheduleForm::of_secret(s), None),
    };
    let function = if sf.function.is_empty() {
        "kura-password"
    } else {
        sf.function.as_str()
    };
    html! {
        details #edit-rotation open[editor.is_some()] {
            summary { @if r.enabled { "Change the schedule" } @else { "Turn on automatic rotation" } }
            form.stack method="post" action="/console/secret/rotation" {
                (layout::csrf(ctx))
                input type="hidden" name="id" value=(s.name);
                div.field {
                    label for="function" { "Rotation function" }
                    input #function name="function" required value=(function) spellcheck="false" autocapitalize="off" aria-describedby="function-hint";
                    small #function-hint { "A function's name: kura-password, a managed one (kura-postgres-single-user, …), or one of yours (Functions)." }
                }
                (builder::fields(&sf, preview))
                div.actions { button.primary type="submit" { "Save rotation" } }
            }
            @if r.enabled {
                form.inline method="post" action="/console/secret/rotation/off" {
                    (layout::csrf(ctx))
                    input type="hidden" name="id" value=(s.name);
                    button type="submit" { "Turn off automatic rotation" }
                }
            }
        }
    }
}

/// A resource policy as the editor last posted it, and what validating it found.
struct PolicyDraft {
    text: String,
    findings: kura_core::Result<ValidateResourcePolicyResponse>,
}

/// The secret's resource policy (GetResourcePolicy): shown, edited in a textarea, checked
/// with ValidateResourcePolicy, saved with PutResourcePolicy, deleted with
/// DeleteResourcePolicy.
async fn policy_section(ctx: &Ctx, s: &SecretRecord, draft: Option<PolicyDraft>) -> Markup {
    let live = s.deleted_at.is_none();
    let current = call!(
        ctx,
        GetResourcePolicy,
        SecretIdRequest {
            secret_id: s.arn.clone()
        }
    );
    let stored = current
        .as_ref()
        .ok()
        .and_then(|r| r.resource_policy.as_deref())
        .map(super::users::pretty);
    let text = match &draft {
        Some(d) => d.text.clone(),
        None => stored.clone().unwrap_or_default(),
    };
    html! {
        section #policy aria-labelledby="policy-title" {
            h2 #policy-title { "Resource policy" }
            @match &current {
                Err(e) => (layout::error_box(e)),
                Ok(_) if stored.is_none() => p.muted { "No resource policy: only the users' own policies decide." },
                Ok(_) => {}
            }
            @if let Some(d) = &draft {
                div #findings role="status" {
                    @match &d.findings {
                        Err(e) => (layout::error_box(e)),
                        Ok(v) if v.policy_validation_passed => div.flash.ok { "The policy is valid: no findings." },
                        Ok(v) => div.flash.error {
                            p { "ValidateResourcePolicy found:" }
                            ul { @for f in &v.validation_errors { li { code { (f.check_name) } ": " (f.error_message) } } }
                        },
                    }
                }
            }
            @if live {
                form.stack method="post" action="/console/secret/policy" {
                    (layout::csrf(ctx))
                    input type="hidden" name="id" value=(s.name);
                    div.field {
                        label for="resource_policy" { "Policy document (JSON)" }
                        textarea #resource_policy name="policy" rows="10" spellcheck="false" placeholder="{\"Version\": \"2012-10-17\", \"Statement\": [...]}" { (text) }
                    }
                    div.field.check {
                        input #block_public type="checkbox" name="block_public" checked;
                        label for="block_public" { "Refuse a policy open to everyone (BlockPublicPolicy)" }
                    }
                    div.actions {
                        button type="submit" name="step" value="validate" { "Validate policy" }
                        button.primary type="submit" name="step" value="put" { "Save policy" }
                    }
                }
                @if stored.is_some() {
                    form.inline method="post" action="/console/secret/policy/delete" {
                        (layout::csrf(ctx))
                        input type="hidden" name="id" value=(s.name);
                        button type="submit" { "Delete resource policy" }
                    }
                }
            } @else if let Some(p) = &stored {
                pre.policy tabindex="0" { (p) }
            }
        }
    }
}

fn tags_section(ctx: &Ctx, s: &SecretRecord) -> Markup {
    let live = s.deleted_at.is_none();
    html! {
        section aria-labelledby="tags" {
            h2 #tags { "Tags" }
            @if s.tags.is_empty() {
                p.muted { "No tags." }
            } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } @if live { th scope="col" { span.sr { "Actions" } } } } }
                    tbody { @for t in &s.tags { tr {
                        td { (t.key) }
                        td { (t.value) }
                        @if live { td {
                            form.inline method="post" action="/console/secret/untag" {
                                (layout::csrf(ctx))
                                input type="hidden" name="id" value=(s.name);
                                input type="hidden" name="key" value=(t.key);
                                button type="submit" aria-label={ "Remove tag " (t.key) } { "Remove" }
                            }
                        } }
                    } } }
                } }
            }
            @if live {
                form.inline method="post" action="/console/secret/tag" {
                    (layout::csrf(ctx))
                    input type="hidden" name="id" value=(s.name);
                    div.field {
                        label for="tag_key" { "Tag key" }
                        input #tag_key name="key" required maxlength="128" spellcheck="false" autocapitalize="off";
                    }
                    div.field {
                        label for="tag_value" { "Value" }
                        input #tag_value name="value" maxlength="256" spellcheck="false";
                    }
                    button type="submit" { "Add tag" }
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
        Ok(v) => page(&ctx, &id, Some(v), None, None).await,
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
    let (form, id) = match checked(&ctx, &body, "/console/secret/rotate").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if form.get("source") == "custom" {
        match rotate_custom(&ctx, &id, &form).await {
            Ok(version) => ctx.flash(
                true,
                format!(
                    "Rotation started with your value: version {version} becomes AWSCURRENT once the function has set and tested it."
                ),
            ),
            Err(e) => ctx.flash_error(&e),
        }
        return back(&id);
    }
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

/// Rotates the custom value of `form` in: staged as AWSPENDING under a new token, then
/// RotateSecret with that token, whose function finds the value there and uses it instead of
/// generating one. The version staged.
async fn rotate_custom(ctx: &Ctx, id: &str, form: &Params) -> kura_core::Result<String> {
    let text = form.get("custom");
    if text.is_empty() {
        return Err(Error::invalid_parameter(
            "The custom value is empty: type the value to rotate in, or let the function generate one.",
        ));
    }
    let d = call!(
        ctx,
        DescribeSecret,
        SecretIdRequest {
            secret_id: id.to_string()
        }
    )?;
    // Checked before staging: without a function nothing would rotate the value in, and
    // during another rotation staging would take AWSPENDING from the version it is making.
    if d.secret.rotation.function_arn.is_none() {
        return Err(Error::invalid_request(
            "Nothing was stored: this secret has no rotation function, so nothing would rotate the value in. Store it with \"Store a new value\" (it becomes AWSCURRENT at once), or turn on rotation first.",
        ));
    }
    let pending = d.stages.get(labels::PENDING);
    if d.secret.run.phase == RotationPhase::InProgress
        || (pending.is_some() && pending != d.stages.get(labels::CURRENT))
    {
        return Err(Error::invalid_request(format!(
            "Nothing was stored: a rotation is in progress (AWSPENDING is on version {}). Wait for it to finish, or turn rotation off to cancel it.",
            pending.map(String::as_str).unwrap_or("?")
        )));
    }
    let token = uuid::Uuid::new_v4().to_string();
    call!(
        ctx,
        PutSecretValue,
        PutSecretValueRequest {
            secret_id: id.to_string(),
            client_request_token: Some(token.clone()),
            value: Some(Plain::text(text)),
            version_stages: Some(vec![labels::PENDING.to_string()]),
        }
    )?;
    let rotated = call!(
        ctx,
        RotateSecret,
        RotateSecretRequest {
            secret_id: id.to_string(),
            client_request_token: Some(token.clone()),
            rotation_lambda_arn: None,
            rotation_rules: None,
            rotate_immediately: None,
        }
    );
    match rotated {
        Ok(_) => Ok(token),
        Err(e) => {
            // Not left staged for a later rotation to pick up unasked.
            let unstaged = call!(
                ctx,
                UpdateSecretVersionStage,
                UpdateSecretVersionStageRequest {
                    secret_id: id.to_string(),
                    version_stage: labels::PENDING.to_string(),
                    remove_from_version_id: Some(token.clone()),
                    move_to_version_id: None,
                }
            );
            let after = match unstaged {
                Ok(_) => "the staged value was unlabelled again".to_string(),
                Err(u) => format!(
                    "the staged version {token} still holds AWSPENDING ({}): remove it before rotating again",
                    u.message
                ),
            };
            Err(Error::new(
                e.code,
                format!("{} Nothing was rotated; {after}.", e.message),
            ))
        }
    }
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

pub(super) async fn move_label(ctx: Ctx, body: Bytes) -> Response {
    let (form, id) = match checked(&ctx, &body, "/console/secret/label").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let label = form.get("label").trim().to_string();
    let to = form.get("to").to_string();
    // Where the label is now: UpdateSecretVersionStage must name it to move it.
    let from = match call!(
        ctx,
        DescribeSecret,
        SecretIdRequest {
            secret_id: id.clone()
        }
    ) {
        Ok(d) => d.stages.get(&label).cloned(),
        Err(e) => {
            ctx.flash_error(&e);
            return back(&id);
        }
    };
    if from.as_deref() == Some(to.as_str()) {
        ctx.flash(true, format!("{label} is already on that version."));
        return back(&id);
    }
    let req = UpdateSecretVersionStageRequest {
        secret_id: id.clone(),
        version_stage: label.clone(),
        remove_from_version_id: from,
        move_to_version_id: Some(to.clone()),
    };
    match call!(ctx, UpdateSecretVersionStage, req) {
        Ok(_) => ctx.flash(true, format!("Moved {label} to version {to}.")),
        Err(e) => ctx.flash_error(&e),
    }
    back(&id)
}

pub(super) async fn set_rotation(ctx: Ctx, body: Bytes) -> Response {
    let (form, id) = match checked(&ctx, &body, "/console/secret/rotation").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let sf = ScheduleForm::of_form(&form);
    if form.get("step") == "preview" {
        let preview = sf.preview(&ctx);
        return page(&ctx, &id, None, Some((sf, Some(preview))), None).await;
    }
    let rules = match sf.rules() {
        Ok(r) => r,
        Err(why) => {
            ctx.flash(false, format!("Nothing was changed: {why}"));
            return back(&id);
        }
    };
    let req = RotateSecretRequest {
        secret_id: id.clone(),
        client_request_token: None,
        rotation_lambda_arn: Some(sf.function.clone()).filter(|f| !f.is_empty()),
        rotation_rules: Some(rules),
        rotate_immediately: Some(sf.immediately),
    };
    match call!(ctx, RotateSecret, req) {
        Ok(_) => ctx.flash(true, "Saved the rotation schedule."),
        Err(e) => ctx.flash_error(&e),
    }
    back(&id)
}

pub(super) async fn rotation_off(ctx: Ctx, body: Bytes) -> Response {
    let (_, id) = match checked(&ctx, &body, "/console/secret/rotation/off").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match call!(
        ctx,
        CancelRotateSecret,
        SecretIdRequest {
            secret_id: id.clone()
        }
    ) {
        Ok(_) => ctx.flash(true, "Turned off automatic rotation."),
        Err(e) => ctx.flash_error(&e),
    }
    back(&id)
}

pub(super) async fn put_policy(ctx: Ctx, body: Bytes) -> Response {
    let (form, id) = match checked(&ctx, &body, "/console/secret/policy").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let text = form.get("policy").to_string();
    if form.get("step") == "validate" {
        let req = ValidateResourcePolicyRequest {
            secret_id: Some(id.clone()),
            resource_policy: text.clone(),
        };
        let findings = call!(ctx, ValidateResourcePolicy, req);
        let draft = PolicyDraft { text, findings };
        return page(&ctx, &id, None, None, Some(draft)).await;
    }
    let req = PutResourcePolicyRequest {
        secret_id: id.clone(),
        resource_policy: text.clone(),
        block_public_policy: Some(form.get("block_public") == "on"),
    };
    match call!(ctx, PutResourcePolicy, req) {
        Ok(_) => {
            ctx.flash(true, "Saved the resource policy.");
            back(&id)
        }
        // Shown with the text as typed, so nothing is lost.
        Err(e) => {
            let draft = PolicyDraft {
                text,
                findings: Err(e),
            };
            page(&ctx, &id, None, None, Some(draft)).await
        }
    }
}

pub(super) async fn delete_policy(ctx: Ctx, body: Bytes) -> Response {
    let (_, id) = match checked(&ctx, &body, "/console/secret/policy/delete").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match call!(
        ctx,
        DeleteResourcePolicy,
        SecretIdRequest {
            secret_id: id.clone()
        }
    ) {
        Ok(_) => ctx.flash(true, "Deleted the resource policy."),
        Err(e) => ctx.flash_error(&e),
    }
    back(&id)
}

pub(super) async fn tag(ctx: Ctx, body: Bytes) -> Response {
    let (form, id) = match checked(&ctx, &body, "/console/secret/tag").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let key = form.get("key").trim().to_string();
    let req = TagResourceRequest {
        secret_id: id.clone(),
        tags: vec![Tag {
            key: key.clone(),
            value: form.get("value").to_string(),
        }],
    };
    match call!(ctx, TagResource, req) {
        Ok(_) => ctx.flash(true, format!("Tagged with {key}.")),
        Err(e) => ctx.flash_error(&e),
    }
    back(&id)
}

pub(super) async fn untag(ctx: Ctx, body: Bytes) -> Response {
    let (form, id) = match checked(&ctx, &body, "/console/secret/untag").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let key = form.get("key").to_string();
    let req = UntagResourceRequest {
        secret_id: id.clone(),
        tag_keys: vec![key.clone()],
    };
    match call!(ctx, UntagResource, req) {
        Ok(_) => ctx.flash(true, format!("Removed the tag {key}.")),
        Err(e) => ctx.flash_error(&e),
    }
    back(&id)
}
