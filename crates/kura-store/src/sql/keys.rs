//! Named keys, their versions, and the re-wrap of data keys after a rotation.

use kura_core::model::Tag;
use kura_core::{Error, Result, Timestamp};

use super::{Conn, stmt};
use crate::rows::*;
use crate::{KeyPlace, KmsKeyRecord, WrappedDataKey};

const KEY_COLUMNS: &str = "id, name, alias, description, policy, tags, created_at, rewrap_target, \
     rewrap_done, rewrap_running, deletion_date";

fn key_from_row(r: &impl Columns) -> Result<KmsKeyRecord> {
    let tags: String = r.col("tags")?;
    let pairs: Vec<(String, String)> = serde_json::from_str(&tags)
        .map_err(|e| Error::internal(format!("stored key tags: {e}")))?;
    Ok(KmsKeyRecord {
        id: r.col("id")?,
        name: r.col("name")?,
        alias: r.col("alias")?,
        description: r.col("description")?,
        policy: r.col("policy")?,
        tags: pairs
            .into_iter()
            .map(|(key, value)| Tag { key, value })
            .collect(),
        created_at: Timestamp(r.col("created_at")?),
        rewrap_target: r.col("rewrap_target")?,
        rewrap_done: r.col("rewrap_done")?,
        rewrap_running: r.col::<i64>("rewrap_running")? != 0,
        deletion_date: opt_ts(r, "deletion_date")?,
    })
}

fn tags_json(tags: &[Tag]) -> Result<String> {
    serde_json::to_string(
        &tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect::<Vec<_>>(),
    )
    .map_err(|e| Error::internal(format!("encoding key tags: {e}")))
}

/// Inserts a key's row; `ON CONFLICT DO NOTHING` when `quiet` (the default key's row, which
/// every starting node offers).
pub(crate) async fn insert_kms_key<C: Conn>(
    tx: &mut C,
    k: &KmsKeyRecord,
    quiet: bool,
) -> Result<()> {
    let sql = if quiet {
        "INSERT INTO kms_keys (id, name, alias, description, policy, tags, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
    } else {
        "INSERT INTO kms_keys (id, name, alias, description, policy, tags, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    };
    let taken = match &k.alias {
        Some(a) => format!("An alias named {a} already exists: choose another Alias."),
        None => format!("A key with id {} already exists.", k.id),
    };
    stmt(sql)
        .bind(&k.id)
        .bind(&k.name)
        .bind(k.alias.as_deref())
        .bind(k.description.as_deref())
        .bind(k.policy.as_deref())
        .bind(tags_json(&k.tags)?)
        .bind(k.created_at)
        .taken(Error::exists(taken))
        .execute(tx)
        .await?;
    Ok(())
}

pub(crate) async fn kms_keys<C: Conn>(conn: &mut C) -> Result<Vec<KmsKeyRecord>> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM kms_keys ORDER BY id{}",
        C::CODE_POINT_ORDER
    );
    super::built(sql, super::Args::default())
        .fetch_all(conn)
        .await?
        .iter()
        .map(key_from_row)
        .collect()
}

/// Stores the version and (re)starts the re-wrap toward it.
pub(crate) async fn add_key_version<C: Conn>(
    tx: &mut C,
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
        .taken(Error::exists(format!(
            "Version {version} of key {name} was added by another request at the same time."
        )))
        .execute(tx)
        .await?;
    stmt(
        "UPDATE kms_keys SET rewrap_target = $2, rewrap_done = 0, rewrap_running = 1 \
         WHERE name = $1 AND (rewrap_target IS NULL OR rewrap_target < $2)",
    )
    .bind(name)
    .bind(version)
    .execute(tx)
    .await?;
    Ok(())
}

pub(crate) async fn put_key_policy<C: Conn>(tx: &mut C, name: &str, policy: &str) -> Result<bool> {
    Ok(stmt("UPDATE kms_keys SET policy = $2 WHERE name = $1")
        .bind(name)
        .bind(policy)
        .execute(tx)
        .await?
        == 1)
}

pub(crate) async fn rewrap_due<C: Conn>(conn: &mut C, now: Timestamp) -> Result<Vec<String>> {
    stmt(
        "SELECT name FROM kms_keys WHERE rewrap_running = 1 \
         AND (lease_expires_at IS NULL OR lease_expires_at <= $1) ORDER BY name",
    )
    .bind(now)
    .scalars(conn)
    .await
}

