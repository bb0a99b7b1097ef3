//! Text and Markdown output.

use std::fmt::Write;
use std::process::Command;
use std::time::Duration;

use crate::kura::Memory;
use crate::load::{Op, OpResult};
use crate::{RunArgs, StoreRun};

/// The machine, the code and the command line of a run.
pub struct Facts {
    pub command_line: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total: String,
    pub kernel: String,
    pub commit: String,
    pub kura_version: String,
    pub date: String,
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
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }

    pub fn header(&self) -> String {
        format!(
            "kura-bench  {}\nmachine     {} CPUs ({}), {} RAM, Linux {}\nkura        {} at commit {}\ncommand     {}",
            self.date,
            self.cpus,
            self.cpu_model,
            self.mem_total,
            self.kernel,
            self.kura_version,
            self.commit,
            self.command_line
        )
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
        "{:<18} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>13} {:>14} {:>14}",
        "op",
        "ops/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "kura/ceiling",
        "kura CPU us/op",
        "bench CPU us/op"
    )
}

pub fn op_line(op: Op, r: &OpResult, ceiling: Option<&OpResult>) -> String {
    let mut line = format!(
        "{:<18} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>13} {:>14} {:>14}",
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
        "pre-fill   {}; database (db + WAL) {} after pre-fill, {} after the load\n\
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
    format!(
        "| {first} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |\n",
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
    )
}

pub fn markdown(facts: &Facts, args: &RunArgs, ceiling: &OpResult, stores: &[StoreRun]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## Results of {}\n", facts.date);
    let _ = writeln!(md, "```\n{}\n```\n", facts.command_line);
    let _ = writeln!(
        md,
        "- Machine: {} CPUs ({}), {} RAM, Linux {}\n- kura: {}, commit {}\n- Load: {} workers (one keep-alive connection each), {:.0} s warm-up then {:.0} s measured per operation; values of {} characters\n",
        facts.cpus,
        facts.cpu_model,
        facts.mem_total,
        facts.kernel,
        facts.kura_version,
        facts.commit,
        args.concurrency,
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64(),
        args.value_size,
    );
    let _ = writeln!(md, "### Throughput and latency\n");
    let _ = writeln!(
        md,
        "| secrets | operation | ops/s | p50 ms | p90 ms | p99 ms | max ms | errors | kura/ceiling | kura CPU µs/op (user+sys) | bench CPU µs/op (user+sys) |"
    );
    let _ = writeln!(
        md,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
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

    let _ = writeln!(md, "\n### Pre-fill, start and memory\n");
    let _ = writeln!(
        md,
        "| secrets | pre-fill | database (db + WAL) | first start | cold start | RSS after API pre-fill | RSS idle after restart | RSS after load | VmHWM after load |"
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
    md
}
