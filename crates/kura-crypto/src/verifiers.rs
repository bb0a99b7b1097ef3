//! Password verifiers as databases store them, so kura can set a password without the
//! plaintext ever reaching the server (or its statement log).

use std::num::NonZeroU32;

use aws_lc_rs::{digest, hmac, pbkdf2};
use base64::Engine as _;
use kura_core::Result;

use crate::random;

/// PostgreSQL's default iteration count for SCRAM-SHA-256.
pub const SCRAM_ITERATIONS: u32 = 4096;

/// A PostgreSQL `SCRAM-SHA-256$iter:salt$StoredKey:ServerKey` verifier (RFC 5802/7677) with a
/// fresh 16-byte salt. PostgreSQL applies SASLprep, which leaves printable ASCII unchanged.
pub fn postgres_scram(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    random::fill(&mut salt)?;
    Ok(postgres_scram_with(password, &salt, SCRAM_ITERATIONS))
}

fn postgres_scram_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut salted = zeroize::Zeroizing::new([0u8; 32]);
    let rounds = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        password.as_bytes(),
        salted.as_mut_slice(),
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, salted.as_slice());
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key.as_ref()),
        b64.encode(server_key.as_ref())
    )
}

/// MySQL/MariaDB `mysql_native_password` hash: `*` + hex(SHA1(SHA1(password))), upper case.
pub fn mysql_native(password: &str) -> String {
    let alg = &digest::SHA1_FOR_LEGACY_USE_ONLY;
    let once = digest::digest(alg, password.as_bytes());
    let twice = digest::digest(alg, once.as_ref());
    let hex: String = twice.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    format!("*{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed independently with Python's hashlib/hmac.
    #[test]
    fn scram_matches_an_independent_computation() {
        let salt: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            postgres_scram_with("pencil", &salt, 4096),
            "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$zHCdol2044/ZyWzPLi7oxApCkamKw9Z+E4U/QApd/5Y=:dd5peBOitVnLNFu7VmwP+HiDaaw4OUCv396eVCWhYiE="
        );
    }

    #[test]
    fn scram_salts_differ() {
        assert_ne!(postgres_scram("x").unwrap(), postgres_scram("x").unwrap());
    }

    #[test]
    fn mysql_native_matches_an_independent_computation() {
        assert_eq!(
            mysql_native("pencil"),
            "*7614BE58636C810A9D8970A50B3B2A78450413E4"
        );
    }
}
