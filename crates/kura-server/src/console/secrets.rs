//! The secrets list (ListSecrets: filters, sort, paging) and the create form (CreateSecret).

use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use kura_core::model::SecretRecord;
use maud::{Markup, html};
use zeroize::Zeroizing;

use super::{Ctx, Params, call, enc, form, layout};
use crate::service::Plain;
use crate::service::types::{CreateSecretRequest, Filter, ListSecretsRequest, Tag};

const FILTER_KEYS: [(&str, &str); 5] = [
    ("name", "Name starts with"),
    ("description", "Description word"),
    ("tag-key", "Tag key"),
    ("tag-value", "Tag value"),
    ("all", "Anything"),
];
const SORTS: [(&str, &str); 4] = [
    ("name", "Name"),
    ("created-date", "Created"),
    ("last-changed-date", "Last changed"),
    ("last-accessed-date", "Last accessed"),
];
const DEFAULT_PAGE: i64 = 25;

pub(super) async fn list(ctx: Ctx, uri: Uri) -> Response {
    let q = Params::query(&uri);
    let filter_key = match q.get("filter") {
        k if FILTER_KEYS.iter().any(|(f, _)| *f == k) => k.to_string(),
        _ => "name".to_string(),
    };
    let search = q.opt("q");
    let deleted = q.get("deleted") == "on";
    let sort = match q.get("sort") {
        s if SORTS.iter().any(|(k, _)| *k == s) => s.to_string(),
        _ => "name".to_string(),
    };
    let desc = q.get("order") == "desc";
    let size = q
        .get("size")
        .parse::<i64>()
        .unwrap_or(DEFAULT_PAGE)
        .clamp(1, 100);
    let req = ListSecretsRequest {
        include_planned_deletion: Some(deleted),
        max_results: Some(size),
        next_token: q.opt("next"),
        filters: search.clone().map(|v| {
            vec![Filter {
                key: Some(filter_key.clone()),
                values: Some(vec![v]),
            }]
        }),
        sort_order: Some(if desc { "desc" } else { "asc" }.into()),
        sort_by: Some(sort.clone()),
    };
    let page = call!(ctx, ListSecrets, req);
    // The query of this page without its token: the base of the next page's link.
    let base = format!(
        "filter={}&q={}&sort={}&order={}&size={size}{}",
        enc(&filter_key),
        enc(search.as_deref().unwrap_or("")),
        enc(&sort),
        if desc { "desc" } else { "asc" },
        if deleted { "&deleted=on" } else { "" }
    );
    let body = html! {
        div.titlebar {
            h1 { "Secrets" }
            a.button.primary href="/console/secrets/new" { "Create secret" }
        }
        form.filters method="get" action="/console/secrets" role="search" {
            div.field {
                label for="filter" { "Search by" }
                select #filter name="filter" {
                    @for (k, label) in FILTER_KEYS {
                        option value=(k) selected[k == filter_key] { (label) }
                    }
                }
            }
            div.field.grow {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(search.as_deref().unwrap_or("")) placeholder="prod/";
            }
            div.field {
                label for="sort" { "Sort by" }
                select #sort name="sort" {
                    @for (k, label) in SORTS {
                        option value=(k) selected[k == sort] { (label) }
                    }
                }
            }
            div.field {
                label for="order" { "Order" }
                select #order name="order" {
                    option value="asc" selected[!desc] { "Ascending" }
                    option value="desc" selected[desc] { "Descending" }
                }
            }
            div.field.check {
                input #deleted type="checkbox" name="deleted" checked[deleted];
                label for="deleted" { "Include pending deletion" }
            }
            input type="hidden" name="size" value=(size);
            button type="submit" { "Search" }
        }
        @match &page {
            Err(e) => (layout::error_box(e)),
            Ok(page) if page.secrets.is_empty() => {
                p.empty { "No secrets match." }
            }
            Ok(page) => {
                div.scroll {
                    table {
                        thead { tr {
                            th scope="col" { "Name" }
                            th scope="col" { "Description" }
                            th scope="col" { "Last changed" }
                            th scope="col" { "Rotation" }
                            th scope="col" { "Next rotation" }
                            th scope="col" { "Status" }
                        } }
                        tbody {
                            @for d in &page.secrets {
                                (row(&d.secret))
                            }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if q.opt("next").is_some() {
                a href={ "/console/secrets?" (base) } { "First page" }
            }
            @if let Some(next) = page.as_ref().ok().and_then(|p| p.next_token.as_ref()) {
                a href={ "/console/secrets?" (base) "&next=" (enc(next)) } rel="next" { "Next page" }
            }
        }
    };
    let status = match &page {
        Err(e) => layout::status_of(e),
        Ok(_) => StatusCode::OK,
    };
    layout::page("Secrets", Some(&ctx), body, status)
}

fn row(s: &SecretRecord) -> Markup {
    let r = &s.rotation;
    html! {
        tr {
            td { a href={ "/console/secret?id=" (enc(&s.name)) } { (s.name) } }
            td.muted { (s.description.as_deref().unwrap_or("")) }
            td { (layout::time(s.changed_at)) }
            td {
                @if r.enabled {
                    span.badge.on { "On" } " " (schedule(s))
                } @else {
                    span.badge { "Off" }
                }
            }
            td { @if r.enabled { (layout::opt_time(r.next_rotation_at)) } }
            td {
                @if let Some(purge) = s.purge_at.filter(|_| s.deleted_at.is_some()) {
                    span.badge.warn { "Deletion " } " " (layout::time(purge))
                } @else if s.run.phase == kura_core::model::RotationPhase::Failed {
                    span.badge.warn { "Rotation failed" }
                } @else if s.run.phase == kura_core::model::RotationPhase::InProgress {
                    span.badge { "Rotating" }
                } @else {
                    span.badge.ok { "Active" }
                }
            }
        }
    }
}

/// A rotation schedule in words.
pub(super) fn schedule(s: &SecretRecord) -> String {
    let r = &s.rotation;
    match (&r.schedule_expression, r.after_days) {
        (Some(e), _) => e.clone(),
        (None, Some(1)) => "every day".into(),
        (None, Some(d)) => format!("every {d} days"),
        (None, None) => "on demand".into(),
    }
}

/// Rows of the key/value editor.
const KV_ROWS: usize = 6;
/// Rows of the tag editor.
const TAG_ROWS: usize = 3;
/// The API's limit on a SecretString, in bytes.
const MAX_VALUE_BYTES: usize = 65_536;

/// What the create form had, shown again when it is refused (never the value).
#[derive(Default)]
struct Draft {
    name: String,
    description: String,
    tags: Vec<Tag>,
}

fn create_page(ctx: &Ctx, draft: &Draft, error: Option<Markup>) -> Response {
    let body = html! {
        h1 { "Create a secret" }
        (wizard_links())
        @if let Some(e) = error { (e) }
        form.stack method="post" action="/console/secrets/new" enctype="multipart/form-data" {
            (layout::csrf(ctx))
            div.field {
                label for="name" { "Name" }
                input #name name="name" required value=(draft.name) maxlength="512" spellcheck="false" autocapitalize="off" aria-describedby="name-hint";
                small #name-hint { "Letters, digits and /_+=.@-, e.g. prod/billing/db." }
            }
            div.field {
                label for="description" { "Description (optional)" }
                input #description name="description" value=(draft.description) maxlength="2048";
            }
            fieldset {
                legend { "Value" }
                p.hint { "Give it one way: key/value pairs (stored as a JSON object), plain text, or a file." }
                table.kv {
                    thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } } }
                    tbody {
                        @for i in 0..KV_ROWS {
                            tr {
                                td { input name="key" aria-label={ "Key " (i + 1) } spellcheck="false" autocapitalize="off"; }
                                td { input name="value" aria-label={ "Value " (i + 1) } spellcheck="false" autocomplete="off" autocapitalize="off"; }
                            }
                        }
                    }
                }
                div.field {
                    label for="plaintext" { "Plain text" }
                    textarea #plaintext name="plaintext" rows="4" spellcheck="false" autocomplete="off" {}
                }
                div.field {
                    label for="file" { "Or a file" }
                    input #file type="file" name="file" accept=".json,.txt,.pem,.env,text/plain,application/json" aria-describedby="file-hint";
                    small #file-hint { "Plain text or JSON (a .json file must parse), at most 64 KiB, stored as the secret's string." }
                }
            }
            (tag_editor(&draft.tags))
            div.actions {
                button.primary type="submit" { "Create secret" }
                a.button href="/console/secrets" { "Cancel" }
            }
        }
    };
    layout::ok("Create a secret", ctx, body)
}

