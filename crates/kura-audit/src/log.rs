//! The audit trail: one record per request, rotation step and background job, written to the
//! database and to an append-only JSON-lines file before the request is answered (fail
//! closed). Records are chained with an HMAC whose key is sealed by the root key, so someone
//! who can write the database but cannot unseal kura cannot edit, drop or reorder records
//! unnoticed (`kura audit verify`).
//!
//! A request that changes something commits its record in the transaction of the change
//! (the `kura_store::AuditSlot` the request carries to the store), so a request refused for
//! want of its record did
//! nothing. Every other record (reads, failures, rotation steps, jobs) goes through one
//! writer task that commits them in batches: requests arriving while a batch is being
//! written share the next commit (group commit), so a read costs one write transaction per
//! batch, not per request. Both paths number records from the chain's tail inside their
//! transaction ([`FileChain`] signs them) and append them to the file before the next
//! audit-writing transaction may begin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::{AuditChain, AuditQuery, AuditRecord, AuditStore};
use kura_core::{Error, Result};
use kura_crypto::mac::MacKey;
use tokio::sync::{mpsc, oneshot};

pub const AUDIT_FILE: &str = "audit.jsonl";
const QUEUE: usize = 4096;
const MAX_BATCH: usize = 512;

/// A record to write; the store sets its `seq` and `mac`.
type Job = (AuditRecord, oneshot::Sender<Result<()>>);

pub struct AuditLog {
    tx: mpsc::Sender<Job>,
}

/// The bytes a record's MAC covers: the previous MAC, then the record without its MAC.
fn mac_of(key: &MacKey, prev: &str, r: &AuditRecord) -> String {
    let mut unsigned = r.clone();
    unsigned.mac.clear();
    let mut data = prev.as_bytes().to_vec();
    data.push(b'\n');
    // Serialising a struct keeps field order, so this is a stable canonical form.
    data.extend(serde_json::to_vec(&unsigned).unwrap_or_default());
    hex::encode(key.sign(&data))
}

/// The chain starts from this "previous MAC".
const GENESIS: &str = "kura-audit-v1";

/// What the store needs of the chain: the MAC key, and the file that follows the database.
pub struct FileChain {
    key: MacKey,
    file: Mutex<AuditFile>,
}

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
}

impl AuditLog {
    /// Hands the chain to the store (from now on its write transactions commit requests'
    /// records) and starts the writer for all other records.
    pub async fn start(store: Arc<dyn AuditStore>, key: MacKey, file: PathBuf) -> Result<AuditLog> {
        let out = open_append(&file)?;
        let good_len = out
            .metadata()
            .map_err(|e| Error::internal(format!("cannot stat {}: {e}", file.display())))?
            .len();
        store.set_audit_chain(Arc::new(FileChain {
            key,
            file: Mutex::new(AuditFile {
                out,
                path: file,
                good_len,
                pending: Vec::new(),
            }),
        }));
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(store, rx));
        Ok(AuditLog { tx })
    }

    /// Records `e` and returns once it is durable; an error means it was not written.
    pub async fn record(&self, e: AuditRecord) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((e, done))
            .await
            .map_err(|_| Error::internal("the audit writer has stopped"))?;
        wait.await
            .map_err(|_| Error::internal("the audit writer has stopped"))?
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

async fn writer(store: Arc<dyn AuditStore>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let records: Vec<AuditRecord> = batch.iter().map(|(e, _)| e.clone()).collect();
        let result = store.append_audit(&records).await;
        if let Err(e) = &result {
            tracing::error!(
                detail = e.detail.as_deref().unwrap_or(""),
                "audit records could not be written; the requests they describe fail"
            );
        }
        for (_, done) in batch {
            let _ = done.send(result.clone());
        }
    }
}

/// What `kura audit verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub records: u64,
    pub problems: Vec<String>,
}

/// How often a file found behind the database is read again: a running server commits a
/// record to the database first and appends it to the file right after.
const FILE_CATCH_UP_TRIES: u32 = 5;
const FILE_CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Which records a node's audit file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileHolds {
    /// Every record (one server on its own database): line N is the database's record N.
    All,
    /// This node's records only (a cluster on one database): in the database's order, each
    /// equal to the database's record of the same number.
    OwnRecords,
}

/// Walks the whole chain in the database and, line by line beside it, the JSON-lines file:
/// line N must be the database's record N, and the file's MACs must chain on their own too.
/// Every break of the database chain is reported; of the file, the first difference.
pub async fn verify(
    store: &dyn AuditStore,
    key: &MacKey,
    file: Option<(&Path, FileHolds)>,
) -> Result<VerifyReport> {
    let mut tries = 0;
    loop {
        let (report, file_behind) = verify_once(store, key, file).await?;
        tries += 1;
        if !file_behind || tries >= FILE_CATCH_UP_TRIES {
            return Ok(report);
        }
        tokio::time::sleep(FILE_CATCH_UP_WAIT).await;
    }
}

