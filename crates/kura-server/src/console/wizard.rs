//! Create wizards for secrets that kura's managed rotation functions rotate inside other
//! systems: a database login (PostgreSQL, MySQL/MariaDB; single user or alternating users with
//! an administrator's secret), a server login over SSH (password or key pair, host key), a
//! kura access key, and a certificate issued by a kura CA under one of its templates (checked
//! against the template's rules at the review step). One form each builds the JSON value the
//! function reads (the README's "Rotation inside databases and servers" and "Private
//! certificates"), then rotation (off, or on with a managed function and the schedule
//! builder), then a review page, then CreateSecret and RotateSecret as the signed-in user.
//! The form travels between the steps in the POST itself (hidden fields on the review page,
//! never a URL), so the server keeps no draft.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use kura_rotation::functions::managed::Managed;
use maud::{Markup, html};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::schedule::{self, ScheduleForm};
use super::secrets::{tag_editor, tags_of};
use super::{Ctx, Params, call, certificates, enc, layout};
use crate::service::Plain;
use crate::service::types::{
    AccessKeyIdRequest, CertificateTemplateEntry, CreateAccessKeyRequest, CreateSecretRequest,
    DeleteSecretRequest, Empty, ListSecretsRequest, NameRequest, RotateSecretRequest,
    RotationRules, Tag,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Database,
    Server,
    AccessKey,
    Certificate,
}

impl Kind {
    fn of(slug: &str) -> Option<Kind> {
        match slug {
            "database" => Some(Kind::Database),
            "server" => Some(Kind::Server),
            "access-key" => Some(Kind::AccessKey),
            "certificate" => Some(Kind::Certificate),
            _ => None,
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Kind::Database => "database",
            Kind::Server => "server",
            Kind::AccessKey => "access-key",
            Kind::Certificate => "certificate",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::Database => "Create a database login",
            Kind::Server => "Create a server login",
            Kind::AccessKey => "Create an access key secret",
            Kind::Certificate => "Create a certificate",
        }
    }

    fn functions(self) -> &'static [Managed] {
        match self {
            Kind::Database => &[
                Managed::PostgresSingle,
                Managed::PostgresAlternating,
                Managed::MysqlSingle,
                Managed::MysqlAlternating,
            ],
            Kind::Server => &[Managed::SshPassword, Managed::SshKeypair],
            Kind::AccessKey => &[Managed::AccessKey],
            Kind::Certificate => &[Managed::PrivateCertificate],
        }
    }

    fn action(self) -> String {
        format!("/console/secrets/new/{}", self.slug())
    }
}

/// What each managed function does, for the function picker.
fn function_label(m: Managed) -> &'static str {
    match m {
        Managed::PostgresSingle => "PostgreSQL: the user changes its own password",
        Managed::PostgresAlternating => {
            "PostgreSQL: alternating users (app, app_clone), changed by the administrator"
        }
        Managed::MysqlSingle => "MySQL or MariaDB: the user changes its own password",
        Managed::MysqlAlternating => {
            "MySQL or MariaDB: alternating users, changed by the administrator"
        }
        Managed::SshPassword => "the user's password on the server",
        Managed::SshKeypair => "a key pair in the user's authorized_keys",
        Managed::AccessKey => "a kura user's access key",
        Managed::PrivateCertificate => "a certificate issued by a kura certificate authority",
        Managed::AcmeCertificate => "a certificate ordered from an ACME authority (Let's Encrypt…)",
    }
}

/// What the wizard will do once confirmed.
struct Plan {
    name: String,
    description: Option<String>,
    tags: Vec<Tag>,
    value: Map<String, Value>,
    /// The access key wizard's user, when a new key is made for them at creation.
    new_key_for: Option<String>,
    /// RotateSecret's function, schedule (none: on demand only) and rotate-immediately.
    rotation: Option<(String, Option<RotationRules>, bool)>,
    /// What the review page lists: (field, shown value); secrets are not shown.
    facts: Vec<(&'static str, String)>,
}

const HIDDEN: &str = "(hidden)";

fn required<'a>(form: &'a Params, field: &str, what: &str) -> Result<&'a str, String> {
    match form.get(field).trim() {
        "" => Err(format!("Give the {what}.")),
        v => Ok(v),
    }
}

