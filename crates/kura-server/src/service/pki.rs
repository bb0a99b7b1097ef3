//! Private certificate authorities and certificate templates (Kura.*CertificateAuthority,
//! Kura.*CertificateTemplate, Kura.RevokeCertificate), the issuance the
//! `kura-private-certificate` rotation asks for, and what `GET /pki/<ca>/ca.pem` and `/crl`
//! serve. The X.509 work is kura-pki's; here are the rules about names, storage and keys. A
//! CA's private key is sealed by the keyring like every other secret kura keeps, and no answer
//! carries it.

use kura_core::{Error, Result, Timestamp};
use kura_pki::{
    IssueRequest, KeyAlgorithm, KeyUsage, Names, NewAuthority, PrivateKey, RevokedSerial, Template,
    normalize_serial, parse_duration, show_duration, show_stored_serial,
};
use kura_rotation::function::{CertificateRequest, IssuedCertificate};
use kura_store::{AuthorityRecord, IssuedCertificateRecord, TemplateRecord};
use zeroize::Zeroizing;

use super::types::*;
use super::{Caller, Service};

const ROOT: &str = "root";
const INTERMEDIATE: &str = "intermediate";
const DEFAULT_ROOT_TTL: &str = "87600h"; // 10 years
const DEFAULT_INTERMEDIATE_TTL: &str = "43800h"; // 5 years
const DEFAULT_CERTIFICATE_TTL: &str = "720h"; // 30 days
/// How long a CRL served now stays valid: clients fetch a fresh one within a day.
const CRL_VALID_MS: i64 = Timestamp::MS_PER_DAY;

pub(crate) fn ca_context(name: &str) -> Vec<u8> {
    format!("kura/certificate-authority/{name}").into_bytes()
}

/// CA and template names: they appear in URL paths (`/pki/<name>/ca.pem`).
fn validate_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(Error::invalid_parameter(format!(
            "{field} {name:?} must be 1-64 characters of letters, digits, '-' and '_'."
        )));
    }
    Ok(())
}

fn ca_not_found(name: &str) -> Error {
    Error::not_found(format!(
        "The certificate authority {name} does not exist. Create it with Kura.CreateCertificateAuthority."
    ))
}

fn template_not_found(name: &str) -> Error {
    Error::not_found(format!(
        "The certificate template {name} does not exist. Create it with Kura.CreateCertificateTemplate."
    ))
}

fn stored_template(rec: &TemplateRecord) -> Result<Template> {
    serde_json::from_str(&rec.config)
        .map_err(|e| Error::internal(format!("stored certificate template {}: {e}", rec.name)))
}

impl Service {
    fn authority_entry(&self, a: &AuthorityRecord) -> CertificateAuthorityEntry {
        CertificateAuthorityEntry {
            name: a.name.clone(),
            kind: a.kind.clone(),
            status: if a.certificate.is_some() {
                "Active".into()
            } else {
                "PendingCertificate".into()
            },
            common_name: a.common_name.clone(),
            key_algorithm: a.key_algorithm.clone(),
            parent_authority: a.parent.clone(),
            certificate: a.certificate.clone(),
            certificate_chain: (!a.chain.is_empty()).then(|| a.chain.clone()),
            csr: a.csr.clone(),
            expiration_date: a.not_after,
            created_date: a.created_at,
            certificate_path: format!("/pki/{}/ca.pem", a.name),
            crl_path: format!("/pki/{}/crl", a.name),
        }
    }

