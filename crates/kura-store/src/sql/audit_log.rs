//! The audit chain: appends, the audited commit, queries.

use std::borrow::Cow;
use std::future::Future;

use kura_core::{Error, Result};

use super::{Args, Conn, built, recordable, stmt};
use crate::audit::{AuditChain, AuditSlot, Changed};
use crate::rows::*;
use crate::{AuditQuery, AuditRecord};

/// `r` in a form the backend can store (see [`recordable`]); untouched where it is already.
fn recordable_record<C: Conn>(r: &mut AuditRecord) {
    fn fix<C: Conn>(field: &mut String) {
        if let Cow::Owned(fixed) = recordable::<C>(field) {
            *field = fixed;
        }
    }
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
        fix::<C>(field);
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
        fix::<C>(field);
    }
}

/// Rows per multi-row INSERT, largest first (18 parameters a row: 64 rows stay far below
/// both backends' parameter limits).
const INSERT_ROWS: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];
const AUDIT_INSERT_COLUMNS: usize = 18;

/// `INSERT INTO audit_log … VALUES (…), (…)` for `rows` rows, built once per size.
fn insert_statement(rows: usize) -> &'static str {
    static TEXTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        INSERT_ROWS
            .iter()
            .map(|&n| {
                let values: Vec<String> = (0..n)
                    .map(|row| {
                        let first = row * AUDIT_INSERT_COLUMNS + 1;
                        let params: Vec<String> = (first..first + AUDIT_INSERT_COLUMNS)
                            .map(|p| format!("${p}"))
                            .collect();
                        format!("({})", params.join(", "))
                    })
                    .collect();
                format!(
                    "INSERT INTO audit_log (seq, time, request_id, kind, principal, access_key_id, \
                     action, resource, version_id, version_stage, source_ip, user_agent, decision, \
                     outcome, error_code, duration_us, mac, node) VALUES {}",
                    values.join(", ")
                )
            })
            .collect()
    });
    let i = INSERT_ROWS
        .iter()
        .position(|n| *n == rows)
        .unwrap_or(INSERT_ROWS.len() - 1);
    &texts[i]
}

/// Numbers `records` after the chain's tail, as read in this transaction, chains their MACs
/// and inserts them. The backend's tail lock (SQLite: its one writer; PostgreSQL: an
/// advisory lock held until the transaction ends) makes the tail read and the inserts one
/// step no other writer can interleave with.
pub(crate) async fn insert_chained<C: Conn>(
    tx: &mut C,
    chain: &dyn AuditChain,
    mut records: Vec<AuditRecord>,
) -> Result<Vec<AuditRecord>> {
    tx.lock_audit_tail().await?;
    let tail = stmt("SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(tx)
        .await?;
    let (mut seq, mut prev) = match tail {
        Some(row) => (row.col("seq")?, Some(row.col::<String>("mac")?)),
        None => (0, None),
    };
    for r in &mut records {
        recordable_record::<C>(r);
        seq += 1;
        r.seq = seq;
        r.mac = chain.mac(prev.as_deref(), r);
        prev = Some(r.mac.clone());
    }
    // Many rows per statement: each statement is a round trip to the driver's connection
    // thread, which under read load cost more than the rows themselves. Chunk sizes are
    // powers of two so a handful of statement texts cover every batch (each is prepared
    // once and cached).
    let mut rest = &records[..];
    while !rest.is_empty() {
        let n = INSERT_ROWS
            .iter()
            .copied()
            .find(|n| *n <= rest.len())
            .unwrap_or(1);
        let (chunk, after) = rest.split_at(n);
        let mut s = stmt(insert_statement(n));
        for r in chunk {
            s = s
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
                .bind(&r.node);
        }
        s.execute(tx).await?;
        rest = after;
    }
    Ok(records)
}

/// A write transaction that changes something a request asked for, ready to commit.
pub(crate) trait Committable: Send {
    type Conn: Conn;
    fn conn(&mut self) -> &mut Self::Conn;
    fn commit(self) -> impl Future<Output = Result<()>> + Send;
}

/// Commits `tx` with the request's audit record if one is waiting: "refused" then means "not
/// done". Every write a request can make ends here. The caller holds what orders this
/// node's audit-writing transactions (SQLite's writer queue, PostgreSQL's `order` lock, taken
/// here only when a record is written), so records reach `chain.committed` in commit order.
pub(crate) async fn commit_change<T: Committable>(
    mut tx: T,
    chain: Option<&dyn AuditChain>,
    order: Option<&tokio::sync::Mutex<()>>,
    changed: Changed,
    audit: &AuditSlot,
) -> Result<()> {
    let Some(chain) = chain else {
        return tx.commit().await;
    };
    let Some(draft) = audit.take(&changed) else {
        return tx.commit().await;
    };
    let _order = match order {
        Some(lock) => Some(lock.lock().await),
        None => None,
    };
    let started = std::time::Instant::now();
    let written = match insert_chained(tx.conn(), chain, vec![draft.record.clone()]).await {
        Ok(records) => tx.commit().await.map(|()| records),
        Err(e) => Err(e),
    };
    match written {
        Ok(records) => {
            chain.commit_took(started.elapsed());
            audit.settle(draft, true);
            // The change is done and its record durable in the database: a failed file
            // append is the file's problem (logged by the chain, found by verify), not the
            // request's.
            let _ = chain.committed(&records);
            Ok(())
        }
        Err(e) => {
            audit.settle(draft, false);
            Err(e)
        }
    }
}

pub(crate) async fn last_audit<C: Conn>(conn: &mut C) -> Result<Option<AuditRecord>> {
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1");
    built(sql, Args::default())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(audit_from_row)
        .transpose()
}

/// Records matching `q`, oldest first (newest first with `q.newest_first`).
pub(crate) async fn query_audit<C: Conn>(conn: &mut C, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
    if C::AUDIT_LOOKUP_BEHIND
        && let Some((table, column, key)) = lookup_table(q)
    {
        return query_behind(conn, q, table, column, key).await;
    }
    let mut args = Args::default();
    let conds = conditions(q, &mut args, "");
    let sql = format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {conds} ORDER BY seq {} LIMIT {}",
        order(q),
        args.push(q.limit as i64)
    );
    built(sql, args)
        .fetch_all(conn)
        .await?
        .iter()
        .map(audit_from_row)
        .collect()
}

