//! A sketch, not wired yet: the trait the engine could run every step through, so that each
//! kind of rotation (password, database users, SSH, access keys, command, webhook, later
//! certificates) is one self-contained type instead of a branch of kura-server's `run_step`.
//!
//! The engine keeps everything that is about the *cycle*: choosing the step, the lease, the
//! timeout, retries and backoff ([`crate::run`]), auditing each step, and redacting a failure's
//! text before it is kept. A function only does the *step*, and reaches the service solely
//! through a [`StepContext`] scoped to the secret and cycle being rotated, so it cannot touch
//! another secret's labels or read what its policy does not allow.
//!
//! What a step needs from the service, from what today's functions do:
//! - read a version of the rotated secret (AWSCURRENT, AWSPREVIOUS, or the pending version by
//!   token) — every built-in function;
//! - read another secret's AWSCURRENT by ARN or name (the administrator's `masterarn` of the
//!   alternating database and SSH functions), noted so its values are redacted from errors too;
//! - stage a value as the pending version (createSecret);
//! - move AWSCURRENT onto the pending version (finishSecret; AWSPREVIOUS follows);
//! - issue a short-lived access key scoped to the secret, for a `command` function to call kura
//!   back with, and revoke it; and create/delete a kura user's long-term keys (`kura-access-key`);
//! - the step's event JSON with its signed `RotationToken`, kura's own endpoint, the region;
//! - a signed HTTPS POST (webhooks) and an HTTP client (proving an access key against kura);
//! - the clock.
//!
//! Values cross the boundary as the context's own `Value` type, so kura-server keeps its
//! zeroizing, Debug-redacting `Plain` and this crate needs no crypto dependency.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use kura_core::model::RotationStep;
use kura_core::{Result, Timestamp};

/// A boxed future, so functions of different kinds can sit behind one `dyn RotationFunction`.
pub type StepFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which step of which cycle to run.
#[derive(Debug, Clone, Copy)]
pub struct StepRequest<'a> {
    pub secret_arn: &'a str,
    /// The cycle's ClientRequestToken: the pending version's id.
    pub token: &'a str,
    pub step: RotationStep,
    /// 1-based; a function may be more careful on a retry (every step must be safe to repeat).
    pub attempt: i64,
}

/// Which version of the rotated secret to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef<'a> {
    /// The cycle's pending version (by its token).
    Pending,
    /// The version holding a stage label, e.g. AWSCURRENT or AWSPREVIOUS.
    Stage(&'a str),
}

/// A short-lived credential for a function to call kura with; revoked after the step (and it
/// expires by itself at `expires_at` should revocation fail).
pub struct StepKey<S> {
    pub access_key_id: String,
    pub secret_access_key: S,
    pub expires_at: Timestamp,
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

/// What the service offers one step of one cycle. Implemented by kura-server over its store,
/// keyring and HTTP client; every method acts on the rotated secret and its cycle only.
pub trait StepContext: Send + Sync {
    /// A secret value (kura-server's zeroizing `Plain`); never printed.
    type Value: Send + Sync;
    /// A credential's secret half; never printed.
    type Secret: Send + Sync;

    fn now(&self) -> Timestamp;
    fn region(&self) -> &str;
    /// Where kura serves its API, for functions that call back; `None` before it is bound.
    fn endpoint(&self) -> Option<&str>;

    /// A version's value; `None` when there is no such version or it has no value yet.
    fn read_version<'a>(
        &'a self,
        which: VersionRef<'a>,
    ) -> StepFuture<'a, Result<Option<Self::Value>>>;
    /// Another secret's AWSCURRENT value (e.g. an administrator's), as allowed by the
    /// function's execution policy; noted for redaction.
    fn read_other_secret<'a>(&'a self, secret_id: &'a str) -> StepFuture<'a, Result<Self::Value>>;
    /// createSecret's write: `value` becomes the pending version, labelled AWSPENDING.
    fn stage_pending(&self, value: Self::Value) -> StepFuture<'_, Result<()>>;
    /// finishSecret's move: AWSCURRENT onto the pending version; a no-op if it is there.
    fn move_current_to_pending(&self) -> StepFuture<'_, Result<()>>;

