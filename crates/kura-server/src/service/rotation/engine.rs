//! The rotation engine: claims secrets whose rotation is due (from two indexes, under a lease
//! kept in the database), runs their steps one by one with bounded concurrency, and records
//! progress after every step, so a crash at any point resumes instead of starting over.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kura_core::labels;
use kura_core::model::{RotationPhase, RotationStep, SecretRecord};
use kura_core::{Error, Result, Timestamp};
use tokio::sync::{Notify, Semaphore, watch};

use super::exec::StepFailure;
use super::functions::RotationFunction;
use super::{Event, plan_next};
use crate::service::{Service, new_uuid};

/// Rotations running at once on one server.
const CONCURRENCY: usize = 4;
/// How often the scheduler looks for due work when nothing wakes it.
const POLL: Duration = Duration::from_secs(5);
/// A step's lease lasts its timeout plus this; a crashed owner's work is taken over after it.
const LEASE_MARGIN_MS: i64 = 60_000;
/// First retry after this; doubles per attempt, at most `MAX_BACKOFF_MS`.
const BACKOFF_MS: i64 = 60_000;
const MAX_BACKOFF_MS: i64 = 3_600_000;
/// Longest LastError kept.
const MAX_ERROR_CHARS: usize = 500;

/// The engine's per-process state, held by the service.
pub(crate) struct RotationRuntime {
    pub(crate) owner: String,
    wake: Notify,
    running: Mutex<HashSet<i64>>,
    inflight: watch::Sender<usize>,
    permits: Arc<Semaphore>,
    endpoint: OnceLock<String>,
    /// Built on first use: most servers never call a webhook, and building loads TLS roots.
    http: OnceLock<reqwest::Client>,
    /// One delivery pass at a time, so an event is not sent twice by overlapping passes.
    pub(crate) delivering: tokio::sync::Mutex<()>,
    /// Per live step key: the other secrets its function read (through its Policy), whose
    /// values are redacted from the step's error too.
    reads: Mutex<std::collections::HashMap<String, HashSet<i64>>>,
}

impl RotationRuntime {
    pub(crate) fn new() -> Self {
        RotationRuntime {
            owner: new_uuid(),
            wake: Notify::new(),
            running: Mutex::new(HashSet::new()),
            inflight: watch::Sender::new(0),
            permits: Arc::new(Semaphore::new(CONCURRENCY)),
            endpoint: OnceLock::new(),
            http: OnceLock::new(),
            delivering: tokio::sync::Mutex::new(()),
            reads: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Starts noting what the step key `key_id` reads beyond its own secret.
    pub(crate) fn watch_reads(&self, key_id: &str) {
        if let Ok(mut m) = self.reads.lock() {
            m.insert(key_id.to_string(), HashSet::new());
        }
    }

    /// GetSecretValue served `secret_id` to `p`: noted if `p` is a watched step key.
    pub(crate) fn note_read(&self, p: &crate::service::Principal, secret_id: i64) {
        if p.scope_secret_id.is_none_or(|own| own == secret_id) {
            return;
        }
        if let Ok(mut m) = self.reads.lock()
            && let Some(set) = m.get_mut(&p.access_key_id)
        {
            set.insert(secret_id);
        }
    }

    /// Stops watching `key_id`; the other secrets it read.
    pub(crate) fn take_reads(&self, key_id: &str) -> Vec<i64> {
        self.reads
            .lock()
            .ok()
            .and_then(|mut m| m.remove(key_id))
            .map(|s| s.into_iter().collect())
            .unwrap_or_default()
    }

    /// Wakes the scheduler (a rotation was requested, or an event queued).
    pub(crate) fn kick(&self) {
        self.wake.notify_one();
    }

    /// The client for webhooks, notifications and kura's calls to itself.
    pub(crate) fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default()
        })
    }

    pub(crate) fn endpoint(&self) -> Option<&str> {
        self.endpoint.get().map(String::as_str)
    }

    fn forget(&self, id: i64) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(&id);
        }
    }
}

fn backoff_ms(attempt: i64) -> i64 {
    let shift = attempt.clamp(1, 20) - 1;
    (BACKOFF_MS << shift).min(MAX_BACKOFF_MS)
}

fn clip(msg: &str) -> String {
    if msg.chars().count() <= MAX_ERROR_CHARS {
        msg.to_string()
    } else {
        let mut s: String = msg.chars().take(MAX_ERROR_CHARS).collect();
        s.push('…');
        s
    }
}

