//! Shared harness for the kura integration tests.
//!
//! Every test starts its own `kura server` on a free port with a fresh data directory, talks to it through
//! the official AWS SDK (or through `Server::raw` for wire-level checks), and tears it down on drop.
#![allow(dead_code)]

pub mod cli;
pub mod operator;
pub mod pebble;
pub mod postgres;
pub mod receiver;
pub mod softhsm;
pub mod tls;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::primitives::DateTime;
use aws_sdk_secretsmanager::types::Tag;
use reqwest::header::HeaderMap;
use tempfile::TempDir;
use tokio::process::{Child, Command};

pub const REGION: &str = "us-east-1";
pub const NOT_FOUND_MSG: &str = "Secrets Manager can't find the specified secret.";
pub const MARKED_FOR_DELETION_MSG: &str =
    "You can't perform this operation on the secret because it was marked for deletion.";
pub const SCHEDULED_FOR_DELETION_MSG: &str = "You can't create this secret because a secret with this name is already scheduled for deletion.";

const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------------------------------------

/// A running `kura server` with its own temporary directory.
///
/// Layout of the temporary directory: `data/` is the server's `--data-dir` (created by the server on first
/// start), `server.log` collects stdout and stderr of every start.
pub struct Server {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    tmp: Option<TempDir>,
    child: Option<Child>,
    log_path: PathBuf,
    /// A cluster node's PostgreSQL database, as the drop-time checks reach it (not through a
    /// relay the test may have cut); `None`: the data directory's SQLite database.
    database: Option<String>,
    /// Root credentials for a node that joined a cluster (its data directory has none).
    root: Option<RootCredentials>,
    /// A TLS server: what its clients trust and present. `None`: plain HTTP.
    tls: Option<tls::ClientTls>,
    /// How many times the log said "kura is serving" before this process started.
    started_before: usize,
}

/// The line a server logs once it listens (every start appends to the same log).
const SERVING: &str = "kura is serving";

fn serving_lines(log: &Path) -> usize {
    std::fs::read_to_string(log).map_or(0, |text| text.matches(SERVING).count())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// How `Server::raw` signs a request.
#[derive(Clone, Debug)]
pub enum SignMode {
    /// No `Authorization` header, no `X-Amz-Date`.
    Unsigned,
    /// SigV4 with the root credentials, now.
    Root,
    /// SigV4 with the root credentials at the given instant (to test clock skew).
    RootAt(SystemTime),
    /// SigV4 with arbitrary credentials, now.
    Custom { akid: String, secret: String },
    /// Send this literal `Authorization` header (plus a current `X-Amz-Date`).
    Authorization(String),
}

/// Answer of `Server::raw`.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("header value is not ASCII"))
    }

    /// Asserts a wire-level client error: HTTP 400, `{"__type": code, "message": ...}`, the
    /// `x-amzn-ErrorType`, `x-amzn-RequestId` and JSON 1.1 content-type headers. Returns the message.
    pub fn assert_error(&self, code: &str) -> String {
        assert_eq!(self.status, 400, "expected HTTP 400 {code}, got {self:?}");
        let json = self.json();
        assert_eq!(
            json["__type"].as_str(),
            Some(code),
            "wrong __type in {:?}",
            self.body
        );
        let message = json["message"]
            .as_str()
            .unwrap_or_else(|| panic!("error body without a string `message`: {:?}", self.body));
        assert_common_headers(&self.headers);
        let error_type = self
            .header("x-amzn-ErrorType")
            .unwrap_or_else(|| panic!("error response without x-amzn-ErrorType: {self:?}"));
        assert!(
            error_type.starts_with(code),
            "x-amzn-ErrorType {error_type:?} does not name {code}"
        );
        message.to_string()
    }

    /// Asserts HTTP 200 with the standard headers and returns the JSON body.
    pub fn assert_ok(&self) -> serde_json::Value {
        assert_eq!(self.status, 200, "expected HTTP 200, got {self:?}");
        assert_common_headers(&self.headers);
        self.json()
    }
}

/// Every answer carries a request id and the JSON 1.1 content type.
pub fn assert_common_headers(headers: &HeaderMap) {
    let request_id = headers
        .get("x-amzn-RequestId")
        .unwrap_or_else(|| panic!("response without x-amzn-RequestId: {headers:?}"));
    assert!(!request_id.is_empty(), "empty x-amzn-RequestId");
    let content_type = headers
        .get("content-type")
        .unwrap_or_else(|| panic!("response without Content-Type: {headers:?}"))
        .to_str()
        .unwrap();
    assert_eq!(content_type, "application/x-amz-json-1.1");
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().unwrap().port()
}

