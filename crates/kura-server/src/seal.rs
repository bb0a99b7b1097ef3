//! How this installation's root key is kept, recorded in the database (setting `seal`) so every
//! node of a cluster sees the same: `file` (no record: `root.key` in each data directory, the
//! embedded default), `shamir` (the root key wrapped by a key split into operators' shares) or
//! `pkcs11` (the root key wrapped by a key inside an HSM).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kura_core::Error;
pub use kura_core::Result;
use kura_crypto::RootKey;
pub use kura_crypto::pkcs11::HsmConfig;
use kura_crypto::pkcs11::HsmSeal;
pub use kura_crypto::seal::SealKey;
use kura_crypto::seal::shamir;
pub use kura_crypto::seal::shamir::Share;
use kura_store::Store;
use serde::{Deserialize, Serialize};

pub const SEAL_SETTING: &str = "seal";

/// The seal an operator asks for with `kura server --seal`.
#[derive(Debug, Clone)]
pub enum SealChoice {
    File,
    Shamir,
    Pkcs11(HsmConfig),
}

impl SealChoice {
    pub fn name(&self) -> &'static str {
        match self {
            SealChoice::File => "file",
            SealChoice::Shamir => "shamir",
            SealChoice::Pkcs11(_) => "pkcs11",
        }
    }
}

/// What the database records about the seal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SealRecord {
    Shamir {
        shares: u8,
        threshold: u8,
        /// SHA-256 of each share, so a wrong share is refused as soon as it is given.
        share_digests: Vec<String>,
        /// The root key under the key the shares rebuild (base64).
        wrapped_root: String,
    },
    Pkcs11 {
        key_label: String,
        /// The root key under the HSM's key (base64).
        wrapped_root: String,
    },
}

impl SealRecord {
    pub fn name(&self) -> &'static str {
        match self {
            SealRecord::Shamir { .. } => "shamir",
            SealRecord::Pkcs11 { .. } => "pkcs11",
        }
    }

    /// The same record holding another wrapped root key (after a root key rotation).
    pub fn with_wrapped_root(&self, wrapped: &[u8]) -> SealRecord {
        let mut next = self.clone();
        match &mut next {
            SealRecord::Shamir { wrapped_root, .. } | SealRecord::Pkcs11 { wrapped_root, .. } => {
                *wrapped_root = B64.encode(wrapped)
            }
        }
        next
    }

    fn wrapped_root(&self) -> Result<Vec<u8>> {
        match self {
            SealRecord::Shamir { wrapped_root, .. } | SealRecord::Pkcs11 { wrapped_root, .. } => {
                decode_wrapped(wrapped_root)
            }
        }
    }
}

fn decode_wrapped(text: &str) -> Result<Vec<u8>> {
    B64.decode(text)
        .map_err(|_| Error::internal("the seal record's wrapped root key is damaged"))
}

/// The database's seal record; `None` for the file seal (and for a database nothing uses yet).
pub async fn load(store: &dyn Store) -> Result<Option<SealRecord>> {
    let Some(bytes) = store.get_setting(SEAL_SETTING).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::internal(format!("the database's seal record is damaged: {e}")))
}

/// Records `record` unless another node recorded one first; returns the one that holds.
async fn record(store: &dyn Store, record: &SealRecord) -> Result<SealRecord> {
    let json = serde_json::to_vec(record)
        .map_err(|e| Error::internal(format!("encoding the seal record: {e}")))?;
    let stored = store.init_setting(SEAL_SETTING, &json).await?;
    serde_json::from_slice(&stored)
        .map_err(|e| Error::internal(format!("the database's seal record is damaged: {e}")))
}

/// Refuses a `--seal` that is not the installation's.
pub fn check_choice(choice: &SealChoice, recorded: Option<&SealRecord>) -> Result<()> {
    let recorded_name = recorded.map(SealRecord::name).unwrap_or("file");
    if choice.name() != recorded_name {
        return Err(Error::invalid_request(format!(
            "this installation is sealed with `{recorded_name}`, not `{}`: start with --seal {recorded_name} (or without --seal); to change the seal, use `kura operator migrate-seal`",
            choice.name()
        )));
    }
    Ok(())
}

