//! Running one rotation step with a function: built-in steps in Rust, a `command` as a child
//! process with short-lived credentials, a `webhook` as a signed POST.

use std::process::Stdio;
use std::time::Duration;

use kura_core::labels;
use kura_core::model::{RotationStep, SecretRecord, ValueKind};
use kura_core::{Error, Result, Timestamp};
use kura_crypto::generate_password;
use kura_crypto::mac::MacKey;
use kura_store::VersionSelector;
use tokio::io::AsyncWriteExt;
use zeroize::Zeroizing;

use super::functions::{FunctionKind, RotationFunction, principal_user};
use crate::service::access_keys::NewAccessKey;
use crate::service::password::password_spec;
use crate::service::types::{GetRandomPasswordRequest, UpdateSecretVersionStageRequest};
use crate::service::versions::ValueWrite;
use crate::service::{Caller, Plain, Service};
use kura_rotation::redact;

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`, as kura signs webhooks and events.
pub(crate) fn signature_header(secret: &[u8], now: Timestamp, body: &[u8]) -> String {
    let t = now.0.div_euclid(1000);
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    format!(
        "t={t},v1={}",
        hex::encode(MacKey::new(secret).sign(&signed))
    )
}

/// A failed step: its text, and the part of it kura wrote itself from the function's
/// definition (no value in it), which is all that is kept when the text cannot be checked.
pub(super) struct StepFailure {
    pub(super) text: String,
    pub(super) safe: String,
    /// Other secrets the function read during the step, redacted from the text too.
    pub(super) also_read: Vec<i64>,
}

struct StopWatching<'a>(&'a super::RotationRuntime, &'a str);

impl Drop for StopWatching<'_> {
    fn drop(&mut self) {
        self.0.take_reads(self.1);
    }
}

impl StepFailure {
    /// A message kura wrote itself, from nothing but names, versions and settings.
    pub(super) fn own(msg: impl Into<String>) -> Self {
        let text = msg.into();
        StepFailure {
            safe: text.clone(),
            text,
            also_read: Vec::new(),
        }
    }

    /// Whatever `function` reported, which may quote the secret.
    fn of(function: &RotationFunction, text: String) -> Self {
        StepFailure {
            text,
            safe: format!("{} failed", function.name),
            also_read: Vec::new(),
        }
    }
}

impl Service {
    /// Runs `step` with `function`; `Err` is redacted before it is kept or shown.
    pub(super) async fn run_step(
        &self,
        s: &SecretRecord,
        function: &RotationFunction,
        step: RotationStep,
        token: &str,
    ) -> std::result::Result<(), StepFailure> {
        let work = async {
            match &function.kind {
                FunctionKind::Password(rules) => self
                    .password_step(s, rules, step, token)
                    .await
                    // kura's own errors, which never quote a value: shown even unchecked.
                    .map_err(|e| StepFailure::own(e.message)),
                FunctionKind::Command { argv, env } => {
                    self.command_step(s, function, argv, env, step, token).await
                }
                FunctionKind::Webhook { url, secret } => self
                    .webhook_step(s, url, secret, step, token)
                    .await
                    .map_err(|e| StepFailure::of(function, e)),
                FunctionKind::Managed(m) => self
                    .managed_step(s, *m, step, token)
                    .await
                    .map_err(|e| StepFailure::of(function, e)),
            }
        };
        match tokio::time::timeout(function.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(StepFailure::own(format!(
                "{} did not finish within {} s",
                function.name,
                function.timeout.as_secs()
            ))),
        }
    }

    fn event_json(&self, s: &SecretRecord, step: RotationStep, token: &str) -> String {
        let rotation_token = hex::encode(
            self.token_key
                .sign(format!("rotation\n{}\n{token}", s.arn).as_bytes()),
        );
        serde_json::json!({
            "Step": step.as_str(),
            "SecretId": s.arn,
            "ClientRequestToken": token,
            "RotationToken": rotation_token,
        })
        .to_string()
    }

    /// `kura-password`: a new password in createSecret, nothing to set or test elsewhere,
    /// AWSCURRENT moved in finishSecret. Every step is safe to repeat.
    async fn password_step(
        &self,
        s: &SecretRecord,
        rules: &GetRandomPasswordRequest,
        step: RotationStep,
        token: &str,
    ) -> Result<()> {
        let pending = self
            .store
            .read_version(s.id, VersionSelector::Id(token))
            .await?;
        let pending_has_value = pending.as_ref().is_some_and(|v| v.value.is_some());
        match step {
            RotationStep::CreateSecret if pending_has_value => Ok(()),
            RotationStep::CreateSecret => {
                let password = generate_password(&password_spec(rules)?)?;
                let text = match self
                    .version_plain(s, VersionSelector::Stage(labels::CURRENT))
                    .await?
                {
                    Some(p) if p.kind() == ValueKind::Binary => {
                        return Err(Error::invalid_request(
                            "kura-password rotates text secrets; this secret's value is binary",
                        ));
                    }
                    Some(p) => match serde_json::from_slice::<serde_json::Value>(p.bytes()) {
                        Ok(serde_json::Value::Object(mut map)) => {
                            if !map.get("password").is_some_and(|v| v.is_string()) {
                                return Err(Error::invalid_request(
                                    "the secret is a JSON object without a string \"password\" field for kura-password to replace",
                                ));
                            }
                            map.insert(
                                "password".into(),
                                serde_json::Value::String(password.to_string()),
                            );
                            Zeroizing::new(serde_json::Value::Object(map).to_string())
                        }
                        _ => password,
                    },
                    None => password,
                };
                self.store_pending_text(s, token, text).await
            }
            RotationStep::SetSecret => Ok(()),
            RotationStep::TestSecret if pending_has_value => Ok(()),
            RotationStep::TestSecret => Err(Error::invalid_request(format!(
                "version {token} has no value to test"
            ))),
            RotationStep::FinishSecret => self.move_current_to(s, token).await,
        }
    }

    /// A version's value, opened; `None` when there is no such version or it has no value.
    pub(super) async fn version_plain(
        &self,
        s: &SecretRecord,
        which: VersionSelector<'_>,
    ) -> Result<Option<Plain>> {
        let Some(v) = self.store.read_version(s.id, which).await? else {
            return Ok(None);
        };
        v.value
            .as_ref()
            .map(|sealed| self.open(&s.arn, &v.meta.version_id, sealed))
            .transpose()
    }

    /// createSecret's write: `text` becomes the value of version `token`, labelled AWSPENDING
    /// (filling the placeholder RotateSecret made).
    pub(super) async fn store_pending_text(
        &self,
        s: &SecretRecord,
        token: &str,
        text: Zeroizing<String>,
    ) -> Result<()> {
        self.write_value(
            s,
            ValueWrite {
                token: Some(token.to_string()),
                plain: Plain::text(&text),
                stages: Some(vec![labels::PENDING.to_string()]),
                description: None,
                kms_key_id: None,
            },
            &kura_store::NO_AUDIT,
        )
        .await
        .map(|_| ())
    }

    /// finishSecret's label move: AWSCURRENT to `token` (AWSPREVIOUS follows). A no-op when
    /// it is there already, so the step can run again.
    pub(super) async fn move_current_to(&self, s: &SecretRecord, token: &str) -> Result<()> {
        let (_, stages) = self.store.versions(s.id).await?;
        let current = stages.get(labels::CURRENT).cloned();
        if current.as_deref() == Some(token) {
            return Ok(());
        }
        self.update_secret_version_stage(
            &Caller::system(&self.account),
            UpdateSecretVersionStageRequest {
                secret_id: s.arn.clone(),
                version_stage: labels::CURRENT.to_string(),
                remove_from_version_id: current,
                move_to_version_id: Some(token.to_string()),
            },
        )
        .await
        .map(|_| ())
    }

    /// A key for one secret, valid until `until` (on the service clock), of `function`'s own
    /// principal.
    async fn issue_rotation_key(
        &self,
        function: &str,
        secret_id: i64,
        until: Timestamp,
    ) -> Result<(String, Zeroizing<String>)> {
        let user = principal_user(function);
        if !self.store.user_exists(&user).await? {
            match self
                .store
                .create_user(
                    &kura_store::UserRecord {
                        name: user.clone(),
                        arn: self.function_principal_arn(function),
                        user_id: crate::service::new_user_id()?,
                        created_at: self.clock.now(),
                        tags: Vec::new(),
                    },
                    &kura_store::NO_AUDIT,
                )
                .await
            {
                Ok(()) => {}
                Err(e) if e.code == kura_core::ErrorCode::ResourceExists => {}
                Err(e) => return Err(e),
            }
        }
        self.create_access_key(
            NewAccessKey {
                user_name: &user,
                prefix: "ASIA",
                expires_at: Some(until),
                scope_secret_id: Some(secret_id),
                imported: None,
                max_per_user: None,
            },
            &kura_store::NO_AUDIT,
        )
        .await
    }

    async fn command_step(
        &self,
        s: &SecretRecord,
        function: &RotationFunction,
        argv: &[String],
        env: &std::collections::BTreeMap<String, String>,
        step: RotationStep,
        token: &str,
    ) -> std::result::Result<(), StepFailure> {
        let Some(endpoint) = self.rotation.endpoint() else {
            return Err(StepFailure::own("kura's own endpoint is not known yet"));
        };
        let Some(program) = argv.first() else {
            return Err(StepFailure::own("the function has no command"));
        };
        let until = self
            .clock
            .now()
            .plus_ms(function.timeout.as_millis() as i64 + 300_000);
        let (key_id, key_secret) = self
            .issue_rotation_key(&function.name, s.id, until)
            .await
            .map_err(|e| {
                StepFailure::of(function, format!("cannot issue credentials: {}", e.message))
            })?;
        let event = self.event_json(s, step, token);
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&argv[1..])
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("LANG", "C.UTF-8")
            .envs(env)
            .env("KURA_ROTATION_EVENT", &event)
            .env("SECRETS_MANAGER_ENDPOINT", endpoint)
            .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
            .env("AWS_REGION", &self.region)
            .env("AWS_DEFAULT_REGION", &self.region)
            .env("AWS_ACCESS_KEY_ID", &key_id)
            .env("AWS_SECRET_ACCESS_KEY", key_secret.as_str())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        self.rotation.watch_reads(&key_id);
        // Also stops watching when a timeout drops this future.
        let _watching = StopWatching(&self.rotation, &key_id);
        let result = async {
            let mut child = cmd
                .spawn()
                .map_err(|e| StepFailure::of(function, format!("cannot start {program}: {e}")))?;
            if let Some(mut stdin) = child.stdin.take() {
                // A function that ignores stdin may exit first; that is not an error.
                let _ = stdin.write_all(event.as_bytes()).await;
                drop(stdin);
            }
            let stderr = child.stderr.take();
            let (tail, status) = tokio::join!(stderr_tail(stderr), child.wait());
            let status = status
                .map_err(|e| StepFailure::of(function, format!("waiting for {program}: {e}")))?;
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
            let safe = format!("{} exited with {status}", function.name);
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
        .await;
        if let Err(e) = self
            .store
            .delete_access_key(&key_id, &kura_store::NO_AUDIT)
            .await
        {
            tracing::warn!(detail = ?e, "cannot delete a rotation credential; it expires anyway");
        }
        let also_read = self.rotation.take_reads(&key_id);
        result.map_err(|f| StepFailure { also_read, ..f })
    }

    async fn webhook_step(
        &self,
        s: &SecretRecord,
        url: &str,
        secret: &[u8],
        step: RotationStep,
        token: &str,
    ) -> std::result::Result<(), String> {
        let body = self.event_json(s, step, token);
        self.post_signed(url, secret, "rotation.step", body)
            .await
            .map_err(|e| format!("{e} at {}", step.as_str()))
    }

    /// POSTs a signed JSON body; Ok on any 2xx.
    pub(crate) async fn post_signed(
        &self,
        url: &str,
        secret: &[u8],
        kind: &str,
        body: String,
    ) -> std::result::Result<(), String> {
        let sig = signature_header(secret, self.clock.now(), body.as_bytes());
        let resp = self
            .rotation
            .http()
            .post(url)
            .timeout(Duration::from_secs(30))
            .header("content-type", "application/json")
            .header("kura-event", kind)
            .header("kura-signature", sig)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("webhook {url} unreachable ({})", error_kind(&e)))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "webhook {url} answered HTTP {}",
                resp.status().as_u16()
            ))
        }
    }

    /// `f`'s text without any value of the secret (see [`redact::redact`]); when that cannot
    /// be checked, only the part kura wrote itself (the exit status), saying why.
    pub(super) async fn redacted_failure(&self, s: &SecretRecord, f: &StepFailure) -> String {
        let withheld = |why: &str| format!("{} (error details withheld: {why})", f.safe);
        let mut values = match self.all_values(s).await {
            Ok(v) => v,
            Err(why) => return withheld(why),
        };
        for id in &f.also_read {
            let other = match self.store.secret_by_id(*id).await {
                Ok(Some(o)) => self.all_values(&o).await,
                Ok(None) => Ok(Vec::new()), // destroyed meanwhile: nothing left to leak
                Err(_) => Err("a secret the function read could not be read to check it"),
            };
            match other {
                Ok(v) => values.extend(v),
                Err(why) => return withheld(why),
            }
        }
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        match redact::redact(&f.text, &refs) {
            Ok(text) => text,
            Err(why) => match redact::redact(&f.safe, &refs) {
                Ok(safe) => format!("{safe} (error details withheld: {why})"),
                Err(_) => withheld(why),
            },
        }
    }

    /// Every value of every version of `s`: what a function may have read and printed.
    async fn all_values(
        &self,
        s: &SecretRecord,
    ) -> std::result::Result<Vec<Zeroizing<Vec<u8>>>, &'static str> {
        const UNREADABLE: &str = "the secret's values could not be read to check it";
        let (versions, _) = self.store.versions(s.id).await.map_err(|_| UNREADABLE)?;
        // A rotation's placeholder may stand beside the 100 kept versions; more is not normal.
        if versions.len() > labels::MAX_VERSIONS + 2 {
            return Err("the secret has too many versions to check it");
        }
        let mut out = Vec::new();
        for v in versions.iter().filter(|v| v.has_value) {
            let stored = self
                .store
                .read_version(s.id, VersionSelector::Id(&v.version_id))
                .await
                .map_err(|_| UNREADABLE)?;
            // Deleted meanwhile: nothing left to leak.
            let Some(sealed) = stored.as_ref().and_then(|st| st.value.as_ref()) else {
                continue;
            };
            let plain = self
                .open(&s.arn, &v.version_id, sealed)
                .map_err(|_| UNREADABLE)?;
            out.push(plain.into_bytes());
        }
        Ok(out)
    }
}

/// What went wrong with a request, without reqwest's full text (which repeats the URL).
fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
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
