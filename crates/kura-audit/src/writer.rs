//! The group-commit writer: every record that no store transaction took with its change
//! (reads, failures, rotation steps, jobs) goes through one task that commits them in
//! batches. Requests arriving while a batch is being written share the next commit, so a
//! read costs one write transaction per batch, not per request.

use std::path::PathBuf;
use std::sync::Arc;

use kura_core::{Error, Result};
use kura_crypto::mac::MacKey;
use tokio::sync::{mpsc, oneshot};

use crate::file::FileChain;
use crate::{AuditRecord, AuditStore};

const QUEUE: usize = 4096;
const MAX_BATCH: usize = 512;

/// A record to write; the store sets its `seq` and `mac`.
type Job = (AuditRecord, oneshot::Sender<Result<()>>);

/// The writer's handle: [`record`](Self::record) queues a record and waits for its batch.
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
}

impl AuditLog {
    /// Hands the chain to the store (from now on its write transactions commit requests'
    /// records) and starts the writer for all other records.
    pub async fn start(store: Arc<dyn AuditStore>, key: MacKey, file: PathBuf) -> Result<AuditLog> {
        store.set_audit_chain(Arc::new(FileChain::open(key, file)?));
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
