//! `kura-bench`: throughput and latency of a real `kura server` per operation and store
//! size, against a ceiling measured in the same run, plus cold start and memory.
//!
//! It only measures and prints: nothing in here asserts on a timing.

mod ceiling;
mod client;
mod fsync;
mod kura;
mod load;
mod pg;
mod report;
mod rotation;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};

use crate::client::{Client, Credentials};
use crate::kura::{Cluster, Layout, Memory, node_paths};
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
    /// Run the whole measurement three times in one run, against one ceiling: kura on
    /// SQLite (1 node), on PostgreSQL (1 node), and as a cluster of --nodes (default 3)
    /// nodes on PostgreSQL; then print every operation as a rate and a ratio to the
    /// ceiling side by side. Needs --database-url.
    Compare(RunArgs),
    /// N secrets whose kura-password rotation falls due at once (on kura's test clock): the
    /// time until all have rotated, rotations/s, and the read rate of readers meanwhile.
    Rotation(rotation::RotationArgs),
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
    /// once: its first read of the day), get, get-half (GetSecretValue open-loop at half
    /// the rate get reached, for its latency), describe, put, create, list.
    #[arg(long, default_value = "first-get,get,get-half,describe,put,create,list", value_delimiter = ',', value_parser = Op::parse)]
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
    /// Run kura on PostgreSQL (`kura server --database-url`) instead of SQLite. The URL
    /// names a server and a database to connect to as a user who may CREATE DATABASE
    /// (e.g. postgres://postgres@127.0.0.1:5432/postgres): for every store size the bench
    /// creates a fresh database kura_bench_<random> there, runs kura on it, and drops it
    /// afterwards (WITH (FORCE)).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Start this many kura nodes on the one PostgreSQL database (node 1 first, then the
    /// others with a copy of its root.key) and spread the load's connections over them
    /// round-robin; the rates are the cluster's total, with each node's share beside them.
    /// `run`: default 1, needs --database-url. `compare`: the cluster's size, default 3.
    #[arg(long, value_name = "N", requires = "database_url", value_parser = parse_nodes)]
    nodes: Option<usize>,
}

fn parse_nodes(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number of nodes from 1 to 64")),
    }
}

/// What kura runs on in one measurement.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The PostgreSQL server to make a fresh database on; `None`: SQLite.
    pub database_url: Option<String>,
    pub nodes: usize,
}

impl Setup {
    pub fn label(&self) -> String {
        let backend = match self.database_url {
            Some(_) => "PostgreSQL",
            None => "SQLite",
        };
        let plural = if self.nodes == 1 { "" } else { "s" };
        format!("{backend}, {} node{plural}", self.nodes)
    }

    /// The setup `kura-bench run` measures.
    fn of_run(args: &RunArgs) -> Setup {
        Setup {
            database_url: args.database_url.clone(),
            nodes: args.nodes.unwrap_or(1),
        }
    }

    /// The setups `kura-bench compare` measures, in order.
    fn of_compare(args: &RunArgs) -> Result<Vec<Setup>, String> {
        let Some(url) = &args.database_url else {
            return Err(
                "compare needs --database-url postgres://… (a server where the bench may CREATE DATABASE)"
                    .into(),
            );
        };
        let cluster = args.nodes.unwrap_or(3);
        let mut setups = vec![
            Setup {
                database_url: None,
                nodes: 1,
            },
            Setup {
                database_url: Some(url.clone()),
                nodes: 1,
            },
        ];
        if cluster > 1 {
            setups.push(Setup {
                database_url: Some(url.clone()),
                nodes: cluster,
            });
        }
        Ok(setups)
    }
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

async fn run_store(
    args: &RunArgs,
    setup: &Setup,
    total: usize,
    ceiling: &OpResult,
) -> Result<StoreRun, String> {
    let mut tmp = tempfile::Builder::new();
    tmp.prefix("kura-bench-").disable_cleanup(args.keep);
    let dir = match &args.work_dir {
        Some(d) => tmp.tempdir_in(d),
        None => tmp.tempdir(),
    }
    .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let data = node_paths(dir.path(), 0).0;
    if args.keep {
        progress(format!("data directories kept: {}", dir.path().display()));
    }
    // Declared before the cluster so that, on an early return, the nodes go first (they
    // are killed on drop) and the database after them.
    let db = match &setup.database_url {
        Some(url) => {
            let db = pg::FreshDatabase::create(url).await?;
            progress(format!(
                "{total} secrets: created PostgreSQL database {}",
                db.name
            ));
            Some(db)
        }
        None => None,
    };
    let db_url = db.as_ref().map(|d| d.url.as_str());
    let db_bytes = async || match &db {
        Some(d) => d.bytes().await,
        None => kura::database_bytes(&data),
    };

    progress(format!(
        "{total} secrets: starting a fresh kura ({})",
        setup.label()
    ));
    let (cluster, first_start) =
        Cluster::start(&args.kura, dir.path(), setup.nodes, db_url).await?;
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
        cluster.nodes[0].addr,
        creds.clone(),
        api_names.clone(),
        args.concurrency,
        args.value_size,
    )
    .await?;
    let api_fill = t.elapsed();
    let mem_after_api_fill = cluster.memory();
    cluster.stop().await?;

