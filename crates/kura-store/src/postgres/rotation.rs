//! Rotation leases and rotation functions.

use super::*;

impl PgStore {
    async fn delete_rotation_function_once(
        &self,
        name: &str,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Locked first, so a concurrent delete of the same function waits for this one.
        sqlx::query("SELECT 1 FROM rotation_functions WHERE name = $1 FOR UPDATE")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let users: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM secrets WHERE rotation_function = $1")
                .bind(arn)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        if users > 0 {
            return Err(Error::invalid_request(format!(
                "The rotation function {name} is used by {users} secret(s). Point their rotation at another function with RotateSecret first."
            )));
        }
        let done = sqlx::query("DELETE FROM rotation_functions WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        self.commit_change(tx, Changed::default(), audit).await?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl RotationStore for PgStore {
    async fn rotation_due(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        // Two index ranges: scheduled cycles to start, and cycles to continue. Only a hint:
        // the claim below decides which node runs each.
        sqlx::query_scalar(
            "SELECT id FROM (\
               SELECT id, next_rotation_at AS due, lease_expires_at FROM secrets \
                 WHERE next_rotation_at <= $1 AND rotation_enabled = 1 AND deleted_at IS NULL \
                   AND rotation_state <> 'InProgress' \
               UNION \
               SELECT id, rotation_resume_at AS due, lease_expires_at FROM secrets \
                 WHERE rotation_resume_at <= $1 AND deleted_at IS NULL) AS due \
             WHERE lease_expires_at IS NULL OR lease_expires_at <= $1 \
             GROUP BY id ORDER BY MIN(due) LIMIT $2",
        )
        .bind(now.0)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn claim_rotation(
        &self,
        secret_id: i64,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        // One conditional UPDATE: PostgreSQL re-checks the condition on the row's newest
        // version when two nodes race, so exactly one of them gets the row back.
        let claimed: Option<i64> = sqlx::query_scalar(
            "UPDATE secrets SET lease_owner = $1, lease_expires_at = $2 WHERE id = $3 \
             AND (lease_owner IS NULL OR lease_owner = $1 OR lease_expires_at <= $4) RETURNING id",
        )
        .bind(owner)
        .bind(until.0)
        .bind(secret_id)
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(claimed.is_some())
    }

    async fn release_rotation(&self, secret_id: i64, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE secrets SET lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(secret_id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
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
        let sealed = f.sealed_secret.as_ref();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO rotation_functions (name, kind, config, ciphertext, wrapped_key, key_name, \
             key_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&f.name)
        .bind(&f.kind)
        .bind(&f.config)
        .bind(sealed.map(|s| s.ciphertext.clone()))
        .bind(sealed.map(|s| s.wrapped_key.clone()))
        .bind(sealed.map(|s| s.key_name.clone()))
        .bind(sealed.map(|s| s.key_version))
        .bind(f.created_at.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::exists(format!("A rotation function named {} already exists.", f.name))
            } else {
                db_err(e)
            }
        })?;
        self.commit_change(tx, Changed::default(), audit).await
    }

    async fn rotation_function(&self, name: &str) -> Result<Option<RotationFunctionRecord>> {
        if has_nul(&[name]) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT name, kind, config, ciphertext, wrapped_key, key_name, key_version, created_at \
             FROM rotation_functions WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(function_from_row).transpose()
    }

    async fn list_rotation_functions(&self) -> Result<Vec<RotationFunctionRecord>> {
        let rows = sqlx::query(
            "SELECT name, kind, config, ciphertext, wrapped_key, key_name, key_version, created_at \
             FROM rotation_functions ORDER BY name COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(function_from_row).collect()
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
