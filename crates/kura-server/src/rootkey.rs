//! Root key rotation (`kura operator rotate-root-key`) on a running node, and how the other
//! nodes of a cluster follow it.
//!
//! A rotation makes a new root key and, in one store transaction, re-wraps every row of
//! `keys` under it (the key material does not change, so no secret is touched), stores it
//! under the seal (the Shamir record, the HSM-wrapped record; the file seal writes
//! `root.key.next` first and renames it over `root.key` after the commit), raises the
//! `root-generation` setting and appends an upgrade entry to `root-upgrade`: the new root key
//! sealed under the previous one. A node still holding the previous root key (another node of
//! the cluster, or a file-sealed node started with an old `root.key`) follows the entries to
//! the current root. Entries older than [`UPGRADE_GRACE_MS`] are removed, after which a node
//! that fell behind needs its seal (shares, HSM) or a copy of `root.key` from a node that
//! rotated.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kura_core::{Error, Result};
use kura_crypto::{Keyring, RootKey};
use kura_store::{KeyRewrap, SettingSwap, Store};
use serde::{Deserialize, Serialize};

use crate::root_file::{
    NEXT_ROOT_KEY_FILE, ROOT_KEY_FILE, install_next_file, read_root_key, rewrite_root_file,
    write_next_file,
};
use crate::seal::{self, HsmConfig, SEAL_SETTING, SealKey};

/// The generation of the root key the installation is at (absent: 1, the first).
pub const GENERATION_SETTING: &str = "root-generation";
/// The upgrade entries of recent rotations (JSON list of [`UpgradeEntry`]).
pub const UPGRADE_SETTING: &str = "root-upgrade";
/// How long a rotation's upgrade entry stays: nodes holding the previous root key follow it
/// within seconds; after this, one that was down needs its seal or a copy of `root.key`.
pub const UPGRADE_GRACE_MS: i64 = 15 * 60 * 1000;
/// How often a node checks whether another node rotated the root key.
pub const CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// One rotation's upgrade entry: the root key of `generation`, sealed under that of
/// `generation - 1` (AES-256-GCM, the generation bound as associated data).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UpgradeEntry {
    generation: i64,
    wrapped: String,
    created_at: i64,
}

/// What keeps the root key at rest, as an unsealed node can use it to store a new one.
pub enum Custody {
    /// `root.key` in the data directory.
    File { dir: PathBuf },
    /// The seal key the shares rebuilt, kept while unsealed (dropped when the node seals).
    Shamir { key: SealKey },
    /// The HSM holding the key that wraps the root key.
    Pkcs11 { hsm: HsmConfig },
}

impl Custody {
    fn name(&self) -> &'static str {
        match self {
            Custody::File { .. } => "file",
            Custody::Shamir { .. } => "shamir",
            Custody::Pkcs11 { .. } => "pkcs11",
        }
    }
}

/// What a rotation did, for `kura operator rotate-root-key`.
#[derive(Debug)]
pub struct Rotated {
    pub seal_type: &'static str,
    pub keys_rewrapped: usize,
    pub generation: i64,
}

/// A node's part in root key rotation: its custody, the generation it holds, and the root
/// key it held before the last rotation (kept for the grace period, to re-wrap a key another
/// writer stored under it while the rotation committed).
pub struct RootKeeper {
    custody: Custody,
    generation: AtomicI64,
    previous: Mutex<Option<(RootKey, i64)>>,
    busy: tokio::sync::Mutex<()>,
}

fn parse_generation(raw: Option<&[u8]>) -> Result<i64> {
    match raw {
        None => Ok(1),
        Some(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| Error::internal("the root-generation setting is damaged")),
    }
}

/// The installation's root key generation.
pub async fn read_generation(store: &dyn Store) -> Result<i64> {
    parse_generation(store.get_setting(GENERATION_SETTING).await?.as_deref())
}

async fn read_upgrades(store: &dyn Store) -> Result<(Option<Vec<u8>>, Vec<UpgradeEntry>)> {
    let raw = store.get_setting(UPGRADE_SETTING).await?;
    let entries = match &raw {
        None => Vec::new(),
        Some(b) => serde_json::from_slice(b)
            .map_err(|_| Error::internal("the root-upgrade setting is damaged"))?,
    };
    Ok((raw, entries))
}

fn encode_upgrades(entries: &[UpgradeEntry]) -> Result<Vec<u8>> {
    serde_json::to_vec(entries).map_err(|e| Error::internal(format!("encoding root-upgrade: {e}")))
}

