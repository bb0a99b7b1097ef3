//! `command` functions: a child process per step, with a cleared environment plus the event and
//! a short-lived access key of the function's own principal, so AWS's rotation templates run
//! unmodified against kura.

use std::collections::BTreeMap;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::function::{
    RotationFunction, Settings, StepContext, StepFailure, StepFuture, StepRequest,
};

/// A step key outlives the step's timeout by this much, so a slow exit is still covered.
const KEY_MARGIN_MS: i64 = 300_000;

pub struct CommandFunction {
    settings: Settings,
    argv: Vec<String>,
    /// Kept sealed in the store; its values may be credentials for the function.
    env: BTreeMap<String, String>,
}

impl CommandFunction {
    pub fn new(settings: Settings, argv: Vec<String>, env: BTreeMap<String, String>) -> Self {
        CommandFunction {
            settings,
            argv,
            env,
        }
    }

    async fn step(&self, ctx: &dyn StepContext, req: StepRequest<'_>) -> Result<(), StepFailure> {
        let name = &self.settings.name;
        let Some(endpoint) = ctx.endpoint() else {
            return Err(StepFailure::own("kura's own endpoint is not known yet"));
        };
        let until = ctx
            .now()
            .plus_ms(self.settings.timeout.as_millis() as i64 + KEY_MARGIN_MS);
        let key = ctx.issue_step_key(until).await.map_err(|e| {
            StepFailure::of(name, format!("cannot issue credentials: {}", e.message))
        })?;
        let event = ctx.event_json(req.step);
        let env = [
            ("KURA_ROTATION_EVENT", event.as_str()),
            ("SECRETS_MANAGER_ENDPOINT", endpoint),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint),
            ("AWS_ACCESS_KEY_ID", key.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", key.secret_access_key.as_str()),
        ];
        let result = self.run(ctx, &event, &env).await;
        let also_read = ctx.revoke_step_key(&key.access_key_id).await;
        result.map_err(|f| StepFailure { also_read, ..f })
    }

    /// Runs the command with `input` on its stdin and `extra` beside its own environment;
    /// Ok on exit status 0.
    async fn run(
        &self,
        ctx: &dyn StepContext,
        input: &str,
        extra: &[(&str, &str)],
    ) -> Result<(), StepFailure> {
        let name = &self.settings.name;
        let Some(program) = self.argv.first() else {
            return Err(StepFailure::own("the function has no command"));
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&self.argv[1..])
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("LANG", "C.UTF-8")
            .envs(self.env.iter())
            .envs(extra.iter().copied())
            .env("AWS_REGION", ctx.region())
            .env("AWS_DEFAULT_REGION", ctx.region())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| StepFailure::of(name, format!("cannot start {program}: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A function that ignores stdin may exit first; that is not an error.
            let _ = stdin.write_all(input.as_bytes()).await;
            drop(stdin);
        }
        let stderr = child.stderr.take();
        let (tail, status) = tokio::join!(stderr_tail(stderr), child.wait());
        let status =
            status.map_err(|e| StepFailure::of(name, format!("waiting for {program}: {e}")))?;
        if status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&tail);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        let status = status
            .code()
            .map(|c| format!("status {c}"))
            .unwrap_or_else(|| "a signal".into());
        let safe = format!("{name} exited with {status}");
        Err(StepFailure {
            text: if last.is_empty() {
                safe.clone()
            } else {
                format!("{safe}: {last}")
            },
            safe,
            also_read: Vec::new(),
        })
    }
}

impl RotationFunction for CommandFunction {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn run_step<'a>(
        &'a self,
        ctx: &'a dyn StepContext,
        req: StepRequest<'a>,
    ) -> StepFuture<'a, Result<(), StepFailure>> {
        Box::pin(self.step(ctx, req))
    }

    /// No step key: what the command is told is all it needs (a DNS record to set).
    fn call<'a>(
        &'a self,
        ctx: &'a dyn StepContext,
        body: String,
    ) -> Option<StepFuture<'a, Result<(), StepFailure>>> {
        Some(Box::pin(async move { self.run(ctx, &body, &[]).await }))
    }
}

/// The last [`STDERR_TAIL`] bytes a function wrote to stderr: all of it is read (a child
/// blocked on a full pipe would never exit), only the end is kept, so a chatty or hostile
/// function cannot fill kura's memory.
const STDERR_TAIL: usize = 64 * 1024;

async fn stderr_tail(stderr: Option<tokio::process::ChildStderr>) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let Some(mut stderr) = stderr else {
        return Vec::new();
    };
    let mut tail = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
        }
    }
    if tail.len() > STDERR_TAIL {
        tail.drain(..tail.len() - STDERR_TAIL);
    }
    tail
}
