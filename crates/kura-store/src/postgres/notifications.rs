//! Notification targets and the outbox: the shared SQL (`sql::notifications`), and claims
//! that let several nodes take work side by side (`SKIP LOCKED`).

use super::*;

#[async_trait]
impl NotificationStore for PgStore {
    async fn insert_notification_target(
        &self,
        t: &NotificationTargetRecord,
        audit: &AuditSlot,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sql::notifications::insert_notification_target(&mut *tx, t).await?;
        self.commit_change(tx, Changed::default(), audit).await
    }

    async fn list_notification_targets(&self) -> Result<Vec<NotificationTargetRecord>> {
        sql::notifications::list_notification_targets(&mut *self.read().await?).await
    }

    async fn delete_notification_target(&self, id: &str, audit: &AuditSlot) -> Result<bool> {
        let s = sql::notifications::delete_notification_target(id);
        Ok(self.write(s, Some((Changed::default(), audit))).await? == 1)
    }

    async fn enqueue_notification(&self, event: &str, body: &str, now: Timestamp) -> Result<()> {
        // One statement that inserts nothing when no target wants the event.
        self.read().await?.queue_event(event, body, now).await
    }

    async fn due_notifications(&self, now: Timestamp, limit: usize) -> Result<Vec<OutboxItem>> {
        // A read, as on SQLite: two nodes may both see an item (`claim_notifications` is the
        // cluster-safe way to take work).
        sql::notifications::due_notifications(&mut *self.read().await?, now, limit).await
    }

    async fn claim_notifications(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        // SKIP LOCKED: a node claiming at the same moment takes other items instead of
        // waiting for these, and never the same ones.
        let rows = sql::stmt(
            "WITH due AS (SELECT id, next_attempt_at AS due_at FROM notification_outbox \
               WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $3 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE notification_outbox o SET next_attempt_at = $2 FROM due WHERE o.id = due.id \
             RETURNING o.id, o.target_id, o.body, o.attempts, due.due_at",
        )
        .bind(now)
        .bind(until)
        .bind(limit as i64)
        .fetch_all(&mut *self.read().await?)
        .await?;
        let mut items = rows
            .iter()
            .map(|r| {
                Ok((
                    r.col::<i64>("due_at")?,
                    sql::notifications::outbox_item_from_row(r)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        items.sort_by_key(|(due_at, item)| (*due_at, item.id));
        Ok(items.into_iter().map(|(_, item)| item).collect())
    }

    async fn finish_notification(&self, id: i64) -> Result<()> {
        self.write(sql::notifications::finish_notification(id), None)
            .await?;
        Ok(())
    }

    async fn retry_notification(&self, id: i64, at: Timestamp, error: &str) -> Result<()> {
        let s = sql::notifications::retry_notification::<PgConnection>(id, at, error);
        self.write(s, None).await?;
        Ok(())
    }
}
