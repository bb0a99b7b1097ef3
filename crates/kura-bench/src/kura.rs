//! Running a `kura server` child process, reading its memory, and filling its store.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection};
use tokio::process::{Child, Command};

use crate::client::{Client, Credentials, health_ok};

/// How long a start may take before the bench gives up on it.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stop may take before the child is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The name of the `k`-th secret of a store. Bulk-inserted rows use the same pattern
/// (`printf('bench-%08d', k)` in SQL), so both kinds interleave in the name index.
pub fn secret_name(k: usize) -> String {
    format!("bench-{k:08}")
}

/// Which of a store's `total` secrets are created through the API: every `stride`-th one,
/// so that they are spread over the whole name index rather than bunched at its start.
pub struct Layout {
    pub total: usize,
    pub stride: usize,
}

impl Layout {
    pub fn new(total: usize, api_max: usize) -> Layout {
        let stride = total.div_ceil(api_max.max(1)).max(1);
        Layout { total, stride }
    }

    /// Indices of the API-created secrets.
    pub fn api_indices(&self) -> Vec<usize> {
        (0..self.total).step_by(self.stride).collect()
    }

    pub fn filler_count(&self) -> usize {
        self.total - self.total.div_ceil(self.stride)
    }
}

/// Resident memory of a process, from `/proc/PID/status`, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

pub fn memory_of(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// CPU time a process (all its threads) has used so far, in seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTime {
    pub user: f64,
    pub sys: f64,
}

impl CpuTime {
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user - earlier.user,
            sys: self.sys - earlier.sys,
        }
    }
}

fn clock_ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// From `/proc/PID/stat` (`None` for this process): utime and stime, fields 14 and 15.
pub fn cpu_time(pid: Option<u32>) -> Option<CpuTime> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces: count fields from after its closing parenthesis,
    // where field 3 (state) is the first.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse::<f64>().ok() };
    let hz = clock_ticks_per_sec();
    Some(CpuTime {
        user: ticks(14)? / hz,
        sys: ticks(15)? / hz,
    })
}

/// A free TCP port on 127.0.0.1 (closed again at once, so kura can bind it).
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

pub struct Kura {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Kura {
    /// Spawns `kura server` on a free port and waits for `GET /health` to answer 200.
    /// Returns the server and the time from spawn to that first 200. With `database_url`
    /// it runs on that PostgreSQL database, else on SQLite in `data_dir`. `extra` is appended
    /// to `kura server`'s arguments (e.g. `--test-clock`).
    pub async fn start(
        bin: &Path,
        data_dir: &Path,
        log: &Path,
        database_url: Option<&str>,
        extra: &[String],
    ) -> Result<(Kura, Duration), String> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let mut cmd = Command::new(bin);
        // Through the environment, not the command line, where a password would show in `ps`;
        // and never inherited, so a SQLite run is one.
        match database_url {
            Some(url) => cmd.env("KURA_DATABASE_URL", url),
            None => cmd.env_remove("KURA_DATABASE_URL"),
        };
        let started = Instant::now();
        let child = cmd
            .arg("server")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let pid = child.id().ok_or("kura exited at once")?;
        let mut kura = Kura {
            child,
            pid,
            addr,
            log: log.to_path_buf(),
        };
        loop {
            if health_ok(addr).await {
                return Ok((kura, started.elapsed()));
            }
            if let Ok(Some(status)) = kura.child.try_wait() {
                return Err(format!(
                    "kura exited ({status}) before it was healthy; its log:\n{}",
                    kura.log_tail()
                ));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "kura was not healthy within {START_TIMEOUT:?}; its log:\n{}",
                    kura.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn memory(&self) -> Option<Memory> {
        memory_of(self.pid)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM (kura finishes in-flight requests and closes its database), then waits.
    pub async fn stop(mut self) -> Result<(), String> {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("waiting for kura: {e}")),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!(
                    "kura did not stop within {STOP_TIMEOUT:?}; killed it"
                ))
            }
        }
    }
}

/// The `kura server` processes of one measured store: one on SQLite, or one or more
/// nodes on one PostgreSQL database.
pub struct Cluster {
    pub nodes: Vec<Kura>,
}

/// Where node `i` (0-based) keeps its data directory and log inside the run's directory.
pub fn node_paths(dir: &Path, i: usize) -> (PathBuf, PathBuf) {
    if i == 0 {
        (dir.join("data"), dir.join("kura.log"))
    } else {
        (
            dir.join(format!("data-{}", i + 1)),
            dir.join(format!("kura-{}.log", i + 1)),
        )
    }
}

