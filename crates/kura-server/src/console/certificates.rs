//! kura's private PKI for administrators (Kura.ListCertificateAuthorities,
//! CreateCertificateAuthority, DescribeCertificateAuthority, ListCertificateTemplates,
//! CreateCertificateTemplate, RevokeCertificate): the CAs and templates, a root or an
//! intermediate (signed by a kura CA, or a CSR for an external root), a template, revocation by
//! serial number, and a CA's page with its certificate and where its PEM and CRL are served.

use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use kura_core::{Error, Result};
use kura_pki::{KeyAlgorithm, KeyUsage, Template, parse_duration};
use maud::{Markup, html};

use super::{Ctx, Params, call, enc, layout};
use crate::service::types::{
    CertificateAuthorityEntry, CertificateTemplateEntry, CreateCertificateAuthorityRequest,
    CreateCertificateTemplateRequest, Empty, NameRequest, RevokeCertificateRequest,
};

const PAGE: &str = "/console/certificates";
const USAGES: [(&str, &str); 3] = [
    ("server", "Server (TLS server authentication)"),
    ("client", "Client (TLS client authentication)"),
    ("code_signing", "Code signing"),
];

/// A template's rules as issuance judges them, rebuilt from what the API shows of it.
pub(super) fn template_of(t: &CertificateTemplateEntry) -> Result<Template> {
    Ok(Template {
        authority: t.certificate_authority.clone(),
        ttl_seconds: parse_duration("Ttl", &t.ttl)?,
        max_ttl_seconds: parse_duration("MaxTtl", &t.max_ttl)?,
        allowed_domains: t.allowed_domains.clone(),
        allow_ip_sans: t.allow_ip_sans,
        key_algorithm: KeyAlgorithm::parse("KeyAlgorithm", &t.key_algorithm)?,
        key_usages: t
            .key_usages
            .iter()
            .map(|u| KeyUsage::parse(u))
            .collect::<Result<_>>()?,
    })
}

pub(super) fn ca_href(name: &str) -> String {
    format!("/console/certificates/ca?name={}", enc(name))
}

pub(super) async fn list(ctx: Ctx) -> Response {
    page(&ctx, &Params::default(), None).await
}

/// The certificates page; `form` and `error` are a form just refused, shown again filled in.
async fn page(ctx: &Ctx, form: &Params, error: Option<Error>) -> Response {
    let cas = call!(ctx, ListCertificateAuthorities, Empty {}).map(|r| r.certificate_authorities);
    let templates = call!(ctx, ListCertificateTemplates, Empty {}).map(|r| r.certificate_templates);
    let names: Vec<&str> = cas
        .as_ref()
        .map(|l| l.iter().map(|a| a.name.as_str()).collect())
        .unwrap_or_default();
    let body = html! {
        h1 { "Certificates" }
        p.muted {
            "kura's own certificate authorities, and the templates certificate secrets are issued under. "
            a href="/console/secrets/new/certificate" { "Create a certificate secret" }
        }
        @if let Some(e) = &error { (layout::error_box(e)) }
        section aria-labelledby="cas" {
            h2 #cas { "Certificate authorities" }
            @match &cas {
                Err(e) => (layout::error_box(e)),
                Ok(list) if list.is_empty() => p.empty { "No certificate authority yet." },
                Ok(list) => div.scroll { table #ca-list {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Status" } th scope="col" { "Common name" } th scope="col" { "Key" } th scope="col" { "Expires" } } }
                    tbody { @for a in list { tr {
                        td { a href=(ca_href(&a.name)) { (a.name) } }
                        td { (a.kind) @if let Some(p) = &a.parent_authority { " (under " (p) ")" } }
                        td { (a.status) }
                        td { (a.common_name) }
                        td { (a.key_algorithm) }
                        td { (layout::opt_time(a.expiration_date)) }
                    } } }
                } },
            }
        }
        section aria-labelledby="templates" {
            h2 #templates { "Templates" }
            @match &templates {
                Err(e) => (layout::error_box(e)),
                Ok(list) if list.is_empty() => p.empty { "No certificate template yet." },
                Ok(list) => div.scroll { table #template-list {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "CA" } th scope="col" { "Lifetime (max)" } th scope="col" { "Allowed names" } th scope="col" { "IP SANs" } th scope="col" { "Key" } th scope="col" { "Usages" } } }
                    tbody { @for t in list { tr {
                        td { (t.name) }
                        td { a href=(ca_href(&t.certificate_authority)) { (t.certificate_authority) } }
                        td { (t.ttl) " (" (t.max_ttl) ")" }
                        td.wrap { (t.allowed_domains.join(", ")) }
                        td { @if t.allow_ip_sans { "allowed" } @else { "no" } }
                        td { (t.key_algorithm) }
                        td { (t.key_usages.join(", ")) }
                    } } }
                } },
            }
        }
        (ca_form(ctx, form, &names))
        (template_form(ctx, form, &names))
        (revoke_form(ctx, form, &names))
    };
    let status = match (&cas, &error) {
        (Err(e), _) | (_, Some(e)) => layout::status_of(e),
        _ => StatusCode::OK,
    };
    layout::page("Certificates", Some(ctx), body, status)
}

