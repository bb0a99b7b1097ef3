//! Group commit for SQLite's one writer.
//!
//! Every write runs on one connection, in turn (a FIFO lock), inside a shared open
//! transaction: a turn is a SAVEPOINT, released when its work succeeds and rolled back to when
//! it fails, so one failed request undoes only its own work. A released turn then waits for
//! the COMMIT that makes it durable. That COMMIT (and its fsync) is run by a commit task which
//! queues for the lock behind the writers already waiting, so everything they release joins
//! the same commit: with N writers at once, one fsync serves up to N writes. Nobody is answered
//! before the COMMIT that holds their change returned (synchronous=FULL), and a COMMIT that
//! fails fails every turn of its batch.
//!
//! Audit records inserted by a turn go to the audit file (`AuditChain::committed`) from the
//! commit task, on the thread that ran COMMIT right after it, before the lock is released, so
//! the file follows commit order, which is seq order.
//!
//! A turn that ends without releasing (an error returned with `?`, or a request dropped
//! mid-way) leaves its savepoint to the next holder of the lock, which rolls it back before
//! anything else runs. If that roll-back finds the savepoint gone, SQLite rolled back the
//! whole transaction (it may, on a full disk or an I/O error): every turn released into it
//! is lost and told so, and the connection is replaced.
//!
//! Statements run in place on the connection (`conn`): a turn's work is a few microseconds of
//! SQLite on pages in memory. What waits on the disk runs on a blocking thread: COMMIT (the
//! fsync), opening and closing the connection, and a BEGIN that finds the file locked by
//! another connection.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kura_audit::AuditRecord;
use kura_core::{Error, Result};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, oneshot};

use super::conn::{self, DirectConn, direct_err};
use crate::audit::AuditChain;

/// At most this many turns share one commit, so a turn's wait for its commit stays bounded
/// however many writers queue (FIFO already keeps bookkeeping from starving requests).
const MAX_BATCH: usize = 256;
/// A batch older than this is committed by the next turn that releases into it.
const MAX_BATCH_AGE: Duration = Duration::from_millis(20);
/// How long a BEGIN waits for another connection to let go of the file.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// The writer: one connection and the transaction its turns share. Clones share both.
#[derive(Clone)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
}

struct Shared {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    read_only: bool,
    /// Set once the server has its audit key; until then writes commit no record.
    chain: OnceLock<Arc<dyn AuditChain>>,
    /// Requests' turns waiting for the writer; background turns let them go first.
    urgent: AtomicUsize,
    /// Told when `urgent` falls to zero.
    urgent_gone: Notify,
}

/// How long a background turn (rotation bookkeeping, leases, the outbox, re-wraps) defers to
/// requests' turns before it queues anyway, so background work is slowed, never starved.
const BACKGROUND_DEFERS: Duration = Duration::from_millis(50);

/// Counts a request's turn as waiting until it has the writer (or gave up).
struct Urgent<'a>(&'a Shared);

impl Drop for Urgent<'_> {
    fn drop(&mut self) {
        if self.0.urgent.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.urgent_gone.notify_waiters();
        }
    }
}

struct State {
    conn: DirectConn,
    /// The connection's transaction state is unknown (a BEGIN, ROLLBACK TO or COMMIT failed
    /// or was cut short): replace the connection before the next turn.
    suspect: bool,
    /// BEGIN IMMEDIATE ran and no COMMIT since.
    open: bool,
    /// A turn's savepoint may still be open: roll it back before anything else.
    dirty: bool,
    /// Turns released into the open transaction, in the order they ran (seq order).
    batch: Vec<Released>,
    /// When the first turn of `batch` was released.
    batch_since: Option<Instant>,
    /// A commit task is waiting for the lock; it will commit whatever is released by then.
    commit_queued: bool,
    /// COMMITs made (for the tests: how many writes shared one).
    commits: u64,
}

