//! Users, access keys and inline policies.

use super::*;

impl PgStore {
    async fn delete_user_once(&self, name: &str, audit: &AuditSlot) -> Result<bool> {
        let mut tx = self.begin().await?;
        for sql in [
            "DELETE FROM access_keys WHERE user_name = $1",
            "DELETE FROM user_policies WHERE user_name = $1",
        ] {
            sqlx::query(sql)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        self.commit_change(tx, Changed::default(), audit).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_access_key_once(
        &self,
        k: &AccessKeyRecord,
        max: Option<usize>,
        audit: &AuditSlot,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        if let Some(max) = max {
            // The user's row lock serializes key creation per user across nodes, so two
            // concurrent creates cannot both see room for one more key.
            sqlx::query("SELECT 1 FROM users WHERE name = $1 FOR UPDATE")
                .bind(&k.user_name)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let have: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM access_keys WHERE user_name = $1 AND expires_at IS NULL",
            )
            .bind(&k.user_name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            if have as usize >= max {
                return Err(Error::limit_exceeded(format!(
                    "The user {} already has {max} access keys; delete one first.",
                    k.user_name
                )));
            }
        }
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, user_name, ciphertext, wrapped_key, key_name, \
             key_version, status, created_at, expires_at, scope_secret_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&k.access_key_id)
        .bind(&k.user_name)
        .bind(&k.sealed_secret.ciphertext)
        .bind(&k.sealed_secret.wrapped_key)
        .bind(&k.sealed_secret.key_name)
        .bind(k.sealed_secret.key_version)
        .bind(if k.active { "Active" } else { "Inactive" })
        .bind(k.created_at.0)
        .bind(k.expires_at.map(|t| t.0))
        .bind(k.scope_secret_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::exists(format!(
                    "The access key {} already exists.",
                    k.access_key_id
                ))
            } else {
                db_err(e)
            }
        })?;
        self.commit_change(tx, Changed::default(), audit).await
    }
}

#[async_trait]
impl IdentityStore for PgStore {
    async fn create_user(&self, u: &UserRecord, audit: &AuditSlot) -> Result<()> {
        let tags = serde_json::to_string(
            &u.tags
                .iter()
                .map(|t| (t.key.as_str(), t.value.as_str()))
                .collect::<Vec<_>>(),
        )
        .map_err(|e| Error::internal(format!("encoding user tags: {e}")))?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO users (name, arn, user_id, created_at, tags) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&u.name)
        .bind(&u.arn)
        .bind(&u.user_id)
        .bind(u.created_at.0)
        .bind(tags)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::exists(format!("The user {} already exists.", u.name))
            } else {
                db_err(e)
            }
        })?;
        self.commit_change(tx, Changed::default(), audit).await
    }

    async fn get_user(&self, name: &str) -> Result<Option<UserRecord>> {
        if has_nul(&[name]) {
            return Ok(None);
        }
        let row =
            sqlx::query("SELECT name, arn, user_id, created_at, tags FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        // COLLATE "C": the order SQLite lists them in.
        let rows = sqlx::query(
            "SELECT name, arn, user_id, created_at, tags FROM users ORDER BY name COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn delete_user(&self, name: &str, audit: &AuditSlot) -> Result<bool> {
        retry!(self.delete_user_once(name, audit))
    }

    async fn user_exists(&self, name: &str) -> Result<bool> {
        if has_nul(&[name]) {
            return Ok(false);
        }
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE name = $1)")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn insert_access_key(
        &self,
        k: &AccessKeyRecord,
        max: Option<usize>,
        audit: &AuditSlot,
    ) -> Result<()> {
        retry!(self.insert_access_key_once(k, max, audit))
    }

    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyRecord>> {
        let sql = format!(
            "{ACCESS_KEY_SELECT} WHERE k.user_name = $1 AND k.expires_at IS NULL \
             ORDER BY k.created_at, k.access_key_id COLLATE \"C\""
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(user)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(access_key_from_row).collect()
    }

    async fn find_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
        if has_nul(&[access_key_id]) {
            return Ok(None);
        }
        let sql = format!("{ACCESS_KEY_SELECT} WHERE k.access_key_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(access_key_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(access_key_from_row).transpose()
    }

    async fn set_access_key_status(
        &self,
        access_key_id: &str,
        active: bool,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let n = self
            .write_one(
                sqlx::query("UPDATE access_keys SET status = $1 WHERE access_key_id = $2")
                    .bind(if active { "Active" } else { "Inactive" })
                    .bind(access_key_id),
                Some((Changed::default(), audit)),
            )
            .await?;
        Ok(n == 1)
    }

    async fn touch_access_key(&self, access_key_id: &str, day: Timestamp) -> Result<()> {
        // Conditional, so the many requests of one day write at most once.
        self.write_one(
            sqlx::query(
                "UPDATE access_keys SET last_used_at = $1 WHERE access_key_id = $2 \
                 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(day.0)
            .bind(access_key_id),
            None,
        )
        .await?;
        Ok(())
    }

    async fn delete_access_key(&self, access_key_id: &str, audit: &AuditSlot) -> Result<()> {
        self.write_one(
            sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1").bind(access_key_id),
            Some((Changed::default(), audit)),
        )
        .await?;
        Ok(())
    }

    async fn delete_expired_access_keys(&self, now: Timestamp) -> Result<u64> {
        self.write_one(
            sqlx::query("DELETE FROM access_keys WHERE expires_at <= $1").bind(now.0),
            None,
        )
        .await
    }

    async fn put_user_policy(
        &self,
        user: &str,
        name: &str,
        document: &str,
        now: Timestamp,
        audit: &AuditSlot,
    ) -> Result<()> {
        self.write_one(
            sqlx::query(
                "INSERT INTO user_policies (user_name, policy_name, document, created_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_name, policy_name) DO UPDATE SET document = excluded.document",
            )
            .bind(user)
            .bind(name)
            .bind(document)
            .bind(now.0),
            Some((Changed::default(), audit)),
        )
        .await?;
        Ok(())
    }

    async fn delete_user_policy(&self, user: &str, name: &str, audit: &AuditSlot) -> Result<bool> {
        let n = self
            .write_one(
                sqlx::query("DELETE FROM user_policies WHERE user_name = $1 AND policy_name = $2")
                    .bind(user)
                    .bind(name),
                Some((Changed::default(), audit)),
            )
            .await?;
        Ok(n == 1)
    }

    async fn user_policies(&self, user: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT policy_name, document FROM user_policies WHERE user_name = $1 \
             ORDER BY policy_name COLLATE \"C\"",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("policy_name").map_err(db_err)?,
                    r.try_get("document").map_err(db_err)?,
                ))
            })
            .collect()
    }
}
