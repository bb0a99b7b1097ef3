//! The PostgreSQL backend, for several kura nodes on one database.
//!
//! Same contract as [`SqliteStore`](crate::SqliteStore), different means: SQLite has one writer
//! at a time, PostgreSQL has many, on many nodes. So write transactions (READ COMMITTED) lock
//! the rows they read before changing them (`SELECT … FOR UPDATE` on the secret in `modify`, on
//! the user when counting its keys), single-row bookkeeping is one conditional UPDATE, and the
//! audit chain's tail is read and extended under one database-wide advisory lock. Deadlocks and
//! serialization failures are retried a few times; an outage, a full pool or conflicts that
//! persist answer [`Error::unavailable`] at once instead of hanging.
//!
//! Here: the pool, migrations, errors, retries and how PostgreSQL runs the shared SQL
//! (`crate::sql`, through `Conn for PgConnection`); one file per aggregate beside it
//! (`secrets`, `identity`, `audit_log`, `rotation`, `notifications`) with its transactions.
//! The schema is `migrations/postgres/`.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use kura_core::labels::Stages;
use kura_core::model::{NewVersion, SecretRecord, SecretState, VersionMeta};
use kura_core::names::SecretRef;
use kura_core::{Error, Result, Timestamp};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres};

use crate::audit::{AuditChain, AuditSlot, Changed};
use crate::cache::{self, ReadCache};
use crate::prelude::*;
use crate::{
    AccessKeyRecord, AuditQuery, AuditRecord, CursorValue, KeyRewrap, ListPage, ListQuery,
    Mutation, NotificationTargetRecord, OutboxItem, RotationFunctionRecord, SettingSwap, SortKey,
    StoredVersion, SweptAccessKey, UserRecord, VersionSelector,
};

/// Versioned migrations, applied in order. PostgreSQL starts from the SQLite schema's final
/// shape, so its numbering is its own.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        include_str!("../../migrations/postgres/0002_identity_changes.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_audit_node.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_kms_keys.sql"),
    ),
    (
        5,
        include_str!("../../migrations/postgres/0005_cache_changes.sql"),
    ),
    (
        6,
        include_str!("../../migrations/postgres/0006_cache_changes_by_exclusion.sql"),
    ),
    (7, include_str!("../../migrations/postgres/0007_pki.sql")),
    (
        8,
        include_str!("../../migrations/postgres/0008_console_sessions.sql"),
    ),
    (
        9,
        include_str!("../../migrations/postgres/0009_acme_accounts.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_expiry.sql"),
    ),
];

/// The channel the database announces identity changes on (migration 0002).
const IDENTITY_CHANNEL: &str = "kura_identity";
/// The channel key changes are announced on (migration 0004).
const KEYS_CHANNEL: &str = "kura_keys";
/// The channel changes to what the read cache holds are announced on (migration 0005).
const CACHE_CHANNEL: &str = "kura_cache";

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
/// than this fails (the database is down or saturated) instead of hanging the request. A
/// request refused during an outage waits twice (its authentication or operation, then its
/// audit record), so this bounds its answer at about 6 s.
const MAX_CONNECTIONS: u32 = 16;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Session settings (PostgreSQL syntax): how long a statement waits for a lock, and how long
/// a transaction may sit idle before the server ends its session. Transactions here hold
/// locks for milliseconds, so these only fire when something is wrong.
const LOCK_TIMEOUT: &str = "5s";
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "60s";

