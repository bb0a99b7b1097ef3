//! Web console sessions (`console_sessions`).

use kura_core::{Result, Timestamp};

use super::{Conn, stmt};
use crate::rows::*;
use crate::{SessionCutoff, SessionRecord};

/// Forgets the ended sessions, then stores `s` unless `max` are open.
pub(crate) async fn open<C: Conn>(
    tx: &mut C,
    s: &SessionRecord,
    cutoff: SessionCutoff,
    max: i64,
) -> Result<bool> {
    stmt("DELETE FROM console_sessions WHERE last_seen < $1 OR created_at < $2")
        .bind(cutoff.idle_before)
        .bind(cutoff.started_before)
        .execute(tx)
        .await?;
    let open: i64 = stmt("SELECT COUNT(*) FROM console_sessions")
        .scalar(tx)
        .await?;
    if open >= max {
        return Ok(false);
    }
    stmt(
        "INSERT INTO console_sessions (id, user_name, arn, user_id, access_key_id, \
         scope_secret_id, csrf, created_at, last_seen) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&s.id)
    .bind(&s.user_name)
    .bind(&s.arn)
    .bind(&s.user_id)
    .bind(&s.access_key_id)
    .bind(s.scope_secret_id)
    .bind(&s.csrf)
    .bind(s.created_at)
    .bind(s.last_seen)
    .execute(tx)
    .await?;
    Ok(true)
}

pub(crate) async fn get<C: Conn>(conn: &mut C, id: &str) -> Result<Option<SessionRecord>> {
    let Some(r) = stmt(
        "SELECT id, user_name, arn, user_id, access_key_id, scope_secret_id, csrf, created_at, \
         last_seen FROM console_sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(SessionRecord {
        id: r.col("id")?,
        user_name: r.col("user_name")?,
        arn: r.col("arn")?,
        user_id: r.col("user_id")?,
        access_key_id: r.col("access_key_id")?,
        scope_secret_id: r.col("scope_secret_id")?,
        csrf: r.col("csrf")?,
        created_at: Timestamp(r.col("created_at")?),
        last_seen: Timestamp(r.col("last_seen")?),
    }))
}

pub(crate) fn ended(s: &SessionRecord, cutoff: SessionCutoff) -> bool {
    s.last_seen < cutoff.idle_before || s.created_at < cutoff.started_before
}

pub(crate) async fn touch<C: Conn>(conn: &mut C, id: &str, now: Timestamp) -> Result<()> {
    stmt("UPDATE console_sessions SET last_seen = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn end<C: Conn>(conn: &mut C, id: &str) -> Result<()> {
    stmt("DELETE FROM console_sessions WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
