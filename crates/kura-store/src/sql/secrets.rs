//! Secrets, their versions, labels, tags and words; ListSecrets' SQL.

use std::collections::{BTreeSet, HashSet};

use kura_core::filter;
use kura_core::labels::Stages;
use kura_core::model::{NewVersion, SecretRecord, SecretState, Tag, ValueKind, VersionMeta};
use kura_core::names::SecretRef;
use kura_core::{Error, Result, Timestamp};

use super::{Args, Conn, built, recordable, stmt, unstorable};
use crate::audit::Changed;
use crate::rows::*;
use crate::{
    Cursor, CursorValue, FilterKey, ListFilter, ListPage, ListQuery, Mutation, SortKey,
    StoredVersion, VersionSelector,
};

pub(crate) fn kind_str(k: ValueKind) -> &'static str {
    match k {
        ValueKind::String => "string",
        ValueKind::Binary => "binary",
    }
}

pub(crate) fn text_of(s: &SecretRecord) -> filter::SecretText<'_> {
    filter::SecretText {
        name: &s.name,
        description: s.description.as_deref(),
        tags: &s.tags,
        expires_at: s.expires_at,
    }
}

fn tag_from_row(r: &impl Columns) -> Result<Tag> {
    Ok(Tag {
        key: r.col("key")?,
        value: r.col("value")?,
    })
}

pub(crate) async fn load_tags<C: Conn>(conn: &mut C, secret_id: i64) -> Result<Vec<Tag>> {
    stmt("SELECT key, value FROM tags WHERE secret_id = $1 ORDER BY key")
        .bind(secret_id)
        .fetch_all(conn)
        .await?
        .iter()
        .map(tag_from_row)
        .collect()
}

pub(crate) async fn load_stages<C: Conn>(conn: &mut C, secret_id: i64) -> Result<Stages> {
    stmt("SELECT stage, version_id FROM version_stages WHERE secret_id = $1")
        .bind(secret_id)
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| Ok((r.col("stage")?, r.col("version_id")?)))
        .collect()
}

pub(crate) async fn load_versions<C: Conn>(
    conn: &mut C,
    secret_id: i64,
) -> Result<Vec<VersionMeta>> {
    let sql = format!(
        "SELECT version_id, created_at, accessed_at, value_kind FROM secret_versions \
         WHERE secret_id = $1 ORDER BY created_at, {}",
        C::INSERTION_ORDER
    );
    let mut args = Args::default();
    args.push(secret_id);
    built(sql, args)
        .fetch_all(conn)
        .await?
        .iter()
        .map(version_from_row)
        .collect()
}

/// The secret's row (and tags); `lock`: the caller's transaction is about to change the
/// secret, so no other writer may change it, its versions, labels or tags until it ends
/// (every writer of those reads the secret's row this way first).
pub(crate) async fn load_secret<C: Conn>(
    conn: &mut C,
    secret_id: i64,
    lock: bool,
) -> Result<Option<SecretRecord>> {
    let sql = format!(
        "SELECT {SECRET_COLUMNS}, {tags} AS tags_json FROM secrets s WHERE id = $1{lock}",
        tags = C::TAGS_JSON,
        lock = if lock { C::FOR_UPDATE } else { "" }
    );
    let mut args = Args::default();
    args.push(secret_id);
    built(sql, args)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| secret_with_tags(&row))
        .transpose()
}