fn order(q: &AuditQuery) -> &'static str {
    if q.newest_first { "DESC" } else { "ASC" }
}

/// The filters of `q` as SQL over `audit_log` (aliased `prefix`), values pushed to `args`.
fn conditions<'a>(q: &'a AuditQuery, args: &mut Args<'a>, prefix: &str) -> String {
    let mut conds = vec!["TRUE".to_string()];
    if let Some(t) = q.start_time {
        conds.push(format!("{prefix}time >= {}", args.push(t)));
    }
    if let Some(t) = q.end_time {
        conds.push(format!("{prefix}time <= {}", args.push(t)));
    }
    if let Some(s) = q.after_seq {
        conds.push(format!("{prefix}seq > {}", args.push(s)));
    }
    if let Some(s) = q.before_seq {
        conds.push(format!("{prefix}seq < {}", args.push(s)));
    }
    for (col, v) in [
        ("principal", &q.principal),
        ("action", &q.action),
        ("resource", &q.resource),
        ("outcome", &q.outcome),
    ] {
        if let Some(v) = v {
            conds.push(format!("{prefix}{col} = {}", args.push(v)));
        }
    }
    conds.join(" AND ")
}

/// The lookup table serving `q`'s resource or principal filter (the resource when both: it
/// names fewer records), if it has one.
fn lookup_table(q: &AuditQuery) -> Option<(&'static str, &'static str, &str)> {
    if let Some(r) = &q.resource {
        return Some(("audit_by_resource", "resource", r.as_str()));
    }
    q.principal
        .as_deref()
        .map(|p| ("audit_by_principal", "principal", p))
}

/// A lookup by resource or principal where the lookup tables cover the trail only up to
/// `audit_indexed.upto`: the records up to there come through the table, the rest (the last
/// second or so) from a scan of `audit_log` past `upto` by sequence number. Every record of
/// the first part precedes every record of the second, so their concatenation is in order.
async fn query_behind<C: Conn>(
    conn: &mut C,
    q: &AuditQuery,
    table: &str,
    column: &str,
    key: &str,
) -> Result<Vec<AuditRecord>> {
    let upto: i64 = stmt("SELECT upto FROM audit_indexed").scalar(conn).await?;
    // Newest first, the scan past `upto` comes first; oldest first, the indexed part.
    let mut found = Vec::new();
    if q.newest_first {
        found = scan_after(conn, q, upto, q.limit).await?;
        if found.len() < q.limit {
            let rest = q.limit - found.len();
            found.extend(indexed_upto(conn, q, table, column, key, upto, rest).await?);
        }
    } else {
        if q.after_seq.is_none_or(|after| after < upto) {
            found = indexed_upto(conn, q, table, column, key, upto, q.limit).await?;
        }
        if found.len() < q.limit {
            let rest = q.limit - found.len();
            found.extend(scan_after(conn, q, upto, rest).await?);
        }
    }
    Ok(found)
}

