//! The embedded default backend: SQLite in WAL mode with synchronous=FULL, so an acknowledged
//! write survives power loss. Writes run one at a time on one connection, each in a savepoint
//! of a transaction taken up front (BEGIN IMMEDIATE), and the writes that queued meanwhile
//! share its COMMIT (`group`: one fsync per batch). The statements themselves
//! are the shared ones (`crate::sql`); here are the connection, migrations and transactions.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kura_core::filter;
use kura_core::labels::Stages;
use kura_core::model::{NewVersion, SecretRecord, SecretState, VersionMeta};
use kura_core::names::SecretRef;
use kura_core::{Error, Result, Timestamp};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, SqliteConnection, SqlitePool};

use crate::audit::{AuditChain, AuditSlot, Changed};
use crate::cache::{self, ReadCache};
use crate::prelude::*;
use crate::rows::*;
use crate::sql::{self, Conn, Stmt};
use conn::{DirectConn, DirectReaders};
use group::{Turn, Writer};

use crate::{
    AccessKeyRecord, AuditQuery, AuditRecord, KeyRewrap, KmsKeyRecord, ListPage, ListQuery,
    Mutation, NotificationTargetRecord, OutboxItem, RotationFunctionRecord, SettingSwap,
    StoredVersion, SweptAccessKey, UserRecord, VersionSelector, WrappedDataKey,
};

mod conn;
mod group;
mod lookup;
mod pki;
mod sessions;

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
    (11, include_str!("../migrations/sqlite/0011_kms_keys.sql")),
    (
        12,
        include_str!("../migrations/sqlite/0012_audit_lookup_behind.sql"),
    ),
    (13, include_str!("../migrations/sqlite/0013_pki.sql")),
    (
        14,
        include_str!("../migrations/sqlite/0014_console_sessions.sql"),
    ),
    (
        15,
        include_str!("../migrations/sqlite/0015_acme_accounts.sql"),
    ),
    (16, include_str!("../migrations/sqlite/0016_expiry.sql")),
    (
        17,
        include_str!("../migrations/sqlite/0017_audit_lookup_own_file.sql"),
    ),
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

