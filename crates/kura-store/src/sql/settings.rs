//! Settings and the keyring's wrapped keys.

use kura_core::{Error, Result, Timestamp};

use super::{Conn, stmt};
use crate::rows::*;

pub(crate) async fn get_setting<C: Conn>(conn: &mut C, key: &str) -> Result<Option<Vec<u8>>> {
    stmt("SELECT value FROM settings WHERE key = $1")
        .bind(key)
        .optional_scalar(conn)
        .await
}

/// Stores `value` unless the key exists; returns what is stored either way. A racing
/// writer's insert either lands first (this one does nothing) or waits on this one.
pub(crate) async fn init_setting<C: Conn>(
    conn: &mut C,
    key: &str,
    value: &[u8],
) -> Result<Vec<u8>> {
    stmt("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(key)
        .bind(value)
        .execute(conn)
        .await?;
    get_setting(conn, key)
        .await?
        .ok_or_else(|| Error::internal(format!("setting {key} vanished")))
}

/// Compare-and-set: `value` replaces the setting (`None` removes it) only while it is still
/// `expected` (`None`: absent). Whether it did.
pub(crate) async fn replace_setting<C: Conn>(
    conn: &mut C,
    key: &str,
    expected: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<bool> {
    let changed = match (expected, value) {
        (None, None) => return Ok(get_setting(conn, key).await?.is_none()),
        (None, Some(v)) => {
            stmt("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(v)
                .execute(conn)
                .await?
        }
        (Some(old), Some(v)) => {
            stmt("UPDATE settings SET value = $3 WHERE key = $1 AND value = $2")
                .bind(key)
                .bind(old)
                .bind(v)
                .execute(conn)
                .await?
        }
        (Some(old), None) => {
            stmt("DELETE FROM settings WHERE key = $1 AND value = $2")
                .bind(key)
                .bind(old)
                .execute(conn)
                .await?
        }
    };
    Ok(changed == 1)
}

pub(crate) async fn load_keys<C: Conn>(conn: &mut C) -> Result<Vec<(String, i64, Vec<u8>)>> {
    stmt("SELECT name, version, wrapped FROM keys ORDER BY name, version")
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| Ok((r.col("name")?, r.col("version")?, r.col("wrapped")?)))
        .collect()
}

pub(crate) async fn insert_key<C: Conn>(
    conn: &mut C,
    name: &str,
    version: i64,
    wrapped: &[u8],
    now: Timestamp,
) -> Result<()> {
    stmt("INSERT INTO keys (name, version, wrapped, created_at) VALUES ($1, $2, $3, $4)")
        .bind(name)
        .bind(version)
        .bind(wrapped)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}
