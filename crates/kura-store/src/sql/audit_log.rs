//! The audit chain: appends, the audited commit, queries.

use std::borrow::Cow;
use std::future::Future;

use kura_core::Result;

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
        stmt(
            "INSERT INTO audit_log (seq, time, request_id, kind, principal, access_key_id, action, \
             resource, version_id, version_stage, source_ip, user_agent, decision, outcome, \
             error_code, duration_us, mac, node) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
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
        .bind(&r.node)
        .execute(tx)
        .await?;
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
    let written = match insert_chained(tx.conn(), chain, vec![draft.record.clone()]).await {
        Ok(records) => tx.commit().await.map(|()| records),
        Err(e) => Err(e),
    };
    match written {
        Ok(records) => {
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

/// Records matching `q`, oldest first.
pub(crate) async fn query_audit<C: Conn>(conn: &mut C, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
    let mut conds = vec!["TRUE".to_string()];
    let mut args = Args::default();
    if let Some(t) = q.start_time {
        conds.push(format!("time >= {}", args.push(t)));
    }
    if let Some(t) = q.end_time {
        conds.push(format!("time <= {}", args.push(t)));
    }
    if let Some(s) = q.after_seq {
        conds.push(format!("seq > {}", args.push(s)));
    }
    for (col, v) in [
        ("principal", &q.principal),
        ("action", &q.action),
        ("resource", &q.resource),
        ("outcome", &q.outcome),
    ] {
        if let Some(v) = v {
            conds.push(format!("{col} = {}", args.push(v)));
        }
    }
    let sql = format!(
        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {} ORDER BY seq LIMIT {}",
        conds.join(" AND "),
        args.push(q.limit as i64)
    );
    built(sql, args)
        .fetch_all(conn)
        .await?
        .iter()
        .map(audit_from_row)
        .collect()
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
