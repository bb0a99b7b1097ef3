//! Secrets: the shared SQL (`sql::secrets`) in PostgreSQL's transactions, retried on a
//! conflict; reads of several statements in one snapshot.

use super::*;

impl PgStore {
    async fn create_secret_once(
        &self,
        s: &SecretRecord,
        first: Option<&NewVersion>,
        stages: &Stages,
        audit: &AuditSlot,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let (id, changed) = sql::secrets::create_secret(&mut *tx, s, first, stages).await?;
        self.commit_change(tx, changed, audit).await?;
        Ok(id)
    }

    async fn modify_once(
        &self,
        secret_id: i64,
        f: &mut Mutation<'_>,
        audit: &AuditSlot,
    ) -> Result<SecretState> {
        let mut tx = self.begin().await?;
        let (state, changed) = sql::secrets::modify(&mut *tx, secret_id, f).await?;
        self.commit_change(tx, changed, audit).await?;
        Ok(state)
    }

    async fn delete_secret_once(&self, secret_id: i64, audit: &AuditSlot) -> Result<()> {
        let mut tx = self.begin().await?;
        let changed = sql::secrets::delete_secret(&mut *tx, secret_id).await?;
        self.commit_change(tx, changed, audit).await
    }

    /// A read-only transaction whose statements all see one snapshot, so they agree.
    async fn snapshot(&self) -> Result<Tx<'static>> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db_err)
    }
}

#[async_trait]
impl SecretStore for PgStore {
    async fn create_secret(
        &self,
        s: &SecretRecord,
        first: Option<&NewVersion>,
        stages: &Stages,
        audit: &AuditSlot,
    ) -> Result<i64> {
        let id = retry!(self.create_secret_once(s, first, stages, audit))?;
        self.cache.secret_changed(id);
        Ok(id)
    }

    async fn find_secret(&self, secret: &SecretRef) -> Result<Option<SecretRecord>> {
        let load = async { sql::secrets::find_secret(&mut *self.read().await?, secret).await };
        self.cache.secret(secret, load).await
    }

    async fn versions(&self, secret_id: i64) -> Result<(Vec<VersionMeta>, Stages)> {
        let load = async {
            let mut tx = self.snapshot().await?;
            let versions = sql::secrets::load_versions(&mut *tx, secret_id).await?;
            let stages = sql::secrets::load_stages(&mut *tx, secret_id).await?;
            tx.commit().await.map_err(db_err)?;
            Ok((versions, stages))
        };
        self.cache.versions(secret_id, load).await
    }

    async fn read_version(
        &self,
        secret_id: i64,
        which: VersionSelector<'_>,
    ) -> Result<Option<StoredVersion>> {
        let load = async {
            let mut tx = self.snapshot().await?;
            let version = sql::secrets::read_version(&mut *tx, secret_id, which).await?;
            tx.commit().await.map_err(db_err)?;
            Ok(version)
        };
        self.cache.version(secret_id, which, load).await
    }

    async fn modify(
        &self,
        secret_id: i64,
        f: &mut Mutation<'_>,
        audit: &AuditSlot,
    ) -> Result<SecretState> {
        let done = retry!(self.modify_once(secret_id, f, audit));
        self.cache.secret_changed(secret_id);
        done
    }

    async fn list_secrets(&self, q: &ListQuery) -> Result<ListPage> {
        // The service binds each cursor to the query that issued it, so its type fits the
        // sort; were it not so, PostgreSQL would refuse the comparison: an empty page instead.
        if let Some(c) = &q.after
            && matches!(c.value, CursorValue::Text(_)) != (q.sort == SortKey::Name)
        {
            return Ok(ListPage {
                secrets: Vec::new(),
                next: None,
            });
        }
        sql::secrets::list_secrets(&mut *self.read().await?, q).await
    }

    async fn due_for_purge(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        sql::secrets::due_for_purge(&mut *self.read().await?, now, limit).await
    }

    async fn expiry_notices_due(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        sql::secrets::expiry_notices_due(&mut *self.read().await?, now, limit).await
    }

    async fn touch_accessed(&self, secret_id: i64, version_id: &str, day: Timestamp) -> Result<()> {
        // Conditional updates without an explicit lock: a `modify` holding the row is waited
        // for.
        let done = async {
            let mut tx = self.begin().await?;
            sql::secrets::touch_accessed(&mut *tx, secret_id, version_id, day).await?;
            tx.commit().await.map_err(db_err)
        }
        .await;
        self.cache.secret_changed(secret_id);
        done
    }

    async fn delete_secret(&self, secret_id: i64, audit: &AuditSlot) -> Result<()> {
        let done = retry!(self.delete_secret_once(secret_id, audit));
        self.cache.secret_changed(secret_id);
        done
    }

    async fn secret_by_id(&self, secret_id: i64) -> Result<Option<SecretRecord>> {
        let load =
            async { sql::secrets::load_secret(&mut *self.read().await?, secret_id, false).await };
        self.cache.secret_by_id(secret_id, load).await
    }
}