fn algorithm_select(id: &str, chosen: &str) -> Markup {
    let chosen = if chosen.is_empty() {
        KeyAlgorithm::EcdsaP256.name()
    } else {
        chosen
    };
    html! {
        select #(id) name=(id) {
            @for a in KeyAlgorithm::ALL { option value=(a.name()) selected[a.name() == chosen] { (a.name()) } }
        }
    }
}

fn ca_form(ctx: &Ctx, form: &Params, cas: &[&str]) -> Markup {
    let kind = match form.get("ca_type") {
        "" => "root",
        k => k,
    };
    html! {
        section aria-labelledby="new-ca" {
            h2 #new-ca { "Create a certificate authority" }
            form.stack method="post" action="/console/certificates/ca" {
                (layout::csrf(ctx))
                div.field {
                    label for="ca_name" { "Name" }
                    input #ca_name name="ca_name" required maxlength="64" value=(form.get("ca_name")) spellcheck="false" autocapitalize="off" aria-describedby="ca_name-hint";
                    small #ca_name-hint { "Letters, digits, - and _: it is in the CA's URLs, /pki/NAME/ca.pem and /pki/NAME/crl." }
                }
                div.field {
                    label for="ca_type" { "Type" }
                    select #ca_type name="ca_type" {
                        option value="root" selected[kind == "root"] { "Root (signs itself)" }
                        option value="intermediate" selected[kind == "intermediate"] { "Intermediate" }
                    }
                }
                div.field {
                    label for="ca_parent" { "Signed by (intermediate)" }
                    select #ca_parent name="ca_parent" aria-describedby="ca_parent-hint" {
                        option value="" { "— an external root (kura makes a CSR)" }
                        @for n in cas { option value=(n) selected[*n == form.get("ca_parent")] { (n) } }
                    }
                    small #ca_parent-hint { "For an intermediate: the kura CA that signs it, or an external root that signs its CSR." }
                }
                div.field {
                    label for="ca_common_name" { "Common name (optional)" }
                    input #ca_common_name name="ca_common_name" maxlength="64" value=(form.get("ca_common_name")) placeholder="Example Root";
                }
                div.row {
                    div.field {
                        label for="ca_key" { "Key algorithm" }
                        (algorithm_select("ca_key", form.get("ca_key")))
                    }
                    div.field {
                        label for="ca_ttl" { "Lifetime (optional)" }
                        input #ca_ttl name="ca_ttl" value=(form.get("ca_ttl")) placeholder="3650d" spellcheck="false" aria-describedby="ca_ttl-hint";
                    }
                }
                small #ca_ttl-hint { "e.g. 365d or 8760h; 10 years for a root and 5 for an intermediate when empty." }
                div.actions { button.primary type="submit" { "Create certificate authority" } }
            }
        }
    }
}

fn template_form(ctx: &Ctx, form: &Params, cas: &[&str]) -> Markup {
    let fresh = form.get("tpl_name").is_empty();
    let usage_on = |u: &str| {
        if fresh {
            u == "server"
        } else {
            form.all("tpl_usage").any(|v| v == u)
        }
    };
    html! {
        section aria-labelledby="new-template" {
            h2 #new-template { "Create a template" }
            form.stack method="post" action="/console/certificates/template" {
                (layout::csrf(ctx))
                div.field {
                    label for="tpl_name" { "Name" }
                    input #tpl_name name="tpl_name" required maxlength="64" value=(form.get("tpl_name")) spellcheck="false" autocapitalize="off";
                }
                div.field {
                    label for="tpl_ca" { "Issued by" }
                    select #tpl_ca name="tpl_ca" {
                        @for n in cas { option value=(n) selected[*n == form.get("tpl_ca")] { (n) } }
                    }
                }
                div.field {
                    label for="tpl_domains" { "Allowed names" }
                    textarea #tpl_domains name="tpl_domains" rows="3" required spellcheck="false" autocapitalize="off" aria-describedby="tpl_domains-hint" { (form.get("tpl_domains")) }
                    small #tpl_domains-hint { "One per line: example.com (exactly that name), .example.com (any name below it) or a glob such as web-*.example.com." }
                }
                div.row {
                    div.field {
                        label for="tpl_ttl" { "Lifetime" }
                        input #tpl_ttl name="tpl_ttl" value=(form.get("tpl_ttl")) placeholder="30d" spellcheck="false";
                    }
                    div.field {
                        label for="tpl_max_ttl" { "Longest lifetime" }
                        input #tpl_max_ttl name="tpl_max_ttl" value=(form.get("tpl_max_ttl")) placeholder="the lifetime" spellcheck="false";
                    }
                }
                div.field {
                    label for="tpl_key" { "Key algorithm of issued keys" }
                    (algorithm_select("tpl_key", form.get("tpl_key")))
                }
                div.field.check {
                    input #tpl_ip type="checkbox" name="tpl_ip" checked[form.get("tpl_ip") == "on"];
                    label for="tpl_ip" { "Allow IP addresses (IP SANs)" }
                }
                fieldset {
                    legend { "Key usages" }
                    @for (u, label) in USAGES {
                        div.field.check {
                            input id={ "tpl_usage_" (u) } type="checkbox" name="tpl_usage" value=(u) checked[usage_on(u)];
                            label for={ "tpl_usage_" (u) } { (label) }
                        }
                    }
                }
                div.actions { button.primary type="submit" { "Create template" } }
            }
        }
    }
}

