//! Opening a data directory and its database: on first start it creates the root key, the
//! default key-encryption key and the root user's access key; later starts reuse them.
//!
//! The database is the embedded SQLite file in the data directory, or a PostgreSQL database
//! (`--database-url`) shared by several nodes. Then the first node to start initialises the
//! database and writes `root-credentials`; every other node needs a copy of its `root.key`.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kura_core::model::{SealedValue, ValueKind};
use kura_core::{Clock, Error, Result};
use kura_crypto::mac::MacKey;
use kura_crypto::{Keyring, RootKey, random};
use kura_store::{PgStore, SqliteStore, Store};
use zeroize::Zeroizing;

use crate::root_file::{ROOT_KEY_FILE, io_err, write_private};
use crate::service::access_keys::NewAccessKey;
use crate::service::{DEFAULT_KEY, Service};
use kura_audit::{AUDIT_FILE, AuditLog, FileHolds, VerifyReport};

pub const CREDENTIALS_FILE: &str = "root-credentials";
pub const DATABASE_FILE: &str = "kura.db";
pub const NODE_ID_FILE: &str = "node-id";

/// This node's name in the audit trail: made once per data directory, kept across restarts.
fn load_or_create_node_id(dir: &Path) -> Result<String> {
    let path = dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().chars().take(64).collect()),
        Ok(_) => Err(Error::internal(format!(
            "{} is empty: delete it to have kura name this node anew",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("node-{}", random::alnum(10)?.to_lowercase());
            write_private(&path, format!("{id}\n").as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(io_err("cannot read", &path, e)),
    }
}

pub const LOCK_FILE: &str = "kura.lock";

/// Takes the data directory's lock. The embedded database and the start-up recovery of
/// interrupted rotations both assume no other kura process uses the directory.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File> {
    try_lock_data_dir(dir)?.ok_or_else(|| {
        Error::internal(format!(
            "another kura server is using the data directory {}; stop it first, or start this one with another --data-dir",
            dir.display()
        ))
    })
}

/// The data directory's lock, or `None` while a kura process holds it.
pub(crate) fn try_lock_data_dir(dir: &Path) -> Result<Option<std::fs::File>> {
    let path = dir.join(LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| io_err("cannot open", &path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err("cannot lock", &path, e)),
    }
}

/// A database URL as it may be logged: without its password.
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparsable database URL)".into(),
    }
}

/// Opens the database: PostgreSQL when `database_url` is given, else the data directory's
/// SQLite file.
async fn open_store(dir: &Path, database_url: Option<&str>) -> Result<Arc<dyn Store>> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store = PgStore::connect(url).await.map_err(|e| {
                let why = e.detail.clone().unwrap_or(e.message.clone());
                Error::internal(format!(
                    "cannot open the database {}: {why}",
                    shown_url(url)
                ))
            })?;
            Ok(Arc::new(store))
        }
        Some(url) => Err(Error::invalid_parameter(format!(
            "--database-url {} is not a postgres:// URL; leave it out to use the embedded SQLite database in the data directory",
            shown_url(url)
        ))),
        None => {
            let store = SqliteStore::open(&dir.join(DATABASE_FILE)).await?;
            // The database holds only ciphertext, but its metadata is nobody else's business
            // (nor is the audit lookup file's: resource names and principals).
            for p in kura_store::database_files(&dir.join(DATABASE_FILE)) {
                if p.exists() {
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| io_err("cannot restrict permissions of", &p, e))?;
                }
            }
            Ok(Arc::new(store))
        }
    }
}

/// A data directory locked and its database open, before the root key is known (a sealed
/// node stays here until it is unsealed).
pub struct Prepared {
    pub dir: PathBuf,
    pub store: Arc<dyn Store>,
    pub database_url: Option<String>,
    /// Held while the server runs: one kura process per data directory.
    pub lock: std::fs::File,
}

impl Prepared {
    /// Whether nothing has initialised the database yet (it holds no keys).
    pub async fn is_fresh(&self) -> Result<bool> {
        Ok(self.store.load_keys().await?.is_empty())
    }
}

