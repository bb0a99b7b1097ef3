//! The JSON-lines file (`audit.jsonl`): the second copy of the trail, appended after each
//! commit in commit order, so it can be shipped elsewhere and shows records cut from the
//! database's end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use kura_core::{Error, Result};
use kura_crypto::mac::MacKey;

use crate::chain::{GENESIS, mac_of};
use crate::{AuditChain, AuditRecord};

/// The file's name in a data directory.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// What the store needs of the chain: the MAC key, and the file that follows the database.
pub struct FileChain {
    key: MacKey,
    file: Mutex<AuditFile>,
    /// Records committed to the database by this process (metrics).
    committed: AtomicU64,
    /// Told of each commit's records, in commit order (the watch operation's wake-up).
    observer: std::sync::OnceLock<Observer>,
    /// Told how long each commit of records took (metrics).
    latency: std::sync::OnceLock<LatencyObserver>,
}

/// Called with each commit's records right after they commit; must not block.
pub type Observer = Box<dyn Fn(&[AuditRecord]) + Send + Sync>;

/// Called with each audit commit's latency (see [`AuditChain::commit_took`]); must not block.
pub type LatencyObserver = Box<dyn Fn(std::time::Duration) + Send + Sync>;

struct AuditFile {
    out: std::fs::File,
    path: PathBuf,
    /// The file's length after its last whole line: a failed append is cut back to it, so
    /// a half-written line never runs into the next one.
    good_len: u64,
    /// Lines committed to the database that the file could not take yet (a full disk): they
    /// go first on the next append, so the file catches up, in order, once space is back.
    pending: Vec<u8>,
}

/// Beyond this many bytes of lines waiting for the file, they are dropped (and the gap is
/// logged; `kura audit verify` reports it) rather than held in memory without end.
const MAX_PENDING: usize = 64 * 1024 * 1024;

impl AuditChain for FileChain {
    fn mac(&self, prev: Option<&str>, record: &AuditRecord) -> String {
        mac_of(&self.key, prev.unwrap_or(GENESIS), record)
    }

    /// The database copy is the durable one and is already committed: a file that cannot be
    /// appended to is logged and caught up later, never a reason to refuse the request.
    fn committed(&self, records: &[AuditRecord]) -> Result<()> {
        self.committed
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        if let Some(observe) = self.observer.get() {
            observe(records);
        }
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let was_behind = !f.pending.is_empty();
        for r in records {
            f.pending.extend(serde_json::to_vec(r).unwrap_or_default());
            f.pending.push(b'\n');
        }
        let lines = std::mem::take(&mut f.pending);
        match f.out.write_all(&lines) {
            Ok(()) => {
                f.good_len += lines.len() as u64;
                if was_behind {
                    tracing::info!(path = %f.path.display(), "the audit file has caught up with the database");
                }
            }
            Err(e) => {
                let good_len = f.good_len;
                let _ = f.out.set_len(good_len);
                let first = records.first().map(|r| r.seq).unwrap_or_default();
                if lines.len() <= MAX_PENDING {
                    f.pending = lines;
                    tracing::error!(
                        path = %f.path.display(),
                        first_seq = first,
                        "cannot append audit records to the audit file ({e}); the database holds them and the file will catch up when it can"
                    );
                } else {
                    tracing::error!(
                        path = %f.path.display(),
                        first_seq = first,
                        "cannot append audit records to the audit file ({e}) for too long; records up to this one are missing from it, and kura audit verify will report the gap"
                    );
                }
            }
        }
        Ok(())
    }

    fn commit_took(&self, took: std::time::Duration) {
        if let Some(observe) = self.latency.get() {
            observe(took);
        }
    }
}

impl FileChain {
    /// Records committed to the database since this process opened the chain.
    pub fn records_committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// Sets the one observer of committed records (later calls are ignored).
    pub fn observe(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    /// Sets the one observer of commit latencies (later calls are ignored).
    pub fn observe_latency(&self, observer: LatencyObserver) {
        let _ = self.latency.set(observer);
    }

    /// Signs with `key` and appends to the file at `path` (created, mode 0600, if missing).
    pub(crate) fn open(key: MacKey, path: PathBuf) -> Result<FileChain> {
        let out = open_append(&path)?;
        let good_len = out
            .metadata()
            .map_err(|e| Error::internal(format!("cannot stat {}: {e}", path.display())))?
            .len();
        Ok(FileChain {
            key,
            file: Mutex::new(AuditFile {
                out,
                path,
                good_len,
                pending: Vec::new(),
            }),
            committed: AtomicU64::new(0),
            observer: std::sync::OnceLock::new(),
            latency: std::sync::OnceLock::new(),
        })
    }
}

fn open_append(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            Error::internal(format!(
                "cannot open the audit file {}: {e}",
                path.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::chain::tests::{chained, key, record};

    #[test]
    fn committed_records_are_appended_as_json_lines_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AUDIT_FILE);
        let t = chained(&key(), (1..=3).map(record).collect());
        let chain = FileChain::open(key(), path.clone()).unwrap();
        chain.committed(&t[..2]).unwrap();
        drop(chain);
        // A restarted server appends after the lines already there.
        let chain = FileChain::open(key(), path.clone()).unwrap();
        chain.committed(&t[2..]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let back: Vec<AuditRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, t);
        assert!(text.ends_with('\n'));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_store_signs_with_the_chains_key_from_the_genesis_value() {
        let dir = tempfile::tempdir().unwrap();
        let chain = FileChain::open(key(), dir.path().join(AUDIT_FILE)).unwrap();
        let t = chained(&key(), (1..=2).map(record).collect());
        assert_eq!(chain.mac(None, &t[0]), t[0].mac);
        assert_eq!(chain.mac(Some(&t[0].mac), &t[1]), t[1].mac);
        let other = FileChain::open(MacKey::new(b"other"), dir.path().join("x")).unwrap();
        assert_ne!(other.mac(None, &t[0]), t[0].mac);
    }
}
