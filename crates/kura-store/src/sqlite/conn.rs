//! SQLite called directly (rusqlite): the writer's connection, on the task that holds the
//! writer, and the connections of reads that return many rows, on a blocking thread, rather
//! than through sqlx's connection thread.
//!
//! Every sqlx statement is a round trip to that thread, which cost more than the statement
//! (the `sqlite_handoff` benchmark: PutSecretValue's 8 statements take 533 µs through sqlx,
//! 32 µs called in place). Statements in a turn touch pages already in memory and take
//! microseconds, so they run in place, as any other short computation of the request; what
//! waits on the disk (COMMIT's fsync, a BEGIN that finds the file locked, opening and closing)
//! runs on tokio's blocking threads (see `group`).
//!
//! It runs the shared SQL as it is ([`Conn`]): `$N` parameters are bound by their number, as
//! sqlx's SQLite driver and PostgreSQL read them, and rows are decoded by the same record
//! decoders ([`Columns`]). Its methods never wait, so the shared SQL's futures over it are
//! ready at their first poll ([`ready`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use kura_core::{Error, Result};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::rows::{Column, Columns};
use crate::sql::{Arg, Stmt};

/// Statement texts kept prepared: the shared SQL has a few dozen write statements, and the
/// audit inserts a handful of batch sizes.
const PREPARED: usize = 256;

/// A connection called directly; `None` once it was closed or lost (the writer's next turn
/// opens another).
pub(crate) struct DirectConn {
    pub(super) db: Option<Connection>,
}

impl DirectConn {
    /// Opens the database file for writing (or, `read_only`, for a look that must not
    /// write), with the settings every kura connection has (the read pool's are set through
    /// sqlx's options): WAL, an fsync per commit, foreign keys, deleted content overwritten.
    /// Blocks: call it on a blocking thread.
    pub(super) fn open(path: &Path, read_only: bool) -> Result<Connection> {
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
        };
        let db = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(direct_err)?;
        if !read_only {
            db.execute_batch("PRAGMA journal_mode = WAL")
                .map_err(direct_err)?;
        }
        db.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
        )
        .map_err(direct_err)?;
        // A locked file is waited for on a blocking thread (`group`), never in place.
        db.busy_timeout(std::time::Duration::ZERO)
            .map_err(direct_err)?;
        db.set_prepared_statement_cache_capacity(PREPARED);
        Ok(db)
    }

    /// Opens a connection for reads (`query_only`: a read that tried to write fails) that
    /// waits up to `busy` for a lock (a WAL reader rarely finds one), prepared by `attach`
    /// (the store attaches its audit lookup file) before it is made read-only.
    fn open_reader(
        path: &Path,
        read_only: bool,
        busy: Duration,
        attach: Attach,
    ) -> Result<Connection> {
        let db = Self::open(path, read_only)?;
        attach(&db, path, read_only)?;
        db.execute_batch("PRAGMA query_only = ON")
            .map_err(direct_err)?;
        db.busy_timeout(busy).map_err(direct_err)?;
        Ok(db)
    }

    pub(super) fn db(&mut self) -> Result<&mut Connection> {
        self.db
            .as_mut()
            .ok_or_else(|| Error::internal("database: the writer's connection is closed"))
    }

    /// Runs statements without parameters or rows (transaction control), each prepared
    /// once per connection.
    pub(super) fn batch(&mut self, sqls: &[&str]) -> std::result::Result<(), rusqlite::Error> {
        match self.db.as_ref() {
            Some(db) => control(db, sqls),
            None => Err(rusqlite::Error::InvalidQuery),
        }
    }

    /// Runs `s`, handing each row to `row` as values in column order; returns the rows it
    /// changed and the column names.
    fn run(
        &mut self,
        mut s: Stmt<'_>,
        mut row: impl FnMut(Vec<Value>),
    ) -> Result<(u64, Arc<[String]>)> {
        let db = self.db()?;
        match run(db, &s, &mut row) {
            Ok(done) => Ok(done),
            Err(e) => {
                let unique = matches!(
                    &e,
                    rusqlite::Error::SqliteFailure(f, _)
                        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                );
                Err(s.error_with(unique, || direct_err(e)))
            }
        }
    }

    pub(super) fn execute(&mut self, s: Stmt<'_>) -> Result<u64> {
        self.run(s, |_| {}).map(|(done, _)| done)
    }

    pub(super) fn fetch_all(&mut self, s: Stmt<'_>) -> Result<Vec<DirectRow>> {
        let mut rows = Vec::new();
        let (_, names) = self.run(s, |values| rows.push(values))?;
        Ok(rows
            .into_iter()
            .map(|values| DirectRow {
                names: names.clone(),
                values,
                next: Cell::new(0),
            })
            .collect())
    }

    pub(super) fn fetch_optional(&mut self, s: Stmt<'_>) -> Result<Option<DirectRow>> {
        Ok(self.fetch_all(s)?.into_iter().next())
    }
}