fn port(form: &Params, default: u16) -> Result<u16, String> {
    match form.get("port").trim() {
        "" => Ok(default),
        p => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("The port {p:?} is not a TCP port (1 to 65535).")),
    }
}

/// Checks a wizard's form and works out what to create.
fn plan(kind: Kind, form: &Params) -> Result<Plan, String> {
    let name = required(form, "name", "secret's name")?.to_string();
    let tags = tags_of(form)?;
    let mut value = Map::new();
    let mut facts: Vec<(&'static str, String)> = vec![("Name", name.clone())];
    let mut new_key_for = None;
    let rotation_on = form.get("rotation") == "on";
    let sf = ScheduleForm::of_form(form);
    // A certificate secret is issued its first certificate by its function, even with no
    // schedule.
    let function = if rotation_on || kind == Kind::Certificate {
        let f = Managed::from_name(&sf.function)
            .filter(|m| kind.functions().contains(m))
            .ok_or_else(|| {
                format!(
                    "Choose the rotation function: {:?} is not one for this kind of secret.",
                    sf.function
                )
            })?;
        Some(f)
    } else {
        None
    };
    let masterarn = form.opt("masterarn");
    match kind {
        Kind::Database => {
            let engine = match form.get("engine") {
                e @ ("postgres" | "mysql" | "mariadb") => e,
                other => {
                    return Err(format!(
                        "The engine {other:?} is not postgres, mysql or mariadb."
                    ));
                }
            };
            let default_port = if engine == "postgres" { 5432 } else { 3306 };
            value.insert("engine".into(), json!(engine));
            value.insert(
                "host".into(),
                json!(required(form, "host", "database server's host")?),
            );
            value.insert("port".into(), json!(port(form, default_port)?));
            value.insert(
                "username".into(),
                json!(required(form, "username", "user name")?),
            );
            value.insert(
                "password".into(),
                json!(required(form, "password", "user's current password")?),
            );
            if let Some(db) = form.opt("dbname") {
                value.insert("dbname".into(), json!(db));
            }
            match form.get("ssl") {
                "true" => {
                    value.insert("ssl".into(), json!(true));
                }
                "false" => {
                    value.insert("ssl".into(), json!(false));
                }
                _ => {}
            }
            if let Some(f) = function {
                let postgres = matches!(f, Managed::PostgresSingle | Managed::PostgresAlternating);
                if postgres != (engine == "postgres") {
                    let fits = if engine == "postgres" {
                        "kura-postgres-single-user or kura-postgres-alternating-users"
                    } else {
                        "kura-mysql-single-user or kura-mysql-alternating-users"
                    };
                    return Err(format!(
                        "{} does not rotate {engine} users: choose {fits}.",
                        f.name()
                    ));
                }
                let alternating =
                    matches!(f, Managed::PostgresAlternating | Managed::MysqlAlternating);
                if alternating && masterarn.is_none() {
                    return Err(format!(
                        "{} needs the administrator's secret: give the secret (name or ARN) holding the login that creates and changes the users.",
                        f.name()
                    ));
                }
            }
        }
        Kind::Server => {
            value.insert(
                "host".into(),
                json!(required(form, "host", "server's host name or address")?),
            );
            value.insert("port".into(), json!(port(form, 22)?));
            value.insert(
                "username".into(),
                json!(required(form, "username", "user name")?),
            );
            let keypair = form.get("auth") == "keypair";
            if keypair {
                let private = required(form, "private_key", "private key (OpenSSH format)")?;
                value.insert("private_key".into(), json!(private));
                value.insert(
                    "public_key".into(),
                    json!(required(
                        form,
                        "public_key",
                        "public key (one line of authorized_keys)"
                    )?),
                );
                match form.get("key_type") {
                    "ed25519" => {
                        value.insert("key_type".into(), json!("ed25519"));
                    }
                    "" | "rsa" => {}
                    other => return Err(format!("The key type {other:?} is not rsa or ed25519.")),
                }
            } else {
                value.insert(
                    "password".into(),
                    json!(required(form, "password", "user's current password")?),
                );
            }
            let host_key = form.opt("host_key");
            let tofu = form.get("trust_on_first_use") == "on";
            if let Some(k) = &host_key {
                value.insert("host_key".into(), json!(k));
            }
            if tofu {
                value.insert("trust_on_first_use".into(), json!(true));
            }
            if let Some(f) = function {
                if (f == Managed::SshKeypair) != keypair {
                    return Err(if keypair {
                        "kura-ssh-password changes a password, and this login is a key pair: choose kura-ssh-keypair.".to_string()
                    } else {
                        "kura-ssh-keypair rotates a key pair, and this login is a password: choose kura-ssh-password.".to_string()
                    });
                }
                if host_key.is_none() && !tofu {
                    return Err("Rotation checks the server's host key on every connection: give it (ssh-keyscan -t ed25519 HOST), or tick \"Trust the host key on first use\".".into());
                }
            }
        }
        Kind::AccessKey => {
            let user = required(form, "user_name", "kura user's name")?;
            value.insert("UserName".into(), json!(user));
            if form.get("key_source") == "existing" {
                value.insert(
                    "AccessKeyId".into(),
                    json!(required(form, "access_key_id", "access key ID")?),
                );
                value.insert(
                    "SecretAccessKey".into(),
                    json!(required(form, "secret_access_key", "secret access key")?),
                );
            } else {
                new_key_for = Some(user.to_string());
            }
        }
        Kind::Certificate => {
            value.insert(
                "template".into(),
                json!(required(form, "template", "certificate template")?),
            );
            value.insert(
                "common_name".into(),
                json!(required(form, "common_name", "common name")?),
            );
            for field in ["alt_names", "ip_sans"] {
                let list = certificates::names_of(form.get(field));
                if !list.is_empty() {
                    value.insert(field.into(), json!(list));
                }
            }
            if let Some(ttl) = form.opt("ttl") {
                value.insert("ttl".into(), json!(ttl));
            }
            value.insert("rotate_keys".into(), json!(form.get("rotate_keys") == "on"));
            value.insert(
                "revoke_replaced".into(),
                json!(form.get("revoke_replaced") == "on"),
            );
        }
    }
    if let Some(m) = &masterarn {
        value.insert("masterarn".into(), json!(m));
    }
    for (k, v) in &value {
        let shown = match (k.as_str(), v) {
            ("password" | "private_key" | "SecretAccessKey", _) => HIDDEN.to_string(),
            (_, Value::String(s)) => s.clone(),
            (_, Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            (_, other) => other.to_string(),
        };
        facts.push((label_of(k), shown));
    }
    if new_key_for.is_some() {
        facts.push(("Access key", "a new key, created with the secret".into()));
    }
    let rotation = match function {
        None => {
            facts.push(("Rotation", "off".into()));
            None
        }
        Some(f) if !rotation_on => {
            facts.push((
                "Rotation",
                "off: the first certificate is issued now, later ones when you rotate".into(),
            ));
            Some((f.name().to_string(), None, true))
        }
        Some(f) => {
            let rules = sf.rules()?;
            // The first certificate is issued at once: without it the secret holds none.
            let immediately = sf.immediately || kind == Kind::Certificate;
            facts.push(("Rotation function", f.name().into()));
            facts.push(("Schedule", sf.describe()));
            facts.push((
                "Rotate on save",
                if immediately { "yes" } else { "no" }.into(),
            ));
            Some((f.name().to_string(), Some(rules), immediately))
        }
    };
    Ok(Plan {
        name,
        description: form.opt("description"),
        tags,
        value,
        new_key_for,
        rotation,
        facts,
    })
}

/// [`plan`], and for a certificate its request judged by the template's rules as issuance
/// will judge it, so a refusal names the rule now rather than failing the first rotation.
async fn checked_plan(ctx: &Ctx, kind: Kind, form: &Params) -> Result<Plan, String> {
    let plan = plan(kind, form)?;
    if kind == Kind::Certificate {
        let v = &plan.value;
        let strings = |field: &str| -> Vec<String> {
            v.get(field)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let name = str_of(v, "template").to_string();
        let entry = call!(ctx, DescribeCertificateTemplate, NameRequest { name })
            .map_err(|e| layout::error_text(&e))?
            .certificate_template;
        let ttl = v
            .get("ttl")
            .and_then(Value::as_str)
            .map(|t| kura_pki::parse_duration("ttl", t))
            .transpose()
            .map_err(|e| layout::error_text(&e))?;
        let (alt_names, ip_sans) = (strings("alt_names"), strings("ip_sans"));
        let names = kura_pki::Names {
            common_name: str_of(v, "common_name"),
            alt_names: &alt_names,
            ip_sans: &ip_sans,
            ttl_seconds: ttl,
        };
        certificates::template_of(&entry)
            .and_then(|t| t.check(&entry.name, &names))
            .map_err(|e| layout::error_text(&e))?;
    }
    Ok(plan)
}

/// A text field of a value being built; "" when absent.
fn str_of<'a>(v: &'a Map<String, Value>, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn label_of(field: &str) -> &'static str {
    match field {
        "engine" => "Engine",
        "host" => "Host",
        "port" => "Port",
        "username" => "User name",
        "password" => "Password",
        "dbname" => "Database",
        "ssl" => "TLS",
        "masterarn" => "Administrator's secret",
        "private_key" => "Private key",
        "public_key" => "Public key",
        "key_type" => "Key type",
        "host_key" => "Host key",
        "trust_on_first_use" => "Trust the host key on first use",
        "UserName" => "kura user",
        "AccessKeyId" => "Access key ID",
        "SecretAccessKey" => "Secret access key",
        "template" => "Template",
        "common_name" => "Common name",
        "alt_names" => "Alternative names",
        "ip_sans" => "IP addresses",
        "ttl" => "Lifetime",
        "rotate_keys" => "A new key on each rotation",
        "revoke_replaced" => "Revoke the replaced certificate",
        _ => "Field",
    }
}

pub(super) async fn form(ctx: Ctx, Path(slug): Path<String>) -> Response {
    let Some(kind) = Kind::of(&slug) else {
        return unknown(&ctx, &slug);
    };
    form_page(&ctx, kind, &Params::default(), None, None).await
}

fn unknown(ctx: &Ctx, slug: &str) -> Response {
    let e = kura_core::Error::new(
        kura_core::ErrorCode::ResourceNotFound,
        format!(
            "There is no {slug:?} wizard: the console creates database, server, access-key and certificate secrets."
        ),
    );
    layout::failed("Create a secret", ctx, &e)
}

fn text(form: &Params, field: &str, default: &str) -> String {
    match form.get(field) {
        "" => default.to_string(),
        v => v.to_string(),
    }
}

/// A text field of the wizard, filled with what the form had.
fn input(form: &Params, id: &str, label: &str, hint: Option<&str>, attrs: InputKind) -> Markup {
    let hint_id = format!("{id}-hint");
    html! {
        div.field {
            label for=(id) { (label) }
            @match attrs {
                InputKind::Text { required } => input #(id) name=(id) value=(form.get(id)) required[required] spellcheck="false" autocapitalize="off" aria-describedby=[hint.map(|_| &hint_id)];,
                InputKind::Port(p) => input #(id) name=(id) type="number" min="1" max="65535" value=(form.get(id)) placeholder=(p) aria-describedby=[hint.map(|_| &hint_id)];,
                InputKind::Password => input #(id) name=(id) type="password" value=(form.get(id)) autocomplete="off" aria-describedby=[hint.map(|_| &hint_id)];,
                InputKind::Area => textarea #(id) name=(id) rows="4" spellcheck="false" autocomplete="off" aria-describedby=[hint.map(|_| &hint_id)] { (form.get(id)) },
                InputKind::List { list, required } => input #(id) name=(id) value=(form.get(id)) list=(list) required[required] spellcheck="false" autocapitalize="off" aria-describedby=[hint.map(|_| &hint_id)];,
            }
            @if let Some(h) = hint { small #(hint_id) { (h) } }
        }
    }
}

#[derive(Clone, Copy)]
enum InputKind {
    Text { required: bool },
    Port(&'static str),
    Password,
    Area,
    List { list: &'static str, required: bool },
}

fn radio(form: &Params, name: &str, value: &str, default: bool, label: &str) -> Markup {
    let id = format!("{name}-{value}");
    let checked = match form.get(name) {
        "" => default,
        v => v == value,
    };
    html! {
        div.field.check {
            input #(id) type="radio" name=(name) value=(value) checked[checked];
            label for=(id) { (label) }
        }
    }
}

fn select(form: &Params, id: &str, label: &str, options: &[(&str, &str)]) -> Markup {
    let chosen = text(form, id, options.first().map(|o| o.0).unwrap_or(""));
    html! {
        div.field {
            label for=(id) { (label) }
            select #(id) name=(id) {
                @for (v, l) in options { option value=(v) selected[*v == chosen] { (l) } }
            }
        }
    }
}

/// Names of secrets for the administrator's secret field (what the user may list).
async fn secret_names(ctx: &Ctx) -> Vec<String> {
    let req = ListSecretsRequest {
        include_planned_deletion: Some(false),
        max_results: Some(100),
        next_token: None,
        filters: None,
        sort_order: None,
        sort_by: Some("name".into()),
    };
    call!(ctx, ListSecrets, req)
        .map(|p| p.secrets.into_iter().map(|d| d.secret.name).collect())
        .unwrap_or_default()
}

async fn form_page(
    ctx: &Ctx,
    kind: Kind,
    form: &Params,
    error: Option<String>,
    preview: Option<Result<Vec<kura_core::schedule::Window>, String>>,
) -> Response {
    let mut sf = ScheduleForm::of_form(form);
    let fresh = form.get("step").is_empty();
    if fresh {
        // A fresh form: a sensible schedule to start from (certificates: renewed well before
        // a template's usual 30 days run out).
        sf.every = if kind == Kind::Certificate {
            "20"
        } else {
            "30"
        }
        .into();
        sf.unit = "days".into();
        sf.immediately = true;
    }
    let datalist = match kind {
        Kind::AccessKey => call!(ctx, ListUsers, Empty {})
            .map(|r| r.users.into_iter().map(|u| u.user_name).collect())
            .unwrap_or_default(),
        Kind::Certificate => Vec::new(),
        _ => secret_names(ctx).await,
    };
    let templates = match kind {
        Kind::Certificate => {
            Some(call!(ctx, ListCertificateTemplates, Empty {}).map(|r| r.certificate_templates))
        }
        _ => None,
    };
    let ticked = |field: &str, default: bool| {
        if fresh {
            default
        } else {
            form.get(field) == "on"
        }
    };
    let default_function = kind.functions()[0].name();
    let function = text(form, "function", default_function);
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/console/secrets" { "Secrets" } " / " a href="/console/secrets/new" { "Create" } " / " }
        h1 { (kind.title()) }
        @if let Some(e) = &error { div.flash.error role="alert" { (e) } }
        form.stack method="post" action=(kind.action()) {
            (layout::csrf(ctx))
            fieldset {
                legend { "Secret" }
                (input(form, "name", "Name", Some("Letters, digits and /_+=.@-, e.g. prod/billing/db."), InputKind::Text { required: true }))
                div.field {
                    label for="description" { "Description (optional)" }
                    input #description name="description" value=(form.get("description")) maxlength="2048";
                }
            }
            @match kind {
                Kind::Database => fieldset {
                    legend { "Database" }
                    (select(form, "engine", "Engine", &[("postgres", "PostgreSQL"), ("mysql", "MySQL"), ("mariadb", "MariaDB")]))
                    (input(form, "host", "Host", None, InputKind::Text { required: true }))
                    (input(form, "port", "Port", Some("5432 for PostgreSQL, 3306 for MySQL and MariaDB when left empty."), InputKind::Port("default")))
                    (input(form, "username", "User name", None, InputKind::Text { required: true }))
                    (input(form, "password", "Current password", Some("The user's password now; rotation replaces it."), InputKind::Password))
                    (input(form, "dbname", "Database name (optional)", None, InputKind::Text { required: false }))
                    (select(form, "ssl", "TLS", &[("auto", "When the server offers it"), ("true", "Always (TLS only)"), ("false", "Never (plain)")]))
                    (input(form, "masterarn", "Administrator's secret (for alternating users)", Some("The name or ARN of the secret holding a login that may create and change users (PostgreSQL: CREATEROLE; MySQL: CREATE USER and the grants it copies)."), InputKind::List { list: "secret-names", required: false }))
                    datalist #secret-names { @for n in &datalist { option value=(n) {} } }
                },
                Kind::Server => fieldset {
                    legend { "Server (SSH)" }
                    (input(form, "host", "Host", None, InputKind::Text { required: true }))
                    (input(form, "port", "Port", None, InputKind::Port("22")))
                    (input(form, "username", "User name", None, InputKind::Text { required: true }))
                    (radio(form, "auth", "password", true, "Password"))
                    (radio(form, "auth", "keypair", false, "Key pair"))
                    (input(form, "password", "Current password (for a password login)", None, InputKind::Password))
                    (input(form, "private_key", "Private key (for a key pair; OpenSSH format)", None, InputKind::Area))
                    (input(form, "public_key", "Public key (for a key pair)", Some("One line as in authorized_keys: ssh-ed25519 AAAA..."), InputKind::Text { required: false }))
                    (select(form, "key_type", "Type of the keys rotation makes", &[("rsa", "RSA 2048"), ("ed25519", "Ed25519")]))
                    (input(form, "host_key", "Host key", Some("The server's key, pinned and checked on every connection: ssh-keyscan -t ed25519 HOST."), InputKind::Text { required: false }))
                    div.field.check {
                        input #trust_on_first_use type="checkbox" name="trust_on_first_use" checked[form.get("trust_on_first_use") == "on"];
                        label for="trust_on_first_use" { "Trust the host key on first use (the first rotation records it)" }
                    }
                    (input(form, "masterarn", "Administrator's secret (optional)", Some("A root or passwordless-sudo login's secret: rotation then changes the user with chpasswd rather than as the user itself."), InputKind::List { list: "secret-names", required: false }))
                    datalist #secret-names { @for n in &datalist { option value=(n) {} } }
                },
                Kind::AccessKey => fieldset {
                    legend { "Access key" }
                    (input(form, "user_name", "kura user", None, InputKind::List { list: "user-names", required: true }))
                    datalist #user-names { @for n in &datalist { option value=(n) {} } }
                    (radio(form, "key_source", "new", true, "Create a new access key for this user with the secret"))
                    (radio(form, "key_source", "existing", false, "Store a key the user already has"))
                    (input(form, "access_key_id", "Access key ID (an existing key)", None, InputKind::Text { required: false }))
                    (input(form, "secret_access_key", "Secret access key (an existing key)", None, InputKind::Password))
                },
                Kind::Certificate => fieldset {
                    legend { "Certificate" }
                    (template_field(form, templates.as_ref()))
                    (input(form, "common_name", "Common name", Some("A DNS name the template allows, e.g. app.example.internal."), InputKind::Text { required: true }))
                    (input(form, "alt_names", "Alternative names (optional)", Some("More DNS names the certificate carries, one per line."), InputKind::Area))
                    (input(form, "ip_sans", "IP addresses (optional)", Some("Separated by commas or spaces; only if the template allows IP SANs."), InputKind::Text { required: false }))
                    (input(form, "ttl", "Lifetime (optional)", Some("e.g. 30d or 720h, up to the template's maximum; the template's lifetime when empty."), InputKind::Text { required: false }))
                    div.field.check {
                        input #rotate_keys type="checkbox" name="rotate_keys" checked[ticked("rotate_keys", true)];
                        label for="rotate_keys" { "Make a new key on each rotation (otherwise the same key is certified again)" }
                    }
                    div.field.check {
                        input #revoke_replaced type="checkbox" name="revoke_replaced" checked[ticked("revoke_replaced", false)];
                        label for="revoke_replaced" { "Revoke the certificate a rotation replaces (it is listed on the CA's CRL)" }
                    }
                },
            }
            fieldset {
                legend { "Rotation" }
                @if kind == Kind::Certificate {
                    (radio(form, "rotation", "off", false, "Off: issue the first certificate now, renew only when asked"))
                } @else {
                    (radio(form, "rotation", "off", false, "Off: rotate only when asked"))
                }
                (radio(form, "rotation", "on", true, "On, on a schedule"))
                div.field {
                    label for="function" { "Rotation function" }
                    select #function name="function" {
                        @for m in kind.functions() {
                            option value=(m.name()) selected[m.name() == function] { (m.name()) " — " (function_label(*m)) }
                        }
                    }
                }
                (schedule::fields(&sf, preview.as_ref()))
                @if kind == Kind::Certificate {
                    p.hint { "The first certificate is issued as soon as the secret is created, whatever the schedule. A schedule longer than the certificates' lifetime is refused." }
                }
            }
            (tag_editor(&tags_of(form).unwrap_or_default()))
            div.actions {
                button.primary type="submit" name="step" value="review" { "Review" }
                a.button href="/console/secrets/new" { "Cancel" }
            }
        }
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    layout::page(kind.title(), Some(ctx), body, status)
}

/// The certificate wizard's template picker: the templates the user may list, or a text field
/// (with why) when they may not.
fn template_field(
    form: &Params,
    templates: Option<&kura_core::Result<Vec<CertificateTemplateEntry>>>,
) -> Markup {
    html! {
        @match templates {
            Some(Ok(list)) if !list.is_empty() => div.field {
                label for="template" { "Template" }
                select #template name="template" aria-describedby="template-hint" {
                    @for t in list {
                        option value=(t.name) selected[t.name == form.get("template")] {
                            (t.name) " — " (t.certificate_authority) ": " (t.allowed_domains.join(", "))
                        }
                    }
                }
                small #template-hint { "The template decides the CA that signs, the names allowed and the lifetime." }
            },
            other => {
                @match other {
                    Some(Err(e)) => (layout::error_box(e)),
                    _ => p.hint { "There is no certificate template yet: " a href="/console/certificates" { "create a CA and a template" } " first." },
                }
                (input(form, "template", "Template", None, InputKind::Text { required: true }))
            },
        }
    }
}

/// Every field of the form but the token and the step, to carry to the next step.
fn carried(form: &Params) -> Markup {
    html! {
        @for (k, v) in form.pairs().filter(|(k, _)| *k != "csrf" && *k != "step") {
            input type="hidden" name=(k) value=(v);
        }
    }
}

fn review_page(
    ctx: &Ctx,
    kind: Kind,
    form: &Params,
    plan: &Plan,
    error: Option<Markup>,
) -> Response {
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/console/secrets" { "Secrets" } " / " a href=(kind.action()) { (kind.title()) } " / " }
        h1 { "Review: " (plan.name) }
        @if let Some(e) = error { (e) }
        section aria-labelledby="review" {
            h2 #review { "What will be created" }
            dl.grid #review-facts {
                @for (k, v) in &plan.facts { dt { (k) } dd { (v) } }
                @if let Some(d) = &plan.description { dt { "Description" } dd { (d) } }
                @for t in &plan.tags { dt { "Tag" } dd { (t.key) " = " (t.value) } }
            }
            @if plan.rotation.is_some() {
                p.hint { "The secret is created with CreateSecret, then rotation is turned on with RotateSecret; if that is refused, the secret is removed again, so nothing is left half made." }
            }
        }
        form.stack method="post" action=(kind.action()) {
            (layout::csrf(ctx))
            (carried(form))
            div.actions {
                button type="submit" name="step" value="edit" { "Back to edit" }
                button.primary type="submit" name="step" value="create" { "Create secret" }
            }
        }
    };
    layout::page("Review", Some(ctx), body, status)
}

