//! The embedded default backend: SQLite in WAL mode with synchronous=FULL, so an acknowledged
//! write survives power loss. Writers take the lock up front (BEGIN IMMEDIATE) so a
//! read-modify-write never fails half-way on an upgrade conflict.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use kura_core::filter;
use kura_core::labels::Stages;
use kura_core::model::{NewVersion, SecretRecord, SecretState, Tag, ValueKind, VersionMeta};
use kura_core::names::SecretRef;
use kura_core::{Error, Result, Timestamp};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, SqliteConnection, SqlitePool};

use crate::audit::{AuditChain, AuditSlot, Changed};
use crate::prelude::*;
use crate::rows::*;
use crate::sql::audit_log::Committable;
use crate::sql::{self, Conn, Stmt};
use crate::{
    AccessKeyRecord, AuditQuery, AuditRecord, Cursor, CursorValue, FilterKey, ListFilter, ListPage,
    ListQuery, Mutation, NotificationTargetRecord, OutboxItem, RotationFunctionRecord, SortKey,
    StoredVersion, UserRecord, VersionSelector,
};

/// Versioned migrations, applied in order, each in its own transaction. Embedded in the binary
/// (sqlx's `migrate!` needs its macros feature, which rebuilds every driver).
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_initial.sql")),
    (
        2,
        include_str!("../migrations/sqlite/0002_resource_policy.sql"),
    ),
    (3, include_str!("../migrations/sqlite/0003_rotation.sql")),
    (4, include_str!("../migrations/sqlite/0004_identity.sql")),
    (5, include_str!("../migrations/sqlite/0005_audit.sql")),
    (
        6,
        include_str!("../migrations/sqlite/0006_audit_lookup.sql"),
    ),
    (7, include_str!("../migrations/sqlite/0007_tagged.sql")),
    (
        WORDS_MIGRATION,
        include_str!("../migrations/sqlite/0008_secret_words.sql"),
    ),
    (9, include_str!("../migrations/sqlite/0009_user_ids.sql")),
    (10, include_str!("../migrations/sqlite/0010_audit_node.sql")),
];

/// The schema version after every migration (what `kura migrate` copies from).
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The migration that creates `secret_words`; its rows are computed in Rust.
const WORDS_MIGRATION: i64 = 8;

async fn migrate(pool: &SqlitePool) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await
    .map_err(db_err)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(pool)
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
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        sqlx::raw_sql(AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::internal(format!("migration {version}: {e}")))?;
        if *version == WORDS_MIGRATION {
            backfill_words(&mut tx).await?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, strftime('%s','now') * 1000)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
    }
    Ok(())
}

fn db_err(e: sqlx::Error) -> Error {
    if is_disk_full(&e) {
        return Error::disk_full(format!("database: {e}"));
    }
    Error::internal(format!("database: {e}"))
}

/// SQLITE_FULL (13), also as the primary code of an extended one.
fn is_disk_full(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .is_some_and(|c| c & 0xff == 13),
        _ => false,
    }
}