/// One conditional UPDATE, as rotation leases: only where no other owner holds a live lease.
pub(crate) fn claim_rewrap<'a>(
    name: &'a str,
    owner: &'a str,
    now: Timestamp,
    until: Timestamp,
) -> super::Stmt<'a> {
    stmt(
        "UPDATE kms_keys SET lease_owner = $1, lease_expires_at = $2 WHERE name = $3 \
         AND rewrap_running = 1 \
         AND (lease_owner IS NULL OR lease_owner = $1 OR lease_expires_at <= $4)",
    )
    .bind(owner)
    .bind(until)
    .bind(name)
    .bind(now)
}

pub(crate) fn finish_rewrap(name: &str, target: i64) -> super::Stmt<'_> {
    stmt(
        "UPDATE kms_keys SET rewrap_running = 0, lease_owner = NULL, lease_expires_at = NULL \
         WHERE name = $1 AND rewrap_target = $2",
    )
    .bind(name)
    .bind(target)
}

pub(crate) fn restart_rewrap(name: &str, target: i64) -> super::Stmt<'_> {
    stmt(
        "UPDATE kms_keys SET rewrap_running = 1 \
         WHERE name = $1 AND rewrap_target = $2 AND rewrap_running = 0",
    )
    .bind(name)
    .bind(target)
}

/// The six places a wrapped data key lives, each with what names its row (an ACME account's
/// directory in `k` and email in `arn`).
const PLACES: [&str; 6] = [
    "SELECT v.secret_id AS sid, v.version_id AS k, s.arn AS arn, v.key_version, v.wrapped_key \
     FROM secret_versions v JOIN secrets s ON s.id = v.secret_id \
     WHERE v.key_name = $1 AND v.key_version < $2 AND v.wrapped_key IS NOT NULL LIMIT $3",
    "SELECT CAST(0 AS BIGINT) AS sid, access_key_id AS k, CAST('' AS TEXT) AS arn, key_version, wrapped_key FROM access_keys \
     WHERE key_name = $1 AND key_version < $2 LIMIT $3",
    "SELECT CAST(0 AS BIGINT) AS sid, name AS k, CAST('' AS TEXT) AS arn, key_version, wrapped_key FROM rotation_functions \
     WHERE key_name = $1 AND key_version < $2 AND wrapped_key IS NOT NULL LIMIT $3",
    "SELECT CAST(0 AS BIGINT) AS sid, id AS k, CAST('' AS TEXT) AS arn, key_version, wrapped_key FROM notification_targets \
     WHERE key_name = $1 AND key_version < $2 LIMIT $3",
    "SELECT CAST(0 AS BIGINT) AS sid, name AS k, CAST('' AS TEXT) AS arn, key_version, wrapped_key FROM pki_authorities \
     WHERE key_name = $1 AND key_version < $2 LIMIT $3",
    "SELECT CAST(0 AS BIGINT) AS sid, directory_url AS k, email AS arn, key_version, wrapped_key FROM acme_accounts \
     WHERE key_name = $1 AND key_version < $2 LIMIT $3",
];

pub(crate) async fn rewrap_candidates<C: Conn>(
    conn: &mut C,
    name: &str,
    below: i64,
    limit: usize,
) -> Result<Vec<WrappedDataKey>> {
    let mut out = Vec::new();
    for (i, sql) in PLACES.iter().enumerate() {
        let left = limit.saturating_sub(out.len());
        if left == 0 {
            break;
        }
        let rows = stmt(sql)
            .bind(name)
            .bind(below)
            .bind(left as i64)
            .fetch_all(conn)
            .await?;
        for r in &rows {
            let k: String = r.col("k")?;
            let place = match i {
                0 => KeyPlace::SecretVersion {
                    secret_id: r.col("sid")?,
                    version_id: k,
                    arn: r.col("arn")?,
                },
                1 => KeyPlace::AccessKey(k),
                2 => KeyPlace::RotationFunction(k),
                3 => KeyPlace::NotificationTarget(k),
                4 => KeyPlace::CertificateAuthority(k),
                _ => KeyPlace::AcmeAccount {
                    directory_url: k,
                    email: r.col("arn")?,
                },
            };
            out.push(WrappedDataKey {
                place,
                key_version: r.col("key_version")?,
                wrapped_key: r.col("wrapped_key")?,
            });
        }
    }
    Ok(out)
}

