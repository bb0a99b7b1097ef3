//! The audit lookup tables (`audit_by_resource`, `audit_by_principal`, and how far they
//! reach, `audit_indexed`) in a file of their own beside the database (`kura.db-lookup`),
//! attached to every reader as `lookup` and filled behind the trail by a connection of
//! their own.
//!
//! Why their own file: a pass adds the records of the last seconds in key order, which
//! touches about one page per distinct resource (a thousand secrets read at random: ~4 MiB).
//! In the database's file that pass took the writer, so every request's commit waited behind
//! it (30–60 ms, once a second: the open-loop p99 of reads), and its pages went through the
//! checkpoints that requests' commits run. Here it takes only this file's lock; it reads
//! the trail as any reader does (WAL: a reader never waits for the writer).
//!
//! The tables are derived from the trail: this file is not backed up and need not be
//! durable (its commits do not wait for fsync). A missing file is created empty; a file
//! filled from another trail (a restored backup, a file copied from elsewhere) is told by
//! the chained MAC of the last record it holds, and emptied. Lookups read from the trail
//! whatever the tables do not hold yet.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kura_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension};

use super::conn::{self, DirectConn, direct_err};
use crate::sql;

/// The tables, in the schema `{schema}` (`lookup`, the attached file, or `temp`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS {schema}.audit_by_resource (
    resource TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (resource, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {schema}.audit_by_principal (
    principal TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (principal, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS {schema}.audit_indexed (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    upto INTEGER NOT NULL,
    mark TEXT NOT NULL
);
INSERT OR IGNORE INTO {schema}.audit_indexed (only, upto, mark) VALUES (1, 0, '');
";

/// The lookup file of the database at `db`.
pub(crate) fn lookup_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-lookup");
    PathBuf::from(name)
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| {
        Error::invalid_request(format!(
            "the database's path {} is not UTF-8; give a data directory whose path is",
            path.display()
        ))
    })
}

fn create(db: &Connection, schema: &str) -> Result<()> {
    db.execute_batch(&SCHEMA.replace("{schema}", schema))
        .map_err(direct_err)
}

/// Attaches the lookup tables of the database at `main` to `db` as `lookup`. A read-only
/// connection that finds no such file (or one never filled) gets empty temporary tables
/// instead (it may not write an attached file, even one in memory): its lookups then read
/// the whole trail, which is slower and as right.
pub(super) fn attach(db: &Connection, main: &Path, read_only: bool) -> Result<()> {
    let file = lookup_path(main);
    if !read_only || file.exists() {
        db.execute("ATTACH DATABASE ?1 AS lookup", [path_str(&file)?])
            .map_err(direct_err)?;
        if !read_only {
            return Ok(());
        }
        let filled: i64 = db
            .query_row(
                "SELECT count(*) FROM lookup.sqlite_master WHERE name = 'audit_indexed'",
                [],
                |r| r.get(0),
            )
            .map_err(direct_err)?;
        if filled == 1 {
            return Ok(());
        }
        db.execute_batch("DETACH DATABASE lookup")
            .map_err(direct_err)?;
    }
    create(db, "temp")
}

/// The indexer's connection: the database with the lookup file attached (created if
/// missing, emptied if it was filled from another trail). Blocks: call it on a blocking
/// thread, before any reader attaches the file.
fn open(main: &Path) -> Result<Connection> {
    let db = DirectConn::open(main, false)?;
    attach(&db, main, false)?;
    // Derived data: a pass lost to a crash is done again, so commits need not wait for
    // the disk (the tables and how far they reach commit together either way).
    db.execute_batch("PRAGMA lookup.journal_mode = WAL; PRAGMA lookup.synchronous = NORMAL;")
        .map_err(direct_err)?;
    db.busy_timeout(Duration::from_secs(10))
        .map_err(direct_err)?;
    create(&db, "lookup")?;
    let (upto, mark): (i64, String) = db
        .query_row("SELECT upto, mark FROM lookup.audit_indexed", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(direct_err)?;
    if upto > 0 {
        let found: Option<String> = db
            .query_row(
                "SELECT mac FROM main.audit_log WHERE seq = ?1",
                [upto],
                |r| r.get(0),
            )
            .optional()
            .map_err(direct_err)?;
        if found.as_deref() != Some(mark.as_str()) {
            tracing::warn!(
                file = %lookup_path(main).display(),
                "the audit lookup tables were filled from another audit trail; filling them again"
            );
            db.execute_batch(
                "BEGIN; DELETE FROM lookup.audit_by_resource; \
                 DELETE FROM lookup.audit_by_principal; \
                 UPDATE lookup.audit_indexed SET upto = 0, mark = ''; COMMIT;",
            )
            .map_err(direct_err)?;
        }
    }
    Ok(db)
}

/// The connection that fills the lookup tables, one pass at a time.
pub(super) struct Filler {
    db: Mutex<Option<Connection>>,
}

impl Filler {
    /// Opens (and checks) the lookup file of the database at `main`.
    pub(super) async fn open(main: &Path) -> Result<Filler> {
        let main = main.to_path_buf();
        let db = tokio::task::spawn_blocking(move || open(&main))
            .await
            .map_err(|e| {
                Error::internal(format!("database: the lookup file's opening failed: {e}"))
            })??;
        Ok(Filler {
            db: Mutex::new(Some(db)),
        })
    }

    /// A filler that never fills (a read-only look at the database).
    pub(super) fn none() -> Filler {
        Filler {
            db: Mutex::new(None),
        }
    }

    /// Adds up to `max` records of the trail to the tables, in one transaction of the
    /// lookup file; returns how many. Blocks: call it on a blocking thread.
    pub(super) fn pass(&self, max: i64) -> Result<i64> {
        let mut guard = self
            .db
            .lock()
            .map_err(|_| Error::internal("database: the lookup filler failed earlier"))?;
        let Some(db) = guard.take() else {
            return Ok(0);
        };
        let mut conn = DirectConn { db: Some(db) };
        let out = conn
            .batch(&["BEGIN"])
            .map_err(direct_err)
            .and_then(|()| conn::ready(sql::audit_log::index_behind(&mut conn, max))?);
        let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = conn.batch(&[end]).map_err(direct_err);
        *guard = conn.db;
        let added = out?;
        ended?;
        Ok(added)
    }

    /// How far the tables reach (tests).
    #[cfg(test)]
    pub(super) fn upto(&self) -> i64 {
        let guard = self.db.lock().unwrap();
        guard
            .as_ref()
            .unwrap()
            .query_row("SELECT upto FROM lookup.audit_indexed", [], |r| r.get(0))
            .unwrap()
    }

    /// Lets the file go (shutdown).
    pub(super) fn close(&self) {
        if let Ok(mut guard) = self.db.lock() {
            guard.take();
        }
    }
}
