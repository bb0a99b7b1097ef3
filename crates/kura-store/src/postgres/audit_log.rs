//! The audit chain: one advisory lock orders every append of every node.

use super::*;

/// Numbers `records` after the chain's tail, chains their MACs and inserts them. The advisory
/// lock (held until the transaction ends) serializes every audit append of every node, so
/// the tail read (a fresh snapshot per statement under READ COMMITTED, taken after the lock)
/// and the inserts are one step no other writer can interleave with.
pub(super) async fn insert_chained(
    conn: &mut PgConnection,
    chain: &dyn AuditChain,
    mut records: Vec<AuditRecord>,
) -> Result<Vec<AuditRecord>> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(AUDIT_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let tail: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    let (mut seq, mut prev) = match tail {
        Some((seq, mac)) => (seq, Some(mac)),
        None => (0, None),
    };
    for r in &mut records {
        without_nul_record(r);
        seq += 1;
        r.seq = seq;
        r.mac = chain.mac(prev.as_deref(), r);
        prev = Some(r.mac.clone());
        sqlx::query(
            "INSERT INTO audit_log (seq, time, request_id, kind, principal, access_key_id, action, \
             resource, version_id, version_stage, source_ip, user_agent, decision, outcome, error_code, \
             duration_us, mac, node) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
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
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(records)
}

impl PgStore {
    async fn append_audit_once(
        &self,
        chain: &Arc<dyn AuditChain>,
        records: &[AuditRecord],
    ) -> Result<()> {
        // Connection first, then the order lock: whoever holds the lock already has its
        // connection, so writers queued on the lock cannot starve it of one.
        let mut tx = self.begin().await?;
        let _order = self.audit_order.lock().await;
        let records = insert_chained(&mut tx, chain.as_ref(), records.to_vec()).await?;
        tx.commit().await.map_err(db_err)?;
        chain.committed(&records)
    }
}

#[async_trait]
impl AuditStore for PgStore {
    fn set_audit_chain(&self, chain: Arc<dyn AuditChain>) {
        let _ = self.chain.set(chain);
    }

    async fn append_audit(&self, records: &[AuditRecord]) -> Result<()> {
        let chain = self
            .chain
            .get()
            .ok_or_else(|| Error::internal("the audit chain is not set up"))?;
        retry!(self.append_audit_once(chain, records))
    }

    async fn last_audit(&self) -> Result<Option<AuditRecord>> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(audit_from_row).transpose()
    }

    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut conds = vec!["TRUE".to_string()];
        let mut binds: Vec<Bind> = Vec::new();
        if let Some(t) = q.start_time {
            conds.push("time >= ?".into());
            binds.push(Bind::Int(t));
        }
        if let Some(t) = q.end_time {
            conds.push("time <= ?".into());
            binds.push(Bind::Int(t));
        }
        if let Some(s) = q.after_seq {
            conds.push("seq > ?".into());
            binds.push(Bind::Int(s));
        }
        for (col, v) in [
            ("principal", &q.principal),
            ("action", &q.action),
            ("resource", &q.resource),
            ("outcome", &q.outcome),
        ] {
            if let Some(v) = v {
                conds.push(format!("{col} = ?"));
                binds.push(Bind::Text(v.clone()));
            }
        }
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {} ORDER BY seq LIMIT ?",
            conds.join(" AND ")
        );
        let rows = bind_all(sqlx::query(pg(&sql)), binds)
            .bind(q.limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(audit_from_row).collect()
    }
}