/// A released turn waiting for its commit.
struct Released {
    /// Audit records it inserted, for the file once committed.
    records: Vec<AuditRecord>,
    done: oneshot::Sender<Result<()>>,
    /// When it was released into the transaction (its records' commit latency counts from
    /// here).
    at: Instant,
}

impl Writer {
    /// The writer of the database at `path` (`read_only`: a look at a database another
    /// process writes, whose turns fail if they write).
    pub(crate) async fn open(path: &Path, read_only: bool) -> Result<Writer> {
        let path = path.to_path_buf();
        let p = path.clone();
        let db = blocking(move || DirectConn::open(&p, read_only)).await??;
        Ok(Writer {
            shared: Arc::new(Shared {
                state: Arc::new(Mutex::new(State {
                    conn: DirectConn { db: Some(db) },
                    suspect: false,
                    open: false,
                    dirty: false,
                    batch: Vec::new(),
                    batch_since: None,
                    commit_queued: false,
                    commits: 0,
                })),
                path,
                read_only,
                chain: OnceLock::new(),
                urgent: AtomicUsize::new(0),
                urgent_gone: Notify::new(),
            }),
        })
    }

    pub(crate) fn set_chain(&self, chain: Arc<dyn AuditChain>) {
        let _ = self.shared.chain.set(chain);
    }

    pub(crate) fn chain(&self) -> Option<&dyn AuditChain> {
        self.shared.chain.get().map(|c| c.as_ref())
    }

    /// Whether a turn or a commit holds the connection now (metrics).
    pub(crate) fn busy(&self) -> bool {
        self.shared.state.try_lock().is_err()
    }

    /// The next turn for a request's write (or a read's audit records): waits for the writer,
    /// ahead of background turns that have not queued yet, then opens a savepoint in the
    /// shared transaction (beginning it with BEGIN IMMEDIATE if none is open).
    pub(crate) async fn turn(&self) -> Result<Turn> {
        self.shared.urgent.fetch_add(1, Ordering::AcqRel);
        let _waiting = Urgent(&self.shared);
        self.queue().await
    }

    /// The next turn for work no request waits for: it lets requests' turns that are waiting
    /// go first, for at most [`BACKGROUND_DEFERS`].
    pub(crate) async fn background_turn(&self) -> Result<Turn> {
        let until = tokio::time::Instant::now() + BACKGROUND_DEFERS;
        loop {
            // Created before the check: a notification between the two is not lost.
            let gone = self.shared.urgent_gone.notified();
            if self.shared.urgent.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(until, gone).await.is_err() {
                break;
            }
        }
        self.queue().await
    }

    async fn queue(&self) -> Result<Turn> {
        let mut st = self.shared.state.clone().lock_owned().await;
        st.roll_back_dirty();
        if st.suspect || st.conn.db.is_none() {
            st.replace_conn(&self.shared).await?;
        }
        if !st.open {
            // Suspect until BEGIN answers: cut short, it may or may not have begun.
            st.suspect = true;
            st.begin().await?;
            st.suspect = false;
            st.open = true;
            st.dirty = true;
            return Ok(Turn::new(self.shared.clone(), st));
        }
        // Dirty until released or rolled back, even if the SAVEPOINT itself is cut short.
        st.dirty = true;
        if let Err(e) = st.conn.batch(&["SAVEPOINT turn"]) {
            // Rolled back by the next holder (or the commit task this drop queues).
            drop(Turn::new(self.shared.clone(), st));
            return Err(direct_err(e));
        }
        Ok(Turn::new(self.shared.clone(), st))
    }

    /// Commits what is released, then closes the writer's connection, so the file is free
    /// for whoever opens it next (a restore or a backup reopens the file it just made). A
    /// turn after this opens a new connection.
    pub(crate) async fn close(&self) {
        let mut st = self.shared.state.clone().lock_owned().await;
        st.commit(&self.shared).await;
        st.suspect = true;
        st.open = false;
        if let Some(old) = st.conn.db.take() {
            let _ = blocking(move || drop(old)).await;
        }
    }
}