fn copy(root: &RootKey) -> Result<RootKey> {
    RootKey::from_bytes(root.expose_bytes())
}

/// Whether every stored key opens with `root`.
fn opens_all(root: &RootKey, keys: &[(String, i64, Vec<u8>)]) -> Result<bool> {
    let ring = Keyring::new(copy(root)?);
    Ok(keys
        .iter()
        .all(|(name, version, wrapped)| ring.load_kek(name, *version, wrapped).is_ok()))
}

/// Follows the upgrade entries from `root` as far as they go; the root key reached and its
/// generation, or `None` when no entry was sealed under `root`.
fn follow_entries(root: &RootKey, entries: &[UpgradeEntry]) -> Result<Option<(RootKey, i64)>> {
    let mut sorted: Vec<&UpgradeEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.generation);
    let mut reached: Option<(RootKey, i64)> = None;
    for e in sorted {
        let wrapped = B64
            .decode(&e.wrapped)
            .map_err(|_| Error::internal("the root-upgrade setting is damaged"))?;
        let from = match &reached {
            Some((r, g)) if *g + 1 == e.generation => r,
            Some(_) => continue,
            None => root,
        };
        if let Some(next) = from.open_successor(&wrapped, e.generation)? {
            reached = Some((next, e.generation));
        }
    }
    Ok(reached)
}

/// At the start of a file-sealed node: the root key that opens the keyring, from `root.key`,
/// from a `root.key.next` a rotation committed before it could rename it, or by following
/// the upgrade entries from an older `root.key` (another node rotated); `root.key` is then
/// rewritten. When none opens it, the error says what to copy.
pub async fn file_root_at_start(store: &dyn Store, dir: &Path, root: RootKey) -> Result<RootKey> {
    let keys = store.load_keys().await?;
    let next_path = dir.join(NEXT_ROOT_KEY_FILE);
    if keys.is_empty() || opens_all(&root, &keys)? {
        // A rotation that wrote root.key.next but did not commit: that key protects nothing.
        let _ = std::fs::remove_file(&next_path);
        return Ok(root);
    }
    if next_path.exists()
        && let Ok(next) = read_root_key(&next_path)
        && opens_all(&next, &keys)?
    {
        install_next_file(dir)?;
        tracing::info!(
            "root.key.next holds the root key a rotation committed before this node stopped: it is root.key now"
        );
        return Ok(next);
    }
    let (_, entries) = read_upgrades(store).await?;
    if let Some((next, generation)) = follow_entries(&root, &entries)?
        && opens_all(&next, &keys)?
    {
        rewrite_root_file(dir, &next)?;
        tracing::info!(
            generation,
            "root.key held an older root key: followed the installation's root key rotation and rewrote root.key"
        );
        return Ok(next);
    }
    let generation = read_generation(store).await?;
    if generation > 1 {
        return Err(Error::internal(format!(
            "the root key in {} does not open this database's keyring. The installation's root key was rotated (it is at generation {generation}); a node holding an older root key follows a rotation for {} minutes after it, and this one did not. Copy root.key from a node that has the current root key (one that rotated or was running since), then start again",
            dir.join(ROOT_KEY_FILE).display(),
            UPGRADE_GRACE_MS / 60_000
        )));
    }
    // The usual error (the wrong installation's root key) comes from opening the keyring.
    Ok(root)
}