/// A connection goes back to the pool only outside a transaction. When COMMIT fails (a full
/// disk), SQLite has already rolled back, so the ROLLBACK sqlx queues on drop fails too and
/// leaves sqlx believing the transaction is open: every later BEGIN on that connection would
/// fail until a restart. Such a connection is closed instead; the pool opens a fresh one.
fn release_outside_transaction(
    conn: &mut sqlx::SqliteConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = std::result::Result<bool, sqlx::Error>> + Send + '_>,
> {
    use sqlx::Connection as _;
    Box::pin(async move {
        if !conn.is_in_transaction() {
            return Ok(true);
        }
        // Let the queued rollback run, then look again.
        conn.ping().await?;
        Ok(!conn.is_in_transaction())
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// SQLite runs the shared SQL as it is: its one writer needs no row locks, its text sorts in
/// code point order and holds any character.
impl Conn for SqliteConnection {
    type Row = SqliteRow;
    const FOR_UPDATE: &'static str = "";
    const CODE_POINT_ORDER: &'static str = "";
    const TEXT_HOLDS_NUL: bool = true;

    async fn execute(&mut self, mut s: Stmt<'_>) -> Result<u64> {
        match s.query()?.execute(&mut *self).await {
            Ok(done) => Ok(done.rows_affected()),
            Err(e) => Err(s.error(e, db_err)),
        }
    }

    async fn fetch_all(&mut self, mut s: Stmt<'_>) -> Result<Vec<SqliteRow>> {
        let q = s.query()?;
        q.fetch_all(&mut *self)
            .await
            .map_err(|e| s.error(e, db_err))
    }

    async fn fetch_optional(&mut self, mut s: Stmt<'_>) -> Result<Option<SqliteRow>> {
        let q = s.query()?;
        q.fetch_optional(&mut *self)
            .await
            .map_err(|e| s.error(e, db_err))
    }

    async fn queue_event(&mut self, event: &str, body: &str, at: Timestamp) -> Result<()> {
        sql::stmt(
            "INSERT INTO notification_outbox (target_id, body, next_attempt_at) \
             SELECT t.id, $1, $2 FROM notification_targets t \
             WHERE EXISTS (SELECT 1 FROM json_each(t.events) e WHERE e.value = $3)",
        )
        .bind(body)
        .bind(at)
        .bind(event)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn lock_audit_tail(&mut self) -> Result<()> {
        // Every audit-writing transaction is a write transaction, entered one at a time
        // (the writer queue, then BEGIN IMMEDIATE): the tail is already this one's.
        Ok(())
    }
}

impl Committable for sqlx::Transaction<'_, sqlx::Sqlite> {
    type Conn = SqliteConnection;

    fn conn(&mut self) -> &mut SqliteConnection {
        self
    }

    async fn commit(self) -> Result<()> {
        sqlx::Transaction::commit(self).await.map_err(db_err)
    }
}

pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer at a time. Queuing writers here, in order, beats letting them
    /// collide on the database lock, where SQLite makes the losers sleep and retry (long tails).
    write_lock: tokio::sync::Mutex<()>,
    /// Set once the server has its audit key; until then writes commit no record.
    chain: std::sync::OnceLock<std::sync::Arc<dyn AuditChain>>,
}

impl SqliteStore {
    /// One shared statement in its own write transaction; returns the rows it changed.
    /// `change`: the statement is a request's change (see
    /// [`commit_change`](Self::commit_change)), `None` for bookkeeping (last-used days,
    /// leases, the outbox).
    async fn write(&self, s: Stmt<'_>, change: Option<(Changed, &AuditSlot)>) -> Result<u64> {
        let (_writer, mut tx) = self.begin_write().await?;
        let done = s.execute(&mut *tx).await?;
        match change {
            Some((c, audit)) => self.commit_change(tx, c, audit).await?,
            None => tx.commit().await.map_err(db_err)?,
        }
        Ok(done)
    }

    /// A connection for reads.
    async fn read(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        self.pool.acquire().await.map_err(db_err)
    }

    /// Commits a transaction that changes something a request asked for, with the request's
    /// audit record if one is waiting: "refused" then means "not done". Every such write
    /// path ends here. Call it while holding the write lock (from `begin_write`): the chain's
    /// tail is read inside the transaction, and the file append follows the commit before
    /// the next audit-writing transaction starts, so the file stays in seq order.
    async fn commit_change(
        &self,
        tx: sqlx::Transaction<'static, sqlx::Sqlite>,
        changed: Changed,
        audit: &AuditSlot,
    ) -> Result<()> {
        let chain = self.chain.get().map(|c| c.as_ref());
        sql::audit_log::commit_change(tx, chain, None, changed, audit).await
    }

    /// A write transaction, entered in turn: the in-process queue first, then SQLite's lock
    /// (BEGIN IMMEDIATE), which other processes on the same file still contend for.
    async fn begin_write(
        &self,
    ) -> Result<(
        tokio::sync::MutexGuard<'_, ()>,
        sqlx::Transaction<'static, sqlx::Sqlite>,
    )> {
        let guard = self.write_lock.lock().await;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)?;
        Ok((guard, tx))
    }

    /// The connections, for the copy to PostgreSQL (`transfer`), which reads raw rows.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn open(path: &Path) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(db_err)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Deleted values and data keys are overwritten, not just unlinked from the b-tree.
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .after_release(release_outside_transaction)
            .connect_with(opts)
            .await
            .map_err(db_err)?;
        migrate(&pool).await?;
        Ok(SqliteStore {
            pool,
            write_lock: tokio::sync::Mutex::new(()),
            chain: std::sync::OnceLock::new(),
        })
    }
}

pub(crate) fn kind_str(k: ValueKind) -> &'static str {
    match k {
        ValueKind::String => "string",
        ValueKind::Binary => "binary",
    }
}