impl Cluster {
    /// Starts `count` nodes with their data directories in `dir`: node 1 first (on a fresh
    /// database it initialises it: root key, schema, root credentials), then the others,
    /// each given a copy of node 1's `root.key` before it starts. Returns the cluster and
    /// node 1's time from spawn to healthy.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        count: usize,
        database_url: Option<&str>,
    ) -> Result<(Cluster, Duration), String> {
        let (data, log) = node_paths(dir, 0);
        let (first, took) = Kura::start(bin, &data, &log, database_url, &[]).await?;
        let mut cluster = Cluster { nodes: vec![first] };
        let root_key = data.join("root.key");
        for i in 1..count {
            let (node_data, node_log) = node_paths(dir, i);
            let key = node_data.join("root.key");
            if !key.exists() {
                std::fs::create_dir_all(&node_data)
                    .map_err(|e| format!("cannot create {}: {e}", node_data.display()))?;
                std::fs::copy(&root_key, &key).map_err(|e| {
                    format!(
                        "cannot copy {} to {}: {e}",
                        root_key.display(),
                        key.display()
                    )
                })?;
            }
            let (node, _) = Kura::start(bin, &node_data, &node_log, database_url, &[]).await?;
            cluster.nodes.push(node);
        }
        Ok((cluster, took))
    }

    pub fn addrs(&self) -> Arc<[SocketAddr]> {
        self.nodes.iter().map(|k| k.addr).collect()
    }

    pub fn pids(&self) -> Arc<[u32]> {
        self.nodes.iter().map(|k| k.pid).collect()
    }

    /// Node 1's memory.
    pub fn memory(&self) -> Option<Memory> {
        self.nodes.first().and_then(Kura::memory)
    }

    /// Stops every node (all of them, even when one fails to stop).
    pub async fn stop(self) -> Result<(), String> {
        let mut first_err = Ok(());
        for node in self.nodes {
            let r = node.stop().await;
            if first_err.is_ok() {
                first_err = r;
            }
        }
        first_err
    }
}

/// The JSON body of a CreateSecret for `name` with a `value_size`-character value.
pub fn create_body(name: &str, value: &str) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({"Name": name, "SecretString": value}))
            .unwrap_or_default(),
    )
}

pub fn random_value(rng: &mut impl rand::Rng, len: usize) -> String {
    use rand::RngExt;
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
        .collect()
}

/// Creates the secrets `names` through the API with `concurrency` workers.
/// Returns the ARN of one of them (to learn the account and region kura writes).
pub async fn create_through_api(
    addr: SocketAddr,
    creds: Arc<Credentials>,
    names: Arc<Vec<String>>,
    concurrency: usize,
    value_size: usize,
) -> Result<String, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (creds, names, next) = (creds.clone(), names.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut client = Client::new(addr, creds);
            let mut rng: rand::rngs::SmallRng = rand::make_rng();
            let mut arn = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(i) else { break };
                let value = random_value(&mut rng, value_size);
                let body = client
                    .call_ok("secretsmanager.CreateSecret", create_body(name, &value))
                    .await?;
                if arn.is_none() {
                    let v: serde_json::Value = serde_json::from_slice(&body)
                        .map_err(|e| format!("CreateSecret answer is not JSON: {e}"))?;
                    arn = v["ARN"].as_str().map(str::to_string);
                }
            }
            Ok::<_, String>(arn)
        }));
    }
    let mut arn = None;
    for w in workers {
        let a = w
            .await
            .map_err(|e| format!("a pre-fill worker died: {e}"))??;
        arn = arn.or(a);
    }
    arn.ok_or_else(|| "no secret was created".to_string())
}

