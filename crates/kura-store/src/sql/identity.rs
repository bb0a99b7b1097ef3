//! Users, access keys and inline policies.

use kura_core::{Error, Result, Timestamp};

use super::{Args, Conn, Stmt, built, stmt, unstorable};
use crate::rows::*;
use crate::{AccessKeyRecord, UserRecord};

pub(crate) async fn create_user<C: Conn>(tx: &mut C, u: &UserRecord) -> Result<()> {
    let tags = serde_json::to_string(
        &u.tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect::<Vec<_>>(),
    )
    .map_err(|e| Error::internal(format!("encoding user tags: {e}")))?;
    stmt("INSERT INTO users (name, arn, user_id, created_at, tags) VALUES ($1, $2, $3, $4, $5)")
        .bind(&u.name)
        .bind(&u.arn)
        .bind(&u.user_id)
        .bind(u.created_at)
        .bind(tags)
        .taken(Error::exists(format!(
            "The user {} already exists.",
            u.name
        )))
        .execute(tx)
        .await?;
    Ok(())
}

pub(crate) async fn get_user<C: Conn>(conn: &mut C, name: &str) -> Result<Option<UserRecord>> {
    if unstorable::<C>(&[name]) {
        return Ok(None);
    }
    stmt("SELECT name, arn, user_id, created_at, tags FROM users WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

pub(crate) async fn list_users<C: Conn>(conn: &mut C) -> Result<Vec<UserRecord>> {
    let sql = format!(
        "SELECT name, arn, user_id, created_at, tags FROM users ORDER BY name{}",
        C::CODE_POINT_ORDER
    );
    built(sql, Args::default())
        .fetch_all(conn)
        .await?
        .iter()
        .map(user_from_row)
        .collect()
}

/// Deletes a user with its access keys and policies; false if there was none.
pub(crate) async fn delete_user<C: Conn>(tx: &mut C, name: &str) -> Result<bool> {
    for sql in [
        "DELETE FROM access_keys WHERE user_name = $1",
        "DELETE FROM user_policies WHERE user_name = $1",
    ] {
        stmt(sql).bind(name).execute(tx).await?;
    }
    let deleted = stmt("DELETE FROM users WHERE name = $1")
        .bind(name)
        .execute(tx)
        .await?;
    Ok(deleted == 1)
}

pub(crate) async fn user_exists<C: Conn>(conn: &mut C, name: &str) -> Result<bool> {
    if unstorable::<C>(&[name]) {
        return Ok(false);
    }
    stmt("SELECT EXISTS (SELECT 1 FROM users WHERE name = $1)")
        .bind(name)
        .scalar(conn)
        .await
}

/// Inserts a key; with `max`, only if its user has fewer long-term keys.
pub(crate) async fn insert_access_key<C: Conn>(
    tx: &mut C,
    k: &AccessKeyRecord,
    max: Option<usize>,
) -> Result<()> {
    if let Some(max) = max {
        // Where writers run side by side, the user's row lock serializes key creation per
        // user, so two concurrent creates cannot both see room for one more key.
        if !C::FOR_UPDATE.is_empty() {
            let sql = format!("SELECT 1 FROM users WHERE name = $1{}", C::FOR_UPDATE);
            let mut args = Args::default();
            args.push(&k.user_name);
            built(sql, args).execute(tx).await?;
        }
        // A user's keys that still work; a rotation step's keys are not the user's to count.
        let have: i64 = stmt(
            "SELECT COUNT(*) FROM access_keys WHERE user_name = $1 AND scope_secret_id IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(&k.user_name)
        .bind(k.created_at)
        .scalar(tx)
        .await?;
        if have as usize >= max {
            return Err(Error::limit_exceeded(format!(
                "The user {} already has {max} access keys; delete one first.",
                k.user_name
            )));
        }
    }
    stmt(
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
    .bind(k.created_at)
    .bind(k.expires_at)
    .bind(k.scope_secret_id)
    .taken(Error::exists(format!(
        "The access key {} already exists.",
        k.access_key_id
    )))
    .execute(tx)
    .await?;
    Ok(())
}

/// A user's own keys, expiring ones included (a rotation step's short-lived keys are not listed).
pub(crate) async fn list_access_keys<C: Conn>(
    conn: &mut C,
    user: &str,
) -> Result<Vec<AccessKeyRecord>> {
    let sql = format!(
        "{ACCESS_KEY_SELECT} WHERE k.user_name = $1 AND k.scope_secret_id IS NULL \
         ORDER BY k.created_at, k.access_key_id{}",
        C::CODE_POINT_ORDER
    );
    let mut args = Args::default();
    args.push(user);
    built(sql, args)
        .fetch_all(conn)
        .await?
        .iter()
        .map(access_key_from_row)
        .collect()
}

pub(crate) async fn find_access_key<C: Conn>(
    conn: &mut C,
    access_key_id: &str,
) -> Result<Option<AccessKeyRecord>> {
    if unstorable::<C>(&[access_key_id]) {
        return Ok(None);
    }
    let sql = format!("{ACCESS_KEY_SELECT} WHERE k.access_key_id = $1");
    let mut args = Args::default();
    args.push(access_key_id);
    built(sql, args)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(access_key_from_row)
        .transpose()
}

pub(crate) fn set_access_key_status(access_key_id: &str, active: bool) -> Stmt<'_> {
    stmt("UPDATE access_keys SET status = $1 WHERE access_key_id = $2")
        .bind(if active { "Active" } else { "Inactive" })
        .bind(access_key_id)
}

/// Sets an expiry; one already sooner stays.
pub(crate) fn expire_access_key(access_key_id: &str, at: Timestamp) -> Stmt<'_> {
    stmt(
        "UPDATE access_keys SET expires_at = CASE WHEN expires_at IS NOT NULL AND expires_at < $1 \
         THEN expires_at ELSE $1 END WHERE access_key_id = $2",
    )
    .bind(at)
    .bind(access_key_id)
}

/// Records use at day granularity; conditional, so the many requests of one day write at
/// most once.
pub(crate) fn touch_access_key(access_key_id: &str, day: Timestamp) -> Stmt<'_> {
    stmt(
        "UPDATE access_keys SET last_used_at = $1 WHERE access_key_id = $2 \
         AND (last_used_at IS NULL OR last_used_at < $1)",
    )
    .bind(day)
    .bind(access_key_id)
}

pub(crate) fn delete_access_key(access_key_id: &str) -> Stmt<'_> {
    stmt("DELETE FROM access_keys WHERE access_key_id = $1").bind(access_key_id)
}