/// SQLite runs the shared SQL as it is: its one writer needs no row locks, its text sorts in
/// code point order and holds any character. The same for the read pool's connections
/// (sqlx) and the writer's (`conn`).
macro_rules! sqlite_dialect {
    () => {
        const FOR_UPDATE: &'static str = "";
        const CODE_POINT_ORDER: &'static str = "";
        const INSERTION_ORDER: &'static str = "rowid";
        const TEXT_HOLDS_NUL: bool = true;
        const AUDIT_LOOKUP_BEHIND: bool = true;
        const TAGS_JSON: &'static str = "(SELECT json_group_array(json_array(t.key, t.value) ORDER BY t.key) \
             FROM tags t WHERE t.secret_id = s.id)";
        const STAGES_JSON: &'static str = "(SELECT json_group_array(json_array(v.stage, v.version_id)) \
             FROM version_stages v WHERE v.secret_id = s.id)";
        const VERSIONS_JSON: &'static str = "(SELECT json_group_array(json_array(v.version_id, \
             v.created_at, v.accessed_at, CASE WHEN v.value_kind IS NULL THEN 0 ELSE 1 END) \
             ORDER BY v.created_at, v.rowid) FROM secret_versions v WHERE v.secret_id = s.id)";

        async fn insert_words(&mut self, secret_id: i64, words: Vec<(i64, String)>) -> Result<()> {
            for (field, word) in words {
                sql::stmt("INSERT INTO secret_words (secret_id, field, word) VALUES ($1, $2, $3)")
                    .bind(secret_id)
                    .bind(field)
                    .bind(word)
                    .execute(&mut *self)
                    .await?;
            }
            Ok(())
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
    };
}

impl Conn for SqliteConnection {
    type Row = SqliteRow;
    sqlite_dialect!();
    sql::run_statements!(db_err);
}

impl Conn for DirectConn {
    type Row = conn::DirectRow;
    sqlite_dialect!();

    async fn execute(&mut self, s: Stmt<'_>) -> Result<u64> {
        DirectConn::execute(self, s)
    }

    async fn fetch_all(&mut self, s: Stmt<'_>) -> Result<Vec<Self::Row>> {
        DirectConn::fetch_all(self, s)
    }

    async fn fetch_optional(&mut self, s: Stmt<'_>) -> Result<Option<Self::Row>> {
        DirectConn::fetch_optional(self, s)
    }
}

pub struct SqliteStore {
    /// Connections for reads (WAL: they see only committed data).
    pool: SqlitePool,
    /// Every write runs here, in turn, and shares commits with the writes queued beside it
    /// (see `group`).
    writer: Writer,
    /// Keeps the audit lookup tables close behind the trail.
    lookup: Arc<LookupIndexer>,
    /// What reads find, kept until a write of this process changes it (only this process
    /// writes the file while the server runs).
    cache: ReadCache,
    /// Reads of many rows, called directly (see `conn`).
    readers: DirectReaders,
}

impl SqliteStore {
    /// One shared statement in its own write transaction; returns the rows it changed.
    /// `change`: the statement is a request's change (see
    /// [`commit_change`](Self::commit_change)), `None` for bookkeeping (last-used days,
    /// leases, the outbox).
    async fn write(&self, s: Stmt<'_>, change: Option<(Changed, &AuditSlot)>) -> Result<u64> {
        let mut tx = match change {
            Some(_) => self.begin_write().await?,
            None => self.writer.background_turn().await?,
        };
        let done = s.execute(&mut *tx).await?;
        match change {
            Some((c, audit)) => self.commit_change(tx, c, audit).await?,
            None => tx.commit(Vec::new()).await?,
        }
        Ok(done)
    }

    /// A connection for reads.
    async fn read(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        self.pool.acquire().await.map_err(db_err)
    }

    /// Commits a turn that changes something a request asked for, with the request's audit
    /// record if one is waiting: "refused" then means "not done". Every such write path ends
    /// here. The record is numbered and chained inside the turn (the tail read there is the
    /// shared transaction's, with every earlier turn's records); the draft is settled once
    /// the COMMIT holding it returned.
    async fn commit_change(&self, mut tx: Turn, changed: Changed, audit: &AuditSlot) -> Result<()> {
        let Some(chain) = self.writer.chain() else {
            return tx.commit(Vec::new()).await;
        };
        let Some(draft) = audit.take(&changed) else {
            return tx.commit(Vec::new()).await;
        };
        let done = match sql::audit_log::insert_chained(&mut *tx, chain, vec![draft.record.clone()])
            .await
        {
            Ok(records) => tx.commit(records).await,
            Err(e) => Err(e),
        };
        audit.settle(draft, done.is_ok());
        if done.is_ok() {
            self.audit_committed(1);
        }
        done
    }

    /// A write turn: the connection inside a savepoint of the shared write transaction,
    /// entered in order (see `group`).
    async fn begin_write(&self) -> Result<Turn> {
        self.writer.turn().await
    }

    /// A turn for a change that is a request's (`audit` holds its record) or work nobody
    /// waits for (`NO_AUDIT`: rotation steps, the purge), which lets requests go first.
    async fn begin_change(&self, audit: &AuditSlot) -> Result<Turn> {
        if std::ptr::eq(audit, &crate::NO_AUDIT) {
            self.writer.background_turn().await
        } else {
            self.writer.turn().await
        }
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
            // A connection is a thread of this process, not a network peer that may have
            // gone: pinging it before each use (sqlx's default) costs every read a round trip
            // to that thread and finds nothing (a dead one fails its next statement anyway).
            .test_before_acquire(false)
            .after_release(release_outside_transaction)
            .connect_with(opts.clone())
            .await
            .map_err(db_err)?;
        migrate(&pool).await?;
        let writer = Writer::open(path, false).await?;
        // Checked (and emptied if filled from another trail) before any reader attaches it.
        let lookup = LookupIndexer::new(lookup::Filler::open(path).await?, true)?;
        Ok(SqliteStore {
            pool,
            writer,
            lookup,
            cache: ReadCache::live(cache::DEFAULT_BUDGET),
            readers: DirectReaders::new(path, false, lookup::attach),
        })
    }
}

/// Keeps the audit lookup tables (`audit_by_resource`, `audit_by_principal`, in their own
/// file: see `lookup`) a few seconds behind the trail: after a commit that added records,
/// once the last pass is old enough or enough records wait, a pass on the filler's own
/// thread adds what is new ([`sql::audit_log::index_behind`]). Lookups read what is not in
/// them yet from the trail.
///
/// A pass costs about one page per distinct resource whatever its size, so fewer, larger
/// passes cost less in all; and the thread runs at a lower priority (nice 10), so on a busy
/// machine the requests' threads go first and a pass takes the spare time.
struct LookupIndexer {
    filler: lookup::Filler,
    state: std::sync::Mutex<IndexerState>,
    /// Wakes the filler's thread for a pass (none for a read-only look).
    wake: Option<std::sync::mpsc::SyncSender<()>>,
}

#[derive(Default)]
struct IndexerState {
    /// When the last pass ended; `None` before the first (records of an earlier run may
    /// wait) and after a pass that stopped at its limit.
    last: Option<Instant>,
    /// Records committed since the last pass.
    waiting: usize,
    running: bool,
    closed: bool,
}

/// A pass runs at least this often while records are written ...
const LOOKUP_EVERY: Duration = Duration::from_secs(5);
/// ... or once this many wait.
const LOOKUP_WAITING: usize = 100_000;
/// Records one pass adds at most, so a backlog (an upgraded database) is taken in turns.
const LOOKUP_PER_PASS: i64 = 200_000;

impl LookupIndexer {
    /// An indexer filling with `filler`; `fills`: whether it runs passes at all.
    fn new(filler: lookup::Filler, fills: bool) -> Result<Arc<LookupIndexer>> {
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let indexer = Arc::new(LookupIndexer {
            filler,
            state: Default::default(),
            wake: fills.then_some(wake),
        });
        if fills {
            let weak = Arc::downgrade(&indexer);
            std::thread::Builder::new()
                .name("kura-audit-lookup".into())
                .spawn(move || {
                    lower_priority();
                    // Ends once the store (the sender) is gone.
                    while woken.recv().is_ok() {
                        let Some(indexer) = weak.upgrade() else {
                            return;
                        };
                        indexer.pass();
                    }
                })
                .map_err(|e| {
                    Error::internal(format!("cannot start the audit lookup filler: {e}"))
                })?;
        }
        Ok(indexer)
    }

    fn pass(&self) {
        let result = self.filler.pass(LOOKUP_PER_PASS);
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        st.running = false;
        match result {
            Ok(added) => {
                st.waiting = st.waiting.saturating_sub(added as usize);
                st.last = (added < LOOKUP_PER_PASS).then(Instant::now);
            }
            Err(e) => {
                // Lookups stay right (they read the rest from the trail); the next commit
                // tries again after the interval.
                st.last = Some(Instant::now());
                tracing::warn!(
                    detail = e.detail.as_deref().unwrap_or(&e.message),
                    "the audit lookup tables could not be brought up to date"
                );
            }
        }
    }

    /// `records` audit records were committed: wakes the filler if a pass is due.
    fn committed(&self, records: usize) {
        let Some(wake) = &self.wake else { return };
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        st.waiting += records;
        let due =
            st.waiting >= LOOKUP_WAITING || st.last.is_none_or(|t| t.elapsed() >= LOOKUP_EVERY);
        if st.running || st.closed || !due {
            return;
        }
        st.running = wake.try_send(()).is_ok();
    }

    fn close(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.closed = true;
        }
        self.filler.close();
    }
}

