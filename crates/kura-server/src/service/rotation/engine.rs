//! The rotation engine: claims secrets whose rotation is due (from two indexes, under a lease
//! kept in the database), runs their steps one by one with bounded concurrency, and records
//! progress after every step, so a crash at any point resumes instead of starting over.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kura_core::model::{RotationPhase, RotationStep, SecretRecord, SecretState};
use kura_core::{Error, Result, Timestamp};
use kura_rotation::run::{self, Announcement, Outcome};
use kura_store::ModifyReturning;
use tokio::sync::{Notify, Semaphore, watch};

use kura_rotation::function::{RotationFunction, StepFailure};

use super::Event;
use crate::service::{Service, new_uuid};

/// Rotations running at once on one server, unless `kura server --rotation-concurrency`
/// says otherwise. Chosen by `kura-bench rotation`: past this, an emergency rotation of
/// thousands of `kura-password` secrets gets no faster on SQLite (one writer) and readers slow.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// Secrets one function that is not in-process (a command, a webhook, a managed database or
/// SSH host) rotates at once on one server: what it talks to may not take more than this.
const EXTERNAL_FUNCTION_CONCURRENCY: usize = 4;
/// A step's lease lasts its timeout plus this; a crashed owner's work is taken over after it.
const LEASE_MARGIN_MS: i64 = 60_000;
/// The lease a rotation is claimed with before its function is known: long enough for a step
/// of a function with the default timeout (kura-password), so that step needs no claim of its own.
const FIRST_LEASE_MS: i64 = super::functions::DEFAULT_TIMEOUT_SECONDS * 1000 + LEASE_MARGIN_MS;

/// The engine's per-process state, held by the service.
pub(crate) struct RotationRuntime {
    pub(crate) owner: String,
    wake: Notify,
    running: Mutex<HashSet<i64>>,
    inflight: watch::Sender<usize>,
    permits: Arc<Semaphore>,
    /// Per function that is not in-process: its own bound (EXTERNAL_FUNCTION_CONCURRENCY).
    function_slots: Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
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
    /// An engine running at most `concurrency` rotations at once (at least one).
    pub(crate) fn new(concurrency: usize) -> Self {
        RotationRuntime {
            owner: new_uuid(),
            wake: Notify::new(),
            running: Mutex::new(HashSet::new()),
            inflight: watch::Sender::new(0),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            function_slots: Mutex::new(std::collections::HashMap::new()),
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

    /// Returns when someone calls [`kick`](Self::kick).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await
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

    /// The bound shared by every cycle of the function `name`.
    fn function_slots(&self, name: &str) -> Arc<Semaphore> {
        match self.function_slots.lock() {
            Ok(mut m) => m
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(EXTERNAL_FUNCTION_CONCURRENCY)))
                .clone(),
            // A poisoned map: a bound of its own still holds this cycle's share.
            Err(_) => Arc::new(Semaphore::new(EXTERNAL_FUNCTION_CONCURRENCY)),
        }
    }

    fn forget(&self, id: i64) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(&id);
        }
    }
}

impl Service {
    /// The address rotation functions call back on; set once the listener is bound.
    pub fn set_rotation_endpoint(&self, url: String) {
        let _ = self.rotation.endpoint.set(url);
    }

