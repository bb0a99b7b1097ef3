//! Users, their access keys and inline policies (Kura.ListUsers, CreateUser, DeleteUser,
//! ListAccessKeys, CreateAccessKey, UpdateAccessKey, DeleteAccessKey, ListUserPolicies,
//! GetUserPolicy, PutUserPolicy, DeleteUserPolicy): what the API allows administrators.

use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::{Ctx, Params, call, enc, layout};
use crate::service::types::{
    AccessKeyEntry, AccessKeyIdRequest, CreateAccessKeyRequest, CreateUserRequest, Empty,
    OptionalUserRequest, PutUserPolicyRequest, UpdateAccessKeyRequest, UserNameRequest,
    UserPolicyRequest,
};

pub(super) async fn list(ctx: Ctx) -> Response {
    let users = call!(ctx, ListUsers, Empty {});
    let body = html! {
        h1 { "Users" }
        @match &users {
            Err(e) => (layout::error_box(e)),
            Ok(r) if r.users.is_empty() => p.empty { "No users yet." },
            Ok(r) => div.scroll { table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "ARN" } th scope="col" { "Created" } } }
                tbody { @for u in &r.users { tr {
                    td { a href={ "/console/user?name=" (enc(&u.user_name)) } { (u.user_name) } }
                    td { code { (u.arn) } }
                    td { (layout::time(u.create_date)) }
                } } }
            } },
        }
        section aria-labelledby="new-user" {
            h2 #new-user { "Create a user" }
            form.inline method="post" action="/console/users/new" {
                (layout::csrf(&ctx))
                div.field {
                    label for="user_name" { "User name" }
                    input #user_name name="user_name" required maxlength="64" spellcheck="false" autocapitalize="off";
                }
                button.primary type="submit" { "Create user" }
            }
        }
    };
    let status = match &users {
        Err(e) => layout::status_of(e),
        Ok(_) => StatusCode::OK,
    };
    layout::page("Users", Some(&ctx), body, status)
}

pub(super) async fn create(ctx: Ctx, body: Bytes) -> Response {
    let form = Params::parse(&body);
    if let Err(r) = ctx.check_csrf(&form, "/console/users/new").await {
        return r;
    }
    let name = form.get("user_name").trim().to_string();
    let req = CreateUserRequest {
        user_name: name.clone(),
        tags: None,
    };
    match call!(ctx, CreateUser, req) {
        Ok(_) => {
            ctx.flash(true, format!("Created the user {name}."));
            to_user(&name)
        }
        Err(e) => {
            ctx.flash_error(&e);
            Redirect::to("/console/users").into_response()
        }
    }
}

fn to_user(name: &str) -> Response {
    Redirect::to(&format!("/console/user?name={}", enc(name))).into_response()
}

pub(super) async fn show(ctx: Ctx, uri: Uri) -> Response {
    let name = Params::query(&uri).get("name").to_string();
    page(&ctx, &name, None).await
}

