//! The PostgreSQL backend, for several kura nodes on one database.
//!
//! Same contract as [`SqliteStore`](crate::SqliteStore), different means: SQLite has one writer
//! at a time, PostgreSQL has many, on many nodes. So write transactions (READ COMMITTED) lock
//! the rows they read before changing them (`SELECT … FOR UPDATE` on the secret in `modify`, on
//! the user when counting its keys), single-row bookkeeping is one conditional UPDATE, and the
//! audit chain's tail is read and extended under one database-wide advisory lock. Deadlocks and
//! serialization failures are retried a few times; an outage, a full pool or conflicts that
//! persist answer [`Error::unavailable`] at once instead of hanging.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use kura_core::filter;
use kura_core::labels::Stages;
use kura_core::model::{
    NewVersion, RotationConfig, RotationPhase, RotationRun, RotationStep, SealedValue,
    SecretRecord, SecretState, Tag, ValueKind, VersionMeta,
};
use kura_core::names::SecretRef;
use kura_core::{Error, Result, Timestamp};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Row};

use crate::audit::{self, AuditChain, Changed};
use crate::prelude::*;
use crate::sqlite::{Bind, changed_version, kind_str, prefix_upper_bound, sort_column, text_of};
use crate::{
    AccessKeyRecord, AuditQuery, AuditRecord, Cursor, CursorValue, FilterKey, ListFilter, ListPage,
    ListQuery, Mutation, NotificationTargetRecord, OutboxItem, RotationFunctionRecord, SortKey,
    StoredVersion, UserRecord, VersionSelector,
};

/// Versioned migrations, applied in order. PostgreSQL starts from the SQLite schema's final
/// shape, so its numbering is its own.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/postgres/0001_initial.sql"))];

/// Advisory lock keys (arbitrary constants, "kura" in ASCII plus a suffix), so they do not
/// collide with another application's locks on a shared server.
const MIGRATION_LOCK: i64 = 0x6b75_7261_0001;
const AUDIT_LOCK: i64 = 0x6b75_7261_0002;

/// Tries of a transaction that hits a deadlock or serialization failure before giving up.
const MAX_TRIES: u32 = 5;

/// What a conflict's error detail starts with, so [`retry`] can tell it from other failures.
const CONFLICT: &str = "transaction conflict";

/// Pool limits: enough connections for a node's concurrent requests without exhausting a
/// shared server's `max_connections` when several nodes run; an acquire that waits longer
/// than this fails (the database is down or saturated) instead of hanging the request.
const MAX_CONNECTIONS: u32 = 16;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// `?` placeholders numbered `$1, $2, …` in order, so SQL reads like the SQLite backend's.
/// Only for SQL written here (no `?` inside literals).
fn pg(sql: &str) -> AssertSqlSafe<String> {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    AssertSqlSafe(out)
}

fn db_err(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(d) => {
            let code = d.code().unwrap_or_default();
            // 40001 serialization_failure, 40P01 deadlock_detected: retried by `retry`.
            if code == "40001" || code == "40P01" {
                return Error::unavailable(format!("{CONFLICT}: {e}"));
            }
            // Class 08: connection exceptions; 57P0x: the server is shutting down or starting;
            // 53300: too many connections.
            if code.starts_with("08") || code.starts_with("57P0") || code == "53300" {
                return Error::unavailable(format!("database: {e}"));
            }
            // 22021: a NUL character, which PostgreSQL text cannot hold (SQLite can). Input
            // validation keeps it out of stored fields; a lookup by such a name is the
            // caller's mistake, not a server fault.
            if code == "22021" {
                return Error::invalid_parameter(
                    "A parameter contains a NUL character, which kura does not accept.",
                );
            }
            if code == "53100" {
                return Error::disk_full(format!("database: {e}"));
            }
            Error::internal(format!("database: {e}"))
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => Error::unavailable(format!("database: {e}")),
        _ => Error::internal(format!("database: {e}")),
    }
}

fn is_conflict(e: &Error) -> bool {
    e.is_unavailable() && e.detail.as_deref().is_some_and(|d| d.starts_with(CONFLICT))
}