/// Everything a change starts from, the secret's row locked: its tags, labels and
/// versions, in one statement (a write holds the writer, or a row lock, while it waits for
/// each).
async fn load_for_change<C: Conn>(
    tx: &mut C,
    secret_id: i64,
) -> Result<Option<(SecretRecord, Stages, Vec<VersionMeta>)>> {
    let sql = format!(
        "SELECT {SECRET_COLUMNS}, {tags} AS tags_json, {stages} AS stages_json, \
         {versions} AS versions_json FROM secrets s WHERE id = $1{lock}",
        tags = C::TAGS_JSON,
        stages = C::STAGES_JSON,
        versions = C::VERSIONS_JSON,
        lock = C::FOR_UPDATE,
    );
    let mut args = Args::default();
    args.push(secret_id);
    let Some(row) = built(sql, args).fetch_optional(&mut *tx).await? else {
        return Ok(None);
    };
    let stages = json_pairs(&row, "stages_json")?.into_iter().collect();
    let versions = match row.col::<Option<String>>("versions_json")? {
        None => Vec::new(),
        Some(json) => serde_json::from_str::<Vec<(String, i64, Option<i64>, i64)>>(&json)
            .map_err(|e| Error::internal(format!("reading a secret's versions: {e}")))?
            .into_iter()
            .map(
                |(version_id, created_at, accessed_at, has_value)| VersionMeta {
                    version_id,
                    created_at: Timestamp(created_at),
                    accessed_at: accessed_at.map(Timestamp),
                    has_value: has_value != 0,
                },
            )
            .collect(),
    };
    Ok(Some((secret_with_tags(&row)?, stages, versions)))
}

async fn write_version<C: Conn>(conn: &mut C, secret_id: i64, v: &NewVersion) -> Result<()> {
    let value = v.value.as_ref();
    // A placeholder row keeps its id and creation date when its value arrives.
    stmt(
        "INSERT INTO secret_versions \
         (secret_id, version_id, created_at, value_kind, ciphertext, wrapped_key, key_name, key_version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (secret_id, version_id) DO UPDATE SET value_kind = excluded.value_kind, \
         ciphertext = excluded.ciphertext, wrapped_key = excluded.wrapped_key, \
         key_name = excluded.key_name, key_version = excluded.key_version \
         WHERE secret_versions.ciphertext IS NULL",
    )
    .bind(secret_id)
    .bind(&v.version_id)
    .bind(v.created_at)
    .bind(value.map(|s| kind_str(s.kind)))
    .bind(value.map(|s| s.ciphertext.as_slice()))
    .bind(value.map(|s| s.wrapped_key.as_slice()))
    .bind(value.map(|s| s.key_name.as_str()))
    .bind(value.map(|s| s.key_version))
    .execute(conn)
    .await?;
    Ok(())
}

async fn write_stages<C: Conn>(conn: &mut C, secret_id: i64, stages: &Stages) -> Result<()> {
    insert_pairs(
        conn,
        "version_stages (secret_id, stage, version_id)",
        secret_id,
        stages
            .iter()
            .map(|(stage, version)| (stage.as_str(), version.as_str())),
    )
    .await
}

async fn write_tags<C: Conn>(conn: &mut C, secret_id: i64, tags: &[Tag]) -> Result<()> {
    insert_pairs(
        conn,
        "tags (secret_id, key, value)",
        secret_id,
        tags.iter().map(|t| (t.key.as_str(), t.value.as_str())),
    )
    .await
}

