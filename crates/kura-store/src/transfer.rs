//! Moving an installation from SQLite to PostgreSQL (`kura migrate`): every table copied row
//! for row, ids, sequence numbers, MACs and bytes unchanged, into an empty database, in one
//! PostgreSQL transaction.
//!
//! Raw rows, not records through the store traits: ciphertext is bound to the secret's ARN and
//! version id, and each audit MAC to the record before it, so anything but the stored bytes
//! would break them. The copy needs no key for the same reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kura_core::{Clock, Error, Result, SystemClock};
use sqlx::postgres::PgArguments;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Postgres, Row};

use crate::{PgStore, StoreLifecycle};

/// Rows per INSERT (each column bound as one array, so the width of a table does not limit
/// it). Larger batches measured no faster here: reading SQLite takes a third of the time.
const BATCH: usize = 1000;

/// How the copy is going: `done` of `total` rows of `table` copied (called at the start of
/// each table and after each batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub table: &'static str,
    /// Which table this is (1-based) of `tables`.
    pub table_number: usize,
    pub tables: usize,
    pub done: u64,
    pub total: u64,
}

/// What was copied: rows per table, in copy order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    pub tables: Vec<(&'static str, u64)>,
    /// Rows (per table) with text holding a NUL character, which SQLite stores and
    /// PostgreSQL text cannot: copied with U+FFFD in its place, as PgStore records such text.
    pub nul_replaced: Vec<(&'static str, u64)>,
    /// The audit records among them (by seq): their MACs were computed over the NUL, so
    /// `kura audit verify` reports them as altered; the chain's links after them still hold.
    /// Their originals stay in the SQLite database and the old node's audit file.
    pub altered_audit_records: Vec<i64>,
}

impl Copied {
    /// Rows copied into `table` (0 for a table not copied).
    pub fn rows(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Int,
    Text,
    Blob,
}

/// One column: its name in PostgreSQL, the SQLite expression it is read from, its type.
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) source: &'static str,
    pub(crate) kind: Kind,
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        source: name,
        kind,
    }
}

pub(crate) struct Table {
    pub(crate) name: &'static str,
    pub(crate) columns: &'static [Column],
    /// The SQLite key the rows are read in order of, batch after batch (keyset paging, so a
    /// large audit trail is neither loaded whole nor rescanned per batch).
    key: &'static [(&'static str, Kind)],
    /// An identity column whose sequence must continue after the copied ids.
    pub(crate) identity: Option<&'static str>,
}

use Kind::{Blob, Int, Text};

const ROWID: &[(&str, Kind)] = &[("rowid", Int)];

