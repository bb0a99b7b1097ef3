//! Rows as records: one decoder per record, shared by both backends (their rows offer the
//! same typed column reads).

use kura_core::model::{
    RotationConfig, RotationPhase, RotationRun, RotationStep, SealedValue, SecretRecord, Tag,
    ValueKind, VersionMeta,
};
use kura_core::{Error, Result, Timestamp};

use crate::{AccessKeyRecord, AuditRecord, RotationFunctionRecord, UserRecord};

/// Typed column reads by name: what a decoder needs of a row, whichever the backend.
pub(crate) trait Columns {
    fn col<T: Column>(&self, column: &str) -> Result<T>;
    /// The first column (a scalar query's answer).
    fn first<T: Column>(&self) -> Result<T>;
}

/// A Rust type both backends decode a column into (SQLite's writer through rusqlite).
pub(crate) trait Column:
    rusqlite::types::FromSql
    + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
    + sqlx::Type<sqlx::Sqlite>
    + for<'r> sqlx::Decode<'r, sqlx::Postgres>
    + sqlx::Type<sqlx::Postgres>
{
}

impl<T> Column for T where
    T: rusqlite::types::FromSql
        + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + for<'r> sqlx::Decode<'r, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
{
}

/// A column that does not decode is a schema the code does not know: an internal error.
fn decode_err(column: &str, e: sqlx::Error) -> Error {
    Error::internal(format!("reading column {column}: {e}"))
}

impl Columns for sqlx::sqlite::SqliteRow {
    fn col<T: Column>(&self, column: &str) -> Result<T> {
        sqlx::Row::try_get(self, column).map_err(|e| decode_err(column, e))
    }

    fn first<T: Column>(&self) -> Result<T> {
        sqlx::Row::try_get(self, 0).map_err(|e| decode_err("0", e))
    }
}

impl Columns for sqlx::postgres::PgRow {
    fn col<T: Column>(&self, column: &str) -> Result<T> {
        sqlx::Row::try_get(self, column).map_err(|e| decode_err(column, e))
    }

    fn first<T: Column>(&self) -> Result<T> {
        sqlx::Row::try_get(self, 0).map_err(|e| decode_err("0", e))
    }
}

pub(crate) const SECRET_COLUMNS: &str = "id, name, arn, description, kms_key_id, created_at, changed_at, accessed_at, \
     deleted_at, purge_at, resource_policy, rotation_enabled, rotation_function, rotation_after_days, \
     rotation_schedule, rotation_duration, last_rotated_at, next_rotation_at, next_rotation_end, rotation_state, rotation_token, \
     rotation_step, rotation_attempt, rotation_error, rotation_attempted_at, rotation_resume_at, \
     rotation_window_end, tagged, expires_at, expiry_notice_at";

pub(crate) fn opt_ts(r: &impl Columns, column: &str) -> Result<Option<Timestamp>> {
    Ok(r.col::<Option<i64>>(column)?.map(Timestamp))
}

pub(crate) fn secret_from_row(r: &impl Columns) -> Result<SecretRecord> {
    let ts = |c: &str| opt_ts(r, c);
    Ok(SecretRecord {
        id: r.col("id")?,
        name: r.col("name")?,
        arn: r.col("arn")?,
        description: r.col("description")?,
        kms_key_id: r.col("kms_key_id")?,
        created_at: Timestamp(r.col("created_at")?),
        changed_at: Timestamp(r.col("changed_at")?),
        accessed_at: ts("accessed_at")?,
        deleted_at: ts("deleted_at")?,
        purge_at: ts("purge_at")?,
        resource_policy: r.col("resource_policy")?,
        tags: Vec::new(),
        tagged: r.col::<i64>("tagged")? != 0,
        rotation: RotationConfig {
            enabled: r.col::<i64>("rotation_enabled")? != 0,
            function_arn: r.col("rotation_function")?,
            after_days: r.col("rotation_after_days")?,
            schedule_expression: r.col("rotation_schedule")?,
            duration: r.col("rotation_duration")?,
            last_rotated_at: ts("last_rotated_at")?,
            next_rotation_at: ts("next_rotation_at")?,
            next_rotation_end: ts("next_rotation_end")?,
        },
        run: RotationRun {
            phase: RotationPhase::parse(&r.col::<String>("rotation_state")?)
                .ok_or_else(|| Error::internal("unknown rotation_state in the database"))?,
            token: r.col("rotation_token")?,
            step: r
                .col::<Option<String>>("rotation_step")?
                .and_then(|s| RotationStep::parse(&s)),
            attempt: r.col("rotation_attempt")?,
            last_error: r.col("rotation_error")?,
            last_attempt_at: ts("rotation_attempted_at")?,
            resume_at: ts("rotation_resume_at")?,
            window_end: ts("rotation_window_end")?,
        },
        expires_at: ts("expires_at")?,
        expiry_notice_at: ts("expiry_notice_at")?,
    })
}