/// A new Shamir-sealed installation's root key and the shares, recorded in the database.
/// Fails if the database is already initialised (by another node, a moment ago).
pub async fn init_shamir(
    store: &dyn Store,
    shares: u8,
    threshold: u8,
) -> Result<(RootKey, SealKey, Vec<shamir::Share>)> {
    shamir::check_counts(shares, threshold)?;
    let root = RootKey::generate()?;
    let key = SealKey::generate()?;
    let parts = shamir::split(&key, shares, threshold)?;
    let ours = SealRecord::Shamir {
        shares,
        threshold,
        share_digests: parts.iter().map(shamir::Share::digest).collect(),
        wrapped_root: B64.encode(key.wrap_root(&root)?),
    };
    if record(store, &ours).await? != ours {
        return Err(already_initialised());
    }
    Ok((root, key, parts))
}

pub fn already_initialised() -> Error {
    Error::invalid_request(
        "kura is already initialised: its shares were given out when it was. Unseal it with `kura operator unseal`.",
    )
}

/// The root key from `threshold` shares, or why not.
pub fn open_shamir(record: &SealRecord, given: &[shamir::Share]) -> Result<RootKey> {
    open_shamir_key(record, given).map(|(root, _)| root)
}

/// The root key and the seal key the shares rebuild: an unsealed node keeps the seal key, so
/// a root key rotation can wrap the new root key for the same shares.
pub fn open_shamir_key(record: &SealRecord, given: &[shamir::Share]) -> Result<(RootKey, SealKey)> {
    let SealRecord::Shamir { threshold, .. } = record else {
        return Err(Error::internal("not a Shamir seal"));
    };
    let key = shamir::combine(given, *threshold)?;
    let root = key.unwrap_root(&record.wrapped_root()?)?.ok_or_else(|| {
        Error::invalid_parameter(
            "These shares do not open kura's root key, though each is one of its shares; start over with `kura operator unseal --reset`.",
        )
    })?;
    Ok((root, key))
}

/// The root key the record holds, opened with a seal key kept in memory (after another node
/// rotated the root key); `None` if it does not open.
pub fn reopen_shamir(record: &SealRecord, key: &SealKey) -> Result<Option<RootKey>> {
    key.unwrap_root(&record.wrapped_root()?)
}

/// `root` wrapped by the HSM's key, off the async threads.
pub async fn hsm_wrap(hsm: &HsmConfig, root: &RootKey) -> Result<Vec<u8>> {
    let cfg = hsm.clone();
    let bytes = zeroize::Zeroizing::new(root.expose_bytes().to_vec());
    blocking(move || {
        let hsm = HsmSeal::open(&cfg, false)?;
        hsm.wrap_root(&RootKey::from_bytes(&bytes)?)
    })
    .await
}

/// The root key a pkcs11 record holds, unwrapped by the HSM; `None` if it does not open.
pub async fn hsm_unwrap(hsm: &HsmConfig, record: &SealRecord) -> Result<Option<RootKey>> {
    let cfg = hsm.clone();
    let wrapped = record.wrapped_root()?;
    blocking(move || HsmSeal::open(&cfg, false)?.unwrap_root(&wrapped)).await
}

/// The record as stored.
pub fn encode(record: &SealRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(record)
        .map_err(|e| Error::internal(format!("encoding the seal record: {e}")))
}

/// A stored record.
pub fn decode(bytes: &[u8]) -> Result<SealRecord> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::internal(format!("the database's seal record is damaged: {e}")))
}

/// Whether `share` is one of the installation's shares (by its digest).
pub fn is_known_share(record: &SealRecord, share: &shamir::Share) -> bool {
    match record {
        SealRecord::Shamir { share_digests, .. } => share_digests.contains(&share.digest()),
        SealRecord::Pkcs11 { .. } => false,
    }
}

/// The root key from the HSM: made, wrapped and recorded when the database is new; else
/// unwrapped. PKCS#11 calls block, so they run off the async threads.
pub async fn open_pkcs11(
    store: &dyn Store,
    hsm: &HsmConfig,
    recorded: Option<SealRecord>,
    fresh: bool,
) -> Result<RootKey> {
    let cfg = hsm.clone();
    match recorded {
        Some(SealRecord::Pkcs11 {
            key_label,
            wrapped_root,
        }) => {
            let wrapped = decode_wrapped(&wrapped_root)?;
            if key_label != cfg.key_label {
                return Err(Error::invalid_request(format!(
                    "this installation's root key is wrapped by the HSM key labelled {key_label:?}, not {:?}: start with --pkcs11-key-label {key_label}",
                    cfg.key_label
                )));
            }
            let opened = blocking(move || {
                let hsm = HsmSeal::open(&cfg, false)?;
                hsm.unwrap_root(&wrapped)
            })
            .await?;
            opened.ok_or_else(|| {
                Error::internal(format!(
                    "the HSM key labelled {key_label:?} does not open this installation's root key: it is another key with the same label, or the HSM failed"
                ))
            })
        }
        Some(other) => Err(Error::invalid_request(format!(
            "this installation is sealed with `{}`, not `pkcs11`",
            other.name()
        ))),
        None if !fresh => Err(Error::invalid_request(
            "this installation is sealed with `file` (root.key): start without --seal pkcs11; to move it into the HSM, use `kura operator migrate-seal`",
        )),
        None => {
            let label = cfg.key_label.clone();
            let (root, wrapped) = blocking(move || {
                let hsm = HsmSeal::open(&cfg, true)?;
                let root = RootKey::generate()?;
                let wrapped = hsm.wrap_root(&root)?;
                Ok((root, wrapped))
            })
            .await?;
            let ours = SealRecord::Pkcs11 {
                key_label: label,
                wrapped_root: B64.encode(wrapped),
            };
            let held = record(store, &ours).await?;
            if held != ours {
                // Another node initialised the database at the same moment: use its root key.
                return Box::pin(open_pkcs11(store, hsm, Some(held), false)).await;
            }
            Ok(root)
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("the HSM call did not finish: {e}")))?
}

