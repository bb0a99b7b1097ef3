//! The process-wide counters and histograms behind `GET /metrics` (Prometheus' text format
//! 0.0.4, written by hand: a few counters, two histogram families and some gauges need no
//! metrics crate). The page itself, with the gauges read from the node, is `http/metrics.rs`.
//!
//! Labels are bounded and say nothing secret: operations are IAM action names known at build
//! time, outcomes are error codes, functions are rotation-function names chosen by an
//! operator, pools are the store's fixed names. Never a secret's name or value.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::{LazyLock, Mutex};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Due rotations and notifications are counted up to this many (one scrape, one query each).
pub const COUNT_LIMIT: usize = 10_000;

#[derive(Default)]
pub(crate) struct Histogram {
    /// Observations per bucket (not cumulative; made so when written).
    pub(crate) buckets: [u64; BUCKETS.len()],
    pub(crate) sum: f64,
    pub(crate) count: u64,
}

impl Histogram {
    pub(crate) fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }

    /// The `_bucket`, `_sum` and `_count` lines of `name`; `labels` (`k="v",` each, escaped)
    /// go before `le`.
    pub(crate) fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(self.buckets) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", self.count);
        let labels = match labels.trim_end_matches(',') {
            "" => String::new(),
            l => format!("{{{l}}}"),
        };
        let _ = writeln!(out, "{name}_sum{labels} {}", self.sum);
        let _ = writeln!(out, "{name}_count{labels} {}", self.count);
    }
}

/// One operation's answers.
#[derive(Default)]
pub(crate) struct OperationStats {
    /// (outcome, requests): a handful per operation, so a scan beats a map.
    pub(crate) outcomes: Vec<(String, u64)>,
    pub(crate) latency: Histogram,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) operations: BTreeMap<&'static str, OperationStats>,
    /// (function, outcome) → finished rotation cycles.
    pub(crate) rotations: BTreeMap<(String, String), u64>,
    /// Commits of audit records, from the first record written into the transaction until
    /// COMMIT returned.
    pub(crate) audit_commits: Histogram,
}

static COUNTERS: LazyLock<Mutex<Counters>> = LazyLock::new(Default::default);

/// `X-Amz-Target` → the operation's IAM action, for every operation kura serves: what the
/// operation label may be (else `unknown`). Looked up without allocating, on every request.
static TARGETS: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    crate::service::operation::all_actions()
        .into_iter()
        .filter_map(|action| {
            let target = match action.split_once(':') {
                Some(("secretsmanager", op)) => format!("secretsmanager.{op}"),
                Some(("kura", op)) => format!("Kura.{op}"),
                _ => return None,
            };
            Some((target, action))
        })
        .collect()
});

pub(crate) fn counters() -> std::sync::MutexGuard<'static, Counters> {
    // A panic while holding the lock leaves counts that are still counts.
    COUNTERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The operation label for an `X-Amz-Target` (`secretsmanager.GetSecretValue` →
/// `secretsmanager:GetSecretValue`); `unknown` for anything kura does not serve.
pub fn operation_label(target: &str) -> &'static str {
    TARGETS.get(target).map(String::as_str).unwrap_or("unknown")
}

/// One answered request.
pub fn request(operation: &'static str, outcome: &str, seconds: f64) {
    let mut c = counters();
    let stats = c.operations.entry(operation).or_default();
    match stats.outcomes.iter_mut().find(|(o, _)| o == outcome) {
        Some((_, n)) => *n += 1,
        None => stats.outcomes.push((outcome.to_string(), 1)),
    }
    stats.latency.observe(seconds);
}

/// One commit that made audit records durable, and how long it took.
pub fn audit_commit(took: std::time::Duration) {
    counters().audit_commits.observe(took.as_secs_f64());
}

/// One rotation cycle that ended (`succeeded` or `failed`), by the function that ran it.
pub fn rotation(function_arn: Option<&str>, outcome: &str) {
    let function = function_arn
        .map(|a| a.rsplit(':').next().unwrap_or(a))
        .unwrap_or("none");
    *counters()
        .rotations
        .entry((function.to_string(), outcome.to_string()))
        .or_default() += 1;
}

/// A label value with `\`, `"` and newlines escaped.
pub(crate) fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_outside_kura_are_unknown() {
        assert_eq!(
            operation_label("secretsmanager.GetSecretValue"),
            "secretsmanager:GetSecretValue"
        );
        assert_eq!(operation_label("secretsmanager.prod/db"), "unknown");
        assert_eq!(operation_label("x"), "unknown");
    }

    #[test]
    fn a_histogram_is_cumulative_and_ends_at_its_count() {
        let mut h = Histogram::default();
        for s in [0.0001, 0.003, 0.003, 99.0] {
            h.observe(s);
        }
        let mut out = String::new();
        h.write(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\nx_sum 99."), "{out}");
        assert!(out.ends_with("\nx_count 4\n"), "{out}");
        let mut out = String::new();
        h.write(&mut out, "x", "op=\"a\",");
        assert!(out.contains("x_bucket{op=\"a\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_count{op=\"a\"} 4\n"), "{out}");
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