/// Records of `q` up to `upto` (at most `limit`), through the lookup table.
async fn indexed_upto<C: Conn>(
    conn: &mut C,
    q: &AuditQuery,
    table: &str,
    column: &str,
    key: &str,
    upto: i64,
    limit: usize,
) -> Result<Vec<AuditRecord>> {
    let mut args = Args::default();
    let conds = conditions(q, &mut args, "a.");
    // The lookup table drives the join (CROSS JOIN keeps that order), read in sequence
    // order from its primary key.
    let sql = format!(
        "SELECT {cols} FROM {table} i CROSS JOIN audit_log a ON a.seq = i.seq \
         WHERE i.{column} = {key} AND i.seq > {after} AND i.seq <= {upto} AND {conds} \
         ORDER BY i.seq {order} LIMIT {limit}",
        cols = prefixed_audit_columns("a."),
        key = args.push(key),
        after = args.push(q.after_seq.unwrap_or(0)),
        upto = args.push(upto),
        order = order(q),
        limit = args.push(limit as i64),
    );
    built(sql, args)
        .fetch_all(conn)
        .await?
        .iter()
        .map(audit_from_row)
        .collect()
}

/// Records of `q` after `upto` (at most `limit`), by a scan of `audit_log`.
async fn scan_after<C: Conn>(
    conn: &mut C,
    q: &AuditQuery,
    upto: i64,
    limit: usize,
) -> Result<Vec<AuditRecord>> {
    let mut args = Args::default();
    let conds = conditions(q, &mut args, "");
    let sql = format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > {upto} AND {conds} \
         ORDER BY seq {order} LIMIT {limit}",
        upto = args.push(upto),
        order = order(q),
        limit = args.push(limit as i64),
    );
    built(sql, args)
        .fetch_all(conn)
        .await?
        .iter()
        .map(audit_from_row)
        .collect()
}

/// [`AUDIT_COLUMNS`] of the table aliased `prefix`.
fn prefixed_audit_columns(prefix: &str) -> String {
    AUDIT_COLUMNS
        .split(',')
        .map(|c| format!("{prefix}{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds the next records of the trail after `audit_indexed.upto` (at most `max` of them) to
/// the lookup tables and moves `upto` to the last one added, marked with its chained MAC (so
/// tables filled from another trail are told apart); returns how many it added. In the
/// caller's transaction.
pub(crate) async fn index_behind<C: Conn>(conn: &mut C, max: i64) -> Result<i64> {
    let after: i64 = stmt("SELECT upto FROM audit_indexed").scalar(conn).await?;
    let row = stmt(
        "SELECT count(*) AS n, max(seq) AS upto FROM \
         (SELECT seq FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2)",
    )
    .bind(after)
    .bind(max)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::internal("an aggregate returned no row"))?;
    let (added, upto): (i64, Option<i64>) = (row.col("n")?, row.col("upto")?);
    let Some(upto) = upto else {
        return Ok(0);
    };
    // Sorted by key, each table's new entries land in key order: one pass over the pages
    // they touch.
    for (table, column) in [
        ("audit_by_resource", "resource"),
        ("audit_by_principal", "principal"),
    ] {
        built(
            format!(
                "INSERT INTO {table} ({column}, seq) SELECT {column}, seq FROM audit_log \
                 WHERE seq > $1 AND seq <= $2 ORDER BY {column}, seq"
            ),
            Args::default(),
        )
        .bind(after)
        .bind(upto)
        .execute(conn)
        .await?;
    }
    stmt(
        "UPDATE audit_indexed SET upto = $1, \
         mark = (SELECT mac FROM audit_log WHERE seq = $1)",
    )
    .bind(upto)
    .execute(conn)
    .await?;
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_text_loses_its_nul_characters_only_where_text_cannot_hold_them() {
        let record = AuditRecord {
            resource: "x\0".into(),
            user_agent: Some("\0ua".into()),
            ..Default::default()
        };
        let mut on_pg = record.clone();
        recordable_record::<sqlx::PgConnection>(&mut on_pg);
        assert_eq!(
            (on_pg.resource.as_str(), on_pg.user_agent.as_deref()),
            ("x\u{FFFD}", Some("\u{FFFD}ua"))
        );
        let mut on_sqlite = record.clone();
        recordable_record::<sqlx::SqliteConnection>(&mut on_sqlite);
        assert_eq!(on_sqlite, record);
        assert!(matches!(
            recordable::<sqlx::PgConnection>("plain"),
            std::borrow::Cow::Borrowed("plain")
        ));
    }
}
