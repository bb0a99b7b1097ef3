//! Closed-loop load: N workers, each on its own connection, each sending its next request
//! as soon as the previous one is answered, for a warm-up and then a measured window.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::StatusCode;
use rand::RngExt;
use rand::rngs::SmallRng;

use crate::client::{Client, Credentials};
use crate::kura::{CpuTime, cpu_time, create_body, random_value};
use crate::pg::{Backends, BackendsCpu, backends_cpu_since};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// GetSecretValue of every API-created secret once, in random order: each is the
    /// secret's first read of the day, which makes kura record LastAccessedDate (a write).
    FirstGet,
    Get,
    /// GetSecretValue open-loop at half the rate the closed-loop `Get` reached just before:
    /// requests leave on a fixed schedule whatever the answers do, and a latency counts
    /// from the scheduled moment, so queueing shows (no coordinated omission).
    GetAtHalf,
    Describe,
    Put,
    Create,
    List,
    /// The bare axum server: GetSecretValue-shaped requests, a constant answer.
    Ceiling,
}

impl Op {
    pub fn parse(s: &str) -> Result<Op, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "first-get" | "firstget" => Op::FirstGet,
            "get" | "getsecretvalue" => Op::Get,
            "get-half" | "gethalf" => Op::GetAtHalf,
            "describe" | "describesecret" => Op::Describe,
            "put" | "putsecretvalue" => Op::Put,
            "create" | "createsecret" => Op::Create,
            "list" | "listsecrets" => Op::List,
            other => {
                return Err(format!(
                    "unknown op {other:?}: use first-get, get, get-half, describe, put, create, list"
                ));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::FirstGet => "GetSecretValue 1st",
            Op::Get => "GetSecretValue",
            Op::GetAtHalf => "GetSecretValue at ½ peak",
            Op::Describe => "DescribeSecret",
            Op::Put => "PutSecretValue",
            Op::Create => "CreateSecret",
            Op::List => "ListSecrets",
            Op::Ceiling => "bare axum ceiling",
        }
    }

    fn target(self) -> &'static str {
        match self {
            Op::FirstGet | Op::Get | Op::GetAtHalf | Op::Ceiling => "secretsmanager.GetSecretValue",
            Op::Describe => "secretsmanager.DescribeSecret",
            Op::Put => "secretsmanager.PutSecretValue",
            Op::Create => "secretsmanager.CreateSecret",
            Op::List => "secretsmanager.ListSecrets",
        }
    }
}

/// What the workers need to build requests.
pub struct Workload {
    pub op: Op,
    /// Secrets that exist with a value; Get/Describe/Put pick among them uniformly.
    pub names: Arc<Vec<String>>,
    pub value_size: usize,
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Open loop: this many requests per second in all, spread evenly over the workers.
    /// `None`: closed loop (each worker sends as soon as it has its answer).
    pub rate: Option<f64>,
}

fn json(v: serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn body(w: &Workload, rng: &mut SmallRng, worker: usize, seq: u64) -> Bytes {
    let pick = |rng: &mut SmallRng| w.names[rng.random_range(0..w.names.len())].as_str();
    match w.op {
        Op::Get | Op::GetAtHalf | Op::Describe | Op::Ceiling => {
            json(serde_json::json!({"SecretId": pick(rng)}))
        }
        Op::FirstGet => json(serde_json::json!({"SecretId": w.names[seq as usize]})),
        Op::Put => {
            let id = pick(rng);
            let value = random_value(rng, w.value_size);
            json(serde_json::json!({"SecretId": id, "SecretString": value}))
        }
        Op::Create => {
            let name = format!("bench-new-{worker:03}-{seq:08}");
            create_body(&name, &random_value(rng, w.value_size))
        }
        Op::List => json(serde_json::json!({"MaxResults": 100})),
    }
}

/// The outcome of one op's measured window.
#[derive(Debug, Default)]
pub struct OpResult {
    /// Latencies of the requests completed inside the window, answered 200, sorted, in ns.
    pub latencies: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub reconnects: u64,
    pub window: Duration,
    /// CPU used by the server processes (every node) during the window (none for the
    /// in-process ceiling).
    pub server_cpu: Option<CpuTime>,
    /// CPU used by this process (the workers, plus the ceiling server when measuring it).
    pub bench_cpu: Option<CpuTime>,
    /// CPU used by the PostgreSQL backends serving kura's database (when it runs on one,
    /// on this machine).
    pub db_cpu: Option<CpuTime>,
    /// Requests answered 200 inside the window, per endpoint (node) in the order given.
    pub per_node: Vec<u64>,
}

impl OpResult {
    pub fn ops_per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.window.as_secs_f64()
    }

    /// Nearest-rank percentile, in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[i] as f64 / 1e6
    }

    /// CPU microseconds (user, system) per completed request.
    pub fn per_op_us(&self, cpu: Option<CpuTime>) -> Option<(f64, f64)> {
        let n = self.latencies.len() as f64;
        let c = cpu?;
        (n > 0.0).then(|| (c.user * 1e6 / n, c.sys * 1e6 / n))
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies.last().map_or(f64::NAN, |&l| l as f64 / 1e6)
    }
}