/// Revocation by serial number; `cas` the CAs to choose from (the first chosen by default).
fn revoke_form(ctx: &Ctx, form: &Params, cas: &[&str]) -> Markup {
    html! {
        section aria-labelledby="revoke" {
            h2 #revoke { "Revoke a certificate" }
            form.stack method="post" action="/console/certificates/revoke" {
                (layout::csrf(ctx))
                div.field {
                    label for="rv_ca" { "Issued by" }
                    select #rv_ca name="rv_ca" {
                        @for n in cas { option value=(n) selected[*n == form.get("rv_ca")] { (n) } }
                    }
                }
                div.field {
                    label for="rv_serial" { "Serial number" }
                    input #rv_serial name="rv_serial" required value=(form.get("rv_serial")) spellcheck="false" autocapitalize="off" aria-describedby="rv_serial-hint";
                    small #rv_serial-hint { "Hexadecimal, with or without colons, as a certificate secret's serial_number shows it. The CA's next CRL lists it." }
                }
                div.actions { button type="submit" { "Revoke certificate" } }
            }
        }
    }
}

async fn checked(ctx: &Ctx, body: &Bytes, path: &str) -> std::result::Result<Params, Response> {
    let form = Params::parse(body);
    ctx.check_csrf(&form, path).await?;
    Ok(form)
}

pub(super) async fn create_ca(ctx: Ctx, body: Bytes) -> Response {
    let form = match checked(&ctx, &body, "/console/certificates/ca").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let name = form.get("ca_name").trim().to_string();
    let kind = form.get("ca_type").to_string();
    let req = CreateCertificateAuthorityRequest {
        name: name.clone(),
        kind: kind.clone(),
        common_name: form.opt("ca_common_name"),
        key_algorithm: form.opt("ca_key"),
        ttl: form.opt("ca_ttl"),
        // A root has no parent: the field left set from another choice means nothing.
        parent_authority: form.opt("ca_parent").filter(|_| kind != "root"),
    };
    match call!(ctx, CreateCertificateAuthority, req) {
        Ok(r) => {
            let what = match r.certificate_authority.csr {
                Some(_) => {
                    "Created the intermediate CA {name}: have the external root sign its CSR below, then import the certificate with kura ca import."
                }
                None => "Created the certificate authority {name}.",
            };
            ctx.flash(true, what.replace("{name}", &name));
            Redirect::to(&ca_href(&name)).into_response()
        }
        Err(e) => page(&ctx, &form, Some(e)).await,
    }
}