/// Creates and locks `dir` and opens the database.
pub async fn prepare(dir: &Path, database_url: Option<&str>) -> Result<Prepared> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_err("cannot create the data directory", dir, e))?;
    let lock = lock_data_dir(dir)?;
    let store = open_store(dir, database_url).await?;
    Ok(Prepared {
        dir: dir.to_path_buf(),
        store,
        database_url: database_url.map(str::to_string),
        lock,
    })
}

/// Where the root key came from, for the error when it does not open the database's keyring.
pub enum RootOrigin {
    /// `root.key` was in the data directory.
    KeptFile,
    /// `root.key` was made by this start.
    NewFile,
    /// A seal opened it (`shamir`, `pkcs11`).
    Seal,
}

/// With the root key: loads (making on first start) the keyring, the account, the audit
/// trail and the root user, and returns the ready service.
pub async fn finish(
    prepared: &Prepared,
    root: RootKey,
    origin: RootOrigin,
    region: &str,
    clock: Arc<dyn Clock>,
) -> Result<Service> {
    let dir = prepared.dir.as_path();
    let store = prepared.store.clone();
    let account_candidate: String = (0..12)
        .map(|_| random::index(10).map(|d| char::from(b'0' + d as u8)))
        .collect::<Result<_>>()?;
    let account = String::from_utf8(
        store
            .init_setting("account_id", account_candidate.as_bytes())
            .await?,
    )
    .map_err(|_| Error::internal("stored account id is not UTF-8"))?;

    let keyring = Keyring::new(root);
    let mut keys = store.load_keys().await?;
    if !keys.iter().any(|(name, _, _)| name == DEFAULT_KEY) {
        let wrapped = keyring.new_kek(DEFAULT_KEY, 1)?;
        // Another node starting at the same moment may have stored its own first; then the
        // check below finds that this root key is not the cluster's.
        if let Err(e) = store
            .insert_key(DEFAULT_KEY, 1, &wrapped, clock.now())
            .await
        {
            tracing::debug!(detail = ?e, "another node initialised the keyring first");
        }
        keys = store.load_keys().await?;
    }
    for (name, version, wrapped) in &keys {
        if keyring.load_kek(name, *version, wrapped).is_err() {
            let path = dir.join(ROOT_KEY_FILE);
            return Err(match origin {
                RootOrigin::NewFile => {
                    // Another node initialised the database at the same moment, so the key
                    // this start made protects nothing; left behind it would only stand in
                    // for the cluster's key that has to be copied here.
                    let _ = std::fs::remove_file(&path);
                    Error::internal(format!(
                        "another node initialised this database at the same moment as this one: copy root.key from that node into {}, then start again",
                        dir.display()
                    ))
                }
                RootOrigin::KeptFile => Error::internal(format!(
                    "the root key in {} does not open this database's keyring (key {name} version {version}): it is not the root key of the installation that owns the database. Copy root.key from one of its nodes, or point --database-url at this node's own database",
                    path.display()
                )),
                RootOrigin::Seal => Error::internal(format!(
                    "the unsealed root key does not open this database's keyring (key {name} version {version}): the seal record and the keys table belong to different installations"
                )),
            });
        }
    }

    let mut token_secret = Zeroizing::new([0u8; 32]);
    random::fill(token_secret.as_mut_slice())?;
    let token_secret = Zeroizing::new(
        store
            .init_setting("pagination_token_key", token_secret.as_slice())
            .await?,
    );
    let service = Service::new(
        store.clone(),
        Arc::new(keyring),
        clock.clone(),
        region.to_string(),
        account.clone(),
        kura_crypto::mac::MacKey::new(&token_secret),
    )
    .with_node_id(load_or_create_node_id(dir)?);
    service.load_keys().await?;
    let audit_file = dir.join(AUDIT_FILE);
    let audit_key = load_or_create_audit_key(&service, &audit_file).await?;
    service.set_audit(AuditLog::start(store.clone(), audit_key, audit_file).await?);
    let credentials_file = dir.join(CREDENTIALS_FILE);
    if !store.user_exists("root").await? {
        create_root_user(&service, &account, &credentials_file, clock.now()).await?;
    } else if !credentials_file.exists() && prepared.database_url.is_some() {
        tracing::info!(
            "joined an initialised database: the root credentials are in the root-credentials file of the node that initialised it"
        );
    } else if !credentials_file.exists() {
        tracing::warn!(path = %credentials_file.display(), "the root credentials file is gone; the root access key still works for whoever kept a copy");
    }
    Ok(service)
}

