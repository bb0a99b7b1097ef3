//! Certificate authorities: making one (root, intermediate signed by another kura CA, or an
//! intermediate's CSR for an external root), importing the certificate an external root
//! signed, issuing leaf certificates, and CRLs.

use std::net::IpAddr;

use kura_core::{Error, Result, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::template::{Names, Template};
use crate::{KeyAlgorithm, PrivateKey, new_serial, show_serial, to_time};

/// Clients' clocks may lag a little: certificates start a minute before they are issued.
const BACKDATE_MS: i64 = 60_000;

/// A CA to make.
#[derive(Debug, Clone)]
pub struct NewAuthority<'a> {
    pub common_name: &'a str,
    pub algorithm: KeyAlgorithm,
    pub now: Timestamp,
    pub not_after: Timestamp,
}

/// A CA as made: its key, and its certificate or (for an external root to sign) its CSR.
#[derive(Debug)]
pub struct Authority {
    pub key: PrivateKey,
    pub certificate: Option<String>,
    pub csr: Option<String>,
}

/// What kura reads of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub subject: String,
    /// The issuer's common name (its whole name when it has none): a public CA's, such as
    /// "R11", for an ACME certificate's `issuer`.
    pub issuer: String,
    /// As `show_serial` prints it.
    pub serial: String,
    pub is_ca: bool,
    spki: Vec<u8>,
}

fn pem_der(what: &str, pem_text: &str, label: &str) -> Result<Vec<u8>> {
    let bad = || {
        Error::invalid_parameter(format!(
            "{what} is not a PEM {label} (-----BEGIN {label}----- ... -----END {label}-----)."
        ))
    };
    let start = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let from = pem_text.find(&start).ok_or_else(bad)? + start.len();
    let to = pem_text[from..].find(&end).ok_or_else(bad)? + from;
    let b64: String = pem_text[from..to]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad())
}

/// Reads a PEM certificate; `what` names it in errors.
pub fn certificate_info(what: &str, pem_text: &str) -> Result<CertificateInfo> {
    let der = pem_der(what, pem_text, "CERTIFICATE")?;
    let (_, x) = X509Certificate::from_der(&der).map_err(|_| {
        Error::invalid_parameter(format!("{what} is PEM but not an X.509 certificate."))
    })?;
    let validity = x.validity();
    Ok(CertificateInfo {
        not_before: Timestamp(validity.not_before.timestamp() * 1000),
        not_after: Timestamp(validity.not_after.timestamp() * 1000),
        subject: x.subject().to_string(),
        issuer: x
            .issuer()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| x.issuer().to_string()),
        serial: show_serial(x.raw_serial()),
        is_ca: x.is_ca(),
        spki: x.public_key().raw.to_vec(),
    })
}

fn ca_params(
    common_name: &str,
    not_before: Timestamp,
    not_after: Timestamp,
) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = to_time(not_before)?;
    p.not_after = to_time(not_after)?;
    p.serial_number = Some(new_serial()?);
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    Ok(p)
}

fn rcgen_err(what: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |e| Error::internal(format!("{what}: {e}"))
}

/// An issuer from a CA's stored certificate and key.
fn issuer<'a>(ca_certificate: &str, ca_key: &PrivateKey) -> Result<Issuer<'a, KeyPair>> {
    let key = ca_key.key_pair("the CA's key")?;
    Issuer::from_ca_cert_pem(ca_certificate, key).map_err(rcgen_err("loading the CA certificate"))
}