/// Every table of the schema, parents before children (foreign keys hold at each INSERT).
/// `check_columns` compares this list with the PostgreSQL schema before anything is copied,
/// so a column added by a later migration cannot be left behind silently.
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "settings",
        columns: &[col("key", Text), col("value", Blob)],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "keys",
        columns: &[
            col("name", Text),
            col("version", Int),
            col("wrapped", Blob),
            col("created_at", Int),
        ],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "kms_keys",
        columns: &[
            col("id", Text),
            col("name", Text),
            col("alias", Text),
            col("description", Text),
            col("policy", Text),
            col("tags", Text),
            col("created_at", Int),
            col("rewrap_target", Int),
            col("rewrap_done", Int),
            col("rewrap_running", Int),
            col("lease_owner", Text),
            col("lease_expires_at", Int),
            col("deletion_date", Int),
        ],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "users",
        columns: &[
            col("name", Text),
            col("arn", Text),
            col("created_at", Int),
            col("tags", Text),
            col("user_id", Text),
        ],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "access_keys",
        columns: &[
            col("access_key_id", Text),
            col("user_name", Text),
            col("ciphertext", Blob),
            col("wrapped_key", Blob),
            col("key_name", Text),
            col("key_version", Int),
            col("status", Text),
            col("created_at", Int),
            col("last_used_at", Int),
            col("expires_at", Int),
            col("scope_secret_id", Int),
        ],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "user_policies",
        columns: &[
            col("user_name", Text),
            col("policy_name", Text),
            col("document", Text),
            col("created_at", Int),
        ],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "rotation_functions",
        columns: &[
            col("name", Text),
            col("kind", Text),
            col("config", Text),
            col("ciphertext", Blob),
            col("wrapped_key", Blob),
            col("key_name", Text),
            col("key_version", Int),
            col("created_at", Int),
        ],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "secrets",
        columns: &[
            col("id", Int),
            col("name", Text),
            col("arn", Text),
            col("description", Text),
            col("kms_key_id", Text),
            col("created_at", Int),
            col("changed_at", Int),
            col("accessed_at", Int),
            col("deleted_at", Int),
            col("purge_at", Int),
            col("resource_policy", Text),
            col("rotation_enabled", Int),
            col("rotation_function", Text),
            col("rotation_after_days", Int),
            col("rotation_schedule", Text),
            col("rotation_duration", Text),
            col("last_rotated_at", Int),
            col("next_rotation_at", Int),
            col("next_rotation_end", Int),
            col("rotation_state", Text),
            col("rotation_token", Text),
            col("rotation_step", Text),
            col("rotation_attempt", Int),
            col("rotation_error", Text),
            col("rotation_attempted_at", Int),
            col("rotation_resume_at", Int),
            col("rotation_window_end", Int),
            // Copied as they are, then released like SQLite's start-up recovery does
            // (`release_leases`).
            col("lease_owner", Text),
            col("lease_expires_at", Int),
            col("tagged", Int),
            col("expires_at", Int),
            col("expiry_notice_at", Int),
        ],
        key: ROWID,
        identity: Some("id"),
    },
    Table {
        name: "secret_versions",
        columns: &[
            col("secret_id", Int),
            col("version_id", Text),
            // Versions created in the same millisecond are ordered by SQLite's rowid, by
            // PostgreSQL's `seq`: the one becomes the other.
            Column {
                name: "seq",
                source: "rowid",
                kind: Int,
            },
            col("created_at", Int),
            col("accessed_at", Int),
            col("value_kind", Text),
            col("ciphertext", Blob),
            col("wrapped_key", Blob),
            col("key_name", Text),
            col("key_version", Int),
        ],
        key: ROWID,
        identity: Some("seq"),
    },
    Table {
        name: "version_stages",
        columns: &[
            col("secret_id", Int),
            col("stage", Text),
            col("version_id", Text),
        ],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "tags",
        columns: &[col("secret_id", Int), col("key", Text), col("value", Text)],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "secret_words",
        columns: &[col("secret_id", Int), col("field", Int), col("word", Text)],
        // WITHOUT ROWID: its primary key instead.
        key: &[("secret_id", Int), ("field", Int), ("word", Text)],
        identity: None,
    },
    Table {
        name: "notification_targets",
        columns: &[
            col("id", Text),
            col("url", Text),
            col("events", Text),
            col("ciphertext", Blob),
            col("wrapped_key", Blob),
            col("key_name", Text),
            col("key_version", Int),
            col("created_at", Int),
        ],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "notification_outbox",
        columns: &[
            col("id", Int),
            col("target_id", Text),
            col("body", Text),
            col("attempts", Int),
            col("next_attempt_at", Int),
            col("last_error", Text),
        ],
        key: ROWID,
        identity: Some("id"),
    },
    Table {
        name: "pki_authorities",
        columns: &[
            col("name", Text),
            col("kind", Text),
            col("parent", Text),
            col("common_name", Text),
            col("key_algorithm", Text),
            col("certificate", Text),
            col("chain", Text),
            col("csr", Text),
            col("not_after", Int),
            col("ciphertext", Blob),
            col("wrapped_key", Blob),
            col("key_name", Text),
            col("key_version", Int),
            col("created_at", Int),
        ],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "pki_templates",
        columns: &[
            col("name", Text),
            col("authority", Text),
            col("config", Text),
            col("created_at", Int),
        ],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "pki_certificates",
        columns: &[
            col("authority", Text),
            col("serial", Text),
            col("template", Text),
            col("common_name", Text),
            col("secret_arn", Text),
            col("issued_at", Int),
            col("not_after", Int),
            col("revoked_at", Int),
        ],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "acme_accounts",
        columns: &[
            col("directory_url", Text),
            col("email", Text),
            col("ciphertext", Blob),
            col("wrapped_key", Blob),
            col("key_name", Text),
            col("key_version", Int),
            col("created_at", Int),
        ],
        key: ROWID,
        identity: None,
    },
    Table {
        name: "audit_log",
        columns: &[
            col("seq", Int),
            col("time", Int),
            col("request_id", Text),
            col("kind", Text),
            col("principal", Text),
            col("access_key_id", Text),
            col("action", Text),
            col("resource", Text),
            col("version_id", Text),
            col("version_stage", Text),
            col("source_ip", Text),
            col("user_agent", Text),
            col("decision", Text),
            col("outcome", Text),
            col("error_code", Text),
            col("duration_us", Int),
            col("mac", Text),
            col("node", Text),
        ],
        key: ROWID,
        identity: None,
    },
];

