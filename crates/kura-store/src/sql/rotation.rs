//! Rotation work and rotation functions.

use kura_core::{Error, Result, Timestamp};

use super::{Args, Conn, Stmt, built, stmt, unstorable};
use crate::RotationFunctionRecord;
use crate::rows::*;

/// Secrets with rotation work due at `now` (a scheduled cycle to start, or a cycle to
/// continue) whose lease is free or expired, soonest first. Two index ranges: scheduled
/// cycles to start, and cycles to continue.
pub(crate) async fn rotation_due<C: Conn>(
    conn: &mut C,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<i64>> {
    stmt(
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
    .bind(now)
    .bind(limit as i64)
    .scalars(conn)
    .await
}

/// A scheduled window the row does not bound (`next_rotation_end` unset) lasts this long, as
/// the rotation engine's `DEFAULT_WINDOW_MS` gives it.
const UNBOUNDED_WINDOW_MS: i64 = 3_600_000;

/// Secrets whose scheduled rotation is overdue at `now`, leased or not: the window closed and
/// no cycle started, or a cycle still runs past its window's end. Two index ranges, as in
/// [`rotation_due`]: a running cycle always has a `rotation_resume_at`.
pub(crate) async fn rotation_overdue<C: Conn>(
    conn: &mut C,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<i64>> {
    stmt(
        "SELECT id FROM secrets \
           WHERE next_rotation_at <= $1 AND rotation_enabled = 1 AND deleted_at IS NULL \
             AND rotation_state <> 'InProgress' \
             AND COALESCE(next_rotation_end, next_rotation_at + $2) <= $1 \
         UNION \
         SELECT id FROM secrets \
           WHERE rotation_resume_at IS NOT NULL AND deleted_at IS NULL \
             AND rotation_state = 'InProgress' AND rotation_window_end <= $1 \
         LIMIT $3",
    )
    .bind(now)
    .bind(UNBOUNDED_WINDOW_MS)
    .bind(limit as i64)
    .scalars(conn)
    .await
}

/// Takes (or renews) the rotation lease of a secret: one conditional UPDATE, which changes
/// the row (one row affected) only where no other owner holds a live lease. Where nodes race
/// (PostgreSQL), the condition is checked again on the row's newest version, so exactly one
/// of them changes it.
pub(crate) fn claim_rotation<'a>(
    secret_id: i64,
    owner: &'a str,
    now: Timestamp,
    until: Timestamp,
) -> Stmt<'a> {
    stmt(
        "UPDATE secrets SET lease_owner = $1, lease_expires_at = $2 WHERE id = $3 \
         AND (lease_owner IS NULL OR lease_owner = $1 OR lease_expires_at <= $4)",
    )
    .bind(owner)
    .bind(until)
    .bind(secret_id)
    .bind(now)
}

pub(crate) fn release_rotation(secret_id: i64, owner: &str) -> Stmt<'_> {
    stmt(
        "UPDATE secrets SET lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = $1 AND lease_owner = $2",
    )
    .bind(secret_id)
    .bind(owner)
}

pub(crate) async fn insert_rotation_function<C: Conn>(
    tx: &mut C,
    f: &RotationFunctionRecord,
) -> Result<()> {
    let sealed = f.sealed_secret.as_ref();
    stmt(
        "INSERT INTO rotation_functions (name, kind, config, ciphertext, wrapped_key, key_name, \
         key_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&f.name)
    .bind(&f.kind)
    .bind(&f.config)
    .bind(sealed.map(|s| s.ciphertext.as_slice()))
    .bind(sealed.map(|s| s.wrapped_key.as_slice()))
    .bind(sealed.map(|s| s.key_name.as_str()))
    .bind(sealed.map(|s| s.key_version))
    .bind(f.created_at)
    .taken(Error::exists(format!(
        "A rotation function named {} already exists.",
        f.name
    )))
    .execute(tx)
    .await?;
    Ok(())
}

pub(crate) async fn rotation_function<C: Conn>(
    conn: &mut C,
    name: &str,
) -> Result<Option<RotationFunctionRecord>> {
    if unstorable::<C>(&[name]) {
        return Ok(None);
    }
    stmt(
        "SELECT name, kind, config, ciphertext, wrapped_key, key_name, key_version, created_at \
         FROM rotation_functions WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(function_from_row)
    .transpose()
}

pub(crate) async fn list_rotation_functions<C: Conn>(
    conn: &mut C,
) -> Result<Vec<RotationFunctionRecord>> {
    let sql = format!(
        "SELECT name, kind, config, ciphertext, wrapped_key, key_name, key_version, created_at \
         FROM rotation_functions ORDER BY name{}",
        C::CODE_POINT_ORDER
    );
    built(sql, Args::default())
        .fetch_all(conn)
        .await?
        .iter()
        .map(function_from_row)
        .collect()
}

/// Removes a function unless a secret's rotation uses it; false if there was none.
pub(crate) async fn delete_rotation_function<C: Conn>(
    tx: &mut C,
    name: &str,
    arn: &str,
) -> Result<bool> {
    // Locked first, so a concurrent delete of the same function waits for this one.
    if !C::FOR_UPDATE.is_empty() {
        let sql = format!(
            "SELECT 1 FROM rotation_functions WHERE name = $1{}",
            C::FOR_UPDATE
        );
        let mut args = Args::default();
        args.push(name);
        built(sql, args).execute(tx).await?;
    }
    let users: i64 = stmt("SELECT COUNT(*) FROM secrets WHERE rotation_function = $1")
        .bind(arn)
        .scalar(tx)
        .await?;
    if users > 0 {
        return Err(Error::invalid_request(format!(
            "The rotation function {name} is used by {users} secret(s). Point their rotation at another function with RotateSecret first."
        )));
    }
    let deleted = stmt("DELETE FROM rotation_functions WHERE name = $1")
        .bind(name)
        .execute(tx)
        .await?;
    Ok(deleted == 1)
}