/// One pass of [`verify`]; also says whether the file's only fault is ending early.
async fn verify_once(
    store: &dyn AuditStore,
    key: &MacKey,
    file: Option<(&Path, FileHolds)>,
) -> Result<(VerifyReport, bool)> {
    let mut report = VerifyReport::default();
    let mut prev = GENESIS.to_string();
    let mut expected = 1i64;
    let mut after = None;
    let mut last_seq = 0;
    let mut lines = match file {
        Some((path, holds)) => Some(FileCheck::open(path, holds)?),
        None => None,
    };
    loop {
        let page = store
            .query_audit(&AuditQuery {
                after_seq: after,
                limit: 1000,
                ..Default::default()
            })
            .await?;
        if page.is_empty() {
            break;
        }
        for r in &page {
            report.records += 1;
            if r.seq != expected {
                report.problems.push(if r.seq > expected {
                    format!(
                        "records {expected} to {} are missing: deleted from the database",
                        r.seq - 1
                    )
                } else {
                    format!("record {} appears out of order", r.seq)
                });
            }
            if mac_of(key, &prev, r) != r.mac {
                report.problems.push(format!(
                    "record {} does not match its MAC: it was edited, or records before it were removed or reordered",
                    r.seq
                ));
            }
            if let Some(f) = &mut lines {
                f.check(key, r, &prev, report.records)?;
            }
            prev = r.mac.clone();
            expected = r.seq + 1;
            last_seq = r.seq;
        }
        after = page.last().map(|r| r.seq);
    }
    let mut behind = false;
    if let Some(mut f) = lines {
        f.finish(last_seq, &prev)?;
        behind = f.behind;
        report.problems.extend(f.problem);
    }
    Ok((report, behind))
}

/// The JSON-lines file, read line by line beside the database's records.
struct FileCheck<'a> {
    path: &'a Path,
    holds: FileHolds,
    /// A line read ahead (only this node's records are in the file): it belongs to a later
    /// database record.
    ahead: Option<AuditRecord>,
    /// `None`: there is no file.
    lines: Option<std::io::Lines<std::io::BufReader<std::fs::File>>>,
    line_no: u64,
    prev_mac: String,
    prev_seq: i64,
    /// The first difference found; the file is not read further.
    problem: Option<String>,
    /// The file ended while the database went on (maybe only not yet appended).
    behind: bool,
}