async fn create_root_user(
    svc: &Service,
    account: &str,
    credentials_file: &Path,
    now: kura_core::Timestamp,
) -> Result<()> {
    let store = svc.store();
    let created = store
        .create_user(
            &kura_store::UserRecord {
                name: "root".into(),
                arn: format!("arn:aws:iam::{account}:root"),
                user_id: crate::service::new_user_id()?,
                created_at: now,
                tags: Vec::new(),
            },
            &kura_store::NO_AUDIT,
        )
        .await;
    match created {
        Ok(()) => {}
        // Another node of the cluster created it a moment ago: its node has the credentials.
        Err(e) if e.code == kura_core::ErrorCode::ResourceExists => return Ok(()),
        Err(e) => return Err(e),
    }
    let (access_key_id, secret) = svc
        .create_access_key(NewAccessKey::long_term("root", None), &kura_store::NO_AUDIT)
        .await?;
    let contents = Zeroizing::new(format!(
        "# kura root credentials. Use with AWS_SHARED_CREDENTIALS_FILE={}\n[default]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {}\n",
        credentials_file.display(),
        secret.as_str()
    ));
    write_private(credentials_file, contents.as_bytes())?;
    Ok(())
}

const AUDIT_KEY_SETTING: &str = "audit_key";
const AUDIT_KEY_CONTEXT: &[u8] = b"kura/audit-key";

fn sealed_to_json(s: &SealedValue) -> String {
    serde_json::json!({
        "ciphertext": hex::encode(&s.ciphertext),
        "wrapped_key": hex::encode(&s.wrapped_key),
        "key_name": s.key_name,
        "key_version": s.key_version,
    })
    .to_string()
}

fn sealed_from_json(bytes: &[u8]) -> Result<SealedValue> {
    let bad = || Error::internal("the stored audit key is damaged");
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| bad())?;
    let hex_field = |f: &str| -> Result<Vec<u8>> {
        v[f].as_str()
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(bad)
    };
    Ok(SealedValue {
        kind: ValueKind::String,
        ciphertext: hex_field("ciphertext")?,
        wrapped_key: hex_field("wrapped_key")?,
        key_name: v["key_name"].as_str().ok_or_else(bad)?.to_string(),
        key_version: v["key_version"].as_i64().ok_or_else(bad)?,
    })
}

/// Why a missing audit key is tampering and not a first start: records exist without it.
/// `None` when there is no record anywhere (a new data directory).
async fn records_without_key(store: &dyn Store, audit_file: &Path) -> Result<Option<String>> {
    let in_db = store.last_audit().await?.map(|r| r.seq);
    let in_file = std::fs::metadata(audit_file).is_ok_and(|m| m.len() > 0);
    Ok(match (in_db, in_file) {
        (Some(n), _) => Some(format!(
            "the audit key (row audit_key of the settings table) is missing, but the database holds {n} audit records"
        )),
        (None, true) => Some(format!(
            "the audit key (row audit_key of the settings table) is missing, but {} holds audit records",
            audit_file.display()
        )),
        (None, false) => None,
    })
}

/// The audit chain's HMAC key: random, sealed by the keyring, so a copy of the database
/// alone cannot forge records. Created on first start only: a key gone while records exist
/// was deleted, and a new one would hide that the old records can no longer be checked.
async fn load_or_create_audit_key(service: &Service, audit_file: &Path) -> Result<MacKey> {
    let store = service.store();
    let stored = match store.get_setting(AUDIT_KEY_SETTING).await? {
        Some(v) => v,
        None => {
            if let Some(what) = records_without_key(store.as_ref(), audit_file).await? {
                return Err(Error::internal(format!(
                    "{what}: it was deleted or the database is damaged, so the audit trail can no longer be checked. kura does not start a new audit chain over an existing one: restore {} from a backup (then run `kura audit verify`).",
                    DATABASE_FILE
                )));
            }
            let mut key = Zeroizing::new([0u8; 32]);
            random::fill(key.as_mut_slice())?;
            let sealed = service.seal_internal(AUDIT_KEY_CONTEXT, key.as_slice())?;
            store
                .init_setting(AUDIT_KEY_SETTING, sealed_to_json(&sealed).as_bytes())
                .await?
        }
    };
    let key = service.open_internal(AUDIT_KEY_CONTEXT, &sealed_from_json(&stored)?)?;
    Ok(MacKey::new(&key))
}