impl Server {
    /// Starts a server on a brand-new data directory.
    pub async fn start() -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("kura-test-")
            .tempdir()
            .expect("create temp dir");
        Server::start_in(tmp).await
    }

    /// Starts a server on a new data directory with extra `kura server` flags (e.g. `--test-clock`).
    pub async fn start_with(args: &[&str]) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("kura-test-")
            .tempdir()
            .expect("create temp dir");
        Server::start_in_with(tmp, args).await
    }

    /// Starts a server whose `--data-dir` is `tmp/data` (reusing whatever an earlier run left there).
    pub async fn start_in(tmp: TempDir) -> Server {
        Server::start_in_with(tmp, &[]).await
    }

    /// Starts a server whose `--data-dir` is `tmp/data`, with extra `kura server` flags.
    pub async fn start_in_with(tmp: TempDir, args: &[&str]) -> Server {
        Server::spawn(tmp, args, &[], None, None).await
    }

    /// As `start_in_with`, with extra environment variables for the server process.
    pub async fn start_in_with_env(tmp: TempDir, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(tmp, args, env, None, None).await
    }

    /// Starts a server on `tmp/data` with `args` (its `--tls-*` flags among them) whose clients
    /// reach it over HTTPS as `client` says.
    pub async fn start_tls(tmp: TempDir, args: &[&str], client: tls::ClientTls) -> Server {
        Server::spawn(tmp, args, &[], None, Some(client)).await
    }

    /// Starts a cluster node on `tmp/data` with `--database-url node_url` and `args`;
    /// `database` is the same database as the drop-time checks reach it (`psql` URL).
    pub async fn start_node(tmp: TempDir, node_url: &str, database: &str, args: &[&str]) -> Server {
        let mut all = vec!["--database-url", node_url];
        all.extend_from_slice(args);
        Server::spawn(tmp, &all, &[], Some(database.to_string()), None).await
    }

    /// Signs with `creds` (a node that joined a cluster has no root-credentials file).
    pub fn use_credentials(&mut self, creds: RootCredentials) {
        self.root = Some(creds);
    }

    async fn spawn(
        tmp: TempDir,
        args: &[&str],
        env: &[(&str, &str)],
        database: Option<String>,
        tls: Option<tls::ClientTls>,
    ) -> Server {
        let mut tmp = tmp;
        for attempt in 1.. {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let mut server = Server::launch(addr, tmp, args, env, database.clone(), tls.clone());
            match server.wait_healthy().await {
                Ok(()) => return server,
                // Another test took the port between `free_port` and the server's bind.
                Err(log) if attempt < 5 && log.contains("cannot listen on") => {
                    tmp = server.tmp.take().expect("the server's directory");
                }
                Err(log) => panic!("{log}"),
            }
        }
        unreachable!()
    }

    async fn spawn_at(
        addr: SocketAddr,
        tmp: TempDir,
        args: &[&str],
        env: &[(&str, &str)],
        database: Option<String>,
        tls: Option<tls::ClientTls>,
    ) -> Server {
        let mut server = Server::launch(addr, tmp, args, env, database, tls);
        if let Err(log) = server.wait_healthy().await {
            panic!("{log}");
        }
        server
    }

    /// Starts the process; the server answers once `wait_healthy` says so.
    fn launch(
        addr: SocketAddr,
        tmp: TempDir,
        args: &[&str],
        env: &[(&str, &str)],
        database: Option<String>,
        tls: Option<tls::ClientTls>,
    ) -> Server {
        let data_dir = tmp.path().join("data");
        let log_path = tmp.path().join("server.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open server log");
        let started_before = serving_lines(&log_path);
        let child = Command::new(env!("CARGO_BIN_EXE_kura"))
            .arg("server")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the kura binary");
        Server {
            addr,
            data_dir,
            tmp: Some(tmp),
            child: Some(child),
            log_path,
            database,
            root: None,
            tls,
            started_before,
        }
    }

    /// Waits until this process answers `GET /health`; `Err` with its log when it exited or
    /// never answered. Only an answer after this process logged that it serves counts: an
    /// answer on the port could come from another test's server that took it meanwhile.
    async fn wait_healthy(&mut self) -> Result<(), String> {
        let http = self.http();
        let url = format!("{}/health", self.endpoint());
        let deadline = tokio::time::Instant::now() + HEALTH_TIMEOUT;
        loop {
            let child = self.child.as_mut().unwrap();
            if let Some(status) = child.try_wait().expect("poll the server process") {
                self.child = None;
                return Err(format!(
                    "kura server exited with {status} before answering /health\n--- server log ---\n{}",
                    self.log()
                ));
            }
            if serving_lines(&self.log_path) > self.started_before
                && let Ok(resp) = http.get(&url).send().await
                && resp.status().as_u16() == 200
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "kura server did not answer GET /health with 200 within {HEALTH_TIMEOUT:?}\n--- server log ---\n{}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the server wrote to stdout/stderr so far (all starts on this directory).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("<no log: {e}>"))
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The server's process id (e.g. to lower its open-file limit with `prlimit`).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("server is running")
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// An HTTP client for this server: over TLS when it serves TLS, trusting its test CA.
    pub fn http(&self) -> reqwest::Client {
        match &self.tls {
            Some(tls) => tls.reqwest(),
            None => http_client(),
        }
    }

    /// Graceful stop: SIGTERM, wait, assert exit status 0. Returns the directory for `start_in`.
    pub async fn stop(mut self) -> TempDir {
        let mut child = self.child.take().expect("server already stopped");
        let pid = child.id().expect("server pid");
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {pid} failed");
        let exit = match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(exit) => exit.expect("wait for the server"),
            Err(_) => {
                let _ = child.start_kill();
                panic!(
                    "kura server did not exit within {STOP_TIMEOUT:?} of SIGTERM\n--- server log ---\n{}",
                    self.log()
                );
            }
        };
        assert!(
            exit.success(),
            "kura server exited with {exit} after SIGTERM (expected 0)\n--- server log ---\n{}",
            self.log()
        );
        self.tmp.take().unwrap()
    }

    /// Hard stop (SIGKILL), as in a crash. Returns the directory for `start_in`.
    pub async fn kill(mut self) -> TempDir {
        let mut child = self.child.take().expect("server already stopped");
        child.kill().await.expect("SIGKILL the server");
        self.tmp.take().unwrap()
    }

    /// `stop()`, `down` of nothing listening, then a start on the same directory and the
    /// same port (clients that keep the address, such as `kura agent`, reach it again).
    pub async fn restart_same_port(self, down: Duration) -> Server {
        let addr = self.addr;
        let tmp = self.stop().await;
        tokio::time::sleep(down).await;
        Server::spawn_at(addr, tmp, &[], &[], None, None).await
    }

    /// Starts a server on a brand-new data directory listening on `addr`.
    pub async fn start_at(addr: SocketAddr) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("kura-test-")
            .tempdir()
            .expect("create temp dir");
        Server::spawn_at(addr, tmp, &[], &[], None, None).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `stop()` then `start_in()` on the same directory (the port changes).
    pub async fn restart(self) -> Server {
        let tmp = self.stop().await;
        Server::start_in(tmp).await
    }

    /// Parses `DATA_DIR/root-credentials` (AWS shared-credentials format, `[default]` profile).
    pub fn credentials(&self) -> RootCredentials {
        if let Some(creds) = &self.root {
            return creds.clone();
        }
        let path = self.data_dir.join("root-credentials");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        parse_credentials(&text)
    }

    /// SDK client with the root credentials.
    pub async fn client(&self) -> Client {
        let creds = self.credentials();
        self.client_with(&creds.access_key_id, &creds.secret_access_key)
            .await
    }

    /// SDK client with arbitrary credentials.
    pub async fn client_with(&self, akid: &str, secret: &str) -> Client {
        let mut config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(akid, secret, None, None, "kura-tests"))
            .retry_config(RetryConfig::disabled())
            .interceptor(TrackingInterceptor(self.tracker()));
        if let Some(tls) = &self.tls {
            config = config.http_client(tls.sdk_http_client());
        }
        Client::from_conf(config.build())
    }

    /// One `POST /` with `X-Amz-Target: secretsmanager.<target_op>` and a JSON body, signed per `sign`.
    /// A kura extension operation (`X-Amz-Target: Kura.<op>`), signed with the root key.
    pub async fn kura(&self, op: &str, body: &str) -> RawResponse {
        self.raw_inner(&format!("Kura.{op}"), body, body, SignMode::Root)
            .await
    }

    /// A new access key for `user` (made by root): its id and secret.
    pub async fn new_access_key(&self, user: &str) -> (String, String) {
        let key = self
            .kura(
                "CreateAccessKey",
                &serde_json::json!({"UserName": user}).to_string(),
            )
            .await
            .assert_ok();
        let field = |f: &str| {
            key["AccessKey"][f]
                .as_str()
                .unwrap_or_else(|| panic!("CreateAccessKey answered no {f}: {key}"))
                .to_string()
        };
        (field("AccessKeyId"), field("SecretAccessKey"))
    }

    /// One call with a full `X-Amz-Target` (`Kura.X` or `secretsmanager.X`), signed with the given key.
    pub async fn raw_as(&self, akid: &str, secret: &str, target: &str, body: &str) -> RawResponse {
        let sign = SignMode::Custom {
            akid: akid.to_string(),
            secret: secret.to_string(),
        };
        self.raw_inner(target, body, body, sign).await
    }

    pub async fn raw(&self, target_op: &str, body: &str, sign: SignMode) -> RawResponse {
        self.raw_inner(&format!("secretsmanager.{target_op}"), body, body, sign)
            .await
    }

    /// Like `raw` with the root credentials, but the signature covers `signed_body` while `sent_body` is sent.
    pub async fn raw_signed_with_body(
        &self,
        target_op: &str,
        signed_body: &str,
        sent_body: &str,
    ) -> RawResponse {
        self.raw_inner(
            &format!("secretsmanager.{target_op}"),
            signed_body,
            sent_body,
            SignMode::Root,
        )
        .await
    }

    async fn raw_inner(
        &self,
        target: &str,
        signed_body: &str,
        body: &str,
        sign: SignMode,
    ) -> RawResponse {
        let url = format!("{}/", self.endpoint());
        let host = self.addr.to_string();
        let content_type = "application/x-amz-json-1.1";
        let mut extra: Vec<(String, String)> = Vec::new();
        let signing = match sign {
            SignMode::Unsigned => None,
            SignMode::Root => {
                let c = self.credentials();
                Some((c.access_key_id, c.secret_access_key, SystemTime::now()))
            }
            SignMode::RootAt(at) => {
                let c = self.credentials();
                Some((c.access_key_id, c.secret_access_key, at))
            }
            SignMode::Custom { akid, secret } => Some((akid, secret, SystemTime::now())),
            SignMode::Authorization(value) => {
                extra.push(("x-amz-date".into(), amz_date(SystemTime::now())));
                extra.push(("authorization".into(), value));
                None
            }
        };
        if let Some((akid, secret, at)) = signing {
            extra.extend(sign_request(
                &akid,
                &secret,
                at,
                &url,
                &[
                    ("content-type", content_type),
                    ("host", &host),
                    ("x-amz-target", target),
                ],
                signed_body.as_bytes(),
            ));
        }
        let mut request = self
            .http()
            .post(&url)
            .header("content-type", content_type)
            .header("x-amz-target", target)
            .body(body.to_string());
        for (name, value) in &extra {
            request = request.header(name.as_str(), value.as_str());
        }
        let tracker = self.tracker();
        lock(&tracker).add_request(body.as_bytes());
        let response = request.send().await.expect("send raw request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("read raw response body");
        let id = headers
            .get("x-amzn-RequestId")
            .and_then(|v| v.to_str().ok());
        lock(&tracker).add_response(id, &bytes);
        RawResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

/// `kura server --data-dir data ARGS` (with `env`), expected to refuse to start: its exit
/// status and output.
pub fn start_refused(
    data: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["server", "--listen", &addr])
        .args(args)
        .envs(env.iter().copied())
        .arg("--data-dir")
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn kura server");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().expect("poll kura server").is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "kura server on {} started instead of refusing",
                data.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child
        .wait_with_output()
        .expect("collect kura server output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- kura server log ({}) ---\n{}",
                self.log_path.display(),
                self.log()
            );
            return;
        }
        self.assert_no_stored_value_leaked();
        self.assert_one_audit_record_per_request();
    }
}

