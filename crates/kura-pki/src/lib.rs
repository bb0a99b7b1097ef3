//! kura's private PKI, pure: certificate authorities (a root, an intermediate signed by another
//! kura CA, or an intermediate whose CSR an external root signs), certificate templates and the
//! rules a request must keep, issuance of leaf certificates, and CRLs. No storage and no I/O:
//! the service keeps CA keys sealed by the keyring and hands them in as PEM for one call.
//!
//! Every refusal is a `kura_core::Error` whose message names what to fix (for a template, the
//! rule broken); no message quotes a private key.

mod authority;
mod template;

use std::fmt;

use kura_core::{Error, Result, Timestamp};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519};
use rcgen::{PKCS_RSA_SHA256, PublicKeyData, RsaKeySize, SerialNumber};
use zeroize::Zeroizing;

pub use authority::{
    Authority, CertificateInfo, IssueRequest, Issued, NewAuthority, RevokedSerial,
    certificate_info, crl_der, csr_for, import_check, issue, new_authority,
};
pub use kura_core::duration::{parse_duration, show_duration};
pub use template::{KeyUsage, Names, Template};

/// The key algorithms of CAs and issued certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 6] = [
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Ed25519,
    ];

    /// The name the API and a certificate secret's `key_algorithm` use.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "RSA_2048",
            KeyAlgorithm::Rsa3072 => "RSA_3072",
            KeyAlgorithm::Rsa4096 => "RSA_4096",
            KeyAlgorithm::EcdsaP256 => "EC_P256",
            KeyAlgorithm::EcdsaP384 => "EC_P384",
            KeyAlgorithm::Ed25519 => "ED25519",
        }
    }

    /// `field`'s value as an algorithm, or an error listing the names.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::invalid_parameter(format!(
                    "{field} {s:?} is not a key algorithm: use one of {}.",
                    Self::ALL.map(|a| a.name()).join(", ")
                ))
            })
    }

    /// A fresh key of this algorithm.
    pub fn generate(self) -> Result<PrivateKey> {
        let size = match self {
            KeyAlgorithm::Rsa2048 => Some(RsaKeySize::_2048),
            KeyAlgorithm::Rsa3072 => Some(RsaKeySize::_3072),
            KeyAlgorithm::Rsa4096 => Some(RsaKeySize::_4096),
            _ => None,
        };
        let key = match (size, self) {
            (Some(size), _) => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, size),
            (None, KeyAlgorithm::EcdsaP256) => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            (None, KeyAlgorithm::EcdsaP384) => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
            (None, _) => KeyPair::generate_for(&PKCS_ED25519),
        }
        .map_err(|e| Error::internal(format!("generating a {} key: {e}", self.name())))?;
        Ok(PrivateKey(Zeroizing::new(key.serialize_pem())))
    }

    /// The algorithm of a key pair, if it is one of ours.
    fn of(key: &KeyPair) -> Option<Self> {
        let alg = key.algorithm();
        if alg == &PKCS_ECDSA_P256_SHA256 {
            Some(KeyAlgorithm::EcdsaP256)
        } else if alg == &PKCS_ECDSA_P384_SHA384 {
            Some(KeyAlgorithm::EcdsaP384)
        } else if alg == &PKCS_ED25519 {
            Some(KeyAlgorithm::Ed25519)
        } else {
            // RSA: the size from the modulus (the SPKI grows with it).
            match key.subject_public_key_info().len() {
                0..=300 => Some(KeyAlgorithm::Rsa2048),
                301..=430 => Some(KeyAlgorithm::Rsa3072),
                _ => Some(KeyAlgorithm::Rsa4096),
            }
        }
    }
}

/// A private key as PKCS#8 PEM. `Debug` prints `[redacted]`; the text is wiped when dropped.
#[derive(Clone)]
pub struct PrivateKey(pub Zeroizing<String>);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PrivateKey {
    pub fn pem(&self) -> &str {
        &self.0
    }

    /// The key pair, for signing; `what` names the key in the error.
    fn key_pair(&self, what: &str) -> Result<KeyPair> {
        // rcgen's parse errors never quote the key.
        KeyPair::from_pem(&self.0).map_err(|e| {
            Error::invalid_parameter(format!("{what} is not a PEM private key kura can use: {e}"))
        })
    }

    /// The key's algorithm.
    pub fn algorithm(&self, what: &str) -> Result<KeyAlgorithm> {
        let k = self.key_pair(what)?;
        KeyAlgorithm::of(&k).ok_or_else(|| {
            Error::invalid_parameter(format!("{what} has an algorithm kura does not issue"))
        })
    }
}

/// A certificate serial number: 16 random bytes, positive.
pub(crate) fn new_serial() -> Result<SerialNumber> {
    let mut b = [0u8; 16];
    kura_crypto::random::fill(&mut b)?;
    b[0] &= 0x7f;
    // A leading zero byte would be dropped by DER and change the number's text.
    b[0] |= 0x01;
    Ok(SerialNumber::from_slice(&b))
}

/// A serial number as kura shows it: lowercase hex pairs joined by ':' (as IBM's
/// `serial_number`).
pub fn show_serial(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A serial number as stored: lowercase hex without separators. Accepts what `show_serial`
/// prints, and OpenSSL's uppercase form.
pub fn normalize_serial(s: &str) -> Result<String> {
    let hex: String = s
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.is_empty() || hex.len() > 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::invalid_parameter(format!(
            "SerialNumber {:?} is not a serial number: hex digits, optionally in pairs separated by ':' (as a certificate secret's serial_number).",
            s.chars().take(64).collect::<String>()
        )));
    }
    Ok(hex)
}

/// A stored serial (hex) as `show_serial` prints it.
pub fn show_stored_serial(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

pub(crate) fn to_time(t: Timestamp) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(t.0.div_euclid(1000))
        .map_err(|_| Error::invalid_parameter("a certificate date is out of range"))
}

/// RFC 3339, to the second, in UTC (a certificate secret's `expiration_date`).
pub fn rfc3339(t: Timestamp) -> String {
    match chrono::DateTime::from_timestamp(t.0.div_euclid(1000), 0) {
        Some(d) => d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => t.0.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_round_trip_between_their_forms() {
        let s = new_serial().unwrap();
        let shown = show_serial(&s.to_bytes());
        let stored = normalize_serial(&shown).unwrap();
        assert_eq!(show_stored_serial(&stored), shown);
        assert_eq!(normalize_serial(&stored.to_uppercase()).unwrap(), stored);
        assert!(normalize_serial("zz").is_err());
        assert!(normalize_serial("").is_err());
    }

    #[test]
    fn every_algorithm_generates_a_key_that_names_itself() {
        for a in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::Rsa2048,
        ] {
            let k = a.generate().unwrap();
            assert_eq!(k.algorithm("k").unwrap(), a);
            assert_eq!(format!("{k:?}"), "[redacted]");
        }
    }
}
