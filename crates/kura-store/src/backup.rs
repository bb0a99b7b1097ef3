//! Backups (`kura operator backup` / `restore`): a backup file IS a SQLite database in kura's
//! schema, every row as stored (still encrypted under the keyring, audit MACs unchanged), plus
//! one table, `kura_backup`, holding the manifest (when, from what, row counts), so the file
//! can be inspected with `sqlite3` and checked before anything is restored from it.
//!
//! Online and consistent: a SQLite source is copied with `VACUUM INTO` on its own read
//! connection (one read transaction: a snapshot of the last commit before it, whatever the
//! server writes meanwhile; rowids are kept). A PostgreSQL source is read table by table in one
//! `REPEATABLE READ READ ONLY` transaction, the reverse of [`crate::transfer`].

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use kura_core::{Error, Result};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row, SqliteConnection};

use crate::StoreLifecycle;
use crate::transfer::{Kind, Progress, TABLES};

/// The table holding the manifest; not part of kura's schema (restore drops it).
pub const MANIFEST_TABLE: &str = "kura_backup";

/// This kura writes backups of this format, and reads only this one.
pub const FORMAT: i64 = 1;

/// What a backup holds, written into it when it is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: i64,
    /// When the snapshot was taken (milliseconds since the epoch).
    pub created_at: i64,
    /// `sqlite` or `postgresql`.
    pub source: String,
    /// The kura version that took it.
    pub kura_version: String,
    /// The SQLite schema version of the file's tables.
    pub schema_version: i64,
    /// How the root key is kept: `file` (not in the backup: restore needs it), `shamir` or
    /// `pkcs11` (the seal record is in the settings table).
    pub seal: String,
    /// Rows per table, in copy order.
    pub rows: BTreeMap<String, u64>,
}

impl Manifest {
    pub fn new(source: &str, seal: &str) -> Manifest {
        let created_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        Manifest {
            format: FORMAT,
            created_at,
            source: source.to_string(),
            kura_version: env!("CARGO_PKG_VERSION").to_string(),
            schema_version: crate::sqlite::SCHEMA_VERSION,
            seal: seal.to_string(),
            rows: BTreeMap::new(),
        }
    }

    /// Rows of `table` in the backup (0 for a table it does not have).
    pub fn rows(&self, table: &str) -> u64 {
        self.rows.get(table).copied().unwrap_or(0)
    }
}

fn sqlite_err(what: &str, e: sqlx::Error) -> Error {
    Error::internal(format!("writing the backup ({what}): {e}"))
}

fn pg_err(what: &str, e: sqlx::Error) -> Error {
    Error::internal(format!("reading PostgreSQL ({what}): {e}"))
}

fn utf8(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| {
        Error::invalid_parameter(format!(
            "{} is not a UTF-8 path: choose another file name",
            path.display()
        ))
    })
}

/// Copies the live SQLite database `db` into `out` (an empty file the caller created).
pub async fn snapshot_sqlite(db: &Path, out: &Path) -> Result<()> {
    if !db.is_file() {
        return Err(Error::invalid_request(format!(
            "there is no kura database at {}",
            db.display()
        )));
    }
    let source = crate::open_read_only(db).await?;
    let result = async {
        let mut conn = source
            .pool()
            .acquire()
            .await
            .map_err(|e| sqlite_err("opening the source", e))?;
        // One statement, one read transaction: a consistent copy however the server writes.
        sqlx::query("VACUUM INTO ?")
            .bind(utf8(out)?)
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::internal(format!("copying {}: {e}", db.display())))?;
        Ok(())
    }
    .await;
    source.pool().close().await;
    result
}

/// Copies every table of the PostgreSQL database at `url` into `out` (an empty file the
/// caller created), from one snapshot of the database. Reads only: nothing is migrated or
/// locked, so the cluster goes on serving meanwhile.
pub async fn snapshot_postgres(
    url: &str,
    out: &Path,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<()> {
    crate::transfer::check_reachable(url).await?;
    // kura's SQLite schema, empty, in the file.
    let schema = crate::SqliteStore::open(out).await?;
    schema.close().await;
    let mut dst = open_file(out, false).await?;
    let mut pg = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| pg_err("connect", e))?;
    let result = copy_postgres(&mut pg, &mut dst, progress).await;
    let _ = pg.close().await;
    let _ = dst.close().await;
    result
}