    /// A CA's private key, opened for one signature.
    async fn authority_key(&self, a: &AuthorityRecord) -> Result<PrivateKey> {
        let sealed = &a.sealed_key;
        self.ready_version(&sealed.key_name, sealed.key_version)
            .await?;
        let bytes = self.open_internal(&ca_context(&a.name), sealed)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::internal(format!("the sealed key of CA {} is damaged", a.name)))?;
        Ok(PrivateKey(Zeroizing::new(text.to_string())))
    }

    async fn find_authority(&self, name: &str) -> Result<AuthorityRecord> {
        validate_name("Name", name)?;
        self.store
            .authority(name)
            .await?
            .ok_or_else(|| ca_not_found(name))
    }

    /// An active CA: its record and certificate.
    async fn active_authority(&self, name: &str) -> Result<(AuthorityRecord, String)> {
        let a = self.find_authority(name).await?;
        let cert = a.certificate.clone().ok_or_else(|| {
            Error::invalid_request(format!(
                "The certificate authority {name} has no certificate yet: have the external root sign its CSR, then call Kura.ImportCertificateAuthorityCertificate."
            ))
        })?;
        Ok((a, cert))
    }

    pub async fn create_certificate_authority(
        &self,
        p: &Caller,
        req: CreateCertificateAuthorityRequest,
    ) -> Result<CertificateAuthorityResponse> {
        validate_name("Name", &req.name)?;
        let algorithm = match &req.key_algorithm {
            Some(a) => KeyAlgorithm::parse("KeyAlgorithm", a)?,
            None => KeyAlgorithm::EcdsaP256,
        };
        let kind = req.kind.as_str();
        let default_ttl = match kind {
            ROOT => DEFAULT_ROOT_TTL,
            INTERMEDIATE => DEFAULT_INTERMEDIATE_TTL,
            other => {
                return Err(Error::invalid_parameter(format!(
                    "Type {other:?} is not a kind of certificate authority: use root or intermediate."
                )));
            }
        };
        if kind == ROOT && req.parent_authority.is_some() {
            return Err(Error::invalid_parameter(
                "A root signs itself: ParentAuthority is only for Type intermediate.",
            ));
        }
        let ttl = parse_duration("Ttl", req.ttl.as_deref().unwrap_or(default_ttl))?;
        let common_name = req.common_name.clone().unwrap_or_else(|| req.name.clone());
        if common_name.is_empty() || common_name.len() > 64 {
            return Err(Error::invalid_parameter(
                "CommonName must be 1-64 characters.",
            ));
        }
        let now = self.clock.now();
        let new = NewAuthority {
            common_name: &common_name,
            algorithm,
            now,
            not_after: now.plus_ms(ttl * 1000),
        };
        let (made, chain) = match (&req.parent_authority, kind) {
            (None, ROOT) => (kura_pki::new_authority(&new, None, false)?, String::new()),
            // No kura parent: an external root signs the CSR.
            (None, _) => (kura_pki::new_authority(&new, None, true)?, String::new()),
            (Some(parent), _) => {
                let (pa, pcert) = self.active_authority(parent).await?;
                let pkey = self.authority_key(&pa).await?;
                let made = kura_pki::new_authority(&new, Some((&pcert, &pkey)), false)?;
                // The chain above the new CA: its parent unless that is a root, and above.
                let chain = if pa.kind == ROOT {
                    String::new()
                } else {
                    format!("{pcert}{}", pa.chain)
                };
                (made, chain)
            }
        };
        let not_after = match &made.certificate {
            Some(c) => Some(kura_pki::certificate_info("the new certificate", c)?.not_after),
            None => None,
        };
        let sealed_key = self.seal_internal(&ca_context(&req.name), made.key.pem().as_bytes())?;
        let rec = AuthorityRecord {
            name: req.name.clone(),
            kind: kind.to_string(),
            parent: req.parent_authority.clone(),
            common_name,
            key_algorithm: algorithm.name().to_string(),
            certificate: made.certificate,
            chain,
            csr: made.csr,
            not_after,
            sealed_key,
            created_at: now,
        };
        self.store.insert_authority(&rec, &p.audit).await?;
        tracing::info!(authority = %rec.name, kind = %rec.kind, by = %p.arn, "certificate authority created");
        Ok(CertificateAuthorityResponse {
            certificate_authority: self.authority_entry(&rec),
        })
    }

    pub async fn describe_certificate_authority(
        &self,
        _p: &Caller,
        req: NameRequest,
    ) -> Result<CertificateAuthorityResponse> {
        let a = self.find_authority(&req.name).await?;
        Ok(CertificateAuthorityResponse {
            certificate_authority: self.authority_entry(&a),
        })
    }

    pub async fn list_certificate_authorities(
        &self,
        _p: &Caller,
        _req: Empty,
    ) -> Result<ListCertificateAuthoritiesResponse> {
        let all = self.store.list_authorities().await?;
        Ok(ListCertificateAuthoritiesResponse {
            certificate_authorities: all.iter().map(|a| self.authority_entry(a)).collect(),
        })
    }

    pub async fn delete_certificate_authority(
        &self,
        p: &Caller,
        req: NameRequest,
    ) -> Result<Empty> {
        validate_name("Name", &req.name)?;
        if !self.store.delete_authority(&req.name, &p.audit).await? {
            return Err(ca_not_found(&req.name));
        }
        tracing::info!(authority = %req.name, by = %p.arn, "certificate authority deleted");
        Ok(Empty {})
    }

    pub async fn import_certificate_authority_certificate(
        &self,
        p: &Caller,
        req: ImportCertificateAuthorityCertificateRequest,
    ) -> Result<CertificateAuthorityResponse> {
        let a = self.find_authority(&req.name).await?;
        if a.certificate.is_some() {
            return Err(Error::invalid_request(format!(
                "The certificate authority {} already has its certificate; only an intermediate created without ParentAuthority waits for one.",
                a.name
            )));
        }
        let key = self.authority_key(&a).await?;
        let info = kura_pki::import_check(&req.certificate, &key, self.clock.now())?;
        let chain = req.certificate_chain.unwrap_or_default();
        if !chain.trim().is_empty() {
            kura_pki::certificate_info("CertificateChain", &chain)?;
        }
        let certificate = if req.certificate.ends_with('\n') {
            req.certificate
        } else {
            format!("{}\n", req.certificate)
        };
        if !self
            .store
            .set_authority_certificate(&a.name, &certificate, &chain, info.not_after, &p.audit)
            .await?
        {
            return Err(Error::invalid_request(format!(
                "The certificate authority {} received its certificate from another request meanwhile.",
                a.name
            )));
        }
        let a = self.find_authority(&req.name).await?;
        tracing::info!(authority = %a.name, by = %p.arn, "certificate authority certificate imported");
        Ok(CertificateAuthorityResponse {
            certificate_authority: self.authority_entry(&a),
        })
    }

    fn template_entry(&self, rec: &TemplateRecord) -> Result<CertificateTemplateEntry> {
        let t = stored_template(rec)?;
        Ok(CertificateTemplateEntry {
            name: rec.name.clone(),
            certificate_authority: t.authority.clone(),
            ttl: show_duration(t.ttl_seconds),
            max_ttl: show_duration(t.max_ttl_seconds),
            allowed_domains: t.allowed_domains.clone(),
            allow_ip_sans: t.allow_ip_sans,
            key_algorithm: t.key_algorithm.name().to_string(),
            key_usages: t.key_usages.iter().map(|u| u.name().to_string()).collect(),
            created_date: rec.created_at,
        })
    }

    pub async fn create_certificate_template(
        &self,
        p: &Caller,
        req: CreateCertificateTemplateRequest,
    ) -> Result<CertificateTemplateResponse> {
        validate_name("Name", &req.name)?;
        validate_name("CertificateAuthority", &req.certificate_authority)?;
        let ttl = parse_duration("Ttl", req.ttl.as_deref().unwrap_or(DEFAULT_CERTIFICATE_TTL))?;
        let max_ttl = match &req.max_ttl {
            Some(m) => parse_duration("MaxTtl", m)?,
            None => ttl,
        };
        let key_usages = match &req.key_usages {
            None => vec![KeyUsage::Server],
            Some(list) => list
                .iter()
                .map(|u| KeyUsage::parse(u))
                .collect::<Result<Vec<_>>>()?,
        };
        let t = Template {
            authority: req.certificate_authority.clone(),
            ttl_seconds: ttl,
            max_ttl_seconds: max_ttl,
            allowed_domains: req.allowed_domains.clone(),
            allow_ip_sans: req.allow_ip_sans.unwrap_or(false),
            key_algorithm: match &req.key_algorithm {
                Some(a) => KeyAlgorithm::parse("KeyAlgorithm", a)?,
                None => KeyAlgorithm::EcdsaP256,
            },
            key_usages,
        };
        t.validate()?;
        let rec = TemplateRecord {
            name: req.name.clone(),
            authority: req.certificate_authority.clone(),
            config: serde_json::to_string(&t)
                .map_err(|e| Error::internal(format!("encoding a template: {e}")))?,
            created_at: self.clock.now(),
        };
        self.store.insert_template(&rec, &p.audit).await?;
        tracing::info!(template = %rec.name, authority = %rec.authority, by = %p.arn, "certificate template created");
        Ok(CertificateTemplateResponse {
            certificate_template: self.template_entry(&rec)?,
        })
    }

    pub async fn describe_certificate_template(
        &self,
        _p: &Caller,
        req: NameRequest,
    ) -> Result<CertificateTemplateResponse> {
        validate_name("Name", &req.name)?;
        let rec = self
            .store
            .template(&req.name)
            .await?
            .ok_or_else(|| template_not_found(&req.name))?;
        Ok(CertificateTemplateResponse {
            certificate_template: self.template_entry(&rec)?,
        })
    }

    pub async fn list_certificate_templates(
        &self,
        _p: &Caller,
        _req: Empty,
    ) -> Result<ListCertificateTemplatesResponse> {
        let all = self.store.list_templates().await?;
        Ok(ListCertificateTemplatesResponse {
            certificate_templates: all
                .iter()
                .map(|t| self.template_entry(t))
                .collect::<Result<_>>()?,
        })
    }

    pub async fn delete_certificate_template(&self, p: &Caller, req: NameRequest) -> Result<Empty> {
        validate_name("Name", &req.name)?;
        if !self.store.delete_template(&req.name, &p.audit).await? {
            return Err(template_not_found(&req.name));
        }
        tracing::info!(template = %req.name, by = %p.arn, "certificate template deleted");
        Ok(Empty {})
    }

    pub async fn revoke_certificate(
        &self,
        p: &Caller,
        req: RevokeCertificateRequest,
    ) -> Result<RevokeCertificateResponse> {
        self.find_authority(&req.certificate_authority).await?;
        let serial = normalize_serial(&req.serial_number)?;
        let at = self
            .revoke_serial(&req.certificate_authority, &serial, &p.audit)
            .await?;
        tracing::info!(authority = %req.certificate_authority, serial = %show_stored_serial(&serial), by = %p.arn, "certificate revoked");
        Ok(RevokeCertificateResponse {
            certificate_authority: req.certificate_authority,
            serial_number: show_stored_serial(&serial),
            revocation_date: at,
        })
    }

    /// Revokes a certificate `authority` issued (kept as it is when already revoked); when.
    async fn revoke_serial(
        &self,
        authority: &str,
        serial: &str,
        audit: &kura_store::AuditSlot,
    ) -> Result<Timestamp> {
        let now = self.clock.now();
        let found = self
            .store
            .certificate(authority, serial)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "The certificate authority {authority} issued no certificate with serial number {}.",
                    show_stored_serial(serial)
                ))
            })?;
        if let Some(at) = found.revoked_at {
            return Ok(at);
        }
        self.store
            .revoke_certificate(authority, serial, now, audit)
            .await?;
        Ok(now)
    }

    /// Issues a certificate for the secret `secret_arn` (the kura-private-certificate
    /// rotation's createSecret).
    pub(crate) async fn issue_for_secret(
        &self,
        secret_arn: &str,
        req: CertificateRequest<'_>,
    ) -> Result<IssuedCertificate> {
        validate_name("template", req.template)?;
        let rec = self
            .store
            .template(req.template)
            .await?
            .ok_or_else(|| template_not_found(req.template))?;
        let t = stored_template(&rec)?;
        let (ca, ca_cert) = self.active_authority(&t.authority).await?;
        let ca_key = self.authority_key(&ca).await?;
        let ttl = req.ttl.map(|s| parse_duration("ttl", s)).transpose()?;
        let now = self.clock.now();
        let issued = kura_pki::issue(
            &ca.name,
            &ca_cert,
            &ca_key,
            IssueRequest {
                template_name: &rec.name,
                template: &t,
                names: Names {
                    common_name: req.common_name,
                    alt_names: req.alt_names,
                    ip_sans: req.ip_sans,
                    ttl_seconds: ttl,
                },
                key: req.private_key.map(PrivateKey),
                now,
            },
        )?;
        self.store
            .insert_certificate(&IssuedCertificateRecord {
                authority: ca.name.clone(),
                serial: normalize_serial(&issued.serial)?,
                template: Some(rec.name.clone()),
                common_name: req.common_name.to_string(),
                secret_arn: Some(secret_arn.to_string()),
                issued_at: now,
                not_after: issued.not_after,
                revoked_at: None,
            })
            .await?;
        let intermediate = if ca.kind == ROOT {
            String::new()
        } else {
            format!("{ca_cert}{}", ca.chain)
        };
        Ok(IssuedCertificate {
            certificate: issued.certificate,
            private_key: issued.key.0,
            intermediate,
            issuer: ca.name,
            serial_number: issued.serial,
            expiration_date: kura_pki::rfc3339(issued.not_after),
            key_algorithm: issued.key_algorithm.name().to_string(),
        })
    }

    /// The kura-private-certificate rotation's finishSecret, when asked to revoke the
    /// certificate it replaced.
    pub(crate) async fn revoke_replaced(&self, authority: &str, serial: &str) -> Result<()> {
        let serial = normalize_serial(serial)?;
        match self
            .revoke_serial(authority, &serial, &kura_store::NO_AUDIT)
            .await
        {
            // The CA or its record went away: nothing left to revoke.
            Err(e) if e.code == kura_core::ErrorCode::ResourceNotFound => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// The lifetime, in seconds, of the certificates a certificate secret's value asks for:
    /// its `ttl`, else its template's. `None` when the value names no template kura has.
    pub(crate) async fn certificate_ttl_of(
        &self,
        value: &serde_json::Value,
    ) -> Result<Option<(String, i64)>> {
        let Some(name) = value.get("template").and_then(|v| v.as_str()) else {
            return Ok(None);
        };
        if validate_name("template", name).is_err() {
            return Ok(None);
        }
        let Some(rec) = self.store.template(name).await? else {
            return Ok(None);
        };
        let t = stored_template(&rec)?;
        let ttl = match value.get("ttl").and_then(|v| v.as_str()) {
            Some(s) => parse_duration("ttl", s)?,
            None => t.ttl_seconds,
        };
        Ok(Some((rec.name, ttl)))
    }

    /// `GET /pki/<name>/ca.pem`: the CA's certificate.
    pub async fn ca_certificate_pem(&self, name: &str) -> Result<String> {
        Ok(self.active_authority(name).await?.1)
    }

    /// `GET /pki/<name>/crl`: the CA's CRL (DER), signed now, valid for a day.
    pub async fn ca_crl_der(&self, name: &str) -> Result<Vec<u8>> {
        let (ca, cert) = self.active_authority(name).await?;
        let now = self.clock.now();
        let revoked: Vec<RevokedSerial> = self
            .store
            .revoked_certificates(&ca.name, now)
            .await?
            .into_iter()
            .map(|(serial_hex, revoked_at)| RevokedSerial {
                serial_hex,
                revoked_at,
            })
            .collect();
        let key = self.authority_key(&ca).await?;
        // Numbered by the second it is made: later CRLs have larger numbers, as RFC 5280 asks.
        let number = now.0.div_euclid(1000).max(1) as u64;
        kura_pki::crl_der(
            &cert,
            &key,
            &revoked,
            now,
            now.plus_ms(CRL_VALID_MS),
            number,
        )
    }
}