/// Asks the operators for `threshold` shares (a prompt, stdin, `--share` flags).
pub type AskShares<'a> = dyn FnMut(u8) -> Result<Vec<shamir::Share>> + Send + 'a;

/// The installation's root key, opened by an operator's command rather than a server, with
/// the keyring it was checked against.
pub struct OpenedRoot {
    /// The seal that kept it: `file`, `shamir` or `pkcs11`.
    pub seal: &'static str,
    pub root: RootKey,
    /// Every key-encryption key of the database, opened.
    pub keyring: kura_crypto::Keyring,
}

/// Opens the root key as the installation's seal keeps it — `file`: `root.key` in `dir`;
/// `shamir`: `threshold` shares from `ask_shares`; `pkcs11`: the HSM `hsm` names — and checks
/// that it opens every key of the database's keyring, so nothing is ever done with a key that
/// is not this installation's. Takes no lock and writes nothing: it runs beside a server
/// (`kura operator generate-root`, `kura audit verify`) as well as without one (`migrate-seal`).
pub async fn open_root_offline(
    store: &dyn Store,
    dir: &std::path::Path,
    hsm: Option<&HsmConfig>,
    ask_shares: &mut AskShares<'_>,
) -> Result<OpenedRoot> {
    let recorded = load(store).await?;
    let seal = recorded.as_ref().map(SealRecord::name).unwrap_or("file");
    let root = match &recorded {
        None => crate::root_file::load_or_create_root_key(dir, false)?,
        Some(record @ SealRecord::Shamir { threshold, .. }) => {
            let given = ask_shares(*threshold)?;
            check_shares(record, *threshold, &given)?;
            open_shamir(record, &given)?
        }
        Some(SealRecord::Pkcs11 { .. }) => {
            let hsm = hsm.ok_or_else(|| {
                Error::invalid_request(
                    "the installation is sealed with `pkcs11`: give the HSM's --pkcs11-module, --pkcs11-slot or --pkcs11-token-label, --pkcs11-key-label and KURA_PKCS11_PIN so its root key can be opened",
                )
            })?;
            open_pkcs11(store, hsm, recorded.clone(), false).await?
        }
    };
    let keyring = kura_crypto::Keyring::new(RootKey::from_bytes(root.expose_bytes())?);
    for (name, version, wrapped) in store.load_keys().await? {
        keyring.load_kek(&name, version, &wrapped).map_err(|_| {
            Error::internal(format!(
                "the root key opened by the `{seal}` seal does not open this database's keyring (key {name} version {version}): it is not this installation's root key"
            ))
        })?;
    }
    Ok(OpenedRoot {
        seal,
        root,
        keyring,
    })
}

/// Shares given to a command: enough, each one of the installation's, none twice. Each is
/// judged by its digest before any is combined, so the error names the share at fault.
fn check_shares(record: &SealRecord, threshold: u8, given: &[shamir::Share]) -> Result<()> {
    if given.len() < usize::from(threshold) {
        return Err(Error::invalid_parameter(format!(
            "opening the root key takes {threshold} shares; {} were given. Give {threshold} different operators' shares.",
            given.len()
        )));
    }
    for (i, share) in given.iter().enumerate() {
        if !is_known_share(record, share) {
            return Err(Error::invalid_parameter(format!(
                "share {} of those given is not one of this installation's shares (or it was mistyped)",
                i + 1
            )));
        }
        if given[..i].iter().any(|g| g.index() == share.index()) {
            return Err(Error::invalid_parameter(format!(
                "share number {} was given twice; give {threshold} different operators' shares",
                share.index()
            )));
        }
    }
    Ok(())
}