// ---------------------------------------------------------------------------------------------------------
// What the tests sent and received: the leak check and the one-request-one-record check
// ---------------------------------------------------------------------------------------------------------

/// Shortest value the leak check searches for: shorter ones would match unrelated text.
pub const MIN_TRACKED_VALUE: usize = 8;

/// Values remembered without a server (`remember_value`): no server may leak one.
static STORED_VALUES: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

/// What the harness saw go to and come from one data directory (kept across restarts).
#[derive(Default)]
pub struct Tracker {
    /// Secret values sent or received, at least `MIN_TRACKED_VALUE` bytes long.
    values: Vec<Vec<u8>>,
    /// Requests that carried a secret value, however short.
    stores: usize,
    /// Requests sent through the harness.
    requests: usize,
    /// `x-amzn-RequestId` of every response the harness received.
    request_ids: Vec<String>,
    /// Why the audit trail of this directory is not compared (a test tampered with it).
    audit_exempt: Option<String>,
}

type SharedTracker = std::sync::Arc<std::sync::Mutex<Tracker>>;

fn tracker_for(data_dir: &Path) -> SharedTracker {
    static TRACKERS: std::sync::Mutex<BTreeMap<PathBuf, SharedTracker>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut all = TRACKERS.lock().unwrap_or_else(|e| e.into_inner());
    all.entry(data_dir.to_path_buf()).or_default().clone()
}

