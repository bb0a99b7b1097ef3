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

use super::functions::{FunctionKind, RotationFunction};
use crate::service::access_keys::NewAccessKey;
use crate::service::password::password_spec;
use crate::service::versions::ValueWrite;
use crate::service::{Plain, Principal, Service};
use crate::wire::{GetRandomPasswordRequest, UpdateSecretVersionStageRequest};

/// The user that owns the short-lived keys handed to `command` functions.
const ROTATION_USER: &str = "kura-rotation";
/// Shortest secret fragment redacted from error messages (shorter ones are too common).
const MIN_REDACT_LEN: usize = 6;

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

impl Service {
    /// Runs `step` with `function`; `Err` is a message for LastError (redacted later).
    pub(super) async fn run_step(
        &self,
        s: &SecretRecord,
        function: &RotationFunction,
        step: RotationStep,
        token: &str,
    ) -> std::result::Result<(), String> {
        let work = async {
            match &function.kind {
                FunctionKind::Password(rules) => self
                    .password_step(s, rules, step, token)
                    .await
                    .map_err(|e| e.message),
                FunctionKind::Command { argv, env } => {
                    self.command_step(s, function, argv, env, step, token).await
                }
                FunctionKind::Webhook { url, secret } => {
                    self.webhook_step(s, url, secret, step, token).await
                }
                FunctionKind::Managed(m) => self.managed_step(s, *m, step, token).await,
            }
        };
        match tokio::time::timeout(function.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{} did not finish within {} s",
                function.name,
                function.timeout.as_secs()
            )),
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
                    Some(p) if p.kind == ValueKind::Binary => {
                        return Err(Error::invalid_request(
                            "kura-password rotates text secrets; this secret's value is binary",
                        ));
                    }
                    Some(p) => match serde_json::from_slice::<serde_json::Value>(&p.bytes) {
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
                plain: Plain {
                    kind: ValueKind::String,
                    bytes: Zeroizing::new(text.as_bytes().to_vec()),
                },
                stages: Some(vec![labels::PENDING.to_string()]),
                description: None,
                kms_key_id: None,
            },
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
            &Principal::system(&self.account),
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

    /// A key for one secret, valid until `until` (on the service clock).
    async fn issue_rotation_key(
        &self,
        secret_id: i64,
        until: Timestamp,
    ) -> Result<(String, Zeroizing<String>)> {
        if !self.store.user_exists(ROTATION_USER).await? {
            let arn = format!("arn:aws:iam::{}:user/{ROTATION_USER}", self.account);
            match self
                .store
                .create_user(&kura_store::UserRecord {
                    name: ROTATION_USER.into(),
                    arn,
                    user_id: crate::service::new_user_id()?,
                    created_at: self.clock.now(),
                    tags: Vec::new(),
                })
                .await
            {
                Ok(()) => {}
                Err(e) if e.code == kura_core::ErrorCode::ResourceExists => {}
                Err(e) => return Err(e),
            }
        }
        self.create_access_key(NewAccessKey {
            user_name: ROTATION_USER,
            prefix: "ASIA",
            expires_at: Some(until),
            scope_secret_id: Some(secret_id),
            imported: None,
            max_per_user: None,
        })
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
    ) -> std::result::Result<(), String> {
        let Some(endpoint) = self.rotation.endpoint() else {
            return Err("kura's own endpoint is not known yet".into());
        };
        let Some(program) = argv.first() else {
            return Err("the function has no command".into());
        };
        let until = self
            .clock
            .now()
            .plus_ms(function.timeout.as_millis() as i64 + 300_000);
        let (key_id, key_secret) = self
            .issue_rotation_key(s.id, until)
            .await
            .map_err(|e| format!("cannot issue credentials: {}", e.message))?;
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
        let result = async {
            let mut child = cmd
                .spawn()
                .map_err(|e| format!("cannot start {program}: {e}"))?;
            if let Some(mut stdin) = child.stdin.take() {
                // A function that ignores stdin may exit first; that is not an error.
                let _ = stdin.write_all(event.as_bytes()).await;
                drop(stdin);
            }
            let out = child
                .wait_with_output()
                .await
                .map_err(|e| format!("waiting for {program}: {e}"))?;
            if out.status.success() {
                return Ok(());
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            let status = out
                .status
                .code()
                .map(|c| format!("status {c}"))
                .unwrap_or_else(|| "a signal".into());
            Err(if last.is_empty() {
                format!("{} exited with {status}", function.name)
            } else {
                format!("{} exited with {status}: {last}", function.name)
            })
        }
        .await;
        if let Err(e) = self.store.delete_access_key(&key_id).await {
            tracing::warn!(detail = ?e, "cannot delete a rotation credential; it expires anyway");
        }
        result
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

    /// Removes any value this secret holds (or a JSON field of one) from `msg`, so a function
    /// that prints a password in its error does not leak it into LastError.
    /// Only labelled versions (AWSCURRENT, AWSPENDING, AWSPREVIOUS, custom labels) are read:
    /// those are the values a function works with, and a secret may hold 100 old ones.
    pub(super) async fn redact(&self, s: &SecretRecord, msg: &str) -> String {
        let mut out = msg.to_string();
        let Ok((versions, stages)) = self.store.versions(s.id).await else {
            return "error details withheld (the secret's versions could not be read to redact them)".into();
        };
        let labelled = |id: &str| stages.values().any(|v| v == id);
        for v in versions
            .iter()
            .filter(|v| v.has_value && labelled(&v.version_id))
        {
            let Ok(Some(stored)) = self
                .store
                .read_version(s.id, VersionSelector::Id(&v.version_id))
                .await
            else {
                continue;
            };
            let Some(sealed) = &stored.value else {
                continue;
            };
            let Ok(plain) = self.open(&s.arn, &v.version_id, sealed) else {
                continue;
            };
            let text = String::from_utf8_lossy(&plain.bytes).to_string();
            let text = Zeroizing::new(text);
            let mut fragments: Vec<String> = vec![text.to_string()];
            // Fields such as host or username stay: errors should name the system they concern.
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&text) {
                fragments.extend(
                    map.iter()
                        .filter(|(k, _)| is_sensitive_field(k))
                        .filter_map(|(_, v)| v.as_str().map(str::to_string)),
                );
            }
            for f in fragments.iter().filter(|f| f.len() >= MIN_REDACT_LEN) {
                if out.contains(f.as_str()) {
                    out = out.replace(f.as_str(), "[redacted]");
                }
            }
        }
        out
    }
}

fn is_sensitive_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["password", "secret", "private", "token", "passphrase"]
        .iter()
        .any(|w| n.contains(w))
        || n == "key"
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
