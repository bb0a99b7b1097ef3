//! `kura agent`: a local cache serving the AWS Secrets Manager Agent's HTTP interface
//! (`/secretsmanager/get`, `/v1/<id>`, `/ping`, the SSRF token), so code written for AWS's
//! agent works unchanged. Beyond it, a background Kura.WatchSecrets long-poll drops an entry
//! as soon as its secret changes (the TTL stays the fallback while the watch is down), and
//! secrets can be written to files, rewritten when they change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};
use zeroize::Zeroizing;

use crate::cli::ClientArgs;
use crate::client::{Client, ClientError};

pub const AGENT_HELP: &str = "Examples:
  AWS_TOKEN=$(head -c 32 /dev/urandom | base64) kura agent
  curl -H \"X-Aws-Parameters-Secrets-Token: $AWS_TOKEN\" 'http://127.0.0.1:2773/secretsmanager/get?secretId=prod/app-db'
  AWS_TOKEN=file:///run/kura/token kura agent --listen 127.0.0.1:2773 --ttl-seconds 60 \\
      --file prod/app-db=/run/app/db-password:password --template prod/app-db=/run/app/db.env:db.env.tmpl

HTTP, as AWS's Secrets Manager Agent serves it:
  GET /secretsmanager/get?secretId=ID[&versionStage=S][&versionId=V][&refreshNow=true]
  GET /v1/ID[?versionStage=S&versionId=V&refreshNow=true]
      the GetSecretValue answer as JSON; an error as {\"__type\": CODE, \"message\": ...}
      with the server's status
  GET /ping   \"healthy\"
Every request but /ping must carry X-Aws-Parameters-Secrets-Token (or X-Vault-Token) equal
to the token in AWS_TOKEN (else AWS_SESSION_TOKEN, AWS_CONTAINER_AUTHORIZATION_TOKEN); a value
file://PATH is read from PATH. A wrong or missing token is refused with 403, a request
carrying X-Forwarded-For with 400, another method than GET with 405.

Freshness: answers are cached for --ttl-seconds (AWS's default, 300). The agent also watches
the server (Kura.WatchSecrets, which needs kura:WatchSecrets and shows changes only to secrets
the agent's key may DescribeSecret): an entry is dropped within a second of its secret
changing (a new value, a stage moved, a rotation, deletion). While the watch is down the TTL
alone applies; it is re-established with backoff and resumes where it left off, and when it
cannot (the server's trail does not know the cursor) everything cached is dropped. As with
AWS's agent, an answer past its TTL is still served while the server cannot be reached (or
fails), unless the watch dropped it.

Files: --file NAME=PATH[:FIELD] writes the secret's value (or one field of its JSON) to PATH;
--template NAME=PATH:TEMPLATE writes the file TEMPLATE with each {{ .field }} replaced by that
field of the secret's JSON value ({{ . }}: the whole value). Files are written with mode 0600
by atomic rename, at start and whenever the secret changes (or, with the watch down, every
--ttl-seconds).";

/// The headers AWS's agent accepts the SSRF token in.
const TOKEN_HEADERS: &[&str] = &["x-aws-parameters-secrets-token", "x-vault-token"];
/// Where AWS's agent reads the SSRF token from, in this order.
const TOKEN_VARS: &[&str] = &[
    "AWS_TOKEN",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];
/// How long one watch call waits on the server.
const WATCH_WAIT_SECONDS: i64 = 20;
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(clap::Args)]
pub struct AgentArgs {
    /// The address to serve on (AWS's agent: localhost, http_port 2773).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2773")]
    pub listen: SocketAddr,
    /// How long an answer is served from the cache, 0 to 3600 (AWS's agent: ttl_seconds,
    /// 300); 0 caches nothing.
    #[arg(long, value_name = "SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub ttl_seconds: u64,
    /// At most this many answers are cached, 1 to 1000 (AWS's agent: cache_size, 1000).
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub cache_size: u64,
    /// Write a secret's value (or one JSON field of it) to a file. Repeatable.
    #[arg(long = "file", value_name = "NAME=PATH[:FIELD]")]
    pub files: Vec<String>,
    /// Write a file from a template, {{ .field }} replaced by the secret's fields. Repeatable.
    #[arg(long = "template", value_name = "NAME=PATH:TEMPLATE")]
    pub templates: Vec<String>,
    /// Do not watch the server for changes: the TTL alone keeps answers fresh.
    #[arg(long)]
    pub no_watch: bool,
}

/// One file the agent keeps up to date.
#[derive(Debug, Clone)]
struct FileSpec {
    secret: String,
    path: PathBuf,
    render: Render,
}

#[derive(Debug, Clone)]
enum Render {
    /// The whole value, or one field of its JSON.
    Value(Option<String>),
    /// A template's text.
    Template(String),
}

/// `NAME=PATH[:EXTRA]`: the part after the last `:` is EXTRA; a field name (`extra_is_path`
/// false) holds no `/`, so a path's own `:` is not taken for one.
fn split_spec(
    spec: &str,
    what: &str,
    extra_is_path: bool,
) -> Result<(String, PathBuf, Option<String>), ClientError> {
    let (name, rest) = spec
        .split_once('=')
        .ok_or_else(|| ClientError::Usage(format!("{what} {spec:?} is not NAME=PATH[:...]")))?;
    let (path, extra) = match rest.rsplit_once(':') {
        Some((p, x)) if (extra_is_path || !x.contains('/')) && !p.is_empty() => {
            (p, Some(x.to_string()))
        }
        _ => (rest, None),
    };
    if name.is_empty() || path.is_empty() {
        return Err(ClientError::Usage(format!(
            "{what} {spec:?} needs a secret name and a path: NAME=PATH"
        )));
    }
    Ok((name.to_string(), PathBuf::from(path), extra))
}

fn parse_files(args: &AgentArgs) -> Result<Vec<FileSpec>, ClientError> {
    let mut out = Vec::new();
    for spec in &args.files {
        let (secret, path, field) = split_spec(spec, "--file", false)?;
        out.push(FileSpec {
            secret,
            path,
            render: Render::Value(field),
        });
    }
    for spec in &args.templates {
        let (secret, path, template) = split_spec(spec, "--template", true)?;
        let template = template.ok_or_else(|| {
            ClientError::Usage(format!(
                "--template {spec:?} names no template: write NAME=PATH:TEMPLATE"
            ))
        })?;
        let text = std::fs::read_to_string(&template)
            .map_err(|e| ClientError::Usage(format!("cannot read the template {template}: {e}")))?;
        out.push(FileSpec {
            secret,
            path,
            render: Render::Template(text),
        });
    }
    Ok(out)
}

/// The SSRF token, as AWS's agent finds it.
fn read_token(env: &dyn Fn(&str) -> Option<String>) -> Result<Zeroizing<String>, ClientError> {
    let Some((var, value)) = TOKEN_VARS
        .iter()
        .find_map(|v| env(v).filter(|s| !s.is_empty()).map(|s| (*v, s)))
    else {
        return Err(ClientError::Usage(
            "kura agent needs a token that callers must send (X-Aws-Parameters-Secrets-Token): set AWS_TOKEN to it, or to file://PATH to read it from a file".into(),
        ));
    };
    let value = Zeroizing::new(value);
    let Some(path) = value.strip_prefix("file://") else {
        return Ok(value);
    };
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        ClientError::Usage(format!("cannot read the token file {path} ({var}): {e}"))
    })?);
    let token = Zeroizing::new(text.trim().to_string());
    if token.is_empty() {
        return Err(ClientError::Usage(format!(
            "the token file {path} ({var}) is empty"
        )));
    }
    Ok(token)
}