/// Runs transaction-control statements on `db`, each prepared once.
pub(super) fn control(db: &Connection, sqls: &[&str]) -> rusqlite::Result<()> {
    for sql in sqls {
        db.prepare_cached(sql)?.raw_execute()?;
    }
    Ok(())
}

fn run(
    db: &Connection,
    s: &Stmt<'_>,
    row: &mut impl FnMut(Vec<Value>),
) -> rusqlite::Result<(u64, Arc<[String]>)> {
    let text = Text::of(s);
    let mut st = db.prepare_cached(&text.numbered)?;
    let args = s.args();
    // Parameters the text does not use are not bound (SQLite counts up to the highest `?N`).
    for (i, arg) in args.iter().enumerate().take(st.parameter_count()) {
        let i = i + 1;
        match arg {
            Arg::Int(v) => st.raw_bind_parameter(i, v)?,
            Arg::OptInt(v) => st.raw_bind_parameter(i, v)?,
            Arg::Text(v) => st.raw_bind_parameter(i, v.as_ref())?,
            Arg::OptText(v) => st.raw_bind_parameter(i, v.as_deref())?,
            Arg::Bytes(v) => st.raw_bind_parameter(i, v)?,
            Arg::OptBytes(v) => st.raw_bind_parameter(i, v)?,
        }
    }
    let columns = st.column_count();
    let names = match &text.names {
        Some(names) if names.len() == columns => names.clone(),
        _ => {
            let names: Arc<[String]> = st.column_names().into_iter().map(String::from).collect();
            text.keep_names(s, &names);
            names
        }
    };
    let readonly = st.readonly();
    let mut rows = st.raw_query();
    while let Some(r) = rows.next()? {
        let mut values = Vec::with_capacity(columns);
        for i in 0..columns {
            values.push(r.get::<_, Value>(i)?);
        }
        row(values);
    }
    drop(rows);
    let changed = if readonly { 0 } else { db.changes() };
    Ok((changed, names))
}

/// A statement's text as SQLite runs it, and its column names: made once per thread for each
/// text written here (a fixed set), where every call would otherwise rewrite the text and copy
/// every column name.
struct Text {
    numbered: Arc<str>,
    names: Option<Arc<[String]>>,
}

thread_local! {
    /// By the address and length of a `&'static str` statement text.
    static TEXTS: RefCell<HashMap<(usize, usize), Text>> = RefCell::new(HashMap::new());
}

impl Text {
    fn of(s: &Stmt<'_>) -> Text {
        let Some(sql) = s.static_sql() else {
            return Text {
                numbered: numbered(s.sql()).into(),
                names: None,
            };
        };
        TEXTS.with_borrow_mut(|texts| {
            let t = texts
                .entry((sql.as_ptr() as usize, sql.len()))
                .or_insert_with(|| Text {
                    numbered: numbered(sql).into(),
                    names: None,
                });
            Text {
                numbered: t.numbered.clone(),
                names: t.names.clone(),
            }
        })
    }

    fn keep_names(&self, s: &Stmt<'_>, names: &Arc<[String]>) {
        if let Some(sql) = s.static_sql() {
            TEXTS.with_borrow_mut(|texts| {
                if let Some(t) = texts.get_mut(&(sql.as_ptr() as usize, sql.len())) {
                    t.names = Some(names.clone());
                }
            });
        }
    }
}

/// The shared SQL's `$N` parameters as SQLite's `?N`. SQLite reads `$N` as a *named*
/// parameter, numbered by first appearance, and finding each one's name is a scan of all
/// names (an audit batch has over a thousand); `?N` is the N-th value, as the shared SQL
/// means. String literals are copied as they are.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '$' && !quoted && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// A row read directly, owned.
pub(crate) struct DirectRow {
    names: Arc<[String]>,
    values: Vec<Value>,
    /// Where the next column by name is looked for first: decoders read columns in the
    /// order they are selected, so a lookup is usually one comparison, not a scan.
    next: Cell<usize>,
}

impl DirectRow {
    fn at<T: Column>(&self, i: usize, column: &str) -> Result<T> {
        let v = self
            .values
            .get(i)
            .ok_or_else(|| Error::internal(format!("reading column {column}: no such column")))?;
        T::column_result(ValueRef::from(v))
            .map_err(|e| Error::internal(format!("reading column {column}: {e}")))
    }
}