/// How long a user's expired key is kept: listed with its expiry, and refused as expired
/// rather than unknown, so its owner sees what happened. A rotation step's key goes at once.
pub(crate) const EXPIRED_USER_KEY_KEPT_MS: i64 = 7 * Timestamp::MS_PER_DAY;

/// Which keys the sweeper deletes at `$1` (now) and `$2` (now less the keeping time); the
/// first asks whether there are any (the condition is the same in both).
pub(crate) const ANY_SWEPT_ACCESS_KEYS: &str = "SELECT EXISTS (SELECT 1 FROM access_keys WHERE \
     (scope_secret_id IS NOT NULL AND expires_at <= $1) \
     OR (scope_secret_id IS NULL AND expires_at <= $2))";
const DELETE_SWEPT_ACCESS_KEYS: &str = "DELETE FROM access_keys WHERE \
     (scope_secret_id IS NOT NULL AND expires_at <= $1) \
     OR (scope_secret_id IS NULL AND expires_at <= $2) \
     RETURNING access_key_id, user_name, scope_secret_id";

/// `now` less the time an expired user key is kept.
pub(crate) fn user_keys_swept_before(now: Timestamp) -> Timestamp {
    Timestamp(now.0 - EXPIRED_USER_KEY_KEPT_MS)
}

/// Deletes what the sweeper deletes at `now`, in the caller's transaction; returns the keys.
pub(crate) async fn delete_expired_access_keys<C: Conn>(
    tx: &mut C,
    now: Timestamp,
) -> Result<Vec<crate::SweptAccessKey>> {
    stmt(DELETE_SWEPT_ACCESS_KEYS)
        .bind(now)
        .bind(user_keys_swept_before(now))
        .fetch_all(tx)
        .await?
        .iter()
        .map(|r| {
            Ok(crate::SweptAccessKey {
                access_key_id: r.col("access_key_id")?,
                user_name: r.col("user_name")?,
                step_key: r.col::<Option<i64>>("scope_secret_id")?.is_some(),
            })
        })
        .collect()
}

pub(crate) fn put_user_policy<'a>(
    user: &'a str,
    name: &'a str,
    document: &'a str,
    now: Timestamp,
) -> Stmt<'a> {
    stmt(
        "INSERT INTO user_policies (user_name, policy_name, document, created_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_name, policy_name) DO UPDATE SET document = excluded.document",
    )
    .bind(user)
    .bind(name)
    .bind(document)
    .bind(now)
}

pub(crate) fn delete_user_policy<'a>(user: &'a str, name: &'a str) -> Stmt<'a> {
    stmt("DELETE FROM user_policies WHERE user_name = $1 AND policy_name = $2")
        .bind(user)
        .bind(name)
}

/// A user's inline policies: (name, document), by name.
pub(crate) async fn user_policies<C: Conn>(
    conn: &mut C,
    user: &str,
) -> Result<Vec<(String, String)>> {
    let sql = format!(
        "SELECT policy_name, document FROM user_policies WHERE user_name = $1 \
         ORDER BY policy_name{}",
        C::CODE_POINT_ORDER
    );
    let mut args = Args::default();
    args.push(user);
    built(sql, args)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| Ok((r.col("policy_name")?, r.col("document")?)))
        .collect()
}
