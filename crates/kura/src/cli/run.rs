//! `kura run`: a command run with secrets in its environment. Signals are passed to it, its exit
//! code is returned; `--watch` restarts it when a secret moves; `--fallback` keeps an encrypted
//! copy for when kura cannot be reached at start.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value as Json, json};
use zeroize::Zeroizing;

use crate::cli::{ClientArgs, emit};
use crate::client::{Client, ClientError};

pub const RUN_HELP: &str = "Examples:
  kura run --secret prod/app-db -- ./server
  kura run --secret prod/app-db=DB_ --secret prod/api-key --as API_KEY -- ./server
  kura run --secret prod/app-db --watch --interval 10s --fallback /var/lib/app/secrets.enc -- ./server
  kura run --secret prod/app-db --dry-run

Variables: a secret whose value is a JSON object gives one variable per field: the field's
name upper-cased, each character other than A-Z, 0-9 and _ made _, after PREFIX_ when given
(`--secret NAME=PREFIX_`; a name holding `=` is written with a trailing `=`). A string field
is its text, null is empty, another value its JSON. Any other value gives one variable named
after the secret (the last part of its name, upper-cased) or --as VAR, which names the
variable of the --secret just before it and takes the whole value even when it is JSON.

Conflicts: two secrets (or two fields) giving the same variable are an error naming both,
unless --allow-override (the later --secret wins). A variable already in kura run's own
environment is replaced by the secret's, unless --no-override (the environment's stays).

Exit: the command's exit code; 128+N when a signal N ended it. SIGINT, SIGTERM, SIGHUP,
SIGQUIT, SIGUSR1 and SIGUSR2 sent to kura run are passed to the command. kura run's own
failures exit 1-5 as the other client commands (kura --help); 126 when the command cannot
be run, 127 when it is not found.

--watch asks DescribeSecret every --interval whether each secret's --stage moved to another
version; then it sends the command SIGTERM, waits --grace, sends SIGKILL if it is still
running, reads the values again and starts the command anew (one line on stderr each time).

--fallback FILE: after each successful read, the values are written to FILE (mode 0600),
encrypted with AES-256-GCM under a key derived from KURA_FALLBACK_PASSPHRASE (PBKDF2-HMAC-SHA256,
600,000 iterations, a random salt; the variable is not passed on to the command). When kura
cannot be reached at start (no answer; a refusal or an unknown secret is never covered up),
FILE's values are used and stderr says so and how old they are.";

/// Where `--fallback` finds its passphrase.
const PASSPHRASE_VAR: &str = "KURA_FALLBACK_PASSPHRASE";

#[derive(clap::Args)]
pub struct RunArgs {
    /// A secret for the environment: NAME (or ARN), or NAME=PREFIX_ to put PREFIX_ before the
    /// variables of its JSON fields. Repeat for several secrets.
    #[arg(long = "secret", value_name = "NAME[=PREFIX_]", required = true)]
    pub secrets: Vec<String>,
    /// The variable holding the whole value of the --secret given just before.
    #[arg(long = "as", value_name = "VAR")]
    pub as_vars: Vec<String>,
    /// The staging label of the version to read, for every secret.
    #[arg(long, value_name = "STAGE", default_value = "AWSCURRENT")]
    pub stage: String,
    /// When two secrets give the same variable, the later --secret wins (else an error).
    #[arg(long)]
    pub allow_override: bool,
    /// Keep a variable already in the environment instead of the secret's.
    #[arg(long)]
    pub no_override: bool,
    /// Print the names of the variables the command would get (never their values); run
    /// nothing.
    #[arg(long, conflicts_with_all = ["print_env", "watch"])]
    pub dry_run: bool,
    /// Print the variables WITH THEIR VALUES in this format instead of running a command
    /// (dotenv: NAME="value"; shell: export NAME='value'; json: one object).
    #[arg(long, value_enum, value_name = "FORMAT", conflicts_with = "watch")]
    pub print_env: Option<EnvFormat>,
    /// Restart the command when a secret's --stage moves to a new version.
    #[arg(long)]
    pub watch: bool,
    /// How often --watch asks (5s, 500ms, 1m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub interval: Duration,
    /// How long a restarted command has after SIGTERM before SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub grace: Duration,
    /// Keep an encrypted copy of the values here (key from KURA_FALLBACK_PASSPHRASE), used
    /// when kura cannot be reached at start.
    #[arg(long, value_name = "FILE")]
    pub fallback: Option<PathBuf>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, value_name = "COMMAND", required_unless_present_any = ["dry_run", "print_env"])]
    pub command: Vec<OsString>,
    /// Which --secret each --as belongs to (filled from the command line's order).
    #[arg(skip)]
    pub as_for: Vec<Option<String>>,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum EnvFormat {
    Dotenv,
    Shell,
    Json,
}