async fn copy_postgres(
    pg: &mut sqlx::PgConnection,
    dst: &mut SqliteConnection,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<()> {
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *pg)
        .await
        .map_err(|e| pg_err("begin", e))?;
    let version: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM schema_migrations")
        .fetch_one(&mut *pg)
        .await
        .map_err(|e| {
            Error::invalid_request(format!(
                "the PostgreSQL database is not a kura database (no schema version: {e})"
            ))
        })?;
    let latest = crate::postgres::SCHEMA_VERSION;
    if version != Some(latest) {
        return Err(Error::invalid_request(format!(
            "the PostgreSQL database has schema version {}, this kura's is {latest}: back it up with the kura version its nodes run",
            version.unwrap_or(0)
        )));
    }
    crate::transfer::check_columns(&mut *pg).await?;

    sqlx::query("BEGIN")
        .execute(&mut *dst)
        .await
        .map_err(|e| sqlite_err("begin", e))?;
    for (i, table) in TABLES.iter().enumerate() {
        let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            table.name
        )))
        .fetch_one(&mut *pg)
        .await
        .map_err(|e| pg_err(table.name, e))?;
        let mut report = |done: u64| {
            progress(Progress {
                table: table.name,
                table_number: i + 1,
                tables: TABLES.len(),
                done,
                total: total as u64,
            })
        };
        report(0);
        let select: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                let ty = match c.kind {
                    Kind::Int => "bigint",
                    Kind::Text => "text",
                    Kind::Blob => "bytea",
                };
                format!("{}::{ty}", c.name)
            })
            .collect();
        // In the identity's order, so SQLite's rowids (secret_versions' seq) rise as before.
        let order = table
            .identity
            .map(|c| format!(" ORDER BY {c}"))
            .unwrap_or_default();
        // A cursor: a large audit trail is read in batches, not loaded whole. One per table:
        // a prepared FETCH keeps the row shape of the cursor it was first prepared for.
        let cursor = format!("backup_{}", table.name);
        sqlx::query(AssertSqlSafe(format!(
            "DECLARE {cursor} NO SCROLL CURSOR FOR SELECT {} FROM {}{order}",
            select.join(", "),
            table.name
        )))
        .execute(&mut *pg)
        .await
        .map_err(|e| pg_err(table.name, e))?;
        let targets: Vec<&str> = table.columns.iter().map(|c| c.source).collect();
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            table.name,
            targets.join(", "),
            vec!["?"; targets.len()].join(", ")
        );
        let mut done = 0u64;
        loop {
            let rows = sqlx::query(AssertSqlSafe(format!("FETCH 1000 FROM {cursor}")))
                .fetch_all(&mut *pg)
                .await
                .map_err(|e| pg_err(table.name, e))?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let mut q = sqlx::query(AssertSqlSafe(insert.clone()));
                for (c, column) in table.columns.iter().enumerate() {
                    q = match column.kind {
                        Kind::Int => q.bind(
                            row.try_get::<Option<i64>, _>(c)
                                .map_err(|e| pg_err(table.name, e))?,
                        ),
                        Kind::Text => q.bind(
                            row.try_get::<Option<String>, _>(c)
                                .map_err(|e| pg_err(table.name, e))?,
                        ),
                        Kind::Blob => q.bind(
                            row.try_get::<Option<Vec<u8>>, _>(c)
                                .map_err(|e| pg_err(table.name, e))?,
                        ),
                    };
                }
                q.execute(&mut *dst)
                    .await
                    .map_err(|e| sqlite_err(table.name, e))?;
            }
            done += rows.len() as u64;
            report(done);
        }
        sqlx::query(AssertSqlSafe(format!("CLOSE {cursor}")))
            .execute(&mut *pg)
            .await
            .map_err(|e| pg_err(table.name, e))?;
        if done != total as u64 {
            // The snapshot does not change: anything else is a bug, not a race.
            return Err(Error::internal(format!(
                "{}: counted {total} rows but read {done}",
                table.name
            )));
        }
    }
    sqlx::query("COMMIT")
        .execute(&mut *dst)
        .await
        .map_err(|e| sqlite_err("commit", e))?;
    let _ = sqlx::query("ROLLBACK").execute(&mut *pg).await;
    Ok(())
}