/// One writer's turn: the connection, inside its savepoint. Derefs to the connection. End it
/// with [`commit`](Self::commit); dropped instead, its work is rolled back.
pub(crate) struct Turn {
    shared: Arc<Shared>,
    /// `None` only while dropping.
    state: Option<OwnedMutexGuard<State>>,
    released: bool,
}

impl Turn {
    fn new(shared: Arc<Shared>, state: OwnedMutexGuard<State>) -> Turn {
        Turn {
            shared,
            state: Some(state),
            released: false,
        }
    }

    fn state(&mut self) -> &mut State {
        // Taken only by `drop`, after which nothing else runs.
        self.state
            .as_mut()
            .expect("a turn holds the writer until dropped")
    }

    /// Releases the savepoint into the shared transaction, gives up the writer and returns
    /// once the COMMIT that holds this turn's work has returned: Ok means durable. `records`
    /// are the audit records the turn inserted, appended to the audit file after the commit.
    pub(crate) async fn commit(mut self, records: Vec<AuditRecord>) -> Result<()> {
        let st = self.state();
        st.conn.batch(&["RELEASE turn"]).map_err(direct_err)?;
        st.dirty = false;
        let (done, wait) = oneshot::channel();
        let at = Instant::now();
        st.batch.push(Released { records, done, at });
        st.batch_since.get_or_insert(at);
        self.released = true;
        // Dropping hands the writer on and makes sure a commit will come.
        drop(self);
        wait.await.unwrap_or_else(|_| {
            Err(Error::internal(
                "the write was not confirmed: kura is stopping",
            ))
        })
    }
}

impl Deref for Turn {
    type Target = DirectConn;
    fn deref(&self) -> &DirectConn {
        &self
            .state
            .as_ref()
            .expect("a turn holds the writer until dropped")
            .conn
    }
}

impl DerefMut for Turn {
    fn deref_mut(&mut self) -> &mut DirectConn {
        &mut self.state().conn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(mut st) = self.state.take() else {
            return;
        };
        if !self.released {
            st.dirty = true;
        }
        // Without a runtime (only while it shuts down) nothing can commit: the transaction
        // is rolled back when the connection closes, and nobody was answered.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let full = st.batch.len() >= MAX_BATCH
            || st.batch_since.is_some_and(|t| t.elapsed() >= MAX_BATCH_AGE);
        if full {
            // Commit now, keeping the writer: the lock moves into the commit task.
            let shared = self.shared.clone();
            rt.spawn(async move { st.commit(&shared).await });
        } else if (st.open || st.dirty) && !st.commit_queued {
            // The commit task queues behind the writers already waiting, so their turns
            // join this commit.
            st.commit_queued = true;
            let shared = self.shared.clone();
            rt.spawn(async move {
                let mut st = shared.state.clone().lock_owned().await;
                st.commit_queued = false;
                st.commit(&shared).await;
            });
        }
    }
}

impl State {
    /// Rolls back a savepoint a turn left open. If that fails the transaction is lost.
    fn roll_back_dirty(&mut self) {
        if !self.dirty {
            return;
        }
        let undone = self.conn.batch(&["ROLLBACK TO turn", "RELEASE turn"]);
        self.dirty = false;
        if let Err(e) = undone {
            self.lose_transaction(direct_err(e));
        }
    }