struct WorkerResult {
    node: usize,
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    reconnects: u64,
}

/// The CPU time of all of `pids` together (`None` without any, or if one cannot be read).
fn servers_cpu(pids: &[u32]) -> Option<CpuTime> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold(CpuTime::default(), |sum, &p| {
        let c = cpu_time(Some(p))?;
        Some(CpuTime {
            user: sum.user + c.user,
            sys: sum.sys + c.sys,
        })
    })
}

/// What a load runs against, and whose CPU it measures.
#[derive(Clone)]
pub struct Target {
    /// The endpoints; the workers' connections are spread over them round-robin.
    pub addrs: Arc<[SocketAddr]>,
    /// The server processes (none for the in-process ceiling).
    pub pids: Arc<[u32]>,
    /// The PostgreSQL database the servers run on, whose backends' CPU is measured too.
    pub database_url: Option<String>,
}

/// CPU readings at one moment: the servers together, this process, the database's backends.
struct CpuReading {
    servers: Option<CpuTime>,
    bench: Option<CpuTime>,
    db: Option<BackendsCpu>,
}

async fn read_cpu(t: &Target, probe: &mut Option<Backends>) -> CpuReading {
    let db = match probe {
        Some(p) => p.cpu().await,
        None => None,
    };
    CpuReading {
        servers: servers_cpu(&t.pids),
        bench: cpu_time(None),
        db,
    }
}

async fn open_probe(t: &Target) -> Option<Backends> {
    match &t.database_url {
        Some(url) => Backends::open(url).await,
        None => None,
    }
}

/// Sets `out`'s CPU figures from readings before and after its window.
fn set_cpu(out: &mut OpResult, before: CpuReading, after: CpuReading) {
    out.server_cpu = after.servers.zip(before.servers).map(|(b, a)| b.since(a));
    out.bench_cpu = after.bench.zip(before.bench).map(|(b, a)| b.since(a));
    out.db_cpu = after
        .db
        .zip(before.db)
        .map(|(b, a)| backends_cpu_since(&b, &a));
}

/// Takes CPU readings at `from` and at `to`.
fn sample_cpu(
    t: Target,
    from: Instant,
    to: Instant,
) -> tokio::task::JoinHandle<(CpuReading, CpuReading)> {
    tokio::spawn(async move {
        let mut probe = open_probe(&t).await;
        tokio::time::sleep_until(from.into()).await;
        let before = read_cpu(&t, &mut probe).await;
        tokio::time::sleep_until(to.into()).await;
        let after = read_cpu(&t, &mut probe).await;
        if let Some(p) = probe {
            p.close().await;
        }
        (before, after)
    })
}

/// One connected client per worker; worker `i` talks to `addrs[i % addrs.len()]`, so
/// the connections are spread over the nodes round-robin.
async fn connect_workers(
    addrs: &[SocketAddr],
    creds: &Arc<Credentials>,
    concurrency: usize,
) -> Result<Vec<(usize, Client)>, String> {
    if addrs.is_empty() {
        return Err("no server to load".into());
    }
    let mut clients = Vec::with_capacity(concurrency);
    for i in 0..concurrency.max(1) {
        let node = i % addrs.len();
        let mut c = Client::new(addrs[node], creds.clone());
        c.conn.connect().await?;
        clients.push((node, c));
    }
    Ok(clients)
}

/// Adds a worker's result to `out`.
fn merge(out: &mut OpResult, r: WorkerResult) {
    if out.per_node.len() <= r.node {
        out.per_node.resize(r.node + 1, 0);
    }
    out.per_node[r.node] += r.latencies.len() as u64;
    out.latencies.extend(r.latencies);
    out.errors += r.errors;
    out.reconnects += r.reconnects;
    if out.first_error.is_none() {
        out.first_error = r.first_error;
    }
}