pub(crate) fn sealed_from_row(r: &impl Columns) -> Result<Option<SealedValue>> {
    let kind: Option<String> = r.col("value_kind")?;
    let Some(kind) = kind else { return Ok(None) };
    Ok(Some(SealedValue {
        kind: if kind == "binary" {
            ValueKind::Binary
        } else {
            ValueKind::String
        },
        ciphertext: r.col("ciphertext")?,
        wrapped_key: r.col("wrapped_key")?,
        key_name: r.col("key_name")?,
        key_version: r.col("key_version")?,
    }))
}

/// A sealed value kept in `ciphertext, wrapped_key, key_name, key_version` columns (nullable).
pub(crate) fn sealed_cols(r: &impl Columns) -> Result<Option<SealedValue>> {
    let ciphertext: Option<Vec<u8>> = r.col("ciphertext")?;
    let Some(ciphertext) = ciphertext else {
        return Ok(None);
    };
    Ok(Some(SealedValue {
        kind: ValueKind::String,
        ciphertext,
        wrapped_key: r.col("wrapped_key")?,
        key_name: r.col("key_name")?,
        key_version: r.col("key_version")?,
    }))
}

pub(crate) fn version_from_row(r: &impl Columns) -> Result<VersionMeta> {
    Ok(VersionMeta {
        version_id: r.col("version_id")?,
        created_at: Timestamp(r.col("created_at")?),
        accessed_at: opt_ts(r, "accessed_at")?,
        has_value: r.col::<Option<String>>("value_kind")?.is_some(),
    })
}

pub(crate) fn function_from_row(r: &impl Columns) -> Result<RotationFunctionRecord> {
    Ok(RotationFunctionRecord {
        name: r.col("name")?,
        kind: r.col("kind")?,
        config: r.col("config")?,
        sealed_secret: sealed_cols(r)?,
        created_at: Timestamp(r.col("created_at")?),
    })
}

pub(crate) const ACCESS_KEY_SELECT: &str = "SELECT k.access_key_id, k.user_name, u.arn, u.user_id, k.ciphertext, k.wrapped_key, \
     k.key_name, k.key_version, k.status, k.created_at, k.expires_at, k.scope_secret_id, k.last_used_at \
     FROM access_keys k JOIN users u ON u.name = k.user_name";

pub(crate) fn access_key_from_row(r: &impl Columns) -> Result<AccessKeyRecord> {
    let ts = |c: &str| opt_ts(r, c);
    Ok(AccessKeyRecord {
        access_key_id: r.col("access_key_id")?,
        user_name: r.col("user_name")?,
        user_arn: r.col("arn")?,
        user_id: r.col("user_id")?,
        sealed_secret: sealed_cols(r)?
            .ok_or_else(|| Error::internal("access key without a sealed secret"))?,
        active: r.col::<String>("status")? == "Active",
        created_at: Timestamp(r.col("created_at")?),
        expires_at: ts("expires_at")?,
        scope_secret_id: r.col("scope_secret_id")?,
        last_used_at: ts("last_used_at")?,
    })
}

pub(crate) fn user_from_row(r: &impl Columns) -> Result<UserRecord> {
    let tags: String = r.col("tags")?;
    let pairs: Vec<(String, String)> = serde_json::from_str(&tags)
        .map_err(|e| Error::internal(format!("stored user tags: {e}")))?;
    Ok(UserRecord {
        name: r.col("name")?,
        arn: r.col("arn")?,
        user_id: r.col("user_id")?,
        created_at: Timestamp(r.col("created_at")?),
        tags: pairs
            .into_iter()
            .map(|(key, value)| Tag { key, value })
            .collect(),
    })
}

pub(crate) const AUDIT_COLUMNS: &str = "seq, time, request_id, kind, principal, access_key_id, action, resource, \
     version_id, version_stage, source_ip, user_agent, decision, outcome, error_code, duration_us, mac, node";

pub(crate) fn audit_from_row(r: &impl Columns) -> Result<AuditRecord> {
    let s = |c: &str| -> Result<String> { r.col(c) };
    let o = |c: &str| -> Result<Option<String>> { r.col(c) };
    Ok(AuditRecord {
        seq: r.col("seq")?,
        time: r.col("time")?,
        request_id: s("request_id")?,
        kind: s("kind")?,
        principal: s("principal")?,
        access_key_id: s("access_key_id")?,
        action: s("action")?,
        resource: s("resource")?,
        version_id: o("version_id")?,
        version_stage: o("version_stage")?,
        source_ip: o("source_ip")?,
        user_agent: o("user_agent")?,
        decision: s("decision")?,
        outcome: s("outcome")?,
        error_code: o("error_code")?,
        duration_us: r.col("duration_us")?,
        mac: s("mac")?,
        node: s("node")?,
    })
}