/// Tags to give a secret as it is created: filled rows first, then empty ones.
pub(super) fn tag_editor(tags: &[Tag]) -> Markup {
    let rows = tags.len().max(TAG_ROWS);
    html! {
        fieldset {
            legend { "Tags (optional)" }
            table.kv {
                thead { tr { th scope="col" { "Tag key" } th scope="col" { "Tag value" } } }
                tbody {
                    @for i in 0..rows {
                        @let t = tags.get(i);
                        tr {
                            td { input name="tag_key" aria-label={ "Tag key " (i + 1) } maxlength="128" value=[t.map(|t| t.key.as_str())] spellcheck="false" autocapitalize="off"; }
                            td { input name="tag_value" aria-label={ "Tag value " (i + 1) } maxlength="256" value=[t.map(|t| t.value.as_str())] spellcheck="false"; }
                        }
                    }
                }
            }
        }
    }
}

/// The tag editor's rows; a value without a key, or a key given twice, is refused.
pub(super) fn tags_of(form: &Params) -> Result<Vec<Tag>, String> {
    let mut tags: Vec<Tag> = Vec::new();
    for (k, v) in form.all("tag_key").zip(form.all("tag_value")) {
        let k = k.trim();
        if k.is_empty() {
            if !v.is_empty() {
                return Err(format!(
                    "The tag value {v:?} has no key: give each tag a key."
                ));
            }
            continue;
        }
        if tags.iter().any(|t| t.key == k) {
            return Err(format!("The tag key {k:?} is given twice."));
        }
        tags.push(Tag {
            key: k.to_string(),
            value: v.to_string(),
        });
    }
    Ok(tags)
}

