//! Notification targets and the outbox.

use kura_core::{Error, Result, Timestamp};

use super::{Args, Conn, Stmt, built, recordable, stmt};
use crate::rows::*;
use crate::{NotificationTargetRecord, OutboxItem};

/// The event a target hears of an expiration `days` ahead (an outbox event's routing name).
pub const EXPIRING: &str = "SecretExpiring";

/// What a target's `events` column holds: its events, and `SecretExpiring:<days>` for each
/// day it asked to hear of an expiration, what those events are queued by.
fn stored_events(t: &NotificationTargetRecord) -> Vec<String> {
    let mut out = t.events.clone();
    out.extend(t.expiring_days.iter().map(|d| format!("{EXPIRING}:{d}")));
    out
}

/// The column read back: events, and the days of `SecretExpiring:<days>`.
fn split_events(stored: Vec<String>) -> (Vec<String>, Vec<i64>) {
    let mut events = Vec::new();
    let mut days = Vec::new();
    for e in stored {
        match e
            .strip_prefix(EXPIRING)
            .and_then(|rest| rest.strip_prefix(':'))
        {
            Some(d) => days.extend(d.parse::<i64>().ok()),
            None => events.push(e),
        }
    }
    (events, days)
}

pub(crate) async fn insert_notification_target<C: Conn>(
    tx: &mut C,
    t: &NotificationTargetRecord,
) -> Result<()> {
    let events = serde_json::to_string(&stored_events(t))
        .map_err(|e| Error::internal(format!("encoding events: {e}")))?;
    stmt(
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
    .bind(t.created_at)
    .execute(tx)
    .await?;
    Ok(())
}

pub(crate) async fn list_notification_targets<C: Conn>(
    conn: &mut C,
) -> Result<Vec<NotificationTargetRecord>> {
    let sql = format!(
        "SELECT id, url, events, ciphertext, wrapped_key, key_name, key_version, created_at \
         FROM notification_targets ORDER BY created_at, id{}",
        C::CODE_POINT_ORDER
    );
    built(sql, Args::default())
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| {
            let events: String = r.col("events")?;
            let (events, expiring_days) = split_events(
                serde_json::from_str(&events)
                    .map_err(|e| Error::internal(format!("stored events: {e}")))?,
            );
            Ok(NotificationTargetRecord {
                id: r.col("id")?,
                url: r.col("url")?,
                events,
                expiring_days,
                sealed_secret: sealed_cols(r)?
                    .ok_or_else(|| Error::internal("notification target without a secret"))?,
                created_at: Timestamp(r.col("created_at")?),
            })
        })
        .collect()
}

pub(crate) fn delete_notification_target(id: &str) -> Stmt<'_> {
    stmt("DELETE FROM notification_targets WHERE id = $1").bind(id)
}

pub(crate) fn outbox_item_from_row(r: &impl Columns) -> Result<OutboxItem> {
    Ok(OutboxItem {
        id: r.col("id")?,
        target_id: r.col("target_id")?,
        body: r.col("body")?,
        attempts: r.col("attempts")?,
    })
}

/// Items due at `now`, soonest first.
pub(crate) async fn due_notifications<C: Conn>(
    conn: &mut C,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<OutboxItem>> {
    stmt(
        "SELECT id, target_id, body, attempts FROM notification_outbox \
         WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2",
    )
    .bind(now)
    .bind(limit as i64)
    .fetch_all(conn)
    .await?
    .iter()
    .map(outbox_item_from_row)
    .collect()
}

pub(crate) fn finish_notification<'a>(id: i64) -> Stmt<'a> {
    stmt("DELETE FROM notification_outbox WHERE id = $1").bind(id)
}

/// A failed delivery: tried again at `at`. The error is recorded as the backend can store it.
pub(crate) fn retry_notification<C: Conn>(id: i64, at: Timestamp, error: &str) -> Stmt<'_> {
    stmt(
        "UPDATE notification_outbox SET attempts = attempts + 1, next_attempt_at = $1, \
         last_error = $2 WHERE id = $3",
    )
    .bind(at)
    .bind(recordable::<C>(error))
    .bind(id)
}