fn lock(t: &SharedTracker) -> std::sync::MutexGuard<'_, Tracker> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// JSON fields whose string value is secret (compared lower-case; nested objects too, and a
/// `SecretString` holding JSON is searched for its password fields as well).
const SECRET_FIELDS: &[&str] = &[
    "secretstring",
    "secretbinary",
    "secretaccesskey",
    "signingsecret",
    "randompassword",
    "sessiontoken",
    "password",
    "privatekey",
    "private_key",
    "secret_access_key",
];

impl Tracker {
    fn add_value(&mut self, value: &[u8]) {
        if value.len() >= MIN_TRACKED_VALUE && !self.values.iter().any(|v| v == value) {
            self.values.push(value.to_vec());
        }
    }

    /// Records every secret field of a JSON body; returns whether one was present.
    fn add_json(&mut self, body: &[u8]) -> bool {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(json) => self.add_json_value(&json),
            Err(_) => false,
        }
    }

    fn add_json_value(&mut self, json: &serde_json::Value) -> bool {
        let mut found = false;
        match json {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let key = key.to_ascii_lowercase();
                    if SECRET_FIELDS.contains(&key.as_str())
                        && let Some(text) = value.as_str()
                    {
                        found = true;
                        if key == "secretbinary" {
                            self.add_value(&base64_decode(text).unwrap_or_default());
                        } else {
                            self.add_value(text.as_bytes());
                            if let Ok(inner) = serde_json::from_str::<serde_json::Value>(text) {
                                self.add_json_value(&inner);
                            }
                        }
                    } else {
                        found |= self.add_json_value(value);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    found |= self.add_json_value(item);
                }
            }
            _ => {}
        }
        found
    }

    fn add_request(&mut self, body: &[u8]) {
        self.requests += 1;
        if self.add_json(body) {
            self.stores += 1;
        }
    }

    fn add_response(&mut self, request_id: Option<&str>, body: &[u8]) {
        // A sealed node has no key to record anything with: it answers ServiceUnavailable
        // and keeps no record, by design.
        let sealed = serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v["__type"] == "ServiceUnavailable");
        if let Some(id) = request_id.filter(|id| !id.is_empty() && !sealed) {
            self.request_ids.push(id.to_string());
        }
        self.add_json(body);
    }
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = bits << 6 | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

/// Records what every SDK call of a harness client sends and receives.
#[derive(Debug)]
struct TrackingInterceptor(SharedTracker);

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values themselves.
        write!(f, "Tracker({} values)", self.values.len())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl aws_sdk_secretsmanager::config::Intercept for TrackingInterceptor {
    fn name(&self) -> &'static str {
        "kura-tests-tracking"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_secretsmanager::config::interceptors::BeforeTransmitInterceptorContextRef<
            '_,
        >,
        _: &aws_sdk_secretsmanager::config::RuntimeComponents,
        _: &mut aws_sdk_secretsmanager::config::ConfigBag,
    ) -> Result<(), BoxError> {
        let body = context.request().body().bytes().unwrap_or_default();
        lock(&self.0).add_request(body);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &aws_sdk_secretsmanager::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _: &aws_sdk_secretsmanager::config::RuntimeComponents,
        _: &mut aws_sdk_secretsmanager::config::ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(response) = context.response() {
            let id = response.headers().get("x-amzn-RequestId");
            let body = response.body().bytes().unwrap_or_default();
            lock(&self.0).add_response(id, body);
        }
        Ok(())
    }
}

/// Remembers a value no server may leak (for values stored outside the harness's clients,
/// e.g. through the CLI or boto3; short ones would match unrelated text and are ignored).
pub fn remember_value(value: &str) {
    if value.len() >= MIN_TRACKED_VALUE {
        let mut v = STORED_VALUES.lock().unwrap_or_else(|e| e.into_inner());
        v.push(value.as_bytes().to_vec());
    }
}

/// Forgets a value remembered by a test that planted it on purpose.
pub fn forget_value(value: &str) {
    STORED_VALUES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|x| x != value.as_bytes());
}

/// The forms a leaked value could take in text: raw, JSON-escaped, hex (both cases), base64
/// (at each offset).
fn leak_forms(value: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut forms = vec![("raw", value.to_vec())];
    if let Ok(text) = std::str::from_utf8(value) {
        let escaped = serde_json::to_string(text).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        if escaped.as_bytes() != value {
            forms.push(("JSON-escaped", escaped.as_bytes().to_vec()));
        }
    }
    // A binary value printed as text, invalid bytes replaced (`String::from_utf8_lossy`).
    if std::str::from_utf8(value).is_err() {
        forms.push((
            "lossy UTF-8",
            String::from_utf8_lossy(value).into_owned().into_bytes(),
        ));
    }
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    forms.push(("hex", hex.clone().into_bytes()));
    forms.push(("upper-case hex", hex.to_ascii_uppercase().into_bytes()));
    // A fragment this short would match unrelated text; longer values give longer fragments.
    for fragment in base64_fragments(value).into_iter().filter(|f| f.len() >= 8) {
        forms.push(("base64", fragment.into_bytes()));
    }
    forms
}

/// Stored-value operations, as the audit trail names them.
const STORING_ACTIONS: &[&str] = &[
    "secretsmanager:CreateSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
];

impl Server {
    fn tracker(&self) -> SharedTracker {
        tracker_for(&self.data_dir)
    }

    /// Records a response the test received without the harness's clients (its request id
    /// joins the one-request-one-record check).
    pub fn record_response(&self, headers: &HeaderMap) {
        let id = headers
            .get("x-amzn-RequestId")
            .and_then(|v| v.to_str().ok());
        lock(&self.tracker()).add_response(id, b"");
    }

    /// Remembers a value a test stores outside the harness's clients (a script's constant):
    /// no log or audit record of this data directory may hold it.
    pub fn remember(&self, value: &str) {
        lock(&self.tracker()).add_value(value.as_bytes());
    }

    /// Records the JSON request and answer of a call made outside the harness's clients (the
    /// `kura api` CLI, boto3, the AWS CLI): their secret values join the leak check.
    pub fn record_exchange(&self, request: &str, response: &str) {
        let tracker = self.tracker();
        let mut t = lock(&tracker);
        if t.add_json(request.as_bytes()) {
            t.stores += 1;
        }
        t.add_json(response.as_bytes());
    }