/// A user's page; `new_key` is a key just created, whose secret is shown this once.
async fn page(ctx: &Ctx, name: &str, new_key: Option<&AccessKeyEntry>) -> Response {
    let keys = call!(
        ctx,
        ListAccessKeys,
        OptionalUserRequest {
            user_name: Some(name.to_string())
        }
    );
    let keys = match keys {
        Ok(k) => k.access_key_metadata,
        Err(e) => return layout::failed("User", ctx, &e),
    };
    let mut policies = Vec::new();
    let names = call!(
        ctx,
        ListUserPolicies,
        UserNameRequest {
            user_name: name.to_string()
        }
    );
    let policy_error = match names {
        Ok(r) => {
            for policy_name in r.policy_names {
                let req = UserPolicyRequest {
                    user_name: name.to_string(),
                    policy_name: policy_name.clone(),
                };
                policies.push((policy_name, call!(ctx, GetUserPolicy, req)));
            }
            None
        }
        Err(e) => Some(e),
    };
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/console/users" { "Users" } " / " }
        h1 { (name) }
        @if let Some(k) = new_key {
            div.flash.ok role="status" {
                p { "A new access key. Copy its secret now: it is not shown again." }
                dl.grid {
                    dt { "Access key ID" } dd { code #new-key-id { (k.access_key_id) } }
                    dt { "Secret access key" } dd { code #new-key-secret { (k.secret_access_key.0.as_str()) } }
                }
            }
        }
        section aria-labelledby="keys" {
            h2 #keys { "Access keys" }
            @if keys.is_empty() {
                p.muted { "No access keys." }
            } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Access key ID" } th scope="col" { "Status" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { span.sr { "Actions" } } } }
                    tbody { @for k in &keys { tr {
                        td { code { (k.access_key_id) } }
                        td { @if k.status == "Active" { span.badge.ok { "Active" } } @else { span.badge { (k.status) } } }
                        td { (layout::time(k.create_date)) }
                        td { (layout::opt_day(k.last_used_date)) }
                        td.actions {
                            (key_action(ctx, name, &k.access_key_id, if k.status == "Active" { "Inactive" } else { "Active" }))
                            (key_action(ctx, name, &k.access_key_id, "Delete"))
                        }
                    } } }
                } }
            }
            form.inline method="post" action="/console/user/key" {
                (layout::csrf(ctx))
                input type="hidden" name="name" value=(name);
                button type="submit" { "Create access key" }
            }
        }
        section aria-labelledby="policies" {
            h2 #policies { "Inline policies" }
            @if let Some(e) = &policy_error { (layout::error_box(e)) }
            @for (policy_name, doc) in &policies {
                h3 { (policy_name) }
                @match doc {
                    Ok(d) => pre.policy tabindex="0" { (pretty(&d.policy_document)) },
                    Err(e) => (layout::error_box(e)),
                }
                form.inline method="post" action="/console/user/policy/delete" {
                    (layout::csrf(ctx))
                    input type="hidden" name="name" value=(name);
                    input type="hidden" name="policy" value=(policy_name);
                    button type="submit" { "Delete policy " (policy_name) }
                }
            }
            details #put-policy {
                summary { "Add or replace a policy" }
                form.stack method="post" action="/console/user/policy" {
                    (layout::csrf(ctx))
                    input type="hidden" name="name" value=(name);
                    div.field {
                        label for="policy_name" { "Policy name" }
                        input #policy_name name="policy_name" required maxlength="128" spellcheck="false" autocapitalize="off";
                    }
                    div.field {
                        label for="document" { "Policy document (JSON)" }
                        textarea #document name="document" rows="10" required spellcheck="false" {
                            "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\"Effect\": \"Allow\", \"Action\": \"secretsmanager:ListSecrets\", \"Resource\": \"*\"}\n  ]\n}"
                        }
                    }
                    div.actions { button.primary type="submit" { "Save policy" } }
                }
            }
        }
        section.danger aria-labelledby="delete-user" {
            h2 #delete-user { "Delete" }
            p.hint { "Delete the user's access keys and policies first." }
            form.inline method="post" action="/console/user/delete" {
                (layout::csrf(ctx))
                input type="hidden" name="name" value=(name);
                button.danger type="submit" { "Delete user" }
            }
        }
    };
    layout::ok(name, ctx, body)
}

/// A policy document indented for reading (as stored when it does not parse).
pub(super) fn pretty(doc: &str) -> String {
    serde_json::from_str::<serde_json::Value>(doc)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| doc.to_string())
}

