//! Private certificate authorities, certificate templates, and the certificates CAs issued.

use kura_core::{Error, Result, Timestamp};

use super::{Args, Conn, built, stmt, unstorable};
use crate::rows::*;
use crate::{AcmeAccountRecord, AuthorityRecord, IssuedCertificateRecord, TemplateRecord};

const AUTHORITY_COLUMNS: &str = "name, kind, parent, common_name, key_algorithm, certificate, \
     chain, csr, not_after, ciphertext, wrapped_key, key_name, key_version, created_at";

fn authority_from_row(r: &impl Columns) -> Result<AuthorityRecord> {
    Ok(AuthorityRecord {
        name: r.col("name")?,
        kind: r.col("kind")?,
        parent: r.col("parent")?,
        common_name: r.col("common_name")?,
        key_algorithm: r.col("key_algorithm")?,
        certificate: r.col("certificate")?,
        chain: r.col("chain")?,
        csr: r.col("csr")?,
        not_after: opt_ts(r, "not_after")?,
        sealed_key: sealed_cols(r)?
            .ok_or_else(|| Error::internal("a certificate authority has no key"))?,
        created_at: Timestamp(r.col("created_at")?),
    })
}

fn template_from_row(r: &impl Columns) -> Result<TemplateRecord> {
    Ok(TemplateRecord {
        name: r.col("name")?,
        authority: r.col("authority")?,
        config: r.col("config")?,
        created_at: Timestamp(r.col("created_at")?),
    })
}

pub(crate) async fn insert_authority<C: Conn>(tx: &mut C, a: &AuthorityRecord) -> Result<()> {
    let k = &a.sealed_key;
    stmt(
        "INSERT INTO pki_authorities (name, kind, parent, common_name, key_algorithm, \
         certificate, chain, csr, not_after, ciphertext, wrapped_key, key_name, key_version, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&a.name)
    .bind(&a.kind)
    .bind(a.parent.as_deref())
    .bind(&a.common_name)
    .bind(&a.key_algorithm)
    .bind(a.certificate.as_deref())
    .bind(&a.chain)
    .bind(a.csr.as_deref())
    .bind(a.not_after)
    .bind(k.ciphertext.as_slice())
    .bind(k.wrapped_key.as_slice())
    .bind(k.key_name.as_str())
    .bind(k.key_version)
    .bind(a.created_at)
    .taken(Error::exists(format!(
        "A certificate authority named {} already exists.",
        a.name
    )))
    .execute(tx)
    .await?;
    Ok(())
}

pub(crate) async fn authority<C: Conn>(
    conn: &mut C,
    name: &str,
) -> Result<Option<AuthorityRecord>> {
    if unstorable::<C>(&[name]) {
        return Ok(None);
    }
    let sql = format!("SELECT {AUTHORITY_COLUMNS} FROM pki_authorities WHERE name = $1");
    let mut args = Args::default();
    args.push(name);
    built(sql, args)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(authority_from_row)
        .transpose()
}

pub(crate) async fn list_authorities<C: Conn>(conn: &mut C) -> Result<Vec<AuthorityRecord>> {
    let sql = format!(
        "SELECT {AUTHORITY_COLUMNS} FROM pki_authorities ORDER BY name{}",
        C::CODE_POINT_ORDER
    );
    built(sql, Args::default())
        .fetch_all(conn)
        .await?
        .iter()
        .map(authority_from_row)
        .collect()
}

/// Completes an intermediate waiting for its certificate; false if there is none waiting.
pub(crate) fn set_authority_certificate<'a>(
    name: &'a str,
    certificate: &'a str,
    chain: &'a str,
    not_after: Timestamp,
) -> super::Stmt<'a> {
    stmt(
        "UPDATE pki_authorities SET certificate = $2, chain = $3, not_after = $4, csr = NULL \
         WHERE name = $1 AND certificate IS NULL",
    )
    .bind(name)
    .bind(certificate)
    .bind(chain)
    .bind(not_after)
}

