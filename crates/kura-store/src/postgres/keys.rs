//! Named keys and the re-wrap after a rotation: the shared SQL (`sql::keys`) in PostgreSQL
//! transactions.

use super::*;
use crate::{KmsKeyRecord, WrappedDataKey};

impl PgStore {
    async fn create_kms_key_once(
        &self,
        key: &KmsKeyRecord,
        wrapped: &[u8],
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sql::keys::insert_kms_key(&mut *tx, key, false).await?;
        sql::settings::insert_key(&mut *tx, &key.name, 1, wrapped, key.created_at).await?;
        self.commit_change(tx, key_changed(arn), audit).await
    }

    async fn add_key_version_once(
        &self,
        name: &str,
        version: i64,
        wrapped: &[u8],
        now: Timestamp,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sql::keys::add_key_version(&mut *tx, name, version, wrapped, now).await?;
        self.commit_change(tx, key_changed(arn), audit).await
    }

    async fn put_key_policy_once(
        &self,
        name: &str,
        policy: &str,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = sql::keys::put_key_policy(&mut *tx, name, policy).await?;
        self.commit_change(tx, key_changed(arn), audit).await?;
        Ok(done)
    }

    async fn delete_kms_key_once(
        &self,
        name: &str,
        references: &[String],
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Locked first, so a concurrent delete of the same key waits for this one.
        sql::stmt("SELECT 1 FROM kms_keys WHERE name = $1 FOR UPDATE")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let done = sql::keys::delete_kms_key(&mut *tx, name, references, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(done)
    }

    async fn apply_rewrap_once(
        &self,
        name: &str,
        updates: &[(WrappedDataKey, Vec<u8>, i64)],
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut done = 0;
        for (old, wrapped, version) in updates {
            done += sql::keys::apply_one(&mut *tx, name, old, wrapped, *version).await?;
        }
        sql::keys::count_progress(&mut *tx, name, done).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(done)
    }
}

#[async_trait]
impl KeyStore for PgStore {
    async fn ensure_kms_key(&self, key: &KmsKeyRecord) -> Result<()> {
        sql::keys::insert_kms_key(&mut *self.read().await?, key, true).await
    }

    async fn create_kms_key(
        &self,
        key: &KmsKeyRecord,
        wrapped: &[u8],
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<()> {
        retry!(self.create_kms_key_once(key, wrapped, arn, audit))
    }

    async fn kms_keys(&self) -> Result<Vec<KmsKeyRecord>> {
        sql::keys::kms_keys(&mut *self.read().await?).await
    }

    async fn add_key_version(
        &self,
        name: &str,
        version: i64,
        wrapped: &[u8],
        now: Timestamp,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<()> {
        retry!(self.add_key_version_once(name, version, wrapped, now, arn, audit))
    }

    async fn put_key_policy(
        &self,
        name: &str,
        policy: &str,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<bool> {
        retry!(self.put_key_policy_once(name, policy, arn, audit))
    }

    async fn rewrap_due(&self, now: Timestamp) -> Result<Vec<String>> {
        // Only a hint: the claim decides which node works on each.
        sql::keys::rewrap_due(&mut *self.read().await?, now).await
    }

    async fn claim_rewrap(
        &self,
        name: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let s = sql::keys::claim_rewrap(name, owner, now, until);
        Ok(self.write(s, None).await? == 1)
    }

    async fn rewrap_candidates(
        &self,
        name: &str,
        below: i64,
        limit: usize,
    ) -> Result<Vec<WrappedDataKey>> {
        sql::keys::rewrap_candidates(&mut *self.read().await?, name, below, limit).await
    }

    async fn apply_rewrap(
        &self,
        name: &str,
        updates: &[(WrappedDataKey, Vec<u8>, i64)],
    ) -> Result<u64> {
        let done = retry!(self.apply_rewrap_once(name, updates));
        self.cache.rewrapped(updates);
        done
    }

    async fn finish_rewrap(&self, name: &str, target: i64) -> Result<()> {
        self.write(sql::keys::finish_rewrap(name, target), None)
            .await?;
        Ok(())
    }

    async fn key_uses(&self, name: &str, references: &[String]) -> Result<i64> {
        sql::keys::key_uses(&mut *self.read().await?, name, references).await
    }

    async fn set_key_deletion(
        &self,
        name: &str,
        at: Option<Timestamp>,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let s = sql::keys::set_key_deletion(name, at);
        Ok(self.write(s, Some((key_changed(arn), audit))).await? == 1)
    }

    async fn delete_kms_key(
        &self,
        name: &str,
        references: &[String],
        now: Timestamp,
    ) -> Result<bool> {
        retry!(self.delete_kms_key_once(name, references, now))
    }

    async fn restart_rewrap(&self, name: &str, target: i64) -> Result<()> {
        self.write(sql::keys::restart_rewrap(name, target), None)
            .await?;
        Ok(())
    }

    async fn rewrap_remaining(&self, name: &str, below: i64) -> Result<i64> {
        sql::keys::rewrap_remaining(&mut *self.read().await?, name, below).await
    }
}

fn key_changed(arn: &str) -> Changed {
    Changed {
        arn: Some(arn.to_string()),
        version_id: None,
    }
}