/// A plain connection to a SQLite file in rollback-journal mode (a backup is one file, no
/// `-wal` beside it), synced on commit.
async fn open_file(path: &Path, read_only: bool) -> Result<SqliteConnection> {
    let opts = SqliteConnectOptions::from_str("sqlite://")
        .map_err(|e| sqlite_err("options", e))?
        .filename(path)
        .read_only(read_only)
        .foreign_keys(true);
    let opts = if read_only {
        opts
    } else {
        opts.journal_mode(SqliteJournalMode::Delete)
            .synchronous(SqliteSynchronous::Full)
    };
    opts.connect()
        .await
        .map_err(|e| Error::invalid_request(format!("cannot open {} ({e})", path.display())))
}

/// Counts the rows of the snapshot in `out` into `manifest` and writes it into the file.
/// Refuses a snapshot whose schema is not this kura's (its server runs another version).
pub async fn write_manifest(out: &Path, manifest: &mut Manifest) -> Result<()> {
    let mut conn = open_file(out, false).await?;
    let result = async {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM schema_migrations")
                .fetch_one(&mut conn)
                .await
                .map_err(|e| sqlite_err("schema version", e))?;
        if version != Some(crate::sqlite::SCHEMA_VERSION) {
            return Err(Error::invalid_request(format!(
                "the database has schema version {}, this kura's is {}: back it up with the kura version the server runs",
                version.unwrap_or(0),
                crate::sqlite::SCHEMA_VERSION
            )));
        }
        manifest.rows = count_rows(&mut conn, TABLES.iter().map(|t| t.name)).await?;
        let json = serde_json::to_string(manifest)
            .map_err(|e| Error::internal(format!("encoding the manifest: {e}")))?;
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE {MANIFEST_TABLE} (manifest TEXT NOT NULL)"
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| sqlite_err("manifest", e))?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {MANIFEST_TABLE} (manifest) VALUES (?)"
        )))
        .bind(json)
        .execute(&mut conn)
        .await
        .map_err(|e| sqlite_err("manifest", e))?;
        Ok(())
    }
    .await;
    let _ = conn.close().await;
    result
}

async fn count_rows<'a>(
    conn: &mut SqliteConnection,
    tables: impl Iterator<Item = &'a str>,
) -> Result<BTreeMap<String, u64>> {
    let mut rows = BTreeMap::new();
    for table in tables {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| sqlite_err(table, e))?;
        rows.insert(table.to_string(), n as u64);
    }
    Ok(rows)
}