/// Removes a CA unless a template or another CA uses it; false if there was none.
pub(crate) async fn delete_authority<C: Conn>(tx: &mut C, name: &str) -> Result<bool> {
    if !C::FOR_UPDATE.is_empty() {
        let sql = format!(
            "SELECT 1 FROM pki_authorities WHERE name = $1{}",
            C::FOR_UPDATE
        );
        let mut args = Args::default();
        args.push(name);
        built(sql, args).execute(tx).await?;
    }
    let templates: Vec<String> =
        stmt("SELECT name FROM pki_templates WHERE authority = $1 ORDER BY name")
            .bind(name)
            .scalars(tx)
            .await?;
    if !templates.is_empty() {
        return Err(Error::invalid_request(format!(
            "The certificate authority {name} is used by certificate template(s) {}. Delete them first.",
            templates.join(", ")
        )));
    }
    let children: Vec<String> =
        stmt("SELECT name FROM pki_authorities WHERE parent = $1 ORDER BY name")
            .bind(name)
            .scalars(tx)
            .await?;
    if !children.is_empty() {
        return Err(Error::invalid_request(format!(
            "The certificate authority {name} signed the intermediate(s) {}. Delete them first.",
            children.join(", ")
        )));
    }
    // Its issued certificates go with it: a CA made again under this name starts a new CRL.
    stmt("DELETE FROM pki_certificates WHERE authority = $1")
        .bind(name)
        .execute(tx)
        .await?;
    Ok(stmt("DELETE FROM pki_authorities WHERE name = $1")
        .bind(name)
        .execute(tx)
        .await?
        == 1)
}

/// Adds a template for an existing CA.
pub(crate) async fn insert_template<C: Conn>(tx: &mut C, t: &TemplateRecord) -> Result<()> {
    // Locked, so a concurrent DeleteCertificateAuthority cannot remove it under the template.
    if !C::FOR_UPDATE.is_empty() {
        let sql = format!(
            "SELECT 1 FROM pki_authorities WHERE name = $1{}",
            C::FOR_UPDATE
        );
        let mut args = Args::default();
        args.push(t.authority.as_str());
        built(sql, args).execute(tx).await?;
    }
    let n: i64 = stmt("SELECT COUNT(*) FROM pki_authorities WHERE name = $1")
        .bind(&t.authority)
        .scalar(tx)
        .await?;
    if n == 0 {
        return Err(Error::not_found(format!(
            "The certificate authority {} does not exist.",
            t.authority
        )));
    }
    stmt("INSERT INTO pki_templates (name, authority, config, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&t.name)
        .bind(&t.authority)
        .bind(&t.config)
        .bind(t.created_at)
        .taken(Error::exists(format!(
            "A certificate template named {} already exists.",
            t.name
        )))
        .execute(tx)
        .await?;
    Ok(())
}

pub(crate) async fn template<C: Conn>(conn: &mut C, name: &str) -> Result<Option<TemplateRecord>> {
    if unstorable::<C>(&[name]) {
        return Ok(None);
    }
    stmt("SELECT name, authority, config, created_at FROM pki_templates WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(template_from_row)
        .transpose()
}

pub(crate) async fn list_templates<C: Conn>(conn: &mut C) -> Result<Vec<TemplateRecord>> {
    let sql = format!(
        "SELECT name, authority, config, created_at FROM pki_templates ORDER BY name{}",
        C::CODE_POINT_ORDER
    );
    built(sql, Args::default())
        .fetch_all(conn)
        .await?
        .iter()
        .map(template_from_row)
        .collect()
}

pub(crate) fn delete_template(name: &str) -> super::Stmt<'_> {
    stmt("DELETE FROM pki_templates WHERE name = $1").bind(name)
}

pub(crate) fn insert_certificate(c: &IssuedCertificateRecord) -> super::Stmt<'_> {
    stmt(
        "INSERT INTO pki_certificates (authority, serial, template, common_name, secret_arn, \
         issued_at, not_after, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&c.authority)
    .bind(&c.serial)
    .bind(c.template.as_deref())
    .bind(&c.common_name)
    .bind(c.secret_arn.as_deref())
    .bind(c.issued_at)
    .bind(c.not_after)
    .bind(c.revoked_at)
    .taken(Error::exists(format!(
        "Serial number {} was issued twice by {}.",
        c.serial, c.authority
    )))
}

/// Marks a certificate revoked (kept as it was if it already is).
pub(crate) fn revoke_certificate<'a>(
    authority: &'a str,
    serial: &'a str,
    at: Timestamp,
) -> super::Stmt<'a> {
    stmt(
        "UPDATE pki_certificates SET revoked_at = $3 \
         WHERE authority = $1 AND serial = $2 AND revoked_at IS NULL",
    )
    .bind(authority)
    .bind(serial)
    .bind(at)
}