/// Makes a CA: self-signed (`parent` none, `csr_only` false), signed by `parent` (a kura CA's
/// certificate and key), or only a key and a CSR (`csr_only`).
pub fn new_authority(
    req: &NewAuthority<'_>,
    parent: Option<(&str, &PrivateKey)>,
    csr_only: bool,
) -> Result<Authority> {
    if req.not_after <= req.now {
        return Err(Error::invalid_parameter("Ttl must be positive."));
    }
    let key = req.algorithm.generate()?;
    let pair = key.key_pair("the new key")?;
    let params = ca_params(
        req.common_name,
        req.now.plus_ms(-BACKDATE_MS),
        req.not_after,
    )?;
    if csr_only {
        // What only the signer decides (serial, the issuer's key id) has no place in a CSR.
        let mut params = params;
        params.serial_number = None;
        params.use_authority_key_identifier_extension = false;
        let csr = params
            .serialize_request(&pair)
            .map_err(rcgen_err("making a CSR"))?
            .pem()
            .map_err(rcgen_err("encoding a CSR"))?;
        return Ok(Authority {
            key,
            certificate: None,
            csr: Some(csr),
        });
    }
    let cert = match parent {
        None => params.self_signed(&pair),
        Some((parent_cert, parent_key)) => {
            let info = certificate_info("the parent CA's certificate", parent_cert)?;
            if req.not_after > info.not_after {
                return Err(Error::invalid_request(format!(
                    "The intermediate would expire at {}, after its parent CA ({}): shorten Ttl.",
                    crate::rfc3339(req.not_after),
                    crate::rfc3339(info.not_after)
                )));
            }
            params.signed_by(&pair, &issuer(parent_cert, parent_key)?)
        }
    }
    .map_err(rcgen_err("signing a CA certificate"))?;
    Ok(Authority {
        key,
        certificate: Some(cert.pem()),
        csr: None,
    })
}

/// Checks a certificate an external root signed for a CA whose key is `key`: a CA
/// certificate, for that key, valid at `now`.
pub fn import_check(
    certificate: &str,
    key: &PrivateKey,
    now: Timestamp,
) -> Result<CertificateInfo> {
    let info = certificate_info("Certificate", certificate)?;
    let pair = key.key_pair("the CA's key")?;
    use rcgen::PublicKeyData as _;
    if info.spki != pair.subject_public_key_info() {
        return Err(Error::invalid_parameter(
            "Certificate is not for this CA's key: have the root sign the CSR this CA answered with.",
        ));
    }
    if !info.is_ca {
        return Err(Error::invalid_parameter(
            "Certificate is not a CA certificate (its basic constraints must say CA:TRUE).",
        ));
    }
    if info.not_after <= now {
        return Err(Error::invalid_parameter(format!(
            "Certificate expired at {}.",
            crate::rfc3339(info.not_after)
        )));
    }
    Ok(info)
}

/// A leaf certificate to issue.
#[derive(Debug, Clone)]
pub struct IssueRequest<'a> {
    pub template_name: &'a str,
    pub template: &'a Template,
    pub names: Names<'a>,
    /// The key to certify again (`rotate_keys: false`); a new one otherwise.
    pub key: Option<PrivateKey>,
    pub now: Timestamp,
}

/// An issued certificate.
#[derive(Debug)]
pub struct Issued {
    pub certificate: String,
    pub key: PrivateKey,
    pub key_algorithm: KeyAlgorithm,
    /// As `show_serial` prints it.
    pub serial: String,
    pub not_after: Timestamp,
}