    let filler = layout.filler_count();
    let (filler, bulk_fill) = if filler > 0 {
        progress(format!(
            "{total} secrets: bulk-inserting {filler} filler secrets"
        ));
        let t = Instant::now();
        let n = match &db {
            Some(d) => pg::bulk_fill(&d.url, &layout, &sample_arn).await?,
            None => kura::bulk_fill(&data.join("kura.db"), &layout, &sample_arn).await?,
        };
        (n, Some(t.elapsed()))
    } else {
        (0, None)
    };
    let db_bytes_filled = db_bytes().await;

    let (cluster, cold_start) = Cluster::start(&args.kura, dir.path(), setup.nodes, db_url).await?;
    let mem_idle = cluster.memory();
    let creds = if args.as_user {
        progress(format!(
            "{total} secrets: the load runs as a user with a policy"
        ));
        Arc::new(kura::create_policy_user(cluster.nodes[0].addr, creds.clone()).await?)
    } else {
        creds
    };
    // One real call to every node before any load, so a broken setup fails loudly rather
    // than as errors. (DescribeSecret: a GetSecretValue would spend one secret's first
    // read of the day.)
    for node in &cluster.nodes {
        Client::new(node.addr, creds.clone())
            .call_ok(
                "secretsmanager.DescribeSecret",
                Bytes::from(
                    serde_json::to_vec(&serde_json::json!({"SecretId": api_names[0]}))
                        .unwrap_or_default(),
                ),
            )
            .await
            .map_err(|e| format!("node at {}: {e}", node.addr))?;
    }

    let target = load::Target {
        addrs: cluster.addrs(),
        pids: cluster.pids(),
        database_url: db_url.map(str::to_string),
    };
    let mut ops: Vec<(Op, load::OpResult)> = Vec::new();
    println!("{}", report::op_header());
    for &op in &args.ops {
        let rate = match op {
            Op::GetAtHalf => match ops.iter().rev().find(|(o, _)| *o == Op::Get) {
                Some((_, r)) => Some(r.ops_per_sec() / 2.0),
                None => {
                    progress("get-half needs get measured before it in --ops; skipped");
                    continue;
                }
            },
            _ => None,
        };
        progress(format!("{total} secrets: {}", op.name()));
        let w = Arc::new(Workload {
            op,
            names: api_names.clone(),
            value_size: args.value_size,
            concurrency: args.concurrency,
            warmup: args.warmup,
            duration: args.duration,
            rate,
        });
        let r = load::run(&target, creds.clone(), w).await?;
        println!("{}", report::op_line(op, &r, Some(ceiling)));
        if target.addrs.len() > 1 {
            println!("{}", report::per_node_line(&r));
        }
        ops.push((op, r));
    }
    let mem_after_load = cluster.memory();
    cluster.stop().await?;
    let db_bytes_after = db_bytes().await;
    drop(db);
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

/// Measures the bare axum ceiling in this process, with the client and load of `args`.
async fn measure_ceiling(args: &RunArgs) -> Result<OpResult, String> {
    progress("ceiling: bare axum server in this process");
    let ceiling_addr = ceiling::start().await?;
    let dummy = Arc::new(Credentials {
        access_key_id: "AKIABENCHCEILING0000".into(),
        secret_access_key: "ceiling/ceiling/ceiling/ceiling/ceiling0".into(),
    });
    let ceiling_names: Arc<Vec<String>> = Arc::new((0..1000).map(kura::secret_name).collect());
    let target = load::Target {
        addrs: Arc::from([ceiling_addr]),
        pids: Arc::from([]),
        database_url: None,
    };
    let ceiling = load::run(
        &target,
        dummy,
        Arc::new(Workload {
            op: Op::Ceiling,
            names: ceiling_names,
            value_size: args.value_size,
            concurrency: args.concurrency,
            warmup: args.warmup,
            duration: args.duration,
            rate: None,
        }),
    )
    .await?;
    println!("{}", report::op_header());
    println!("{}", report::op_line(Op::Ceiling, &ceiling, None));
    Ok(ceiling)
}

fn check_kura(args: &RunArgs) -> Result<(), String> {
    if args.kura.is_file() {
        Ok(())
    } else {
        Err(format!(
            "{} is not a file: build it with `cargo build --release -p kura` or pass --kura",
            args.kura.display()
        ))
    }
}

/// Every store size of `args` on `setup`.
async fn run_setup(
    args: &RunArgs,
    setup: &Setup,
    ceiling: &OpResult,
) -> Result<Vec<StoreRun>, String> {
    let mut stores = Vec::new();
    for &total in &args.secrets {
        println!(
            "\n== {} secrets, {} ==",
            report::thousands(total as u64),
            setup.label()
        );
        let s = run_store(args, setup, total, ceiling).await?;
        println!("{}", report::store_lines(&s));
        stores.push(s);
    }
    Ok(stores)
}

fn write_markdown(path: &std::path::Path, md: &str) -> Result<(), String> {
    std::fs::write(path, md).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    progress(format!("wrote {}", path.display()));
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), String> {
    check_kura(&args)?;
    let setup = Setup::of_run(&args);
    let facts = report::Facts::gather(&args);
    println!("{}", facts.header());
    let ceiling = measure_ceiling(&args).await?;
    let stores = run_setup(&args, &setup, &ceiling).await?;
    if let Some(path) = &args.markdown {
        write_markdown(
            path,
            &report::markdown(&facts, &args, &ceiling, &[(setup, stores)]),
        )?;
    }
    Ok(())
}

async fn compare(args: RunArgs) -> Result<(), String> {
    check_kura(&args)?;
    let setups = Setup::of_compare(&args)?;
    let facts = report::Facts::gather(&args);
    println!("{}", facts.header());
    let ceiling = measure_ceiling(&args).await?;
    let mut runs = Vec::new();
    for setup in setups {
        let stores = run_setup(&args, &setup, &ceiling).await?;
        runs.push((setup, stores));
    }
    println!("\n{}", report::comparison(&ceiling, &runs));
    if let Some(path) = &args.markdown {
        write_markdown(path, &report::markdown(&facts, &args, &ceiling, &runs))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args).await,
        Command::Compare(args) => compare(args).await,
        Command::Rotation(args) => rotation::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kura-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kura-bench").chain(args.iter().copied()))
    }