impl RunArgs {
    /// Gives each `--as` to the `--secret` before it on the command line (by clap's indices).
    pub fn pair_as(&mut self, secret_at: &[usize], as_at: &[usize]) -> Result<(), ClientError> {
        self.as_for = pair_as(secret_at, as_at, &self.as_vars)?;
        Ok(())
    }
}

fn pair_as(
    secret_at: &[usize],
    as_at: &[usize],
    vars: &[String],
) -> Result<Vec<Option<String>>, ClientError> {
    let mut out = vec![None; secret_at.len()];
    for (var, at) in vars.iter().zip(as_at) {
        let Some(i) = secret_at.iter().rposition(|s| s < at) else {
            return Err(usage(format!(
                "--as {var} comes before any --secret: write it after the --secret it names"
            )));
        };
        if out[i].is_some() {
            return Err(usage(format!(
                "two --as follow one --secret ({}): one variable per secret",
                var
            )));
        }
        if !valid_var(var) {
            return Err(usage(format!(
                "--as {var:?} is not a variable name (letters, digits and _, not starting with a digit)"
            )));
        }
        out[i] = Some(var.clone());
    }
    Ok(out)
}

fn usage(m: String) -> ClientError {
    ClientError::Usage(m)
}

/// `5s`, `500ms`, `2m`, `1h`, or a bare number of seconds; more than 0, at most a day.
pub fn duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (5s, 500ms, 1m)"))?;
    let secs = n * scale;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!("{text} is out of range: more than 0, at most 24h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// One `--secret` as asked.
#[derive(Clone)]
struct Spec {
    id: String,
    prefix: String,
    as_var: Option<String>,
}

fn valid_var(v: &str) -> bool {
    let mut chars = v.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `NAME`, or `NAME=PREFIX_` split at the last `=` (a name may hold `=`: `a=b=` is `a=b`).
fn parse_spec(text: &str, as_var: Option<String>) -> Result<Spec, ClientError> {
    let (id, prefix) = match text.rsplit_once('=') {
        Some((id, prefix)) if !id.is_empty() => (id, prefix),
        _ => (text, ""),
    };
    if id.is_empty() {
        return Err(usage("--secret needs a secret's name".into()));
    }
    if !prefix.is_empty() && !valid_var(prefix) {
        return Err(usage(format!(
            "the prefix {prefix:?} of --secret {id} is not the start of a variable name \
             (letters, digits and _); a secret name holding = is written with a trailing ="
        )));
    }
    if !prefix.is_empty() && as_var.is_some() {
        return Err(usage(format!(
            "--secret {id} has a prefix and --as: give one of them"
        )));
    }
    Ok(Spec {
        id: id.to_string(),
        prefix: prefix.to_string(),
        as_var,
    })
}

/// A value read from kura (or the fallback file).
struct Fetched {
    id: String,
    name: String,
    version: String,
    value: Zeroizing<Vec<u8>>,
    binary: bool,
}

/// `raw` upper-cased, every character other than A-Z, 0-9 and _ made _, after `prefix`.
fn var_name(prefix: &str, raw: &str) -> String {
    let mut out = String::from(prefix);
    out.extend(raw.chars().map(|c| {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

/// A variable and where it came from (a secret, and its field), for conflict messages.
struct Var {
    value: Zeroizing<Vec<u8>>,
    from: String,
    secret: usize,
}

/// The environment the secrets give, by variable name.
fn build_env(
    specs: &[Spec],
    fetched: &[Fetched],
    allow_override: bool,
) -> Result<BTreeMap<String, Var>, ClientError> {
    let mut env: BTreeMap<String, Var> = BTreeMap::new();
    for (i, (spec, f)) in specs.iter().zip(fetched).enumerate() {
        let mut mine: Vec<(String, Zeroizing<Vec<u8>>, String)> = Vec::new();
        let object = if spec.as_var.is_some() || f.binary {
            None
        } else {
            std::str::from_utf8(&f.value)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Map<String, Json>>(t).ok())
        };
        match object {
            Some(map) => {
                for (field, v) in map {
                    let text = Zeroizing::new(match v {
                        Json::String(s) => s,
                        Json::Null => String::new(),
                        other => other.to_string(),
                    });
                    let name = var_name(&spec.prefix, &field);
                    if name.is_empty() {
                        return Err(usage(format!(
                            "the field \"\" of secret {} gives no variable name: add a prefix (--secret {}=PREFIX_)",
                            spec.id, spec.id
                        )));
                    }
                    mine.push((
                        name,
                        Zeroizing::new(text.as_bytes().to_vec()),
                        format!("field {field:?} of secret {}", spec.id),
                    ));
                }
            }
            None => {
                let name = match &spec.as_var {
                    Some(v) => v.clone(),
                    None => var_name(&spec.prefix, f.name.rsplit('/').next().unwrap_or(&f.name)),
                };
                mine.push((name, f.value.clone(), format!("secret {}", spec.id)));
            }
        }
        for (name, value, from) in mine {
            if value.contains(&0) {
                return Err(usage(format!(
                    "{from} holds a NUL byte: it cannot be an environment variable ({name})"
                )));
            }
            if let Some(earlier) = env.get(&name) {
                // Two fields of one secret colliding is always an error: no order says which wins.
                if earlier.secret == i || !allow_override {
                    let hint = if earlier.secret == i {
                        ""
                    } else {
                        " (--allow-override: the later --secret wins)"
                    };
                    return Err(usage(format!(
                        "{} and {from} both give the variable {name}{hint}",
                        earlier.from
                    )));
                }
            }
            env.insert(
                name,
                Var {
                    value,
                    from,
                    secret: i,
                },
            );
        }
    }
    Ok(env)
}

/// Reads every secret's value at `stage`.
async fn fetch(client: &Client, specs: &[Spec], stage: &str) -> Result<Vec<Fetched>, ClientError> {
    let mut out = Vec::new();
    for spec in specs {
        let body = json!({"SecretId": spec.id, "VersionStage": stage});
        let mut answer = client
            .call("secretsmanager.GetSecretValue", &body)
            .await
            .map_err(|e| explain(client, e, &spec.id, stage))?;
        let (value, binary) = if let Some(text) = answer["SecretString"].as_str() {
            (Zeroizing::new(text.as_bytes().to_vec()), false)
        } else if let Some(b64) = answer["SecretBinary"].as_str() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| ClientError::Other(format!("the server sent bad base64: {e}")))?;
            (Zeroizing::new(bytes), true)
        } else {
            return Err(ClientError::Other(format!(
                "the server's answer for {} holds no value",
                spec.id
            )));
        };
        let name = answer["Name"].as_str().unwrap_or(&spec.id).to_string();
        let version = answer["VersionId"].as_str().unwrap_or_default().to_string();
        crate::cli::wipe(&mut answer);
        out.push(Fetched {
            id: spec.id.clone(),
            name,
            version,
            value,
            binary,
        });
    }
    Ok(out)
}

fn explain(client: &Client, e: ClientError, id: &str, stage: &str) -> ClientError {
    e.explained(|code, message| match code {
        "ResourceNotFoundException" => format!(
            "{} ({id}, {stage}); `kura secret list` shows the names, `kura secret versions {id}` the labels",
            message.trim_end_matches('.')
        ),
        c => client.general_hint(c, &message).unwrap_or(message),
    })
}

/// Runs `kura run`; the exit code to leave with.
pub async fn run(args: RunArgs, client_args: &ClientArgs) -> Result<u8, ClientError> {
    let mut specs = Vec::new();
    for (i, text) in args.secrets.iter().enumerate() {
        let as_var = args.as_for.get(i).cloned().flatten();
        specs.push(parse_spec(text, as_var)?);
    }
    let passphrase = match &args.fallback {
        None => None,
        Some(_) => match std::env::var(PASSPHRASE_VAR) {
            Ok(p) if !p.is_empty() => Some(Zeroizing::new(p)),
            _ => {
                return Err(usage(
                    "--fallback needs a passphrase in KURA_FALLBACK_PASSPHRASE".into(),
                ));
            }
        },
    };
    let client = Arc::new(Client::connect(&client_args.connect_options())?);
    let fetched = match fetch(&client, &specs, &args.stage).await {
        Ok(f) => {
            if let (Some(path), Some(pass)) = (&args.fallback, &passphrase) {
                fallback::write(path, pass, &args.stage, &f)?;
            }
            f
        }
        Err(ClientError::Unreachable(why)) => match (&args.fallback, &passphrase) {
            (Some(path), Some(pass)) => {
                let (f, written) = fallback::read(path, pass, &args.stage, &specs)?;
                eprintln!(
                    "kura run: {why}\nkura run: using the fallback {} written {} ago ({}); the values may be stale",
                    path.display(),
                    age(written),
                    written.format("%Y-%m-%d %H:%M:%S UTC")
                );
                f
            }
            _ => return Err(ClientError::Unreachable(why)),
        },
        Err(e) => return Err(e),
    };
    let env = build_env(&specs, &fetched, args.allow_override)?;
    let kept = |name: &str| args.no_override && std::env::var_os(name).is_some();

    if args.dry_run {
        let mut text = String::new();
        for name in env.keys() {
            if kept(name) {
                text.push_str(&format!("{name} (kept: already in the environment)\n"));
            } else {
                text.push_str(&format!("{name}\n"));
            }
        }
        emit(text.as_bytes())?;
        return Ok(0);
    }
    if let Some(format) = args.print_env {
        let chosen: Vec<(&String, &Var)> = env.iter().filter(|(n, _)| !kept(n)).collect();
        let text = print_env(format, &chosen)?;
        emit(text.as_bytes())?;
        return Ok(0);
    }

    let versions: Vec<String> = fetched.iter().map(|f| f.version.clone()).collect();
    let (changes_tx, mut changes) = tokio::sync::mpsc::channel::<String>(4);
    if args.watch {
        tokio::spawn(watch(
            client.clone(),
            specs.clone(),
            args.stage.clone(),
            versions,
            args.interval,
            changes_tx,
        ));
    } else {
        drop(changes_tx);
    }
    let mut signals = forward_signals()?;
    let mut env = env;
    loop {
        let vars: Vec<(String, OsString)> = env
            .iter()
            .filter(|(n, _)| !kept(n))
            .map(|(n, v)| (n.clone(), OsString::from_vec(v.value.to_vec())))
            .collect();
        let mut child = spawn(&args.command, vars)?;
        let pid = child.id().map(|p| p as i32);
        let changed = loop {
            tokio::select! {
                status = child.wait() => {
                    let status = status.map_err(|e| ClientError::Other(format!("waiting for the command: {e}")))?;
                    return Ok(exit_code(status));
                }
                Some(sig) = signals.recv() => {
                    if let Some(pid) = pid {
                        // SAFETY: kill(2) with our child's pid and a signal number; no memory involved.
                        unsafe { libc::kill(pid, sig) };
                    }
                }
                Some(name) = changes.recv() => break name,
            }
        };
        eprintln!(
            "kura run: {changed} moved to a new version at {}: restarting the command",
            args.stage
        );
        stop(&mut child, pid, args.grace).await?;
        match fetch(&client, &specs, &args.stage).await {
            Ok(f) => {
                if let (Some(path), Some(pass)) = (&args.fallback, &passphrase) {
                    fallback::write(path, pass, &args.stage, &f)?;
                }
                env = build_env(&specs, &f, args.allow_override)?;
            }
            Err(e) => eprintln!(
                "kura run: cannot read the new values ({}); restarting with the earlier ones",
                crate::cli::message(&e)
            ),
        }
    }
}

fn spawn(
    command: &[OsString],
    vars: Vec<(String, OsString)>,
) -> Result<tokio::process::Child, ClientError> {
    let Some((program, rest)) = command.split_first() else {
        return Err(usage("no command to run: give it after --".into()));
    };
    let mut cmd = tokio::process::Command::new(program);
    // The fallback's passphrase is kura run's, not the command's.
    cmd.args(rest).env_remove(PASSPHRASE_VAR).envs(vars);
    cmd.spawn().map_err(|e| {
        let shown = Path::new(program).display();
        match e.kind() {
            std::io::ErrorKind::NotFound => {
                ClientError::Child(127, format!("{shown}: command not found"))
            }
            std::io::ErrorKind::PermissionDenied => {
                ClientError::Child(126, format!("{shown}: permission denied"))
            }
            _ => ClientError::Child(126, format!("cannot run {shown}: {e}")),
        }
    })
}

/// SIGTERM, `grace`, then SIGKILL.
async fn stop(
    child: &mut tokio::process::Child,
    pid: Option<i32>,
    grace: Duration,
) -> Result<(), ClientError> {
    if let Some(pid) = pid {
        // SAFETY: kill(2) with our child's pid; no memory involved.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        eprintln!(
            "kura run: the command did not stop within {:?} of SIGTERM: SIGKILL",
            grace
        );
        let _ = child.start_kill();
    }
    child
        .wait()
        .await
        .map_err(|e| ClientError::Other(format!("waiting for the command: {e}")))?;
    Ok(())
}

/// The child's exit code as a shell gives it: 128+N for a death by signal N.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => (c & 0xff) as u8,
        (None, Some(s)) => (128 + s).min(255) as u8,
        _ => 1,
    }
}

