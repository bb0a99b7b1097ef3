//! The trait every kind of rotation function implements, and what a function may ask of kura
//! while it runs a step.
//!
//! The engine keeps everything that is about the *cycle*: choosing the step, the lease, the
//! timeout, retries and backoff ([`crate::run`]), auditing each step, and redacting a failure's
//! text ([`crate::redact`]) before it is kept. A function only does the *step*, and reaches
//! kura solely through a [`StepContext`] scoped to the secret and cycle being rotated, so it
//! cannot touch another secret's labels.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use kura_core::model::RotationStep;
use kura_core::names::SecretRef;
use kura_core::{Result, Timestamp};
use kura_crypto::Plain;
use zeroize::Zeroizing;

/// A boxed future, so functions of different kinds can sit behind one `dyn RotationFunction`
/// and kura-server can implement the `dyn StepContext` they call.
pub type StepFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which step of which cycle to run.
#[derive(Debug, Clone, Copy)]
pub struct StepRequest<'a> {
    pub secret_arn: &'a str,
    pub secret_name: &'a str,
    /// The cycle's ClientRequestToken: the pending version's id.
    pub token: &'a str,
    pub step: RotationStep,
}

/// Which version of the rotated secret to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef<'a> {
    /// The cycle's pending version (by its token).
    Pending,
    /// The version holding a stage label, e.g. AWSCURRENT or AWSPREVIOUS.
    Stage(&'a str),
}

/// A short-lived credential of the function's own principal, for a function to call kura
/// with; revoked after the step (and it expires by itself at `expires_at` should that fail).
pub struct StepKey {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
}

/// Why a step failed. `text` may quote whatever the function or its target printed, so the
/// engine redacts every value of the secret (and of the secrets in `also_read`) from it before
/// it is kept; `safe` is kura's own wording from names and settings only, kept when `text`
/// cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub text: String,
    pub safe: String,
    /// Other secrets the function read during the step, by id.
    pub also_read: Vec<i64>,
}

impl StepFailure {
    /// A message kura wrote itself, from nothing but names, versions and settings.
    pub fn own(msg: impl Into<String>) -> Self {
        let text = msg.into();
        StepFailure {
            safe: text.clone(),
            text,
            also_read: Vec::new(),
        }
    }

    /// Whatever `function` reported, which may quote the secret.
    pub fn of(function: &str, text: String) -> Self {
        StepFailure {
            text,
            safe: format!("{function} failed"),
            also_read: Vec::new(),
        }
    }
}

/// A certificate to issue under a template (`kura-private-certificate`).
pub struct CertificateRequest<'a> {
    pub template: &'a str,
    pub common_name: &'a str,
    pub alt_names: &'a [String],
    pub ip_sans: &'a [String],
    /// `90d`, `720h`, …; the template's TTL when `None`.
    pub ttl: Option<&'a str>,
    /// The key to certify again (`rotate_keys: false`), PEM.
    pub private_key: Option<Zeroizing<String>>,
}

/// How an ACME server is shown that kura controls a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// A TXT record `_acme-challenge.<name>`, set and removed by the `dns_provider` function.
    Dns01,
    /// kura itself answers `GET /.well-known/acme-challenge/<token>`.
    Http01,
}

/// A certificate to order from an ACME directory (`kura-acme-certificate`).
pub struct AcmeRequest<'a> {
    pub directory_url: &'a str,
    /// The account's contact; one account per directory and email.
    pub email: &'a str,
    /// The common name first, then the other names, without repeats.
    pub names: &'a [String],
    pub challenge: AcmeChallenge,
    /// For dns-01: the command or webhook function that sets and removes TXT records.
    pub dns_provider: Option<&'a str>,
    /// PEM of the CA that signed the directory's HTTPS certificate (a private ACME server's).
    pub directory_ca: Option<&'a str>,
    /// The key to certify again (`rotate_keys: false`), PEM.
    pub private_key: Option<Zeroizing<String>>,
}

