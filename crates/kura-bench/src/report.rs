//! Text and Markdown output.

use std::fmt::Write;
use std::process::Command;
use std::time::Duration;

use crate::kura::Memory;
use crate::load::{Op, OpResult};
use crate::{RunArgs, Setup, StoreRun};

/// The machine, the code and the command line of a run.
pub struct Facts {
    pub command_line: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total: String,
    pub kernel: String,
    /// The checkout the bench runs in (not necessarily the commit `kura` was built from).
    pub commit: String,
    pub kura_version: String,
    /// The kura binary measured.
    pub kura_path: String,
    pub date: String,
    /// The disk's single-writer fsync rate where the data directories go (or why unknown).
    pub fsync: Result<f64, String>,
}

fn shell_quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@+".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl Facts {
    pub fn gather(args: &RunArgs) -> Facts {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_total = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| {
                l["MemTotal:".len()..]
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        let commit = match command_output("git", &["rev-parse", "--short", "HEAD"]) {
            Some(c) => {
                let dirty =
                    command_output("git", &["status", "--porcelain", "--untracked-files=no"])
                        .is_some_and(|s| !s.is_empty());
                if dirty {
                    format!("{c} (with uncommitted changes)")
                } else {
                    c
                }
            }
            None => "unknown".into(),
        };
        let kura = args.kura.to_string_lossy().to_string();
        Facts {
            command_line: std::env::args()
                .map(|a| shell_quote(&a))
                .collect::<Vec<_>>()
                .join(" "),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            mem_total,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            commit,
            kura_version: command_output(&kura, &["--version"]).unwrap_or_else(|| "unknown".into()),
            kura_path: kura,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            fsync: crate::fsync::rate(
                &args.work_dir.clone().unwrap_or_else(std::env::temp_dir),
                std::time::Duration::from_secs(2),
            ),
        }
    }

    pub fn header(&self) -> String {
        format!(
            "kura-bench  {}\nmachine     {} CPUs ({}), {} RAM, Linux {}\ndisk        {}\nkura        {} ({}); the bench's checkout is at commit {}\ncommand     {}",
            self.date,
            self.cpus,
            self.cpu_model,
            self.mem_total,
            self.kernel,
            self.fsync_text(),
            self.kura_version,
            self.kura_path,
            self.commit,
            self.command_line
        )
    }

    /// The fsync rate as the header and the Markdown state it.
    pub fn fsync_text(&self) -> String {
        match &self.fsync {
            Ok(rate) => format!(
                "{} fsyncs/s (one writer, 4 KiB appends, each fdatasync'd)",
                thousands(rate.round() as u64)
            ),
            Err(e) => format!("fsync rate unknown: {e}"),
        }
    }
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0)
}

fn mem(m: Option<Memory>, hwm: bool) -> String {
    match m {
        Some(m) if hwm => mib(m.hwm_kib * 1024),
        Some(m) => mib(m.rss_kib * 1024),
        None => "?".into(),
    }
}

fn ratio(r: &OpResult, ceiling: &OpResult) -> String {
    let c = ceiling.ops_per_sec();
    if c > 0.0 {
        format!("{:.1}%", 100.0 * r.ops_per_sec() / c)
    } else {
        "-".into()
    }
}

/// CPU microseconds per request as `user+sys`.
fn cpu_per_op(r: &OpResult, cpu: Option<crate::kura::CpuTime>) -> String {
    match r.per_op_us(cpu) {
        Some((u, s)) => format!("{u:.0}+{s:.0}"),
        None => "-".into(),
    }
}

pub fn op_header() -> String {
    format!(
        "{:<18} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>13} {:>14} {:>14} {:>15}",
        "op",
        "ops/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "kura/ceiling",
        "kura CPU us/op",
        "bench CPU us/op",
        "PG CPU us/op"
    )
}