/// Inserts `(secret_id, a, b)` rows into `table` (its name and columns), all in one
/// statement: a write holds the writer while it waits for each statement. A secret has at
/// most 50 tags and 20 labels, far below the parameter limits.
async fn insert_pairs<'a, C: Conn>(
    conn: &mut C,
    table: &str,
    secret_id: i64,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<()> {
    let mut args = Args::default();
    let rows: Vec<String> = pairs
        .map(|(a, b)| {
            format!(
                "({}, {}, {})",
                args.push(secret_id),
                args.push(a),
                args.push(b)
            )
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!("INSERT INTO {table} VALUES {}", rows.join(", "));
    built(sql, args).execute(conn).await?;
    Ok(())
}

/// Rewrites the words a secret is found by (after its description or tags changed).
pub(crate) async fn write_words<C: Conn>(
    conn: &mut C,
    secret_id: i64,
    text: &filter::SecretText<'_>,
) -> Result<()> {
    stmt("DELETE FROM secret_words WHERE secret_id = $1")
        .bind(secret_id)
        .execute(conn)
        .await?;
    let words: BTreeSet<(i64, String)> = filter::indexed_words(text);
    if words.is_empty() {
        return Ok(());
    }
    conn.insert_words(secret_id, words.into_iter().collect())
        .await
}

/// Inserts a secret and what it starts with; returns its id and what changed.
pub(crate) async fn create_secret<C: Conn>(
    tx: &mut C,
    s: &SecretRecord,
    first: Option<&NewVersion>,
    stages: &Stages,
) -> Result<(i64, Changed)> {
    let id: i64 = stmt(
        "INSERT INTO secrets (name, arn, description, kms_key_id, created_at, changed_at, tagged) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(&s.name)
    .bind(&s.arn)
    .bind(&s.description)
    .bind(&s.kms_key_id)
    .bind(s.created_at)
    .bind(s.changed_at)
    .bind((s.tagged || !s.tags.is_empty()) as i64)
    .taken(Error::exists(format!(
        "The operation failed because the secret {} already exists.",
        s.name
    )))
    .scalar(tx)
    .await?;
    if let Some(v) = first {
        write_version(tx, id, v).await?;
    }
    write_stages(tx, id, stages).await?;
    write_tags(tx, id, &s.tags).await?;
    write_words(tx, id, &text_of(s)).await?;
    let changed = Changed {
        arn: Some(s.arn.clone()),
        version_id: first.map(|v| v.version_id.clone()),
    };
    Ok((id, changed))
}

/// The version a `modify` wrote (its one new version) or began rotating, for its audit record.
fn changed_version(before_run_token: &Option<String>, state: &SecretState) -> Option<String> {
    match state.new_versions.as_slice() {
        [one] => Some(one.version_id.clone()),
        _ if state.secret.run.token != *before_run_token => state.secret.run.token.clone(),
        _ => None,
    }
}

/// Loads the secret's whole state (locking its row), lets `f` change it and writes back what
/// changed, in the caller's transaction.
pub(crate) async fn modify<C: Conn>(
    tx: &mut C,
    secret_id: i64,
    f: &mut Mutation<'_>,
) -> Result<(SecretState, Changed)> {
    let (secret, stages, versions) = load_for_change(tx, secret_id)
        .await?
        .ok_or_else(Error::secret_not_found)?;
    let before_ids: HashSet<String> = versions.iter().map(|v| v.version_id.clone()).collect();
    let before_tags = secret.tags.clone();
    let before_description = secret.description.clone();
    let before_run_token = secret.run.token.clone();
    let before_stages = stages.clone();
    let mut state = SecretState {
        secret,
        versions,
        stages,
        new_versions: Vec::new(),
        events: Vec::new(),
    };
    f(&mut state)?;

    let s = &state.secret;
    stmt(
        "UPDATE secrets SET description = $1, kms_key_id = $2, changed_at = $3, accessed_at = $4, \
         deleted_at = $5, purge_at = $6, resource_policy = $7, rotation_enabled = $8, \
         rotation_function = $9, rotation_after_days = $10, rotation_schedule = $11, \
         rotation_duration = $12, last_rotated_at = $13, next_rotation_at = $14, \
         next_rotation_end = $15, rotation_state = $16, rotation_token = $17, rotation_step = $18, \
         rotation_attempt = $19, rotation_error = $20, rotation_attempted_at = $21, \
         rotation_resume_at = $22, rotation_window_end = $23, tagged = $24, expires_at = $25, \
         expiry_notice_at = $26 WHERE id = $27",
    )
    .bind(&s.description)
    .bind(&s.kms_key_id)
    .bind(s.changed_at)
    .bind(s.accessed_at)
    .bind(s.deleted_at)
    .bind(s.purge_at)
    .bind(&s.resource_policy)
    .bind(s.rotation.enabled as i64)
    .bind(&s.rotation.function_arn)
    .bind(s.rotation.after_days)
    .bind(&s.rotation.schedule_expression)
    .bind(&s.rotation.duration)
    .bind(s.rotation.last_rotated_at)
    .bind(s.rotation.next_rotation_at)
    .bind(s.rotation.next_rotation_end)
    .bind(s.run.phase.as_str())
    .bind(&s.run.token)
    .bind(s.run.step.map(|x| x.as_str()))
    .bind(s.run.attempt)
    .bind(s.run.last_error.as_deref().map(recordable::<C>))
    .bind(s.run.last_attempt_at)
    .bind(s.run.resume_at)
    .bind(s.run.window_end)
    .bind((s.tagged || !s.tags.is_empty()) as i64)
    .bind(s.expires_at)
    .bind(s.expiry_notice_at)
    .bind(secret_id)
    .execute(tx)
    .await?;
    if s.tags != before_tags {
        stmt("DELETE FROM tags WHERE secret_id = $1")
            .bind(secret_id)
            .execute(tx)
            .await?;
        write_tags(tx, secret_id, &s.tags).await?;
    }
    if s.tags != before_tags || s.description != before_description {
        write_words(tx, secret_id, &text_of(s)).await?;
    }
    let stages_changed = state.stages != before_stages || !state.new_versions.is_empty();
    if stages_changed {
        stmt("DELETE FROM version_stages WHERE secret_id = $1")
            .bind(secret_id)
            .execute(tx)
            .await?;
    }
    for v in &state.new_versions {
        write_version(tx, secret_id, v).await?;
    }
    // Versions the mutation dropped from the list are pruned.
    let kept: HashSet<&str> = state
        .versions
        .iter()
        .map(|v| v.version_id.as_str())
        .chain(state.new_versions.iter().map(|v| v.version_id.as_str()))
        .collect();
    for gone in before_ids.iter().filter(|id| !kept.contains(id.as_str())) {
        stmt("DELETE FROM secret_versions WHERE secret_id = $1 AND version_id = $2")
            .bind(secret_id)
            .bind(gone)
            .execute(tx)
            .await?;
    }
    if stages_changed {
        write_stages(tx, secret_id, &state.stages).await?;
    }
    for e in &state.events {
        tx.queue_event(&e.event, &e.body, e.at).await?;
    }
    let changed = Changed {
        arn: Some(state.secret.arn.clone()),
        version_id: changed_version(&before_run_token, &state),
    };
    Ok((state, changed))
}

/// Destroys a secret with everything it has, in the caller's transaction.
pub(crate) async fn delete_secret<C: Conn>(tx: &mut C, secret_id: i64) -> Result<Changed> {
    let sql = format!("SELECT arn FROM secrets WHERE id = $1{}", C::FOR_UPDATE);
    let mut args = Args::default();
    args.push(secret_id);
    let arn: Option<String> = built(sql, args).optional_scalar(tx).await?;
    // Children first: labels reference versions, versions and tags reference the secret.
    for sql in [
        "DELETE FROM version_stages WHERE secret_id = $1",
        "DELETE FROM secret_versions WHERE secret_id = $1",
        "DELETE FROM tags WHERE secret_id = $1",
        "DELETE FROM secret_words WHERE secret_id = $1",
        "DELETE FROM secrets WHERE id = $1",
    ] {
        stmt(sql).bind(secret_id).execute(tx).await?;
    }
    Ok(Changed {
        arn,
        version_id: None,
    })
}

pub(crate) async fn find_secret<C: Conn>(
    conn: &mut C,
    secret: &SecretRef,
) -> Result<Option<SecretRecord>> {
    let keys = match secret {
        SecretRef::Name(name) => [name.as_str(), ""],
        SecretRef::Arn { arn, name_part } => [arn.as_str(), name_part.as_str()],
    };
    if unstorable::<C>(&keys) {
        return Ok(None);
    }
    // The secret's tags come in the same statement (one round trip, not two).
    let by = |cond: &str| {
        format!(
            "SELECT {SECRET_COLUMNS}, {tags} AS tags_json FROM secrets s WHERE {cond}",
            tags = C::TAGS_JSON
        )
    };
    let row = match secret {
        SecretRef::Name(name) => {
            let mut args = Args::default();
            let sql = by(&format!("name = {}", args.push(name)));
            built(sql, args).fetch_optional(conn).await?
        }
        SecretRef::Arn { arn, name_part } => {
            let mut args = Args::default();
            let sql = by(&format!("arn = {}", args.push(arn)));
            match built(sql, args).fetch_optional(conn).await? {
                Some(row) => Some(row),
                // An ARN without its suffix: the name, if its secret's ARN has the same prefix.
                None => {
                    let mut args = Args::default();
                    let name = args.push(name_part);
                    let prefix = args.push(format!("{arn}-"));
                    let sql = by(&format!(
                        "name = {name} AND substr(arn, 1, length({prefix})) = {prefix}"
                    ));
                    built(sql, args).fetch_optional(conn).await?
                }
            }
        }
    };
    let Some(row) = row else { return Ok(None) };
    secret_with_tags(&row).map(Some)
}

/// A secret from a row holding its columns and its tags as `tags_json`.
fn secret_with_tags(r: &impl Columns) -> Result<SecretRecord> {
    let mut s = secret_from_row(r)?;
    s.tags = json_pairs(r, "tags_json")?
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect();
    Ok(s)
}

pub(crate) async fn read_version<C: Conn>(
    conn: &mut C,
    secret_id: i64,
    which: VersionSelector<'_>,
) -> Result<Option<StoredVersion>> {
    let (VersionSelector::Id(key) | VersionSelector::Stage(key)) = which;
    if unstorable::<C>(&[key]) {
        return Ok(None);
    }
    let row = match which {
        VersionSelector::Id(id) => stmt(
            "SELECT v.version_id, v.created_at, v.accessed_at, v.value_kind, v.ciphertext, \
             v.wrapped_key, v.key_name, v.key_version FROM secret_versions v \
             WHERE v.secret_id = $1 AND v.version_id = $2",
        )
        .bind(secret_id)
        .bind(id),
        VersionSelector::Stage(stage) => stmt(
            "SELECT v.version_id, v.created_at, v.accessed_at, v.value_kind, v.ciphertext, \
             v.wrapped_key, v.key_name, v.key_version FROM version_stages s JOIN secret_versions v \
             ON v.secret_id = s.secret_id AND v.version_id = s.version_id \
             WHERE s.secret_id = $1 AND s.stage = $2",
        )
        .bind(secret_id)
        .bind(stage),
    }
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let meta = version_from_row(&row)?;
    let value = sealed_from_row(&row)?;
    let mut args = Args::default();
    let sql = format!(
        "SELECT stage FROM version_stages WHERE secret_id = {} AND version_id = {} \
         ORDER BY stage{}",
        args.push(secret_id),
        args.push(meta.version_id.as_str()),
        C::CODE_POINT_ORDER
    );
    let stages = built(sql, args).scalars(conn).await?;
    Ok(Some(StoredVersion {
        meta,
        value,
        stages,
    }))
}

pub(crate) async fn due_for_purge<C: Conn>(
    conn: &mut C,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<i64>> {
    stmt(
        "SELECT id FROM secrets WHERE purge_at IS NOT NULL AND purge_at <= $1 \
         ORDER BY purge_at LIMIT $2",
    )
    .bind(now)
    .bind(limit as i64)
    .scalars(conn)
    .await
}

/// Secrets (not pending deletion) whose next expiry notice is due at `now`, soonest first.
pub(crate) async fn expiry_notices_due<C: Conn>(
    conn: &mut C,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<i64>> {
    stmt(
        "SELECT id FROM secrets WHERE expiry_notice_at IS NOT NULL AND expiry_notice_at <= $1 \
         AND deleted_at IS NULL ORDER BY expiry_notice_at LIMIT $2",
    )
    .bind(now)
    .bind(limit as i64)
    .scalars(conn)
    .await
}

/// Records a read at day granularity. Conditional, so concurrent readers on the same day
/// write at most once each.
pub(crate) async fn touch_accessed<C: Conn>(
    tx: &mut C,
    secret_id: i64,
    version_id: &str,
    day: Timestamp,
) -> Result<()> {
    stmt(
        "UPDATE secrets SET accessed_at = $1 WHERE id = $2 \
         AND (accessed_at IS NULL OR accessed_at < $1)",
    )
    .bind(day)
    .bind(secret_id)
    .execute(tx)
    .await?;
    stmt(
        "UPDATE secret_versions SET accessed_at = $1 WHERE secret_id = $2 AND version_id = $3 \
         AND (accessed_at IS NULL OR accessed_at < $1)",
    )
    .bind(day)
    .bind(secret_id)
    .bind(version_id)
    .execute(tx)
    .await?;
    Ok(())
}

fn sort_column(k: SortKey) -> &'static str {
    match k {
        SortKey::Created => "created_at",
        SortKey::LastAccessed => "COALESCE(accessed_at, 0)",
        SortKey::LastChanged => "changed_at",
        SortKey::Name => "name",
    }
}

/// A listed secret's value of [`sort_column`]: where a page that ends with it stops.
fn sort_value(k: SortKey, s: &SecretRecord) -> CursorValue {
    match k {
        SortKey::Created => CursorValue::Int(s.created_at.0),
        SortKey::LastAccessed => CursorValue::Int(s.accessed_at.map_or(0, |t| t.0)),
        SortKey::LastChanged => CursorValue::Int(s.changed_at.0),
        SortKey::Name => CursorValue::Text(s.name.clone()),
    }
}

/// The smallest string above every string that starts with `prefix` (in code point order,
/// which is SQLite's byte order for UTF-8): its last character raised by one, after dropping
/// trailing `char::MAX`es. `None` when no string is above them all (`prefix` is empty or
/// all `char::MAX`).
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 {
            0xD7FF => Some('\u{E000}'),
            n => char::from_u32(n + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `col` starts with `prefix`, as an index range (the columns compare in code point order).
fn prefix_sql<C: Conn>(col: &str, prefix: &str, args: &mut Args<'_>) -> String {
    // A prefix the backend cannot store starts nothing stored.
    if unstorable::<C>(&[prefix]) {
        return "FALSE".into();
    }
    let lower = args.push(prefix.to_string());
    match prefix_upper_bound(prefix) {
        Some(upper) => format!("({col} >= {lower} AND {col} < {})", args.push(upper)),
        None => format!("{col} >= {lower}"),
    }
}

/// Every word of `term` begins a stored word of the secret (in the description only, when
/// `field` is given); nothing when `term` has no words. Mirrors kura_core::filter.
fn words_sql<C: Conn>(term: &str, field: Option<i64>, args: &mut Args<'_>) -> String {
    let query = filter::words(term);
    if query.is_empty() {
        return "FALSE".into();
    }
    let per_word: Vec<String> = query
        .into_iter()
        .map(|w| {
            let field_sql = match field {
                Some(f) => format!("w.field = {} AND ", args.push(f)),
                None => String::new(),
            };
            let range = prefix_sql::<C>("w.word", &w, &mut *args);
            format!(
                "EXISTS (SELECT 1 FROM secret_words w WHERE w.secret_id = s.id AND {field_sql}{range})"
            )
        })
        .collect();
    format!("({})", per_word.join(" AND "))
}

/// SQL for one filter value without its `!`, its values pushed in the order of the text.
fn term_sql<C: Conn>(key: FilterKey, term: &str, args: &mut Args<'_>) -> String {
    match key {
        FilterKey::Name => prefix_sql::<C>("s.name", term, args),
        FilterKey::TagKey => format!(
            "EXISTS (SELECT 1 FROM tags t WHERE t.secret_id = s.id AND {})",
            prefix_sql::<C>("t.key", term, args)
        ),
        FilterKey::TagValue => format!(
            "EXISTS (SELECT 1 FROM tags t WHERE t.secret_id = s.id AND {})",
            prefix_sql::<C>("t.value", term, args)
        ),
        FilterKey::Description => words_sql::<C>(term, Some(filter::IN_DESCRIPTION), args),
        FilterKey::All => words_sql::<C>(term, None, args),
        // kura neither replicates nor hosts service-owned secrets: these attributes are unset.
        FilterKey::PrimaryRegion | FilterKey::OwningService => "FALSE".into(),
        // The service refuses a value that is not a time; here it matches nothing.
        FilterKey::ExpiresBefore => match kura_core::expiry::parse_time(term) {
            Some(t) => format!(
                "(s.expires_at IS NOT NULL AND s.expires_at < {})",
                args.push(t.0)
            ),
            None => "FALSE".into(),
        },
    }
}

/// One filter: any of its values (each negated by a leading `!`).
fn filter_clause<C: Conn>(f: &ListFilter, args: &mut Args<'_>) -> String {
    if f.values.is_empty() {
        return "FALSE".into();
    }
    let any: Vec<String> = f
        .values
        .iter()
        .map(|v| match v.strip_prefix('!') {
            Some(term) => format!("NOT {}", term_sql::<C>(f.key, term, args)),
            None => term_sql::<C>(f.key, v, args),
        })
        .collect();
    format!("({})", any.join(" OR "))
}

/// `[a, b]` pairs from a page row's JSON column ([`Conn::TAGS_JSON`], [`Conn::STAGES_JSON`]).
fn json_pairs(r: &impl Columns, column: &str) -> Result<Vec<(String, String)>> {
    match r.col::<Option<String>>(column)? {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| Error::internal(format!("reading column {column}: {e}"))),
    }
}

pub(crate) async fn list_secrets<C: Conn>(conn: &mut C, q: &ListQuery) -> Result<ListPage> {
    let col = sort_column(q.sort);
    let mut args = Args::default();
    let mut conds: Vec<String> = Vec::new();
    if !q.include_deleted {
        conds.push("s.deleted_at IS NULL".into());
    }
    for f in &q.filters {
        conds.push(filter_clause::<C>(f, &mut args));
    }
    let (cmp, dir) = if q.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(Cursor { value, id }) = &q.after {
        let (after, same) = match value {
            CursorValue::Int(i) => (args.push(*i), args.push(*i)),
            CursorValue::Text(t) => (args.push(t), args.push(t)),
        };
        let id = args.push(*id);
        conds.push(format!(
            "({col} {cmp} {after} OR ({col} = {same} AND s.id {cmp} {id}))"
        ));
    }
    let where_sql = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    let cols: String = SECRET_COLUMNS
        .split(", ")
        .map(|c| format!("s.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let limit = args.push(q.limit as i64 + 1);
    // One statement per page: the page's rows are chosen (and sorted) first, then each
    // brings its tags and labels, so they are gathered for the rows of the page only, even
    // when the sort has to read every match.
    let sql = format!(
        "SELECT {cols}, {tags} AS tags_json, {stages} AS stages_json FROM \
         (SELECT {cols}, {col} AS sort_value FROM secrets s {where_sql} \
         ORDER BY {col} {dir}, s.id {dir} LIMIT {limit}) s \
         ORDER BY s.sort_value {dir}, s.id {dir}",
        tags = C::TAGS_JSON,
        stages = C::STAGES_JSON,
    );
    let rows = built(sql, args).fetch_all(conn).await?;
    let more = rows.len() > q.limit;
    let page = &rows[..rows.len().min(q.limit)];
    let mut secrets = Vec::with_capacity(page.len());
    for r in page {
        let mut s = secret_from_row(r)?;
        s.tags = json_pairs(r, "tags_json")?
            .into_iter()
            .map(|(key, value)| Tag { key, value })
            .collect();
        let stages: Stages = json_pairs(r, "stages_json")?.into_iter().collect();
        secrets.push((s, stages));
    }
    let next = secrets.last().filter(|_| more).map(|(s, _)| Cursor {
        value: sort_value(q.sort, s),
        id: s.id,
    });
    Ok(ListPage { secrets, next })
}
