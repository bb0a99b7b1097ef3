//! Envelope encryption: root key → key-encryption keys (one per named key and version) → a fresh
//! data key per secret version → the value. All layers are AES-256-GCM with a random 96-bit nonce
//! stored in front of the ciphertext; associated data binds every ciphertext to where it belongs.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use kura_core::{Error, ErrorCode, Result};
use zeroize::Zeroizing;

use crate::random;

pub const KEY_LEN: usize = 32;

fn aead_key(bytes: &[u8]) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| Error::internal("invalid AES-256 key length"))
}

fn seal(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    random::fill(&mut nonce)?;
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let mut body = out.split_off(NONCE_LEN);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .map_err(|_| Error::new(ErrorCode::EncryptionFailure, "Encryption failed."))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Fails (rather than returning garbage) if the ciphertext, key or associated data differ.
fn open(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let fail = || {
        Error::new(
            ErrorCode::DecryptionFailure,
            "Secrets Manager can't decrypt the protected secret text using the provided KMS key: the stored ciphertext does not belong to this secret version or was altered.",
        )
    };
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(fail());
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
    let mut buf = Zeroizing::new(body.to_vec());
    let len = key
        .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
        .map_err(|_| fail())?
        .len();
    buf.truncate(len);
    Ok(buf)
}

/// AES-256-GCM under raw key bytes (nonce ‖ ciphertext ‖ tag), for keys outside the keyring
/// (the seal key that wraps the root key).
pub(crate) fn seal_with(key: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    seal(&aead_key(key)?, aad, plaintext)
}

pub(crate) fn open_with(key: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    open(&aead_key(key)?, aad, sealed)
}

/// The 256-bit root of the key hierarchy. Never printed, zeroed on drop.
pub struct RootKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    key: LessSafeKey,
}

impl RootKey {
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        random::fill(bytes.as_mut_slice())?;
        Self::from_bytes(bytes.as_slice())
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let bytes: [u8; KEY_LEN] = b.try_into().map_err(|_| {
            Error::internal(format!(
                "a root key is {KEY_LEN} bytes, this one has {}",
                b.len()
            ))
        })?;
        let key = aead_key(&bytes)?;
        Ok(RootKey {
            bytes: Zeroizing::new(bytes),
            key,
        })
    }

    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey([redacted])")
    }
}

fn kek_aad(name: &str, version: i64) -> Vec<u8> {
    format!("kura/kek/{name}/{version}").into_bytes()
}

fn dek_aad(name: &str, version: i64, context: &[u8]) -> Vec<u8> {
    let mut aad = format!("kura/dek/{name}/{version}/").into_bytes();
    aad.extend_from_slice(context);
    aad
}

/// The unwrapped key-encryption keys, held in memory for the life of the process.
pub struct Keyring {
    root: RootKey,
    keks: HashMap<(String, i64), LessSafeKey>,
    current: HashMap<String, i64>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.current)
            .finish_non_exhaustive()
    }
}

/// What the keyring produced when sealing a value.
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub wrapped_key: Vec<u8>,
    pub key_version: i64,
}

impl Keyring {
    pub fn new(root: RootKey) -> Self {
        Keyring {
            root,
            keks: HashMap::new(),
            current: HashMap::new(),
        }
    }

    /// Creates new key material for `name`/`version`, returned wrapped by the root key for storage.
    pub fn new_kek(&self, name: &str, version: i64) -> Result<Vec<u8>> {
        let mut material = Zeroizing::new([0u8; KEY_LEN]);
        random::fill(material.as_mut_slice())?;
        seal(&self.root.key, &kek_aad(name, version), material.as_slice())
    }

    /// Loads a stored key-encryption key; the highest version of a name is the one new values use.
    pub fn load_kek(&mut self, name: &str, version: i64, wrapped: &[u8]) -> Result<()> {
        let material = open(&self.root.key, &kek_aad(name, version), wrapped).map_err(|_| {
            Error::internal(format!(
                "key {name} version {version} does not open with this root key: wrong root key file?"
            ))
        })?;
        self.keks
            .insert((name.to_string(), version), aead_key(&material)?);
        let cur = self.current.entry(name.to_string()).or_insert(version);
        *cur = (*cur).max(version);
        Ok(())
    }

    pub fn has_key(&self, name: &str) -> bool {
        self.current.contains_key(name)
    }

    fn kek(&self, name: &str, version: i64) -> Result<&LessSafeKey> {
        self.keks.get(&(name.to_string(), version)).ok_or_else(|| {
            Error::new(
                ErrorCode::DecryptionFailure,
                format!(
                    "The key {name} (version {version}) that protects this value is not available."
                ),
            )
        })
    }

    /// Seals `plaintext` under a fresh data key wrapped by the current version of `key_name`.
    /// `context` (secret ARN + version id) is bound as associated data to both layers.
    pub fn seal(&self, key_name: &str, context: &[u8], plaintext: &[u8]) -> Result<Sealed> {
        let key_version = *self.current.get(key_name).ok_or_else(|| {
            Error::new(
                ErrorCode::EncryptionFailure,
                format!("The encryption key {key_name} does not exist."),
            )
        })?;
        let kek = self.kek(key_name, key_version)?;
        let mut dek = Zeroizing::new([0u8; KEY_LEN]);
        random::fill(dek.as_mut_slice())?;
        let wrapped_key = seal(
            kek,
            &dek_aad(key_name, key_version, context),
            dek.as_slice(),
        )?;
        let ciphertext = seal(&aead_key(dek.as_slice())?, context, plaintext)?;
        Ok(Sealed {
            ciphertext,
            wrapped_key,
            key_version,
        })
    }

    pub fn open(
        &self,
        key_name: &str,
        key_version: i64,
        context: &[u8],
        ciphertext: &[u8],
        wrapped_key: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let kek = self.kek(key_name, key_version)?;
        let dek = open(kek, &dek_aad(key_name, key_version, context), wrapped_key)?;
        open(&aead_key(&dek)?, context, ciphertext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        let mut k = Keyring::new(RootKey::generate().unwrap());
        let w = k.new_kek("alias/kura/default", 1).unwrap();
        k.load_kek("alias/kura/default", 1, &w).unwrap();
        k
    }

    #[test]
    fn round_trip_and_binding() {
        let k = ring();
        let s = k
            .seal("alias/kura/default", b"arn-a/v1", b"hunter2")
            .unwrap();
        assert!(!s.ciphertext.windows(7).any(|w| w == b"hunter2"));
        let p = k
            .open(
                "alias/kura/default",
                1,
                b"arn-a/v1",
                &s.ciphertext,
                &s.wrapped_key,
            )
            .unwrap();
        assert_eq!(p.as_slice(), b"hunter2");
        // The same ciphertext presented as another version's fails instead of decrypting.
        let e = k
            .open(
                "alias/kura/default",
                1,
                b"arn-a/v2",
                &s.ciphertext,
                &s.wrapped_key,
            )
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::DecryptionFailure);
        let mut bad = s.ciphertext.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(
            k.open("alias/kura/default", 1, b"arn-a/v1", &bad, &s.wrapped_key)
                .is_err()
        );
    }

    #[test]
    fn kek_needs_the_right_root() {
        let a = ring();
        let w = a.new_kek("k", 1).unwrap();
        let mut b = Keyring::new(RootKey::generate().unwrap());
        assert!(b.load_kek("k", 1, &w).is_err());
        assert_eq!(
            format!("{:?}", RootKey::generate().unwrap()),
            "RootKey([redacted])"
        );
    }
}