    /// Stops comparing this data directory's audit trail with the requests (for a test that
    /// tampers with the trail on purpose; `why` says how).
    pub fn exempt_audit_trail(&self, why: &str) {
        lock(&self.tracker()).audit_exempt = Some(why.to_string());
    }

    /// Audit records of requests, from the file and from the database table.
    pub fn audited_request_ids(
        &self,
    ) -> (Vec<String>, Option<Vec<String>>, Vec<serde_json::Value>) {
        let audit = std::fs::read_to_string(self.data_dir.join("audit.jsonl")).unwrap_or_default();
        let records: Vec<serde_json::Value> = audit
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["Kind"] == "request")
            .collect();
        let file = records
            .iter()
            .filter_map(|r| r["RequestId"].as_str().map(str::to_string))
            .collect();
        let sql = "SELECT request_id FROM audit_log WHERE kind = 'request' ORDER BY seq";
        let db_path = self.data_dir.join("kura.db");
        let table = match &self.database {
            Some(url) => Some(psql(url, sql)),
            None => db_path.exists().then(|| sqlite(&db_path, sql)),
        };
        let table = table.map(|t| t.lines().map(str::to_string).collect());
        (file, table, records)
    }

    /// Every request the server logged has exactly one audit record in the file and one in
    /// the database, and so has every response the harness received (checked for every
    /// server of every test).
    pub fn assert_one_audit_record_per_request(&self) {
        let tracker = self.tracker();
        let t = lock(&tracker);
        if let Some(why) = &t.audit_exempt {
            eprintln!(
                "audit trail of {} not compared: {why}",
                self.data_dir.display()
            );
            return;
        }
        let where_ = self.data_dir.display();
        let log = self.log();
        let mut logged: Vec<String> = log
            .lines()
            .filter(|l| l.contains("kura::request: request_id=\""))
            // A request whose record could not be written is refused, by design.
            .filter(|l| !l.contains("audit record not written"))
            .filter_map(|l| l.split("request_id=\"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_string)
            .collect();
        let (mut file, table, _) = self.audited_request_ids();
        assert!(
            t.requests == 0 || !t.request_ids.is_empty(),
            "{} requests were sent to {where_} but no response carried an x-amzn-RequestId",
            t.requests
        );
        assert!(
            t.request_ids.is_empty() || !file.is_empty(),
            "{} responses of {where_} carried a request id, but audit.jsonl has no request record",
            t.request_ids.len()
        );
        logged.sort();
        file.sort();
        assert_eq!(
            logged, file,
            "requests logged vs audit records of requests in audit.jsonl, in {where_}"
        );
        match table {
            // The cluster's table holds every node's records: this node's are among them.
            Some(table) if self.database.is_some() => {
                for id in &file {
                    let n = table.iter().filter(|t| *t == id).count();
                    assert_eq!(
                        n, 1,
                        "request {id} of audit.jsonl in {where_} has {n} records in the cluster's audit_log table (expected 1)"
                    );
                }
            }
            Some(mut table) => {
                table.sort();
                assert_eq!(
                    file, table,
                    "audit records of requests in audit.jsonl vs the audit_log table, in {where_}"
                );
            }
            None => {}
        }
        for id in &t.request_ids {
            // A request whose record could not be written is refused, by design.
            let refused = log
                .lines()
                .any(|l| l.contains(id.as_str()) && l.contains("audit record not written"));
            if refused {
                continue;
            }
            let n = file.iter().filter(|f| *f == id).count();
            assert_eq!(
                n, 1,
                "the response with x-amzn-RequestId {id} has {n} audit records in {where_} (expected exactly 1)"
            );
        }
    }

    /// Scans this server's log, audit file and audit table for every value the tests sent or
    /// received, in every form; fails when the test stored values but none long enough to find.
    pub fn assert_no_stored_value_leaked(&self) {
        let tracker = self.tracker();
        let t = lock(&tracker);
        let where_ = self.data_dir.display();
        let log = std::fs::read(&self.log_path).unwrap_or_default();
        let audit = std::fs::read(self.data_dir.join("audit.jsonl")).unwrap_or_default();
        let db_path = self.data_dir.join("kura.db");
        let table = match &self.database {
            Some(url) => psql(url, "SELECT * FROM audit_log").into_bytes(),
            None if db_path.exists() => sqlite(&db_path, "SELECT * FROM audit_log").into_bytes(),
            None => Vec::new(),
        };
        let (_, _, records) = self.audited_request_ids();
        let stored_outside = records
            .iter()
            .filter(|r| {
                r["Outcome"] == "Success"
                    && STORING_ACTIONS.contains(&r["Action"].as_str().unwrap_or(""))
                    && r["VersionId"].is_string()
            })
            .count();
        let mut values = t.values.clone();
        values.extend(
            STORED_VALUES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        assert!(
            !t.values.is_empty() || t.stores == 0,
            "the test stored {} secret values in {where_} through the harness, none of at least \
             {MIN_TRACKED_VALUE} bytes, so the leak check cannot search for them: store longer \
             values (e.g. with unique_suffix())",
            t.stores
        );
        assert!(
            !t.values.is_empty() || stored_outside == 0,
            "the audit trail of {where_} shows {stored_outside} values stored outside the harness's \
             clients (CLI, boto3), but the test remembered none of at least {MIN_TRACKED_VALUE} bytes: \
             server.remember() what it stores that way"
        );
        // The root key is a secret too (it is not counted as a value the test stored).
        if let Ok(text) = std::fs::read_to_string(self.data_dir.join("root-credentials")) {
            let secrets = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .filter(|(k, _)| k.trim() == "aws_secret_access_key")
                .map(|(_, v)| v.trim().as_bytes().to_vec());
            values.extend(secrets);
        }
        if let Some(creds) = &self.root {
            values.push(creds.secret_access_key.as_bytes().to_vec());
        }
        for value in &values {
            for (form, needle) in leak_forms(value) {
                for (what, text) in [
                    ("server log", &log),
                    ("audit file", &audit),
                    ("audit_log table", &table),
                ] {
                    assert!(
                        !contains(text, &needle),
                        "a secret value ({} bytes) appears {form} in the {what} of {where_}",
                        value.len()
                    );
                }
            }
        }
    }
}

pub fn parse_credentials(text: &str) -> RootCredentials {
    let mut in_default = false;
    let mut akid = None;
    let mut secret = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_default = line == "[default]";
            continue;
        }
        if !in_default {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            match key.trim() {
                "aws_access_key_id" => akid = Some(value.trim().to_string()),
                "aws_secret_access_key" => secret = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    RootCredentials {
        access_key_id: akid.unwrap_or_else(|| panic!("no aws_access_key_id in {text:?}")),
        secret_access_key: secret.unwrap_or_else(|| panic!("no aws_secret_access_key in {text:?}")),
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build reqwest client")
}

fn amz_date(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// SigV4-signs a POST and returns the headers to add (`x-amz-date`, `authorization`).
fn sign_request(
    akid: &str,
    secret: &str,
    at: SystemTime,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;

    let identity = Credentials::new(akid, secret, None, None, "kura-tests").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("secretsmanager")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .expect("signable request");
    let (instructions, _signature) = sign(signable, &params).expect("sign").into_parts();
    let (headers, _params) = instructions.into_parts();
    headers
        .into_iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

/// A service error as seen through the SDK.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// Unwraps the service error of a failed SDK call (panics on success or on a transport failure).
pub fn api_err<T: std::fmt::Debug, E>(result: Result<T, SdkError<E, HttpResponse>>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let err = match result {
        Ok(value) => panic!("expected a service error, the call succeeded: {value:?}"),
        Err(err) => err,
    };
    let (status, service) = match (err.raw_response(), err.as_service_error()) {
        (Some(resp), Some(service)) => (resp.status().as_u16(), service),
        _ => panic!(
            "expected a service error, got {}",
            aws_sdk_secretsmanager::error::DisplayErrorContext(&err)
        ),
    };
    ApiError {
        status,
        code: service.code().unwrap_or("<none>").to_string(),
        message: service.message().unwrap_or("<none>").to_string(),
    }
}

/// Turns an SDK result into `Result<T, ApiError>` (panics on transport failures).
pub fn res<T, E>(result: Result<T, SdkError<E, HttpResponse>>) -> Result<T, ApiError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    result.map_err(|e| api_err::<(), _>(Err(e)))
}

/// Asserts HTTP 400 with exactly this code (and this message when given).
pub fn assert_api_err<T: std::fmt::Debug, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
    code: &str,
    message: Option<&str>,
) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let err = api_err(result);
    assert_eq!(err.code, code, "unexpected error {err:?}");
    assert_eq!(err.status, 400, "client errors must be HTTP 400: {err:?}");
    if let Some(message) = message {
        assert_eq!(err.message, message, "unexpected message for {code}");
    }
    err
}

/// Asserts HTTP 400 `ValidationException`: what AWS answers for a field outside its model's
/// length, range or pattern (e.g. `Value at 'secretBinary' failed to satisfy constraint`).
pub fn assert_validation_err<T: std::fmt::Debug, E>(
    result: Result<T, SdkError<E, HttpResponse>>,
) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let err = api_err(result);
    assert_eq!(err.code, "ValidationException", "{err:?}");
    assert_eq!(err.status, 400, "client errors must be HTTP 400: {err:?}");
    err
}

/// Unwraps a successful SDK call, printing the service error code and message otherwise.
pub fn ok<T, E>(result: Result<T, SdkError<E, HttpResponse>>) -> T
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(value) => value,
        Err(err) => panic!(
            "call failed: code={:?} message={:?} ({})",
            err.code(),
            err.message(),
            aws_sdk_secretsmanager::error::DisplayErrorContext(&err)
        ),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Secret helpers
// ---------------------------------------------------------------------------------------------------------

/// A deterministic, valid (36-character, UUID-shaped) ClientRequestToken; distinct `n` give distinct tokens.
pub fn token(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// A value that is practically unique per call (no extra crates: std hasher seeds + time + counter).
pub fn unique_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    let a = hasher.finish();
    hasher.write_u64(a);
    format!("{a:016x}{:016x}", hasher.finish())
}

/// Version id → sorted labels.
pub type Stages = BTreeMap<String, Vec<String>>;

pub fn stages_of(entries: &[(&str, &[&str])]) -> Stages {
    entries
        .iter()
        .map(|(id, labels)| {
            let mut labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
            labels.sort();
            (id.to_string(), labels)
        })
        .collect()
}

fn sorted_stages(map: &std::collections::HashMap<String, Vec<String>>) -> Stages {
    map.iter()
        .map(|(id, labels)| {
            let mut labels = labels.clone();
            labels.sort();
            (id.clone(), labels)
        })
        .collect()
}

pub fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// CreateSecret with a string value and a chosen token; returns (ARN, VersionId).
pub async fn create_string(
    client: &Client,
    name: &str,
    value: &str,
    token: &str,
) -> (String, String) {
    let out = ok(client
        .create_secret()
        .name(name)
        .secret_string(value)
        .client_request_token(token)
        .send()
        .await);
    let arn = out.arn().expect("CreateSecret without ARN").to_string();
    let version = out
        .version_id()
        .expect("CreateSecret without VersionId")
        .to_string();
    assert_eq!(
        version, token,
        "VersionId must equal the ClientRequestToken"
    );
    (arn, version)
}

/// CreateSecret with a string value and a generated token; returns the ARN.
pub async fn create_plain(client: &Client, name: &str, value: &str) -> String {
    let out = ok(client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await);
    out.arn().expect("CreateSecret without ARN").to_string()
}

/// PutSecretValue with a string value and a chosen token (AWSCURRENT moves); returns the VersionId.
pub async fn put_string(client: &Client, id: &str, value: &str, token: &str) -> String {
    let out = ok(client
        .put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .client_request_token(token)
        .send()
        .await);
    let version = out
        .version_id()
        .expect("PutSecretValue without VersionId")
        .to_string();
    assert_eq!(
        version, token,
        "VersionId must equal the ClientRequestToken"
    );
    version
}

/// PutSecretValue with explicit VersionStages; returns the VersionId.
pub async fn put_string_staged(
    client: &Client,
    id: &str,
    value: &str,
    token: &str,
    stages: &[&str],
) -> String {
    let out = ok(client
        .put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .client_request_token(token)
        .set_version_stages(Some(stages.iter().map(|s| s.to_string()).collect()))
        .send()
        .await);
    out.version_id()
        .expect("PutSecretValue without VersionId")
        .to_string()
}

/// GetSecretValue(AWSCURRENT) → SecretString.
pub async fn get_string(client: &Client, id: &str) -> String {
    let out = ok(client.get_secret_value().secret_id(id).send().await);
    out.secret_string().expect("no SecretString").to_string()
}

/// GetSecretValue by VersionId → SecretString.
pub async fn get_version_string(client: &Client, id: &str, version_id: &str) -> String {
    let out = ok(client
        .get_secret_value()
        .secret_id(id)
        .version_id(version_id)
        .send()
        .await);
    assert_eq!(out.version_id(), Some(version_id));
    out.secret_string().expect("no SecretString").to_string()
}

/// GetSecretValue by VersionStage → (VersionId, SecretString, returned labels).
pub async fn get_stage(client: &Client, id: &str, stage: &str) -> (String, String, Vec<String>) {
    let out = ok(client
        .get_secret_value()
        .secret_id(id)
        .version_stage(stage)
        .send()
        .await);
    let mut labels = out.version_stages().to_vec();
    labels.sort();
    (
        out.version_id().expect("no VersionId").to_string(),
        out.secret_string().expect("no SecretString").to_string(),
        labels,
    )
}

/// DescribeSecret VersionIdsToStages.
pub async fn describe_stages(client: &Client, id: &str) -> Stages {
    let out = ok(client.describe_secret().secret_id(id).send().await);
    sorted_stages(
        out.version_ids_to_stages()
            .expect("DescribeSecret without VersionIdsToStages"),
    )
}

/// ListSecretVersionIds (all pages) → version id → labels.
pub async fn list_versions(client: &Client, id: &str, include_deprecated: bool) -> Stages {
    let mut all = Stages::new();
    let mut next: Option<String> = None;
    loop {
        let out = ok(client
            .list_secret_version_ids()
            .secret_id(id)
            .include_deprecated(include_deprecated)
            .set_next_token(next.take())
            .send()
            .await);
        for v in out.versions() {
            let mut labels = v.version_stages().to_vec();
            labels.sort();
            let id = v
                .version_id()
                .expect("version entry without VersionId")
                .to_string();
            assert!(
                all.insert(id.clone(), labels).is_none(),
                "version {id} listed twice"
            );
        }
        match out.next_token() {
            Some(t) => next = Some(t.to_string()),
            None => return all,
        }
    }
}

/// DescribeSecret tags as a sorted map.
pub async fn describe_tags(client: &Client, id: &str) -> BTreeMap<String, String> {
    let out = ok(client.describe_secret().secret_id(id).send().await);
    out.tags()
        .iter()
        .map(|t| {
            (
                t.key().expect("tag without key").to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Asserts that the secret does not exist (DescribeSecret → ResourceNotFoundException).
pub async fn assert_no_secret(client: &Client, id: &str) {
    assert_api_err(
        client.describe_secret().secret_id(id).send().await,
        "ResourceNotFoundException",
        Some(NOT_FOUND_MSG),
    );
}

// ---------------------------------------------------------------------------------------------------------
// Time and ARNs
// ---------------------------------------------------------------------------------------------------------

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub const DAY: i64 = 86_400;

/// Asserts `date` lies within `tolerance` seconds of `expected` (epoch seconds).
pub fn assert_near(date: Option<&DateTime>, expected: i64, tolerance: i64, what: &str) {
    let date = date.unwrap_or_else(|| panic!("{what} missing"));
    let diff = (date.secs() - expected).abs();
    assert!(
        diff <= tolerance,
        "{what} = {} is {diff}s away from the expected {expected} (tolerance {tolerance}s)",
        date.secs()
    );
}

/// Splits `arn:aws:secretsmanager:us-east-1:<12 digits>:secret:<name>-<6 alnum>` and returns the suffix,
/// asserting the whole shape.
pub fn arn_suffix(arn: &str, name: &str) -> String {
    let prefix = format!("arn:aws:secretsmanager:{REGION}:");
    let rest = arn
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("ARN {arn:?} does not start with {prefix:?}"));
    let (account, rest) = rest.split_once(':').expect("ARN without account");
    assert_eq!(account.len(), 12, "account in {arn:?} is not 12 digits");
    assert!(
        account.bytes().all(|b| b.is_ascii_digit()),
        "account in {arn:?} is not 12 digits"
    );
    let rest = rest
        .strip_prefix("secret:")
        .unwrap_or_else(|| panic!("ARN {arn:?} has no `secret:` resource"));
    let with_dash = format!("{name}-");
    let suffix = rest
        .strip_prefix(&with_dash)
        .unwrap_or_else(|| panic!("ARN {arn:?} resource is not {name}-XXXXXX"));
    assert_eq!(suffix.len(), 6, "ARN suffix {suffix:?} is not 6 characters");
    assert!(
        suffix.bytes().all(|b| b.is_ascii_alphanumeric()),
        "ARN suffix {suffix:?} is not alphanumeric"
    );
    suffix.to_string()
}

/// The ARN without its `-XXXXXX` suffix (a "partial ARN").
pub fn partial_arn(arn: &str) -> String {
    arn[..arn.len() - 7].to_string()
}

// ---------------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------------

/// Every regular file under `dir`, recursively, with its bytes.
pub fn read_all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display()))
        {
            let entry = entry.unwrap();
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                stack.push(entry.path());
            } else if ty.is_file() {
                let mut bytes = Vec::new();
                File::open(entry.path())
                    .and_then(|mut f| f.read_to_end(&mut bytes))
                    .unwrap_or_else(|e| panic!("read {}: {e}", entry.path().display()));
                out.push((entry.path(), bytes));
            }
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Base64 fragments that appear in any base64 text containing `bytes`, whatever its offset mod 3.
pub fn base64_fragments(bytes: &[u8]) -> Vec<String> {
    (0..3)
        .map(|pad| {
            let mut padded = vec![0u8; pad];
            padded.extend_from_slice(bytes);
            let encoded = base64(&padded);
            // Drop the characters mixed with the padding at the front and with whatever follows at the end.
            let start = if pad == 0 { 0 } else { 4 };
            encoded[start..encoded.len() - 4].to_string()
        })
        .collect()
}

/// Runs `sqlite3 db sql` and returns its trimmed stdout (panics on failure). Against a
/// running server it waits for the server's write transaction to end (its writer holds one
/// open for a batch, and a background pass may take a turn at any time) as a second writer
/// would, instead of failing at once with "database is locked".
pub fn sqlite(db: &Path, sql: &str) -> String {
    let out = std::process::Command::new("sqlite3")
        .args(["-cmd", ".timeout 10000"])
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(
        out.status.success(),
        "sqlite3 failed on {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `psql URL -Atc sql` (unaligned, tuples only) and returns its trimmed stdout (panics
/// on failure).
pub fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql, url])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed on {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether the tests run in CI: any non-empty `CI` (CI services set it to `true`, `1`, ...).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Records that the running test skips its checks for `reason`, where scripts/test counts and
/// names it (the file in `KURA_TEST_SKIPS`); in CI a skip is a failure. The caller then returns.
pub fn skip(reason: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    let test = format!("{}::{test}", env!("CARGO_CRATE_NAME"));
    assert!(
        !in_ci(),
        "{test} would skip in CI, where everything it needs must be present: {reason}"
    );
    eprintln!("SKIPPED: {test}: {reason}");
    if let Some(path) = std::env::var_os("KURA_TEST_SKIPS").filter(|p| !p.is_empty()) {
        use std::io::Write;
        // One short line per append, so parallel tests do not interleave.
        let line = format!("{test}: {}\n", reason.replace('\n', " "));
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            panic!(
                "cannot record the skip in {}: {e}",
                Path::new(&path).display()
            );
        }
    }
}

/// Whether `tool` is on PATH. Outside CI a missing tool skips the test with a reason (see
/// `skip`); in CI it fails, since scripts/test installs everything the tests use.
pub fn have(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        assert!(
            !in_ci(),
            "{tool} is not on PATH; in CI it must be (scripts/test installs it)"
        );
        skip(&format!(
            "{tool} is not on PATH; run the tests through scripts/test, which installs it"
        ));
    }
    found
}

// ---------------------------------------------------------------------------------------------------------
// Rotation
// ---------------------------------------------------------------------------------------------------------

/// DescribeSecret as raw JSON, to see kura's extension fields (`KuraRotation`).
pub async fn describe_json(server: &Server, id: &str) -> serde_json::Value {
    server
        .raw(
            "DescribeSecret",
            &serde_json::json!({ "SecretId": id }).to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok()
}

/// The ARN of rotation function `name` on the server that owns `secret_arn`.
pub fn lambda_arn(secret_arn: &str, name: &str) -> String {
    let parts: Vec<&str> = secret_arn.split(':').collect();
    format!("arn:aws:lambda:{}:{}:function:{name}", parts[3], parts[4])
}

/// Waits until the secret's rotation is no longer in progress (or `max` passes) and returns
/// `KuraRotation`. Rotation runs in the background, so tests poll; nothing waits on a schedule.
pub async fn wait_rotation_settled(server: &Server, id: &str, max: Duration) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let d = describe_json(server, id).await;
        let r = d["KuraRotation"].clone();
        let state = r["State"].as_str().unwrap_or("");
        let waiting_retry = state == "InProgress" && r.get("LastError").is_some();
        if state == "Succeeded" || state == "Failed" || waiting_retry {
            return r;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "rotation of {id} still {state:?} after {max:?}: {d:#}\n--- server log ---\n{}",
                server.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a rotation to succeed; panics with the rotation state otherwise.
pub async fn wait_rotation_succeeded(server: &Server, id: &str) {
    let r = wait_rotation_settled(server, id, Duration::from_secs(60)).await;
    assert_eq!(
        r["State"],
        "Succeeded",
        "rotation of {id} did not succeed: {r:#}\n--- server log ---\n{}",
        server.log()
    );
}

/// A Python with boto3 (the venv scripts/test puts first on PATH), as an absolute path.
pub fn python_with_boto3() -> Option<PathBuf> {
    if !have("python3") {
        return None;
    }
    let out = std::process::Command::new("python3")
        .args(["-c", "import boto3, sys; print(sys.executable)"])
        .output()
        .expect("run python3");
    if !out.status.success() {
        assert!(
            !in_ci(),
            "python3 has no boto3; in CI it must (scripts/test installs it)"
        );
        skip("python3 has no boto3; run the tests through scripts/test");
        return None;
    }
    Some(PathBuf::from(
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

/// A file of the Python rotation fixture in `tests/rotation/`.
pub fn rotation_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/rotation")
        .join(name)
}

/// Creates a `command` function running the AWS-style Python fixture with `env`.
pub async fn create_python_function(
    server: &Server,
    python: &Path,
    name: &str,
    env: &[(&str, &str)],
    max_attempts: i64,
) {
    let env: serde_json::Map<String, serde_json::Value> = env
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    server
        .kura(
            "CreateRotationFunction",
            &serde_json::json!({
                "Name": name,
                "Type": "command",
                "Command": [python, rotation_fixture("run_lambda.py")],
                "Environment": env,
                "TimeoutSeconds": 60,
                "MaxAttempts": max_attempts,
            })
            .to_string(),
        )
        .await
        .assert_ok();
}

/// SHA-256 hex of `text`, as the Python fixture records what it "set in the target system".
pub fn sha256_hex(text: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("run sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// `Kura.CreateAccessKey` for `user`: its (AccessKeyId, SecretAccessKey).
pub async fn create_access_key(server: &Server, user: &str) -> (String, String) {
    let key = server
        .kura(
            "CreateAccessKey",
            &serde_json::json!({ "UserName": user }).to_string(),
        )
        .await
        .assert_ok();
    let field = |name: &str| {
        key["AccessKey"][name]
            .as_str()
            .unwrap_or_else(|| panic!("CreateAccessKey answers {name}: {key}"))
            .to_string()
    };
    (field("AccessKeyId"), field("SecretAccessKey"))
}