pub fn op_line(op: Op, r: &OpResult, ceiling: Option<&OpResult>) -> String {
    let mut line = format!(
        "{:<18} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>13} {:>14} {:>14} {:>15}",
        op.name(),
        thousands(r.ops_per_sec().round() as u64),
        r.percentile_ms(50.0),
        r.percentile_ms(90.0),
        r.percentile_ms(99.0),
        r.max_ms(),
        r.errors,
        ceiling.map_or_else(|| "-".into(), |c| ratio(r, c)),
        cpu_per_op(r, r.server_cpu),
        cpu_per_op(r, r.bench_cpu),
        cpu_per_op(r, r.db_cpu),
    );
    if let Some(e) = &r.first_error {
        let e: String = e.chars().take(200).collect();
        write!(line, "\n    first error: {e}").ok();
    }
    if r.reconnects > 0 {
        write!(line, "\n    reconnects: {}", r.reconnects).ok();
    }
    line
}

/// Each node's ops/s, e.g. `1,210 / 1,190 / 1,205`.
fn per_node_rates(r: &OpResult) -> String {
    let secs = r.window.as_secs_f64();
    r.per_node
        .iter()
        .map(|&n| thousands((n as f64 / secs).round() as u64))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Each node's share of a multi-node rate, e.g. `per node: 1,210 / 1,190 / 1,205 ops/s`.
pub fn per_node_line(r: &OpResult) -> String {
    format!("    per node: {} ops/s", per_node_rates(r))
}

fn prefill_text(s: &StoreRun) -> String {
    let mut t = format!(
        "{} via CreateSecret in {} ({}/s)",
        thousands(s.api_created as u64),
        secs(s.api_fill),
        thousands((s.api_created as f64 / s.api_fill.as_secs_f64()).round() as u64)
    );
    if let Some(b) = s.bulk_fill {
        write!(t, " + {} bulk-inserted in {}", thousands(s.filler), secs(b)).ok();
    }
    t
}

pub fn store_lines(s: &StoreRun) -> String {
    format!(
        "pre-fill   {}; database {} after pre-fill, {} after the load\n\
         start      first start (empty, initialises) {}; cold start holding {} secrets {}\n\
         memory     RSS after API pre-fill {}; idle after restart {}; after the load {} (VmHWM {})",
        prefill_text(s),
        mib(s.db_bytes_filled),
        mib(s.db_bytes_after),
        millis(s.first_start),
        thousands(s.total as u64),
        millis(s.cold_start),
        mem(s.mem_after_api_fill, false),
        mem(s.mem_idle, false),
        mem(s.mem_after_load, false),
        mem(s.mem_after_load, true),
    )
}

fn md_op_row(first: &str, op: Op, r: &OpResult, ceiling: Option<&OpResult>) -> String {
    let mut rate = thousands(r.ops_per_sec().round() as u64);
    if r.per_node.len() > 1 {
        write!(rate, " ({} per node)", per_node_rates(r)).ok();
    }
    format!(
        "| {first} | {} | {rate} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} |\n",
        op.name(),
        r.percentile_ms(50.0),
        r.percentile_ms(90.0),
        r.percentile_ms(99.0),
        r.max_ms(),
        r.errors,
        ceiling.map_or_else(|| "-".into(), |c| ratio(r, c)),
        cpu_per_op(r, r.server_cpu),
        cpu_per_op(r, r.bench_cpu),
        cpu_per_op(r, r.db_cpu),
    )
}

/// A rate and its ratio to the ceiling, e.g. `4,120 (6.8%)`.
fn rate_and_ratio(r: &OpResult, ceiling: &OpResult) -> String {
    let mut cell = format!(
        "{} ({})",
        thousands(r.ops_per_sec().round() as u64),
        ratio(r, ceiling)
    );
    if r.errors > 0 {
        write!(cell, ", {} errors", r.errors).ok();
    }
    cell
}

/// The setups of a `compare` run side by side: per store size and operation, each setup's
/// ops/s and its ratio to the ceiling (a Markdown table, readable as text too).
pub fn comparison(ceiling: &OpResult, runs: &[(Setup, Vec<StoreRun>)]) -> String {
    let mut md = String::new();
    let labels: Vec<String> = runs.iter().map(|(s, _)| s.label()).collect();
    let _ = writeln!(
        md,
        "| secrets | operation | {} |",
        labels
            .iter()
            .map(|l| format!("{l}: ops/s (of ceiling)"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(md, "|---:|---|{}", "---:|".repeat(labels.len()));
    let _ = writeln!(
        md,
        "| - | {} | {} |",
        Op::Ceiling.name(),
        vec![thousands(ceiling.ops_per_sec().round() as u64); labels.len()].join(" | ")
    );
    // Rows in the order of the first setup's stores and operations; the other setups ran
    // the same ones.
    let Some((_, first)) = runs.first() else {
        return md;
    };
    for (i, store) in first.iter().enumerate() {
        for (j, (op, _)) in store.ops.iter().enumerate() {
            let cells: Vec<String> = runs
                .iter()
                .map(|(_, stores)| {
                    stores
                        .get(i)
                        .and_then(|s| s.ops.get(j))
                        .map_or_else(|| "-".into(), |(_, r)| rate_and_ratio(r, ceiling))
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                thousands(store.total as u64),
                op.name(),
                cells.join(" | ")
            );
        }
    }
    md
}

fn md_throughput(md: &mut String, ceiling: &OpResult, stores: &[StoreRun]) {
    let _ = writeln!(
        md,
        "| secrets | operation | ops/s | p50 ms | p90 ms | p99 ms | max ms | errors | kura/ceiling | kura CPU µs/op (user+sys) | bench CPU µs/op (user+sys) | PostgreSQL CPU µs/op (user+sys) |"
    );
    let _ = writeln!(
        md,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    md.push_str(&md_op_row("-", Op::Ceiling, ceiling, None));
    for s in stores {
        for (op, r) in &s.ops {
            md.push_str(&md_op_row(
                &thousands(s.total as u64),
                *op,
                r,
                Some(ceiling),
            ));
        }
    }
    let errors: Vec<String> = stores
        .iter()
        .flat_map(|s| {
            s.ops.iter().filter_map(move |(op, r)| {
                r.first_error.as_ref().map(|e| {
                    format!(
                        "- {} secrets, {}: {e}",
                        thousands(s.total as u64),
                        op.name()
                    )
                })
            })
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(
            md,
            "\nFirst error of each operation that had any:\n\n{}",
            errors.join("\n")
        );
    }
}

fn md_stores(md: &mut String, stores: &[StoreRun]) {
    let _ = writeln!(
        md,
        "| secrets | pre-fill | database | first start | cold start | RSS after API pre-fill | RSS idle after restart | RSS after load | VmHWM after load |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in stores {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(s.total as u64),
            prefill_text(s),
            mib(s.db_bytes_filled),
            millis(s.first_start),
            millis(s.cold_start),
            mem(s.mem_after_api_fill, false),
            mem(s.mem_idle, false),
            mem(s.mem_after_load, false),
            mem(s.mem_after_load, true),
        );
    }
}

/// The results as a Markdown section: for one setup (`run`) its tables; for several
/// (`compare`) the side-by-side table first, then each setup's tables.
pub fn markdown(
    facts: &Facts,
    args: &RunArgs,
    ceiling: &OpResult,
    runs: &[(Setup, Vec<StoreRun>)],
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## Results of {}\n", facts.date);
    let _ = writeln!(md, "```\n{}\n```\n", facts.command_line);
    let _ = writeln!(
        md,
        "- Machine: {} CPUs ({}), {} RAM, Linux {}\n- Disk: {}\n- kura: {} ({}); the bench's checkout at commit {}\n- Load: {} workers (one keep-alive connection each, spread round-robin over the nodes), {:.0} s warm-up then {:.0} s measured per operation; values of {} characters\n- kura ran on: {}\n",
        facts.cpus,
        facts.cpu_model,
        facts.mem_total,
        facts.kernel,
        facts.fsync_text(),
        facts.kura_version,
        facts.kura_path,
        facts.commit,
        args.concurrency,
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64(),
        args.value_size,
        runs.iter()
            .map(|(s, _)| s.label())
            .collect::<Vec<_>>()
            .join("; "),
    );
    if runs.len() > 1 {
        let _ = writeln!(md, "### Side by side\n");
        md.push_str(&comparison(ceiling, runs));
    }
    for (setup, stores) in runs {
        let title = if runs.len() > 1 {
            format!(" ({})", setup.label())
        } else {
            String::new()
        };
        let _ = writeln!(md, "\n### Throughput and latency{title}\n");
        md_throughput(&mut md, ceiling, stores);
        let _ = writeln!(md, "\n### Pre-fill, start and memory{title}\n");
        md_stores(&mut md, stores);
    }
    md
}