/// The tables `copy_sqlite_to_postgres` copies, in order (and a backup counts and copies).
/// A table added by a migration is added here too, or neither copy carries it.
pub fn tables() -> impl Iterator<Item = &'static str> {
    TABLES.iter().map(|t| t.name)
}

/// Tables of both schemas that a move leaves behind: web console sessions (a user signs in
/// again on the new database; the old node is stopped before the move anyway).
pub fn uncopied_tables() -> impl Iterator<Item = &'static str> {
    ["console_sessions"].into_iter()
}

/// One SQLite value, typed by its column.
#[derive(Debug, Clone)]
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

fn read(row: &SqliteRow, index: usize, kind: Kind) -> std::result::Result<Value, sqlx::Error> {
    Ok(match kind {
        Kind::Int => Value::Int(row.try_get(index)?),
        Kind::Text => Value::Text(row.try_get(index)?),
        Kind::Blob => Value::Blob(row.try_get(index)?),
    })
}

/// One column of a batch, bound as one PostgreSQL array.
enum ColumnValues {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Blob(Vec<Option<Vec<u8>>>),
}

impl ColumnValues {
    fn new(kind: Kind, rows: usize) -> ColumnValues {
        match kind {
            Kind::Int => ColumnValues::Int(Vec::with_capacity(rows)),
            Kind::Text => ColumnValues::Text(Vec::with_capacity(rows)),
            Kind::Blob => ColumnValues::Blob(Vec::with_capacity(rows)),
        }
    }

    /// Appends `v`, which has this column's kind (`read` decodes by it).
    fn push(&mut self, v: Value) -> Result<()> {
        match (self, v) {
            (ColumnValues::Int(c), Value::Int(i)) => c.push(i),
            (ColumnValues::Text(c), Value::Text(t)) => c.push(t),
            (ColumnValues::Blob(c), Value::Blob(b)) => c.push(b),
            _ => return Err(Error::internal("migrate: a value of the wrong kind")),
        }
        Ok(())
    }

    fn bind<'q>(
        self,
        q: sqlx::query::Query<'q, Postgres, PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        match self {
            ColumnValues::Int(c) => q.bind(c),
            ColumnValues::Text(c) => q.bind(c),
            ColumnValues::Blob(c) => q.bind(c),
        }
    }
}

fn bind_sqlite<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    v: Value,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    match v {
        Value::Int(i) => q.bind(i),
        Value::Text(t) => q.bind(t),
        Value::Blob(b) => q.bind(b),
    }
}

fn sqlite_err(what: &str, e: sqlx::Error) -> Error {
    Error::internal(format!("reading the SQLite database ({what}): {e}"))
}

fn pg_err(what: &str, e: sqlx::Error) -> Error {
    Error::internal(format!("writing to PostgreSQL ({what}): {e}"))
}