impl Columns for DirectRow {
    fn col<T: Column>(&self, column: &str) -> Result<T> {
        let n = self.names.len();
        let start = self.next.get();
        let found = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.names[i] == column);
        match found {
            Some(i) => {
                self.next.set(i + 1);
                self.at(i, column)
            }
            None => Err(Error::internal(format!(
                "reading column {column}: no such column"
            ))),
        }
    }

    fn first<T: Column>(&self) -> Result<T> {
        self.at(0, "0")
    }
}

/// The output of a future over a [`DirectConn`], which never waits: polled once.
pub(crate) fn ready<F: Future>(f: F) -> Result<F::Output> {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => Err(Error::internal(
            "database: a direct SQLite call waited for something",
        )),
    }
}

/// Connections for reads that return many rows (a ListSecrets page, an audit lookup): the
/// query runs directly on a blocking thread, one hand-off per query, where sqlx hands each
/// row over and copies each value. At most [`READERS`] run at once (more would only share
/// the cores), each on a connection kept open with its prepared statements.
///
/// Reads of a row or a few by key (what the read cache misses) run in place instead: see
/// [`point`](DirectReaders::point).
/// What a reader connection gets attached when it opens: given the connection, the
/// database's path and whether the look is read-only.
pub(crate) type Attach = fn(&Connection, &Path, bool) -> Result<()>;

pub(crate) struct DirectReaders {
    path: PathBuf,
    read_only: bool,
    attach: Attach,
    idle: Mutex<Vec<Connection>>,
    turns: tokio::sync::Semaphore,
    /// Connections for point reads; they never wait for a lock in place.
    point_idle: Mutex<Vec<Connection>>,
}

/// Reads of many rows running at once, and the connections kept for them.
const READERS: usize = 4;
/// Point-read connections kept: one per worker thread in use at once is enough.
const POINT_KEPT: usize = 8;
/// How long a reader waits for a lock before the read fails.
const READER_BUSY_WAIT: Duration = Duration::from_secs(10);