/// The signals passed on to the child, as they arrive.
fn forward_signals() -> Result<tokio::sync::mpsc::Receiver<i32>, ClientError> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        let mut stream = signal(SignalKind::from_raw(sig))
            .map_err(|e| ClientError::Other(format!("cannot catch signal {sig}: {e}")))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(sig).await.is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}

/// Asks every `interval` which version each secret's `stage` is on; sends a secret's id when
/// it moved.
async fn watch(
    client: Arc<Client>,
    specs: Vec<Spec>,
    stage: String,
    mut known: Vec<String>,
    interval: Duration,
    changes: tokio::sync::mpsc::Sender<String>,
) {
    let mut failing = false;
    loop {
        tokio::time::sleep(interval).await;
        for (spec, known) in specs.iter().zip(known.iter_mut()) {
            let body = json!({"SecretId": spec.id});
            match client.call("secretsmanager.DescribeSecret", &body).await {
                Ok(d) => {
                    failing = false;
                    let now = d["VersionIdsToStages"]
                        .as_object()
                        .and_then(|m| {
                            m.iter().find(|(_, stages)| {
                                stages
                                    .as_array()
                                    .is_some_and(|s| s.iter().any(|x| x == stage.as_str()))
                            })
                        })
                        .map(|(id, _)| id.clone());
                    if let Some(now) = now
                        && now != *known
                    {
                        *known = now;
                        if changes.send(spec.id.clone()).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    // One line when checking starts failing, not one per interval.
                    if !failing {
                        eprintln!(
                            "kura run: cannot check {} for changes ({}); trying again every {:?}",
                            spec.id,
                            crate::cli::message(&e),
                            interval
                        );
                    }
                    failing = true;
                }
            }
        }
    }
}

fn print_env(
    format: EnvFormat,
    vars: &[(&String, &Var)],
) -> Result<Zeroizing<String>, ClientError> {
    let text_of = |name: &str, v: &Var| -> Result<Zeroizing<String>, ClientError> {
        std::str::from_utf8(&v.value)
            .map(|t| Zeroizing::new(t.to_string()))
            .map_err(|_| {
                usage(format!(
                    "{} ({name}) is not UTF-8 text: it cannot be printed",
                    v.from
                ))
            })
    };
    let mut out = Zeroizing::new(String::new());
    match format {
        EnvFormat::Json => {
            let mut map = serde_json::Map::new();
            for (name, v) in vars {
                map.insert((*name).clone(), Json::String(text_of(name, v)?.to_string()));
            }
            let mut obj = Json::Object(map);
            out.push_str(&serde_json::to_string_pretty(&obj).unwrap_or_default());
            out.push('\n');
            if let Some(m) = obj.as_object_mut() {
                for (_, v) in m.iter_mut() {
                    if let Json::String(s) = std::mem::take(v) {
                        drop(Zeroizing::new(s));
                    }
                }
            }
        }
        EnvFormat::Dotenv => {
            for (name, v) in vars {
                let text = text_of(name, v)?;
                out.push_str(name);
                out.push_str("=\"");
                for c in text.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '"' => out.push_str("\\\""),
                        '$' => out.push_str("\\$"),
                        '`' => out.push_str("\\`"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        c => out.push(c),
                    }
                }
                out.push_str("\"\n");
            }
        }
        EnvFormat::Shell => {
            for (name, v) in vars {
                let text = text_of(name, v)?;
                out.push_str("export ");
                out.push_str(name);
                out.push_str("='");
                out.push_str(&text.replace('\'', "'\\''"));
                out.push_str("'\n");
            }
        }
    }
    Ok(out)
}