pub(super) async fn submit(ctx: Ctx, Path(slug): Path<String>, body: Bytes) -> Response {
    let Some(kind) = Kind::of(&slug) else {
        return unknown(&ctx, &slug);
    };
    let form = Params::parse(&body);
    if let Err(r) = ctx.check_csrf(&form, &kind.action()).await {
        return r;
    }
    match form.get("step") {
        "preview" => {
            let preview = ScheduleForm::of_form(&form).preview(&ctx);
            form_page(&ctx, kind, &form, None, Some(preview)).await
        }
        "review" => match checked_plan(&ctx, kind, &form).await {
            Ok(p) => review_page(&ctx, kind, &form, &p, None),
            Err(why) => form_page(&ctx, kind, &form, Some(why), None).await,
        },
        "create" => match checked_plan(&ctx, kind, &form).await {
            Ok(p) => create(&ctx, kind, &form, p).await,
            Err(why) => form_page(&ctx, kind, &form, Some(why), None).await,
        },
        _ => form_page(&ctx, kind, &form, None, None).await,
    }
}

/// CreateSecret (after CreateAccessKey, for a new key), then RotateSecret; a later step
/// refused undoes the earlier ones.
async fn create(ctx: &Ctx, kind: Kind, form: &Params, mut plan: Plan) -> Response {
    let failed = |plan: &Plan, text: String| {
        review_page(
            ctx,
            kind,
            form,
            plan,
            Some(html! { div.flash.error role="alert" { (text) } }),
        )
    };
    let mut new_key = None;
    if let Some(user) = &plan.new_key_for {
        let req = CreateAccessKeyRequest {
            user_name: Some(user.clone()),
            access_key_id: None,
            secret_access_key: None,
            expires_in: None,
        };
        match call!(ctx, CreateAccessKey, req) {
            Ok(r) => {
                let k = r.access_key;
                plan.value
                    .insert("AccessKeyId".into(), json!(k.access_key_id));
                plan.value.insert(
                    "SecretAccessKey".into(),
                    json!(k.secret_access_key.0.as_str()),
                );
                new_key = Some((user.clone(), k.access_key_id));
            }
            Err(e) => {
                return failed(
                    &plan,
                    format!("Nothing was created: {}", layout::error_text(&e)),
                );
            }
        }
    }
    let undo_key = async |new_key: &Option<(String, String)>| -> String {
        let Some((user, id)) = new_key else {
            return String::new();
        };
        let req = AccessKeyIdRequest {
            user_name: Some(user.clone()),
            access_key_id: id.clone(),
        };
        match call!(ctx, DeleteAccessKey, req) {
            Ok(_) => format!(" The access key {id} made for it was deleted again."),
            Err(e) => format!(
                " The access key {id} made for it could not be deleted ({}): delete it on the user's page.",
                layout::error_text(&e)
            ),
        }
    };
    let json = Zeroizing::new(Value::Object(std::mem::take(&mut plan.value)).to_string());
    let req = CreateSecretRequest {
        name: plan.name.clone(),
        client_request_token: None,
        description: plan.description.clone(),
        kms_key_id: None,
        value: Some(Plain::text(&json)),
        tags: (!plan.tags.is_empty()).then(|| plan.tags.clone()),
        replica_regions: false,
    };
    if let Err(e) = call!(ctx, CreateSecret, req) {
        let undone = undo_key(&new_key).await;
        return failed(
            &plan,
            format!("Nothing was created: {}{undone}", layout::error_text(&e)),
        );
    }
    let mut done = format!("Created the secret {}.", plan.name);
    if let Some((function, rules, immediately)) = plan.rotation.clone() {
        let req = RotateSecretRequest {
            secret_id: plan.name.clone(),
            client_request_token: None,
            rotation_lambda_arn: Some(function.clone()),
            rotation_rules: rules.clone(),
            rotate_immediately: Some(immediately),
        };
        if let Err(e) = call!(ctx, RotateSecret, req) {
            let removed = call!(
                ctx,
                DeleteSecret,
                DeleteSecretRequest {
                    secret_id: plan.name.clone(),
                    recovery_window_in_days: None,
                    force_delete_without_recovery: Some(true),
                }
            );
            let undone = undo_key(&new_key).await;
            let text = match removed {
                Ok(_) => format!(
                    "Nothing was created: rotation could not be turned on ({}), so the secret was removed again.{undone}",
                    layout::error_text(&e)
                ),
                Err(d) => format!(
                    "The secret {} was created, but rotation could not be turned on ({}) and the secret could not be removed ({}).",
                    plan.name,
                    layout::error_text(&e),
                    layout::error_text(&d)
                ),
            };
            return failed(&plan, text);
        }
        let started = match (kind, immediately) {
            (Kind::Certificate, _) => ", and the first certificate is being issued",
            (_, true) => ", and the first rotation has started",
            (_, false) => "",
        };
        if rules.is_some() {
            done.push_str(&format!(" Rotation is on with {function}{started}."));
        } else {
            done.push_str(&format!(" Its function is {function}{started}."));
        }
    }
    ctx.flash(true, done);
    Redirect::to(&format!("/console/secret?id={}", enc(&plan.name))).into_response()
}