/// A button acting on one key: `Active`/`Inactive` sets its status, `Delete` deletes it.
fn key_action(ctx: &Ctx, user: &str, key: &str, action: &str) -> Markup {
    let label = match action {
        "Active" => "Activate",
        "Inactive" => "Deactivate",
        _ => "Delete",
    };
    html! {
        form.inline method="post" action="/console/user/key/update" {
            (layout::csrf(ctx))
            input type="hidden" name="name" value=(user);
            input type="hidden" name="key" value=(key);
            input type="hidden" name="action" value=(action);
            button type="submit" aria-label={ (label) " " (key) } { (label) }
        }
    }
}

async fn checked(ctx: &Ctx, body: &Bytes, path: &str) -> Result<(Params, String), Response> {
    let form = Params::parse(body);
    ctx.check_csrf(&form, path).await?;
    let name = form.get("name").to_string();
    Ok((form, name))
}

pub(super) async fn create_key(ctx: Ctx, body: Bytes) -> Response {
    let (_, name) = match checked(&ctx, &body, "/console/user/key").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let req = CreateAccessKeyRequest {
        user_name: Some(name.clone()),
        access_key_id: None,
        secret_access_key: None,
        expires_in: None,
    };
    match call!(ctx, CreateAccessKey, req) {
        // Answered to this POST only: the secret never goes in a URL or a flash.
        Ok(r) => page(&ctx, &name, Some(&r.access_key)).await,
        Err(e) => {
            ctx.flash_error(&e);
            to_user(&name)
        }
    }
}

pub(super) async fn update_key(ctx: Ctx, body: Bytes) -> Response {
    let (form, name) = match checked(&ctx, &body, "/console/user/key/update").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let key = form.get("key").to_string();
    let result = match form.get("action") {
        "Delete" => call!(
            ctx,
            DeleteAccessKey,
            AccessKeyIdRequest {
                user_name: Some(name.clone()),
                access_key_id: key.clone(),
            }
        )
        .map(|_| format!("Deleted the access key {key}.")),
        status => call!(
            ctx,
            UpdateAccessKey,
            UpdateAccessKeyRequest {
                user_name: Some(name.clone()),
                access_key_id: key.clone(),
                status: status.to_string(),
            }
        )
        .map(|_| format!("The access key {key} is now {status}.")),
    };
    match result {
        Ok(text) => ctx.flash(true, text),
        Err(e) => ctx.flash_error(&e),
    }
    to_user(&name)
}

pub(super) async fn put_policy(ctx: Ctx, body: Bytes) -> Response {
    let (form, name) = match checked(&ctx, &body, "/console/user/policy").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let policy_name = form.get("policy_name").trim().to_string();
    let req = PutUserPolicyRequest {
        user_name: name.clone(),
        policy_name: policy_name.clone(),
        policy_document: serde_json::Value::String(form.get("document").to_string()),
    };
    match call!(ctx, PutUserPolicy, req) {
        Ok(_) => ctx.flash(true, format!("Saved the policy {policy_name}.")),
        Err(e) => ctx.flash_error(&e),
    }
    to_user(&name)
}

pub(super) async fn delete_policy(ctx: Ctx, body: Bytes) -> Response {
    let (form, name) = match checked(&ctx, &body, "/console/user/policy/delete").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let policy_name = form.get("policy").to_string();
    let req = UserPolicyRequest {
        user_name: name.clone(),
        policy_name: policy_name.clone(),
    };
    match call!(ctx, DeleteUserPolicy, req) {
        Ok(_) => ctx.flash(true, format!("Deleted the policy {policy_name}.")),
        Err(e) => ctx.flash_error(&e),
    }
    to_user(&name)
}

pub(super) async fn delete(ctx: Ctx, body: Bytes) -> Response {
    let (_, name) = match checked(&ctx, &body, "/console/user/delete").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match call!(
        ctx,
        DeleteUser,
        UserNameRequest {
            user_name: name.clone()
        }
    ) {
        Ok(_) => {
            ctx.flash(true, format!("Deleted the user {name}."));
            Redirect::to("/console/users").into_response()
        }
        Err(e) => {
            ctx.flash_error(&e);
            to_user(&name)
        }
    }
}