/// Equal, in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a GetSecretValue call is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    secret_id: String,
    version_id: Option<String>,
    version_stage: Option<String>,
}

struct Entry {
    /// The GetSecretValue answer as sent to callers.
    body: Zeroizing<String>,
    arn: String,
    fetched: Instant,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<Key, Entry>,
    /// Moves on every drop: an answer fetched before a drop is not cached after it.
    epoch: u64,
}

struct Agent {
    client: Client,
    token: Zeroizing<String>,
    ttl: Duration,
    size: usize,
    cache: Mutex<Cache>,
    files: Vec<FileSpec>,
}

/// An answer to a caller: the status and body AWS's agent gives.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

fn aws_error(status: u16, code: &str, message: &str) -> Refusal {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Refusal(
        status,
        json!({"__type": code, "message": message}).to_string(),
    )
}

fn client_refusal(e: ClientError) -> Refusal {
    match e {
        ClientError::Api {
            status,
            code,
            message,
        } => aws_error(status, &code, &message),
        ClientError::Unreachable(m) => {
            eprintln!("kura agent: {m}");
            aws_error(502, "ConnectionError", "Read Error")
        }
        other => {
            eprintln!("kura agent: {}", crate::cli::message(&other));
            Refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"__type": "InternalFailure"}).to_string(),
            )
        }
    }
}