    /// Begins the shared transaction with the first turn's savepoint: in place, or, while
    /// another connection holds the file, waiting on a blocking thread.
    async fn begin(&mut self) -> Result<()> {
        const BEGIN: &[&str] = &["BEGIN IMMEDIATE", "SAVEPOINT turn"];
        match self.conn.batch(BEGIN) {
            Ok(()) => return Ok(()),
            Err(e) if conn::is_busy(&e) => {}
            Err(e) => return Err(direct_err(e)),
        }
        self.conn
            .db()?
            .busy_timeout(BUSY_WAIT)
            .map_err(direct_err)?;
        let db = self.conn.db.take();
        // Cut short, the connection stays with the thread: the next turn opens another.
        let (db, begun) = blocking(move || {
            let begun = db.as_ref().map(|db| conn::control(db, BEGIN));
            (db, begun)
        })
        .await?;
        self.conn.db = db;
        self.conn
            .db()?
            .busy_timeout(Duration::ZERO)
            .map_err(direct_err)?;
        match begun {
            Some(begun) => begun.map_err(direct_err),
            None => Err(Error::internal(
                "database: the writer's connection is closed",
            )),
        }
    }

    /// The shared transaction is gone or unusable: every turn released into it is told
    /// `e`, and the connection is replaced (closing it rolls back whatever is left).
    fn lose_transaction(&mut self, e: Error) {
        self.suspect = true;
        self.open = false;
        self.batch_since = None;
        for r in self.batch.drain(..) {
            let _ = r.done.send(Err(e.clone()));
        }
    }

    async fn replace_conn(&mut self, shared: &Shared) -> Result<()> {
        let old = self.conn.db.take();
        let (path, read_only) = (shared.path.clone(), shared.read_only);
        // Closing first rolls back what the old connection holds and lets go of the file.
        let fresh = blocking(move || {
            drop(old);
            DirectConn::open(&path, read_only)
        })
        .await??;
        self.conn.db = Some(fresh);
        self.suspect = false;
        self.open = false;
        Ok(())
    }

    /// COMMITs the shared transaction, appends the batch's audit records to the file, then
    /// answers every turn of the batch.
    async fn commit(&mut self, shared: &Shared) {
        self.roll_back_dirty();
        if !self.open {
            return;
        }
        self.suspect = true;
        let db = self.conn.db.take();
        // The batch's records go to the audit file on the same thread, right after COMMIT
        // returned: the file follows the database as closely as it can (a kill in between
        // leaves the file behind, and the next start catches it up).
        let chain = shared.chain.get().cloned();
        // The batch's audit records wait for this COMMIT from the first of them released.
        let first_record = self
            .batch
            .iter()
            .filter(|r| !r.records.is_empty())
            .map(|r| r.at)
            .min();
        // Taken, not copied: a failed commit writes nothing to the file.
        let records: Vec<AuditRecord> = self
            .batch
            .iter_mut()
            .flat_map(|r| std::mem::take(&mut r.records))
            .collect();
        let committed = blocking(move || {
            let done = db.as_ref().map(|db| conn::control(db, &["COMMIT"]));
            if let (Some(Ok(())), Some(chain)) = (&done, chain)
                && !records.is_empty()
            {
                if let Some(at) = first_record {
                    chain.commit_took(at.elapsed());
                }
                // Durable in the database: a failed file append is the file's problem
                // (logged by the chain, found by verify), not the writers'.
                let _ = chain.committed(&records);
            }
            (db, done)
        })
        .await;
        let done = match committed {
            Ok((db, Some(done))) => {
                self.conn.db = db;
                done.map_err(direct_err)
            }
            Ok((_, None)) => Err(Error::internal(
                "database: the writer's connection is closed",
            )),
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            // SQLite may have rolled back already (a full disk); replacing the connection
            // makes sure (failing that, the next turn tries again).
            self.lose_transaction(e);
            let _ = self.replace_conn(shared).await;
            return;
        }
        self.suspect = false;
        self.open = false;
        self.batch_since = None;
        self.commits += 1;
        for r in std::mem::take(&mut self.batch) {
            let _ = r.done.send(Ok(()));
        }
    }
}