/// An issued certificate, with the fields a certificate secret's value gains (IBM's names).
pub struct IssuedCertificate {
    pub certificate: String,
    pub private_key: Zeroizing<String>,
    /// The certificates between the certificate and the root (PEM), empty under a root.
    pub intermediate: String,
    /// The issuing CA's name.
    pub issuer: String,
    pub serial_number: String,
    /// RFC 3339.
    pub expiration_date: String,
    pub key_algorithm: String,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("issuer", &self.issuer)
            .field("serial_number", &self.serial_number)
            .field("expiration_date", &self.expiration_date)
            .field("private_key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// What kura offers one cycle of one secret's rotation. Implemented by kura-server over its
/// store, keyring and HTTP client; every method that reads or writes acts on the rotated
/// secret and its cycle only, except [`read_other_secret`](Self::read_other_secret) and the
/// access-key methods that `kura-access-key` rotates with.
pub trait StepContext: Send + Sync {
    fn now(&self) -> Timestamp;
    fn region(&self) -> &str;
    /// Where kura serves its API, for functions that call back; `None` before it is bound.
    fn endpoint(&self) -> Option<&str>;
    /// kura's client for webhooks and its calls to itself.
    fn http(&self) -> &reqwest::Client;

    /// A version's value; `None` when there is no such version or it has no value yet.
    fn read_version<'a>(&'a self, which: VersionRef<'a>) -> StepFuture<'a, Result<Option<Plain>>>;
    /// Another secret's AWSCURRENT value (e.g. an administrator's `masterarn`); `None` when it
    /// has none, ResourceNotFound when there is no such secret or it is being deleted.
    fn read_other_secret<'a>(
        &'a self,
        secret: &'a SecretRef,
    ) -> StepFuture<'a, Result<Option<Plain>>>;
    /// createSecret's write: `value` becomes the pending version, labelled AWSPENDING.
    fn stage_pending(&self, value: Plain) -> StepFuture<'_, Result<()>>;
    /// finishSecret's move: AWSCURRENT onto the pending version (AWSPREVIOUS follows); a
    /// no-op if it is there already.
    fn move_current_to_pending(&self) -> StepFuture<'_, Result<()>>;

    /// The Lambda-style event of `step`, with its signed `RotationToken`.
    fn event_json(&self, step: RotationStep) -> String;
    /// A key of the function's own principal, valid for this secret only, until `until`;
    /// what it reads beyond this secret is noted from now on.
    fn issue_step_key(&self, until: Timestamp) -> StepFuture<'_, Result<StepKey>>;
    /// Deletes a key [`issue_step_key`](Self::issue_step_key) made (a failure is logged: the
    /// key expires anyway); the ids of the other secrets it read.
    fn revoke_step_key<'a>(&'a self, access_key_id: &'a str) -> StepFuture<'a, Vec<i64>>;

    /// A kura user's name as stored, `None` when there is no such user.
    fn find_user<'a>(&'a self, user: &'a str) -> StepFuture<'a, Result<Option<String>>>;
    /// A new access key of `user` (a user's own, not a step's): its id and secret. With
    /// `lifetime_seconds` it stops authenticating that long from now.
    fn create_access_key<'a>(
        &'a self,
        user: &'a str,
        lifetime_seconds: Option<i64>,
    ) -> StepFuture<'a, Result<(String, Zeroizing<String>)>>;
    /// The user an access key belongs to, `None` when there is no such key.
    fn access_key_owner<'a>(
        &'a self,
        access_key_id: &'a str,
    ) -> StepFuture<'a, Result<Option<String>>>;
    fn deactivate_access_key<'a>(&'a self, access_key_id: &'a str) -> StepFuture<'a, Result<()>>;
    fn delete_access_key<'a>(&'a self, access_key_id: &'a str) -> StepFuture<'a, Result<()>>;
    /// Makes a key stop authenticating `after_seconds` from now (sooner if it already would).
    fn expire_access_key<'a>(
        &'a self,
        access_key_id: &'a str,
        after_seconds: i64,
    ) -> StepFuture<'a, Result<()>>;

    /// Issues a certificate for the rotated secret under a template; the template's rules
    /// and its CA's lifetime decide, and a refusal says which rule.
    fn issue_certificate<'a>(
        &'a self,
        _req: CertificateRequest<'a>,
    ) -> StepFuture<'a, Result<IssuedCertificate>> {
        Box::pin(std::future::ready(Err(kura_core::Error::internal(
            "this kura cannot issue certificates here",
        ))))
    }

    /// Orders a certificate from an ACME directory, answering its challenges; the account
    /// is created on first use and kept sealed. An error from the ACME server is quoted.
    fn order_acme_certificate<'a>(
        &'a self,
        _req: AcmeRequest<'a>,
    ) -> StepFuture<'a, Result<IssuedCertificate>> {
        Box::pin(std::future::ready(Err(kura_core::Error::internal(
            "this kura cannot order ACME certificates here",
        ))))
    }

    /// Revokes a certificate `authority` issued (a no-op if it already is revoked).
    fn revoke_certificate<'a>(
        &'a self,
        _authority: &'a str,
        _serial_number: &'a str,
    ) -> StepFuture<'a, Result<()>> {
        Box::pin(std::future::ready(Err(kura_core::Error::internal(
            "this kura cannot revoke certificates here",
        ))))
    }
}