impl<'a> FileCheck<'a> {
    fn open(path: &'a Path, holds: FileHolds) -> Result<Self> {
        let lines = match std::fs::File::open(path) {
            Ok(f) => Some(std::io::BufRead::lines(std::io::BufReader::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::internal(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(FileCheck {
            path,
            holds,
            ahead: None,
            lines,
            line_no: 0,
            prev_mac: GENESIS.to_string(),
            prev_seq: 0,
            problem: None,
            behind: false,
        })
    }

    /// The next line, or `None` at the end of the file (or when there is no file).
    fn next_line(&mut self) -> Result<Option<std::result::Result<String, String>>> {
        let Some(lines) = &mut self.lines else {
            return Ok(None);
        };
        match lines.next() {
            None => Ok(None),
            Some(Ok(text)) => {
                self.line_no += 1;
                Ok(Some(Ok(text)))
            }
            Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.line_no += 1;
                Ok(Some(Err("is not UTF-8 text".into())))
            }
            Some(Err(e)) => Err(Error::internal(format!(
                "cannot read {}: {e}",
                self.path.display()
            ))),
        }
    }

    /// Compares the next line with `db`, the database's `nth` record, which the database
    /// chains after `db_prev`.
    fn check(&mut self, key: &MacKey, db: &AuditRecord, db_prev: &str, nth: u64) -> Result<()> {
        if self.problem.is_some() {
            return Ok(());
        }
        if self.holds == FileHolds::OwnRecords {
            return self.check_own(key, db, db_prev);
        }
        let file = self.path.display();
        let line = match self.next_line()? {
            Some(line) => line,
            None => {
                // A missing file is never a file still catching up: the server creates it
                // before it writes its first record.
                self.behind = self.lines.is_some();
                self.problem = Some(if self.lines.is_none() {
                    format!(
                        "the audit file {file} is missing, but the database holds records: it was deleted or moved"
                    )
                } else if self.line_no == 0 {
                    format!(
                        "the audit file {file} is empty, but the database holds records from record {}: it was emptied",
                        db.seq
                    )
                } else {
                    format!(
                        "the audit file {file} ends after line {} (record {}), but the database goes on to record {}: the file was truncated",
                        self.line_no, self.prev_seq, db.seq
                    )
                });
                return Ok(());
            }
        };
        let n = self.line_no;
        let r = match line.and_then(|text| {
            serde_json::from_str::<AuditRecord>(&text).map_err(|_| "is not an audit record".into())
        }) {
            Ok(r) => r,
            Err(what) => {
                self.problem = Some(format!(
                    "line {n} of {file} {what} (the database's record {} belongs there): it was edited or cut short",
                    db.seq
                ));
                return Ok(());
            }
        };
        let differs = fields_differing(&r, db);
        self.problem = if r.seq != db.seq {
            Some(format!(
                "line {n} of {file} is record {}, but the database's record number {nth} is record {}: lines were deleted, inserted or reordered",
                r.seq, db.seq
            ))
        } else if mac_of(key, &self.prev_mac, &r) != r.mac {
            Some(format!(
                "line {n} of {file} (record {}) does not verify under this server's audit key{}: it was edited, lines before it were removed or reordered, or the file is another server's",
                r.seq,
                if differs.is_empty() {
                    String::new()
                } else {
                    format!(" and differs from the database in {}", differs.join(", "))
                }
            ))
        } else if !differs.is_empty() {
            Some(format!(
                "line {n} of {file} (record {}) differs from the database's record {} in {}: one of them was edited",
                r.seq,
                db.seq,
                differs.join(", ")
            ))
        } else {
            None
        };
        self.prev_mac = r.mac;
        self.prev_seq = r.seq;
        Ok(())
    }

    /// The next line as a record: read ahead, or from the file.
    fn next_record(&mut self) -> Result<Option<std::result::Result<AuditRecord, String>>> {
        if let Some(r) = self.ahead.take() {
            return Ok(Some(Ok(r)));
        }
        Ok(self.next_line()?.map(|line| {
            line.and_then(|text| {
                serde_json::from_str::<AuditRecord>(&text)
                    .map_err(|_| "is not an audit record".into())
            })
        }))
    }

    /// A node of a cluster keeps its own records: a line for `db` if this node wrote it,
    /// none if another node did.
    fn check_own(&mut self, key: &MacKey, db: &AuditRecord, db_prev: &str) -> Result<()> {
        let file = self.path.display();
        let n = self.line_no;
        let r = match self.next_record()? {
            None => return Ok(()),
            Some(Err(what)) => {
                self.problem = Some(format!(
                    "line {} of {file} {what}: it was edited or cut short",
                    n + 1
                ));
                return Ok(());
            }
            Some(Ok(r)) => r,
        };
        if r.seq > db.seq {
            self.ahead = Some(r); // db is another node's record
            return Ok(());
        }
        let differs = fields_differing(&r, db);
        self.problem = if r.seq < db.seq || r.seq <= self.prev_seq {
            Some(format!(
                "line {} of {file} is record {}, which is not where the database has it: lines were inserted or reordered, or the database lost records",
                self.line_no, r.seq
            ))
        } else if mac_of(key, db_prev, &r) != r.mac {
            Some(format!(
                "line {} of {file} (record {}) does not verify under this installation's audit key{}: one of them was edited",
                self.line_no,
                r.seq,
                if differs.is_empty() {
                    String::new()
                } else {
                    format!(" and differs from the database in {}", differs.join(", "))
                }
            ))
        } else if !differs.is_empty() {
            Some(format!(
                "line {} of {file} (record {}) differs from the database's record in {}: one of them was edited",
                self.line_no,
                r.seq,
                differs.join(", ")
            ))
        } else {
            None
        };
        self.prev_seq = r.seq;
        Ok(())
    }

    /// After the database's last record (`last_seq`): the file must end too.
    fn finish(&mut self, last_seq: i64, _db_prev: &str) -> Result<()> {
        if self.problem.is_some() {
            return Ok(());
        }
        if let Some(r) = self.ahead.take() {
            self.problem = Some(format!(
                "the audit file {} holds record {} but the database ends at record {last_seq}: records were deleted from the database",
                self.path.display(),
                r.seq
            ));
            return Ok(());
        }
        let file = self.path.display();
        let n = self.line_no + 1;
        self.problem = match self.next_line()? {
            None => None,
            Some(Ok(text)) => match serde_json::from_str::<AuditRecord>(&text) {
                Ok(f) => Some(format!(
                    "the audit file goes on to record {} (line {n} of {file}) but the database ends at record {last_seq}: records after {last_seq} were deleted from the database",
                    f.seq
                )),
                Err(_) => Some(format!(
                    "line {n} of {file} is not an audit record, and the database ends at record {last_seq}: the file was edited"
                )),
            },
            Some(Err(what)) => Some(format!("line {n} of {file} {what}: the file was edited")),
        };
        Ok(())
    }
}

/// The fields (by their JSON names) in which two records differ.
fn fields_differing(a: &AuditRecord, b: &AuditRecord) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return vec!["their contents".into()];
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect()
}