impl Agent {
    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer for `key`: from the cache while fresh, else from the server.
    async fn get(&self, key: Key, refresh: bool) -> Result<Zeroizing<String>, ClientError> {
        let epoch = {
            let cache = self.lock();
            if !refresh
                && let Some(e) = cache.entries.get(&key)
                && e.fetched.elapsed() < self.ttl
            {
                return Ok(e.body.clone());
            }
            cache.epoch
        };
        let mut request = json!({"SecretId": key.secret_id});
        if let Some(v) = &key.version_id {
            request["VersionId"] = json!(v);
        }
        if let Some(s) = &key.version_stage {
            request["VersionStage"] = json!(s);
        }
        // serde_json's values cannot be zeroized; the text kept in the cache is.
        let answer = match self
            .client
            .call("secretsmanager.GetSecretValue", &request)
            .await
        {
            Ok(answer) => answer,
            // As AWS's agent (ignore_transient_errors): while the server cannot answer, an
            // expired answer the watch has not dropped is better than none.
            Err(e) if transient(&e) => match self.lock().entries.get(&key) {
                Some(old) => return Ok(old.body.clone()),
                None => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let body = Zeroizing::new(answer.to_string());
        let arn = answer["ARN"].as_str().unwrap_or_default().to_string();
        let mut cache = self.lock();
        if cache.epoch == epoch && !self.ttl.is_zero() && self.size > 0 {
            if cache.entries.len() >= self.size && !cache.entries.contains_key(&key) {
                let oldest = cache
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.fetched)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    cache.entries.remove(&k);
                }
            }
            cache.entries.insert(
                key,
                Entry {
                    body: body.clone(),
                    arn,
                    fetched: Instant::now(),
                },
            );
        }
        Ok(body)
    }

    /// Drops what is cached of the secret `arn` (or everything).
    fn drop_secret(&self, arn: Option<&str>) {
        let mut cache = self.lock();
        cache.epoch += 1;
        match arn {
            Some(arn) => cache.entries.retain(|_, e| e.arn != arn),
            None => cache.entries.clear(),
        }
    }