    fn run_args(cli: Cli) -> RunArgs {
        match cli.command {
            Command::Run(a) | Command::Compare(a) => a,
            Command::Rotation(_) => panic!("not a run"),
        }
    }

    const PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    #[test]
    fn run_is_one_sqlite_node_unless_told_otherwise() {
        let setup = Setup::of_run(&run_args(parse(&["run"]).expect("parses")));
        assert_eq!(setup.database_url, None);
        assert_eq!(setup.nodes, 1);
        assert_eq!(setup.label(), "SQLite, 1 node");
    }

    #[test]
    fn run_takes_a_database_url_and_a_node_count() {
        let a = run_args(parse(&["run", "--database-url", PG, "--nodes", "3"]).expect("parses"));
        let setup = Setup::of_run(&a);
        assert_eq!(setup.database_url.as_deref(), Some(PG));
        assert_eq!(setup.nodes, 3);
        assert_eq!(setup.label(), "PostgreSQL, 3 nodes");
        let one = Setup::of_run(&run_args(
            parse(&["run", "--database-url", PG]).expect("parses"),
        ));
        assert_eq!(one.label(), "PostgreSQL, 1 node");
    }

    #[test]
    fn nodes_need_a_database_url_and_a_sane_count() {
        for args in [
            &["run", "--nodes", "3"][..],
            &["compare", "--nodes", "3"][..],
        ] {
            let e = parse(args).err().expect("refused");
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{e}"
            );
        }
        for bad in ["0", "65", "three"] {
            assert!(
                parse(&["run", "--database-url", PG, "--nodes", bad]).is_err(),
                "--nodes {bad} was taken"
            );
        }
    }

    #[test]
    fn compare_is_sqlite_then_postgresql_then_a_cluster() {
        let labels = |args: &[&str]| -> Vec<String> {
            Setup::of_compare(&run_args(parse(args).expect("parses")))
                .expect("setups")
                .iter()
                .map(Setup::label)
                .collect()
        };
        assert_eq!(
            labels(&["compare", "--database-url", PG]),
            [
                "SQLite, 1 node",
                "PostgreSQL, 1 node",
                "PostgreSQL, 3 nodes"
            ]
        );
        assert_eq!(
            labels(&["compare", "--database-url", PG, "--nodes", "5"]),
            [
                "SQLite, 1 node",
                "PostgreSQL, 1 node",
                "PostgreSQL, 5 nodes"
            ]
        );
        // A "cluster" of one would only repeat the PostgreSQL column.
        assert_eq!(
            labels(&["compare", "--database-url", PG, "--nodes", "1"]),
            ["SQLite, 1 node", "PostgreSQL, 1 node"]
        );
        let e = Setup::of_compare(&run_args(parse(&["compare"]).expect("parses")))
            .expect_err("refused without a database");
        assert!(e.contains("--database-url"), "{e}");
    }
}