/// The cycle the engine works on is still the one in the row (not cancelled or replaced).
fn same_cycle(s: &SecretRecord, token: &str) -> bool {
    s.run.phase == RotationPhase::InProgress && s.run.token.as_deref() == Some(token)
}

impl Service {
    /// The address rotation functions call back on; set once the listener is bound.
    pub fn set_rotation_endpoint(&self, url: String) {
        let _ = self.rotation.endpoint.set(url);
    }

    /// Runs the scheduler until the process ends.
    pub async fn rotation_loop(self: Arc<Self>) {
        match self.store.recover_rotations(self.clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                rotations = n,
                "resuming rotations that were running when kura last stopped"
            ),
            Err(e) => tracing::error!(detail = ?e, "cannot recover interrupted rotations"),
        }
        loop {
            self.background_tick().await;
            tokio::select! {
                _ = self.rotation.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// One round of background work: due rotations, due notifications, expired keys.
    pub(crate) async fn background_tick(self: &Arc<Self>) {
        if let Err(e) = self.rotation_tick().await {
            tracing::error!(detail = ?e, "the rotation scheduler failed; it will try again");
        }
        if let Err(e) = self.deliver_notifications().await {
            tracing::error!(detail = ?e, "notification delivery failed; it will try again");
        }
        if let Err(e) = self
            .store
            .delete_expired_access_keys(self.clock.now())
            .await
        {
            tracing::warn!(detail = ?e, "cannot delete expired rotation credentials");
        }
    }

    /// Starts work on secrets whose rotation is due; returns how many were started.
    pub(crate) async fn rotation_tick(self: &Arc<Self>) -> Result<usize> {
        let free = self.rotation.permits.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let now = self.clock.now();
        let due = self.store.rotation_due(now, free).await?;
        let mut started = 0;
        for id in due {
            let fresh = self
                .rotation
                .running
                .lock()
                .map(|mut r| r.insert(id))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let Ok(permit) = self.rotation.permits.clone().try_acquire_owned() else {
                self.rotation.forget(id);
                break;
            };
            let claimed = self
                .store
                .claim_rotation(id, &self.rotation.owner, now, now.plus_ms(LEASE_MARGIN_MS))
                .await;
            if !matches!(claimed, Ok(true)) {
                self.rotation.forget(id);
                claimed?;
                continue;
            }
            self.rotation.inflight.send_modify(|n| *n += 1);
            let svc = self.clone();
            tokio::spawn(async move {
                if let Err(e) = svc.drive(id).await {
                    tracing::error!(secret_id = id, detail = ?e, "rotation run failed; it will be retried");
                }
                if let Err(e) = svc.store.release_rotation(id, &svc.rotation.owner).await {
                    tracing::warn!(secret_id = id, detail = ?e, "cannot release a rotation lease; it will expire");
                }
                svc.rotation.forget(id);
                drop(permit);
                svc.rotation.inflight.send_modify(|n| *n -= 1);
            });
            started += 1;
        }
        Ok(started)
    }

    /// Waits (at most `max`) until no rotation is running on this server.
    pub(crate) async fn wait_rotations_idle(&self, max: Duration) {
        let mut rx = self.rotation.inflight.subscribe();
        let _ = tokio::time::timeout(max, rx.wait_for(|n| *n == 0)).await;
    }

    /// Works on one secret while it has due rotation work.
    async fn drive(&self, id: i64) -> Result<()> {
        loop {
            let Some(s) = self.store.secret_by_id(id).await? else {
                return Ok(());
            };
            if s.is_scheduled_for_deletion() {
                return Ok(());
            }
            let now = self.clock.now();
            if s.run.phase != RotationPhase::InProgress {
                let due =
                    s.rotation.enabled && s.rotation.next_rotation_at.is_some_and(|t| t <= now);
                if !due || !self.start_scheduled(&s, now).await? {
                    return Ok(());
                }
                continue;
            }
            if s.run.resume_at.is_some_and(|t| t > now) {
                return Ok(());
            }
            let (Some(token), Some(step)) = (s.run.token.clone(), s.run.step) else {
                return Err(Error::internal(
                    "rotation in progress without token or step",
                ));
            };
            let function = match &s.rotation.function_arn {
                Some(arn) => match self.function_name_of(arn) {
                    Ok(name) => self.load_function(&name).await,
                    Err(e) => Err(e),
                },
                None => Err(Error::invalid_request(
                    "the secret has no rotation function",
                )),
            };
            let function = match function {
                Ok(f) => f,
                Err(e) => {
                    self.step_failed(&s, &token, step, None, StepFailure::own(e.message))
                        .await?;
                    return Ok(());
                }
            };
            let until = now.plus_ms(function.timeout.as_millis() as i64 + LEASE_MARGIN_MS);
            if !self
                .store
                .claim_rotation(id, &self.rotation.owner, now, until)
                .await?
            {
                return Ok(()); // another server took over
            }
            let mut current = true;
            self.store
                .modify(id, &mut |st| {
                    current = same_cycle(&st.secret, &token);
                    if current {
                        st.secret.run.last_attempt_at = Some(now);
                        // If this server dies mid-step, the step is due again once the lease ends.
                        st.secret.run.resume_at = Some(until);
                    }
                    Ok(())
                })
                .await?;
            if !current {
                continue;
            }
            if self.test_pause_step == Some(step) {
                tracing::warn!(secret = %s.arn, step = step.as_str(), "test mode: rotation paused before this step");
                std::future::pending::<()>().await;
            }
            tracing::info!(secret = %s.arn, step = step.as_str(), attempt = s.run.attempt, function = %function.name, "rotation step starting");
            let started = std::time::Instant::now();
            let outcome = self.run_step(&s, &function, step, &token).await;
            self.audit_background(kura_store::AuditRecord {
                kind: "rotation".into(),
                principal: self.function_principal_arn(&function.name),
                action: format!("rotation:{}", step.as_str()),
                resource: s.arn.clone(),
                version_id: Some(token.clone()),
                outcome: if outcome.is_ok() { "Success" } else { "Error" }.into(),
                error_code: outcome
                    .as_ref()
                    .err()
                    .map(|_| "RotationStepFailed".to_string()),
                duration_us: started.elapsed().as_micros() as i64,
                ..Default::default()
            })
            .await;
            match outcome {
                Ok(()) => self.step_done(&s, &function, &token, step).await?,
                Err(failure) => {
                    self.step_failed(&s, &token, step, Some(&function), failure)
                        .await?;
                    return Ok(());
                }
            }
        }
    }

    /// Opens the scheduled cycle of a secret; false if there was nothing to start after all.
    async fn start_scheduled(&self, s: &SecretRecord, now: Timestamp) -> Result<bool> {
        let token = new_uuid();
        let mut opened = None;
        let state = self
            .store
            .modify(s.id, &mut |st| {
                opened = None;
                let cfg = &st.secret.rotation;
                let due = cfg.enabled && cfg.next_rotation_at.is_some_and(|t| t <= now);
                if st.secret.run.phase == RotationPhase::InProgress || !due {
                    return Ok(());
                }
                let start = cfg.next_rotation_at.unwrap_or(now);
                let end = cfg.next_rotation_end.unwrap_or(start.plus_ms(3_600_000));
                // A window missed while kura was down: rotate now, with a window as long.
                let window_end = if end > now {
                    end
                } else {
                    now.plus_ms((end.0 - start.0).max(3_600_000))
                };
                if end <= now {
                    tracing::warn!(secret = %st.secret.arn, "the rotation window passed while kura was not running; rotating now");
                }
                opened = Some(self.start_cycle(st, &token, true, window_end, now)?);
                Ok(())
            })
            .await;
        match state {
            Ok(st) => {
                if let Some(t) = &opened {
                    tracing::info!(secret = %st.secret.arn, version = %t, "scheduled rotation starting");
                    self.announce(&st.events);
                }
                Ok(opened.is_some())
            }
            Err(e) => {
                // A cycle that cannot even open (e.g. someone else's AWSPENDING) fails visibly
                // and waits for the next window instead of being retried every poll.
                let msg = clip(&e.message);
                tracing::warn!(secret = %s.arn, error = %msg, "scheduled rotation cannot start");
                let failed = self
                    .store
                    .modify(s.id, &mut |st| {
                        st.secret.run.phase = RotationPhase::Failed;
                        st.secret.run.last_error = Some(msg.clone());
                        st.secret.run.last_attempt_at = Some(now);
                        st.secret.run.resume_at = None;
                        plan_next(&mut st.secret.rotation, now);
                        let e = self.event(
                            Event::RotationFailed,
                            &st.secret.arn,
                            &st.secret.name,
                            None,
                            Some(&msg),
                        );
                        st.events.push(e);
                        Ok(())
                    })
                    .await?;
                self.announce(&failed.events);
                Ok(false)
            }
        }
    }

    /// Records a finished step; after finishSecret, checks AWSCURRENT really moved.
    async fn step_done(
        &self,
        s: &SecretRecord,
        function: &RotationFunction,
        token: &str,
        step: RotationStep,
    ) -> Result<()> {
        let now = self.clock.now();
        let mut not_moved = None;
        let mut finished = false;
        let state = self
            .store
            .modify(s.id, &mut |st| {
                not_moved = None;
                finished = false;
                if !same_cycle(&st.secret, token) {
                    return Ok(());
                }
                let run = &mut st.secret.run;
                match step.next() {
                    Some(next) => {
                        run.step = Some(next);
                        run.resume_at = Some(now);
                    }
                    None => {
                        let current = st.stages.get(labels::CURRENT).cloned();
                        if current.as_deref() != Some(token) {
                            not_moved = Some(format!(
                                "finishSecret succeeded but AWSCURRENT is still on version {}, not on {token}",
                                current.as_deref().unwrap_or("(none)")
                            ));
                            return Ok(());
                        }
                        run.phase = RotationPhase::Succeeded;
                        run.step = None;
                        run.resume_at = None;
                        run.last_error = None;
                        run.window_end = None;
                        st.secret.rotation.last_rotated_at = Some(now);
                        plan_next(&mut st.secret.rotation, now);
                        let e = self.event(
                            Event::RotationSucceeded,
                            &st.secret.arn,
                            &st.secret.name,
                            Some(token),
                            None,
                        );
                        st.events.push(e);
                        finished = true;
                    }
                }
                Ok(())
            })
            .await?;
        tracing::info!(secret = %s.arn, step = step.as_str(), "rotation step done");
        if let Some(msg) = not_moved {
            return self
                .step_failed(s, token, step, Some(function), StepFailure::own(msg))
                .await;
        }
        if finished {
            tracing::info!(secret = %state.secret.arn, version = %token, "rotation succeeded");
            self.announce(&state.events);
        }
        Ok(())
    }

    /// Records a failed attempt: retry after a backoff inside the window, else the cycle fails.
    async fn step_failed(
        &self,
        s: &SecretRecord,
        token: &str,
        step: RotationStep,
        function: Option<&RotationFunction>,
        failure: StepFailure,
    ) -> Result<()> {
        // Before the text goes anywhere: LastError, the log, the RotationFailed event.
        let msg = clip(&self.redacted_failure(s, &failure).await);
        let now = self.clock.now();
        let max_attempts = function.map(|f| f.max_attempts).unwrap_or(1);
        let mut gave_up = false;
        let mut retry_at = None;
        let state = self
            .store
            .modify(s.id, &mut |st| {
                gave_up = false;
                retry_at = None;
                if !same_cycle(&st.secret, token) {
                    return Ok(());
                }
                let run = &mut st.secret.run;
                run.last_error = Some(format!("{}: {msg}", step.as_str()));
                run.last_attempt_at = Some(now);
                let next = now.plus_ms(backoff_ms(run.attempt));
                let in_window = run.window_end.is_none_or(|end| next < end);
                if run.attempt < max_attempts && in_window {
                    run.attempt += 1;
                    run.resume_at = Some(next);
                    retry_at = Some(next);
                } else {
                    run.phase = RotationPhase::Failed;
                    run.resume_at = None;
                    gave_up = true;
                    let e = self.event(
                        Event::RotationFailed,
                        &st.secret.arn,
                        &st.secret.name,
                        Some(token),
                        Some(&msg),
                    );
                    st.events.push(e);
                }
                Ok(())
            })
            .await?;
        if gave_up {
            tracing::warn!(secret = %s.arn, step = step.as_str(), error = %msg, "rotation failed; AWSCURRENT is unchanged");
            self.announce(&state.events);
        } else if let Some(at) = retry_at {
            tracing::warn!(secret = %s.arn, step = step.as_str(), error = %msg, retry_at = at.epoch_seconds(), "rotation step failed; will retry");
        }
        Ok(())
    }

    /// Audits work kura does on its own (rotation steps, jobs). Nobody waits on it, so a
    /// failure is logged loudly instead of failing a request.
    pub(crate) async fn audit_background(&self, mut entry: kura_store::AuditRecord) {
        entry.time = self.clock.now().0;
        if entry.request_id.is_empty() {
            entry.request_id = new_uuid();
        }
        if entry.decision.is_empty() {
            entry.decision = "-".into();
        }
        if let Err(e) = self.audit(entry).await {
            tracing::error!(detail = ?e, "could not write the audit record of background work");
        }
    }
}
