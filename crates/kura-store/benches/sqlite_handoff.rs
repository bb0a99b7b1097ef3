//! What a write costs on SQLite through sqlx, whose connection is a worker thread that every
//! statement is handed to and answered from, against a connection owned by one dedicated thread
//! (rusqlite) that runs a whole transaction per hand-off: issue 14 asked which to build the
//! writer on, by the figures. The transaction is PutSecretValue's shape (read the secret, insert
//! the version, move two labels, touch the secret, append the audit record). `synchronous=OFF`
//! so the figures are the statements and hand-offs, not the disk (group commit shares one fsync
//! among a batch anyway). Run with `cargo bench -p kura-store --bench sqlite_handoff`.

use std::hint::black_box;
use std::sync::mpsc;
use std::thread;

use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

const SCHEMA: &str = "
CREATE TABLE secrets (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, last_changed INTEGER NOT NULL);
CREATE TABLE versions (id INTEGER PRIMARY KEY, secret_id INTEGER NOT NULL, version_id TEXT NOT NULL,
    ciphertext BLOB NOT NULL, created INTEGER NOT NULL, UNIQUE (secret_id, version_id));
CREATE TABLE stages (secret_id INTEGER NOT NULL, stage TEXT NOT NULL, version_id TEXT NOT NULL,
    PRIMARY KEY (secret_id, stage));
CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, principal TEXT NOT NULL,
    action TEXT NOT NULL, resource TEXT NOT NULL, mac TEXT NOT NULL);
";
const SECRETS: i64 = 1000;

const SELECT_SECRET: &str = "SELECT id, name, last_changed FROM secrets WHERE id = ?1";
const INSERT_VERSION: &str =
    "INSERT INTO versions (secret_id, version_id, ciphertext, created) VALUES (?1, ?2, ?3, ?4)";
const MOVE_STAGE: &str = "INSERT INTO stages (secret_id, stage, version_id) VALUES (?1, ?2, ?3) \
     ON CONFLICT (secret_id, stage) DO UPDATE SET version_id = excluded.version_id";
const TOUCH_SECRET: &str = "UPDATE secrets SET last_changed = ?2 WHERE id = ?1";
const INSERT_AUDIT: &str = "INSERT INTO audit_log (time, principal, action, resource, mac) \
     VALUES (?1, 'arn:aws:iam::000000000000:root', 'secretsmanager:PutSecretValue', ?2, ?3)";

fn database() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.db");
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.execute_batch(SCHEMA).expect("schema");
    let tx = conn.unchecked_transaction().expect("tx");
    for id in 1..=SECRETS {
        tx.execute(
            "INSERT INTO secrets (id, name, last_changed) VALUES (?1, ?2, 0)",
            rusqlite::params![id, format!("prod/app-{id}")],
        )
        .expect("secret");
    }
    tx.commit().expect("commit");
    (dir, path)
}

