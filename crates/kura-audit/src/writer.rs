//! The group-commit writer: every record that no store transaction took with its change
//! (reads, failures, rotation steps, jobs) goes through one task that commits them in
//! batches. Requests arriving while a batch is being written share the next commit, so a
//! read costs one write transaction per batch, not per request.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kura_core::{Error, Result};
use kura_crypto::mac::MacKey;
use tokio::sync::{mpsc, oneshot};

use crate::file::FileChain;
use crate::{AuditChain, AuditQuery, AuditRecord, AuditStore};

const QUEUE: usize = 4096;
const MAX_BATCH: usize = 512;

/// A record to write; the store sets its `seq` and `mac`.
type Job = (AuditRecord, oneshot::Sender<Result<()>>);

/// The writer's handle: [`record`](Self::record) queues a record and waits for its batch.
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
    /// The audit file (`/health?ready` checks it can still be written).
    file: PathBuf,
    chain: Arc<FileChain>,
}

impl AuditLog {
    /// Hands the chain to the store (from now on its write transactions commit requests'
    /// records) and starts the writer for all other records.
    pub async fn start(store: Arc<dyn AuditStore>, key: MacKey, file: PathBuf) -> Result<AuditLog> {
        let chain = Arc::new(FileChain::open(key, file.clone())?);
        catch_up(store.as_ref(), &chain, &file).await?;
        store.set_audit_chain(chain.clone());
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(store, rx));
        Ok(AuditLog { tx, file, chain })
    }

    /// Records this process committed, by the writer or with a store transaction (metrics).
    pub fn records_committed(&self) -> u64 {
        self.chain.records_committed()
    }

    /// Calls `observer` with each commit's records, in commit order, right after they
    /// commit (by the writer or with a store transaction). One observer per log.
    pub fn observe(&self, observer: crate::file::Observer) {
        self.chain.observe(observer);
    }

    /// Calls `observer` with how long each commit of audit records took, from its first
    /// record written into the transaction until COMMIT returned (by the writer or with a
    /// store transaction). One observer per log.
    pub fn observe_latency(&self, observer: crate::file::LatencyObserver) {
        self.chain.observe_latency(observer);
    }

    /// Records waiting for the writer (metrics).
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Whether records can be written now: the writer runs and the audit file opens for
    /// appending. Writes nothing.
    pub fn check_writable(&self) -> std::result::Result<(), String> {
        if self.tx.is_closed() {
            return Err("the audit writer has stopped".into());
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&self.file)
            .map(drop)
            .map_err(|e| format!("the audit file cannot be opened for writing: {e}"))
    }

    /// Records `e` and returns once it is durable; an error means it was not written.
    pub async fn record(&self, e: AuditRecord) -> Result<()> {
        self.queue(e).await?.await
    }

    /// Queues `e`; the record is then written whether or not anyone waits for it. The
    /// returned future answers once it is durable (an error: it was not written).
    pub async fn queue(&self, e: AuditRecord) -> Result<impl Future<Output = Result<()>> + use<>> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((e, done))
            .await
            .map_err(|_| Error::internal("the audit writer has stopped"))?;
        Ok(async move {
            wait.await
                .map_err(|_| Error::internal("the audit writer has stopped"))?
        })
    }
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
        let (records, waiting): (Vec<AuditRecord>, Vec<_>) = batch.into_iter().unzip();
        let result = store.append_audit(records).await;
        if let Err(e) = &result {
            tracing::error!(
                detail = e.detail.as_deref().unwrap_or(""),
                "audit records could not be written; the requests they describe fail"
            );
        }
        for done in waiting {
            let _ = done.send(result.clone());
        }
    }
}

/// A crash between a COMMIT and its append to the file (SIGKILL, power loss) leaves the file
/// behind the database by that commit's records. Before anything else is written they are
/// appended from the database, so the file follows the chain again. Only when the file's last
/// line is the database's record of the same number, field for field: a file that is not
/// this chain's, or ends in a torn line, is left as it is for `kura audit verify` to report.
/// Only this node's records (those of the last line's node): in a cluster the file holds
/// only its own node's.
async fn catch_up(store: &dyn AuditStore, chain: &FileChain, path: &Path) -> Result<()> {
    let Some(last) = last_record(path) else {
        return Ok(());
    };
    let page = |after: i64| AuditQuery {
        after_seq: Some(after),
        limit: 1000,
        ..Default::default()
    };
    let same = AuditQuery {
        limit: 1,
        ..page(last.seq - 1)
    };
    if store.query_audit(&same).await?.first() != Some(&last) {
        return Ok(());
    }
    let mut after = last.seq;
    let mut appended = 0;
    loop {
        let records = store.query_audit(&page(after)).await?;
        let Some(end) = records.last() else {
            break;
        };
        after = end.seq;
        let mine: Vec<AuditRecord> = records
            .into_iter()
            .filter(|r| r.node == last.node)
            .collect();
        appended += mine.len();
        chain.committed(&mine)?;
    }
    if appended > 0 {
        tracing::warn!(
            path = %path.display(),
            records = appended,
            "the audit file was behind the database (the server stopped between a commit and its append); appended the missing records"
        );
    }
    Ok(())
}

/// The file's last record, if its last line is a whole one.
fn last_record(path: &Path) -> Option<AuditRecord> {
    const TAIL: u64 = 64 * 1024;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    let body = tail.strip_suffix(b"\n")?;
    let line = body.rsplit(|b| *b == b'\n').next()?;
    serde_json::from_slice(line).ok()
}
