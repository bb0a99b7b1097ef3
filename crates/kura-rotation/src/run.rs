//! The rotation run state machine: how a secret's rotation cycle moves through its four steps,
//! retries, fails, succeeds or is cancelled, and when the next cycle is due. Pure: time is a
//! parameter, nothing is read or written here; the engine applies a [`Transition`] inside the
//! store transaction that loaded the values, and announces what its [`Outcome`] says.
//!
//! A cycle is identified by its token (the pending version's id). Every event names the token
//! it was about; an event for a cycle the secret no longer runs changes nothing.

use kura_core::labels::{self, Stages};
use kura_core::model::{
    NewVersion, RotationConfig, RotationPhase, RotationRun, RotationStep, SecretRecord,
    SecretState, VersionMeta,
};
use kura_core::schedule::{RotationRules, Schedule, Window};
use kura_core::{Error, Result, Timestamp};

/// First retry after this; doubles per attempt, at most `MAX_BACKOFF_MS`.
pub const BACKOFF_MS: i64 = 60_000;
pub const MAX_BACKOFF_MS: i64 = 3_600_000;
/// A scheduled window with no recorded end, and the shortest window a missed one is given.
pub const DEFAULT_WINDOW_MS: i64 = 3_600_000;
/// Longest LastError kept.
pub const MAX_ERROR_CHARS: usize = 500;

/// What the store should hold after an event, and what the engine should say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Transition {
    pub run: RotationRun,
    pub config: RotationConfig,
    pub outcome: Outcome,
}

/// What an event did to the cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The event was about a cycle the secret no longer runs (finished, cancelled, or replaced
    /// by a newer one): nothing changed.
    Stale,
    /// A step is about to run; should its runner die, the step is due again at `resume_at`.
    StepLeased { resume_at: Timestamp },
    /// The step succeeded; `next` is due now.
    NextStep { next: RotationStep },
    /// finishSecret reported success but AWSCURRENT is not on the cycle's version. Nothing
    /// changed: the engine records it as a failure of finishSecret with this message.
    CurrentNotMoved { message: String },
    /// The cycle is complete; RotationSucceeded is announced for `version`.
    Succeeded { version: String },
    /// The attempt failed; the step runs again at `at`.
    Retry { at: Timestamp },
    /// The cycle failed; RotationFailed is announced with `message`. `version` is `None` when
    /// the cycle could not even open.
    Failed {
        version: Option<String>,
        message: String,
    },
    /// The schedule is off; `stopped` when a cycle was in progress (it is now Failed).
    Cancelled { stopped: bool },
}

/// An event the engine queues in the same transaction as the transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement<'a> {
    RotationSucceeded {
        version: &'a str,
    },
    RotationFailed {
        version: Option<&'a str>,
        message: &'a str,
    },
}

impl Outcome {
    pub fn announcement(&self) -> Option<Announcement<'_>> {
        match self {
            Outcome::Succeeded { version } => Some(Announcement::RotationSucceeded { version }),
            Outcome::Failed { version, message } => Some(Announcement::RotationFailed {
                version: version.as_deref(),
                message,
            }),
            _ => None,
        }
    }
}

impl Transition {
    fn unchanged(run: &RotationRun, cfg: &RotationConfig, outcome: Outcome) -> Self {
        Transition {
            run: run.clone(),
            config: cfg.clone(),
            outcome,
        }
    }

    /// Writes the new state into `secret`; returns what happened, to log and announce.
    pub fn apply(self, secret: &mut SecretRecord) -> Outcome {
        secret.run = self.run;
        secret.rotation = self.config;
        self.outcome
    }
}

/// Cuts an error message to the length kept in LastError and events.
pub fn clip_error(msg: &str) -> String {
    if msg.chars().count() <= MAX_ERROR_CHARS {
        msg.to_string()
    } else {
        let mut s: String = msg.chars().take(MAX_ERROR_CHARS).collect();
        s.push('…');
        s
    }
}

/// The wait before the retry that follows failed attempt number `attempt` (1-based).
pub fn backoff_ms(attempt: i64) -> i64 {
    let shift = attempt.clamp(1, 20) - 1;
    (BACKOFF_MS << shift).min(MAX_BACKOFF_MS)
}

pub fn schedule_of(cfg: &RotationConfig) -> Result<Option<Schedule>> {
    Schedule::from_rules(&RotationRules {
        automatically_after_days: cfg.after_days,
        schedule_expression: cfg.schedule_expression.clone(),
        duration: cfg.duration.clone(),
    })
}

/// Sets `next_rotation_at` to the first window after `anchor` (none: on demand only).
pub fn plan_next(cfg: &mut RotationConfig, anchor: Timestamp) {
    let next = if cfg.enabled {
        schedule_of(cfg)
            .ok()
            .flatten()
            .and_then(|s| s.next_window(anchor))
    } else {
        None
    };
    cfg.next_rotation_at = next.as_ref().map(|w| w.start);
    cfg.next_rotation_end = next.map(|w: Window| w.end);
}

