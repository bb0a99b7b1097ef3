//! The file seal's key on disk: `root.key` (hex, mode 0600) in the data directory, and the
//! `root.key.next` a root key rotation writes before it commits. Also the small file helpers
//! the data directory's other private files share (written once, synced, never overwritten).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kura_core::{Error, Result};
use kura_crypto::RootKey;
use zeroize::Zeroizing;

pub const ROOT_KEY_FILE: &str = "root.key";
/// Where the file seal writes the next root key before the rotation commits.
pub const NEXT_ROOT_KEY_FILE: &str = "root.key.next";

pub(crate) fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("{what} {}: {e}", path.display()))
}

/// Writes a new file readable by its owner only; fails if it exists (never overwrite keys).
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_err("cannot create", path, e))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err("cannot write", path, e))
}

/// Flushes `path` and the directory entry that names it to disk.
pub(crate) fn sync_file_and_dir(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("cannot sync", path, e))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(parent)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot sync", dir, e))
}

/// A root key as the file seal writes it.
fn key_text(root: &RootKey) -> Zeroizing<String> {
    Zeroizing::new(format!("{}\n", hex::encode(root.expose_bytes())))
}

/// The root key in `path` (hex), or why not.
pub(crate) fn read_root_key(path: &Path) -> Result<RootKey> {
    let text =
        Zeroizing::new(std::fs::read_to_string(path).map_err(|e| io_err("cannot read", path, e))?);
    let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| {
        Error::internal(format!(
            "{} is not a hex-encoded 32-byte key",
            path.display()
        ))
    })?);
    RootKey::from_bytes(&bytes)
}

/// Writes `root` to a new `path` (0600, synced); never over an existing file.
pub(crate) fn write_root_key(path: &Path, root: &RootKey) -> Result<()> {
    write_private(path, key_text(root).as_bytes())
}

/// Reads the root key; creates one only when `may_create` (a database nothing has used yet).
pub(crate) fn load_or_create_root_key(dir: &Path, may_create: bool) -> Result<RootKey> {
    let path = dir.join(ROOT_KEY_FILE);
    match std::fs::metadata(&path) {
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the root key file is readable by others; chmod 600 it");
            }
            read_root_key(&path)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !may_create => {
            Err(Error::internal(format!(
                "{} is missing, and the database already belongs to a kura installation: copy root.key from one of its nodes (or from the data directory `kura migrate` copied from) into {}, then start again",
                path.display(),
                dir.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = RootKey::generate()?;
            write_root_key(&path, &key)?;
            tracing::info!(path = %path.display(), "created the root key; back it up: without it no secret can be read");
            Ok(key)
        }
        Err(e) => Err(io_err("cannot read", &path, e)),
    }
}

/// Writes `root.key.next` (mode 0600, synced), replacing a leftover one.
pub(crate) fn write_next_file(dir: &Path, root: &RootKey) -> Result<PathBuf> {
    let path = dir.join(NEXT_ROOT_KEY_FILE);
    let _ = std::fs::remove_file(&path);
    write_root_key(&path, root)?;
    Ok(path)
}

/// Renames `root.key.next` over `root.key` and syncs the directory, so the rename survives.
pub(crate) fn install_next_file(dir: &Path) -> Result<()> {
    let next = dir.join(NEXT_ROOT_KEY_FILE);
    let target = dir.join(ROOT_KEY_FILE);
    std::fs::rename(&next, &target).map_err(|e| io_err("cannot rename", &next, e))?;
    sync_dir(dir)
}

/// Replaces `root.key` with `root`, crash-safely (write, sync, rename, sync the directory).
pub(crate) fn rewrite_root_file(dir: &Path, root: &RootKey) -> Result<()> {
    write_next_file(dir, root)?;
    install_next_file(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_key_reads_back_private_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let key = RootKey::generate().unwrap();
        let path = dir.path().join(ROOT_KEY_FILE);
        write_root_key(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            read_root_key(&path).unwrap().expose_bytes(),
            key.expose_bytes()
        );
        assert!(write_root_key(&path, &RootKey::generate().unwrap()).is_err());
        // A rotation's next key replaces it only through the rename.
        let next = RootKey::generate().unwrap();
        rewrite_root_file(dir.path(), &next).unwrap();
        assert_eq!(
            read_root_key(&path).unwrap().expose_bytes(),
            next.expose_bytes()
        );
        assert!(!dir.path().join(NEXT_ROOT_KEY_FILE).exists());
        std::fs::write(&path, "not hex").unwrap();
        let e = read_root_key(&path).unwrap_err();
        assert!(e.detail.unwrap_or_default().contains("not a hex-encoded"));
    }
}