impl RootKeeper {
    pub fn new(custody: Custody, generation: i64) -> Self {
        RootKeeper {
            custody,
            generation: AtomicI64::new(generation),
            previous: Mutex::new(None),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// The root key generation this node holds.
    pub fn generation(&self) -> i64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub fn seal_type(&self) -> &'static str {
        self.custody.name()
    }

    /// `kura operator rotate-root-key`: a new root key, every key re-wrapped under it. A
    /// rotation that finds the keys or the seal changed meanwhile (another node added a key
    /// or rotated) reads again and retries; it never drops a key.
    pub async fn rotate(&self, store: &dyn Store, keyring: &Keyring, now: i64) -> Result<Rotated> {
        let _busy = self.busy.lock().await;
        for _ in 0..8 {
            if let Some(done) = self.rotate_once(store, keyring, now).await? {
                return Ok(done);
            }
            tracing::info!("the keyring changed while rotating the root key; trying again");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Err(Error::new(
            kura_core::ErrorCode::InternalServiceError,
            "The keyring kept changing while the root key was rotated (keys being added, or another rotation); nothing was changed. Try again.",
        ))
    }

    async fn rotate_once(
        &self,
        store: &dyn Store,
        keyring: &Keyring,
        now: i64,
    ) -> Result<Option<Rotated>> {
        self.follow_locked(store, keyring, now).await?;
        let generation_raw = store.get_setting(GENERATION_SETTING).await?;
        let current = parse_generation(generation_raw.as_deref())?;
        if current != self.generation() {
            return Ok(None);
        }
        let generation = current + 1;
        let new_root = RootKey::generate()?;
        let prev = self.previous_ring()?;
        let mut rewraps = Vec::new();
        for (name, version, wrapped) in store.load_keys().await? {
            let new = match keyring.rewrap_kek(&name, version, &wrapped, &new_root) {
                Ok(w) => w,
                // A key another writer stored under the previous root key.
                Err(e) => match &prev {
                    Some(p) => p.rewrap_kek(&name, version, &wrapped, &new_root)?,
                    None => return Err(e),
                },
            };
            rewraps.push(KeyRewrap {
                name,
                version,
                old: wrapped,
                new,
            });
        }
        let (upgrade_raw, mut entries) = read_upgrades(store).await?;
        entries.retain(|e| now - e.created_at < UPGRADE_GRACE_MS);
        entries.push(UpgradeEntry {
            generation,
            wrapped: B64.encode(keyring.with_root(|r| r.wrap_successor(&new_root, generation))?),
            created_at: now,
        });
        let upgrades = encode_upgrades(&entries)?;
        let seal_raw = store.get_setting(SEAL_SETTING).await?;
        let recorded = seal_raw.as_deref().map(seal::decode).transpose()?;
        let recorded_name = recorded.as_ref().map(|r| r.name()).unwrap_or("file");
        if recorded_name != self.custody.name() {
            return Err(Error::invalid_request(format!(
                "the database records the `{recorded_name}` seal, but this node runs with `{}` (was the seal migrated while it ran?): restart the node, then rotate",
                self.custody.name()
            )));
        }
        let new_seal = match (&self.custody, &seal_raw) {
            (Custody::File { .. }, None) => None,
            (Custody::Shamir { key }, Some(raw)) => {
                let record = seal::decode(raw)?;
                Some(seal::encode(
                    &record.with_wrapped_root(&key.wrap_root(&new_root)?),
                )?)
            }
            (Custody::Pkcs11 { hsm }, Some(raw)) => {
                let record = seal::decode(raw)?;
                Some(seal::encode(
                    &record.with_wrapped_root(&seal::hsm_wrap(hsm, &new_root).await?),
                )?)
            }
            _ => {
                return Err(Error::invalid_request(
                    "the database's seal record is not this node's seal (was the seal migrated while it ran?): restart the node, then rotate",
                ));
            }
        };
        let generation_text = generation.to_string();
        let mut swaps = vec![
            SettingSwap {
                key: GENERATION_SETTING,
                expected: generation_raw.as_deref(),
                value: Some(generation_text.as_bytes()),
            },
            SettingSwap {
                key: UPGRADE_SETTING,
                expected: upgrade_raw.as_deref(),
                value: Some(&upgrades),
            },
        ];
        if let Some(record) = &new_seal {
            swaps.push(SettingSwap {
                key: SEAL_SETTING,
                expected: seal_raw.as_deref(),
                value: Some(record),
            });
        }
        // The file seal: the new key is on disk before the database depends on it.
        if let Custody::File { dir } = &self.custody {
            write_next_file(dir, &new_root)?;
        }
        let committed = store.rewrap_keys(&rewraps, &swaps).await;
        if let Custody::File { dir } = &self.custody {
            match &committed {
                Ok(true) => install_next_file(dir).map_err(|e| {
                    Error::internal(format!(
                        "the root key was rotated, but root.key could not be replaced ({}); this node recovers root.key.next when it starts",
                        e.message
                    ))
                })?,
                _ => {
                    let _ = std::fs::remove_file(dir.join(NEXT_ROOT_KEY_FILE));
                }
            }
        }
        if !committed? {
            return Ok(None);
        }
        let old = keyring.replace_root(new_root)?;
        self.generation.store(generation, Ordering::SeqCst);
        if let Ok(mut p) = self.previous.lock() {
            *p = Some((old, now));
        }
        if let Err(e) = self.sweep(store, keyring).await {
            tracing::warn!(detail = %e.message, "re-wrapping keys stored under the previous root key failed; retrying later");
        }
        tracing::info!(
            generation,
            keys = rewraps.len(),
            seal = self.custody.name(),
            "rotated the root key"
        );
        Ok(Some(Rotated {
            seal_type: self.custody.name(),
            keys_rewrapped: rewraps.len(),
            generation,
        }))
    }

    fn previous_ring(&self) -> Result<Option<Keyring>> {
        let p = self
            .previous
            .lock()
            .map_err(|_| Error::internal("poisoned"))?;
        p.as_ref()
            .map(|(root, _)| Ok(Keyring::new(copy(root)?)))
            .transpose()
    }

    /// Catches up with a rotation another node made (called periodically and before a
    /// rotation), re-wraps keys left under the previous root key, and prunes old entries.
    pub async fn follow(&self, store: &dyn Store, keyring: &Keyring, now: i64) -> Result<()> {
        let _busy = self.busy.lock().await;
        self.follow_locked(store, keyring, now).await
    }

    async fn follow_locked(&self, store: &dyn Store, keyring: &Keyring, now: i64) -> Result<()> {
        let target = read_generation(store).await?;
        let held = self.generation();
        if target > held {
            self.catch_up(store, keyring, now, held, target).await?;
        }
        self.sweep(store, keyring).await?;
        self.prune(store, now).await
    }

    async fn catch_up(
        &self,
        store: &dyn Store,
        keyring: &Keyring,
        now: i64,
        held: i64,
        target: i64,
    ) -> Result<()> {
        let ours = keyring.with_root(copy)?;
        let (_, entries) = read_upgrades(store).await?;
        let mut reached = follow_entries(&ours, &entries)?;
        if reached.as_ref().is_none_or(|(_, g)| *g < target) {
            // Too far behind for the entries: the seal record holds the current root key.
            let record = store.get_setting(SEAL_SETTING).await?;
            let from_seal = match (&self.custody, record) {
                (Custody::Shamir { key }, Some(raw)) => {
                    seal::reopen_shamir(&seal::decode(&raw)?, key)?
                }
                (Custody::Pkcs11 { hsm }, Some(raw)) => {
                    seal::hsm_unwrap(hsm, &seal::decode(&raw)?).await?
                }
                _ => None,
            };
            if let Some(root) = from_seal {
                reached = Some((root, target));
            }
        }
        let Some((root, generation)) = reached else {
            return Err(Error::internal(format!(
                "this node holds root key generation {held}, the installation is at {target}, and no upgrade entry opens with its key (they last {} minutes): restart it{}",
                UPGRADE_GRACE_MS / 60_000,
                match self.custody {
                    Custody::File { .. } =>
                        " after copying root.key from a node that has the current root key",
                    _ => "",
                }
            )));
        };
        let keys = store.load_keys().await?;
        let prev_ok = |w: &(String, i64, Vec<u8>)| -> Result<bool> {
            opens_all(&ours, std::slice::from_ref(w))
        };
        let ring = Keyring::new(copy(&root)?);
        for k in &keys {
            if ring.load_kek(&k.0, k.1, &k.2).is_err() && !prev_ok(k)? {
                return Err(Error::internal(format!(
                    "the root key of generation {generation} reached by this node does not open key {} version {}: not following",
                    k.0, k.1
                )));
            }
        }
        if let Custody::File { dir } = &self.custody {
            rewrite_root_file(dir, &root)?;
        }
        let old = keyring.replace_root(root)?;
        self.generation.store(generation, Ordering::SeqCst);
        if let Ok(mut p) = self.previous.lock() {
            *p = Some((old, now));
        }
        tracing::info!(
            from = held,
            to = generation,
            "followed a root key rotation made by another node"
        );
        Ok(())
    }

    /// Re-wraps under the current root key any stored key still under the previous one (a
    /// writer that made it just before it learned of the rotation).
    async fn sweep(&self, store: &dyn Store, keyring: &Keyring) -> Result<()> {
        let Some(prev) = self.previous_ring()? else {
            return Ok(());
        };
        let current = keyring.with_root(copy)?;
        let keys = store.load_keys().await?;
        let mut stale = 0;
        let mut rewraps = Vec::with_capacity(keys.len());
        for (name, version, wrapped) in keys {
            let new = match prev.rewrap_kek(&name, version, &wrapped, &current) {
                Ok(w) => {
                    stale += 1;
                    w
                }
                Err(_) => wrapped.clone(),
            };
            rewraps.push(KeyRewrap {
                name,
                version,
                old: wrapped,
                new,
            });
        }
        if stale == 0 {
            return Ok(());
        }
        if store.rewrap_keys(&rewraps, &[]).await? {
            for k in &rewraps {
                let _ = keyring.load_kek(&k.name, k.version, &k.new);
            }
            tracing::info!(
                keys = stale,
                "re-wrapped keys stored under the previous root key"
            );
        }
        Ok(())
    }

    /// Removes upgrade entries past the grace period, and forgets the previous root key then.
    async fn prune(&self, store: &dyn Store, now: i64) -> Result<()> {
        if let Ok(mut p) = self.previous.lock()
            && p.as_ref()
                .is_some_and(|(_, at)| now - at >= UPGRADE_GRACE_MS)
        {
            *p = None;
        }
        let (raw, entries) = read_upgrades(store).await?;
        let Some(raw) = raw else { return Ok(()) };
        let kept: Vec<UpgradeEntry> = entries
            .into_iter()
            .filter(|e| now - e.created_at < UPGRADE_GRACE_MS)
            .collect();
        let value = if kept.is_empty() {
            None
        } else {
            Some(encode_upgrades(&kept)?)
        };
        if value.as_deref() != Some(raw.as_slice()) {
            // Another node may prune at the same moment: compare-and-set, either wins.
            store
                .replace_setting(UPGRADE_SETTING, Some(&raw), value.as_deref())
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kura_core::Timestamp;
    use kura_store::SqliteStore;
    use kura_store::prelude::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "kura-rootkey-{name}-{}-{}",
            std::process::id(),
            kura_crypto::random::alnum(8).unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn root_in(dir: &Path) -> RootKey {
        let text = std::fs::read_to_string(dir.join(ROOT_KEY_FILE)).unwrap();
        RootKey::from_bytes(&hex::decode(text.trim()).unwrap()).unwrap()
    }

    /// Two file-sealed nodes on one database: one rotates; a key the other stores under the
    /// previous root key afterwards is re-wrapped; the other follows; entries expire.
    #[tokio::test]
    async fn rotation_rewraps_late_keys_and_the_other_node_follows() {
        let (dir_a, dir_b) = (temp_dir("a"), temp_dir("b"));
        let store = SqliteStore::open(&dir_a.join("kura.db")).await.unwrap();
        let first = RootKey::generate().unwrap();
        let a = Keyring::new(copy(&first).unwrap());
        let b = Keyring::new(copy(&first).unwrap());
        let w = a.new_kek("alias/kura/default", 1).unwrap();
        store
            .insert_key("alias/kura/default", 1, &w, Timestamp(0))
            .await
            .unwrap();
        a.load_kek("alias/kura/default", 1, &w).unwrap();
        b.load_kek("alias/kura/default", 1, &w).unwrap();
        let keeper_a = RootKeeper::new(Custody::File { dir: dir_a.clone() }, 1);
        let keeper_b = RootKeeper::new(Custody::File { dir: dir_b.clone() }, 1);

        let done = keeper_a.rotate(&store, &a, 0).await.unwrap();
        assert_eq!((done.generation, done.keys_rewrapped), (2, 1));
        let second = root_in(&dir_a);
        assert!(opens_all(&second, &store.load_keys().await.unwrap()).unwrap());
        assert!(!opens_all(&first, &store.load_keys().await.unwrap()).unwrap());

        // B, not yet following, stores a key under the first root key; A's next check moves it.
        let late = b.new_kek("team", 1).unwrap();
        store
            .insert_key("team", 1, &late, Timestamp(0))
            .await
            .unwrap();
        keeper_a.follow(&store, &a, 1_000).await.unwrap();
        assert!(opens_all(&second, &store.load_keys().await.unwrap()).unwrap());
        assert!(a.has_version("team", 1));

        // B follows the upgrade entry and writes its own root.key.
        keeper_b.follow(&store, &b, 2_000).await.unwrap();
        assert_eq!(keeper_b.generation(), 2);
        assert_eq!(root_in(&dir_b).expose_bytes(), second.expose_bytes());
        b.with_root(|r| {
            assert_eq!(r.expose_bytes(), second.expose_bytes());
            Ok(())
        })
        .unwrap();

        // A second rotation from B; after the grace period the entries are gone.
        assert_eq!(
            keeper_b.rotate(&store, &b, 3_000).await.unwrap().generation,
            3
        );
        keeper_a.follow(&store, &a, 4_000).await.unwrap();
        assert_eq!(keeper_a.generation(), 3);
        assert!(store.get_setting(UPGRADE_SETTING).await.unwrap().is_some());
        keeper_a
            .follow(&store, &a, 3_000 + UPGRADE_GRACE_MS)
            .await
            .unwrap();
        assert!(store.get_setting(UPGRADE_SETTING).await.unwrap().is_none());
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir_a);
        let _ = std::fs::remove_dir_all(&dir_b);
    }
}