/// Runs `w` against the servers of `t` (the workers' connections spread over them
/// round-robin): every worker connects first, then all run the warm-up and the measured
/// window together. Only requests completed inside the window count. The CPU time of
/// the servers (all together), of this process and of the database's backends is
/// sampled over the same window.
pub async fn run(
    t: &Target,
    creds: Arc<Credentials>,
    w: Arc<Workload>,
) -> Result<OpResult, String> {
    if w.op == Op::FirstGet {
        return run_once_each(t, creds, w).await;
    }
    let clients = connect_workers(&t.addrs, &creds, w.concurrency).await?;
    let start = Instant::now();
    let measure_from = start + w.warmup;
    let end = measure_from + w.duration;
    let cpu = sample_cpu(t.clone(), measure_from, end);
    // Open loop: worker i sends at start + (i/n + k) × interval.
    let workers = clients.len().max(1);
    let interval = w
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(workers as f64 / r));
    let mut handles = Vec::new();
    for (worker, (node, mut client)) in clients.into_iter().enumerate() {
        let w = w.clone();
        let mut next_at = interval.map(|iv| start + iv.mul_f64(worker as f64 / workers as f64));
        handles.push(tokio::spawn(async move {
            let mut rng: SmallRng = rand::make_rng();
            let mut r = WorkerResult {
                node,
                latencies: Vec::new(),
                errors: 0,
                first_error: None,
                reconnects: 0,
            };
            let mut seq = 0u64;
            loop {
                let scheduled = match (&mut next_at, interval) {
                    (Some(at), Some(iv)) => {
                        let s = *at;
                        *at += iv;
                        tokio::time::sleep_until(s.into()).await;
                        Some(s)
                    }
                    _ => None,
                };
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let req = body(&w, &mut rng, worker, seq);
                seq += 1;
                // Open loop: from the moment the request was due, not when it got out.
                let sent = scheduled.unwrap_or_else(Instant::now);
                let outcome = client.call(w.op.target(), req).await;
                let done = Instant::now();
                if done < measure_from || done >= end {
                    continue;
                }
                match outcome {
                    Ok((StatusCode::OK, _)) => r.latencies.push((done - sent).as_nanos() as u64),
                    Ok((status, b)) => {
                        r.errors += 1;
                        r.first_error.get_or_insert_with(|| {
                            format!("{status}: {}", String::from_utf8_lossy(&b))
                        });
                    }
                    Err(e) => {
                        r.errors += 1;
                        r.first_error.get_or_insert(e);
                    }
                }
            }
            r.reconnects = client.conn.reconnects;
            r
        }));
    }
    let mut out = OpResult {
        window: w.duration,
        ..OpResult::default()
    };
    for h in handles {
        let r = h.await.map_err(|e| format!("a worker died: {e}"))?;
        merge(&mut out, r);
    }
    let (before, after) = cpu.await.map_err(|e| format!("CPU sampler: {e}"))?;
    set_cpu(&mut out, before, after);
    out.latencies.sort_unstable();
    Ok(out)
}

/// [`Op::FirstGet`]: every name exactly once, in random order, shared among the workers.
/// Bounded by the number of names (and the per-request timeout), not by the duration;
/// there is no warm-up, since every request is a first one. Everything is measured.
async fn run_once_each(
    t: &Target,
    creds: Arc<Credentials>,
    w: Arc<Workload>,
) -> Result<OpResult, String> {
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..w.names.len()).collect();
    order.shuffle(&mut rand::make_rng::<SmallRng>());
    let order = Arc::new(order);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients = connect_workers(&t.addrs, &creds, w.concurrency).await?;
    let mut probe = open_probe(t).await;
    let start = Instant::now();
    let cpu_at_start = read_cpu(t, &mut probe).await;
    let mut handles = Vec::new();
    for (node, mut client) in clients {
        let (w, order, next) = (w.clone(), order.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            let mut r = WorkerResult {
                node,
                latencies: Vec::new(),
                errors: 0,
                first_error: None,
                reconnects: 0,
            };
            let mut rng: SmallRng = rand::make_rng();
            while let Some(&i) = order.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
            {
                let req = body(&w, &mut rng, 0, i as u64);
                let sent = Instant::now();
                match client.call(w.op.target(), req).await {
                    Ok((StatusCode::OK, _)) => r.latencies.push(sent.elapsed().as_nanos() as u64),
                    Ok((status, b)) => {
                        r.errors += 1;
                        r.first_error.get_or_insert_with(|| {
                            format!("{status}: {}", String::from_utf8_lossy(&b))
                        });
                    }
                    Err(e) => {
                        r.errors += 1;
                        r.first_error.get_or_insert(e);
                    }
                }
            }
            r.reconnects = client.conn.reconnects;
            r
        }));
    }
    let mut out = OpResult::default();
    for h in handles {
        let r = h.await.map_err(|e| format!("a worker died: {e}"))?;
        merge(&mut out, r);
    }
    out.window = start.elapsed();
    let cpu_at_end = read_cpu(t, &mut probe).await;
    set_cpu(&mut out, cpu_at_start, cpu_at_end);
    if let Some(p) = probe {
        p.close().await;
    }
    out.latencies.sort_unstable();
    Ok(out)
}
