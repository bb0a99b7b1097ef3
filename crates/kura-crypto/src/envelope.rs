//! Envelope encryption: root key → key-encryption keys (one per named key and version) → a fresh
//! data key per secret version → the value. All layers are AES-256-GCM with a random 96-bit nonce
//! stored in front of the ciphertext; associated data binds every ciphertext to where it belongs.

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;

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

    /// `next` (the root key of `generation`) sealed under this one, its predecessor: the
    /// upgrade entry a node still holding this key follows after a root key rotation. The
    /// generation is bound as associated data, so an entry cannot pass for another.
    pub fn wrap_successor(&self, next: &RootKey, generation: i64) -> Result<Vec<u8>> {
        seal(
            &self.key,
            &successor_aad(generation),
            next.expose_bytes().as_slice(),
        )
    }

    /// The root key of `generation` from its upgrade entry; `None` when this key is not its
    /// predecessor (or the entry was altered).
    pub fn open_successor(&self, wrapped: &[u8], generation: i64) -> Result<Option<RootKey>> {
        match open(&self.key, &successor_aad(generation), wrapped) {
            Ok(bytes) => RootKey::from_bytes(&bytes).map(Some),
            Err(_) => Ok(None),
        }
    }
}

fn successor_aad(generation: i64) -> Vec<u8> {
    format!("kura/root-upgrade/{generation}").into_bytes()
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

/// The unwrapped key-encryption keys, held in memory for the life of the process. Keys are
/// added (and the root key replaced) while requests use it, so its state sits behind a lock;
/// each use holds the read lock only for one AES operation.
pub struct Keyring {
    inner: RwLock<Inner>,
}

struct Inner {
    root: RootKey,
    keks: HashMap<(String, i64), LessSafeKey>,
    current: HashMap<String, i64>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Keyring");
        if let Ok(inner) = self.inner.read() {
            d.field("keys", &inner.current);
        }
        d.finish_non_exhaustive()
    }
}

/// What the keyring produced when sealing a value.
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub wrapped_key: Vec<u8>,
    pub key_version: i64,
}

fn poisoned() -> Error {
    Error::internal("the keyring's lock was poisoned by a panic")
}