    /// At start-up: rotations interrupted when kura last stopped are due again (SQLite: this
    /// was the only process; PostgreSQL releases nothing, a dead node's leases expire).
    pub(crate) async fn recover_interrupted_rotations(&self) {
        match self.store.recover_rotations(self.clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                rotations = n,
                "resuming rotations that were running when kura last stopped"
            ),
            Err(e) => tracing::error!(detail = ?e, "cannot recover interrupted rotations"),
        }
    }

    /// One round of every background job (a test-clock move runs them inline).
    pub(crate) async fn background_tick(self: &Arc<Self>) {
        for job in super::super::scheduler::Job::ALL {
            self.run_job(job).await;
        }
    }

    /// Starts work on secrets whose rotation is due; returns how many were started.
    pub(crate) async fn rotation_tick(self: &Arc<Self>) -> Result<usize> {
        let free = self.rotation.permits.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let now = self.clock.now();
        let lease = now.plus_ms(FIRST_LEASE_MS);
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
                .claim_rotation(id, &self.rotation.owner, now, lease)
                .await;
            if !matches!(claimed, Ok(true)) {
                self.rotation.forget(id);
                claimed?;
                continue;
            }
            self.rotation.inflight.send_modify(|n| *n += 1);
            let svc = self.clone();
            tokio::spawn(async move {
                if let Err(e) = svc.drive(id, lease).await {
                    tracing::error!(secret_id = id, detail = ?e, "rotation run failed; it will be retried");
                }
                if let Err(e) = svc.store.release_rotation(id, &svc.rotation.owner).await {
                    tracing::warn!(secret_id = id, detail = ?e, "cannot release a rotation lease; it will expire");
                }
                svc.rotation.forget(id);
                drop(permit);
                svc.rotation.inflight.send_modify(|n| *n -= 1);
                // A place is free: start the next due rotation now, not at the next poll.
                svc.rotation.kick();
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
    /// `lease` is when the lease taken to start it ends.
    async fn drive(&self, id: i64, lease: Timestamp) -> Result<()> {
        // The end of the lease this server took in its last claim.
        let mut lease_end = Some(lease);
        // The record as the last step's transaction left it, when that transaction also
        // leased the next step: nothing to read, claim or record before running it.
        let mut leased: Option<SecretRecord> = None;
        // This secret's share of its function's bound, held until the cycle stops here.
        let mut slot: Option<tokio::sync::OwnedSemaphorePermit> = None;
        loop {
            let (s, already_leased) = match leased.take() {
                Some(s) => (s, true),
                None => match self.store.secret_by_id(id).await? {
                    Some(s) => (s, false),
                    None => return Ok(()),
                },
            };
            if s.is_scheduled_for_deletion() {
                return Ok(());
            }
            let now = self.clock.now();
            if s.run.phase != RotationPhase::InProgress {
                if !run::is_due(&s.rotation, now) || !self.start_scheduled(&s, now).await? {
                    return Ok(());
                }
                continue;
            }
            if !already_leased && s.run.resume_at.is_some_and(|t| t > now) {
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
            let settings = function.settings();
            if !function.in_process() && slot.is_none() {
                let slots = self.rotation.function_slots(&settings.name);
                match slots.clone().try_acquire_owned() {
                    Ok(p) => slot = Some(p),
                    Err(_) => {
                        // Waited for the function: the record read before may be old now.
                        slot = slots.acquire_owned().await.ok();
                        continue;
                    }
                }
            }
            // A step may start under the lease still held when it covers the step's whole
            // timeout plus half the margin (what a fresh claim would give, less half the margin).
            let step_ms = settings.timeout.as_millis() as i64;
            let covered =
                lease_end.filter(|end| *end >= now.plus_ms(step_ms + LEASE_MARGIN_MS / 2));
            if !already_leased {
                let until = match covered {
                    Some(end) => end,
                    None => {
                        let until = now.plus_ms(step_ms + LEASE_MARGIN_MS);
                        if !self
                            .store
                            .claim_rotation(id, &self.rotation.owner, now, until)
                            .await?
                        {
                            return Ok(()); // another server took over
                        }
                        lease_end = Some(until);
                        until
                    }
                };
                let (_, current) = self
                    .store
                    .modify_returning(id, &kura_store::NO_AUDIT, |st| {
                        let t = run::on_step_starting(
                            &st.secret.run,
                            &st.secret.rotation,
                            &token,
                            now,
                            until,
                        );
                        Ok(t.apply(&mut st.secret) != Outcome::Stale)
                    })
                    .await?;
                if !current {
                    continue;
                }
            }
            if self.test_pause_step == Some(step) {
                tracing::warn!(secret = %s.arn, step = step.as_str(), "test mode: rotation paused before this step");
                std::future::pending::<()>().await;
            }
            tracing::info!(secret = %s.arn, step = step.as_str(), attempt = s.run.attempt, function = %settings.name, "rotation step starting");
            let started = std::time::Instant::now();
            let outcome = self.run_step(&s, &*function, step, &token).await;
            self.audit_background(kura_store::AuditRecord {
                kind: "rotation".into(),
                principal: self.function_principal_arn(&settings.name),
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
                Ok(()) => {
                    // The next step starts in the same transaction when the lease covers it.
                    let now = self.clock.now();
                    let keep =
                        lease_end.filter(|end| *end >= now.plus_ms(step_ms + LEASE_MARGIN_MS / 2));
                    leased = self.step_done(&s, &*function, &token, step, keep).await?;
                }
                Err(failure) => {
                    self.step_failed(&s, &token, step, Some(&*function), failure)
                        .await?;
                    return Ok(());
                }
            }
        }
    }

    /// Opens the scheduled cycle of a secret; false if there was nothing to start after all.
    async fn start_scheduled(&self, s: &SecretRecord, now: Timestamp) -> Result<bool> {
        let token = new_uuid();
        let state = self
            .store
            .modify_returning(s.id, &kura_store::NO_AUDIT, |st| {
                let Some(window) = run::on_scheduled_start(&st.secret.run, &st.secret.rotation, now)
                else {
                    return Ok(None);
                };
                if window.missed {
                    tracing::warn!(secret = %st.secret.arn, "the rotation window passed while kura was not running; rotating now");
                }
                Ok(Some(self.start_cycle(st, &token, true, window.end, now)?))
            })
            .await;
        match state {
            Ok((st, opened)) => {
                if let Some(t) = &opened {
                    tracing::info!(secret = %st.secret.arn, version = %t, "scheduled rotation starting");
                    self.announce(&st.events);
                }
                Ok(opened.is_some())
            }
            Err(e) => {
                // A cycle that cannot even open (e.g. someone else's AWSPENDING) fails visibly
                // and waits for the next window instead of being retried every poll.
                let msg = run::clip_error(&e.message);
                tracing::warn!(secret = %s.arn, error = %msg, "scheduled rotation cannot start");
                let failed = self
                    .store
                    .modify(
                        s.id,
                        &mut |st| {
                            let t = run::on_start_failed(
                                &st.secret.run,
                                &st.secret.rotation,
                                &msg,
                                now,
                            );
                            let outcome = t.apply(&mut st.secret);
                            self.plan_renewal(&mut st.secret, now);
                            self.queue_announcement(st, &outcome);
                            Ok(())
                        },
                        &kura_store::NO_AUDIT,
                    )
                    .await?;
                self.announce(&failed.events);
                Ok(false)
            }
        }
    }

    /// Records a finished step; after finishSecret, checks AWSCURRENT really moved. With
    /// `lease_until`, the same transaction also starts the next step under that lease (what
    /// a claim and `on_step_starting` would record, one commit sooner) and the record is
    /// returned: the caller runs that step next.
    async fn step_done(
        &self,
        s: &SecretRecord,
        function: &dyn RotationFunction,
        token: &str,
        step: RotationStep,
        lease_until: Option<Timestamp>,
    ) -> Result<Option<SecretRecord>> {
        // A certificate's expiration becomes the secret's in the transaction that ends the
        // cycle (and, without RotationRules, sets when it is renewed).
        let expires = match step {
            RotationStep::FinishSecret => self.issued_expiration(s, token).await,
            _ => None,
        };
        let now = self.clock.now();
        let (state, (outcome, leased)) = self
            .store
            .modify_returning(s.id, &kura_store::NO_AUDIT, |st| {
                let t = run::on_step_succeeded(
                    &st.secret.run,
                    &st.secret.rotation,
                    &st.stages,
                    token,
                    step,
                    now,
                );
                let outcome = t.apply(&mut st.secret);
                if matches!(outcome, Outcome::Succeeded { .. })
                    && let Some(e) = expires
                {
                    st.secret.set_expiration(Some(e), now);
                    self.plan_renewal(&mut st.secret, now);
                }
                self.queue_announcement(st, &outcome);
                let leased = match (&outcome, lease_until) {
                    (Outcome::NextStep { .. }, Some(until)) => {
                        let t = run::on_step_starting(
                            &st.secret.run,
                            &st.secret.rotation,
                            token,
                            now,
                            until,
                        );
                        t.apply(&mut st.secret) != Outcome::Stale
                    }
                    _ => false,
                };
                Ok((outcome, leased))
            })
            .await?;
        tracing::info!(secret = %s.arn, step = step.as_str(), "rotation step done");
        if let Outcome::CurrentNotMoved { message } = outcome {
            self.step_failed(s, token, step, Some(function), StepFailure::own(message))
                .await?;
            return Ok(None);
        }
        if matches!(outcome, Outcome::Succeeded { .. }) {
            crate::metrics::rotation(s.rotation.function_arn.as_deref(), "succeeded");
            tracing::info!(secret = %state.secret.arn, version = %token, "rotation succeeded");
            self.announce(&state.events);
        }
        Ok(leased.then_some(state.secret))
    }

    /// Records a failed attempt: retry after a backoff inside the window, else the cycle fails.
    async fn step_failed(
        &self,
        s: &SecretRecord,
        token: &str,
        step: RotationStep,
        function: Option<&dyn RotationFunction>,
        failure: StepFailure,
    ) -> Result<()> {
        // Before the text goes anywhere: LastError, the log, the RotationFailed event.
        let msg = run::clip_error(&self.redacted_failure(s, &failure).await);
        let now = self.clock.now();
        let max_attempts = function.map(|f| f.settings().max_attempts).unwrap_or(1);
        let (state, outcome) = self
            .store
            .modify_returning(s.id, &kura_store::NO_AUDIT, |st| {
                let t = run::on_step_failed(
                    &st.secret.run,
                    &st.secret.rotation,
                    token,
                    step,
                    &msg,
                    max_attempts,
                    now,
                );
                let outcome = t.apply(&mut st.secret);
                if matches!(outcome, Outcome::Failed { .. }) {
                    self.plan_renewal(&mut st.secret, now);
                }
                self.queue_announcement(st, &outcome);
                Ok(outcome)
            })
            .await?;
        if matches!(outcome, Outcome::Failed { .. }) {
            crate::metrics::rotation(s.rotation.function_arn.as_deref(), "failed");
            tracing::warn!(secret = %s.arn, step = step.as_str(), error = %msg, "rotation failed; AWSCURRENT is unchanged");
            self.announce(&state.events);
        } else if let Outcome::Retry { at } = outcome {
            tracing::warn!(secret = %s.arn, step = step.as_str(), error = %msg, retry_at = at.epoch_seconds(), "rotation step failed; will retry");
        }
        Ok(())
    }

    /// Queues the event `outcome` announces in the transaction that made it, so the change
    /// and its notification commit together.
    fn queue_announcement(&self, st: &mut SecretState, outcome: &Outcome) {
        let e = match outcome.announcement() {
            Some(Announcement::RotationSucceeded { version }) => self.event(
                Event::RotationSucceeded,
                &st.secret.arn,
                &st.secret.name,
                Some(version),
                None,
            ),
            Some(Announcement::RotationFailed { version, message }) => self.event(
                Event::RotationFailed,
                &st.secret.arn,
                &st.secret.name,
                version,
                Some(message),
            ),
            None => return,
        };
        st.events.push(e);
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
        if entry.node.is_empty() {
            entry.node = self.node_id.clone();
        }
        if let Err(e) = self.audit(entry).await {
            tracing::error!(detail = ?e, "could not write the audit record of background work");
        }
    }
}