/// The seal `kura operator migrate-seal` moves to.
pub enum SealTarget {
    File,
    Shamir { shares: u8, threshold: u8 },
    Pkcs11(HsmConfig),
}

/// What moving the seal did.
pub struct Migrated {
    pub from: &'static str,
    pub to: &'static str,
    /// The new shares (to `shamir`), shown once.
    pub shares: Vec<zeroize::Zeroizing<String>>,
    /// `root.key` written (to `file`) or removed (from `file`).
    pub root_key_file: Option<std::path::PathBuf>,
}

/// Moves an installation to another seal, the server stopped: opens the root key with the
/// current seal ([`open_root_offline`]) and keeps it under the new one. Only the 32-byte root
/// key is re-wrapped; no secret is touched. The record changes by compare-and-set, so a
/// concurrent change fails this one.
pub async fn migrate(
    store: &dyn Store,
    dir: &std::path::Path,
    hsm: Option<&HsmConfig>,
    ask_shares: &mut AskShares<'_>,
    target: SealTarget,
) -> Result<Migrated> {
    let key_file = dir.join(crate::root_file::ROOT_KEY_FILE);
    // A database with no key-encryption key yet: nothing was ever sealed with it.
    if store.load_keys().await?.is_empty() {
        return Err(Error::invalid_request(
            "this database is not initialised yet: choose its seal when it starts (`kura server --seal ...`)",
        ));
    }
    let recorded = load(store).await?;
    let from = recorded.as_ref().map(SealRecord::name).unwrap_or("file");
    let to = match &target {
        SealTarget::File => "file",
        SealTarget::Shamir { .. } => "shamir",
        SealTarget::Pkcs11(_) => "pkcs11",
    };
    if from == to {
        return Err(Error::invalid_request(format!(
            "the installation is sealed with `{from}` already"
        )));
    }
    let root = open_root_offline(store, dir, hsm, ask_shares).await?.root;
    // The record exactly as stored: the compare-and-set compares bytes.
    let stored = store.get_setting(SEAL_SETTING).await?;
    let expected = stored.as_deref();
    let mut shares = Vec::new();
    let new_record = match target {
        SealTarget::File => None,
        SealTarget::Shamir {
            shares: n,
            threshold,
        } => {
            shamir::check_counts(n, threshold)?;
            let key = SealKey::generate()?;
            let parts = shamir::split(&key, n, threshold)?;
            shares = parts.iter().map(shamir::Share::to_text).collect();
            Some(SealRecord::Shamir {
                shares: n,
                threshold,
                share_digests: parts.iter().map(shamir::Share::digest).collect(),
                wrapped_root: B64.encode(key.wrap_root(&root)?),
            })
        }
        SealTarget::Pkcs11(cfg) => {
            let label = cfg.key_label.clone();
            let bytes = zeroize::Zeroizing::new(root.expose_bytes().to_vec());
            let wrapped = blocking(move || {
                let hsm = HsmSeal::open(&cfg, true)?;
                hsm.wrap_root(&RootKey::from_bytes(&bytes)?)
            })
            .await?;
            Some(SealRecord::Pkcs11 {
                key_label: label,
                wrapped_root: B64.encode(wrapped),
            })
        }
    };
    let mut root_key_file = None;
    if new_record.is_none() {
        crate::root_file::write_root_key(&key_file, &root)?;
        root_key_file = Some(key_file.clone());
    }
    let new_json = match &new_record {
        Some(r) => Some(
            serde_json::to_vec(r)
                .map_err(|e| Error::internal(format!("encoding the seal record: {e}")))?,
        ),
        None => None,
    };
    if !store
        .replace_setting(SEAL_SETTING, expected, new_json.as_deref())
        .await?
    {
        if new_record.is_none() {
            let _ = std::fs::remove_file(&key_file);
        }
        return Err(Error::invalid_request(
            "the seal record changed while moving it (is a server or another migrate-seal running on this database?); nothing was changed",
        ));
    }
    if recorded.is_none() {
        // The key is kept by the new seal now; a copy left on disk would undo it.
        std::fs::remove_file(&key_file).map_err(|e| {
            Error::internal(format!(
                "the seal moved, but {} could not be removed ({e}): remove it by hand",
                key_file.display()
            ))
        })?;
        root_key_file = Some(key_file);
    }
    Ok(Migrated {
        from,
        to,
        shares,
        root_key_file,
    })
}