/// Copies the kura database at `sqlite_path` into the (empty) PostgreSQL database at `pg_url`,
/// whose schema it creates or brings up to date first. All or nothing: one transaction.
///
/// The caller makes sure no server uses the SQLite file (kura-server's `migrate_data_dir`
/// holds the data directory's lock throughout). Rotation leases are released as SQLite's
/// start-up does, since the node that held them is stopped.
pub async fn copy_sqlite_to_postgres(
    sqlite_path: &Path,
    pg_url: &str,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Copied> {
    if !sqlite_path.is_file() {
        return Err(Error::invalid_request(format!(
            "there is no kura database at {}",
            sqlite_path.display()
        )));
    }
    let source = crate::open_read_only(sqlite_path).await?;
    let result = copy(&source, pg_url, progress).await;
    source.close().await;
    result
}

async fn copy(
    source: &crate::SqliteStore,
    pg_url: &str,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Copied> {
    // One read transaction: every table read from the same snapshot.
    let mut src = source
        .pool()
        .begin()
        .await
        .map_err(|e| sqlite_err("begin", e))?;
    check_sqlite_version(&mut src).await?;

    check_reachable(pg_url).await?;
    let target = PgStore::connect(pg_url).await?;
    let result = async {
        check_columns(target.pool()).await?;
        let mut tx = target
            .pool()
            .begin()
            .await
            .map_err(|e| pg_err("begin", e))?;
        // Nobody writes a table while it is checked empty and filled (a node started on the
        // target meanwhile waits, then finds it initialised).
        let all: Vec<&str> = tables().collect();
        sqlx::query(AssertSqlSafe(format!(
            "LOCK TABLE {} IN EXCLUSIVE MODE",
            all.join(", ")
        )))
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            // 55P03 lock_not_available: the session's lock_timeout passed.
            sqlx::Error::Database(d) if d.code().as_deref() == Some("55P03") => {
                Error::invalid_request(
                    "the target database is in use (kura nodes or another kura migrate hold its tables): migrate only into a new, empty database that nothing else uses",
                )
            }
            _ => pg_err("locking the tables", e),
        })?;
        refuse_non_empty(&mut tx).await?;

        let mut copied = Copied::default();
        for (i, table) in TABLES.iter().enumerate() {
            let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) FROM {}",
                table.name
            )))
            .fetch_one(&mut *src)
            .await
            .map_err(|e| sqlite_err(table.name, e))?;
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
            let done = copy_table(table, &mut src, &mut tx, &mut report).await?;
            copied.tables.push((table.name, done.rows));
            if done.nul_rows > 0 {
                copied.nul_replaced.push((table.name, done.nul_rows));
            }
            copied.altered_audit_records.extend(done.altered);
        }
        release_leases(&mut tx).await?;
        for table in TABLES {
            if let Some(column) = table.identity {
                // The next generated value follows the largest copied one.
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT setval(pg_get_serial_sequence('{t}', '{column}'), \
                     COALESCE((SELECT max({column}) FROM {t}), 0) + 1, false)",
                    t = table.name
                )))
                .execute(&mut *tx)
                .await
                .map_err(|e| pg_err(table.name, e))?;
            }
        }
        tx.commit().await.map_err(|e| pg_err("commit", e))?;
        Ok(copied)
    }
    .await;
    target.close().await;
    result
}

/// One plain connection first, for its error: the pool's own retries end in a timeout that
/// hides why (refused, no such database, wrong password). The URL is not repeated: it may
/// hold a password.
pub(crate) async fn check_reachable(pg_url: &str) -> Result<()> {
    use sqlx::Connection;
    let conn = sqlx::PgConnection::connect(pg_url).await.map_err(|e| {
        Error::invalid_request(format!(
            "cannot connect to the target PostgreSQL database ({e}): check the URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE), that the server is reachable and that the database exists (CREATE DATABASE …)"
        ))
    })?;
    let _ = conn.close().await;
    Ok(())
}

