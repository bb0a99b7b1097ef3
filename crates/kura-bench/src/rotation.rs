//! `kura-bench rotation`: N secrets whose `kura-password` rotation falls due at the same
//! moment (an emergency "rotate everything"), on a server running on the test clock. Measures
//! the time until every one has rotated, rotations/s, and the GetSecretValue rate of readers
//! running meanwhile, beside their rate before and the bare-axum ceiling.
//!
//! Like the rest of the bench it only prints figures; nothing here asserts on a timing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::client::{Client, Credentials};
use crate::kura::{self, CpuTime, Kura};
use crate::load::{self, Op, Workload};
use crate::{parse_count, parse_duration, progress};

#[derive(clap::Args, Clone)]
pub struct RotationArgs {
    /// The kura binary to run.
    #[arg(long, default_value = "target/release/kura")]
    kura: PathBuf,
    /// Secrets whose rotation falls due at once (underscores allowed: 10_000).
    #[arg(long, default_value = "2000", value_parser = parse_count)]
    secrets: usize,
    /// A short check that the scenario works: 200 secrets, 1 s windows.
    #[arg(long)]
    quick: bool,
    /// Concurrent GetSecretValue readers, before and while the rotations run.
    #[arg(long, default_value_t = 16)]
    readers: usize,
    /// Workers creating and scheduling the secrets.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Readers alone before the rotations fall due: the read rate to compare with.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    baseline: Duration,
    /// The bare-axum ceiling is measured this long (0s: not measured).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    ceiling: Duration,
    /// How often the rotated secrets are counted (a ListSecrets sweep, pages of 100).
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    poll: Duration,
    /// Stop waiting for the rotations after this long.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    timeout: Duration,
    /// An argument added to `kura server` (repeatable), e.g.
    /// `--kura-arg=--rotation-concurrency=64`. `--test-clock` is always given.
    #[arg(long = "kura-arg", value_name = "ARG", allow_hyphen_values = true)]
    kura_args: Vec<String>,
    /// Where the temporary data directory goes (default: the system's temp directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the data directory (and kura's log) instead of deleting it.
    #[arg(long)]
    keep: bool,
}

fn json(v: serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// Runs `call(name)` for every name with `concurrency` workers; the first error stops it.
async fn for_each_name(
    addr: SocketAddr,
    creds: Arc<Credentials>,
    names: Arc<Vec<String>>,
    concurrency: usize,
    call: fn(&str) -> (&'static str, Bytes),
) -> Result<(), String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (creds, names, next) = (creds.clone(), names.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut client = Client::new(addr, creds);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(i) else {
                    return Ok::<_, String>(());
                };
                let (target, body) = call(name);
                client.call_ok(target, body).await?;
            }
        }));
    }
    for w in workers {
        w.await.map_err(|e| format!("a worker died: {e}"))??;
    }
    Ok(())
}

/// What one ListSecrets sweep saw.
#[derive(Default, Debug)]
struct Sweep {
    rotated: usize,
    failed: usize,
    in_progress: usize,
    seen: usize,
    pages: usize,
}

/// Counts the secrets whose cycle succeeded (LastRotatedDate set, KuraRotation Succeeded).
async fn sweep(client: &mut Client) -> Result<Sweep, String> {
    let mut s = Sweep::default();
    let mut token: Option<String> = None;
    loop {
        let mut body = serde_json::json!({ "MaxResults": 100 });
        if let Some(t) = &token {
            body["NextToken"] = t.clone().into();
        }
        let page = client
            .call_ok("secretsmanager.ListSecrets", json(body))
            .await?;
        let page: serde_json::Value =
            serde_json::from_slice(&page).map_err(|e| format!("ListSecrets answer: {e}"))?;
        s.pages += 1;
        for e in page["SecretList"].as_array().into_iter().flatten() {
            s.seen += 1;
            match e["KuraRotation"]["State"].as_str() {
                Some("Succeeded") if e["LastRotatedDate"].is_number() => s.rotated += 1,
                Some("Failed") => s.failed += 1,
                Some("InProgress") => s.in_progress += 1,
                _ => {}
            }
        }
        token = page["NextToken"].as_str().map(str::to_string);
        if token.is_none() {
            return Ok(s);
        }
    }
}