/// Links to the create wizards of secrets that rotate inside other systems.
fn wizard_links() -> Markup {
    html! {
        nav.wizards aria-label="Kinds of secret" {
            span.muted { "Or create " }
            a href="/console/secrets/new/database" { "a database login" }
            a href="/console/secrets/new/server" { "a server login (SSH)" }
            a href="/console/secrets/new/access-key" { "an access key" }
            a href="/console/secrets/new/certificate" { "a certificate" }
        }
    }
}

pub(super) async fn new_form(ctx: Ctx) -> Response {
    create_page(&ctx, &Draft::default(), None)
}

/// The value of an uploaded file: UTF-8 text within the API's limit, and valid JSON when it
/// says it is JSON.
fn file_value(f: &form::Upload) -> Result<Plain, String> {
    let name = if f.filename.is_empty() {
        "The file"
    } else {
        f.filename.as_str()
    };
    if f.bytes.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "{name} is {} bytes; a secret value may be at most {MAX_VALUE_BYTES} bytes (64 KiB, the API's SecretString limit).",
            f.bytes.len()
        ));
    }
    let text = std::str::from_utf8(&f.bytes).map_err(|_| {
        format!(
            "{name} is not UTF-8 text: the console stores text and JSON files. Store a binary value with kura secret create --binary, or the API's SecretBinary."
        )
    })?;
    let json = f.filename.to_ascii_lowercase().ends_with(".json")
        || f.content_type.eq_ignore_ascii_case("application/json");
    if json && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(format!(
            "{name} is not valid JSON (line {}, column {}): fix it, or upload it as plain text.",
            e.line(),
            e.column()
        ));
    }
    Ok(Plain::text(text))
}

/// The value a form's editor describes: its file, its plain text, or its key/value pairs as a
/// JSON object; `None` when all are empty.
pub(super) fn value_of(form: &Params) -> Result<Option<Plain>, String> {
    let text = form.get("plaintext");
    let pairs = form.all("key").any(|k| !k.trim().is_empty());
    if let Some(f) = form.file("file") {
        if !text.is_empty() || pairs {
            return Err(
                "Give the value one way: a file, or plain text, or key/value pairs, not several."
                    .into(),
            );
        }
        return file_value(f).map(Some);
    }
    if !text.is_empty() {
        if pairs {
            return Err("Give the value one way: plain text or key/value pairs, not both.".into());
        }
        return Ok(Some(Plain::text(text)));
    }
    let mut object = serde_json::Map::new();
    for (k, v) in form.all("key").zip(form.all("value")) {
        let k = k.trim();
        if k.is_empty() {
            if !v.is_empty() {
                return Err("A value has no key: give each value a key.".into());
            }
            continue;
        }
        if object
            .insert(k.to_string(), serde_json::Value::String(v.to_string()))
            .is_some()
        {
            return Err(format!("The key {k:?} is given twice."));
        }
    }
    if object.is_empty() {
        return Ok(None);
    }
    let json = Zeroizing::new(serde_json::Value::Object(object).to_string());
    Ok(Some(Plain::text(&json)))
}

/// Reads a form body of at most [`form::MAX_FORM_BYTES`]: its fields and files, or what is
/// wrong with it.
pub(super) async fn read_form(req: Request) -> Result<Params, String> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, form::MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            format!(
                "The form is larger than {} KiB: a secret value may be at most 64 KiB.",
                form::MAX_FORM_BYTES / 1024
            )
        })?;
    form::parse(&parts.headers, &bytes)
}

pub(super) async fn create(ctx: Ctx, req: Request) -> Response {
    let refused = |draft: &Draft, why: &str| {
        let e = html! { div.flash.error role="alert" { (why) } };
        let mut r = create_page(&ctx, draft, Some(e));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        r
    };
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(why) => return refused(&Draft::default(), &why),
    };
    if let Err(r) = ctx.check_csrf(&form, "/console/secrets/new").await {
        return r;
    }
    let mut draft = Draft {
        name: form.get("name").trim().to_string(),
        description: form.get("description").to_string(),
        tags: Vec::new(),
    };
    match tags_of(&form) {
        Ok(t) => draft.tags = t,
        Err(why) => return refused(&draft, &why),
    }
    let value = match value_of(&form) {
        Ok(v) => v,
        Err(why) => return refused(&draft, &why),
    };
    let req = CreateSecretRequest {
        name: draft.name.clone(),
        client_request_token: None,
        description: form.opt("description"),
        kms_key_id: None,
        value,
        tags: (!draft.tags.is_empty()).then(|| draft.tags.clone()),
        replica_regions: false,
    };
    match call!(ctx, CreateSecret, req) {
        Ok(_) => {
            ctx.flash(true, format!("Created the secret {}.", draft.name));
            Redirect::to(&format!("/console/secret?id={}", enc(&draft.name))).into_response()
        }
        Err(e) => {
            let mut r = create_page(&ctx, &draft, Some(layout::error_box(&e)));
            *r.status_mut() = layout::status_of(&e);
            r
        }
    }
}