/// A short random pause before trying a conflicting transaction again, growing per try, so
/// the transactions that collided do not collide again in lockstep.
async fn backoff(tries: u32) {
    let ms = rand::random_range(1..=(5u64 << tries));
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Runs a transaction (`$op` evaluates to a fresh future each try) until it does not end in
/// a conflict, at most [`MAX_TRIES`] times; the last conflict is returned as is (already an
/// "unavailable; retry" error).
macro_rules! retry {
    ($op:expr) => {{
        let mut tries = 1u32;
        loop {
            match $op.await {
                Err(e) if is_conflict(&e) && tries < MAX_TRIES => {
                    backoff(tries).await;
                    tries += 1;
                }
                done => break done,
            }
        }
    }};
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

type Tx = sqlx::Transaction<'static, Postgres>;

pub struct PgStore {
    pool: PgPool,
    /// Set once the server has its audit key; until then writes commit no record.
    chain: OnceLock<Arc<dyn AuditChain>>,
    /// Held from an audit-writing transaction's tail read until its `committed` call, so this
    /// node hands records to its chain in commit order (the advisory lock orders the nodes'
    /// commits in the database; this orders the hand-offs after them).
    audit_order: tokio::sync::Mutex<()>,
}

async fn migrate(pool: &PgPool) -> Result<()> {
    // One transaction under an advisory lock: nodes starting together wait for the first to
    // finish, then find its migrations applied.
    let mut tx = pool.begin().await.map_err(db_err)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
    if let Some(newest) = applied.iter().max()
        && *newest > MIGRATIONS.len() as i64
    {
        return Err(Error::internal(format!(
            "the database has schema version {newest}, newer than this kura knows: upgrade kura"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| !applied.contains(v)) {
        sqlx::raw_sql(AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::internal(format!("migration {version}: {e}")))?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, applied_at) \
             VALUES ($1, (extract(epoch from now()) * 1000)::bigint)",
        )
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)
}

impl PgStore {
    /// Connects to `url` (`postgres://…`, with `sslmode=require` or `verify-full` for TLS) and
    /// brings the schema up to date.
    pub async fn connect(url: &str) -> Result<PgStore> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| Error::internal(format!("the database URL is not valid: {e}")))?
            .application_name("kura");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A connection broken by an outage is found out before a request gets it.
            .test_before_acquire(true)
            .connect_with(opts)
            .await
            .map_err(db_err)?;
        migrate(&pool).await?;
        Ok(PgStore {
            pool,
            chain: OnceLock::new(),
            audit_order: tokio::sync::Mutex::new(()),
        })
    }

    async fn begin(&self) -> Result<Tx> {
        self.pool.begin().await.map_err(db_err)
    }

    /// One statement in its own transaction; returns the rows it changed. `change`: the
    /// statement is a request's change (its audit record commits with it), `None` for
    /// bookkeeping (last-used days, leases, the outbox).
    async fn write_one(
        &self,
        q: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
        change: Option<Changed>,
    ) -> Result<u64> {
        match change {
            None => Ok(q.execute(&self.pool).await.map_err(db_err)?.rows_affected()),
            Some(c) => {
                let mut tx = self.begin().await?;
                let done = q.execute(&mut *tx).await.map_err(db_err)?;
                self.commit_change(tx, c).await?;
                Ok(done.rows_affected())
            }
        }
    }

    /// Commits a transaction that changes something a request asked for, with the request's
    /// audit record if one is waiting, exactly as the SQLite backend does: "refused" then
    /// means "not done".
    async fn commit_change(&self, mut tx: Tx, changed: Changed) -> Result<()> {
        let Some(chain) = self.chain.get() else {
            return tx.commit().await.map_err(db_err);
        };
        let Some(draft) = audit::take(&changed) else {
            return tx.commit().await.map_err(db_err);
        };
        let _order = self.audit_order.lock().await;
        let written =
            match insert_chained(&mut tx, chain.as_ref(), vec![draft.record.clone()]).await {
                Ok(records) => tx.commit().await.map_err(db_err).map(|()| records),
                Err(e) => Err(e),
            };
        match written {
            Ok(records) => {
                audit::settle(draft, true);
                // The change and its record are durable: a failed file append is the file's
                // problem (logged by the chain, found by verify), not the request's.
                let _ = chain.committed(&records);
                Ok(())
            }
            Err(e) => {
                audit::settle(draft, false);
                Err(e)
            }
        }
    }
}

const SECRET_COLUMNS: &str = "id, name, arn, description, kms_key_id, created_at, changed_at, accessed_at, \
     deleted_at, purge_at, resource_policy, rotation_enabled, rotation_function, rotation_after_days, \
     rotation_schedule, rotation_duration, last_rotated_at, next_rotation_at, next_rotation_end, rotation_state, rotation_token, \
     rotation_step, rotation_attempt, rotation_error, rotation_attempted_at, rotation_resume_at, \
     rotation_window_end, tagged";

fn opt_ts(r: &PgRow, column: &str) -> Result<Option<Timestamp>> {
    Ok(r.try_get::<Option<i64>, _>(column)
        .map_err(db_err)?
        .map(Timestamp))
}

fn secret_from_row(r: &PgRow) -> Result<SecretRecord> {
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

fn sealed_from_row(r: &PgRow) -> Result<Option<SealedValue>> {
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
fn sealed_cols(r: &PgRow) -> Result<Option<SealedValue>> {
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

fn version_from_row(r: &PgRow) -> Result<VersionMeta> {
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

async fn load_tags(conn: &mut PgConnection, secret_id: i64) -> Result<Vec<Tag>> {
    let rows = sqlx::query("SELECT key, value FROM tags WHERE secret_id = $1 ORDER BY key")
        .bind(secret_id)
        .fetch_all(conn)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok(Tag {
                key: r.try_get("key").map_err(db_err)?,
                value: r.try_get("value").map_err(db_err)?,
            })
        })
        .collect()
}

async fn load_stages(conn: &mut PgConnection, secret_id: i64) -> Result<Stages> {
    let rows = sqlx::query("SELECT stage, version_id FROM version_stages WHERE secret_id = $1")
        .bind(secret_id)
        .fetch_all(conn)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("stage").map_err(db_err)?,
                r.try_get("version_id").map_err(db_err)?,
            ))
        })
        .collect()
}

async fn load_versions(conn: &mut PgConnection, secret_id: i64) -> Result<Vec<VersionMeta>> {
    let rows = sqlx::query(
        "SELECT version_id, created_at, accessed_at, value_kind FROM secret_versions \
         WHERE secret_id = $1 ORDER BY created_at, seq",
    )
    .bind(secret_id)
    .fetch_all(conn)
    .await
    .map_err(db_err)?;
    rows.iter().map(version_from_row).collect()
}