    /// A key of the function's own principal, valid for this secret only, until `until`.
    fn issue_step_key(&self, until: Timestamp) -> StepFuture<'_, Result<StepKey<Self::Secret>>>;
    fn revoke_key<'a>(&'a self, access_key_id: &'a str) -> StepFuture<'a, Result<()>>;
    /// The ids of other secrets read with `access_key_id` since it was issued.
    fn reads_with_key(&self, access_key_id: &str) -> Vec<i64>;

    /// The Lambda-style event for this step, with its signed `RotationToken`.
    fn event_json(&self) -> String;
    /// POSTs `body` signed with `signing_secret`; `Err` says why (no value in it).
    fn post_signed<'a>(
        &'a self,
        url: &'a str,
        signing_secret: &'a [u8],
        kind: &'a str,
        body: String,
    ) -> StepFuture<'a, std::result::Result<(), String>>;
}

/// One kind of rotation. Every step must be safe to run again: a retry, or another node
/// resuming after a crash, repeats the step that was running.
pub trait RotationFunction<C: StepContext + ?Sized>: Send + Sync {
    /// The function's name (the last part of its Lambda-style ARN).
    fn name(&self) -> &str;
    /// How long one step may take; the engine stops waiting then, and the lease covers it.
    fn timeout(&self) -> Duration;
    /// Attempts per cycle before it fails (within its window).
    fn max_attempts(&self) -> i64;
    fn run_step<'a>(
        &'a self,
        ctx: &'a C,
        req: StepRequest<'a>,
    ) -> StepFuture<'a, std::result::Result<(), StepFailure>>;
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    use kura_core::labels::{self, Stages};
    use kura_core::model::{RotationConfig, RotationPhase};

    use super::*;
    use crate::run;

    /// The futures here never wait: one poll finishes them.
    fn ready<T>(mut f: StepFuture<'_, T>) -> T {
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("an in-memory step waited"),
        }
    }

    /// One secret in memory: version id → value, and its labels.
    struct Memory {
        token: String,
        values: Mutex<Vec<(String, String)>>,
        stages: Mutex<Stages>,
    }

    impl StepContext for Memory {
        type Value = String;
        type Secret = String;
        fn now(&self) -> Timestamp {
            Timestamp(0)
        }
        fn region(&self) -> &str {
            "us-east-1"
        }
        fn endpoint(&self) -> Option<&str> {
            None
        }
        fn read_version<'a>(
            &'a self,
            which: VersionRef<'a>,
        ) -> StepFuture<'a, Result<Option<String>>> {
            let id = match which {
                VersionRef::Pending => Some(self.token.clone()),
                VersionRef::Stage(s) => self.stages.lock().unwrap().get(s).cloned(),
            };
            let values = self.values.lock().unwrap();
            let v = id.and_then(|id| {
                values
                    .iter()
                    .find(|(v, _)| *v == id)
                    .map(|(_, x)| x.clone())
            });
            Box::pin(std::future::ready(Ok(v)))
        }
        fn read_other_secret<'a>(&'a self, _: &'a str) -> StepFuture<'a, Result<String>> {
            Box::pin(std::future::ready(Err(kura_core::Error::invalid_request(
                "none",
            ))))
        }
        fn stage_pending(&self, value: String) -> StepFuture<'_, Result<()>> {
            self.values
                .lock()
                .unwrap()
                .push((self.token.clone(), value));
            self.stages
                .lock()
                .unwrap()
                .insert(labels::PENDING.into(), self.token.clone());
            Box::pin(std::future::ready(Ok(())))
        }
        fn move_current_to_pending(&self) -> StepFuture<'_, Result<()>> {
            let mut st = self.stages.lock().unwrap();
            if let Some(old) = st.insert(labels::CURRENT.into(), self.token.clone()) {
                st.insert(labels::PREVIOUS.into(), old);
            }
            st.remove(labels::PENDING);
            Box::pin(std::future::ready(Ok(())))
        }
        fn issue_step_key(&self, _: Timestamp) -> StepFuture<'_, Result<StepKey<String>>> {
            unreachable!("not used by this function")
        }
        fn revoke_key<'a>(&'a self, _: &'a str) -> StepFuture<'a, Result<()>> {
            unreachable!("not used by this function")
        }
        fn reads_with_key(&self, _: &str) -> Vec<i64> {
            Vec::new()
        }
        fn event_json(&self) -> String {
            String::new()
        }
        fn post_signed<'a>(
            &'a self,
            _: &'a str,
            _: &'a [u8],
            _: &'a str,
            _: String,
        ) -> StepFuture<'a, std::result::Result<(), String>> {
            unreachable!("not used by this function")
        }
    }

    /// Rotates to the current value with a "!" appended: enough to walk the protocol.
    struct Exclaim;

    impl<C: StepContext<Value = String> + ?Sized> RotationFunction<C> for Exclaim {
        fn name(&self) -> &str {
            "exclaim"
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(1)
        }
        fn max_attempts(&self) -> i64 {
            1
        }
        fn run_step<'a>(
            &'a self,
            ctx: &'a C,
            req: StepRequest<'a>,
        ) -> StepFuture<'a, std::result::Result<(), StepFailure>> {
            Box::pin(async move {
                let own = |e: kura_core::Error| StepFailure {
                    safe: e.message.clone(),
                    text: e.message,
                    also_read: Vec::new(),
                };
                match req.step {
                    RotationStep::CreateSecret => {
                        if ctx
                            .read_version(VersionRef::Pending)
                            .await
                            .map_err(own)?
                            .is_some()
                        {
                            return Ok(());
                        }
                        let current = ctx
                            .read_version(VersionRef::Stage(labels::CURRENT))
                            .await
                            .map_err(own)?
                            .unwrap_or_default();
                        ctx.stage_pending(current + "!").await.map_err(own)
                    }
                    RotationStep::SetSecret | RotationStep::TestSecret => Ok(()),
                    RotationStep::FinishSecret => ctx.move_current_to_pending().await.map_err(own),
                }
            })
        }
    }

    #[test]
    fn a_function_behind_the_trait_walks_a_cycle_to_success() {
        let ctx = Memory {
            token: "t1".into(),
            values: Mutex::new(vec![("v0".into(), "hello".into())]),
            stages: Mutex::new([(labels::CURRENT.to_string(), "v0".to_string())].into()),
        };
        let function: Box<dyn RotationFunction<Memory>> = Box::new(Exclaim);
        let cfg = RotationConfig::default();
        let mut run = run::started("t1", Timestamp(3_600_000), Timestamp(0));
        for step in RotationStep::ALL {
            assert_eq!(run.step, Some(step), "the steps run in order");
            let req = StepRequest {
                secret_arn: "arn",
                token: "t1",
                step,
                attempt: run.attempt,
            };
            ready(function.run_step(&ctx, req)).expect("the step succeeds");
            let stages = ctx.stages.lock().unwrap().clone();
            let t = run::on_step_succeeded(&run, &cfg, &stages, "t1", step, Timestamp(1));
            run = t.run;
        }
        assert_eq!(run.phase, RotationPhase::Succeeded);
        let current = ready(ctx.read_version(VersionRef::Stage(labels::CURRENT)));
        assert_eq!(current.unwrap().as_deref(), Some("hello!"));
        assert_eq!(ctx.stages.lock().unwrap()[labels::PREVIOUS], "v0");
    }
}