/// The transaction through sqlx: every statement a round trip to its connection's thread.
async fn put_sqlx(conn: &mut SqliteConnection, i: i64) -> sqlx::Result<()> {
    let id = i % SECRETS + 1;
    let version = format!("v-{i}");
    let mut tx = conn.begin().await?;
    sqlx::query(SELECT_SECRET)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(INSERT_VERSION)
        .bind(id)
        .bind(&version)
        .bind(&[7u8; 64][..])
        .bind(i)
        .execute(&mut *tx)
        .await?;
    for stage in ["AWSPREVIOUS", "AWSCURRENT"] {
        sqlx::query(MOVE_STAGE)
            .bind(id)
            .bind(stage)
            .bind(&version)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(TOUCH_SECRET)
        .bind(id)
        .bind(i)
        .execute(&mut *tx)
        .await?;
    sqlx::query(INSERT_AUDIT)
        .bind(i)
        .bind(format!("secret:prod/app-{id}"))
        .bind("0".repeat(64))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The same transaction, run on the thread that owns the connection.
fn put_rusqlite(conn: &mut rusqlite::Connection, i: i64) -> rusqlite::Result<()> {
    let id = i % SECRETS + 1;
    let version = format!("v-{i}");
    let tx = conn.transaction()?;
    tx.prepare_cached(SELECT_SECRET)?
        .query_row([id], |r| r.get::<_, i64>(0))?;
    tx.prepare_cached(INSERT_VERSION)?
        .execute(rusqlite::params![id, version, &[7u8; 64][..], i])?;
    for stage in ["AWSPREVIOUS", "AWSCURRENT"] {
        tx.prepare_cached(MOVE_STAGE)?
            .execute(rusqlite::params![id, stage, version])?;
    }
    tx.prepare_cached(TOUCH_SECRET)?
        .execute(rusqlite::params![id, i])?;
    tx.prepare_cached(INSERT_AUDIT)?.execute(rusqlite::params![
        i,
        format!("secret:prod/app-{id}"),
        "0".repeat(64)
    ])?;
    tx.commit()
}

type Job = Box<dyn FnOnce(&mut rusqlite::Connection) + Send>;

/// A connection owned by one thread, which runs the closures it is sent in order.
fn connection_thread(path: &std::path::Path) -> mpsc::Sender<Job> {
    let mut conn = rusqlite::Connection::open(path).expect("open");
    conn.pragma_update(None, "synchronous", "OFF")
        .expect("sync");
    let (tx, rx) = mpsc::channel::<Job>();
    thread::spawn(move || {
        while let Ok(job) = rx.recv() {
            job(&mut conn);
        }
    });
    tx
}

/// Runs `f` on the connection's thread and waits for its answer (from async code, as the
/// server would).
async fn on_thread<T: Send + 'static>(
    thread: &mpsc::Sender<Job>,
    f: impl FnOnce(&mut rusqlite::Connection) -> T + Send + 'static,
) -> T {
    let (done, answer) = tokio::sync::oneshot::channel();
    thread
        .send(Box::new(move |c| {
            let _ = done.send(f(c));
        }))
        .expect("connection thread");
    answer.await.expect("connection thread answers")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (_dir, path) = database();
    let mut g = c.benchmark_group("put_transaction");

    let mut sqlx_conn = rt.block_on(async {
        SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Off)
            .connect()
            .await
            .expect("sqlx connect")
    });
    let mut i = 0i64;
    g.bench_function("sqlx: a hand-off per statement", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(put_sqlx(&mut sqlx_conn, black_box(i)))
                .expect("sqlx put")
        })
    });

    let thread = connection_thread(&path);
    g.bench_function("rusqlite thread: a hand-off per statement", |b| {
        b.iter(|| {
            i += 1;
            let n = black_box(i);
            rt.block_on(async {
                // The same statements, each sent on its own, as a driver does.
                on_thread(&thread, |c| c.execute_batch("BEGIN")).await?;
                let id = n % SECRETS + 1;
                let version = format!("v-{n}");
                on_thread(&thread, move |c| {
                    c.prepare_cached(SELECT_SECRET)?
                        .query_row([id], |r| r.get::<_, i64>(0))
                })
                .await?;
                let v = version.clone();
                on_thread(&thread, move |c| {
                    c.prepare_cached(INSERT_VERSION)?.execute(rusqlite::params![
                        id,
                        v,
                        &[7u8; 64][..],
                        n
                    ])
                })
                .await?;
                for stage in ["AWSPREVIOUS", "AWSCURRENT"] {
                    let v = version.clone();
                    on_thread(&thread, move |c| {
                        c.prepare_cached(MOVE_STAGE)?
                            .execute(rusqlite::params![id, stage, v])
                    })
                    .await?;
                }
                on_thread(&thread, move |c| {
                    c.prepare_cached(TOUCH_SECRET)?
                        .execute(rusqlite::params![id, n])
                })
                .await?;
                on_thread(&thread, move |c| {
                    c.prepare_cached(INSERT_AUDIT)?.execute(rusqlite::params![
                        n,
                        format!("secret:prod/app-{id}"),
                        "0".repeat(64)
                    ])
                })
                .await?;
                on_thread(&thread, |c| c.execute_batch("COMMIT")).await
            })
            .expect("rusqlite put")
        })
    });
    g.bench_function("rusqlite thread: one hand-off per transaction", |b| {
        b.iter(|| {
            i += 1;
            let n = black_box(i);
            rt.block_on(on_thread(&thread, move |c| put_rusqlite(c, n)))
                .expect("rusqlite put")
        })
    });
    // The statements alone: no hand-off at all (the floor the others are measured from).
    let mut own = rusqlite::Connection::open(&path).expect("open");
    own.pragma_update(None, "synchronous", "OFF").expect("sync");
    g.bench_function("rusqlite on the caller's thread: no hand-off", |b| {
        b.iter(|| {
            i += 1;
            put_rusqlite(&mut own, black_box(i)).expect("rusqlite put")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