async fn load_tags(conn: &mut SqliteConnection, secret_id: i64) -> Result<Vec<Tag>> {
    let rows = sqlx::query("SELECT key, value FROM tags WHERE secret_id = ? ORDER BY key")
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

async fn load_stages(conn: &mut SqliteConnection, secret_id: i64) -> Result<Stages> {
    let rows = sqlx::query("SELECT stage, version_id FROM version_stages WHERE secret_id = ?")
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

async fn load_versions(conn: &mut SqliteConnection, secret_id: i64) -> Result<Vec<VersionMeta>> {
    let rows = sqlx::query(
        "SELECT version_id, created_at, accessed_at, value_kind FROM secret_versions \
         WHERE secret_id = ? ORDER BY created_at, rowid",
    )
    .bind(secret_id)
    .fetch_all(conn)
    .await
    .map_err(db_err)?;
    rows.iter().map(version_from_row).collect()
}

async fn load_secret(conn: &mut SqliteConnection, secret_id: i64) -> Result<Option<SecretRecord>> {
    let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE id = ?");
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

async fn write_version(conn: &mut SqliteConnection, secret_id: i64, v: &NewVersion) -> Result<()> {
    let value = v.value.as_ref();
    // A placeholder row keeps its id and creation date when its value arrives.
    sqlx::query(
        "INSERT INTO secret_versions \
         (secret_id, version_id, created_at, value_kind, ciphertext, wrapped_key, key_name, key_version) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
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

async fn write_stages(conn: &mut SqliteConnection, secret_id: i64, stages: &Stages) -> Result<()> {
    for (stage, version) in stages {
        sqlx::query("INSERT INTO version_stages (secret_id, stage, version_id) VALUES (?, ?, ?)")
            .bind(secret_id)
            .bind(stage)
            .bind(version)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

async fn write_tags(conn: &mut SqliteConnection, secret_id: i64, tags: &[Tag]) -> Result<()> {
    for t in tags {
        sqlx::query("INSERT INTO tags (secret_id, key, value) VALUES (?, ?, ?)")
            .bind(secret_id)
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

pub(crate) fn sort_column(k: SortKey) -> &'static str {
    match k {
        SortKey::Created => "created_at",
        SortKey::LastAccessed => "COALESCE(accessed_at, 0)",
        SortKey::LastChanged => "changed_at",
        SortKey::Name => "name",
    }
}

pub(crate) enum Bind {
    Int(i64),
    Text(String),
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

/// `col` starts with `prefix`, as a range SQLite can answer from an index.
fn prefix_sql(col: &str, prefix: &str, binds: &mut Vec<Bind>) -> String {
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
        return "0".into();
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
        FilterKey::PrimaryRegion | FilterKey::OwningService => "0".into(),
    }
}

/// One filter: any of its values (each negated by a leading `!`). The SQL is built in the
/// values' order and binds pushed as it is written, so they cannot drift apart.
fn filter_clause(f: &ListFilter, binds: &mut Vec<Bind>) -> String {
    if f.values.is_empty() {
        return "0".into();
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

/// Rewrites the words a secret is found by (after its description or tags changed).
async fn write_words(
    conn: &mut SqliteConnection,
    secret_id: i64,
    text: &filter::SecretText<'_>,
) -> Result<()> {
    sqlx::query("DELETE FROM secret_words WHERE secret_id = ?")
        .bind(secret_id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    for (field, word) in filter::indexed_words(text) {
        sqlx::query("INSERT INTO secret_words (secret_id, field, word) VALUES (?, ?, ?)")
            .bind(secret_id)
            .bind(field)
            .bind(word)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

pub(crate) fn text_of(s: &SecretRecord) -> filter::SecretText<'_> {
    filter::SecretText {
        name: &s.name,
        description: s.description.as_deref(),
        tags: &s.tags,
    }
}

/// Fills `secret_words` for secrets stored before it existed, a page at a time (inside the
/// migration's transaction, so a crash leaves the migration to run again).
async fn backfill_words(conn: &mut SqliteConnection) -> Result<()> {
    let mut after = 0i64;
    loop {
        let rows = sqlx::query(
            "SELECT id, name, description FROM secrets WHERE id > ? ORDER BY id LIMIT 500",
        )
        .bind(after)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.try_get("id").map_err(db_err)?;
        for r in &rows {
            let id: i64 = r.try_get("id").map_err(db_err)?;
            let name: String = r.try_get("name").map_err(db_err)?;
            let description: Option<String> = r.try_get("description").map_err(db_err)?;
            let tags = load_tags(&mut *conn, id).await?;
            let text = filter::SecretText {
                name: &name,
                description: description.as_deref(),
                tags: &tags,
            };
            write_words(&mut *conn, id, &text).await?;
        }
    }
}

/// Tags and labels of a page of secrets in two statements, not two per secret.
async fn load_page_children(
    pool: &SqlitePool,
    page: &[SqliteRow],
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
    // Ids are integers from our own rows, so inlining them is safe.
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql =
        format!("SELECT secret_id, key, value FROM tags WHERE secret_id IN ({list}) ORDER BY key");
    for r in sqlx::query(AssertSqlSafe(sql))
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
    let sql = format!(
        "SELECT secret_id, stage, version_id FROM version_stages WHERE secret_id IN ({list})"
    );
    for r in sqlx::query(AssertSqlSafe(sql))
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

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>> {
        sql::settings::get_setting(&mut *self.read().await?, key).await
    }

    async fn init_setting(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        sql::settings::init_setting(&mut *self.read().await?, key, value).await
    }

    async fn load_keys(&self) -> Result<Vec<(String, i64, Vec<u8>)>> {
        sql::settings::load_keys(&mut *self.read().await?).await
    }

    async fn insert_key(
        &self,
        name: &str,
        version: i64,
        wrapped: &[u8],
        now: Timestamp,
    ) -> Result<()> {
        sql::settings::insert_key(&mut *self.read().await?, name, version, wrapped, now).await
    }
}

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn create_user(&self, u: &UserRecord, audit: &AuditSlot) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        sql::identity::create_user(&mut *tx, u).await?;
        self.commit_change(tx, Changed::default(), audit).await
    }

    async fn get_user(&self, name: &str) -> Result<Option<UserRecord>> {
        sql::identity::get_user(&mut *self.read().await?, name).await
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        sql::identity::list_users(&mut *self.read().await?).await
    }

    async fn delete_user(&self, name: &str, audit: &AuditSlot) -> Result<bool> {
        let (_writer, mut tx) = self.begin_write().await?;
        let deleted = sql::identity::delete_user(&mut *tx, name).await?;
        self.commit_change(tx, Changed::default(), audit).await?;
        Ok(deleted)
    }

    async fn user_exists(&self, name: &str) -> Result<bool> {
        sql::identity::user_exists(&mut *self.read().await?, name).await
    }

    async fn insert_access_key(
        &self,
        k: &AccessKeyRecord,
        max: Option<usize>,
        audit: &AuditSlot,
    ) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        sql::identity::insert_access_key(&mut *tx, k, max).await?;
        self.commit_change(tx, Changed::default(), audit).await
    }

    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyRecord>> {
        sql::identity::list_access_keys(&mut *self.read().await?, user).await
    }

    async fn find_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
        sql::identity::find_access_key(&mut *self.read().await?, access_key_id).await
    }

    async fn set_access_key_status(
        &self,
        access_key_id: &str,
        active: bool,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let s = sql::identity::set_access_key_status(access_key_id, active);
        Ok(self.write(s, Some((Changed::default(), audit))).await? == 1)
    }

    async fn touch_access_key(&self, access_key_id: &str, day: Timestamp) -> Result<()> {
        let s = sql::identity::touch_access_key(access_key_id, day);
        self.write(s, None).await?;
        Ok(())
    }

    async fn delete_access_key(&self, access_key_id: &str, audit: &AuditSlot) -> Result<()> {
        let s = sql::identity::delete_access_key(access_key_id);
        self.write(s, Some((Changed::default(), audit))).await?;
        Ok(())
    }

    async fn delete_expired_access_keys(&self, now: Timestamp) -> Result<u64> {
        // Usually there are none: a read, not a write transaction, to find out.
        let any: bool =
            sql::stmt("SELECT EXISTS (SELECT 1 FROM access_keys WHERE expires_at <= $1)")
                .bind(now)
                .scalar(&mut *self.read().await?)
                .await?;
        if !any {
            return Ok(0);
        }
        self.write(sql::identity::delete_expired_access_keys(now), None)
            .await
    }

    async fn put_user_policy(
        &self,
        user: &str,
        name: &str,
        document: &str,
        now: Timestamp,
        audit: &AuditSlot,
    ) -> Result<()> {
        let s = sql::identity::put_user_policy(user, name, document, now);
        self.write(s, Some((Changed::default(), audit))).await?;
        Ok(())
    }

    async fn delete_user_policy(&self, user: &str, name: &str, audit: &AuditSlot) -> Result<bool> {
        let s = sql::identity::delete_user_policy(user, name);
        Ok(self.write(s, Some((Changed::default(), audit))).await? == 1)
    }

    async fn user_policies(&self, user: &str) -> Result<Vec<(String, String)>> {
        sql::identity::user_policies(&mut *self.read().await?, user).await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    fn set_audit_chain(&self, chain: std::sync::Arc<dyn AuditChain>) {
        let _ = self.chain.set(chain);
    }

    async fn append_audit(&self, records: &[AuditRecord]) -> Result<()> {
        let chain = self
            .chain
            .get()
            .ok_or_else(|| Error::internal("the audit chain is not set up"))?;
        let (_writer, mut tx) = self.begin_write().await?;
        let records =
            sql::audit_log::insert_chained(&mut *tx, chain.as_ref(), records.to_vec()).await?;
        tx.commit().await.map_err(db_err)?;
        chain.committed(&records)
    }

    async fn last_audit(&self) -> Result<Option<AuditRecord>> {
        sql::audit_log::last_audit(&mut *self.read().await?).await
    }

    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        sql::audit_log::query_audit(&mut *self.read().await?, q).await
    }
}

#[async_trait]
impl SecretStore for SqliteStore {
    async fn create_secret(
        &self,
        s: &SecretRecord,
        first: Option<&NewVersion>,
        stages: &Stages,
        audit: &AuditSlot,
    ) -> Result<i64> {
        let (_writer, mut tx) = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO secrets (name, arn, description, kms_key_id, created_at, changed_at, tagged) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
        self.commit_change(tx, changed, audit).await?;
        Ok(id)
    }

    async fn find_secret(&self, secret: &SecretRef) -> Result<Option<SecretRecord>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let by = |cond: &str| format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE {cond}");
        let row = match secret {
            SecretRef::Name(name) => sqlx::query(AssertSqlSafe(by("name = ?")))
                .bind(name)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?,
            SecretRef::Arn { arn, name_part } => {
                let full = sqlx::query(AssertSqlSafe(by("arn = ?")))
                    .bind(arn)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db_err)?;
                match full {
                    Some(row) => Some(row),
                    // An ARN without its suffix: the name, if its secret's ARN has the same prefix.
                    None => {
                        let prefix = format!("{arn}-");
                        sqlx::query(AssertSqlSafe(by("name = ? AND substr(arn, 1, ?) = ?")))
                            .bind(name_part)
                            .bind(prefix.chars().count() as i64)
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
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let versions = load_versions(&mut conn, secret_id).await?;
        let stages = load_stages(&mut conn, secret_id).await?;
        Ok((versions, stages))
    }

    async fn read_version(
        &self,
        secret_id: i64,
        which: VersionSelector<'_>,
    ) -> Result<Option<StoredVersion>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        const COLS: &str = "v.version_id, v.created_at, v.accessed_at, v.value_kind, v.ciphertext, \
                            v.wrapped_key, v.key_name, v.key_version";
        let row = match which {
            VersionSelector::Id(id) => {
                let sql = format!(
                    "SELECT {COLS} FROM secret_versions v WHERE v.secret_id = ? AND v.version_id = ?"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(secret_id)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await
            }
            VersionSelector::Stage(stage) => {
                let sql = format!(
                    "SELECT {COLS} FROM version_stages s JOIN secret_versions v \
                     ON v.secret_id = s.secret_id AND v.version_id = s.version_id \
                     WHERE s.secret_id = ? AND s.stage = ?"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(secret_id)
                    .bind(stage)
                    .fetch_optional(&mut *conn)
                    .await
            }
        }
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let meta = version_from_row(&row)?;
        let value = sealed_from_row(&row)?;
        let stages = sqlx::query_scalar(
            "SELECT stage FROM version_stages WHERE secret_id = ? AND version_id = ? ORDER BY stage",
        )
        .bind(secret_id)
        .bind(&meta.version_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        Ok(Some(StoredVersion {
            meta,
            value,
            stages,
        }))
    }

    async fn modify(
        &self,
        secret_id: i64,
        f: &mut Mutation<'_>,
        audit: &AuditSlot,
    ) -> Result<SecretState> {
        let (_writer, mut tx) = self.begin_write().await?;
        let secret = load_secret(&mut tx, secret_id)
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
        sqlx::query(
            "UPDATE secrets SET description = ?, kms_key_id = ?, changed_at = ?, accessed_at = ?, \
             deleted_at = ?, purge_at = ?, resource_policy = ?, rotation_enabled = ?, \
             rotation_function = ?, rotation_after_days = ?, rotation_schedule = ?, rotation_duration = ?, \
             last_rotated_at = ?, next_rotation_at = ?, next_rotation_end = ?, rotation_state = ?, rotation_token = ?, \
             rotation_step = ?, rotation_attempt = ?, rotation_error = ?, rotation_attempted_at = ?, \
             rotation_resume_at = ?, rotation_window_end = ?, tagged = ? WHERE id = ?",
        )
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
        .bind(&s.run.last_error)
        .bind(s.run.last_attempt_at.map(|t| t.0))
        .bind(s.run.resume_at.map(|t| t.0))
        .bind(s.run.window_end.map(|t| t.0))
        .bind((s.tagged || !s.tags.is_empty()) as i64)
        .bind(secret_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if s.tags != before_tags {
            sqlx::query("DELETE FROM tags WHERE secret_id = ?")
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
            sqlx::query("DELETE FROM version_stages WHERE secret_id = ?")
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
        for gone in before_ids.iter().filter(|id| !kept.contains(id.as_str())) {
            sqlx::query("DELETE FROM secret_versions WHERE secret_id = ? AND version_id = ?")
                .bind(secret_id)
                .bind(gone)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        if stages_changed {
            write_stages(&mut tx, secret_id, &state.stages).await?;
        }
        for e in &state.events {
            tx.queue_event(e.event, &e.body, e.at).await?;
        }
        let changed = Changed {
            arn: Some(state.secret.arn.clone()),
            version_id: changed_version(&before_run_token, &state),
        };
        self.commit_change(tx, changed, audit).await?;
        Ok(state)
    }

    async fn list_secrets(&self, q: &ListQuery) -> Result<ListPage> {
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
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for b in binds {
            query = match b {
                Bind::Int(i) => query.bind(i),
                Bind::Text(t) => query.bind(t),
            };
        }
        let rows = query
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
            "SELECT id FROM secrets WHERE purge_at IS NOT NULL AND purge_at <= ? ORDER BY purge_at LIMIT ?",
        )
        .bind(now.0)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn touch_accessed(&self, secret_id: i64, version_id: &str, day: Timestamp) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        // Conditional, so concurrent readers on the same day write at most once each.
        sqlx::query("UPDATE secrets SET accessed_at = ? WHERE id = ? AND (accessed_at IS NULL OR accessed_at < ?)")
            .bind(day.0)
            .bind(secret_id)
            .bind(day.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "UPDATE secret_versions SET accessed_at = ? WHERE secret_id = ? AND version_id = ? \
             AND (accessed_at IS NULL OR accessed_at < ?)",
        )
        .bind(day.0)
        .bind(secret_id)
        .bind(version_id)
        .bind(day.0)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn delete_secret(&self, secret_id: i64, audit: &AuditSlot) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        let arn: Option<String> = sqlx::query_scalar("SELECT arn FROM secrets WHERE id = ?")
            .bind(secret_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        // Children first: labels reference versions, versions and tags reference the secret.
        for sql in [
            "DELETE FROM version_stages WHERE secret_id = ?",
            "DELETE FROM secret_versions WHERE secret_id = ?",
            "DELETE FROM tags WHERE secret_id = ?",
            "DELETE FROM secret_words WHERE secret_id = ?",
            "DELETE FROM secrets WHERE id = ?",
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
            audit,
        )
        .await?;
        Ok(())
    }

    async fn secret_by_id(&self, secret_id: i64) -> Result<Option<SecretRecord>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        load_secret(&mut conn, secret_id).await
    }
}

#[async_trait]
impl RotationStore for SqliteStore {
    async fn rotation_due(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        sql::rotation::rotation_due(&mut *self.read().await?, now, limit).await
    }

    async fn claim_rotation(
        &self,
        secret_id: i64,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let s = sql::rotation::claim_rotation(secret_id, owner, now, until);
        Ok(self.write(s, None).await? == 1)
    }

    async fn release_rotation(&self, secret_id: i64, owner: &str) -> Result<()> {
        self.write(sql::rotation::release_rotation(secret_id, owner), None)
            .await?;
        Ok(())
    }

    async fn recover_rotations(&self, now: Timestamp) -> Result<u64> {
        let (_writer, mut tx) = self.begin_write().await?;
        let resumed = sql::stmt(
            "UPDATE secrets SET rotation_resume_at = $1 WHERE lease_owner IS NOT NULL \
             AND rotation_state = 'InProgress'",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sql::stmt(
            "UPDATE secrets SET lease_owner = NULL, lease_expires_at = NULL \
             WHERE lease_owner IS NOT NULL",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(resumed)
    }

    async fn insert_rotation_function(
        &self,
        f: &RotationFunctionRecord,
        audit: &AuditSlot,
    ) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        sql::rotation::insert_rotation_function(&mut *tx, f).await?;
        self.commit_change(tx, Changed::default(), audit).await
    }

    async fn rotation_function(&self, name: &str) -> Result<Option<RotationFunctionRecord>> {
        sql::rotation::rotation_function(&mut *self.read().await?, name).await
    }

    async fn list_rotation_functions(&self) -> Result<Vec<RotationFunctionRecord>> {
        sql::rotation::list_rotation_functions(&mut *self.read().await?).await
    }

    async fn delete_rotation_function(
        &self,
        name: &str,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let (_writer, mut tx) = self.begin_write().await?;
        let deleted = sql::rotation::delete_rotation_function(&mut *tx, name, arn).await?;
        self.commit_change(tx, Changed::default(), audit).await?;
        Ok(deleted)
    }
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn insert_notification_target(
        &self,
        t: &NotificationTargetRecord,
        audit: &AuditSlot,
    ) -> Result<()> {
        let (_writer, mut tx) = self.begin_write().await?;
        sql::notifications::insert_notification_target(&mut *tx, t).await?;
        self.commit_change(tx, Changed::default(), audit).await
    }

    async fn list_notification_targets(&self) -> Result<Vec<NotificationTargetRecord>> {
        sql::notifications::list_notification_targets(&mut *self.read().await?).await
    }

    async fn delete_notification_target(&self, id: &str, audit: &AuditSlot) -> Result<bool> {
        let s = sql::notifications::delete_notification_target(id);
        Ok(self.write(s, Some((Changed::default(), audit))).await? == 1)
    }

    async fn enqueue_notification(&self, event: &str, body: &str, now: Timestamp) -> Result<()> {
        // Most servers have no targets: a read, not a write transaction, on every change.
        let wanted: bool = sql::stmt(
            "SELECT EXISTS (SELECT 1 FROM notification_targets t, json_each(t.events) e \
             WHERE e.value = $1)",
        )
        .bind(event)
        .scalar(&mut *self.read().await?)
        .await?;
        if !wanted {
            return Ok(());
        }
        let (_writer, mut tx) = self.begin_write().await?;
        tx.queue_event(event, body, now).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn due_notifications(&self, now: Timestamp, limit: usize) -> Result<Vec<OutboxItem>> {
        sql::notifications::due_notifications(&mut *self.read().await?, now, limit).await
    }

    async fn claim_notifications(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxItem>> {
        // The write lock makes the read and the move one step.
        let (_writer, mut tx) = self.begin_write().await?;
        let items = sql::notifications::due_notifications(&mut *tx, now, limit).await?;
        for item in &items {
            sql::stmt("UPDATE notification_outbox SET next_attempt_at = $1 WHERE id = $2")
                .bind(until)
                .bind(item.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(items)
    }

    async fn finish_notification(&self, id: i64) -> Result<()> {
        self.write(sql::notifications::finish_notification(id), None)
            .await?;
        Ok(())
    }

    async fn retry_notification(&self, id: i64, at: Timestamp, error: &str) -> Result<()> {
        let s = sql::notifications::retry_notification::<SqliteConnection>(id, at, error);
        self.write(s, None).await?;
        Ok(())
    }
}

#[async_trait]
impl StoreLifecycle for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)
            .map(|_| ())
    }

    async fn close(&self) {
        // Fold the WAL into the database so nothing is left for the next start to replay.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::warn!("checkpoint at shutdown failed: {e}");
        }
        self.pool.close().await;
    }
}

/// The version a `modify` wrote (its one new version) or began rotating, for its audit record.
pub(crate) fn changed_version(
    before_run_token: &Option<String>,
    state: &SecretState,
) -> Option<String> {
    match state.new_versions.as_slice() {
        [one] => Some(one.version_id.clone()),
        _ if state.secret.run.token != *before_run_token => state.secret.run.token.clone(),
        _ => None,
    }
}

/// Opens a kura database read-only (for `kura audit verify`, beside a running server).
pub async fn open_read_only(path: &Path) -> Result<SqliteStore> {
    let opts = SqliteConnectOptions::from_str("sqlite://")
        .map_err(db_err)?
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await
        .map_err(db_err)?;
    Ok(SqliteStore {
        pool,
        write_lock: tokio::sync::Mutex::new(()),
        chain: std::sync::OnceLock::new(),
    })
}

#[cfg(test)]
mod durability_tests {
    use super::*;

    /// What makes an acknowledged write survive power loss, not only a killed process (the
    /// page cache outlives a process, so an end-to-end SIGKILL test cannot see a missing
    /// fsync): every pooled connection runs in WAL mode with synchronous=FULL, which syncs
    /// the WAL on each commit.
    #[tokio::test]
    async fn every_connection_syncs_each_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("kura.db"))
            .await
            .unwrap();
        // Several connections held at once, so the pool has to open more than one.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(store.pool.acquire().await.unwrap());
        }
        for conn in &mut held {
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(journal, "wal");
            // 2 is FULL (0 OFF, 1 NORMAL, 3 EXTRA).
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(synchronous, 2, "synchronous must be FULL");
        }
    }
}
