//! The audit trail (Kura.LookupAuditEvents): newest first, filtered by time, user, action,
//! secret (by name: its ARN from DescribeSecret) or any resource, and outcome; paged.

use axum::http::{StatusCode, Uri};
use axum::response::Response;
use kura_core::Timestamp;
use maud::html;

use super::{Ctx, Params, call, enc, layout};
use crate::service::types::{LookupAuditEventsRequest, SecretIdRequest};

const PAGE: i64 = 50;
const FIELDS: [&str; 7] = [
    "principal",
    "action",
    "secret",
    "resource",
    "outcome",
    "from",
    "to",
];

/// `YYYY-MM-DD` as epoch seconds: the start of that day, or with `end` its last second.
fn day(s: &str, end: bool) -> Result<Option<f64>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)."))?;
    let t = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp());
    Ok(t.map(|t| (t + if end { 86_399 } else { 0 }) as f64))
}

/// An ARN as a person reads it: `root`, `user/alice`, a secret's name (with its random
/// suffix); the whole ARN is the link's title.
fn short(arn: &str) -> &str {
    if let Some(i) = arn.find(":secret:") {
        return &arn[i + ":secret:".len()..];
    }
    if arn.starts_with("arn:") {
        return arn.rsplit(':').next().unwrap_or(arn);
    }
    arn
}

/// The resource to filter on: the ARN of the secret named in `secret` (records name a
/// secret by its ARN), or the `resource` given.
async fn resource_of(ctx: &Ctx, q: &Params) -> kura_core::Result<Option<String>> {
    let Some(name) = q.opt("secret") else {
        return Ok(q.opt("resource"));
    };
    if q.opt("resource").is_some() {
        return Err(kura_core::Error::validation(
            "Give a secret's name or a resource ARN, not both.",
        ));
    }
    let d = call!(ctx, DescribeSecret, SecretIdRequest { secret_id: name.clone() }).map_err(
        |e| match e.code {
            kura_core::ErrorCode::ResourceNotFound => kura_core::Error::new(
                e.code,
                format!("There is no secret {name:?}: a secret deleted for good is found by its ARN, in Resource."),
            ),
            _ => e,
        },
    )?;
    Ok(Some(d.secret.arn))
}

pub(super) async fn trail(ctx: Ctx, uri: Uri) -> Response {
    let q = Params::query(&uri);
    let outcome = q.opt("outcome");
    let range = day(q.get("from"), false).and_then(|f| Ok((f, day(q.get("to"), true)?)));
    let size = q.get("size").parse::<i64>().unwrap_or(PAGE).clamp(1, 500);
    let resource = resource_of(&ctx, &q).await;
    let result = match (range, resource) {
        (Err(why), _) => Err(kura_core::Error::validation(why)),
        (_, Err(e)) => Err(e),
        (Ok((start_time, end_time)), Ok(resource)) => {
            let req = LookupAuditEventsRequest {
                start_time,
                end_time,
                principal: q.opt("principal"),
                action: q.opt("action"),
                resource,
                outcome: outcome.clone(),
                newest_first: Some(true),
                max_results: Some(size),
                next_token: q.opt("next"),
            };
            call!(ctx, LookupAuditEvents, req)
        }
    };
    let base: String = FIELDS
        .iter()
        .map(|f| format!("{f}={}&", enc(q.get(f))))
        .collect::<String>()
        + &format!("size={size}");
    // A link to the trail filtered on one more field.
    let narrow = |field: &str, value: &str| {
        let mut parts: Vec<String> = FIELDS
            .iter()
            // A resource replaces a secret's name, which names one.
            .filter(|f| **f != field && !(field == "resource" && **f == "secret"))
            .map(|f| format!("{f}={}", enc(q.get(f))))
            .collect();
        parts.push(format!("{field}={}", enc(value)));
        format!("/console/audit?{}", parts.join("&"))
    };
    let body = html! {
        h1 { "Audit trail" }
        p.hint { "Newest first." }
        form.filters method="get" action="/console/audit" {
            div.field {
                label for="from" { "From" }
                input #from type="date" name="from" value=(q.get("from"));
            }
            div.field {
                label for="to" { "To" }
                input #to type="date" name="to" value=(q.get("to"));
            }
            div.field.grow {
                label for="principal" { "User (ARN)" }
                input #principal name="principal" value=(q.get("principal")) spellcheck="false";
            }
            div.field.grow {
                label for="action" { "Action" }
                input #action name="action" value=(q.get("action")) placeholder="secretsmanager:GetSecretValue" spellcheck="false";
            }
            div.field.grow {
                label for="secret" { "Secret (name)" }
                input #secret name="secret" value=(q.get("secret")) placeholder="prod/billing/db" spellcheck="false" autocapitalize="off";
            }
            div.field.grow {
                label for="resource" { "Resource (ARN)" }
                input #resource name="resource" value=(q.get("resource")) spellcheck="false";
            }
            div.field {
                label for="outcome" { "Outcome" }
                select #outcome name="outcome" {
                    option value="" selected[outcome.is_none()] { "Any" }
                    option value="Success" selected[outcome.as_deref() == Some("Success")] { "Success" }
                    option value="Error" selected[outcome.as_deref() == Some("Error")] { "Error" }
                }
            }
            input type="hidden" name="size" value=(size);
            button type="submit" { "Filter" }
            a.button href="/console/audit" { "Clear" }
        }
        @match &result {
            Err(e) => (layout::error_box(e)),
            Ok(r) if r.events.is_empty() => p.empty { "No audit records match." },
            Ok(r) => div.scroll { table.audit {
                thead { tr {
                    th scope="col" { "Time (UTC)" }
                    th scope="col" { "User" }
                    th scope="col" { "Action" }
                    th scope="col" { "Resource" }
                    th scope="col" { "Outcome" }
                    th scope="col" { "Source" }
                } }
                tbody { @for e in &r.events { tr {
                    td.nowrap { (layout::instant(Timestamp(e.time))) }
                    td { a href=(narrow("principal", &e.principal)) title=(e.principal) { (short(&e.principal)) } }
                    td { a href=(narrow("action", &e.action)) { (e.action) } }
                    td.wrap { @if e.resource == "*" || e.resource.is_empty() { span.muted { "—" } } @else { a href=(narrow("resource", &e.resource)) title=(e.resource) { (short(&e.resource)) } } }
                    td {
                        @if e.outcome == "Success" { span.badge.ok { "Success" } }
                        @else { span.badge.warn { (e.error_code.as_deref().unwrap_or("Error")) } }
                    }
                    td.muted { (e.source_ip.as_deref().unwrap_or("—")) }
                } } }
            } },
        }
        nav.pager aria-label="Pages" {
            @if q.opt("next").is_some() {
                a href={ "/console/audit?" (base) } { "First page" }
            }
            @if let Some(next) = result.as_ref().ok().and_then(|r| r.next_token.as_ref()) {
                a href={ "/console/audit?" (base) "&next=" (enc(next)) } rel="next" { "Next page" }
            }
        }
    };
    let status = match &result {
        Err(e) => layout::status_of(e),
        Ok(_) => StatusCode::OK,
    };
    layout::page("Audit trail", Some(&ctx), body, status)
}