/// How long ago `t` was, roughly (`3h 12m`).
fn age(t: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (chrono::Utc::now() - t).num_seconds().max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// The encrypted copy of the values (`--fallback`).
mod fallback {
    use super::*;
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
    use std::num::NonZeroU32;

    const FORMAT: &str = "kura-run-fallback/1";
    /// OWASP's figure for PBKDF2-HMAC-SHA256 (2023).
    const ITERATIONS: u32 = 600_000;

    fn b64() -> base64::engine::GeneralPurpose {
        base64::engine::general_purpose::STANDARD
    }

    fn key(pass: &str, salt: &[u8], iterations: u32) -> Result<LessSafeKey, ClientError> {
        let n = NonZeroU32::new(iterations).ok_or_else(|| {
            ClientError::Other("the fallback file is damaged (0 iterations)".into())
        })?;
        let mut k = Zeroizing::new([0u8; 32]);
        aws_lc_rs::pbkdf2::derive(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            n,
            salt,
            pass.as_bytes(),
            &mut k[..],
        );
        UnboundKey::new(&AES_256_GCM, &k[..])
            .map(LessSafeKey::new)
            .map_err(|_| ClientError::Other("cannot make the fallback key".into()))
    }

    /// What the tag covers besides the values: a changed date or count is caught.
    fn aad(iterations: u32, salt: &str, written: &str, stage: &str) -> String {
        format!("{FORMAT}\n{iterations}\n{salt}\n{written}\n{stage}")
    }

    pub fn write(
        path: &Path,
        pass: &str,
        stage: &str,
        fetched: &[Fetched],
    ) -> Result<(), ClientError> {
        let fail = |what: String| {
            ClientError::Other(format!(
                "cannot write the fallback {}: {what}",
                path.display()
            ))
        };
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| fail("no random bytes".into()))?;
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| fail("no random bytes".into()))?;
        let salt_text = b64().encode(salt);
        let written = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let values: Vec<Json> = fetched
            .iter()
            .map(|f| {
                json!({
                    "id": f.id,
                    "name": f.name,
                    "version": f.version,
                    "binary": f.binary,
                    "value": b64().encode(&f.value[..]),
                })
            })
            .collect();
        let mut plain = Zeroizing::new(serde_json::to_vec(&values).unwrap_or_default());
        let key = key(pass, &salt, ITERATIONS)?;
        let aad_text = aad(ITERATIONS, &salt_text, &written, stage);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad_text.as_bytes()),
            &mut *plain,
        )
        .map_err(|_| fail("encryption failed".into()))?;
        let doc = json!({
            "format": FORMAT,
            "kdf": "PBKDF2-HMAC-SHA256",
            "iterations": ITERATIONS,
            "salt": salt_text,
            "written": written,
            "stage": stage,
            "nonce": b64().encode(nonce),
            "ciphertext": b64().encode(&plain[..]),
        });
        crate::cli::write_private(path, doc.to_string().as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        Ok(())
    }

    pub fn read(
        path: &Path,
        pass: &str,
        stage: &str,
        specs: &[Spec],
    ) -> Result<(Vec<Fetched>, chrono::DateTime<chrono::Utc>), ClientError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ClientError::Unreachable(format!(
                "kura cannot be reached and the fallback {shown} cannot be read: {e}"
            ))
        })?;
        let damaged = |why: &str| {
            ClientError::Other(format!(
                "the fallback {shown} is damaged ({why}); kura cannot be reached"
            ))
        };
        let doc: Json = serde_json::from_str(&text).map_err(|_| damaged("not JSON"))?;
        if doc["format"] != FORMAT {
            return Err(damaged("not a kura run fallback file"));
        }
        let field = |k: &str| doc[k].as_str().ok_or_else(|| damaged(&format!("no {k}")));
        let iterations = doc["iterations"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| damaged("no iterations"))?;
        let salt_text = field("salt")?;
        let written_text = field("written")?;
        let file_stage = field("stage")?;
        if file_stage != stage {
            return Err(ClientError::Other(format!(
                "the fallback {shown} holds the values at {file_stage}, not {stage}; kura cannot be reached"
            )));
        }
        let salt = b64().decode(salt_text).map_err(|_| damaged("bad salt"))?;
        let nonce: [u8; NONCE_LEN] = b64()
            .decode(field("nonce")?)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| damaged("bad nonce"))?;
        let mut sealed = Zeroizing::new(
            b64()
                .decode(field("ciphertext")?)
                .map_err(|_| damaged("bad ciphertext"))?,
        );
        let written = chrono::DateTime::parse_from_rfc3339(written_text)
            .map_err(|_| damaged("bad date"))?
            .with_timezone(&chrono::Utc);
        let key = key(pass, &salt, iterations)?;
        let aad_text = aad(iterations, salt_text, written_text, stage);
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad_text.as_bytes()), &mut sealed[..])
            .map_err(|_| {
                ClientError::Other(format!(
                    "cannot open the fallback {shown}: KURA_FALLBACK_PASSPHRASE is not the one it was written with, or the file was changed; kura cannot be reached"
                ))
            })?;
        let values: Vec<Json> =
            serde_json::from_slice(plain).map_err(|_| damaged("bad contents"))?;
        let mut out = Vec::new();
        for spec in specs {
            let Some(v) = values.iter().find(|v| v["id"] == spec.id.as_str()) else {
                return Err(ClientError::Other(format!(
                    "the fallback {shown} holds no value of {}; kura cannot be reached",
                    spec.id
                )));
            };
            let value = b64()
                .decode(v["value"].as_str().unwrap_or_default())
                .map_err(|_| damaged("bad value"))?;
            out.push(Fetched {
                id: spec.id.clone(),
                name: v["name"].as_str().unwrap_or(&spec.id).to_string(),
                version: v["version"].as_str().unwrap_or_default().to_string(),
                value: Zeroizing::new(value),
                binary: v["binary"].as_bool().unwrap_or(false),
            });
        }
        for v in values {
            if let Json::String(s) = v["value"].clone() {
                drop(Zeroizing::new(s));
            }
        }
        Ok((out, written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(name: &str, value: &str) -> Fetched {
        Fetched {
            id: name.into(),
            name: name.into(),
            version: "v1".into(),
            value: Zeroizing::new(value.as_bytes().to_vec()),
            binary: false,
        }
    }

    fn spec(text: &str) -> Spec {
        parse_spec(text, None).unwrap()
    }

    fn names(env: &BTreeMap<String, Var>) -> Vec<&str> {
        env.keys().map(String::as_str).collect()
    }

    #[test]
    fn fields_become_upper_cased_prefixed_variables() {
        let env = build_env(
            &[spec("prod/app-db=DB_")],
            &[fetched(
                "prod/app-db",
                r#"{"user-name": "app", "port": 5432, "x": null}"#,
            )],
            false,
        )
        .unwrap();
        assert_eq!(names(&env), ["DB_PORT", "DB_USER_NAME", "DB_X"]);
        assert_eq!(&env["DB_PORT"].value[..], b"5432");
        assert_eq!(&env["DB_X"].value[..], b"");
    }

    #[test]
    fn a_plain_value_is_named_after_the_secret_or_as() {
        let env = build_env(
            &[spec("prod/api-key")],
            &[fetched("prod/api-key", "k")],
            false,
        )
        .unwrap();
        assert_eq!(names(&env), ["API_KEY"]);
        let s = parse_spec("prod/app-db", Some("DSN".into())).unwrap();
        let env = build_env(&[s], &[fetched("prod/app-db", r#"{"a": 1}"#)], false).unwrap();
        assert_eq!(names(&env), ["DSN"]);
        assert_eq!(&env["DSN"].value[..], br#"{"a": 1}"#);
    }

    #[test]
    fn conflicts_name_both_sources() {
        let specs = [spec("a"), spec("b")];
        let values = [
            fetched("a", r#"{"password": "1"}"#),
            fetched("b", r#"{"PASSWORD": "2"}"#),
        ];
        let Err(ClientError::Usage(m)) = build_env(&specs, &values, false) else {
            panic!("no conflict");
        };
        assert!(
            m.contains("secret a") && m.contains("secret b") && m.contains("PASSWORD"),
            "{m}"
        );
        let env = build_env(&specs, &values, true).unwrap();
        assert_eq!(&env["PASSWORD"].value[..], b"2");
        // Two fields of one secret: an error even with --allow-override.
        let one = [fetched("a", r#"{"db-host": "1", "db_host": "2"}"#)];
        assert!(build_env(&[spec("a")], &one, true).is_err());
    }

    #[test]
    fn specs_split_at_the_last_equals() {
        let s = spec("a=b=");
        assert_eq!((s.id.as_str(), s.prefix.as_str()), ("a=b", ""));
        let s = spec("prod/db=DB_");
        assert_eq!((s.id.as_str(), s.prefix.as_str()), ("prod/db", "DB_"));
        assert!(parse_spec("x=no-good", None).is_err());
    }

    #[test]
    fn as_goes_to_the_secret_before_it() {
        let vars = vec!["A".to_string()];
        assert_eq!(
            pair_as(&[1, 5], &[3], &vars).unwrap(),
            [Some("A".into()), None]
        );
        assert!(pair_as(&[5], &[3], &vars).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(duration("3").unwrap(), Duration::from_secs(3));
        assert!(duration("0s").is_err() && duration("x").is_err());
    }

    #[test]
    fn shell_and_dotenv_quote() {
        let v = Var {
            value: Zeroizing::new(b"it's \"$x\"\n".to_vec()),
            from: "secret a".into(),
            secret: 0,
        };
        let name = "A".to_string();
        let shell = print_env(EnvFormat::Shell, &[(&name, &v)]).unwrap();
        assert_eq!(shell.as_str(), "export A='it'\\''s \"$x\"\n'\n");
        let dotenv = print_env(EnvFormat::Dotenv, &[(&name, &v)]).unwrap();
        assert_eq!(dotenv.as_str(), "A=\"it's \\\"\\$x\\\"\\n\"\n");
    }

    #[test]
    fn fallback_round_trip_and_wrong_passphrase() {
        let dir = std::env::temp_dir().join(format!("kura-run-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fb");
        fallback::write(&path, "pass", "AWSCURRENT", &[fetched("a", "v")]).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let (f, _) = fallback::read(&path, "pass", "AWSCURRENT", &[spec("a")]).unwrap();
        assert_eq!(&f[0].value[..], b"v");
        let Err(ClientError::Other(m)) = fallback::read(&path, "wrong", "AWSCURRENT", &[spec("a")])
        else {
            panic!("opened with a wrong passphrase");
        };
        assert!(m.contains("KURA_FALLBACK_PASSPHRASE"), "{m}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