/// The copy reads the final SQLite schema; an older database is upgraded by starting kura on
/// it once.
async fn check_sqlite_version(src: &mut sqlx::SqliteConnection) -> Result<()> {
    let version: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM schema_migrations")
        .fetch_one(&mut *src)
        .await
        .map_err(|e| {
            Error::invalid_request(format!(
                "this is not a kura database (no schema version: {e})"
            ))
        })?;
    let latest = crate::sqlite::SCHEMA_VERSION;
    match version {
        Some(v) if v == latest => Ok(()),
        Some(v) if v > latest => Err(Error::invalid_request(format!(
            "the SQLite database has schema version {v}, newer than this kura knows ({latest}): migrate with the kura that wrote it"
        ))),
        v => Err(Error::invalid_request(format!(
            "the SQLite database has schema version {}, older than this kura's ({latest}): start `kura server` of this version on the data directory once (it upgrades the database), stop it, then migrate",
            v.unwrap_or(0)
        ))),
    }
}

/// Every column of the PostgreSQL tables is one this copy writes, and the other way round.
pub(crate) async fn check_columns<'e>(target: impl sqlx::PgExecutor<'e>) -> Result<()> {
    let names: Vec<String> = tables().map(str::to_string).collect();
    let rows = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = ANY($1)",
    )
    .bind(&names)
    .fetch_all(target)
    .await
    .map_err(|e| pg_err("reading the schema", e))?;
    let mut in_db = BTreeSet::new();
    for r in &rows {
        let t: String = r.try_get("t").map_err(|e| pg_err("schema", e))?;
        let c: String = r.try_get("c").map_err(|e| pg_err("schema", e))?;
        in_db.insert(format!("{t}.{c}"));
    }
    let known: BTreeSet<String> = TABLES
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .map(move |c| format!("{}.{}", t.name, c.name))
        })
        .collect();
    let unknown: Vec<&String> = in_db.difference(&known).collect();
    let missing: Vec<&String> = known.difference(&in_db).collect();
    if unknown.is_empty() && missing.is_empty() {
        return Ok(());
    }
    Err(Error::internal(format!(
        "this kura's migrate does not match the PostgreSQL schema (columns it does not copy: {unknown:?}; columns the database lacks: {missing:?}); nothing was copied"
    )))
}