impl Keyring {
    pub fn new(root: RootKey) -> Self {
        Keyring {
            inner: RwLock::new(Inner {
                root,
                keks: HashMap::new(),
                current: HashMap::new(),
            }),
        }
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Inner>> {
        self.inner.read().map_err(|_| poisoned())
    }

    /// Creates new key material for `name`/`version`, returned wrapped by the root key for storage.
    pub fn new_kek(&self, name: &str, version: i64) -> Result<Vec<u8>> {
        let mut material = Zeroizing::new([0u8; KEY_LEN]);
        random::fill(material.as_mut_slice())?;
        seal(
            &self.read()?.root.key,
            &kek_aad(name, version),
            material.as_slice(),
        )
    }

    /// Loads a stored key-encryption key; the highest version of a name is the one new values use.
    pub fn load_kek(&self, name: &str, version: i64, wrapped: &[u8]) -> Result<()> {
        let mut inner = self.inner.write().map_err(|_| poisoned())?;
        let material = open(&inner.root.key, &kek_aad(name, version), wrapped).map_err(|_| {
            Error::internal(format!(
                "key {name} version {version} does not open with this root key: wrong root key file?"
            ))
        })?;
        let key = aead_key(&material)?;
        inner.keks.insert((name.to_string(), version), key);
        let cur = inner.current.entry(name.to_string()).or_insert(version);
        *cur = (*cur).max(version);
        Ok(())
    }

    /// Re-wraps a stored key-encryption key (wrapped by this keyring's root key) under `new_root`,
    /// for root key rotation: the key material itself does not change.
    pub fn rewrap_kek(
        &self,
        name: &str,
        version: i64,
        wrapped: &[u8],
        new_root: &RootKey,
    ) -> Result<Vec<u8>> {
        let aad = kek_aad(name, version);
        let material = open(&self.read()?.root.key, &aad, wrapped).map_err(|_| {
            Error::internal(format!(
                "key {name} version {version} does not open with this root key"
            ))
        })?;
        seal(&new_root.key, &aad, material.as_slice())
    }

    /// Makes `root` the key new key-encryption keys are wrapped by (after a root key rotation);
    /// returns the one it replaces.
    pub fn replace_root(&self, root: RootKey) -> Result<RootKey> {
        let mut inner = self.inner.write().map_err(|_| poisoned())?;
        Ok(std::mem::replace(&mut inner.root, root))
    }

    /// Runs `f` with the root key (root key rotation wraps the next one under it).
    pub fn with_root<T>(&self, f: impl FnOnce(&RootKey) -> Result<T>) -> Result<T> {
        f(&self.read()?.root)
    }

    pub fn has_key(&self, name: &str) -> bool {
        self.read().is_ok_and(|i| i.current.contains_key(name))
    }

    /// The version of `name` new values are sealed under.
    pub fn current_version(&self, name: &str) -> Option<i64> {
        self.read().ok()?.current.get(name).copied()
    }

    /// Whether `name`/`version` is loaded.
    pub fn has_version(&self, name: &str, version: i64) -> bool {
        self.read()
            .is_ok_and(|i| i.keks.contains_key(&(name.to_string(), version)))
    }

    /// Seals `plaintext` under a fresh data key wrapped by the current version of `key_name`.
    /// `context` (secret ARN + version id) is bound as associated data to both layers.
    pub fn seal(&self, key_name: &str, context: &[u8], plaintext: &[u8]) -> Result<Sealed> {
        let inner = self.read()?;
        let key_version = *inner.current.get(key_name).ok_or_else(|| {
            Error::new(
                ErrorCode::EncryptionFailure,
                format!("The encryption key {key_name} does not exist."),
            )
        })?;
        let kek = inner.kek(key_name, key_version)?;
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
        let dek = {
            let inner = self.read()?;
            let kek = inner.kek(key_name, key_version)?;
            open(kek, &dek_aad(key_name, key_version, context), wrapped_key)?
        };
        open(&aead_key(&dek)?, context, ciphertext)
    }

    /// Re-wraps a data key under the current version of `key_name` (key rotation's background
    /// re-wrap): the value's ciphertext is unchanged. Returns the new wrapped key and version.
    pub fn rewrap_data_key(
        &self,
        key_name: &str,
        key_version: i64,
        context: &[u8],
        wrapped_key: &[u8],
    ) -> Result<(Vec<u8>, i64)> {
        let inner = self.read()?;
        let old = inner.kek(key_name, key_version)?;
        let dek = open(old, &dek_aad(key_name, key_version, context), wrapped_key)?;
        let current = *inner.current.get(key_name).ok_or_else(|| {
            Error::new(
                ErrorCode::EncryptionFailure,
                format!("The encryption key {key_name} does not exist."),
            )
        })?;
        let new = inner.kek(key_name, current)?;
        let wrapped = seal(new, &dek_aad(key_name, current, context), dek.as_slice())?;
        Ok((wrapped, current))
    }
}

impl Inner {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        let k = Keyring::new(RootKey::generate().unwrap());
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
        let b = Keyring::new(RootKey::generate().unwrap());
        assert!(b.load_kek("k", 1, &w).is_err());
        assert_eq!(
            format!("{:?}", RootKey::generate().unwrap()),
            "RootKey([redacted])"
        );
    }

    #[test]
    fn root_rotation_rewraps_keks_and_key_rotation_rewraps_data_keys() {
        let k = ring();
        let name = "alias/kura/default";
        let s = k.seal(name, b"ctx", b"v").unwrap();
        // A new root: the KEK re-wrapped under it loads into a keyring built on the new root.
        let new_root = RootKey::generate().unwrap();
        let stored = k.new_kek("other", 1).unwrap();
        let moved = k
            .rewrap_kek(
                "other",
                1,
                &stored,
                &RootKey::from_bytes(new_root.expose_bytes()).unwrap(),
            )
            .unwrap();
        let fresh = Keyring::new(new_root);
        assert!(fresh.load_kek("other", 1, &stored).is_err());
        fresh.load_kek("other", 1, &moved).unwrap();
        // A second KEK version: the data key moves to it, the ciphertext stays.
        let v2 = k.new_kek(name, 2).unwrap();
        k.load_kek(name, 2, &v2).unwrap();
        assert_eq!(k.current_version(name), Some(2));
        let (wrapped, version) = k.rewrap_data_key(name, 1, b"ctx", &s.wrapped_key).unwrap();
        assert_eq!(version, 2);
        let p = k.open(name, 2, b"ctx", &s.ciphertext, &wrapped).unwrap();
        assert_eq!(p.as_slice(), b"v");
        assert!(k.open(name, 1, b"ctx", &s.ciphertext, &wrapped).is_err());
    }

    #[test]
    fn an_upgrade_entry_opens_with_the_previous_root_only_for_its_generation() {
        let old = RootKey::generate().unwrap();
        let next = RootKey::generate().unwrap();
        let entry = old.wrap_successor(&next, 3).unwrap();
        let opened = old.open_successor(&entry, 3).unwrap().unwrap();
        assert_eq!(opened.expose_bytes(), next.expose_bytes());
        assert!(old.open_successor(&entry, 4).unwrap().is_none());
        assert!(next.open_successor(&entry, 3).unwrap().is_none());
    }
}
