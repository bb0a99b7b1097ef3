//! `kura-bench`: throughput and latency of a real `kura server` per operation and store
//! size, against a ceiling measured in the same run, plus cold start and memory.
//!
//! It only measures and prints: nothing in here asserts on a timing.

mod ceiling;
mod client;
mod kura;
mod load;
mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};

use crate::client::{Client, Credentials};
use crate::kura::{Kura, Layout, Memory};
use crate::load::{Op, OpResult, Workload};

#[derive(Parser)]
#[command(
    name = "kura-bench",
    about = "Measures a kura server: ops/s and latency per operation and store size, against a bare-axum ceiling"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a fresh kura per store size, fill it, load it, and print the figures.
    Run(RunArgs),
}

#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// The kura binary to run (`cargo build --release -p kura`).
    #[arg(long, default_value = "target/release/kura")]
    kura: PathBuf,
    /// Store sizes, comma-separated (underscores allowed: 1_000_000).
    #[arg(long, default_value = "1000,100000", value_delimiter = ',', value_parser = parse_count)]
    secrets: Vec<usize>,
    /// Concurrent workers, each with its own keep-alive connection.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measured time per operation (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured load before each measured window.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Operations to measure, in this order: first-get (every API-created secret read
    /// once: its first read of the day), get, describe, put, create, list.
    #[arg(long, default_value = "first-get,get,describe,put,create,list", value_delimiter = ',', value_parser = Op::parse)]
    ops: Vec<Op>,
    /// At most this many secrets per store are created through the API; the rest are
    /// bulk-inserted into the database while kura is stopped.
    #[arg(long, default_value_t = 10_000)]
    api_prefill: usize,
    /// Length of every SecretString written, in characters.
    #[arg(long, default_value_t = 64)]
    value_size: usize,
    /// Also write the results as a Markdown section to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Where the temporary data directories go (default: the system's temp directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the data directories (and kura's logs) instead of deleting them.
    #[arg(long)]
    keep: bool,
    /// Run the load as an ordinary user whose policy allows `secretsmanager:*`, so every
    /// request is evaluated against policies (root skips evaluation).
    #[arg(long)]
    as_user: bool,
}