/// The schedule says a cycle should start (whether or not one is running).
pub fn is_due(cfg: &RotationConfig, now: Timestamp) -> bool {
    cfg.enabled && cfg.next_rotation_at.is_some_and(|t| t <= now)
}

/// `token` names the cycle the secret is running.
pub fn same_cycle(run: &RotationRun, token: &str) -> bool {
    run.phase == RotationPhase::InProgress && run.token.as_deref() == Some(token)
}

/// The window a scheduled cycle opens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CycleWindow {
    /// Retries stop here.
    pub end: Timestamp,
    /// The scheduled window passed while nothing ran (kura was down): the cycle runs now, with
    /// a window as long as the missed one (at least `DEFAULT_WINDOW_MS`).
    pub missed: bool,
}

/// The window a scheduled cycle would open with at `now`; `None` when none is due or a cycle
/// is already running.
pub fn on_scheduled_start(
    run: &RotationRun,
    cfg: &RotationConfig,
    now: Timestamp,
) -> Option<CycleWindow> {
    if run.phase == RotationPhase::InProgress || !is_due(cfg, now) {
        return None;
    }
    let start = cfg.next_rotation_at.unwrap_or(now);
    let end = cfg
        .next_rotation_end
        .unwrap_or(start.plus_ms(DEFAULT_WINDOW_MS));
    Some(if end > now {
        CycleWindow { end, missed: false }
    } else {
        CycleWindow {
            end: now.plus_ms((end.0 - start.0).max(DEFAULT_WINDOW_MS)),
            missed: true,
        }
    })
}

/// The run of a cycle opened at `now`: createSecret is due at once.
pub fn started(token: &str, window_end: Timestamp, now: Timestamp) -> RotationRun {
    RotationRun {
        phase: RotationPhase::InProgress,
        token: Some(token.to_string()),
        step: Some(RotationStep::CreateSecret),
        attempt: 1,
        last_error: None,
        last_attempt_at: None,
        resume_at: Some(now),
        window_end: Some(window_end),
    }
}

/// Opens a new cycle on `st`: clears a stale placeholder left by a failed or cancelled cycle,
/// adopts a value staged as AWSPENDING (by the caller's token, or — for scheduled cycles — any),
/// else adds a value-less AWSPENDING placeholder keyed by `token`. Returns the cycle's token.
pub fn open_cycle(
    st: &mut SecretState,
    token: &str,
    scheduled: bool,
    window_end: Timestamp,
    now: Timestamp,
) -> Result<String> {
    let current = st.stages.get(labels::CURRENT).cloned();
    let pending = st.stages.get(labels::PENDING).cloned();
    let mut token = token.to_string();
    match pending {
        Some(p) if Some(&p) != current.as_ref() => {
            let ours = st.secret.run.token.as_deref() == Some(p.as_str())
                && st.secret.run.phase != RotationPhase::InProgress;
            if p == token || (scheduled && !ours) {
                token = p; // a value staged for this rotation
            } else if ours {
                st.stages.remove(labels::PENDING);
                if st.version(&p).is_some_and(|v| !v.has_value) {
                    st.versions.retain(|v| v.version_id != p);
                }
            } else {
                return Err(Error::invalid_request(format!(
                    "A previous rotation isn't complete: AWSPENDING is on version {p}, not on the AWSCURRENT version. \
                     Finish it, or remove AWSPENDING from {p} with UpdateSecretVersionStage, then rotate again."
                )));
            }
        }
        _ => {}
    }
    if st.stages.get(labels::PENDING) != Some(&token) {
        if st.version(&token).is_some() {
            return Err(Error::invalid_request(format!(
                "ClientRequestToken {token} already names a version of this secret; send a new token to rotate again."
            )));
        }
        st.versions.push(VersionMeta {
            version_id: token.clone(),
            created_at: now,
            accessed_at: None,
            has_value: false,
        });
        st.new_versions.push(NewVersion {
            version_id: token.clone(),
            created_at: now,
            value: None,
        });
        st.stages.insert(labels::PENDING.to_string(), token.clone());
        labels::check_limits(&st.stages)?;
    }
    st.secret.run = started(&token, window_end, now);
    // The schedule moves on now: a failed cycle does not make the next one early.
    plan_next(&mut st.secret.rotation, now);
    Ok(token)
}

/// A scheduled cycle could not open (`message` says why, clipped): it fails visibly and waits
/// for the next window instead of being retried every poll.
pub fn on_start_failed(
    run: &RotationRun,
    cfg: &RotationConfig,
    message: &str,
    now: Timestamp,
) -> Transition {
    let mut t = Transition::unchanged(
        run,
        cfg,
        Outcome::Failed {
            version: None,
            message: message.to_string(),
        },
    );
    t.run.phase = RotationPhase::Failed;
    t.run.last_error = Some(message.to_string());
    t.run.last_attempt_at = Some(now);
    t.run.resume_at = None;
    plan_next(&mut t.config, now);
    t
}