/// Issues a certificate under `template` from the CA (`ca_certificate`, `ca_key`, which
/// expires at `ca_not_after`), refusing what the template's rules do not allow and a
/// certificate that would outlive its CA.
pub fn issue(
    ca_name: &str,
    ca_certificate: &str,
    ca_key: &PrivateKey,
    req: IssueRequest<'_>,
) -> Result<Issued> {
    let t = req.template;
    let ttl = t.check(req.template_name, &req.names)?;
    let ca = certificate_info("the CA's certificate", ca_certificate)?;
    let not_after = req.now.plus_ms(ttl * 1000);
    if not_after > ca.not_after {
        return Err(Error::invalid_request(format!(
            "The certificate would expire at {}, after its CA {ca_name} ({}): a certificate may not outlive its CA. Shorten ttl, or renew the CA.",
            crate::rfc3339(not_after),
            crate::rfc3339(ca.not_after)
        )));
    }
    let key = match req.key {
        Some(k) => {
            let alg = k.algorithm("the kept private_key")?;
            if alg != t.key_algorithm {
                return Err(Error::invalid_request(format!(
                    "Template {} refuses the kept private_key: rule KeyAlgorithm is {}, the key is {}; rotate with rotate_keys true for a new key.",
                    req.template_name,
                    t.key_algorithm.name(),
                    alg.name()
                )));
            }
            k
        }
        None => t.key_algorithm.generate()?,
    };
    let pair = key.key_pair("the private_key")?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, req.names.common_name);
    p.distinguished_name = dn;
    let mut dns = vec![req.names.common_name.to_ascii_lowercase()];
    for n in req.names.alt_names {
        let n = n.to_ascii_lowercase();
        if !dns.contains(&n) {
            dns.push(n);
        }
    }
    let mut sans = Vec::new();
    for n in dns {
        sans.push(SanType::DnsName(n.try_into().map_err(|_| {
            Error::invalid_request("a name is not a DNS name a certificate can carry")
        })?));
    }
    for ip in req.names.ip_sans {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| Error::invalid_request(format!("ip_sans {ip:?} is not an IP address.")))?;
        sans.push(SanType::IpAddress(ip));
    }
    p.subject_alt_names = sans;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if matches!(
        t.key_algorithm,
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
    ) {
        p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    p.extended_key_usages = t
        .key_usages
        .iter()
        .map(|u| match u {
            crate::KeyUsage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            crate::KeyUsage::Client => ExtendedKeyUsagePurpose::ClientAuth,
            crate::KeyUsage::CodeSigning => ExtendedKeyUsagePurpose::CodeSigning,
        })
        .collect();
    p.not_before = to_time(req.now.plus_ms(-BACKDATE_MS))?;
    p.not_after = to_time(not_after)?;
    let serial = new_serial()?;
    let shown = show_serial(&serial.to_bytes());
    p.serial_number = Some(serial);
    p.use_authority_key_identifier_extension = true;
    let cert = p
        .signed_by(&pair, &issuer(ca_certificate, ca_key)?)
        .map_err(rcgen_err("signing a certificate"))?;
    let key_algorithm = key.algorithm("the private_key")?;
    Ok(Issued {
        certificate: cert.pem(),
        key,
        key_algorithm,
        serial: shown,
        not_after,
    })
}

/// A certificate signing request for `names` (the first is the subject's common name, all are
/// DNS names), signed by `key` or by a new key of `algorithm`: an ACME order's finalization.
/// The key and the CSR (DER).
pub fn csr_for(
    names: &[String],
    key: Option<PrivateKey>,
    algorithm: KeyAlgorithm,
) -> Result<(PrivateKey, KeyAlgorithm, Vec<u8>)> {
    let key = match key {
        Some(k) => k,
        None => algorithm.generate()?,
    };
    let key_algorithm = key.algorithm("the kept private_key")?;
    let pair = key.key_pair("the kept private_key")?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(cn) = names.first() {
        dn.push(DnType::CommonName, cn.as_str());
    }
    p.distinguished_name = dn;
    p.subject_alt_names = names
        .iter()
        .map(|n| {
            n.clone().try_into().map(SanType::DnsName).map_err(|_| {
                Error::invalid_parameter(format!(
                    "{n:?} is not a DNS name a certificate can carry."
                ))
            })
        })
        .collect::<Result<_>>()?;
    let csr = p
        .serialize_request(&pair)
        .map_err(rcgen_err("making a certificate signing request"))?;
    Ok((key, key_algorithm, csr.der().to_vec()))
}

/// A revoked certificate: its serial (stored hex) and when.
#[derive(Debug, Clone)]
pub struct RevokedSerial {
    pub serial_hex: String,
    pub revoked_at: Timestamp,
}