fn parse_count(s: &str) -> Result<usize, String> {
    let digits: String = s.trim().chars().filter(|c| *c != '_').collect();
    match digits.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{s:?} is not a positive number of secrets")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 10s, 500ms or 1m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("{s:?} is not a duration like 10s, 500ms or 1m")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Everything measured for one store size.
pub struct StoreRun {
    pub total: usize,
    pub api_created: usize,
    pub api_fill: Duration,
    pub filler: u64,
    pub bulk_fill: Option<Duration>,
    pub db_bytes_filled: u64,
    pub db_bytes_after: u64,
    pub first_start: Duration,
    pub cold_start: Duration,
    pub mem_after_api_fill: Option<Memory>,
    pub mem_idle: Option<Memory>,
    pub mem_after_load: Option<Memory>,
    pub ops: Vec<(Op, OpResult)>,
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("kura-bench: {}", msg.as_ref());
}

async fn run_store(args: &RunArgs, total: usize, ceiling: &OpResult) -> Result<StoreRun, String> {
    let mut tmp = tempfile::Builder::new();
    tmp.prefix("kura-bench-").disable_cleanup(args.keep);
    let dir = match &args.work_dir {
        Some(d) => tmp.tempdir_in(d),
        None => tmp.tempdir(),
    }
    .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let data = dir.path().join("data");
    let log = dir.path().join("kura.log");
    if args.keep {
        progress(format!("data directory kept: {}", dir.path().display()));
    }

    progress(format!("{total} secrets: starting a fresh kura"));
    let (server, first_start) = Kura::start(&args.kura, &data, &log).await?;
    let creds = Arc::new(Credentials::from_file(&data.join("root-credentials"))?);

    let layout = Layout::new(total, args.api_prefill);
    let api_names: Arc<Vec<String>> = Arc::new(
        layout
            .api_indices()
            .into_iter()
            .map(kura::secret_name)
            .collect(),
    );
    progress(format!(
        "{total} secrets: creating {} through the API",
        api_names.len()
    ));
    let t = Instant::now();
    let sample_arn = kura::create_through_api(
        server.addr,
        creds.clone(),
        api_names.clone(),
        args.concurrency,
        args.value_size,
    )
    .await?;
    let api_fill = t.elapsed();
    let mem_after_api_fill = server.memory();
    server.stop().await?;

    let filler = layout.filler_count();
    let (filler, bulk_fill) = if filler > 0 {
        progress(format!(
            "{total} secrets: bulk-inserting {filler} filler secrets"
        ));
        let t = Instant::now();
        let n = kura::bulk_fill(&data.join("kura.db"), &layout, &sample_arn).await?;
        (n, Some(t.elapsed()))
    } else {
        (0, None)
    };
    let db_bytes_filled = kura::database_bytes(&data);

    let (server, cold_start) = Kura::start(&args.kura, &data, &log).await?;
    let mem_idle = server.memory();
    let creds = if args.as_user {
        progress(format!(
            "{total} secrets: the load runs as a user with a policy"
        ));
        Arc::new(kura::create_policy_user(server.addr, creds.clone()).await?)
    } else {
        creds
    };
    // One real call before any load, so a broken setup fails loudly rather than as errors.
    // (DescribeSecret: a GetSecretValue would spend one secret's first read of the day.)
    Client::new(server.addr, creds.clone())
        .call_ok(
            "secretsmanager.DescribeSecret",
            Bytes::from(
                serde_json::to_vec(&serde_json::json!({"SecretId": api_names[0]}))
                    .unwrap_or_default(),
            ),
        )
        .await?;

    let mut ops = Vec::new();
    println!("{}", report::op_header());
    for &op in &args.ops {
        progress(format!("{total} secrets: {}", op.name()));
        let w = Arc::new(Workload {
            op,
            names: api_names.clone(),
            value_size: args.value_size,
            concurrency: args.concurrency,
            warmup: args.warmup,
            duration: args.duration,
        });
        let r = load::run(server.addr, creds.clone(), w, Some(server.pid)).await?;
        println!("{}", report::op_line(op, &r, Some(ceiling)));
        ops.push((op, r));
    }
    let mem_after_load = server.memory();
    server.stop().await?;
    let db_bytes_after = kura::database_bytes(&data);
    drop(dir);
    Ok(StoreRun {
        total,
        api_created: api_names.len(),
        api_fill,
        filler,
        bulk_fill,
        db_bytes_filled,
        db_bytes_after,
        first_start,
        cold_start,
        mem_after_api_fill,
        mem_idle,
        mem_after_load,
        ops,
    })
}

async fn run(args: RunArgs) -> Result<(), String> {
    if !args.kura.is_file() {
        return Err(format!(
            "{} is not a file: build it with `cargo build --release -p kura` or pass --kura",
            args.kura.display()
        ));
    }
    let facts = report::Facts::gather(&args);
    println!("{}", facts.header());

    progress("ceiling: bare axum server in this process");
    let ceiling_addr = ceiling::start().await?;
    let dummy = Arc::new(Credentials {
        access_key_id: "AKIABENCHCEILING0000".into(),
        secret_access_key: "ceiling/ceiling/ceiling/ceiling/ceiling0".into(),
    });
    let ceiling_names: Arc<Vec<String>> = Arc::new((0..1000).map(kura::secret_name).collect());
    let ceiling = load::run(
        ceiling_addr,
        dummy,
        Arc::new(Workload {
            op: Op::Ceiling,
            names: ceiling_names,
            value_size: args.value_size,
            concurrency: args.concurrency,
            warmup: args.warmup,
            duration: args.duration,
        }),
        None,
    )
    .await?;
    println!("{}", report::op_header());
    println!("{}", report::op_line(Op::Ceiling, &ceiling, None));

    let mut stores = Vec::new();
    for &total in &args.secrets {
        println!("\n== {} secrets ==", report::thousands(total as u64));
        let s = run_store(&args, total, &ceiling).await?;
        println!("{}", report::store_lines(&s));
        stores.push(s);
    }

    if let Some(path) = &args.markdown {
        let md = report::markdown(&facts, &args, &ceiling, &stores);
        std::fs::write(path, md).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        progress(format!("wrote {}", path.display()));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kura-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