/// The calling thread yields to the others of the process when the cores are busy.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: setpriority reads its arguments only; on Linux a thread id names one thread.
    let tid = unsafe { libc::gettid() };
    // SAFETY: as above; a failure only leaves the priority as it was.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) };
}

/// Elsewhere a thread's priority is its process's.
#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

impl SqliteStore {
    /// `records` audit records were committed (see [`LookupIndexer`]).
    fn audit_committed(&self, records: usize) {
        self.lookup.committed(records);
    }
}

/// Fills `secret_words` for secrets stored before it existed, a page at a time (inside the
/// migration's transaction, so a crash leaves the migration to run again).
async fn backfill_words(conn: &mut SqliteConnection) -> Result<()> {
    let mut after = 0i64;
    loop {
        let rows = sql::stmt(
            "SELECT id, name, description FROM secrets WHERE id > $1 ORDER BY id LIMIT 500",
        )
        .bind(after)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.col("id")?;
        for r in &rows {
            let id: i64 = r.col("id")?;
            let name: String = r.col("name")?;
            let description: Option<String> = r.col("description")?;
            let tags = sql::secrets::load_tags(&mut *conn, id).await?;
            let text = filter::SecretText {
                name: &name,
                description: description.as_deref(),
                tags: &tags,
                expires_at: None,
            };
            sql::secrets::write_words(&mut *conn, id, &text).await?;
        }
    }
}

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let load = self
            .readers
            .point(|c| conn::ready(sql::settings::get_setting(c, key))?);
        self.cache.setting(key, load).await
    }

    async fn init_setting(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let done = async {
            let mut tx = self.begin_write().await?;
            let stored = sql::settings::init_setting(&mut *tx, key, value).await?;
            tx.commit(Vec::new()).await?;
            Ok(stored)
        }
        .await;
        self.cache.settings_changed();
        done
    }

    async fn replace_setting(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool> {
        let done = async {
            let mut tx = self.begin_write().await?;
            let done = sql::settings::replace_setting(&mut *tx, key, expected, value).await?;
            tx.commit(Vec::new()).await?;
            Ok(done)
        }
        .await;
        self.cache.settings_changed();
        done
    }

    async fn load_keys(&self) -> Result<Vec<(String, i64, Vec<u8>)>> {
        sql::settings::load_keys(&mut *self.read().await?).await
    }

    async fn rewrap_keys(&self, keys: &[KeyRewrap], swaps: &[SettingSwap<'_>]) -> Result<bool> {
        // BEGIN IMMEDIATE: no other writer (a key inserted by this process or another) until
        // the commit.
        let mut tx = self.begin_write().await?;
        if !sql::settings::rewrap_keys(&mut *tx, keys, swaps).await? {
            return Ok(false);
        }
        let done = tx.commit(Vec::new()).await;
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
        let mut tx = self.begin_write().await?;
        sql::settings::insert_key(&mut *tx, name, version, wrapped, now).await?;
        tx.commit(Vec::new()).await
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn ensure_kms_key(&self, key: &KmsKeyRecord) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sql::keys::insert_kms_key(&mut *tx, key, true).await?;
        tx.commit(Vec::new()).await
    }

    async fn create_kms_key(
        &self,
        key: &KmsKeyRecord,
        wrapped: &[u8],
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sql::keys::insert_kms_key(&mut *tx, key, false).await?;
        sql::settings::insert_key(&mut *tx, &key.name, 1, wrapped, key.created_at).await?;
        self.commit_change(tx, key_changed(arn), audit).await
    }

    async fn kms_keys(&self) -> Result<Vec<KmsKeyRecord>> {
        sql::keys::kms_keys(&mut *self.read().await?).await
    }

    async fn add_key_version(
        &self,
        name: &str,
        version: i64,
        wrapped: &[u8],
        now: Timestamp,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sql::keys::add_key_version(&mut *tx, name, version, wrapped, now).await?;
        self.commit_change(tx, key_changed(arn), audit).await
    }

    async fn put_key_policy(
        &self,
        name: &str,
        policy: &str,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sql::keys::put_key_policy(&mut *tx, name, policy).await?;
        self.commit_change(tx, key_changed(arn), audit).await?;
        Ok(done)
    }

    async fn rewrap_due(&self, now: Timestamp) -> Result<Vec<String>> {
        sql::keys::rewrap_due(&mut *self.read().await?, now).await
    }

    async fn claim_rewrap(
        &self,
        name: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let s = sql::keys::claim_rewrap(name, owner, now, until);
        Ok(self.write(s, None).await? == 1)
    }

    async fn rewrap_candidates(
        &self,
        name: &str,
        below: i64,
        limit: usize,
    ) -> Result<Vec<WrappedDataKey>> {
        sql::keys::rewrap_candidates(&mut *self.read().await?, name, below, limit).await
    }

    async fn apply_rewrap(
        &self,
        name: &str,
        updates: &[(WrappedDataKey, Vec<u8>, i64)],
    ) -> Result<u64> {
        let mut tx = self.writer.background_turn().await?;
        let mut done = 0;
        for (old, wrapped, version) in updates {
            done += sql::keys::apply_one(&mut *tx, name, old, wrapped, *version).await?;
        }
        sql::keys::count_progress(&mut *tx, name, done).await?;
        let committed = tx.commit(Vec::new()).await;
        self.cache.rewrapped(updates);
        committed.map(|()| done)
    }

    async fn finish_rewrap(&self, name: &str, target: i64) -> Result<()> {
        self.write(sql::keys::finish_rewrap(name, target), None)
            .await?;
        Ok(())
    }

    async fn key_uses(&self, name: &str, references: &[String]) -> Result<i64> {
        sql::keys::key_uses(&mut *self.read().await?, name, references).await
    }

    async fn set_key_deletion(
        &self,
        name: &str,
        at: Option<Timestamp>,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let s = sql::keys::set_key_deletion(name, at);
        Ok(self.write(s, Some((key_changed(arn), audit))).await? == 1)
    }

    async fn delete_kms_key(
        &self,
        name: &str,
        references: &[String],
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sql::keys::delete_kms_key(&mut *tx, name, references, now).await?;
        tx.commit(Vec::new()).await?;
        Ok(done)
    }

    async fn restart_rewrap(&self, name: &str, target: i64) -> Result<()> {
        self.write(sql::keys::restart_rewrap(name, target), None)
            .await?;
        Ok(())
    }

    async fn rewrap_remaining(&self, name: &str, below: i64) -> Result<i64> {
        sql::keys::rewrap_remaining(&mut *self.read().await?, name, below).await
    }
}

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn create_user(&self, u: &UserRecord, audit: &AuditSlot) -> Result<()> {
        let mut tx = self.begin_write().await?;
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
        let mut tx = self.begin_write().await?;
        let deleted = sql::identity::delete_user(&mut *tx, name).await?;
        let done = self.commit_change(tx, Changed::default(), audit).await;
        self.cache.access_keys_changed();
        done.map(|()| deleted)
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
        let mut tx = self.begin_write().await?;
        sql::identity::insert_access_key(&mut *tx, k, max).await?;
        let done = self.commit_change(tx, Changed::default(), audit).await;
        self.cache.access_key_changed(&k.access_key_id);
        done
    }

    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyRecord>> {
        sql::identity::list_access_keys(&mut *self.read().await?, user).await
    }

    async fn find_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
        let load = self
            .readers
            .point(|c| conn::ready(sql::identity::find_access_key(c, access_key_id))?);
        self.cache.access_key(access_key_id, load).await
    }

    async fn set_access_key_status(
        &self,
        access_key_id: &str,
        active: bool,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let s = sql::identity::set_access_key_status(access_key_id, active);
        let done = self.write(s, Some((Changed::default(), audit))).await;
        self.cache.access_key_changed(access_key_id);
        Ok(done? == 1)
    }

    async fn expire_access_key(
        &self,
        access_key_id: &str,
        at: Timestamp,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let s = sql::identity::expire_access_key(access_key_id, at);
        let done = self.write(s, Some((Changed::default(), audit))).await;
        self.cache.access_key_changed(access_key_id);
        Ok(done? == 1)
    }

    async fn touch_access_key(&self, access_key_id: &str, day: Timestamp) -> Result<()> {
        let s = sql::identity::touch_access_key(access_key_id, day);
        let done = self.write(s, None).await;
        self.cache.access_key_changed(access_key_id);
        done.map(|_| ())
    }

    async fn delete_access_key(&self, access_key_id: &str, audit: &AuditSlot) -> Result<()> {
        let s = sql::identity::delete_access_key(access_key_id);
        let done = self.write(s, Some((Changed::default(), audit))).await;
        self.cache.access_key_changed(access_key_id);
        done.map(|_| ())
    }

    async fn delete_expired_access_keys(&self, now: Timestamp) -> Result<Vec<SweptAccessKey>> {
        // Usually there are none: a read, not a write transaction, to find out.
        let any: bool = sql::stmt(sql::identity::ANY_SWEPT_ACCESS_KEYS)
            .bind(now)
            .bind(sql::identity::user_keys_swept_before(now))
            .scalar(&mut *self.read().await?)
            .await?;
        if !any {
            return Ok(Vec::new());
        }
        let done = async {
            let mut tx = self.writer.background_turn().await?;
            let swept = sql::identity::delete_expired_access_keys(&mut *tx, now).await?;
            tx.commit(Vec::new()).await?;
            Ok(swept)
        }
        .await;
        self.cache.access_keys_changed();
        done
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
        self.writer.set_chain(chain);
    }

    async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<()> {
        let chain = self
            .writer
            .chain()
            .ok_or_else(|| Error::internal("the audit chain is not set up"))?;
        let mut tx = self.begin_write().await?;
        let records = sql::audit_log::insert_chained(&mut *tx, chain, records).await?;
        let n = records.len();
        // The records go to the audit file right after the commit that holds them.
        tx.commit(records).await?;
        self.audit_committed(n);
        Ok(())
    }

    async fn last_audit(&self) -> Result<Option<AuditRecord>> {
        sql::audit_log::last_audit(&mut *self.read().await?).await
    }

    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let q = q.clone();
        self.readers
            .run(move |c| conn::ready(sql::audit_log::query_audit(c, &q))?)
            .await
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
        let mut tx = self.begin_change(audit).await?;
        let (id, changed) = sql::secrets::create_secret(&mut *tx, s, first, stages).await?;
        let done = self.commit_change(tx, changed, audit).await;
        // A store id may be reused after a delete: nothing of an earlier owner survives.
        self.cache.secret_changed(id);
        done.map(|()| id)
    }

    async fn find_secret(&self, secret: &SecretRef) -> Result<Option<SecretRecord>> {
        let load = self
            .readers
            .point(|c| conn::ready(sql::secrets::find_secret(c, secret))?);
        self.cache.secret(secret, load).await
    }

    async fn versions(&self, secret_id: i64) -> Result<(Vec<VersionMeta>, Stages)> {
        let load = self.readers.point(|c| {
            conn::ready(async {
                let versions = sql::secrets::load_versions(c, secret_id).await?;
                let stages = sql::secrets::load_stages(c, secret_id).await?;
                Ok((versions, stages))
            })?
        });
        self.cache.versions(secret_id, load).await
    }

    async fn read_version(
        &self,
        secret_id: i64,
        which: VersionSelector<'_>,
    ) -> Result<Option<StoredVersion>> {
        let load = self
            .readers
            .point(|c| conn::ready(sql::secrets::read_version(c, secret_id, which))?);
        self.cache.version(secret_id, which, load).await
    }

    async fn modify(
        &self,
        secret_id: i64,
        f: &mut Mutation<'_>,
        audit: &AuditSlot,
    ) -> Result<SecretState> {
        let done = async {
            let mut tx = self.begin_change(audit).await?;
            let (state, changed) = sql::secrets::modify(&mut *tx, secret_id, f).await?;
            self.commit_change(tx, changed, audit).await?;
            Ok(state)
        }
        .await;
        self.cache.secret_changed(secret_id);
        done
    }

    async fn list_secrets(&self, q: &ListQuery) -> Result<ListPage> {
        let q = q.clone();
        self.readers
            .run(move |c| conn::ready(sql::secrets::list_secrets(c, &q))?)
            .await
    }

    async fn due_for_purge(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        sql::secrets::due_for_purge(&mut *self.read().await?, now, limit).await
    }

    async fn expiry_notices_due(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        sql::secrets::expiry_notices_due(&mut *self.read().await?, now, limit).await
    }

    async fn touch_accessed(&self, secret_id: i64, version_id: &str, day: Timestamp) -> Result<()> {
        let done = async {
            let mut tx = self.begin_write().await?;
            sql::secrets::touch_accessed(&mut *tx, secret_id, version_id, day).await?;
            tx.commit(Vec::new()).await
        }
        .await;
        self.cache.secret_changed(secret_id);
        done
    }

    async fn delete_secret(&self, secret_id: i64, audit: &AuditSlot) -> Result<()> {
        let done = async {
            let mut tx = self.begin_change(audit).await?;
            let changed = sql::secrets::delete_secret(&mut *tx, secret_id).await?;
            self.commit_change(tx, changed, audit).await
        }
        .await;
        self.cache.secret_changed(secret_id);
        done
    }

    async fn secret_by_id(&self, secret_id: i64) -> Result<Option<SecretRecord>> {
        let load = self
            .readers
            .point(|c| conn::ready(sql::secrets::load_secret(c, secret_id, false))?);
        self.cache.secret_by_id(secret_id, load).await
    }
}

