//! Rotation leases and rotation functions: the shared SQL (`sql::rotation`); a shared
//! database keeps every lease at start-up.

use super::*;

impl PgStore {
    async fn delete_rotation_function_once(
        &self,
        name: &str,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let deleted = sql::rotation::delete_rotation_function(&mut *tx, name, arn).await?;
        self.commit_change(tx, Changed::default(), audit).await?;
        Ok(deleted)
    }
}

#[async_trait]
impl RotationStore for PgStore {
    async fn rotation_due(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        // Only a hint: the claim decides which node runs each.
        sql::rotation::rotation_due(&mut *self.read().await?, now, limit).await
    }

    async fn rotation_overdue(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        sql::rotation::rotation_overdue(&mut *self.read().await?, now, limit).await
    }

    async fn claim_rotation(
        &self,
        secret_id: i64,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let s = sql::rotation::claim_rotation(secret_id, owner, now, until);
        Ok(self.write(s, None).await? == 1)
    }

    async fn release_rotation(&self, secret_id: i64, owner: &str) -> Result<()> {
        self.write(sql::rotation::release_rotation(secret_id, owner), None)
            .await?;
        Ok(())
    }

    async fn recover_rotations(&self, _now: Timestamp) -> Result<u64> {
        // Several nodes share this database: a lease found at start-up may belong to a node
        // that is running right now, so releasing it would run its step twice. Leases of a
        // node that died simply expire, and `rotation_due` offers their secrets again then.
        Ok(0)
    }

    async fn insert_rotation_function(
        &self,
        f: &RotationFunctionRecord,
        audit: &AuditSlot,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sql::rotation::insert_rotation_function(&mut *tx, f).await?;
        self.commit_change(tx, Changed::default(), audit).await
    }

    async fn rotation_function(&self, name: &str) -> Result<Option<RotationFunctionRecord>> {
        sql::rotation::rotation_function(&mut *self.read().await?, name).await
    }

    async fn list_rotation_functions(&self) -> Result<Vec<RotationFunctionRecord>> {
        sql::rotation::list_rotation_functions(&mut *self.read().await?).await
    }

    async fn delete_rotation_function(
        &self,
        name: &str,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<bool> {
        retry!(self.delete_rotation_function_once(name, arn, audit))
    }
}