/// Inserts the filler secrets of `layout` straight into the (stopped) server's database:
/// one `secrets` row, one `secret_versions` row with random bytes shaped like the
/// API-created ciphertexts, and its AWSCURRENT `version_stages` row each. One transaction.
/// Returns the number of secrets inserted.
pub async fn bulk_fill(db: &Path, layout: &Layout, sample_arn: &str) -> Result<u64, String> {
    let err = |what: &str| {
        let what = what.to_string();
        move |e: sqlx::Error| format!("bulk fill, {what}: {e}")
    };
    let opts = SqliteConnectOptions::from_str("sqlite://")
        .map_err(err("options"))?
        .filename(db)
        .create_if_missing(false)
        // The server is stopped: no one else is reading; durability comes from the final commit.
        .journal_mode(SqliteJournalMode::Memory)
        .synchronous(SqliteSynchronous::Off)
        .pragma("cache_size", "-262144");
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(err("open"))?;

    // "arn:aws:secretsmanager:REGION:ACCOUNT:secret:" as kura writes it.
    let arn_prefix = match sample_arn.find(":secret:") {
        Some(i) => &sample_arn[..i + ":secret:".len()],
        None => return Err(format!("unexpected ARN {sample_arn:?}")),
    };
    let template = sqlx::query(
        "SELECT length(ciphertext) AS ct, length(wrapped_key) AS wk, key_name, key_version, value_kind \
         FROM secret_versions WHERE ciphertext IS NOT NULL ORDER BY secret_id LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(err("reading a template version"))?;
    let ct: i64 = template.try_get("ct").map_err(err("template"))?;
    let wk: i64 = template.try_get("wk").map_err(err("template"))?;
    let key_name: String = template.try_get("key_name").map_err(err("template"))?;
    let key_version: i64 = template.try_get("key_version").map_err(err("template"))?;
    let value_kind: String = template.try_get("value_kind").map_err(err("template"))?;
    let now_ms = chrono::Utc::now().timestamp_millis();

    let mut tx = conn.begin().await.map_err(err("begin"))?;
    let before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM secrets")
        .fetch_one(&mut *tx)
        .await
        .map_err(err("max id"))?;
    let inserted = sqlx::query(
        "WITH RECURSIVE seq(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM seq WHERE k + 1 < ?1) \
         INSERT INTO secrets (name, arn, created_at, changed_at) \
         SELECT printf('bench-%08d', k), \
                ?2 || printf('bench-%08d', k) || '-' || substr(hex(randomblob(3)), 1, 6), ?4, ?4 \
         FROM seq WHERE k % ?3 != 0",
    )
    .bind(layout.total as i64)
    .bind(arn_prefix)
    .bind(layout.stride as i64)
    .bind(now_ms)
    .execute(&mut *tx)
    .await
    .map_err(err("secrets"))?
    .rows_affected();
    sqlx::query(
        "INSERT INTO secret_versions \
         (secret_id, version_id, created_at, value_kind, ciphertext, wrapped_key, key_name, key_version) \
         SELECT id, substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-a' \
                    || substr(h, 18, 3) || '-' || substr(h, 21, 12), \
                created_at, ?2, randomblob(?3), randomblob(?4), ?5, ?6 \
         FROM (SELECT id, created_at, lower(hex(randomblob(16))) AS h FROM secrets WHERE id > ?1)",
    )
    .bind(before)
    .bind(&value_kind)
    .bind(ct)
    .bind(wk)
    .bind(&key_name)
    .bind(key_version)
    .execute(&mut *tx)
    .await
    .map_err(err("secret_versions"))?;
    sqlx::query(
        "INSERT INTO version_stages (secret_id, stage, version_id) \
         SELECT secret_id, 'AWSCURRENT', version_id FROM secret_versions WHERE secret_id > ?1",
    )
    .bind(before)
    .execute(&mut *tx)
    .await
    .map_err(err("version_stages"))?;
    tx.commit().await.map_err(err("commit"))?;
    // Back to what kura runs on (it sets WAL itself too when it opens the file).
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&mut conn)
        .await
        .map_err(err("journal mode"))?;
    conn.close().await.map_err(err("close"))?;
    Ok(inserted)
}

/// Size of the database and its WAL, in bytes.
pub fn database_bytes(data_dir: &Path) -> u64 {
    ["kura.db", "kura.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data_dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// A user `bench` allowed `secretsmanager:*` by an inline policy, and its new access key.
pub async fn create_policy_user(
    addr: std::net::SocketAddr,
    root: Arc<Credentials>,
) -> Result<Credentials, String> {
    let mut c = Client::new(addr, root);
    let call = |v: serde_json::Value| Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
    c.call_ok(
        "Kura.CreateUser",
        call(serde_json::json!({"UserName": "bench"})),
    )
    .await?;
    c.call_ok(
        "Kura.PutUserPolicy",
        call(
            serde_json::json!({"UserName": "bench", "PolicyName": "all-secrets",
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}]}}),
        ),
    )
    .await?;
    let key = c
        .call_ok(
            "Kura.CreateAccessKey",
            call(serde_json::json!({"UserName": "bench"})),
        )
        .await?;
    let key: serde_json::Value =
        serde_json::from_slice(&key).map_err(|e| format!("CreateAccessKey answer: {e}"))?;
    match (
        key["AccessKey"]["AccessKeyId"].as_str(),
        key["AccessKey"]["SecretAccessKey"].as_str(),
    ) {
        (Some(id), Some(secret)) => Ok(Credentials {
            access_key_id: id.to_string(),
            secret_access_key: secret.to_string(),
        }),
        _ => Err("CreateAccessKey returned no key".into()),
    }
}