fn db_err(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(d) => {
            let code = d.code().unwrap_or_default();
            // 40001 serialization_failure, 40P01 deadlock_detected: retried by `retry`.
            if code == "40001" || code == "40P01" {
                return Error::unavailable(format!("{CONFLICT}: {e}"));
            }
            // Class 08: connection exceptions; 57P0x: the server is shutting down or starting;
            // 53300: too many connections; 55P03: a lock not granted within LOCK_TIMEOUT;
            // 25P03: the session ended for idling in a transaction.
            if code.starts_with("08")
                || code.starts_with("57P0")
                || ["53300", "55P03", "25P03"].contains(&code.as_ref())
            {
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

mod audit_log;
mod identity;
mod keys;
mod listen;
mod notifications;
mod pki;
mod rotation;
mod secrets;
mod sessions;

use crate::rows::*;
use crate::sql::audit_log::Committable;
use crate::sql::{self, Conn, Stmt};

type Tx<'c> = sqlx::Transaction<'c, Postgres>;

/// PostgreSQL runs the shared SQL with row locks (writers run side by side), code point
/// order asked for explicitly, and text that cannot hold NUL.
impl Conn for PgConnection {
    type Row = PgRow;
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const CODE_POINT_ORDER: &'static str = " COLLATE \"C\"";
    const INSERTION_ORDER: &'static str = "seq";
    const TEXT_HOLDS_NUL: bool = false;
    const AUDIT_LOOKUP_BEHIND: bool = false;
    const TAGS_JSON: &'static str = "(SELECT json_agg(json_build_array(t.key, t.value) ORDER BY t.key)::text \
         FROM tags t WHERE t.secret_id = s.id)";
    const STAGES_JSON: &'static str = "(SELECT json_agg(json_build_array(v.stage, v.version_id))::text \
         FROM version_stages v WHERE v.secret_id = s.id)";
    const VERSIONS_JSON: &'static str = "(SELECT json_agg(json_build_array(v.version_id, \
         v.created_at, v.accessed_at, CASE WHEN v.value_kind IS NULL THEN 0 ELSE 1 END) \
         ORDER BY v.created_at, v.seq)::text FROM secret_versions v WHERE v.secret_id = s.id)";

    sql::run_statements!(db_err);

    async fn insert_words(&mut self, secret_id: i64, words: Vec<(i64, String)>) -> Result<()> {
        let (fields, words): (Vec<i64>, Vec<String>) = words.into_iter().unzip();
        // One statement for all of them: a round trip per word adds up over the network.
        sqlx::query(
            "INSERT INTO secret_words (secret_id, field, word) \
             SELECT $1, f, w FROM UNNEST($2::bigint[], $3::text[]) AS t(f, w)",
        )
        .bind(secret_id)
        .bind(fields)
        .bind(words)
        .execute(&mut *self)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn queue_event(&mut self, event: &str, body: &str, at: Timestamp) -> Result<()> {
        sql::stmt(
            "INSERT INTO notification_outbox (target_id, body, next_attempt_at) \
             SELECT t.id, $1, $2 FROM notification_targets t \
             WHERE t.events::jsonb @> jsonb_build_array($3::text)",
        )
        .bind(body)
        .bind(at)
        .bind(event)
        .execute(self)
        .await?;
        Ok(())
    }

    async fn lock_audit_tail(&mut self) -> Result<()> {
        // Held until the transaction ends; serializes every audit append of every node. The
        // tail read after it (a fresh snapshot per statement under READ COMMITTED) sees the
        // last committed record.
        sql::stmt("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK)
            .execute(self)
            .await?;
        Ok(())
    }
}

impl Committable for Tx<'_> {
    type Conn = PgConnection;

    fn conn(&mut self) -> &mut PgConnection {
        self
    }

    async fn commit(self) -> Result<()> {
        sqlx::Transaction::commit(self).await.map_err(db_err)
    }
}

pub struct PgStore {
    pool: PgPool,
    /// Set once the server has its audit key; until then writes commit no record.
    chain: OnceLock<Arc<dyn AuditChain>>,
    /// Held from an audit-writing transaction's tail read until its `committed` call, so this
    /// node hands records to its chain in commit order (the advisory lock orders the nodes'
    /// commits in the database; this orders the hand-offs after them).
    audit_order: tokio::sync::Mutex<()>,
    /// Identity changes heard from the database, for whoever caches users (started on the
    /// first `changes` call).
    changes: OnceLock<tokio::sync::broadcast::Sender<crate::Change>>,
    /// What reads find, used while the listener hears every change (`listen.rs`).
    cache: Arc<ReadCache>,
}

/// The schema version after every migration (what a backup of a PostgreSQL database reads).
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

async fn migrate(pool: &PgPool) -> Result<()> {
    // One transaction under an advisory lock: nodes starting together wait for the first to
    // finish, then find its migrations applied.
    let mut tx = pool.begin().await.map_err(db_err)?;
    // Waiting for another node's migration is expected, however long it takes.
    sqlx::query("SET LOCAL lock_timeout = 0")
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
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
            .application_name("kura")
            .options([
                // A lock held by a node that stopped answering (a partition keeps its session
                // open until TCP gives up, hours later) fails waiters fast, retryably, instead
                // of stalling every request on that secret.
                ("lock_timeout", LOCK_TIMEOUT),
                // And such a node's open transaction is ended by the server, releasing them.
                (
                    "idle_in_transaction_session_timeout",
                    IDLE_IN_TRANSACTION_TIMEOUT,
                ),
            ]);
        // One connection first: the pool's own error for an unreachable server is only that
        // it timed out, and the operator needs the reason (refused, no such database, auth).
        match tokio::time::timeout(ACQUIRE_TIMEOUT, sqlx::ConnectOptions::connect(&opts)).await {
            Ok(Ok(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
            }
            Ok(Err(e)) => return Err(db_err(e)),
            Err(_) => {
                return Err(Error::unavailable(format!(
                    "no answer from the database server within {} s",
                    ACQUIRE_TIMEOUT.as_secs()
                )));
            }
        }
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
            changes: OnceLock::new(),
            cache: Arc::new(ReadCache::new(cache::DEFAULT_BUDGET)),
        })
    }

    /// The connections, for the copy from SQLite (`transfer`), which writes raw rows.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<Tx<'static>> {
        self.pool.begin().await.map_err(db_err)
    }

    /// A connection for reads.
    async fn read(&self) -> Result<sqlx::pool::PoolConnection<Postgres>> {
        self.pool.acquire().await.map_err(db_err)
    }

    /// One shared statement: bookkeeping (`change` None) runs alone; a request's change runs
    /// in a transaction with its audit record. Returns the rows it changed.
    async fn write(&self, s: Stmt<'_>, change: Option<(Changed, &AuditSlot)>) -> Result<u64> {
        match change {
            None => s.execute(&mut *self.read().await?).await,
            Some((c, audit)) => {
                let mut tx = self.begin().await?;
                let done = s.execute(&mut *tx).await?;
                self.commit_change(tx, c, audit).await?;
                Ok(done)
            }
        }
    }

    /// Commits a transaction that changes something a request asked for, with the request's
    /// audit record if one is waiting, exactly as the SQLite backend does: "refused" then
    /// means "not done".
    async fn commit_change(&self, tx: Tx<'_>, changed: Changed, audit: &AuditSlot) -> Result<()> {
        let chain = self.chain.get().map(|c| c.as_ref());
        sql::audit_log::commit_change(tx, chain, Some(&self.audit_order), changed, audit).await
    }
}

#[async_trait]
impl SettingsStore for PgStore {
    async fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let load = async { sql::settings::get_setting(&mut *self.read().await?, key).await };
        self.cache.setting(key, load).await
    }

    async fn init_setting(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let done = sql::settings::init_setting(&mut *self.read().await?, key, value).await;
        self.cache.settings_changed();
        done
    }

    async fn replace_setting(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool> {
        let done =
            sql::settings::replace_setting(&mut *self.read().await?, key, expected, value).await;
        self.cache.settings_changed();
        done
    }

    async fn load_keys(&self) -> Result<Vec<(String, i64, Vec<u8>)>> {
        sql::settings::load_keys(&mut *self.read().await?).await
    }

    async fn rewrap_keys(&self, keys: &[KeyRewrap], swaps: &[SettingSwap<'_>]) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Another node's INSERT into keys waits until this commits (reads do not): the rows
        // compared below are then all the rows there are.
        sqlx::query("LOCK TABLE keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if !sql::settings::rewrap_keys(&mut *tx, keys, swaps).await? {
            return Ok(false);
        }
        let done = tx.commit().await.map_err(db_err);
        self.cache.settings_changed();
        done.map(|()| true)
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
impl StoreLifecycle for PgStore {
    fn cache_stats(&self) -> crate::CacheStats {
        self.cache.stats()
    }

    fn set_cache_budget(&self, bytes: usize) {
        self.cache.set_budget(bytes);
    }

    fn pool_stats(&self) -> Vec<crate::PoolStats> {
        vec![crate::PoolStats::of("main", &self.pool)]
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)
            .map(|_| ())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<crate::Change>> {
        Some(
            self.changes
                .get_or_init(|| self.listen_for_changes())
                .subscribe(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