pub(crate) async fn certificate<C: Conn>(
    conn: &mut C,
    authority: &str,
    serial: &str,
) -> Result<Option<IssuedCertificateRecord>> {
    if unstorable::<C>(&[authority, serial]) {
        return Ok(None);
    }
    stmt(
        "SELECT authority, serial, template, common_name, secret_arn, issued_at, not_after, \
         revoked_at FROM pki_certificates WHERE authority = $1 AND serial = $2",
    )
    .bind(authority)
    .bind(serial)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(|r| {
        Ok(IssuedCertificateRecord {
            authority: r.col("authority")?,
            serial: r.col("serial")?,
            template: r.col("template")?,
            common_name: r.col("common_name")?,
            secret_arn: r.col("secret_arn")?,
            issued_at: Timestamp(r.col("issued_at")?),
            not_after: Timestamp(r.col("not_after")?),
            revoked_at: opt_ts(r, "revoked_at")?,
        })
    })
    .transpose()
}

/// The revoked certificates of a CA that have not expired yet (an expired one leaves the CRL).
pub(crate) async fn revoked_certificates<C: Conn>(
    conn: &mut C,
    authority: &str,
    now: Timestamp,
) -> Result<Vec<(String, Timestamp)>> {
    let rows = stmt(
        "SELECT serial, revoked_at FROM pki_certificates \
         WHERE authority = $1 AND revoked_at IS NOT NULL AND not_after > $2 ORDER BY serial",
    )
    .bind(authority)
    .bind(now)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.col("serial")?, Timestamp(r.col("revoked_at")?))))
        .collect()
}

pub(crate) async fn acme_account<C: Conn>(
    conn: &mut C,
    directory_url: &str,
    email: &str,
) -> Result<Option<AcmeAccountRecord>> {
    if unstorable::<C>(&[directory_url, email]) {
        return Ok(None);
    }
    stmt(
        "SELECT directory_url, email, ciphertext, wrapped_key, key_name, key_version, created_at \
         FROM acme_accounts WHERE directory_url = $1 AND email = $2",
    )
    .bind(directory_url)
    .bind(email)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(|r| {
        Ok(AcmeAccountRecord {
            directory_url: r.col("directory_url")?,
            email: r.col("email")?,
            sealed_credentials: sealed_cols(r)?
                .ok_or_else(|| Error::internal("an ACME account has no credentials"))?,
            created_at: Timestamp(r.col("created_at")?),
        })
    })
    .transpose()
}

/// Keeps an ACME account unless its directory and email have one; one row if kept.
pub(crate) fn insert_acme_account(a: &AcmeAccountRecord) -> super::Stmt<'_> {
    let k = &a.sealed_credentials;
    stmt(
        "INSERT INTO acme_accounts (directory_url, email, ciphertext, wrapped_key, key_name, \
         key_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (directory_url, email) DO NOTHING",
    )
    .bind(&a.directory_url)
    .bind(&a.email)
    .bind(k.ciphertext.as_slice())
    .bind(k.wrapped_key.as_slice())
    .bind(k.key_name.as_str())
    .bind(k.key_version)
    .bind(a.created_at)
}
