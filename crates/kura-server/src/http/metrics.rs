//! `GET /metrics`: the process-wide counters of [`crate::metrics`] and gauges read from the
//! node at scrape time, in Prometheus' text format. Kept apart from the counters so the code
//! that counts (the service, the doors) does not depend on the node it runs in.

use std::fmt::Write;

use kura_core::Timestamp;

use crate::metrics::{COUNT_LIMIT, counters, esc, header};
use crate::node::Node;

/// The text of one scrape.
pub async fn render(node: &Node) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "kura_build_info",
        "gauge",
        "kura's version (always 1).",
    );
    let _ = writeln!(
        out,
        "kura_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let live = node.live();
    header(
        &mut out,
        "kura_sealed",
        "gauge",
        "1 while the server is sealed (it answers nothing until unsealed), else 0.",
    );
    let _ = writeln!(out, "kura_sealed {}", u8::from(live.is_none()));
    {
        let c = counters();
        header(
            &mut out,
            "kura_requests_total",
            "counter",
            "API requests answered, by operation (IAM action) and outcome (success or the error code).",
        );
        for (op, stats) in &c.operations {
            let mut outcomes: Vec<&(String, u64)> = stats.outcomes.iter().collect();
            outcomes.sort();
            for (outcome, n) in outcomes {
                let _ = writeln!(
                    out,
                    "kura_requests_total{{operation=\"{}\",outcome=\"{}\"}} {n}",
                    esc(op),
                    esc(outcome)
                );
            }
        }
        header(
            &mut out,
            "kura_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its answer, by operation.",
        );
        for (op, stats) in &c.operations {
            let labels = format!("operation=\"{}\",", esc(op));
            stats
                .latency
                .write(&mut out, "kura_request_duration_seconds", &labels);
        }
        header(
            &mut out,
            "kura_rotations_total",
            "counter",
            "Rotation cycles this server ended, by rotation function and outcome (succeeded, failed).",
        );
        for ((function, outcome), n) in &c.rotations {
            let _ = writeln!(
                out,
                "kura_rotations_total{{function=\"{}\",outcome=\"{}\"}} {n}",
                esc(function),
                esc(outcome)
            );
        }
        header(
            &mut out,
            "kura_audit_commit_duration_seconds",
            "histogram",
            "Commits that made audit records durable: from the first record written into the transaction (SQLite: released into the group commit) until COMMIT returned.",
        );
        c.audit_commits
            .write(&mut out, "kura_audit_commit_duration_seconds", "");
    }
    let Some(live) = live else {
        return out;
    };
    let service = &live.service;
    let store = service.store();
    let cache = store.cache_stats();
    header(
        &mut out,
        "kura_cache_hits_total",
        "counter",
        "Reads answered from the read cache.",
    );
    let _ = writeln!(out, "kura_cache_hits_total {}", cache.hits);
    header(
        &mut out,
        "kura_cache_misses_total",
        "counter",
        "Reads that queried the database while the cache was on.",
    );
    let _ = writeln!(out, "kura_cache_misses_total {}", cache.misses);
    header(
        &mut out,
        "kura_cache_bytes",
        "gauge",
        "Estimated bytes the read cache holds.",
    );
    let _ = writeln!(out, "kura_cache_bytes {}", cache.bytes);
    if let Some(depth) = service.audit_queue_depth() {
        header(
            &mut out,
            "kura_audit_queue_depth",
            "gauge",
            "Audit records waiting for the audit writer's next commit.",
        );
        let _ = writeln!(out, "kura_audit_queue_depth {depth}");
    }
    if let Some(n) = service.audit_records_committed() {
        header(
            &mut out,
            "kura_audit_records_total",
            "counter",
            "Audit records this server committed to the trail.",
        );
        let _ = writeln!(out, "kura_audit_records_total {n}");
    }
    let now = Timestamp(service.now_ms());
    if let Ok(due) = store.rotation_due(now, COUNT_LIMIT).await {
        header(
            &mut out,
            "kura_rotations_due",
            "gauge",
            "Secrets with rotation work due now and not leased by a node (counted up to 10000).",
        );
        let _ = writeln!(out, "kura_rotations_due {}", due.len());
    }
    if let Ok(overdue) = store.rotation_overdue(now, COUNT_LIMIT).await {
        header(
            &mut out,
            "kura_rotations_overdue",
            "gauge",
            "Secrets whose scheduled rotation is late, leased or not: the rotation window closed before a cycle started, or the cycle still runs after the window's end (counted up to 10000).",
        );
        let _ = writeln!(out, "kura_rotations_overdue {}", overdue.len());
    }
    if let Ok(due) = store.due_notifications(now, COUNT_LIMIT).await {
        header(
            &mut out,
            "kura_notifications_due",
            "gauge",
            "Notifications due for delivery and not yet delivered (counted up to 10000).",
        );
        let _ = writeln!(out, "kura_notifications_due {}", due.len());
    }
    let pools = store.pool_stats();
    header(
        &mut out,
        "kura_db_connections",
        "gauge",
        "Database connections by pool (PostgreSQL: main; SQLite: read, read-direct, and write, its one writer) and state (in_use, idle).",
    );
    for p in &pools {
        for (state, n) in [("in_use", p.in_use), ("idle", p.idle)] {
            let _ = writeln!(
                out,
                "kura_db_connections{{pool=\"{}\",state=\"{state}\"}} {n}",
                p.pool
            );
        }
    }
    header(
        &mut out,
        "kura_db_connections_max",
        "gauge",
        "The most connections each database pool opens.",
    );
    for p in &pools {
        let _ = writeln!(
            out,
            "kura_db_connections_max{{pool=\"{}\"}} {}",
            p.pool, p.max
        );
    }
    out
}
