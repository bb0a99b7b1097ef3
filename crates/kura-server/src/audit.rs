//! The audit trail: one record per request, rotation step and background job, written to the
//! database and to an append-only JSON-lines file before the request is answered (fail
//! closed). Records are chained with an HMAC whose key is sealed by the root key, so someone
//! who can write the database but cannot unseal kura cannot edit, drop or reorder records
//! unnoticed (`kura audit verify`).
//!
//! One writer task takes records from a queue and commits them in batches: requests arriving
//! while a batch is being written share the next commit (group commit), so auditing costs
//! one write transaction per batch, not per request.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kura_core::{Error, Result};
use kura_crypto::mac::MacKey;
use kura_store::{AuditQuery, AuditRecord, Store};
use tokio::sync::{mpsc, oneshot};

pub const AUDIT_FILE: &str = "audit.jsonl";
const QUEUE: usize = 4096;
const MAX_BATCH: usize = 512;

/// A record to write; the writer sets its `seq` and `mac`.
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

impl AuditLog {
    /// Starts the writer, continuing the chain from the last stored record.
    pub async fn start(store: Arc<dyn Store>, key: MacKey, file: PathBuf) -> Result<AuditLog> {
        let last = store.last_audit().await?;
        let (seq, mac) = last
            .map(|r| (r.seq, r.mac))
            .unwrap_or((0, GENESIS.to_string()));
        let out = open_append(&file)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(store, key, out, file, rx, seq, mac));
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

async fn writer(
    store: Arc<dyn Store>,
    key: MacKey,
    mut out: std::fs::File,
    path: PathBuf,
    mut rx: mpsc::Receiver<Job>,
    mut seq: i64,
    mut mac: String,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (mut next_seq, mut next_mac) = (seq, mac.clone());
        let records: Vec<AuditRecord> = batch
            .iter()
            .map(|(e, _)| {
                next_seq += 1;
                let mut r = AuditRecord {
                    seq: next_seq,
                    mac: String::new(),
                    ..e.clone()
                };
                r.mac = mac_of(&key, &next_mac, &r);
                next_mac = r.mac.clone();
                r
            })
            .collect();
        let mut result = store.append_audit(&records).await;
        if result.is_ok() {
            let mut lines = Vec::new();
            for r in &records {
                lines.extend(serde_json::to_vec(r).unwrap_or_default());
                lines.push(b'\n');
            }
            // The database commit above is the durable copy; the file is the second sink, for
            // shipping elsewhere and for spotting rows deleted from the database's end.
            if let Err(e) = out.write_all(&lines) {
                result = Err(Error::internal(format!(
                    "cannot append to the audit file {}: {e}",
                    path.display()
                )));
            }
            // The database holds the records either way: the chain continues from them.
            seq = next_seq;
            mac = next_mac;
        }
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

/// Walks the whole chain in the database, then compares it with the JSON-lines file.
pub async fn verify(store: &dyn Store, key: &MacKey, file: Option<&Path>) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut prev = GENESIS.to_string();
    let mut expected = 1i64;
    let mut after = None;
    let mut last_seq = 0;
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
            prev = r.mac.clone();
            expected = r.seq + 1;
            last_seq = r.seq;
        }
        after = page.last().map(|r| r.seq);
    }
    if let Some(path) = file {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(Error::internal(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        let mut file_last: Option<AuditRecord> = None;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            match serde_json::from_str::<AuditRecord>(line) {
                Ok(r) => file_last = Some(r),
                Err(_) => report.problems.push(format!(
                    "line {} of {} is not an audit record",
                    n + 1,
                    path.display()
                )),
            }
        }
        if let Some(f) = file_last
            && f.seq > last_seq
        {
            report.problems.push(format!(
                "the audit file goes on to record {} but the database ends at record {last_seq}: records {} to {} were deleted from the database",
                f.seq,
                last_seq + 1,
                f.seq
            ));
        }
    }
    Ok(report)
}