impl DirectReaders {
    pub(crate) fn new(path: &Path, read_only: bool, attach: Attach) -> DirectReaders {
        DirectReaders {
            path: path.to_path_buf(),
            read_only,
            attach,
            idle: Mutex::new(Vec::new()),
            turns: tokio::sync::Semaphore::new(READERS),
            point_idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f`, a read of a row or a few by key, on a reader connection on the caller's
    /// thread, as the writer runs its statements: a few microseconds of SQLite on pages in
    /// memory, where handing the read to another thread (as sqlx does, per row) costs more
    /// than the read. In the rare moment a reader finds the file locked (a checkpoint that
    /// resets the log), it waits here, asynchronously, and tries again.
    pub(crate) async fn point<T>(
        &self,
        mut f: impl FnMut(&mut DirectConn) -> Result<T>,
    ) -> Result<T> {
        let started = Instant::now();
        loop {
            let kept = self.point_idle.lock().ok().and_then(|mut idle| idle.pop());
            let db = match kept {
                Some(db) => db,
                None => {
                    let (path, read_only, attach) =
                        (self.path.clone(), self.read_only, self.attach);
                    tokio::task::spawn_blocking(move || {
                        DirectConn::open_reader(&path, read_only, Duration::ZERO, attach)
                    })
                    .await
                    .map_err(|e| {
                        Error::internal(format!("database: a reader's thread failed: {e}"))
                    })??
                }
            };
            let mut conn = DirectConn { db: Some(db) };
            let out = f(&mut conn);
            if let (Some(db), Ok(mut idle)) = (conn.db, self.point_idle.lock())
                && idle.len() < POINT_KEPT
            {
                idle.push(db);
            }
            match out {
                Err(e) if e.is_unavailable() && started.elapsed() < READER_BUSY_WAIT => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                out => return out,
            }
        }
    }

    /// Readers running and connections kept (metrics).
    pub(crate) fn stats(&self, pool: &'static str) -> crate::PoolStats {
        crate::PoolStats {
            pool,
            in_use: READERS.saturating_sub(self.turns.available_permits()),
            idle: self.idle.lock().map(|idle| idle.len()).unwrap_or(0),
            max: READERS,
        }
    }

    /// Runs `f` on a reader connection on a blocking thread.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DirectConn) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _turn = self
            .turns
            .acquire()
            .await
            .map_err(|_| Error::internal("database: the readers are closed"))?;
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let (path, read_only, attach) = (self.path.clone(), self.read_only, self.attach);
        let (db, out) = tokio::task::spawn_blocking(move || {
            let db = match idle {
                Some(db) => db,
                None => match DirectConn::open_reader(&path, read_only, READER_BUSY_WAIT, attach) {
                    Ok(db) => db,
                    Err(e) => return (None, Err(e)),
                },
            };
            let mut conn = DirectConn { db: Some(db) };
            let out = f(&mut conn);
            (conn.db, out)
        })
        .await
        .map_err(|e| Error::internal(format!("database: a reader's thread failed: {e}")))?;
        if let (Some(db), Ok(mut idle)) = (db, self.idle.lock())
            && idle.len() < READERS
        {
            idle.push(db);
        }
        out
    }

    /// Closes the idle connections (the file is let go at shutdown, before a restore).
    pub(crate) fn close(&self) {
        for idle in [&self.idle, &self.point_idle] {
            if let Ok(mut idle) = idle.lock() {
                idle.clear();
            }
        }
    }
}

/// A failure of the writer's connection, mapped as the read pool's are (`db_err`).
pub(super) fn direct_err(e: rusqlite::Error) -> Error {
    if e.sqlite_error_code() == Some(ErrorCode::DiskFull) {
        return Error::disk_full(format!("database: {e}"));
    }
    // Another connection holds the lock: worth trying again (a point read does).
    if is_busy(&e) {
        return Error::unavailable(format!("database: {e}"));
    }
    Error::internal(format!("database: {e}"))
}

/// The file is locked by another connection (a BEGIN to wait for on a blocking thread).
pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_outside_string_literals() {
        assert_eq!(
            numbered("SELECT $2, '$1', $10 || 'it''s $3' FROM t WHERE a = $1"),
            "SELECT ?2, '$1', ?10 || 'it''s $3' FROM t WHERE a = ?1"
        );
        assert_eq!(
            numbered("SELECT json_extract(x, '$.a') + $1"),
            "SELECT json_extract(x, '$.a') + ?1"
        );
    }

    /// A point read that finds the file locked waits (asynchronously) for the lock and then
    /// answers, rather than failing or blocking its thread.
    #[tokio::test]
    async fn a_point_read_waits_out_a_lock_and_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kura.db");
        // A rollback-journal database, looked at read-only: there an exclusive lock keeps
        // readers out (WAL readers are kept out only in rare moments, hard to make happen).
        let holder = Connection::open(&path).unwrap();
        holder
            .execute_batch("CREATE TABLE t (k TEXT); INSERT INTO t VALUES ('v');")
            .unwrap();
        let readers = DirectReaders::new(&path, true, |_, _, _| Ok(()));
        let read = |c: &mut DirectConn| {
            let row = c.fetch_optional(crate::sql::stmt("SELECT k FROM t"))?;
            row.map(|r| r.col::<String>("k")).transpose()
        };
        assert_eq!(readers.point(read).await.unwrap().as_deref(), Some("v"));
        holder
            .execute_batch("BEGIN EXCLUSIVE; INSERT INTO t VALUES ('w');")
            .unwrap();
        let release = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            holder.execute_batch("ROLLBACK;").unwrap();
        };
        let started = Instant::now();
        let (value, ()) = tokio::join!(readers.point(read), release);
        assert_eq!(value.unwrap().as_deref(), Some("v"));
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "the read answered while the lock was held"
        );
    }

    /// Values bound to `$N` in any order and repeated, read back by column name.
    #[test]
    fn the_shared_sql_runs_as_it_is_written() {
        let mut c = DirectConn {
            db: Some(Connection::open_in_memory().unwrap()),
        };
        let rows = c
            .fetch_all(
                crate::sql::stmt("SELECT $2 || '-' || $1 || '-' || $2 AS joined, $3 AS n")
                    .bind("one")
                    .bind("two")
                    .bind(3i64),
            )
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].col::<String>("joined").unwrap(), "two-one-two");
        assert_eq!(rows[0].col::<i64>("n").unwrap(), 3);
        assert!(rows[0].col::<i64>("missing").is_err());
        c.execute(crate::sql::stmt("CREATE TABLE t (k TEXT PRIMARY KEY)"))
            .unwrap();
        let insert = || {
            crate::sql::stmt("INSERT INTO t (k) VALUES ($1)")
                .bind("a")
                .taken(Error::exists("taken"))
        };
        assert_eq!(c.execute(insert()).unwrap(), 1);
        assert_eq!(c.execute(insert()).unwrap_err().message, "taken");
    }
}
