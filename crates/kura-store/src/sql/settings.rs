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

/// The body of [`crate::SettingsStore::rewrap_keys`], inside the caller's write transaction
/// (which must keep other writers from adding keys until it ends). Whether it changed
/// everything; on false the caller rolls back.
pub(crate) async fn rewrap_keys<C: Conn>(
    tx: &mut C,
    keys: &[crate::KeyRewrap],
    swaps: &[crate::SettingSwap<'_>],
) -> Result<bool> {
    let mut stored = load_keys(tx).await?;
    let mut expected: Vec<(String, i64, Vec<u8>)> = keys
        .iter()
        .map(|k| (k.name.clone(), k.version, k.old.clone()))
        .collect();
    stored.sort();
    expected.sort();
    if stored != expected {
        return Ok(false);
    }
    for k in keys {
        let changed =
            stmt("UPDATE keys SET wrapped = $3 WHERE name = $1 AND version = $2 AND wrapped = $4")
                .bind(&k.name)
                .bind(k.version)
                .bind(&k.new)
                .bind(&k.old)
                .execute(tx)
                .await?;
        if changed != 1 {
            return Ok(false);
        }
    }
    for s in swaps {
        if !replace_setting(tx, s.key, s.expected, s.value).await? {
            return Ok(false);
        }
    }
    Ok(true)
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