/// GetSecretValue readers on random secrets until told to stop; successes and errors counted.
struct Readers {
    ok: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    first_error: Arc<std::sync::Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Readers {
    fn start(
        addr: SocketAddr,
        creds: Arc<Credentials>,
        names: Arc<Vec<String>>,
        n: usize,
    ) -> Readers {
        let ok = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let first_error = Arc::new(std::sync::Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..n)
            .map(|_| {
                let (creds, names) = (creds.clone(), names.clone());
                let (ok, errors, stop, first_error) = (
                    ok.clone(),
                    errors.clone(),
                    stop.clone(),
                    first_error.clone(),
                );
                tokio::spawn(async move {
                    use rand::RngExt;
                    let mut client = Client::new(addr, creds);
                    let mut rng: rand::rngs::SmallRng = rand::make_rng();
                    while !stop.load(Ordering::Relaxed) {
                        let name = &names[rng.random_range(0..names.len())];
                        let body = json(serde_json::json!({ "SecretId": name }));
                        match client.call_ok("secretsmanager.GetSecretValue", body).await {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                if let Ok(mut f) = first_error.lock() {
                                    f.get_or_insert(e);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        Readers {
            ok,
            errors,
            first_error,
            stop,
            tasks,
        }
    }

    fn count(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    async fn stop(self) -> (u64, Option<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let first = self.first_error.lock().ok().and_then(|mut f| f.take());
        (self.errors.load(Ordering::Relaxed), first)
    }
}

async fn measure_ceiling(args: &RotationArgs) -> Result<Option<f64>, String> {
    if args.ceiling.is_zero() {
        return Ok(None);
    }
    progress("ceiling: bare axum server in this process");
    let addr = crate::ceiling::start().await?;
    let dummy = Arc::new(Credentials {
        access_key_id: "AKIABENCHCEILING0000".into(),
        secret_access_key: "ceiling/ceiling/ceiling/ceiling/ceiling0".into(),
    });
    let names: Arc<Vec<String>> = Arc::new((0..1000).map(kura::secret_name).collect());
    let target = load::Target {
        addrs: Arc::from([addr]),
        pids: Arc::from([]),
        database_url: None,
    };
    let r = load::run(
        &target,
        dummy,
        Arc::new(Workload {
            op: Op::Ceiling,
            names,
            value_size: 32,
            concurrency: args.readers,
            warmup: Duration::from_millis(500),
            duration: args.ceiling,
            rate: None,
        }),
    )
    .await?;
    Ok(Some(r.ops_per_sec()))
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

pub async fn run(mut args: RotationArgs) -> Result<(), String> {
    if !args.kura.is_file() {
        return Err(format!(
            "{} is not a file: build kura or pass --kura",
            args.kura.display()
        ));
    }
    if args.quick {
        args.secrets = args.secrets.min(200);
        args.baseline = args.baseline.min(Duration::from_secs(1));
        args.ceiling = args.ceiling.min(Duration::from_secs(1));
    }
    let n = args.secrets;
    println!(
        "kura-bench rotation: {n} kura-password rotations due at once; {} readers; kura {} {}",
        args.readers,
        args.kura.display(),
        args.kura_args.join(" ")
    );
    let ceiling = measure_ceiling(&args).await?;

    let mut tmp = tempfile::Builder::new();
    tmp.prefix("kura-bench-rotation-")
        .disable_cleanup(args.keep);
    let dir = match &args.work_dir {
        Some(d) => tmp.tempdir_in(d),
        None => tmp.tempdir(),
    }
    .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    if args.keep {
        progress(format!("data directory kept: {}", dir.path().display()));
    }
    let data = dir.path().join("data");
    let mut extra = vec!["--test-clock".to_string()];
    extra.extend(args.kura_args.iter().cloned());
    let (server, _) = Kura::start(
        &args.kura,
        &data,
        &dir.path().join("kura.log"),
        None,
        &extra,
    )
    .await?;
    let result = scenario(&args, &server, &data, ceiling).await;
    if result.is_err() {
        eprintln!("kura's log ends:\n{}", server.log_tail());
    }
    let stopped = server.stop().await;
    result.and(stopped)
}

async fn scenario(
    args: &RotationArgs,
    server: &Kura,
    data: &std::path::Path,
    ceiling: Option<f64>,
) -> Result<(), String> {
    let n = args.secrets;
    let addr = server.addr;
    let creds = Arc::new(Credentials::from_file(&data.join("root-credentials"))?);
    let names: Arc<Vec<String>> = Arc::new((0..n).map(|k| format!("rot-{k:08}")).collect());

    progress(format!("creating {n} secrets"));
    let t = Instant::now();
    let sample_arn =
        kura::create_through_api(addr, creds.clone(), names.clone(), args.concurrency, 32).await?;
    progress(format!("created in {:.1} s", t.elapsed().as_secs_f64()));

    // arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-xxxxxx
    let parts: Vec<&str> = sample_arn.split(':').collect();
    let (Some(region), Some(account)) = (parts.get(3), parts.get(4)) else {
        return Err(format!("unexpected ARN {sample_arn:?}"));
    };
    // The callback below is a plain fn: the function's ARN reaches it through a static.
    static LAMBDA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let _ = LAMBDA.set(format!(
        "arn:aws:lambda:{region}:{account}:function:kura-password"
    ));
    // One call for every secret, `args.concurrency` at a time.
    let each = |call| for_each_name(addr, creds.clone(), names.clone(), args.concurrency, call);
    progress(format!("scheduling {n} rotations (every day, not now)"));
    let t = Instant::now();
    each(|name| {
        (
            "secretsmanager.RotateSecret",
            json(serde_json::json!({
                "SecretId": name,
                "RotationLambdaARN": LAMBDA.get().map(String::as_str).unwrap_or_default(),
                "RotationRules": { "AutomaticallyAfterDays": 1 },
                "RotateImmediately": false,
            })),
        )
    })
    .await?;
    progress(format!("scheduled in {:.1} s", t.elapsed().as_secs_f64()));

    // The test clock stands still, so every secret got the same next rotation date; the
    // latest of the first and last one is where all are due.
    let mut admin = Client::new(addr, creds.clone());
    let mut due = 0f64;
    for name in [&names[0], &names[n - 1]] {
        let d = admin
            .call_ok(
                "secretsmanager.DescribeSecret",
                json(serde_json::json!({ "SecretId": name })),
            )
            .await?;
        let d: serde_json::Value =
            serde_json::from_slice(&d).map_err(|e| format!("DescribeSecret answer: {e}"))?;
        let next = d["NextRotationDate"]
            .as_f64()
            .ok_or_else(|| format!("{name} has no NextRotationDate after RotateSecret"))?;
        due = due.max(next);
    }
    let before = sweep(&mut admin).await?;
    if before.rotated + before.in_progress + before.failed > 0 {
        return Err(format!("rotations ran before they were due: {before:?}"));
    }

    // The first read of a secret on a day records the day (a write); reading each once
    // first keeps those writes out of the baseline, which would otherwise mostly measure them.
    progress(format!("reading each of the {n} secrets once"));
    each(|name| {
        (
            "secretsmanager.GetSecretValue",
            json(serde_json::json!({ "SecretId": name })),
        )
    })
    .await?;

    progress(format!(
        "{} readers alone for {:.1} s",
        args.readers,
        args.baseline.as_secs_f64()
    ));
    let readers = Readers::start(addr, creds.clone(), names.clone(), args.readers);
    tokio::time::sleep(Duration::from_millis(300)).await; // connections open
    let r0 = readers.count();
    let t = Instant::now();
    tokio::time::sleep(args.baseline).await;
    let baseline_reads = readers.count() - r0;
    let baseline_rate = rate(baseline_reads, t.elapsed());

    progress("moving the test clock: every rotation is due now");
    let cpu0 = kura::cpu_time(Some(server.pid));
    let reads0 = readers.count();
    let t0 = Instant::now();
    let clock_creds = creds.clone();
    let set_clock = tokio::spawn(async move {
        let mut c = Client::new(addr, clock_creds);
        let r = c
            .call_ok(
                "Kura.SetClock",
                json(serde_json::json!({ "Time": due + 1.0 })),
            )
            .await;
        (r, t0.elapsed())
    });
    let mut last_print = Instant::now();
    let mut first_done: Option<Duration> = None;
    let mut sweeps = 0usize;
    let mut pages = 0usize;
    let (done, took, reads) = loop {
        tokio::time::sleep(args.poll).await;
        let s = sweep(&mut admin).await?;
        // The reads and time up to the sweep that saw the last one finished.
        let (took, reads) = (t0.elapsed(), readers.count() - reads0);
        sweeps += 1;
        pages += s.pages;
        if s.rotated > 0 && first_done.is_none() {
            first_done = Some(took);
        }
        if s.rotated + s.failed >= n {
            break (s, took, reads);
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            progress(format!(
                "{:.0} s: {} rotated, {} in progress, {} failed",
                took.as_secs_f64(),
                s.rotated,
                s.in_progress,
                s.failed
            ));
            last_print = Instant::now();
        }
        if took > args.timeout {
            break (s, took, reads);
        }
    };
    let cpu = kura::cpu_time(Some(server.pid))
        .zip(cpu0)
        .map(|(a, b)| a.since(b));
    let (read_errors, first_read_error) = readers.stop().await;
    let clock_answer = match set_clock.await {
        Ok((Ok(_), d)) => format!("{:.1} s", d.as_secs_f64()),
        // kura answers once its rotations are idle or after 30 s, the client's own limit.
        Ok((Err(e), _)) if e.contains("no answer within") => "> 30 s".to_string(),
        Ok((Err(e), _)) => format!("failed: {e}"),
        Err(e) => format!("failed: {e}"),
    };

    let during_rate = rate(reads, took);
    let ratio = |r: f64| match ceiling {
        Some(c) if c > 0.0 => format!(" ({:.3} x ceiling)", r / c),
        _ => String::new(),
    };
    println!();
    if let Some(c) = ceiling {
        println!(
            "ceiling (bare axum, {} conns)   {c:>10.0} req/s",
            args.readers
        );
    }
    println!(
        "reads before (GetSecretValue)     {baseline_rate:>10.0} /s{}",
        ratio(baseline_rate)
    );
    println!(
        "reads while rotating              {during_rate:>10.0} /s{}",
        ratio(during_rate)
    );
    println!(
        "rotations                         {:>10} of {n} succeeded, {} failed, {} unfinished",
        done.rotated,
        done.failed,
        n - done.rotated - done.failed
    );
    println!(
        "all settled after                 {:>10.1} s (counted every {:.1} s; first seen after {:.1} s)",
        took.as_secs_f64(),
        args.poll.as_secs_f64(),
        first_done.unwrap_or(took).as_secs_f64()
    );
    println!(
        "rotations per second              {:>10.1}",
        rate(done.rotated as u64, took)
    );
    if let Some(CpuTime { user, sys }) = cpu {
        println!(
            "kura CPU meanwhile                {:>10.1} s user + {:.1} s system ({:.0} ms per rotation, readers' share included)",
            user,
            sys,
            (user + sys) * 1000.0 / done.rotated.max(1) as f64
        );
    }
    println!(
        "SetClock answered after           {clock_answer:>10} (it waits at most 30 s for the engine to be idle)"
    );
    println!("counting                          {sweeps} ListSecrets sweeps, {pages} pages");
    if read_errors > 0 {
        println!(
            "read errors                       {read_errors} (first: {})",
            first_read_error.unwrap_or_default()
        );
    }
    Ok(())
}