    async fn serve(self: Arc<Self>, req: Request) -> Response {
        match self.answer(req).await {
            Ok(body) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from(body.as_str().to_owned()),
            )
                .into_response(),
            Err(r) => r.into_response(),
        }
    }

    /// AWS's agent's order: the token (not for /ping), the method, then the path.
    async fn answer(&self, req: Request) -> Result<Zeroizing<String>, Refusal> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        if path != "/ping" {
            self.check_token(req.headers())?;
        }
        if req.method() != Method::GET {
            return Err(Refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                "Not allowed".into(),
            ));
        }
        let bad = |m: String| Refusal(StatusCode::BAD_REQUEST, m);
        let (key, refresh) = match path.as_str() {
            "/ping" => return Ok(Zeroizing::new("healthy".into())),
            "/secretsmanager/get" => {
                let (id, key) = parse_query(&query, true).map_err(bad)?;
                match id {
                    Some(id) if !id.is_empty() => (
                        Key {
                            secret_id: id,
                            ..key.0
                        },
                        key.1,
                    ),
                    _ => return Err(bad("missing parameter secretId".into())),
                }
            }
            p if p.starts_with("/v1/") => {
                let raw = &p["/v1/".len()..];
                let id = percent_encoding::percent_decode_str(raw)
                    .decode_utf8()
                    .map_err(|_| bad("the secret ID is not UTF-8".into()))?
                    .into_owned();
                if id.is_empty() {
                    return Err(bad("missing secret ID".into()));
                }
                let (_, key) = parse_query(&query, false).map_err(bad)?;
                (
                    Key {
                        secret_id: id,
                        ..key.0
                    },
                    key.1,
                )
            }
            _ => return Err(Refusal(StatusCode::NOT_FOUND, "Not found".into())),
        };
        self.get(key, refresh).await.map_err(client_refusal)
    }

    fn check_token(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if headers.contains_key("x-forwarded-for") {
            eprintln!("kura agent: refused a request carrying X-Forwarded-For");
            return Err(Refusal(StatusCode::BAD_REQUEST, "Forwarded".into()));
        }
        let good = TOKEN_HEADERS.iter().any(|h| {
            headers
                .get(*h)
                .is_some_and(|v| same(v.as_bytes(), self.token.as_bytes()))
        });
        if good {
            return Ok(());
        }
        eprintln!("kura agent: refused a request without the right token");
        Err(Refusal(StatusCode::FORBIDDEN, "Bad Token".into()))
    }

    /// Writes every file of `secret` (all files when `None`), logging failures.
    async fn write_files(&self, secret: Option<(&str, &str)>) {
        for f in &self.files {
            if let Some((arn, name)) = secret
                && f.secret != arn
                && f.secret != name
                && !arn.starts_with(&f.secret)
            {
                continue;
            }
            if let Err(e) = self.write_file(f).await {
                eprintln!(
                    "kura agent: cannot write {} from {}: {}",
                    f.path.display(),
                    f.secret,
                    crate::cli::message(&e)
                );
            }
        }
    }

    async fn write_file(&self, f: &FileSpec) -> Result<(), ClientError> {
        let key = Key {
            secret_id: f.secret.clone(),
            version_id: None,
            version_stage: None,
        };
        let body = self.get(key, false).await?;
        let answer: Json = serde_json::from_str(&body)
            .map_err(|e| ClientError::Other(format!("the answer is not JSON: {e}")))?;
        let content = render(&answer, &f.render).map_err(ClientError::Usage)?;
        super::write_private(&f.path, &content)
            .map_err(|e| ClientError::Other(format!("writing the file: {e}")))
    }
}

/// No answer, or the server's own failure: worth serving a cached answer past its TTL.
fn transient(e: &ClientError) -> bool {
    match e {
        ClientError::Unreachable(_) => true,
        ClientError::Api { status, .. } => *status >= 500,
        _ => false,
    }
}

type Query = (Key, bool);

/// The query's parameters as AWS's agent reads them (an unknown one is refused); the
/// secretId when `with_id`.
fn parse_query(query: &str, with_id: bool) -> Result<(Option<String>, Query), String> {
    let mut key = Key {
        secret_id: String::new(),
        version_id: None,
        version_stage: None,
    };
    let mut id = None;
    let mut refresh = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "secretId" if with_id => id = Some(v.into_owned()),
            "versionId" => key.version_id = Some(v.into_owned()),
            "versionStage" => key.version_stage = Some(v.into_owned()),
            "refreshNow" => {
                refresh = match v.to_ascii_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err("invalid refreshNow value".into()),
                }
            }
            other => return Err(format!("unknown parameter: {other}")),
        }
    }
    Ok((id, (key, refresh)))
}