/// Runs `f` on a blocking thread (what waits on the disk).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("database: the writer's thread failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::stmt;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{Connection as _, SqliteConnection};

    async fn writer(dir: &std::path::Path) -> (Arc<Writer>, SqliteConnectOptions) {
        let path = dir.join("w.db");
        let opts = SqliteConnectOptions::new().filename(&path);
        let w = Arc::new(Writer::open(&path, false).await.unwrap());
        let mut t = w.turn().await.unwrap();
        stmt("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .execute(&mut *t)
            .await
            .unwrap();
        t.commit(Vec::new()).await.unwrap();
        (w, opts)
    }

    /// What another connection (a reader) sees.
    async fn committed(opts: &SqliteConnectOptions) -> Vec<i64> {
        let mut c = SqliteConnection::connect_with(opts).await.unwrap();
        sqlx::query_scalar("SELECT n FROM t ORDER BY n")
            .fetch_all(&mut c)
            .await
            .unwrap()
    }

    /// A request's turn that queues after a background turn still goes first; the background
    /// turn waits until no request's turn is waiting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_turns_go_before_background_turns() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = writer(dir.path()).await;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = w.turn().await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for (name, urgent) in [
            ("request 1", true),
            ("background", false),
            ("request 2", true),
        ] {
            let (w, order) = (w.clone(), order.clone());
            tasks.spawn(async move {
                let t = if urgent {
                    w.turn().await
                } else {
                    w.background_turn().await
                }
                .unwrap();
                order.lock().unwrap().push(name);
                t.commit(Vec::new()).await.unwrap();
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        held.commit(Vec::new()).await.unwrap();
        while tasks.join_next().await.is_some() {}
        assert_eq!(
            *order.lock().unwrap(),
            ["request 1", "request 2", "background"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_a_failed_one_undoes_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (w, opts) = writer(dir.path()).await;
        let before = w.shared.state.lock().await.commits;
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..64i64 {
            let w = w.clone();
            tasks.spawn(async move {
                let mut t = w.turn().await?;
                stmt("INSERT INTO t (n) VALUES ($1)")
                    .bind(n)
                    .execute(&mut *t)
                    .await?;
                if n % 4 == 0 {
                    // Fails after its insert, as a request whose later statement fails.
                    return Err(Error::internal("refused"));
                }
                t.commit(Vec::new()).await
            });
        }
        let results = tasks.join_all().await;
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 16);
        let expected: Vec<i64> = (0..64).filter(|n| n % 4 != 0).collect();
        assert_eq!(committed(&opts).await, expected);
        let commits = w.shared.state.lock().await.commits - before;
        assert!(
            commits < 32,
            "64 writes queued at once took {commits} commits"
        );
    }

    #[tokio::test]
    async fn a_write_is_visible_to_readers_only_once_its_commit_returned() {
        let dir = tempfile::tempdir().unwrap();
        let (w, opts) = writer(dir.path()).await;
        let mut t = w.turn().await.unwrap();
        stmt("INSERT INTO t (n) VALUES (7)")
            .execute(&mut *t)
            .await
            .unwrap();
        assert_eq!(committed(&opts).await, Vec::<i64>::new());
        t.commit(Vec::new()).await.unwrap();
        assert_eq!(committed(&opts).await, vec![7]);
    }

    /// Another connection holding the file's write lock makes a turn wait for it (on a
    /// blocking thread, the runtime's own threads free meanwhile), not fail.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_turn_waits_for_another_connections_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (w, opts) = writer(dir.path()).await;
        let other = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
        other
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t (n) VALUES (1)")
            .unwrap();
        let turn = tokio::spawn({
            let w = w.clone();
            async move {
                let mut t = w.turn().await?;
                stmt("INSERT INTO t (n) VALUES (2)")
                    .execute(&mut *t)
                    .await?;
                t.commit(Vec::new()).await
            }
        });
        // The runtime still runs other tasks while the turn waits.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!turn.is_finished(), "the turn went ahead of the lock");
        other.execute_batch("COMMIT").unwrap();
        turn.await.unwrap().unwrap();
        assert_eq!(committed(&opts).await, vec![1, 2]);
    }
}