/// The database of a data directory (or the cluster's PostgreSQL one) for an operator's
/// command that runs beside the server: the SQLite file read-only, no lock taken. Also says
/// which audit records the directory's audit file holds.
pub async fn open_store_beside_server(
    dir: &Path,
    database_url: Option<&str>,
) -> Result<(Arc<dyn Store>, FileHolds)> {
    if database_url.is_none() && !dir.join(DATABASE_FILE).exists() {
        return Err(Error::invalid_request(format!(
            "{} has no root key ({}) and no database ({DATABASE_FILE}): is it a kura data directory? Give the server's --data-dir (and --database-url for a cluster).",
            dir.display(),
            dir.join(ROOT_KEY_FILE).display()
        )));
    }
    Ok(match database_url {
        Some(url) => (open_store(dir, Some(url)).await?, FileHolds::OwnRecords),
        None => (
            Arc::new(kura_store::open_read_only(&dir.join(DATABASE_FILE)).await?),
            FileHolds::All,
        ),
    })
}

/// `kura audit verify`: checks the audit chain of a data directory (and of its database,
/// when that is a PostgreSQL one), read-only, beside a running server or not. The root key
/// that opens the chain's key comes from the installation's seal (`hsm` for pkcs11,
/// `ask_shares` for shamir).
pub async fn verify_audit(
    dir: &Path,
    database_url: Option<&str>,
    hsm: Option<&crate::seal::HsmConfig>,
    ask_shares: &mut crate::seal::AskShares<'_>,
) -> Result<VerifyReport> {
    let (store, holds) = open_store_beside_server(dir, database_url).await?;
    let keyring = crate::seal::open_root_offline(store.as_ref(), dir, hsm, ask_shares)
        .await?
        .keyring;
    let audit_file = dir.join(AUDIT_FILE);
    let Some(stored) = store.get_setting(AUDIT_KEY_SETTING).await? else {
        let mut report = VerifyReport::default();
        if let Some(what) = records_without_key(store.as_ref(), &audit_file).await? {
            report.problems.push(format!(
                "{what}: it was deleted, so no record can be checked. Restore the database from a backup."
            ));
        }
        return Ok(report);
    };
    let sealed = sealed_from_json(&stored)?;
    let key = keyring.open(
        &sealed.key_name,
        sealed.key_version,
        AUDIT_KEY_CONTEXT,
        &sealed.ciphertext,
        &sealed.wrapped_key,
    )?;
    kura_audit::verify(
        store.as_ref(),
        &MacKey::new(&key),
        Some((&audit_file, holds)),
    )
    .await
}

pub use kura_store::transfer::{Copied, Progress};

/// `kura migrate`: copies the data directory's SQLite database into the empty PostgreSQL
/// database at `url`. Holds the directory's lock throughout, so no server changes the
/// database while it is copied (nor starts on it half-way).
pub async fn migrate_data_dir(
    dir: &Path,
    url: &str,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Copied> {
    let database = dir.join(DATABASE_FILE);
    // root.key too, unless another seal keeps the root key (its record moves with the database).
    if !database.exists() {
        return Err(Error::invalid_request(format!(
            "{} is not a kura data directory (it has no {DATABASE_FILE}): give --from the --data-dir of the server to move",
            dir.display()
        )));
    }
    let Some(_lock) = try_lock_data_dir(dir)? else {
        return Err(Error::invalid_request(format!(
            "stop the kura server using {} first (it holds {LOCK_FILE}), then migrate: a database in use would be copied half-changed",
            dir.display()
        )));
    };
    kura_store::transfer::copy_sqlite_to_postgres(&database, url, progress).await
}
