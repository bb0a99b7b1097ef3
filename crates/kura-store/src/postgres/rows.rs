//! Rows as records, and the text PostgreSQL cannot hold.

use super::*;

pub(super) const SECRET_COLUMNS: &str = "id, name, arn, description, kms_key_id, created_at, changed_at, accessed_at, \
     deleted_at, purge_at, resource_policy, rotation_enabled, rotation_function, rotation_after_days, \
     rotation_schedule, rotation_duration, last_rotated_at, next_rotation_at, next_rotation_end, rotation_state, rotation_token, \
     rotation_step, rotation_attempt, rotation_error, rotation_attempted_at, rotation_resume_at, \
     rotation_window_end, tagged";

pub(super) fn opt_ts(r: &PgRow, column: &str) -> Result<Option<Timestamp>> {
    Ok(r.try_get::<Option<i64>, _>(column)
        .map_err(db_err)?
        .map(Timestamp))
}

pub(super) fn secret_from_row(r: &PgRow) -> Result<SecretRecord> {
    let ts = |c: &str| opt_ts(r, c);
    Ok(SecretRecord {
        id: r.try_get("id").map_err(db_err)?,
        name: r.try_get("name").map_err(db_err)?,
        arn: r.try_get("arn").map_err(db_err)?,
        description: r.try_get("description").map_err(db_err)?,
        kms_key_id: r.try_get("kms_key_id").map_err(db_err)?,
        created_at: Timestamp(r.try_get("created_at").map_err(db_err)?),
        changed_at: Timestamp(r.try_get("changed_at").map_err(db_err)?),
        accessed_at: ts("accessed_at")?,
        deleted_at: ts("deleted_at")?,
        purge_at: ts("purge_at")?,
        resource_policy: r.try_get("resource_policy").map_err(db_err)?,
        tags: Vec::new(),
        tagged: r.try_get::<i64, _>("tagged").map_err(db_err)? != 0,
        rotation: RotationConfig {
            enabled: r.try_get::<i64, _>("rotation_enabled").map_err(db_err)? != 0,
            function_arn: r.try_get("rotation_function").map_err(db_err)?,
            after_days: r.try_get("rotation_after_days").map_err(db_err)?,
            schedule_expression: r.try_get("rotation_schedule").map_err(db_err)?,
            duration: r.try_get("rotation_duration").map_err(db_err)?,
            last_rotated_at: ts("last_rotated_at")?,
            next_rotation_at: ts("next_rotation_at")?,
            next_rotation_end: ts("next_rotation_end")?,
        },
        run: RotationRun {
            phase: RotationPhase::parse(&r.try_get::<String, _>("rotation_state").map_err(db_err)?)
                .ok_or_else(|| Error::internal("unknown rotation_state in the database"))?,
            token: r.try_get("rotation_token").map_err(db_err)?,
            step: r
                .try_get::<Option<String>, _>("rotation_step")
                .map_err(db_err)?
                .and_then(|s| RotationStep::parse(&s)),
            attempt: r.try_get("rotation_attempt").map_err(db_err)?,
            last_error: r.try_get("rotation_error").map_err(db_err)?,
            last_attempt_at: ts("rotation_attempted_at")?,
            resume_at: ts("rotation_resume_at")?,
            window_end: ts("rotation_window_end")?,
        },
    })
}

pub(super) fn sealed_from_row(r: &PgRow) -> Result<Option<SealedValue>> {
    let kind: Option<String> = r.try_get("value_kind").map_err(db_err)?;
    let Some(kind) = kind else { return Ok(None) };
    Ok(Some(SealedValue {
        kind: if kind == "binary" {
            ValueKind::Binary
        } else {
            ValueKind::String
        },
        ciphertext: r.try_get("ciphertext").map_err(db_err)?,
        wrapped_key: r.try_get("wrapped_key").map_err(db_err)?,
        key_name: r.try_get("key_name").map_err(db_err)?,
        key_version: r.try_get("key_version").map_err(db_err)?,
    }))
}

/// A sealed value kept in `ciphertext, wrapped_key, key_name, key_version` columns (nullable).
pub(super) fn sealed_cols(r: &PgRow) -> Result<Option<SealedValue>> {
    let ciphertext: Option<Vec<u8>> = r.try_get("ciphertext").map_err(db_err)?;
    let Some(ciphertext) = ciphertext else {
        return Ok(None);
    };
    Ok(Some(SealedValue {
        kind: ValueKind::String,
        ciphertext,
        wrapped_key: r.try_get("wrapped_key").map_err(db_err)?,
        key_name: r.try_get("key_name").map_err(db_err)?,
        key_version: r.try_get("key_version").map_err(db_err)?,
    }))
}