/// A field's text: a string as it is, anything else as JSON.
fn field_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The bytes a file gets from a GetSecretValue answer.
fn render(answer: &Json, how: &Render) -> Result<Zeroizing<Vec<u8>>, String> {
    use base64::Engine as _;
    let text = answer["SecretString"].as_str();
    let whole = || -> Result<Zeroizing<Vec<u8>>, String> {
        match (text, answer["SecretBinary"].as_str()) {
            (Some(t), _) => Ok(Zeroizing::new(t.as_bytes().to_vec())),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(Zeroizing::new)
                .map_err(|_| "the server sent SecretBinary that is not base64".to_string()),
            _ => Err("the answer holds no value".into()),
        }
    };
    let fields = || -> Result<Json, String> {
        let t = text.ok_or("the secret is binary, so it has no fields")?;
        serde_json::from_str(t)
            .map_err(|_| "the secret's value is not JSON, so it has no fields".to_string())
    };
    match how {
        Render::Value(None) => whole(),
        Render::Value(Some(field)) => {
            let v = fields()?;
            let f = v
                .get(field)
                .ok_or_else(|| format!("the secret's JSON has no field {field:?}"))?;
            Ok(Zeroizing::new(field_text(f).into_bytes()))
        }
        Render::Template(template) => {
            let mut out = Zeroizing::new(String::new());
            let mut rest = template.as_str();
            let mut json: Option<Json> = None;
            while let Some(start) = rest.find("{{") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after
                    .find("}}")
                    .ok_or("the template has a {{ without its }}")?;
                let name = after[..end].trim();
                if name == "." {
                    let w = whole()?;
                    out.push_str(&String::from_utf8_lossy(&w));
                } else if let Some(field) = name.strip_prefix('.') {
                    if json.is_none() {
                        json = Some(fields()?);
                    }
                    let v = json
                        .as_ref()
                        .and_then(|j| j.get(field))
                        .ok_or_else(|| format!("the secret's JSON has no field {field:?}"))?;
                    out.push_str(&field_text(v));
                } else {
                    return Err(format!(
                        "the template's {{{{ {name} }}}} is not {{{{ . }}}} or {{{{ .field }}}}"
                    ));
                }
                rest = &after[end + 2..];
            }
            out.push_str(rest);
            Ok(Zeroizing::new(out.as_bytes().to_vec()))
        }
    }
}

