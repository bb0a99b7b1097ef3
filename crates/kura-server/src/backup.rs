//! `kura operator backup` and `kura operator restore`: a consistent snapshot of an
//! installation's database taken while its servers run, and a new installation built from one.
//! The file format and the copies are `kura_store::backup`'s; here are the data directory, the
//! root key and the audit file around them.
//!
//! A backup never holds the root key (it would then carry its own key): with the `file` seal
//! the operator keeps `root.key` apart and gives it to restore, which checks that it opens the
//! backup's keyring before it builds anything.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kura_audit::{AUDIT_FILE, VerifyReport};
use kura_core::{Error, Result};
use kura_crypto::{Keyring, RootKey};
pub use kura_store::backup::Manifest;
use kura_store::{AuditQuery, AuditStore, SettingsStore};
use zeroize::Zeroizing;

use crate::init::{DATABASE_FILE, try_lock_data_dir};
use crate::root_file::{ROOT_KEY_FILE, io_err, sync_file_and_dir, write_private};

pub use kura_store::transfer::{Copied, Progress, tables};

fn is_postgres(url: &str) -> Result<()> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(());
    }
    Err(Error::invalid_parameter(format!(
        "--database-url {} is not a postgres:// URL",
        crate::init::shown_url(url)
    )))
}

/// `FILE.partial`: where a backup is written before it is renamed into place.
fn partial_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// The seal recorded in the database at `db` (`file` when none is).
async fn seal_of(db: &Path) -> Result<String> {
    let store = kura_store::open_read_only(db).await?;
    let seal = crate::seal::load(&store).await;
    drop(store);
    Ok(seal?.map_or("file", |s| s.name()).to_string())
}

/// `kura operator backup`: snapshots the installation whose database is `database_url` (when
/// given) or the SQLite one in `dir`, into `output`. `output` appears whole or not at all.
pub async fn backup(
    dir: &Path,
    database_url: Option<&str>,
    output: &Path,
    force: bool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Manifest> {
    if output.is_dir() {
        return Err(Error::invalid_parameter(format!(
            "--output {} is a directory: give a file name, e.g. {}",
            output.display(),
            output.join("kura-backup.db").display()
        )));
    }
    if output.exists() && !force {
        return Err(Error::invalid_request(format!(
            "{} already exists: give another --output, or --force to replace it",
            output.display()
        )));
    }
    let source = match database_url {
        Some(url) => {
            is_postgres(url)?;
            None
        }
        None => {
            let db = dir.join(DATABASE_FILE);
            if !db.is_file() {
                return Err(Error::invalid_request(format!(
                    "{} is not a kura data directory (it has no {DATABASE_FILE}): give --data-dir of the server to back up, or --database-url for a PostgreSQL installation",
                    dir.display()
                )));
            }
            Some(db)
        }
    };
    // Never into the data directory: --force could replace the live database or root.key,
    // and a backup beside the database is lost with it.
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let (Ok(a), Ok(b)) = (parent.canonicalize(), dir.canonicalize())
        && a.starts_with(&b)
    {
        return Err(Error::invalid_parameter(format!(
            "--output {} is inside the data directory {}: write backups elsewhere (a backup kept beside the database is lost with it)",
            output.display(),
            dir.display()
        )));
    }
    let partial = partial_path(output);
    // Created empty and private first: VACUUM INTO writes into an empty file, and the copy is
    // never readable by others, even for a moment.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::invalid_request(format!(
                    "{} exists: another backup is writing it, or one was interrupted; delete it if none runs, then try again",
                    partial.display()
                ))
            } else {
                io_err("cannot create", &partial, e)
            }
        })?;
    let result = async {
        let kind = match (&source, database_url) {
            (Some(db), _) => {
                kura_store::backup::snapshot_sqlite(db, &partial).await?;
                "sqlite"
            }
            (None, Some(url)) => {
                kura_store::backup::snapshot_postgres(url, &partial, progress).await?;
                "postgresql"
            }
            (None, None) => return Err(Error::internal("backup: no source")),
        };
        let mut manifest = Manifest::new(kind, &seal_of(&partial).await?);
        kura_store::backup::write_manifest(&partial, &mut manifest).await?;
        sync_file_and_dir(&partial)?;
        std::fs::rename(&partial, output).map_err(|e| io_err("cannot rename", &partial, e))?;
        sync_file_and_dir(output)?;
        Ok(manifest)
    }
    .await;
    if result.is_err() {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut p = partial.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    }
    result
}

/// What restore built.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    /// Rows copied into PostgreSQL, when that is the target.
    pub copied: Option<Copied>,
    /// The restored audit trail, checked (file seal only: other seals need unsealing first).
    pub audit: Option<VerifyReport>,
}

/// Reads a `root.key` file (hex, as kura writes it).
fn read_root_key(path: &Path) -> Result<RootKey> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        Error::invalid_parameter(format!("cannot read --root-key {}: {e}", path.display()))
    })?);
    let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
        Error::invalid_parameter(format!(
            "--root-key {} is not a kura root key (a hex-encoded 32-byte key, as in a data directory's root.key)",
            path.display()
        ))
    })?);
    RootKey::from_bytes(&bytes).map_err(|_| {
        Error::invalid_parameter(format!(
            "--root-key {} is not a kura root key (a hex-encoded 32-byte key, as in a data directory's root.key)",
            path.display()
        ))
    })
}