/// The engine holds the cycle's lease until `lease_until` and starts a step at `now`.
pub fn on_step_starting(
    run: &RotationRun,
    cfg: &RotationConfig,
    token: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Transition {
    if !same_cycle(run, token) {
        return Transition::unchanged(run, cfg, Outcome::Stale);
    }
    let mut t = Transition::unchanged(
        run,
        cfg,
        Outcome::StepLeased {
            resume_at: lease_until,
        },
    );
    t.run.last_attempt_at = Some(now);
    // If this server dies mid-step, the step is due again once the lease ends.
    t.run.resume_at = Some(lease_until);
    t
}

/// `step` of the cycle `token` succeeded at `now`; `stages` are the secret's labels after it.
pub fn on_step_succeeded(
    run: &RotationRun,
    cfg: &RotationConfig,
    stages: &Stages,
    token: &str,
    step: RotationStep,
    now: Timestamp,
) -> Transition {
    // A result for another step is late (its node lost the lease and another moved on).
    if !same_cycle(run, token) || run.step != Some(step) {
        return Transition::unchanged(run, cfg, Outcome::Stale);
    }
    if let Some(next) = step.next() {
        let mut t = Transition::unchanged(run, cfg, Outcome::NextStep { next });
        t.run.step = Some(next);
        t.run.resume_at = Some(now);
        return t;
    }
    let current = stages.get(labels::CURRENT);
    if current.map(String::as_str) != Some(token) {
        let message = format!(
            "finishSecret succeeded but AWSCURRENT is still on version {}, not on {token}",
            current.map(String::as_str).unwrap_or("(none)")
        );
        return Transition::unchanged(run, cfg, Outcome::CurrentNotMoved { message });
    }
    let mut t = Transition::unchanged(
        run,
        cfg,
        Outcome::Succeeded {
            version: token.to_string(),
        },
    );
    t.run.phase = RotationPhase::Succeeded;
    t.run.step = None;
    t.run.resume_at = None;
    t.run.last_error = None;
    t.run.window_end = None;
    t.config.last_rotated_at = Some(now);
    plan_next(&mut t.config, now);
    t
}

/// An attempt at `step` of the cycle `token` failed at `now` with `message` (already redacted
/// and clipped): retried after a backoff while attempts remain and the retry falls inside the
/// cycle's window, else the cycle fails.
pub fn on_step_failed(
    run: &RotationRun,
    cfg: &RotationConfig,
    token: &str,
    step: RotationStep,
    message: &str,
    max_attempts: i64,
    now: Timestamp,
) -> Transition {
    if !same_cycle(run, token) || run.step != Some(step) {
        return Transition::unchanged(run, cfg, Outcome::Stale);
    }
    let mut t = Transition::unchanged(run, cfg, Outcome::Stale);
    t.run.last_error = Some(format!("{}: {message}", step.as_str()));
    t.run.last_attempt_at = Some(now);
    let next = now.plus_ms(backoff_ms(run.attempt));
    let in_window = run.window_end.is_none_or(|end| next < end);
    if run.attempt < max_attempts && in_window {
        t.run.attempt += 1;
        t.run.resume_at = Some(next);
        t.outcome = Outcome::Retry { at: next };
    } else {
        t.run.phase = RotationPhase::Failed;
        t.run.resume_at = None;
        t.outcome = Outcome::Failed {
            version: Some(token.to_string()),
            message: message.to_string(),
        };
    }
    t
}

/// CancelRotateSecret at `now`: the schedule goes off, and a running cycle stops as Failed.
/// Labels stay as they are (AWS does the same); the next cycle clears them.
pub fn on_cancel(run: &RotationRun, cfg: &RotationConfig, now: Timestamp) -> Transition {
    let stopped = run.phase == RotationPhase::InProgress;
    let mut t = Transition::unchanged(run, cfg, Outcome::Cancelled { stopped });
    t.config.enabled = false;
    t.config.next_rotation_at = None;
    t.config.next_rotation_end = None;
    if stopped {
        t.run.phase = RotationPhase::Failed;
        t.run.last_error = Some("cancelled by CancelRotateSecret".into());
        t.run.resume_at = None;
        t.run.last_attempt_at = run.last_attempt_at.or(Some(now));
    }
    t
}

/// After a write: whether AWSCURRENT moved. A manual move (outside a rotation) counts as a
/// rotation when the next date is computed.
pub fn after_manual_change(
    st: &mut SecretState,
    before_current: Option<&str>,
    now: Timestamp,
) -> bool {
    let moved = st.stages.get(labels::CURRENT).map(String::as_str) != before_current;
    if moved && st.secret.rotation.enabled && st.secret.run.phase != RotationPhase::InProgress {
        plan_next(&mut st.secret.rotation, now);
    }
    moved
}

#[cfg(test)]
mod tests;