/// The secret's row (and tags); `lock`: FOR UPDATE, so the caller's transaction is the only
/// writer of the secret, its versions, labels and tags until it ends (every writer of those
/// locks the secret row first).
async fn load_secret(
    conn: &mut PgConnection,
    secret_id: i64,
    lock: bool,
) -> Result<Option<SecretRecord>> {
    let sql = format!(
        "SELECT {SECRET_COLUMNS} FROM secrets WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(secret_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    let Some(row) = row else { return Ok(None) };
    let mut s = secret_from_row(&row)?;
    s.tags = load_tags(conn, secret_id).await?;
    Ok(Some(s))
}

async fn write_version(conn: &mut PgConnection, secret_id: i64, v: &NewVersion) -> Result<()> {
    let value = v.value.as_ref();
    // A placeholder row keeps its id and creation date when its value arrives.
    sqlx::query(
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
    .bind(v.created_at.0)
    .bind(value.map(|s| kind_str(s.kind)))
    .bind(value.map(|s| s.ciphertext.as_slice()))
    .bind(value.map(|s| s.wrapped_key.as_slice()))
    .bind(value.map(|s| s.key_name.as_str()))
    .bind(value.map(|s| s.key_version))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn write_stages(conn: &mut PgConnection, secret_id: i64, stages: &Stages) -> Result<()> {
    for (stage, version) in stages {
        sqlx::query(
            "INSERT INTO version_stages (secret_id, stage, version_id) VALUES ($1, $2, $3)",
        )
        .bind(secret_id)
        .bind(stage)
        .bind(version)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

async fn write_tags(conn: &mut PgConnection, secret_id: i64, tags: &[Tag]) -> Result<()> {
    for t in tags {
        sqlx::query("INSERT INTO tags (secret_id, key, value) VALUES ($1, $2, $3)")
            .bind(secret_id)
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Rewrites the words a secret is found by (after its description or tags changed).
async fn write_words(
    conn: &mut PgConnection,
    secret_id: i64,
    text: &filter::SecretText<'_>,
) -> Result<()> {
    sqlx::query("DELETE FROM secret_words WHERE secret_id = $1")
        .bind(secret_id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let (fields, words): (Vec<i64>, Vec<String>) = filter::indexed_words(text).into_iter().unzip();
    if fields.is_empty() {
        return Ok(());
    }
    // One statement for all of them: a round trip per word adds up over the network.
    sqlx::query(
        "INSERT INTO secret_words (secret_id, field, word) \
         SELECT $1, f, w FROM UNNEST($2::bigint[], $3::text[]) AS t(f, w)",
    )
    .bind(secret_id)
    .bind(fields)
    .bind(words)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// `col` starts with `prefix`, as an index range (the columns compare in code point order).
fn prefix_sql(col: &str, prefix: &str, binds: &mut Vec<Bind>) -> String {
    // PostgreSQL text holds no NUL, so a prefix with one starts nothing stored (and could
    // not be sent as a parameter).
    if prefix.contains('\0') {
        return "FALSE".into();
    }
    binds.push(Bind::Text(prefix.to_string()));
    match prefix_upper_bound(prefix) {
        Some(upper) => {
            binds.push(Bind::Text(upper));
            format!("({col} >= ? AND {col} < ?)")
        }
        None => format!("{col} >= ?"),
    }
}

/// Every word of `term` begins a stored word of the secret (in the description only, when
/// `field` is given); nothing when `term` has no words. Mirrors kura_core::filter.
fn words_sql(term: &str, field: Option<i64>, binds: &mut Vec<Bind>) -> String {
    let query = filter::words(term);
    if query.is_empty() {
        return "FALSE".into();
    }
    let per_word: Vec<String> = query
        .iter()
        .map(|w| {
            let field_sql = match field {
                Some(f) => {
                    binds.push(Bind::Int(f));
                    "w.field = ? AND "
                }
                None => "",
            };
            let range = prefix_sql("w.word", w, binds);
            format!(
                "EXISTS (SELECT 1 FROM secret_words w WHERE w.secret_id = s.id AND {field_sql}{range})"
            )
        })
        .collect();
    format!("({})", per_word.join(" AND "))
}

/// SQL for one filter value without its `!`, binds pushed in the order of the text.
fn term_sql(key: FilterKey, term: &str, binds: &mut Vec<Bind>) -> String {
    match key {
        FilterKey::Name => prefix_sql("s.name", term, binds),
        FilterKey::TagKey => format!(
            "EXISTS (SELECT 1 FROM tags t WHERE t.secret_id = s.id AND {})",
            prefix_sql("t.key", term, binds)
        ),
        FilterKey::TagValue => format!(
            "EXISTS (SELECT 1 FROM tags t WHERE t.secret_id = s.id AND {})",
            prefix_sql("t.value", term, binds)
        ),
        FilterKey::Description => words_sql(term, Some(filter::IN_DESCRIPTION), binds),
        FilterKey::All => words_sql(term, None, binds),
        // kura neither replicates nor hosts service-owned secrets: these attributes are unset.
        FilterKey::PrimaryRegion | FilterKey::OwningService => "FALSE".into(),
    }
}

/// One filter: any of its values (each negated by a leading `!`).
fn filter_clause(f: &ListFilter, binds: &mut Vec<Bind>) -> String {
    if f.values.is_empty() {
        return "FALSE".into();
    }
    let any: Vec<String> = f
        .values
        .iter()
        .map(|v| match v.strip_prefix('!') {
            Some(term) => format!("NOT {}", term_sql(f.key, term, binds)),
            None => term_sql(f.key, v, binds),
        })
        .collect();
    format!("({})", any.join(" OR "))
}

/// Tags and labels of a page of secrets in two statements, not two per secret.
async fn load_page_children(
    pool: &PgPool,
    page: &[PgRow],
) -> Result<(HashMap<i64, Vec<Tag>>, HashMap<i64, Stages>)> {
    let mut tags: HashMap<i64, Vec<Tag>> = HashMap::new();
    let mut stages: HashMap<i64, Stages> = HashMap::new();
    if page.is_empty() {
        return Ok((tags, stages));
    }
    let ids = page
        .iter()
        .map(|r| r.try_get::<i64, _>("id").map_err(db_err))
        .collect::<Result<Vec<_>>>()?;
    for r in
        sqlx::query("SELECT secret_id, key, value FROM tags WHERE secret_id = ANY($1) ORDER BY key")
            .bind(&ids)
            .fetch_all(pool)
            .await
            .map_err(db_err)?
    {
        tags.entry(r.try_get("secret_id").map_err(db_err)?)
            .or_default()
            .push(Tag {
                key: r.try_get("key").map_err(db_err)?,
                value: r.try_get("value").map_err(db_err)?,
            });
    }
    for r in sqlx::query(
        "SELECT secret_id, stage, version_id FROM version_stages WHERE secret_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await
    .map_err(db_err)?
    {
        stages
            .entry(r.try_get("secret_id").map_err(db_err)?)
            .or_default()
            .insert(
                r.try_get("stage").map_err(db_err)?,
                r.try_get("version_id").map_err(db_err)?,
            );
    }
    Ok((tags, stages))
}

fn function_from_row(r: &PgRow) -> Result<RotationFunctionRecord> {
    Ok(RotationFunctionRecord {
        name: r.try_get("name").map_err(db_err)?,
        kind: r.try_get("kind").map_err(db_err)?,
        config: r.try_get("config").map_err(db_err)?,
        sealed_secret: sealed_cols(r)?,
        created_at: Timestamp(r.try_get("created_at").map_err(db_err)?),
    })
}

const ACCESS_KEY_SELECT: &str = "SELECT k.access_key_id, k.user_name, u.arn, u.user_id, k.ciphertext, k.wrapped_key, \
     k.key_name, k.key_version, k.status, k.created_at, k.expires_at, k.scope_secret_id, k.last_used_at \
     FROM access_keys k JOIN users u ON u.name = k.user_name";

fn access_key_from_row(r: &PgRow) -> Result<AccessKeyRecord> {
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

fn user_from_row(r: &PgRow) -> Result<UserRecord> {
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

const AUDIT_COLUMNS: &str = "seq, time, request_id, kind, principal, access_key_id, action, resource, \
     version_id, version_stage, source_ip, user_agent, decision, outcome, error_code, duration_us, mac";

fn audit_from_row(r: &PgRow) -> Result<AuditRecord> {
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
    })
}

/// Numbers `records` after the chain's tail, chains their MACs and inserts them. The advisory
/// lock (held until the transaction ends) serializes every audit append of every node, so
/// the tail read (a fresh snapshot per statement under READ COMMITTED, taken after the lock)
/// and the inserts are one step no other writer can interleave with.
async fn insert_chained(
    conn: &mut PgConnection,
    chain: &dyn AuditChain,
    mut records: Vec<AuditRecord>,
) -> Result<Vec<AuditRecord>> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(AUDIT_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let tail: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    let (mut seq, mut prev) = match tail {
        Some((seq, mac)) => (seq, Some(mac)),
        None => (0, None),
    };
    for r in &mut records {
        without_nul_record(r);
        seq += 1;
        r.seq = seq;
        r.mac = chain.mac(prev.as_deref(), r);
        prev = Some(r.mac.clone());
        sqlx::query(
            "INSERT INTO audit_log (seq, time, request_id, kind, principal, access_key_id, action, \
             resource, version_id, version_stage, source_ip, user_agent, decision, outcome, error_code, \
             duration_us, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(r.seq)
        .bind(r.time)
        .bind(&r.request_id)
        .bind(&r.kind)
        .bind(&r.principal)
        .bind(&r.access_key_id)
        .bind(&r.action)
        .bind(&r.resource)
        .bind(&r.version_id)
        .bind(&r.version_stage)
        .bind(&r.source_ip)
        .bind(&r.user_agent)
        .bind(&r.decision)
        .bind(&r.outcome)
        .bind(&r.error_code)
        .bind(r.duration_us)
        .bind(&r.mac)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(records)
}

/// `s` with each NUL replaced by U+FFFD. For text kura records rather than validates (an
/// audited request's raw fields, a rotation function's error output): PostgreSQL text cannot
/// hold NUL, and refusing to record would lose the record, not the NUL.
fn without_nul(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}").into()
    } else {
        s.into()
    }
}

/// Whether a lookup key holds a NUL: nothing stored does (PostgreSQL text cannot), so the
/// lookup finds nothing, as on SQLite, without asking the database (which would refuse it).
fn has_nul(keys: &[&str]) -> bool {
    keys.iter().any(|k| k.contains('\0'))
}

fn without_nul_record(r: &mut AuditRecord) {
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

/// Queues `body` for every target subscribed to `event`, in the caller's transaction.
async fn queue_event(
    conn: &mut PgConnection,
    event: &str,
    body: &str,
    at: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO notification_outbox (target_id, body, next_attempt_at) \
         SELECT t.id, $1, $2 FROM notification_targets t \
         WHERE t.events::jsonb @> jsonb_build_array($3::text)",
    )
    .bind(body)
    .bind(at.0)
    .bind(event)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    for b in binds {
        query = match b {
            Bind::Int(i) => query.bind(i),
            Bind::Text(t) => query.bind(t),
        };
    }
    query
}

// --- transaction bodies that `retry!` may run more than once ------------------------------------

impl PgStore {
    async fn create_secret_once(
        &self,
        s: &SecretRecord,
        first: Option<&NewVersion>,
        stages: &Stages,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO secrets (name, arn, description, kms_key_id, created_at, changed_at, tagged) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(&s.name)
        .bind(&s.arn)
        .bind(&s.description)
        .bind(&s.kms_key_id)
        .bind(s.created_at.0)
        .bind(s.changed_at.0)
        .bind((s.tagged || !s.tags.is_empty()) as i64)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::exists(format!(
                    "The operation failed because the secret {} already exists.",
                    s.name
                ))
            } else {
                db_err(e)
            }
        })?;
        if let Some(v) = first {
            write_version(&mut tx, id, v).await?;
        }
        write_stages(&mut tx, id, stages).await?;
        write_tags(&mut tx, id, &s.tags).await?;
        write_words(&mut tx, id, &text_of(s)).await?;
        let changed = Changed {
            arn: Some(s.arn.clone()),
            version_id: first.map(|v| v.version_id.clone()),
        };
        self.commit_change(tx, changed).await?;
        Ok(id)
    }

    async fn modify_once(&self, secret_id: i64, f: &mut Mutation<'_>) -> Result<SecretState> {
        let mut tx = self.begin().await?;
        let secret = load_secret(&mut tx, secret_id, true)
            .await?
            .ok_or_else(Error::secret_not_found)?;
        let versions = load_versions(&mut tx, secret_id).await?;
        let stages = load_stages(&mut tx, secret_id).await?;
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
        sqlx::query(pg(
            "UPDATE secrets SET description = ?, kms_key_id = ?, changed_at = ?, accessed_at = ?, \
             deleted_at = ?, purge_at = ?, resource_policy = ?, rotation_enabled = ?, \
             rotation_function = ?, rotation_after_days = ?, rotation_schedule = ?, rotation_duration = ?, \
             last_rotated_at = ?, next_rotation_at = ?, next_rotation_end = ?, rotation_state = ?, rotation_token = ?, \
             rotation_step = ?, rotation_attempt = ?, rotation_error = ?, rotation_attempted_at = ?, \
             rotation_resume_at = ?, rotation_window_end = ?, tagged = ? WHERE id = ?",
        ))
        .bind(&s.description)
        .bind(&s.kms_key_id)
        .bind(s.changed_at.0)
        .bind(s.accessed_at.map(|t| t.0))
        .bind(s.deleted_at.map(|t| t.0))
        .bind(s.purge_at.map(|t| t.0))
        .bind(&s.resource_policy)
        .bind(s.rotation.enabled as i64)
        .bind(&s.rotation.function_arn)
        .bind(s.rotation.after_days)
        .bind(&s.rotation.schedule_expression)
        .bind(&s.rotation.duration)
        .bind(s.rotation.last_rotated_at.map(|t| t.0))
        .bind(s.rotation.next_rotation_at.map(|t| t.0))
        .bind(s.rotation.next_rotation_end.map(|t| t.0))
        .bind(s.run.phase.as_str())
        .bind(&s.run.token)
        .bind(s.run.step.map(|x| x.as_str()))
        .bind(s.run.attempt)
        .bind(s.run.last_error.as_deref().map(without_nul))
        .bind(s.run.last_attempt_at.map(|t| t.0))
        .bind(s.run.resume_at.map(|t| t.0))
        .bind(s.run.window_end.map(|t| t.0))
        .bind((s.tagged || !s.tags.is_empty()) as i64)
        .bind(secret_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if s.tags != before_tags {
            sqlx::query("DELETE FROM tags WHERE secret_id = $1")
                .bind(secret_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            write_tags(&mut tx, secret_id, &s.tags).await?;
        }
        if s.tags != before_tags || s.description != before_description {
            write_words(&mut tx, secret_id, &text_of(s)).await?;
        }
        let stages_changed = state.stages != before_stages || !state.new_versions.is_empty();
        if stages_changed {
            sqlx::query("DELETE FROM version_stages WHERE secret_id = $1")
                .bind(secret_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        for v in &state.new_versions {
            write_version(&mut tx, secret_id, v).await?;
        }
        // Versions the mutation dropped from the list are pruned.
        let kept: HashSet<&str> = state
            .versions
            .iter()
            .map(|v| v.version_id.as_str())
            .chain(state.new_versions.iter().map(|v| v.version_id.as_str()))
            .collect();
        let gone: Vec<&str> = before_ids
            .iter()
            .map(String::as_str)
            .filter(|id| !kept.contains(id))
            .collect();
        if !gone.is_empty() {
            sqlx::query(
                "DELETE FROM secret_versions WHERE secret_id = $1 AND version_id = ANY($2)",
            )
            .bind(secret_id)
            .bind(&gone)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        if stages_changed {
            write_stages(&mut tx, secret_id, &state.stages).await?;
        }
        for e in &state.events {
            queue_event(&mut tx, e.event, &e.body, e.at).await?;
        }
        let changed = Changed {
            arn: Some(state.secret.arn.clone()),
            version_id: changed_version(&before_run_token, &state),
        };
        self.commit_change(tx, changed).await?;
        Ok(state)
    }

    async fn delete_secret_once(&self, secret_id: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let arn: Option<String> =
            sqlx::query_scalar("SELECT arn FROM secrets WHERE id = $1 FOR UPDATE")
                .bind(secret_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        // Children first: labels reference versions, versions and tags reference the secret.
        for sql in [
            "DELETE FROM version_stages WHERE secret_id = $1",
            "DELETE FROM secret_versions WHERE secret_id = $1",
            "DELETE FROM tags WHERE secret_id = $1",
            "DELETE FROM secret_words WHERE secret_id = $1",
            "DELETE FROM secrets WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(secret_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        self.commit_change(
            tx,
            Changed {
                arn,
                version_id: None,
            },
        )
        .await
    }

    async fn delete_user_once(&self, name: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        for sql in [
            "DELETE FROM access_keys WHERE user_name = $1",
            "DELETE FROM user_policies WHERE user_name = $1",
        ] {
            sqlx::query(sql)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        self.commit_change(tx, Changed::default()).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_access_key_once(&self, k: &AccessKeyRecord, max: Option<usize>) -> Result<()> {
        let mut tx = self.begin().await?;
        if let Some(max) = max {
            // The user's row lock serializes key creation per user across nodes, so two
            // concurrent creates cannot both see room for one more key.
            sqlx::query("SELECT 1 FROM users WHERE name = $1 FOR UPDATE")
                .bind(&k.user_name)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let have: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM access_keys WHERE user_name = $1 AND expires_at IS NULL",
            )
            .bind(&k.user_name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            if have as usize >= max {
                return Err(Error::limit_exceeded(format!(
                    "The user {} already has {max} access keys; delete one first.",
                    k.user_name
                )));
            }
        }
        sqlx::query(
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
        .bind(k.created_at.0)
        .bind(k.expires_at.map(|t| t.0))
        .bind(k.scope_secret_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::exists(format!(
                    "The access key {} already exists.",
                    k.access_key_id
                ))
            } else {
                db_err(e)
            }
        })?;
        self.commit_change(tx, Changed::default()).await
    }

    async fn delete_rotation_function_once(&self, name: &str, arn: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Locked first, so a concurrent delete of the same function waits for this one.
        sqlx::query("SELECT 1 FROM rotation_functions WHERE name = $1 FOR UPDATE")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let users: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM secrets WHERE rotation_function = $1")
                .bind(arn)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        if users > 0 {
            return Err(Error::invalid_request(format!(
                "The rotation function {name} is used by {users} secret(s). Point their rotation at another function with RotateSecret first."
            )));
        }
        let done = sqlx::query("DELETE FROM rotation_functions WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        self.commit_change(tx, Changed::default()).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn append_audit_once(
        &self,
        chain: &Arc<dyn AuditChain>,
        records: &[AuditRecord],
    ) -> Result<()> {
        // Connection first, then the order lock: whoever holds the lock already has its
        // connection, so writers queued on the lock cannot starve it of one.
        let mut tx = self.begin().await?;
        let _order = self.audit_order.lock().await;
        let records = insert_chained(&mut tx, chain.as_ref(), records.to_vec()).await?;
        tx.commit().await.map_err(db_err)?;
        chain.committed(&records)
    }
}

#[async_trait]
impl SettingsStore for PgStore {
    async fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn init_setting(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        // A racing node's insert either lands first (ours does nothing) or waits on ours.
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        self.get_setting(key)
            .await?
            .ok_or_else(|| Error::internal(format!("setting {key} vanished")))
    }

    async fn load_keys(&self) -> Result<Vec<(String, i64, Vec<u8>)>> {
        let rows = sqlx::query("SELECT name, version, wrapped FROM keys ORDER BY name, version")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("name").map_err(db_err)?,
                    r.try_get("version").map_err(db_err)?,
                    r.try_get("wrapped").map_err(db_err)?,
                ))
            })
            .collect()
    }

    async fn insert_key(
        &self,
        name: &str,
        version: i64,
        wrapped: &[u8],
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO keys (name, version, wrapped, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(version)
        .bind(wrapped)
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl IdentityStore for PgStore {
    async fn create_user(&self, u: &UserRecord) -> Result<()> {
        let tags = serde_json::to_string(
            &u.tags
                .iter()
                .map(|t| (t.key.as_str(), t.value.as_str()))
                .collect::<Vec<_>>(),
        )
        .map_err(|e| Error::internal(format!("encoding user tags: {e}")))?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO users (name, arn, user_id, created_at, tags) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&u.name)
        .bind(&u.arn)
        .bind(&u.user_id)
        .bind(u.created_at.0)
        .bind(tags)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::exists(format!("The user {} already exists.", u.name))
            } else {
                db_err(e)
            }
        })?;
        self.commit_change(tx, Changed::default()).await
    }

    async fn get_user(&self, name: &str) -> Result<Option<UserRecord>> {
        if has_nul(&[name]) {
            return Ok(None);
        }
        let row =
            sqlx::query("SELECT name, arn, user_id, created_at, tags FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        // COLLATE "C": the order SQLite lists them in.
        let rows = sqlx::query(
            "SELECT name, arn, user_id, created_at, tags FROM users ORDER BY name COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn delete_user(&self, name: &str) -> Result<bool> {
        retry!(self.delete_user_once(name))
    }

    async fn user_exists(&self, name: &str) -> Result<bool> {
        if has_nul(&[name]) {
            return Ok(false);
        }
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE name = $1)")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn insert_access_key(&self, k: &AccessKeyRecord, max: Option<usize>) -> Result<()> {
        retry!(self.insert_access_key_once(k, max))
    }

    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyRecord>> {
        let sql = format!(
            "{ACCESS_KEY_SELECT} WHERE k.user_name = $1 AND k.expires_at IS NULL \
             ORDER BY k.created_at, k.access_key_id COLLATE \"C\""
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(user)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(access_key_from_row).collect()
    }

    async fn find_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
        if has_nul(&[access_key_id]) {
            return Ok(None);
        }
        let sql = format!("{ACCESS_KEY_SELECT} WHERE k.access_key_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(access_key_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(access_key_from_row).transpose()
    }

    async fn set_access_key_status(&self, access_key_id: &str, active: bool) -> Result<bool> {
        let n = self
            .write_one(
                sqlx::query("UPDATE access_keys SET status = $1 WHERE access_key_id = $2")
                    .bind(if active { "Active" } else { "Inactive" })
                    .bind(access_key_id),
                Some(Changed::default()),
            )
            .await?;
        Ok(n == 1)
    }

    async fn touch_access_key(&self, access_key_id: &str, day: Timestamp) -> Result<()> {
        // Conditional, so the many requests of one day write at most once.
        self.write_one(
            sqlx::query(
                "UPDATE access_keys SET last_used_at = $1 WHERE access_key_id = $2 \
                 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(day.0)
            .bind(access_key_id),
            None,
        )
        .await?;
        Ok(())
    }

    async fn delete_access_key(&self, access_key_id: &str) -> Result<()> {
        self.write_one(
            sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1").bind(access_key_id),
            Some(Changed::default()),
        )
        .await?;
        Ok(())
    }

    async fn delete_expired_access_keys(&self, now: Timestamp) -> Result<u64> {
        self.write_one(
            sqlx::query("DELETE FROM access_keys WHERE expires_at <= $1").bind(now.0),
            None,
        )
        .await
    }

    async fn put_user_policy(
        &self,
        user: &str,
        name: &str,
        document: &str,
        now: Timestamp,
    ) -> Result<()> {
        self.write_one(
            sqlx::query(
                "INSERT INTO user_policies (user_name, policy_name, document, created_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_name, policy_name) DO UPDATE SET document = excluded.document",
            )
            .bind(user)
            .bind(name)
            .bind(document)
            .bind(now.0),
            Some(Changed::default()),
        )
        .await?;
        Ok(())
    }

    async fn delete_user_policy(&self, user: &str, name: &str) -> Result<bool> {
        let n = self
            .write_one(
                sqlx::query("DELETE FROM user_policies WHERE user_name = $1 AND policy_name = $2")
                    .bind(user)
                    .bind(name),
                Some(Changed::default()),
            )
            .await?;
        Ok(n == 1)
    }

    async fn user_policies(&self, user: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT policy_name, document FROM user_policies WHERE user_name = $1 \
             ORDER BY policy_name COLLATE \"C\"",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("policy_name").map_err(db_err)?,
                    r.try_get("document").map_err(db_err)?,
                ))
            })
            .collect()
    }
}

#[async_trait]
impl AuditStore for PgStore {
    fn set_audit_chain(&self, chain: Arc<dyn AuditChain>) {
        let _ = self.chain.set(chain);
    }

    async fn append_audit(&self, records: &[AuditRecord]) -> Result<()> {
        let chain = self
            .chain
            .get()
            .ok_or_else(|| Error::internal("the audit chain is not set up"))?;
        retry!(self.append_audit_once(chain, records))
    }

    async fn last_audit(&self) -> Result<Option<AuditRecord>> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(audit_from_row).transpose()
    }

    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut conds = vec!["TRUE".to_string()];
        let mut binds: Vec<Bind> = Vec::new();
        if let Some(t) = q.start_time {
            conds.push("time >= ?".into());
            binds.push(Bind::Int(t));
        }
        if let Some(t) = q.end_time {
            conds.push("time <= ?".into());
            binds.push(Bind::Int(t));
        }
        if let Some(s) = q.after_seq {
            conds.push("seq > ?".into());
            binds.push(Bind::Int(s));
        }
        for (col, v) in [
            ("principal", &q.principal),
            ("action", &q.action),
            ("resource", &q.resource),
            ("outcome", &q.outcome),
        ] {
            if let Some(v) = v {
                conds.push(format!("{col} = ?"));
                binds.push(Bind::Text(v.clone()));
            }
        }
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {} ORDER BY seq LIMIT ?",
            conds.join(" AND ")
        );
        let rows = bind_all(sqlx::query(pg(&sql)), binds)
            .bind(q.limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(audit_from_row).collect()
    }
}

#[async_trait]
impl SecretStore for PgStore {
    async fn create_secret(
        &self,
        s: &SecretRecord,
        first: Option<&NewVersion>,
        stages: &Stages,
    ) -> Result<i64> {
        retry!(self.create_secret_once(s, first, stages))
    }

    async fn find_secret(&self, secret: &SecretRef) -> Result<Option<SecretRecord>> {
        let keys = match secret {
            SecretRef::Name(name) => [name.as_str(), ""],
            SecretRef::Arn { arn, name_part } => [arn.as_str(), name_part.as_str()],
        };
        if has_nul(&keys) {
            return Ok(None);
        }
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let by = |cond: &str| format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE {cond}");
        let row = match secret {
            SecretRef::Name(name) => sqlx::query(AssertSqlSafe(by("name = $1")))
                .bind(name)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?,
            SecretRef::Arn { arn, name_part } => {
                let full = sqlx::query(AssertSqlSafe(by("arn = $1")))
                    .bind(arn)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db_err)?;
                match full {
                    Some(row) => Some(row),
                    // An ARN without its suffix: the name, if its secret's ARN has the same prefix.
                    None => {
                        let prefix = format!("{arn}-");
                        sqlx::query(AssertSqlSafe(by("name = $1 AND starts_with(arn, $2)")))
                            .bind(name_part)
                            .bind(&prefix)
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(db_err)?
                    }
                }
            }
        };
        let Some(row) = row else { return Ok(None) };
        let mut s = secret_from_row(&row)?;
        s.tags = load_tags(&mut conn, s.id).await?;
        Ok(Some(s))
    }

    async fn versions(&self, secret_id: i64) -> Result<(Vec<VersionMeta>, Stages)> {
        // One snapshot for both reads, so they agree with each other.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db_err)?;
        let versions = load_versions(&mut tx, secret_id).await?;
        let stages = load_stages(&mut tx, secret_id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok((versions, stages))
    }

    async fn read_version(
        &self,
        secret_id: i64,
        which: VersionSelector<'_>,
    ) -> Result<Option<StoredVersion>> {
        let (VersionSelector::Id(key) | VersionSelector::Stage(key)) = which;
        if has_nul(&[key]) {
            return Ok(None);
        }
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db_err)?;
        const COLS: &str = "v.version_id, v.created_at, v.accessed_at, v.value_kind, v.ciphertext, \
                            v.wrapped_key, v.key_name, v.key_version";
        let row = match which {
            VersionSelector::Id(id) => {
                let sql = format!(
                    "SELECT {COLS} FROM secret_versions v WHERE v.secret_id = $1 AND v.version_id = $2"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(secret_id)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
            }
            VersionSelector::Stage(stage) => {
                let sql = format!(
                    "SELECT {COLS} FROM version_stages s JOIN secret_versions v \
                     ON v.secret_id = s.secret_id AND v.version_id = s.version_id \
                     WHERE s.secret_id = $1 AND s.stage = $2"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(secret_id)
                    .bind(stage)
                    .fetch_optional(&mut *tx)
                    .await
            }
        }
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let meta = version_from_row(&row)?;
        let value = sealed_from_row(&row)?;
        let stages = sqlx::query_scalar(
            "SELECT stage FROM version_stages WHERE secret_id = $1 AND version_id = $2 \
             ORDER BY stage COLLATE \"C\"",
        )
        .bind(secret_id)
        .bind(&meta.version_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(StoredVersion {
            meta,
            value,
            stages,
        }))
    }

    async fn modify(&self, secret_id: i64, f: &mut Mutation<'_>) -> Result<SecretState> {
        retry!(self.modify_once(secret_id, f))
    }

    async fn list_secrets(&self, q: &ListQuery) -> Result<ListPage> {
        // The service binds each cursor to the query that issued it, so its type fits the
        // sort; were it not so, PostgreSQL would refuse the comparison: an empty page instead.
        if let Some(c) = &q.after
            && matches!(c.value, CursorValue::Text(_)) != (q.sort == SortKey::Name)
        {
            return Ok(ListPage {
                secrets: Vec::new(),
                next: None,
            });
        }
        let col = sort_column(q.sort);
        let mut binds: Vec<Bind> = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        if !q.include_deleted {
            conds.push("s.deleted_at IS NULL".into());
        }
        for f in &q.filters {
            conds.push(filter_clause(f, &mut binds));
        }
        let (cmp, dir) = if q.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(c) = &q.after {
            conds.push(format!("({col} {cmp} ? OR ({col} = ? AND s.id {cmp} ?))"));
            for _ in 0..2 {
                binds.push(match &c.value {
                    CursorValue::Int(i) => Bind::Int(*i),
                    CursorValue::Text(t) => Bind::Text(t.clone()),
                });
            }
            binds.push(Bind::Int(c.id));
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
        let sql = format!(
            "SELECT {cols}, {col} AS sort_value FROM secrets s {where_sql} \
             ORDER BY {col} {dir}, s.id {dir} LIMIT ?"
        );
        let rows = bind_all(sqlx::query(pg(&sql)), binds)
            .bind(q.limit as i64 + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let more = rows.len() > q.limit;
        let page = &rows[..rows.len().min(q.limit)];
        let (mut tags, mut stages) = load_page_children(&self.pool, page).await?;
        let mut secrets = Vec::with_capacity(page.len());
        let mut next = None;
        for r in page {
            let mut s = secret_from_row(r)?;
            s.tags = tags.remove(&s.id).unwrap_or_default();
            let stages = stages.remove(&s.id).unwrap_or_default();
            if more {
                next = Some(Cursor {
                    value: if q.sort == SortKey::Name {
                        CursorValue::Text(s.name.clone())
                    } else {
                        CursorValue::Int(r.try_get("sort_value").map_err(db_err)?)
                    },
                    id: s.id,
                });
            }
            secrets.push((s, stages));
        }
        Ok(ListPage { secrets, next })
    }

    async fn due_for_purge(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        sqlx::query_scalar(
            "SELECT id FROM secrets WHERE purge_at IS NOT NULL AND purge_at <= $1 \
             ORDER BY purge_at LIMIT $2",
        )
        .bind(now.0)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn touch_accessed(&self, secret_id: i64, version_id: &str, day: Timestamp) -> Result<()> {
        // Conditional updates without an explicit lock: concurrent readers on the same day
        // write at most once each, and a `modify` holding the row is waited for.
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE secrets SET accessed_at = $1 WHERE id = $2 \
             AND (accessed_at IS NULL OR accessed_at < $1)",
        )
        .bind(day.0)
        .bind(secret_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "UPDATE secret_versions SET accessed_at = $1 WHERE secret_id = $2 AND version_id = $3 \
             AND (accessed_at IS NULL OR accessed_at < $1)",
        )
        .bind(day.0)
        .bind(secret_id)
        .bind(version_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn delete_secret(&self, secret_id: i64) -> Result<()> {
        retry!(self.delete_secret_once(secret_id))
    }

    async fn secret_by_id(&self, secret_id: i64) -> Result<Option<SecretRecord>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        load_secret(&mut conn, secret_id, false).await
    }
}

#[async_trait]
impl RotationStore for PgStore {
    async fn rotation_due(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        // Two index ranges: scheduled cycles to start, and cycles to continue. Only a hint:
        // the claim below decides which node runs each.
        sqlx::query_scalar(
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
        .bind(now.0)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn claim_rotation(
        &self,
        secret_id: i64,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        // One conditional UPDATE: PostgreSQL re-checks the condition on the row's newest
        // version when two nodes race, so exactly one of them gets the row back.
        let claimed: Option<i64> = sqlx::query_scalar(
            "UPDATE secrets SET lease_owner = $1, lease_expires_at = $2 WHERE id = $3 \
             AND (lease_owner IS NULL OR lease_owner = $1 OR lease_expires_at <= $4) RETURNING id",
        )
        .bind(owner)
        .bind(until.0)
        .bind(secret_id)
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(claimed.is_some())
    }

    async fn release_rotation(&self, secret_id: i64, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE secrets SET lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(secret_id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn recover_rotations(&self, _now: Timestamp) -> Result<u64> {
        // Several nodes share this database: a lease found at start-up may belong to a node
        // that is running right now, so releasing it would run its step twice. Leases of a
        // node that died simply expire, and `rotation_due` offers their secrets again then.
        Ok(0)
    }

    async fn insert_rotation_function(&self, f: &RotationFunctionRecord) -> Result<()> {
        let sealed = f.sealed_secret.as_ref();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO rotation_functions (name, kind, config, ciphertext, wrapped_key, key_name, \
             key_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&f.name)
        .bind(&f.kind)
        .bind(&f.config)
        .bind(sealed.map(|s| s.ciphertext.clone()))
        .bind(sealed.map(|s| s.wrapped_key.clone()))
        .bind(sealed.map(|s| s.key_name.clone()))
        .bind(sealed.map(|s| s.key_version))
        .bind(f.created_at.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                Error::exists(format!("A rotation function named {} already exists.", f.name))
            } else {
                db_err(e)
            }
        })?;
        self.commit_change(tx, Changed::default()).await
    }

    async fn rotation_function(&self, name: &str) -> Result<Option<RotationFunctionRecord>> {
        if has_nul(&[name]) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT name, kind, config, ciphertext, wrapped_key, key_name, key_version, created_at \
             FROM rotation_functions WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(function_from_row).transpose()
    }

    async fn list_rotation_functions(&self) -> Result<Vec<RotationFunctionRecord>> {
        let rows = sqlx::query(
            "SELECT name, kind, config, ciphertext, wrapped_key, key_name, key_version, created_at \
             FROM rotation_functions ORDER BY name COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(function_from_row).collect()
    }

    async fn delete_rotation_function(&self, name: &str, arn: &str) -> Result<bool> {
        retry!(self.delete_rotation_function_once(name, arn))
    }
}

#[async_trait]
impl NotificationStore for PgStore {
    async fn insert_notification_target(&self, t: &NotificationTargetRecord) -> Result<()> {
        let events = serde_json::to_string(&t.events)
            .map_err(|e| Error::internal(format!("encoding events: {e}")))?;
        let mut tx = self.begin().await?;
        sqlx::query(
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
        .bind(t.created_at.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        self.commit_change(tx, Changed::default()).await
    }

    async fn list_notification_targets(&self) -> Result<Vec<NotificationTargetRecord>> {
        let rows = sqlx::query(
            "SELECT id, url, events, ciphertext, wrapped_key, key_name, key_version, created_at \
             FROM notification_targets ORDER BY created_at, id COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let events: String = r.try_get("events").map_err(db_err)?;
                Ok(NotificationTargetRecord {
                    id: r.try_get("id").map_err(db_err)?,
                    url: r.try_get("url").map_err(db_err)?,
                    events: serde_json::from_str(&events)
                        .map_err(|e| Error::internal(format!("stored events: {e}")))?,
                    sealed_secret: sealed_cols(r)?
                        .ok_or_else(|| Error::internal("notification target without a secret"))?,
                    created_at: Timestamp(r.try_get("created_at").map_err(db_err)?),
                })
            })
            .collect()
    }

    async fn delete_notification_target(&self, id: &str) -> Result<bool> {
        let done = self
            .write_one(
                sqlx::query("DELETE FROM notification_targets WHERE id = $1").bind(id),
                Some(Changed::default()),
            )
            .await?;
        Ok(done == 1)
    }

    async fn enqueue_notification(&self, event: &str, body: &str, now: Timestamp) -> Result<()> {
        // One statement that inserts nothing when no target wants the event.
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        queue_event(&mut conn, event, body, now).await
    }

    async fn due_notifications(&self, now: Timestamp, limit: usize) -> Result<Vec<OutboxItem>> {
        // A read, as on SQLite: two nodes may both see an item (`claim_notifications` is the
        // cluster-safe way to take work).
        let rows = sqlx::query(
            "SELECT id, target_id, body, attempts FROM notification_outbox \
             WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now.0)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok(OutboxItem {
                    id: r.try_get("id").map_err(db_err)?,
                    target_id: r.try_get("target_id").map_err(db_err)?,
                    body: r.try_get("body").map_err(db_err)?,
                    attempts: r.try_get("attempts").map_err(db_err)?,
                })
            })
            .collect()
    }

    async fn claim_notifications(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        // SKIP LOCKED: a node claiming at the same moment takes other items instead of
        // waiting for these, and never the same ones.
        let rows = sqlx::query(
            "WITH due AS (SELECT id, next_attempt_at AS due_at FROM notification_outbox \
               WHERE next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $3 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE notification_outbox o SET next_attempt_at = $2 FROM due WHERE o.id = due.id \
             RETURNING o.id, o.target_id, o.body, o.attempts, due.due_at",
        )
        .bind(now.0)
        .bind(until.0)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut items = rows
            .iter()
            .map(|r| {
                let due_at: i64 = r.try_get("due_at").map_err(db_err)?;
                Ok((
                    due_at,
                    OutboxItem {
                        id: r.try_get("id").map_err(db_err)?,
                        target_id: r.try_get("target_id").map_err(db_err)?,
                        body: r.try_get("body").map_err(db_err)?,
                        attempts: r.try_get("attempts").map_err(db_err)?,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        items.sort_by_key(|(due_at, item)| (*due_at, item.id));
        Ok(items.into_iter().map(|(_, item)| item).collect())
    }

    async fn finish_notification(&self, id: i64) -> Result<()> {
        self.write_one(
            sqlx::query("DELETE FROM notification_outbox WHERE id = $1").bind(id),
            None,
        )
        .await?;
        Ok(())
    }

    async fn retry_notification(&self, id: i64, at: Timestamp, error: &str) -> Result<()> {
        self.write_one(
            sqlx::query(
                "UPDATE notification_outbox SET attempts = attempts + 1, next_attempt_at = $1, \
                 last_error = $2 WHERE id = $3",
            )
            .bind(at.0)
            .bind(without_nul(error))
            .bind(id),
            None,
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl StoreLifecycle for PgStore {
    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_text_loses_its_nul_characters_only() {
        assert_eq!(without_nul("a\0b"), "a\u{FFFD}b");
        assert!(matches!(
            without_nul("plain"),
            std::borrow::Cow::Borrowed("plain")
        ));
        let mut r = AuditRecord {
            resource: "x\0".into(),
            user_agent: Some("\0ua".into()),
            ..Default::default()
        };
        without_nul_record(&mut r);
        assert_eq!(
            (r.resource.as_str(), r.user_agent.as_deref()),
            ("x\u{FFFD}", Some("\u{FFFD}ua"))
        );
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            pg("SELECT a FROM t WHERE b = ? AND c IN (?, ?)").0,
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
        );
        assert_eq!(pg("SELECT 1").0, "SELECT 1");
    }

    #[test]
    fn conflicts_are_retryable_and_unavailable() {
        let e = Error::unavailable(format!("{CONFLICT}: deadlock"));
        assert!(is_conflict(&e));
        assert!(!is_conflict(&Error::unavailable("connection refused")));
        assert!(!is_conflict(&Error::internal(format!("{CONFLICT}: x"))));
        assert!(db_err(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!db_err(sqlx::Error::RowNotFound).is_unavailable());
    }
}
