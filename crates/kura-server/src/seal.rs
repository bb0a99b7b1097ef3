//! How this installation's root key is kept, recorded in the database (setting `seal`) so every
//! node of a cluster sees the same: `file` (no record: `root.key` in each data directory, the
//! embedded default), `shamir` (the root key wrapped by a key split into operators' shares) or
//! `pkcs11` (the root key wrapped by a key inside an HSM).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kura_core::{Error, Result};
use kura_crypto::RootKey;
pub use kura_crypto::pkcs11::HsmConfig;
use kura_crypto::pkcs11::HsmSeal;
use kura_crypto::seal::{SealKey, shamir};
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
) -> Result<(RootKey, Vec<shamir::Share>)> {
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
    Ok((root, parts))
}

pub fn already_initialised() -> Error {
    Error::invalid_request(
        "kura is already initialised: its shares were given out when it was. Unseal it with `kura operator unseal`.",
    )
}

/// The root key from `threshold` shares, or why not.
pub fn open_shamir(record: &SealRecord, given: &[shamir::Share]) -> Result<RootKey> {
    let SealRecord::Shamir { threshold, .. } = record else {
        return Err(Error::internal("not a Shamir seal"));
    };
    let key = shamir::combine(given, *threshold)?;
    key.unwrap_root(&record.wrapped_root()?)?.ok_or_else(|| {
        Error::invalid_parameter(
            "These shares do not open kura's root key, though each is one of its shares; start over with `kura operator unseal --reset`.",
        )
    })
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