pub(super) fn version_from_row(r: &PgRow) -> Result<VersionMeta> {
    Ok(VersionMeta {
        version_id: r.try_get("version_id").map_err(db_err)?,
        created_at: Timestamp(r.try_get("created_at").map_err(db_err)?),
        accessed_at: opt_ts(r, "accessed_at")?,
        has_value: r
            .try_get::<Option<String>, _>("value_kind")
            .map_err(db_err)?
            .is_some(),
    })
}

pub(super) fn function_from_row(r: &PgRow) -> Result<RotationFunctionRecord> {
    Ok(RotationFunctionRecord {
        name: r.try_get("name").map_err(db_err)?,
        kind: r.try_get("kind").map_err(db_err)?,
        config: r.try_get("config").map_err(db_err)?,
        sealed_secret: sealed_cols(r)?,
        created_at: Timestamp(r.try_get("created_at").map_err(db_err)?),
    })
}

pub(super) const ACCESS_KEY_SELECT: &str = "SELECT k.access_key_id, k.user_name, u.arn, u.user_id, k.ciphertext, k.wrapped_key, \
     k.key_name, k.key_version, k.status, k.created_at, k.expires_at, k.scope_secret_id, k.last_used_at \
     FROM access_keys k JOIN users u ON u.name = k.user_name";

pub(super) fn access_key_from_row(r: &PgRow) -> Result<AccessKeyRecord> {
    let ts = |c: &str| opt_ts(r, c);
    Ok(AccessKeyRecord {
        access_key_id: r.try_get("access_key_id").map_err(db_err)?,
        user_name: r.try_get("user_name").map_err(db_err)?,
        user_arn: r.try_get("arn").map_err(db_err)?,
        user_id: r.try_get("user_id").map_err(db_err)?,
        sealed_secret: sealed_cols(r)?
            .ok_or_else(|| Error::internal("access key without a sealed secret"))?,
        active: r.try_get::<String, _>("status").map_err(db_err)? == "Active",
        created_at: Timestamp(r.try_get("created_at").map_err(db_err)?),
        expires_at: ts("expires_at")?,
        scope_secret_id: r.try_get("scope_secret_id").map_err(db_err)?,
        last_used_at: ts("last_used_at")?,
    })
}

pub(super) fn user_from_row(r: &PgRow) -> Result<UserRecord> {
    let tags: String = r.try_get("tags").map_err(db_err)?;
    let pairs: Vec<(String, String)> = serde_json::from_str(&tags)
        .map_err(|e| Error::internal(format!("stored user tags: {e}")))?;
    Ok(UserRecord {
        name: r.try_get("name").map_err(db_err)?,
        arn: r.try_get("arn").map_err(db_err)?,
        user_id: r.try_get("user_id").map_err(db_err)?,
        created_at: Timestamp(r.try_get("created_at").map_err(db_err)?),
        tags: pairs
            .into_iter()
            .map(|(key, value)| Tag { key, value })
            .collect(),
    })
}

pub(super) const AUDIT_COLUMNS: &str = "seq, time, request_id, kind, principal, access_key_id, action, resource, \
     version_id, version_stage, source_ip, user_agent, decision, outcome, error_code, duration_us, mac, node";

pub(super) fn audit_from_row(r: &PgRow) -> Result<AuditRecord> {
    let s = |c: &str| -> Result<String> { r.try_get(c).map_err(db_err) };
    let o = |c: &str| -> Result<Option<String>> { r.try_get(c).map_err(db_err) };
    Ok(AuditRecord {
        seq: r.try_get("seq").map_err(db_err)?,
        time: r.try_get("time").map_err(db_err)?,
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
        duration_us: r.try_get("duration_us").map_err(db_err)?,
        mac: s("mac")?,
        node: s("node")?,
    })
}

/// `s` with each NUL replaced by U+FFFD. For text kura records rather than validates (an
/// audited request's raw fields, a rotation function's error output): PostgreSQL text cannot
/// hold NUL, and refusing to record would lose the record, not the NUL.
pub(super) fn without_nul(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}").into()
    } else {
        s.into()
    }
}

/// Whether a lookup key holds a NUL: nothing stored does (PostgreSQL text cannot), so the
/// lookup finds nothing, as on SQLite, without asking the database (which would refuse it).
pub(super) fn has_nul(keys: &[&str]) -> bool {
    keys.iter().any(|k| k.contains('\0'))
}

pub(super) fn without_nul_record(r: &mut AuditRecord) {
    for field in [
        &mut r.request_id,
        &mut r.kind,
        &mut r.principal,
        &mut r.access_key_id,
        &mut r.action,
        &mut r.resource,
        &mut r.decision,
        &mut r.outcome,
    ] {
        *field = without_nul(field).into_owned();
    }
    for field in [
        &mut r.version_id,
        &mut r.version_stage,
        &mut r.source_ip,
        &mut r.user_agent,
        &mut r.error_code,
    ]
    .into_iter()
    .flatten()
    {
        *field = without_nul(field).into_owned();
    }
}