/// The names of a textarea or list field: one per line, or separated by commas or spaces.
pub(super) fn names_of(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

pub(super) async fn create_template(ctx: Ctx, body: Bytes) -> Response {
    let form = match checked(&ctx, &body, "/console/certificates/template").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let name = form.get("tpl_name").trim().to_string();
    let req = CreateCertificateTemplateRequest {
        name: name.clone(),
        certificate_authority: form.get("tpl_ca").to_string(),
        ttl: form.opt("tpl_ttl"),
        max_ttl: form.opt("tpl_max_ttl"),
        allowed_domains: names_of(form.get("tpl_domains")),
        allow_ip_sans: Some(form.get("tpl_ip") == "on"),
        key_algorithm: form.opt("tpl_key"),
        key_usages: Some(form.all("tpl_usage").map(str::to_string).collect()),
    };
    match call!(ctx, CreateCertificateTemplate, req) {
        Ok(_) => {
            ctx.flash(true, format!("Created the certificate template {name}."));
            Redirect::to(PAGE).into_response()
        }
        Err(e) => page(&ctx, &form, Some(e)).await,
    }
}

pub(super) async fn revoke(ctx: Ctx, body: Bytes) -> Response {
    let form = match checked(&ctx, &body, "/console/certificates/revoke").await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let req = RevokeCertificateRequest {
        certificate_authority: form.get("rv_ca").to_string(),
        serial_number: form.get("rv_serial").trim().to_string(),
    };
    match call!(ctx, RevokeCertificate, req) {
        Ok(r) => {
            ctx.flash(
                true,
                format!(
                    "Revoked the certificate {} of {}: the CA's CRL lists it from now on.",
                    r.serial_number, r.certificate_authority
                ),
            );
            // Back where the form was: a CA's page sends its own name.
            let back = match form.get("back") {
                "ca" => ca_href(&r.certificate_authority),
                _ => PAGE.to_string(),
            };
            Redirect::to(&back).into_response()
        }
        Err(e) => page(&ctx, &form, Some(e)).await,
    }
}

/// A CA's page: what it is, its certificate (and chain, or CSR), and its public URLs.
pub(super) async fn show_ca(ctx: Ctx, uri: Uri) -> Response {
    let name = Params::query(&uri).get("name").to_string();
    let a = match call!(ctx, DescribeCertificateAuthority, NameRequest { name }) {
        Ok(r) => r.certificate_authority,
        Err(e) => return layout::failed("Certificate authority", &ctx, &e),
    };
    let body = ca_body(&ctx, &a);
    layout::ok(&a.name, &ctx, body)
}

fn ca_body(ctx: &Ctx, a: &CertificateAuthorityEntry) -> Markup {
    let active = a.certificate.is_some();
    html! {
        nav.crumbs aria-label="Breadcrumb" { a href=(PAGE) { "Certificates" } " / " }
        div.titlebar {
            h1 { (a.name) }
            @if !active { span.badge.warn { "Waiting for its certificate" } }
        }
        section aria-labelledby="ca-details" {
            h2 #ca-details { "Details" }
            dl.grid {
                dt { "Type" } dd { (a.kind) }
                dt { "Status" } dd { (a.status) }
                dt { "Common name" } dd { (a.common_name) }
                dt { "Key algorithm" } dd { (a.key_algorithm) }
                dt { "Signed by" } dd {
                    @match &a.parent_authority {
                        Some(p) => a href=(ca_href(p)) { (p) },
                        None if a.kind == "root" => "itself",
                        None => "an external root",
                    }
                }
                dt { "Expires" } dd { (layout::opt_time(a.expiration_date)) }
                dt { "Created" } dd { (layout::time(a.created_date)) }
            }
        }
        @if active {
            section aria-labelledby="ca-public" {
                h2 #ca-public { "Published" }
                p { "Served without signing in, for clients that verify:" }
                ul {
                    li { a #ca-pem href=(a.certificate_path) { "Certificate (PEM)" } " " code { (a.certificate_path) } }
                    li { a #ca-crl href=(a.crl_path) { "Certificate revocation list (DER)" } " " code { (a.crl_path) } }
                }
            }
        }
        @if let Some(cert) = &a.certificate {
            section aria-labelledby="ca-cert" {
                h2 #ca-cert { "Certificate" }
                pre.value tabindex="0" aria-label="The CA's certificate (PEM)" { (cert) }
                @if let Some(chain) = &a.certificate_chain {
                    h3 { "Chain above it" }
                    pre.value tabindex="0" aria-label="The certificates above the CA (PEM)" { (chain) }
                }
            }
        }
        @if let Some(csr) = &a.csr.as_ref().filter(|_| !active) {
            section aria-labelledby="ca-csr" {
                h2 #ca-csr { "Certificate signing request" }
                p { "Have the external root sign it, then: " code { "kura ca import " (a.name) " --certificate @signed.pem" } }
                pre.value tabindex="0" aria-label="The CA's CSR (PEM)" { (csr) }
            }
        }
        @if active {
            section aria-labelledby="revoke" {
                h2 #revoke { "Revoke a certificate it issued" }
                form.inline method="post" action="/console/certificates/revoke" {
                    (layout::csrf(ctx))
                    input type="hidden" name="rv_ca" value=(a.name);
                    input type="hidden" name="back" value="ca";
                    div.field {
                        label for="rv_serial" { "Serial number" }
                        input #rv_serial name="rv_serial" required spellcheck="false" autocapitalize="off";
                    }
                    button type="submit" { "Revoke certificate" }
                }
            }
        }
    }
}