/// Reads and checks the manifest of the backup at `file`: it is a kura backup of a format
/// and schema this kura reads, undamaged, holding the rows its manifest counts.
pub async fn read_manifest(file: &Path) -> Result<Manifest> {
    let not_backup = |why: String| {
        Error::invalid_request(format!(
            "{} is not a kura backup ({why}); give a file written by `kura operator backup`",
            file.display()
        ))
    };
    if !file.is_file() {
        return Err(not_backup("there is no such file".into()));
    }
    let mut conn = open_file(file, true).await?;
    let result = async {
        let text: String = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT manifest FROM {MANIFEST_TABLE}"
        )))
        .fetch_one(&mut conn)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.message().contains("no such table") => {
                not_backup(format!("it has no {MANIFEST_TABLE} table"))
            }
            sqlx::Error::RowNotFound => not_backup(format!("its {MANIFEST_TABLE} table is empty")),
            other => not_backup(format!("{other}")),
        })?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| not_backup(format!("its manifest does not parse: {e}")))?;
        if manifest.format != FORMAT {
            return Err(Error::invalid_request(format!(
                "{} is a kura backup of format {}, this kura reads format {FORMAT}: restore it with the kura version that wrote it ({})",
                file.display(),
                manifest.format,
                manifest.kura_version
            )));
        }
        if manifest.schema_version > crate::sqlite::SCHEMA_VERSION {
            return Err(Error::invalid_request(format!(
                "{} was taken by kura {} (schema version {}), newer than this kura knows ({}): restore it with that version",
                file.display(),
                manifest.kura_version,
                manifest.schema_version,
                crate::sqlite::SCHEMA_VERSION
            )));
        }
        let check: String = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| not_backup(format!("{e}")))?;
        if check != "ok" {
            return Err(Error::invalid_request(format!(
                "the backup {} is damaged (SQLite's check: {check}); restore from another backup",
                file.display()
            )));
        }
        // The names go into SQL: only tables this kura knows are counted.
        if let Some(unknown) = manifest
            .rows
            .keys()
            .find(|t| !TABLES.iter().any(|known| known.name == t.as_str()))
        {
            return Err(Error::invalid_request(format!(
                "the manifest of {} lists a table this kura does not know ({unknown:?}): restore it with the kura version that wrote it ({})",
                file.display(),
                manifest.kura_version
            )));
        }
        let found = count_rows(&mut conn, manifest.rows.keys().map(String::as_str)).await;
        let found = found.map_err(|e| {
            Error::invalid_request(format!(
                "the backup {} lacks tables its manifest lists ({}): it was changed after it was taken",
                file.display(),
                e.detail.as_deref().unwrap_or(&e.message)
            ))
        })?;
        let differ: Vec<String> = manifest
            .rows
            .iter()
            .filter(|(t, n)| found.get(*t) != Some(n))
            .map(|(t, n)| format!("{t}: {} rows, manifest {n}", found.get(t).unwrap_or(&0)))
            .collect();
        if !differ.is_empty() {
            return Err(Error::invalid_request(format!(
                "the backup {} does not hold what its manifest counts ({}): it was changed after it was taken",
                file.display(),
                differ.join("; ")
            )));
        }
        Ok(manifest)
    }
    .await;
    let _ = conn.close().await;
    result
}

/// Makes the copy of a backup at `db` an installation's database: its schema brought up to
/// this kura's, the manifest table dropped, one file in rollback-journal mode (the server
/// turns WAL on when it opens it).
pub async fn strip_manifest(db: &Path) -> Result<()> {
    let store = crate::SqliteStore::open(db).await?;
    store.close().await;
    let mut conn = open_file(db, false).await?;
    let result = sqlx::query(AssertSqlSafe(format!("DROP TABLE {MANIFEST_TABLE}")))
        .execute(&mut conn)
        .await
        .map_err(|e| sqlite_err("dropping the manifest", e));
    let _ = conn.close().await;
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's rowid orders versions created in the same millisecond (and becomes
    /// PostgreSQL's `seq`): the snapshot keeps every rowid, gaps and all, in tables with a
    /// non-integer key (as secret_versions) and without any index.
    #[tokio::test]
    async fn a_sqlite_snapshot_keeps_rowids() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("source.db");
        let out = dir.path().join("copy.db");
        std::fs::File::create(&db).unwrap();
        let mut conn = open_file(&db, false).await.unwrap();
        let setup = "CREATE TABLE keyed (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b));
             CREATE TABLE bare (a TEXT);
             INSERT INTO keyed (rowid, a, b) VALUES (9, 'x', '1'), (2, 'x', '2'), (5, 'y', '1');
             INSERT INTO bare (rowid, a) VALUES (8, 'p'), (3, 'q'), (6, 'r');
             DELETE FROM keyed WHERE rowid = 5;
             DELETE FROM bare WHERE rowid = 3;";
        sqlx::raw_sql(setup).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        std::fs::File::create(&out).unwrap();
        snapshot_sqlite(&db, &out).await.unwrap();
        let mut copy = open_file(&out, true).await.unwrap();
        for (table, expected) in [("keyed", "2:x2,9:x1"), ("bare", "6:r,8:p")] {
            let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT rowid || ':' || {} FROM {table} ORDER BY rowid",
                if table == "keyed" { "a || b" } else { "a" }
            )))
            .fetch_all(&mut copy)
            .await
            .unwrap();
            assert_eq!(rows.join(","), expected, "{table}");
        }
    }
}