/// What every function has: its name, how long a step may take, how often a cycle tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The function's name (the last part of its Lambda-style ARN).
    pub name: String,
    /// How long one step may take; the engine stops waiting then, and the lease covers it.
    pub timeout: Duration,
    /// Attempts per cycle before it fails (within its window).
    pub max_attempts: i64,
}

/// One kind of rotation. Every step must be safe to run again: a retry, or another node
/// resuming after a crash, repeats the step that was running.
pub trait RotationFunction: Send + Sync {
    fn settings(&self) -> &Settings;
    /// The function does its work inside kura (nothing outside waits on it), so the engine
    /// may run as many of its cycles at once as it runs rotations. Functions that reach a
    /// command, a webhook, a database or a host say no (the default): they get a bound of
    /// their own, so an emergency rotation does not flood what they talk to.
    fn in_process(&self) -> bool {
        false
    }
    fn run_step<'a>(
        &'a self,
        ctx: &'a dyn StepContext,
        req: StepRequest<'a>,
    ) -> StepFuture<'a, std::result::Result<(), StepFailure>>;
    /// Runs the function once outside a rotation's steps with `body` (a command on its stdin,
    /// a webhook as the POST body): the dns-01 provider hook of `kura-acme-certificate`.
    /// `None` for kinds that cannot be called so.
    fn call<'a>(
        &'a self,
        _ctx: &'a dyn StepContext,
        _body: String,
    ) -> Option<StepFuture<'a, std::result::Result<(), StepFailure>>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    use kura_core::labels::{self, Stages};
    use kura_core::model::{RotationConfig, RotationPhase};

    use super::*;
    use crate::functions::password::PasswordFunction;
    use crate::run;

    /// The futures here never wait: one poll finishes them.
    fn ready<T>(mut f: StepFuture<'_, T>) -> T {
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("an in-memory step waited"),
        }
    }

    fn done<'a, T: Send + 'a>(v: T) -> StepFuture<'a, T> {
        Box::pin(std::future::ready(v))
    }

    fn unused<'a, T: Send + 'a>() -> StepFuture<'a, Result<T>> {
        done(Err(kura_core::Error::internal("not used by this function")))
    }

    /// One secret in memory: version id → value, and its labels.
    struct Memory {
        token: String,
        values: Mutex<Vec<(String, String)>>,
        stages: Mutex<Stages>,
        http: reqwest::Client,
    }

    impl StepContext for Memory {
        fn now(&self) -> Timestamp {
            Timestamp(0)
        }
        fn region(&self) -> &str {
            "us-east-1"
        }
        fn endpoint(&self) -> Option<&str> {
            None
        }
        fn http(&self) -> &reqwest::Client {
            &self.http
        }
        fn read_version<'a>(
            &'a self,
            which: VersionRef<'a>,
        ) -> StepFuture<'a, Result<Option<Plain>>> {
            let id = match which {
                VersionRef::Pending => Some(self.token.clone()),
                VersionRef::Stage(s) => self.stages.lock().unwrap().get(s).cloned(),
            };
            let values = self.values.lock().unwrap();
            let v = id.and_then(|id| {
                values
                    .iter()
                    .find(|(v, _)| *v == id)
                    .map(|(_, x)| Plain::text(x))
            });
            done(Ok(v))
        }
        fn read_other_secret<'a>(
            &'a self,
            _: &'a SecretRef,
        ) -> StepFuture<'a, Result<Option<Plain>>> {
            unused()
        }
        fn stage_pending(&self, value: Plain) -> StepFuture<'_, Result<()>> {
            let text = value.as_text().unwrap().unwrap().to_string();
            self.values.lock().unwrap().push((self.token.clone(), text));
            self.stages
                .lock()
                .unwrap()
                .insert(labels::PENDING.into(), self.token.clone());
            done(Ok(()))
        }
        fn move_current_to_pending(&self) -> StepFuture<'_, Result<()>> {
            let mut st = self.stages.lock().unwrap();
            if let Some(old) = st.insert(labels::CURRENT.into(), self.token.clone()) {
                st.insert(labels::PREVIOUS.into(), old);
            }
            st.remove(labels::PENDING);
            done(Ok(()))
        }
        fn event_json(&self, _: RotationStep) -> String {
            String::new()
        }
        fn issue_step_key(&self, _: Timestamp) -> StepFuture<'_, Result<StepKey>> {
            unused()
        }
        fn revoke_step_key<'a>(&'a self, _: &'a str) -> StepFuture<'a, Vec<i64>> {
            done(Vec::new())
        }
        fn find_user<'a>(&'a self, _: &'a str) -> StepFuture<'a, Result<Option<String>>> {
            unused()
        }
        fn create_access_key<'a>(
            &'a self,
            _: &'a str,
            _: Option<i64>,
        ) -> StepFuture<'a, Result<(String, Zeroizing<String>)>> {
            unused()
        }
        fn access_key_owner<'a>(&'a self, _: &'a str) -> StepFuture<'a, Result<Option<String>>> {
            unused()
        }
        fn deactivate_access_key<'a>(&'a self, _: &'a str) -> StepFuture<'a, Result<()>> {
            unused()
        }
        fn delete_access_key<'a>(&'a self, _: &'a str) -> StepFuture<'a, Result<()>> {
            unused()
        }
        fn expire_access_key<'a>(&'a self, _: &'a str, _: i64) -> StepFuture<'a, Result<()>> {
            unused()
        }
    }

    fn memory(current: &str) -> Memory {
        Memory {
            token: "t1".into(),
            values: Mutex::new(vec![("v0".into(), current.into())]),
            stages: Mutex::new([(labels::CURRENT.to_string(), "v0".to_string())].into()),
            http: reqwest::Client::new(),
        }
    }

    fn current(ctx: &Memory) -> String {
        let v = ready(ctx.read_version(VersionRef::Stage(labels::CURRENT)));
        v.unwrap().unwrap().as_text().unwrap().unwrap().to_string()
    }

    /// Walks every step of one cycle with `function`, deciding each with the run state
    /// machine as the engine does.
    fn rotate(function: &dyn RotationFunction, ctx: &Memory) -> RotationPhase {
        let cfg = RotationConfig::default();
        let mut run = run::started("t1", Timestamp(3_600_000), Timestamp(0));
        while run.phase == RotationPhase::InProgress {
            let step = run.step.expect("a cycle in progress is at a step");
            let req = StepRequest {
                secret_arn: "arn",
                secret_name: "db",
                token: "t1",
                step,
            };
            let t = match ready(function.run_step(ctx, req)) {
                Ok(()) => {
                    let stages = ctx.stages.lock().unwrap().clone();
                    run::on_step_succeeded(&run, &cfg, &stages, "t1", step, Timestamp(1))
                }
                Err(f) => run::on_step_failed(&run, &cfg, "t1", step, &f.text, 1, Timestamp(1)),
            };
            run = t.run;
        }
        run.phase
    }

    fn password_function() -> Box<dyn RotationFunction> {
        Box::new(PasswordFunction::new(
            Settings {
                name: "kura-password".into(),
                timeout: Duration::from_secs(1),
                max_attempts: 1,
            },
            kura_crypto::PasswordSpec {
                length: 12,
                ..Default::default()
            },
        ))
    }

    #[test]
    fn the_password_function_walks_a_cycle_to_success() {
        let ctx = memory("old-password");
        assert_eq!(
            rotate(&*password_function(), &ctx),
            RotationPhase::Succeeded
        );
        let new = current(&ctx);
        assert_eq!(
            new.chars().count(),
            12,
            "a fresh password of the rules' length"
        );
        assert_ne!(new, "old-password");
        assert_eq!(ctx.stages.lock().unwrap()[labels::PREVIOUS], "v0");
    }

    #[test]
    fn the_password_function_replaces_only_the_password_of_a_json_secret() {
        let ctx = memory(r#"{"username":"app","password":"old-password"}"#);
        assert_eq!(
            rotate(&*password_function(), &ctx),
            RotationPhase::Succeeded
        );
        let new: serde_json::Value = serde_json::from_str(&current(&ctx)).unwrap();
        assert_eq!(new["username"], "app");
        assert_ne!(new["password"], "old-password");
    }

    #[test]
    fn a_json_secret_without_a_password_fails_at_create_secret() {
        let ctx = memory(r#"{"username":"app"}"#);
        assert_eq!(rotate(&*password_function(), &ctx), RotationPhase::Failed);
        assert_eq!(
            current(&ctx),
            r#"{"username":"app"}"#,
            "AWSCURRENT unchanged"
        );
        assert!(!ctx.stages.lock().unwrap().contains_key(labels::PENDING));
    }
}