/// Whether `root` opens every key of the keyring in the database at `db`.
async fn check_root_key(db: &Path, root: RootKey, key_path: &Path) -> Result<()> {
    let store = kura_store::open_read_only(db).await?;
    let keys = store.load_keys().await;
    drop(store);
    let keyring = Keyring::new(root);
    for (name, version, wrapped) in keys? {
        if keyring.load_kek(&name, version, &wrapped).is_err() {
            return Err(Error::invalid_request(format!(
                "the root key in {} does not open this backup's keyring (key {name} version {version}): give the root.key the installation had when the backup was taken (after a root key rotation, older backups need the older key)",
                key_path.display()
            )));
        }
    }
    Ok(())
}

/// Refuses a target directory that holds anything.
fn check_empty_dir(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if names.is_empty() {
                return Ok(true);
            }
            names.sort();
            names.truncate(5);
            Err(Error::invalid_request(format!(
                "{} is not empty (it holds {}): restore builds a new installation, so give a new or empty --data-dir",
                dir.display(),
                names.join(", ")
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(Error::invalid_parameter(
            format!("--data-dir {} is a file, not a directory", dir.display()),
        )),
        Err(e) => Err(io_err("cannot read", dir, e)),
    }
}

/// Writes the audit file of a single server from its database's trail: the file holds every
/// record, line N the database's record N, as the server itself appends them.
async fn write_audit_file(db: &Path, path: &Path) -> Result<u64> {
    let store = kura_store::open_read_only(db).await?;
    let result = async {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io_err("cannot create", path, e))?;
        let mut after = None;
        let mut n = 0u64;
        loop {
            let page = store
                .query_audit(&AuditQuery {
                    after_seq: after,
                    limit: 1000,
                    ..Default::default()
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.seq);
            let mut lines = Vec::new();
            for r in &page {
                serde_json::to_writer(&mut lines, r)
                    .map_err(|e| Error::internal(format!("encoding an audit record: {e}")))?;
                lines.push(b'\n');
            }
            f.write_all(&lines)
                .map_err(|e| io_err("cannot write", path, e))?;
            n += page.len() as u64;
        }
        f.sync_all().map_err(|e| io_err("cannot write", path, e))?;
        Ok(n)
    }
    .await;
    drop(store);
    result
}

/// `kura operator restore`: a new installation in `dir` (and in the empty PostgreSQL database
/// `database_url`, when given) from the backup at `input`.
pub async fn restore(
    input: &Path,
    dir: &Path,
    database_url: Option<&str>,
    root_key: Option<&Path>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Restored> {
    let manifest = kura_store::backup::read_manifest(input).await?;
    if let Some(url) = database_url {
        is_postgres(url)?;
    }
    let existed = check_empty_dir(dir)?;
    // The seal record decides, not the manifest's word for it.
    let seal = seal_of(input).await?;
    if seal != manifest.seal {
        return Err(Error::invalid_request(format!(
            "the manifest of {} says the {} seal but its settings hold the {seal} seal: the file was changed after it was taken",
            input.display(),
            manifest.seal
        )));
    }
    let root = match (seal.as_str(), root_key) {
        ("file", Some(path)) => {
            let root = read_root_key(path)?;
            let text = Zeroizing::new(format!("{}\n", hex::encode(root.expose_bytes())));
            check_root_key(input, root, path).await?;
            Some(text)
        }
        ("file", None) => {
            return Err(Error::invalid_request(format!(
                "{} is a backup of an installation with the file seal, whose root key is not in the backup: give --root-key FILE, the root.key of the data directory it was taken from",
                input.display()
            )));
        }
        (seal, Some(_)) => {
            return Err(Error::invalid_request(format!(
                "{} is a backup of an installation with the {seal} seal: its root key is kept by the seal (its record is in the backup), so leave --root-key out; the restored server unseals as the old one did",
                input.display()
            )));
        }
        (_, None) => None,
    };

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_err("cannot create the data directory", dir, e))?;
    let result = async {
        let _lock = try_lock_data_dir(dir)?.ok_or_else(|| {
            Error::invalid_request(format!(
                "another kura process is using {}: restore into a directory nothing uses",
                dir.display()
            ))
        })?;
        let staging = dir.join(format!("{DATABASE_FILE}.restoring"));
        std::fs::copy(input, &staging).map_err(|e| io_err("cannot copy", input, e))?;
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err("cannot restrict permissions of", &staging, e))?;
        kura_store::backup::strip_manifest(&staging).await?;
        let copied = match database_url {
            Some(url) => {
                let copied =
                    kura_store::transfer::copy_sqlite_to_postgres(&staging, url, progress).await;
                let _ = std::fs::remove_file(&staging);
                Some(copied?)
            }
            None => {
                let db = dir.join(DATABASE_FILE);
                sync_file_and_dir(&staging)?;
                std::fs::rename(&staging, &db).map_err(|e| io_err("cannot rename", &staging, e))?;
                write_audit_file(&db, &dir.join(AUDIT_FILE)).await?;
                None
            }
        };
        if let Some(text) = &root {
            write_private(&dir.join(ROOT_KEY_FILE), text.as_bytes())?;
        }
        sync_file_and_dir(&dir.join(crate::init::LOCK_FILE))?;
        let audit = match root {
            // The file seal: root.key is in place, so no shares or HSM are asked for.
            Some(_) => {
                let mut no_shares = |_: u8| -> Result<Vec<crate::seal::Share>> {
                    Err(Error::internal("a file-seal restore needs no shares"))
                };
                Some(crate::init::verify_audit(dir, database_url, None, &mut no_shares).await?)
            }
            None => None,
        };
        Ok(Restored {
            manifest: manifest.clone(),
            copied,
            audit,
        })
    }
    .await;
    if result.is_err() {
        // Everything in it is this restore's: the directory was empty or new.
        if existed {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    result
}