/// The CA's CRL (DER), valid from `now` to `next_update`, numbered `number`.
pub fn crl_der(
    ca_certificate: &str,
    ca_key: &PrivateKey,
    revoked: &[RevokedSerial],
    now: Timestamp,
    next_update: Timestamp,
    number: u64,
) -> Result<Vec<u8>> {
    let mut revoked_certs = Vec::with_capacity(revoked.len());
    for r in revoked {
        let bytes = hex::decode(&r.serial_hex)
            .map_err(|_| Error::internal(format!("stored serial {} is not hex", r.serial_hex)))?;
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&bytes),
            revocation_time: to_time(r.revoked_at)?,
            reason_code: None,
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: to_time(now)?,
        next_update: to_time(next_update)?,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params
        .signed_by(&issuer(ca_certificate, ca_key)?)
        .map_err(rcgen_err("signing a CRL"))?;
    Ok(crl.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyUsage;

    const DAY: i64 = 86_400_000;

    fn template() -> Template {
        Template {
            authority: "int".into(),
            ttl_seconds: 86_400,
            max_ttl_seconds: 90 * 86_400,
            allowed_domains: vec![".example.com".into()],
            allow_ip_sans: true,
            key_algorithm: KeyAlgorithm::EcdsaP256,
            key_usages: vec![KeyUsage::Server],
        }
    }

    #[test]
    fn a_chain_of_root_intermediate_and_leaf_is_issued_and_checked() {
        let now = Timestamp(1_900_000_000_000);
        let root = new_authority(
            &NewAuthority {
                common_name: "Root",
                algorithm: KeyAlgorithm::EcdsaP384,
                now,
                not_after: now.plus_ms(3650 * DAY),
            },
            None,
            false,
        )
        .unwrap();
        let root_cert = root.certificate.unwrap();
        let too_long = NewAuthority {
            common_name: "Int",
            algorithm: KeyAlgorithm::Ed25519,
            now,
            not_after: now.plus_ms(4000 * DAY),
        };
        let e = new_authority(&too_long, Some((&root_cert, &root.key)), false).unwrap_err();
        assert!(e.message.contains("after its parent CA"), "{}", e.message);
        let int = new_authority(
            &NewAuthority {
                not_after: now.plus_ms(30 * DAY),
                ..too_long
            },
            Some((&root_cert, &root.key)),
            false,
        )
        .unwrap();
        let int_cert = int.certificate.unwrap();
        assert!(certificate_info("int", &int_cert).unwrap().is_ca);
        let t = template();
        let alt = vec!["b.example.com".to_string()];
        let req = |ttl: Option<i64>, key: Option<PrivateKey>| IssueRequest {
            template_name: "web",
            template: &t,
            names: Names {
                common_name: "a.example.com",
                alt_names: &alt,
                ip_sans: &[],
                ttl_seconds: ttl,
            },
            key,
            now,
        };
        let leaf = issue("int", &int_cert, &int.key, req(None, None)).unwrap();
        let info = certificate_info("leaf", &leaf.certificate).unwrap();
        assert_eq!(info.not_after, now.plus_ms(DAY));
        assert_eq!(info.serial, leaf.serial);
        assert!(!info.is_ca);
        let again = issue(
            "int",
            &int_cert,
            &int.key,
            req(None, Some(leaf.key.clone())),
        )
        .unwrap();
        assert_eq!(
            again.key.pem(),
            leaf.key.pem(),
            "the same key, certified again"
        );
        assert_ne!(again.serial, leaf.serial);
        let e = issue("int", &int_cert, &int.key, req(Some(60 * 86_400), None)).unwrap_err();
        assert!(
            e.message.contains("may not outlive its CA"),
            "{}",
            e.message
        );
        let crl = crl_der(
            &int_cert,
            &int.key,
            &[RevokedSerial {
                serial_hex: crate::normalize_serial(&leaf.serial).unwrap(),
                revoked_at: now,
            }],
            now,
            now.plus_ms(DAY),
            1,
        )
        .unwrap();
        assert!(!crl.is_empty());
    }

    #[test]
    fn an_imported_certificate_must_be_for_the_csrs_key() {
        let now = Timestamp(1_900_000_000_000);
        let req = NewAuthority {
            common_name: "Ext",
            algorithm: KeyAlgorithm::EcdsaP256,
            now,
            not_after: now.plus_ms(DAY),
        };
        let pending = new_authority(&req, None, true).unwrap();
        assert!(pending.csr.unwrap().contains("CERTIFICATE REQUEST"));
        let other = new_authority(&req, None, false).unwrap();
        let e = import_check(&other.certificate.unwrap(), &pending.key, now).unwrap_err();
        assert!(e.message.contains("not for this CA's key"), "{}", e.message);
    }
}