#[async_trait]
impl RotationStore for SqliteStore {
    async fn rotation_due(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        sql::rotation::rotation_due(&mut *self.read().await?, now, limit).await
    }

    async fn rotation_overdue(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>> {
        sql::rotation::rotation_overdue(&mut *self.read().await?, now, limit).await
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
        let mut tx = self.begin_write().await?;
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
        // A key re-wrap interrupted by the same exit resumes at once too.
        sql::stmt(
            "UPDATE kms_keys SET lease_owner = NULL, lease_expires_at = NULL \
             WHERE lease_owner IS NOT NULL",
        )
        .execute(&mut *tx)
        .await?;
        let done = tx.commit(Vec::new()).await;
        self.cache.clear();
        done.map(|()| resumed)
    }

    async fn insert_rotation_function(
        &self,
        f: &RotationFunctionRecord,
        audit: &AuditSlot,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
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
        let mut tx = self.begin_write().await?;
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
        let mut tx = self.begin_write().await?;
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
        let mut tx = self.begin_write().await?;
        tx.queue_event(event, body, now).await?;
        tx.commit(Vec::new()).await
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
        let mut tx = self.writer.background_turn().await?;
        let items = sql::notifications::due_notifications(&mut *tx, now, limit).await?;
        for item in &items {
            sql::stmt("UPDATE notification_outbox SET next_attempt_at = $1 WHERE id = $2")
                .bind(until)
                .bind(item.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit(Vec::new()).await?;
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
    fn cache_stats(&self) -> crate::CacheStats {
        self.cache.stats()
    }

    fn set_cache_budget(&self, bytes: usize) {
        self.cache.set_budget(bytes);
    }

    fn pool_stats(&self) -> Vec<crate::PoolStats> {
        // The writer is one connection, kept open, busy while a turn or a commit holds it.
        let busy = usize::from(self.writer.busy());
        vec![
            crate::PoolStats::of("read", &self.pool),
            self.readers.stats("read-direct"),
            crate::PoolStats {
                pool: "write",
                in_use: busy,
                idle: 1 - busy,
                max: 1,
            },
        ]
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)
            .map(|_| ())
    }

    async fn close(&self) {
        self.lookup.close();
        // What is released commits first; then the WAL is folded into the database so
        // nothing is left for the next start to replay.
        self.writer.close().await;
        self.readers.close();
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::warn!("checkpoint at shutdown failed: {e}");
        }
        self.pool.close().await;
    }
}

/// Every file the SQLite database at `path` may consist of: the database, its write-ahead
/// log and shared memory, and the same three of the audit lookup file beside it.
pub fn database_files(path: &Path) -> Vec<PathBuf> {
    let lookup = lookup::lookup_path(path);
    [path, lookup.as_path()]
        .into_iter()
        .flat_map(|base| {
            ["", "-wal", "-shm"].map(|suffix| {
                let mut name = base.as_os_str().to_owned();
                name.push(suffix);
                PathBuf::from(name)
            })
        })
        .collect()
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
        .connect_with(opts.clone())
        .await
        .map_err(db_err)?;
    let writer = Writer::open(path, true).await?;
    Ok(SqliteStore {
        pool,
        writer,
        lookup: LookupIndexer::new(lookup::Filler::none(), false)?,
        readers: DirectReaders::new(path, true, lookup::attach),
        // A look at a database another process may be writing: never cached.
        cache: ReadCache::new(0),
    })
}

/// A key change names the key in its request's audit record.
fn key_changed(arn: &str) -> Changed {
    Changed {
        arn: Some(arn.to_string()),
        version_id: None,
    }
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

#[cfg(test)]
mod audit_lookup_tests {
    use super::*;
    use crate::AuditQuery;

    struct Chain;
    impl AuditChain for Chain {
        fn mac(&self, prev: Option<&str>, r: &AuditRecord) -> String {
            format!("{}>{}", prev.unwrap_or("").len(), r.request_id)
        }
        fn committed(&self, _: &[AuditRecord]) -> Result<()> {
            Ok(())
        }
    }

    fn record(i: usize) -> AuditRecord {
        AuditRecord {
            time: i as i64,
            request_id: format!("r{i}"),
            kind: "request".into(),
            principal: ["alice", "bob", "carol"][i % 3].into(),
            access_key_id: "AKIATEST".into(),
            action: ["GetSecretValue", "PutSecretValue"][i % 2].into(),
            resource: format!("secret-{}", i % 5),
            decision: "Allow".into(),
            outcome: "Success".into(),
            ..Default::default()
        }
    }

    /// Lookups by resource or principal find exactly what a scan of the trail finds, in
    /// order and page by page, wherever the lookup tables stop (before the first record, in
    /// the middle, at the end): the part they cover and the part read from the trail meet
    /// without a gap or a record twice.
    #[tokio::test]
    async fn lookups_behind_the_trail_answer_as_a_scan_would() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("kura.db"))
            .await
            .unwrap();
        // No passes of its own: this test moves the tables' end itself.
        store.lookup.state.lock().unwrap().closed = true;
        store.set_audit_chain(Arc::new(Chain));
        let mut all = Vec::new();
        for batch in 0..6 {
            let records: Vec<AuditRecord> = (batch * 7..batch * 7 + 7).map(record).collect();
            store.append_audit(records.clone()).await.unwrap();
            all.extend(records);
            if batch % 2 == 1 {
                store.lookup.filler.pass(9).unwrap();
            }
            let upto = store.lookup.filler.upto();
            let stored = store
                .query_audit(&AuditQuery {
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .unwrap();
            for q in [
                AuditQuery {
                    resource: Some("secret-2".into()),
                    ..Default::default()
                },
                AuditQuery {
                    principal: Some("bob".into()),
                    ..Default::default()
                },
                AuditQuery {
                    resource: Some("secret-1".into()),
                    principal: Some("bob".into()),
                    ..Default::default()
                },
                AuditQuery {
                    principal: Some("carol".into()),
                    action: Some("PutSecretValue".into()),
                    ..Default::default()
                },
            ] {
                let expected: Vec<i64> = stored
                    .iter()
                    .filter(|r| q.resource.as_ref().is_none_or(|x| *x == r.resource))
                    .filter(|r| q.principal.as_ref().is_none_or(|x| *x == r.principal))
                    .filter(|r| q.action.as_ref().is_none_or(|x| *x == r.action))
                    .map(|r| r.seq)
                    .collect();
                // Pages of 2, then of everything.
                let mut paged = Vec::new();
                let mut after = None;
                loop {
                    let page = store
                        .query_audit(&AuditQuery {
                            limit: 2,
                            after_seq: after,
                            ..q.clone()
                        })
                        .await
                        .unwrap();
                    let Some(last) = page.last() else { break };
                    after = Some(last.seq);
                    paged.extend(page.iter().map(|r| r.seq));
                }
                assert_eq!(paged, expected, "{q:?} in pages of 2, tables up to {upto}");
                let whole: Vec<i64> = store
                    .query_audit(&AuditQuery {
                        limit: 1000,
                        ..q.clone()
                    })
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.seq)
                    .collect();
                assert_eq!(whole, expected, "{q:?}, tables up to {upto}");
                // Newest first, in pages of 2 walking backwards.
                let mut backwards = Vec::new();
                let mut before = None;
                loop {
                    let page = store
                        .query_audit(&AuditQuery {
                            limit: 2,
                            before_seq: before,
                            newest_first: true,
                            ..q.clone()
                        })
                        .await
                        .unwrap();
                    let Some(last) = page.last() else { break };
                    before = Some(last.seq);
                    backwards.extend(page.iter().map(|r| r.seq));
                }
                backwards.reverse();
                assert_eq!(
                    backwards, expected,
                    "{q:?} newest first, tables up to {upto}"
                );
            }
        }
        assert_eq!(all.len(), 42);
        assert_eq!(
            store.lookup.filler.upto(),
            27,
            "three passes of at most 9 records each"
        );
    }

    async fn by_resource(store: &SqliteStore, resource: &str) -> Vec<String> {
        store
            .query_audit(&AuditQuery {
                resource: Some(resource.into()),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect()
    }

    /// The lookup file is derived: one filled from another trail (here: the database was
    /// replaced, as a restore does, and its trail reuses the same sequence numbers) is
    /// emptied and filled again, and a missing one is made again; lookups never answer
    /// with the other trail's records.
    #[tokio::test]
    async fn a_lookup_file_of_another_trail_or_none_is_filled_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kura.db");
        let open = || async {
            let store = SqliteStore::open(&path).await.unwrap();
            store.lookup.state.lock().unwrap().closed = true;
            store.set_audit_chain(Arc::new(Chain));
            store
        };
        let store = open().await;
        store
            .append_audit((0..10).map(record).collect())
            .await
            .unwrap();
        store.lookup.filler.pass(1000).unwrap();
        assert_eq!(store.lookup.filler.upto(), 10);
        assert_eq!(by_resource(&store, "secret-1").await, ["r1", "r6"]);
        store.close().await;
        drop(store);

        // Another database in its place, with the first one's lookup file beside it.
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("kura.db{suffix}")));
        }
        let other = |i: usize| AuditRecord {
            request_id: format!("other{i}"),
            ..record(i + 2)
        };
        let store = open().await;
        store
            .append_audit((0..10).map(other).collect())
            .await
            .unwrap();
        assert_eq!(
            store.lookup.filler.upto(),
            0,
            "the other trail's tables were emptied"
        );
        assert_eq!(by_resource(&store, "secret-1").await, ["other4", "other9"]);
        store.lookup.filler.pass(1000).unwrap();
        assert_eq!(by_resource(&store, "secret-1").await, ["other4", "other9"]);
        store.close().await;
        drop(store);

        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("kura.db-lookup{suffix}")));
        }
        let store = open().await;
        assert_eq!(store.lookup.filler.upto(), 0);
        assert_eq!(by_resource(&store, "secret-1").await, ["other4", "other9"]);
        store.lookup.filler.pass(1000).unwrap();
        assert_eq!(store.lookup.filler.upto(), 10);
        assert_eq!(by_resource(&store, "secret-1").await, ["other4", "other9"]);
    }
}
