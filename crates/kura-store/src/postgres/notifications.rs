//! Notification targets and the outbox.

use super::*;

/// Queues `body` for every target subscribed to `event`, in the caller's transaction.
pub(super) async fn queue_event(
    conn: &mut PgConnection,
    event: &str,
    body: &str,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO notification_outbox (target_id, body, next_attempt_at) \
         SELECT t.id, $1, $2 FROM notification_targets t \
         WHERE t.events::jsonb @> jsonb_build_array($3::text)",
    )
    .bind(body)
    .bind(at.0)
    .bind(event)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl NotificationStore for PgStore {
    async fn insert_notification_target(
        &self,
        t: &NotificationTargetRecord,
        audit: &AuditSlot,
    ) -> Result<()> {
        let events = serde_json::to_string(&t.events)
            .map_err(|e| Error::internal(format!("encoding events: {e}")))?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO notification_targets (id, url, events, ciphertext, wrapped_key, key_name, \
             key_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&t.id)
        .bind(&t.url)
        .bind(events)
        .bind(&t.sealed_secret.ciphertext)
        .bind(&t.sealed_secret.wrapped_key)
        .bind(&t.sealed_secret.key_name)
        .bind(t.sealed_secret.key_version)
        .bind(t.created_at.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        self.commit_change(tx, Changed::default(), audit).await
    }

    async fn list_notification_targets(&self) -> Result<Vec<NotificationTargetRecord>> {
        let rows = sqlx::query(
            "SELECT id, url, events, ciphertext, wrapped_key, key_name, key_version, created_at \
             FROM notification_targets ORDER BY created_at, id COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let events: String = r.try_get("events").map_err(db_err)?;
                Ok(NotificationTargetRecord {
                    id: r.try_get("id").map_err(db_err)?,
                    url: r.try_get("url").map_err(db_err)?,
                    events: serde_json::from_str(&events)
                        .map_err(|e| Error::internal(format!("stored events: {e}")))?,
                    sealed_secret: sealed_cols(r)?
                        .ok_or_else(|| Error::internal("notification target without a secret"))?,
                    created_at: Timestamp(r.try_get("created_at").map_err(db_err)?),
                })
            })
            .collect()
    }

    async fn delete_notification_target(&self, id: &str, audit: &AuditSlot) -> Result<bool> {
        let done = self
            .write_one(
                sqlx::query("DELETE FROM notification_targets WHERE id = $1").bind(id),
                Some((Changed::default(), audit)),
            )
            .await?;
        Ok(done == 1)
    }

    async fn enqueue_notification(&self, event: &str, body: &str, now: Timestamp) -> Result<()> {
        // One statement that inserts nothing when no target wants the event.
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        queue_event(&mut conn, event, body, now).await
    }

    async fn due_notifications(&self, now: Timestamp, limit: usize) -> Result<Vec<OutboxItem>> {
        // A read, as on SQLite: two nodes may both see an item (`claim_notifications` is the
        // cluster-safe way to take work).
        let rows = sqlx::query(
            "SELECT id, target_id, body, attempts FROM notification_outbox \
             WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now.0)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(OutboxItem {
                    id: r.try_get("id").map_err(db_err)?,
                    target_id: r.try_get("target_id").map_err(db_err)?,
                    body: r.try_get("body").map_err(db_err)?,
                    attempts: r.try_get("attempts").map_err(db_err)?,
                })
            })
            .collect()
    }

    async fn claim_notifications(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        // SKIP LOCKED: a node claiming at the same moment takes other items instead of
        // waiting for these, and never the same ones.
        let rows = sqlx::query(
            "WITH due AS (SELECT id, next_attempt_at AS due_at FROM notification_outbox \
               WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $3 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE notification_outbox o SET next_attempt_at = $2 FROM due WHERE o.id = due.id \
             RETURNING o.id, o.target_id, o.body, o.attempts, due.due_at",
        )
        .bind(now.0)
        .bind(until.0)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut items = rows
            .iter()
            .map(|r| {
                let due_at: i64 = r.try_get("due_at").map_err(db_err)?;
                Ok((
                    due_at,
                    OutboxItem {
                        id: r.try_get("id").map_err(db_err)?,
                        target_id: r.try_get("target_id").map_err(db_err)?,
                        body: r.try_get("body").map_err(db_err)?,
                        attempts: r.try_get("attempts").map_err(db_err)?,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        items.sort_by_key(|(due_at, item)| (*due_at, item.id));
        Ok(items.into_iter().map(|(_, item)| item).collect())
    }

    async fn finish_notification(&self, id: i64) -> Result<()> {
        self.write_one(
            sqlx::query("DELETE FROM notification_outbox WHERE id = $1").bind(id),
            None,
        )
        .await?;
        Ok(())
    }

    async fn retry_notification(&self, id: i64, at: Timestamp, error: &str) -> Result<()> {
        self.write_one(
            sqlx::query(
                "UPDATE notification_outbox SET attempts = attempts + 1, next_attempt_at = $1, \
                 last_error = $2 WHERE id = $3",
            )
            .bind(at.0)
            .bind(without_nul(error))
            .bind(id),
            None,
        )
        .await?;
        Ok(())
    }
}