/// Follows Kura.WatchSecrets: drops changed secrets' entries and rewrites their files.
async fn watch(agent: Arc<Agent>) {
    let mut cursor: Option<String> = None;
    let mut backoff = BACKOFF_FIRST;
    let mut was_down = false;
    loop {
        let mut body = json!({"WaitSeconds": WATCH_WAIT_SECONDS});
        if let Some(c) = &cursor {
            body["Cursor"] = json!(c);
        }
        // A server that vanished without closing the connection must not hold the watch.
        let limit = Duration::from_secs(WATCH_WAIT_SECONDS as u64 + 15);
        let answer = match tokio::time::timeout(
            limit,
            agent.client.call("Kura.WatchSecrets", &body),
        )
        .await
        {
            Ok(answer) => answer,
            Err(_) => Err(ClientError::Unreachable(format!(
                "no answer within {}s",
                limit.as_secs()
            ))),
        };
        match answer {
            Ok(answer) => {
                if was_down {
                    eprintln!("kura agent: watching the server again");
                    was_down = false;
                }
                backoff = BACKOFF_FIRST;
                if answer["Reset"].as_bool() == Some(true) {
                    eprintln!(
                        "kura agent: the server cannot say what changed since the last watch; dropping everything cached"
                    );
                    agent.drop_secret(None);
                    agent.write_files(None).await;
                }
                let changes = answer["Changes"].as_array().cloned().unwrap_or_default();
                for c in &changes {
                    let arn = c["ARN"].as_str().unwrap_or_default();
                    let name = c["Name"].as_str().unwrap_or_default();
                    agent.drop_secret(Some(arn));
                    agent.write_files(Some((arn, name))).await;
                }
                if let Some(c) = answer["Cursor"].as_str() {
                    cursor = Some(c.to_string());
                }
            }
            Err(e) => {
                if !was_down {
                    eprintln!(
                        "kura agent: cannot watch the server for changes ({}); answers stay cached for the TTL until the watch is back",
                        crate::cli::message(&e)
                    );
                    was_down = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Without the watch (or with it down), files are rewritten every TTL.
async fn refresh_files(agent: Arc<Agent>) {
    let every = agent.ttl.max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        agent.write_files(None).await;
    }
}

pub async fn run(args: AgentArgs, client: &ClientArgs) -> Result<(), ClientError> {
    let env = |name: &str| std::env::var(name).ok();
    let token = read_token(&env)?;
    let files = parse_files(&args)?;
    let agent = Arc::new(Agent {
        client: Client::connect(&client.connect_options())?,
        token,
        ttl: Duration::from_secs(args.ttl_seconds),
        size: args.cache_size as usize,
        cache: Mutex::new(Cache::default()),
        files,
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| ClientError::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ClientError::Other(format!("listener address: {e}")))?;
    // The first files before the watch starts: a change after this is seen by the watch.
    agent.write_files(None).await;
    if !args.no_watch {
        tokio::spawn(watch(agent.clone()));
    }
    if !agent.files.is_empty() {
        tokio::spawn(refresh_files(agent.clone()));
    }
    let served = agent.clone();
    let router = axum::Router::new().fallback(move |req: Request| {
        let agent = served.clone();
        async move { agent.serve(req).await }
    });
    eprintln!(
        "kura agent: serving on http://{addr} for {} (ttl {}s)",
        agent.client.settings.endpoint, args.ttl_seconds
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(stop_signal())
        .await
        .map_err(|e| ClientError::Other(format!("serving: {e}")))?;
    Ok(())
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_split_name_path_and_field() {
        let (n, p, f) = split_spec("prod/db=/run/app/pw:password", "--file", false).unwrap();
        assert_eq!(
            (n.as_str(), p.to_str().unwrap()),
            ("prod/db", "/run/app/pw")
        );
        assert_eq!(f.as_deref(), Some("password"));
        let (_, p, f) = split_spec("prod/db=/run/app/pw", "--file", false).unwrap();
        assert_eq!((p.to_str().unwrap(), f), ("/run/app/pw", None));
        assert!(split_spec("prod/db", "--file", false).is_err());
        let (_, p, t) = split_spec(
            "prod/db=/run/app/db.env:/etc/app/db.tmpl",
            "--template",
            true,
        )
        .unwrap();
        assert_eq!(p.to_str(), Some("/run/app/db.env"));
        assert_eq!(t.as_deref(), Some("/etc/app/db.tmpl"));
    }

    #[test]
    fn templates_fill_fields_and_refuse_unknown_ones() {
        let answer = json!({"SecretString": r#"{"user":"app","port":5432}"#});
        let t = Render::Template("u={{ .user }} p={{.port}}\n".into());
        assert_eq!(&render(&answer, &t).unwrap()[..], b"u=app p=5432\n");
        let t = Render::Template("{{ .nope }}".into());
        assert!(render(&answer, &t).unwrap_err().contains("nope"));
        let whole = render(&answer, &Render::Value(None)).unwrap();
        assert_eq!(&whole[..], br#"{"user":"app","port":5432}"#);
    }

    #[test]
    fn queries_are_read_as_aws_agent_reads_them() {
        let (id, (key, refresh)) = parse_query(
            "secretId=a%2Fb&versionStage=AWSPREVIOUS&refreshNow=TRUE",
            true,
        )
        .unwrap();
        assert_eq!(id.as_deref(), Some("a/b"));
        assert_eq!(key.version_stage.as_deref(), Some("AWSPREVIOUS"));
        assert!(refresh);
        assert_eq!(
            parse_query("secretId=a&abc=1", true).unwrap_err(),
            "unknown parameter: abc"
        );
        assert_eq!(
            parse_query("refreshNow=maybe", false).unwrap_err(),
            "invalid refreshNow value"
        );
    }
}