/// Refuses a target holding any row: copied ids, seq numbers and names would collide with
/// it, and merging two installations is not a migration.
async fn refuse_non_empty(tx: &mut sqlx::PgConnection) -> Result<()> {
    let mut found = BTreeMap::new();
    for table in tables() {
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| pg_err(table, e))?;
        if n > 0 {
            found.insert(table, n);
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    let what: Vec<String> = found
        .iter()
        .map(|(t, n)| format!("{t}: {n} row{}", if *n == 1 { "" } else { "s" }))
        .collect();
    Err(Error::invalid_request(format!(
        "the target database is not empty ({}); kura migrate copies only into an empty database: create a new one (CREATE DATABASE …) and migrate into that",
        what.join(", ")
    )))
}

/// Replaces each NUL in the row's text with U+FFFD; whether there was one.
fn replace_nul(values: &mut [Value]) -> bool {
    let mut replaced = false;
    for v in values {
        if let Value::Text(Some(t)) = v
            && t.contains('\0')
        {
            *t = t.replace('\0', "\u{FFFD}");
            replaced = true;
        }
    }
    replaced
}

/// What one table's copy found.
struct TableCopy {
    rows: u64,
    /// Rows whose text held a NUL (replaced).
    nul_rows: u64,
    /// Of those, the audit records' seq numbers.
    altered: Vec<i64>,
}

/// Copies one table in batches.
async fn copy_table(
    table: &Table,
    src: &mut sqlx::SqliteConnection,
    tx: &mut sqlx::PgConnection,
    report: &mut dyn FnMut(u64),
) -> Result<TableCopy> {
    let mut nul_rows = 0u64;
    let mut altered = Vec::new();
    let keys: Vec<String> = (0..table.key.len()).map(|i| format!("k{i}")).collect();
    let key_select: Vec<String> = table
        .key
        .iter()
        .zip(&keys)
        .map(|((expr, _), k)| format!("{expr} AS {k}"))
        .collect();
    let sources: Vec<&str> = table.columns.iter().map(|c| c.source).collect();
    let order: Vec<&str> = table.key.iter().map(|(expr, _)| *expr).collect();
    let select = |after: bool| {
        format!(
            "SELECT {}, {} FROM {} {} ORDER BY {} LIMIT {BATCH}",
            key_select.join(", "),
            sources.join(", "),
            table.name,
            if after {
                format!(
                    "WHERE ({}) > ({})",
                    order.join(", "),
                    vec!["?"; order.len()].join(", ")
                )
            } else {
                String::new()
            },
            order.join(", "),
        )
    };
    let (first, next) = (select(false), select(true));
    let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    // `seq` of secret_versions is GENERATED ALWAYS: only an explicit override takes ours.
    let overriding = if table.identity.is_some() {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    // One statement per batch whatever its size: each column bound as one array.
    let arrays: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ty = match c.kind {
                Kind::Int => "bigint",
                Kind::Text => "text",
                Kind::Blob => "bytea",
            };
            format!("${}::{ty}[]", i + 1)
        })
        .collect();
    let insert = format!(
        "INSERT INTO {} ({}){overriding} SELECT * FROM UNNEST({})",
        table.name,
        names.join(", "),
        arrays.join(", ")
    );

    let mut after: Option<Vec<Value>> = None;
    let mut done = 0u64;
    loop {
        let rows = match &after {
            None => {
                sqlx::query(AssertSqlSafe(first.clone()))
                    .fetch_all(&mut *src)
                    .await
            }
            Some(last) => {
                let mut q = sqlx::query(AssertSqlSafe(next.clone()));
                for v in last.iter().cloned() {
                    q = bind_sqlite(q, v);
                }
                q.fetch_all(&mut *src).await
            }
        }
        .map_err(|e| sqlite_err(table.name, e))?;
        if rows.is_empty() {
            break;
        }
        let width = table.columns.len();
        let mut columns: Vec<ColumnValues> = table
            .columns
            .iter()
            .map(|c| ColumnValues::new(c.kind, rows.len()))
            .collect();
        for row in &rows {
            let mut values = Vec::with_capacity(width);
            for (c, column) in table.columns.iter().enumerate() {
                values.push(
                    read(row, table.key.len() + c, column.kind)
                        .map_err(|e| sqlite_err(table.name, e))?,
                );
            }
            if replace_nul(&mut values) {
                nul_rows += 1;
                if table.name == "audit_log"
                    && let Some(Value::Int(Some(seq))) = values.first()
                {
                    altered.push(*seq);
                }
            }
            for (column, v) in columns.iter_mut().zip(values) {
                column.push(v)?;
            }
        }
        let mut q = sqlx::query(AssertSqlSafe(insert.clone()));
        for column in columns {
            q = column.bind(q);
        }
        q.execute(&mut *tx)
            .await
            .map_err(|e| pg_err(table.name, e))?;
        let last = rows.last().map(|row| {
            table
                .key
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| read(row, i, *kind))
                .collect::<std::result::Result<Vec<_>, _>>()
        });
        after = Some(
            last.transpose()
                .map_err(|e| sqlite_err(table.name, e))?
                .unwrap_or_default(),
        );
        done += rows.len() as u64;
        report(done);
        if rows.len() < BATCH {
            break;
        }
    }
    Ok(TableCopy {
        rows: done,
        nul_rows,
        altered,
    })
}

/// The copied database is used by new nodes, never by the stopped node that held the leases:
/// what SQLite's `recover_rotations` does at start-up, done once here (a shared database
/// does not do it at start-up, as a lease there may be a live node's).
async fn release_leases(tx: &mut sqlx::PgConnection) -> Result<()> {
    sqlx::query(
        "UPDATE secrets SET rotation_resume_at = $1 WHERE lease_owner IS NOT NULL \
         AND rotation_state = 'InProgress'",
    )
    .bind(SystemClock.now().0)
    .execute(&mut *tx)
    .await
    .map_err(|e| pg_err("secrets", e))?;
    sqlx::query(
        "UPDATE secrets SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner IS NOT NULL",
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| pg_err("secrets", e))?;
    sqlx::query(
        "UPDATE kms_keys SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner IS NOT NULL",
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| pg_err("kms_keys", e))?;
    Ok(())
}