/// Rewrites one data key only where its row is still on the version it was read at: a value
/// written or re-wrapped since keeps what it has.
pub(crate) async fn apply_one<C: Conn>(
    tx: &mut C,
    name: &str,
    old: &WrappedDataKey,
    wrapped: &[u8],
    version: i64,
) -> Result<u64> {
    // Every place binds the same four values first, then the row's key.
    let common = |sql: &'static str| {
        stmt(sql)
            .bind(wrapped)
            .bind(version)
            .bind(name)
            .bind(old.key_version)
    };
    let s = match &old.place {
        KeyPlace::SecretVersion {
            secret_id,
            version_id,
            ..
        } => common(
            "UPDATE secret_versions SET wrapped_key = $1, key_version = $2 \
             WHERE secret_id = $5 AND version_id = $6 AND key_name = $3 AND key_version = $4",
        )
        .bind(*secret_id)
        .bind(version_id.as_str()),
        KeyPlace::AccessKey(id) => common(
            "UPDATE access_keys SET wrapped_key = $1, key_version = $2 \
             WHERE access_key_id = $5 AND key_name = $3 AND key_version = $4",
        )
        .bind(id.as_str()),
        KeyPlace::RotationFunction(n) => common(
            "UPDATE rotation_functions SET wrapped_key = $1, key_version = $2 \
             WHERE name = $5 AND key_name = $3 AND key_version = $4",
        )
        .bind(n.as_str()),
        KeyPlace::NotificationTarget(id) => common(
            "UPDATE notification_targets SET wrapped_key = $1, key_version = $2 \
             WHERE id = $5 AND key_name = $3 AND key_version = $4",
        )
        .bind(id.as_str()),
        KeyPlace::CertificateAuthority(n) => common(
            "UPDATE pki_authorities SET wrapped_key = $1, key_version = $2 \
             WHERE name = $5 AND key_name = $3 AND key_version = $4",
        )
        .bind(n.as_str()),
        KeyPlace::AcmeAccount {
            directory_url,
            email,
        } => common(
            "UPDATE acme_accounts SET wrapped_key = $1, key_version = $2 \
             WHERE directory_url = $5 AND email = $6 AND key_name = $3 AND key_version = $4",
        )
        .bind(directory_url.as_str())
        .bind(email.as_str()),
    };
    s.execute(tx).await
}

pub(crate) async fn count_progress<C: Conn>(tx: &mut C, name: &str, done: u64) -> Result<()> {
    stmt("UPDATE kms_keys SET rewrap_done = rewrap_done + $2 WHERE name = $1")
        .bind(name)
        .bind(done as i64)
        .execute(tx)
        .await?;
    Ok(())
}

pub(crate) async fn rewrap_remaining<C: Conn>(conn: &mut C, name: &str, below: i64) -> Result<i64> {
    stmt(
        "SELECT (SELECT COUNT(*) FROM secret_versions \
                  WHERE key_name = $1 AND key_version < $2 AND wrapped_key IS NOT NULL) \
              + (SELECT COUNT(*) FROM access_keys WHERE key_name = $1 AND key_version < $2) \
              + (SELECT COUNT(*) FROM rotation_functions \
                  WHERE key_name = $1 AND key_version < $2 AND wrapped_key IS NOT NULL) \
              + (SELECT COUNT(*) FROM notification_targets WHERE key_name = $1 AND key_version < $2) \
              + (SELECT COUNT(*) FROM pki_authorities WHERE key_name = $1 AND key_version < $2) \
              + (SELECT COUNT(*) FROM acme_accounts WHERE key_name = $1 AND key_version < $2)",
    )
    .bind(name)
    .bind(below)
    .scalar(conn)
    .await
}

pub(crate) async fn key_uses<C: Conn>(
    conn: &mut C,
    name: &str,
    references: &[String],
) -> Result<i64> {
    let wrapped = rewrap_remaining(conn, name, i64::MAX).await?;
    let mut named = 0;
    for r in references {
        let n: i64 = stmt("SELECT COUNT(*) FROM secrets WHERE kms_key_id = $1")
            .bind(r.as_str())
            .scalar(conn)
            .await?;
        named += n;
    }
    Ok(wrapped + named)
}

pub(crate) fn set_key_deletion(name: &str, at: Option<Timestamp>) -> super::Stmt<'_> {
    stmt("UPDATE kms_keys SET deletion_date = $2 WHERE name = $1")
        .bind(name)
        .bind(at.map(|t| t.0))
}

pub(crate) async fn delete_kms_key<C: Conn>(
    tx: &mut C,
    name: &str,
    references: &[String],
    now: Timestamp,
) -> Result<bool> {
    let due: Option<i64> =
        stmt("SELECT deletion_date FROM kms_keys WHERE name = $1 AND deletion_date <= $2")
            .bind(name)
            .bind(now)
            .optional_scalar(tx)
            .await?;
    if due.is_none() || key_uses(tx, name, references).await? > 0 {
        return Ok(false);
    }
    stmt("DELETE FROM keys WHERE name = $1")
        .bind(name)
        .execute(tx)
        .await?;
    Ok(stmt("DELETE FROM kms_keys WHERE name = $1")
        .bind(name)
        .execute(tx)
        .await?
        == 1)
}
