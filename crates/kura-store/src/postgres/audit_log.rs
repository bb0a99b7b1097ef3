//! The audit chain: one advisory lock (`Conn::lock_audit_tail`) orders every append of every
//! node.

use super::*;

impl PgStore {
    async fn append_audit_once(
        &self,
        chain: &Arc<dyn AuditChain>,
        records: &[AuditRecord],
    ) -> Result<()> {
        // Connection first, then the order lock: whoever holds the lock already has its
        // connection, so writers queued on the lock cannot starve it of one.
        let mut tx = self.begin().await?;
        let _order = self.audit_order.lock().await;
        let started = std::time::Instant::now();
        let records =
            sql::audit_log::insert_chained(&mut *tx, chain.as_ref(), records.to_vec()).await?;
        tx.commit().await.map_err(db_err)?;
        chain.commit_took(started.elapsed());
        chain.committed(&records)
    }
}

#[async_trait]
impl AuditStore for PgStore {
    fn set_audit_chain(&self, chain: Arc<dyn AuditChain>) {
        let _ = self.chain.set(chain);
    }

    async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<()> {
        let chain = self
            .chain
            .get()
            .ok_or_else(|| Error::internal("the audit chain is not set up"))?;
        retry!(self.append_audit_once(chain, &records))
    }

    async fn last_audit(&self) -> Result<Option<AuditRecord>> {
        sql::audit_log::last_audit(&mut *self.read().await?).await
    }

    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        sql::audit_log::query_audit(&mut *self.read().await?, q).await
    }
}
