//! Rotation: RotateSecret and CancelRotateSecret, schedules, and the engine that runs the four
//! steps (see `engine`). Progress lives in the secret's row, so a restarted server resumes.

mod engine;
mod exec;
pub(crate) mod functions;
pub(crate) mod managed;
mod notify;
mod redact;

use kura_core::labels::{self, Stages};
use kura_core::model::{
    NewVersion, RotationConfig, RotationPhase, RotationRun, RotationStep, SecretState, VersionMeta,
};
use kura_core::names::validate_version_id;
use kura_core::schedule::{RotationRules as Rules, Schedule, Window};
use kura_core::{Error, Result, Timestamp};

pub(crate) use engine::RotationRuntime;
pub use notify::Event;

use super::{Caller, Service, new_uuid};
use crate::service::types::*;

/// A cycle started by hand may retry for this long.
const ON_DEMAND_WINDOW_MS: i64 = Timestamp::MS_PER_DAY;

pub(crate) fn schedule_of(cfg: &RotationConfig) -> Result<Option<Schedule>> {
    Schedule::from_rules(&Rules {
        automatically_after_days: cfg.after_days,
        schedule_expression: cfg.schedule_expression.clone(),
        duration: cfg.duration.clone(),
    })
}

/// Sets `next_rotation_at` to the first window after `anchor` (none: on demand only).
pub(crate) fn plan_next(cfg: &mut RotationConfig, anchor: Timestamp) {
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

/// After a write: whether AWSCURRENT moved. A manual move (outside a rotation) counts as a
/// rotation when the next date is computed.
pub(crate) fn after_manual_change(
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

/// Opens a new cycle on `st`: clears a stale placeholder left by a failed or cancelled cycle,
/// adopts a value staged as AWSPENDING (by the caller's token, or — for scheduled cycles — any),
/// else adds a value-less AWSPENDING placeholder keyed by `token`.
fn open_cycle(
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
    st.secret.run = RotationRun {
        phase: RotationPhase::InProgress,
        token: Some(token.clone()),
        step: Some(RotationStep::CreateSecret),
        attempt: 1,
        last_error: None,
        last_attempt_at: None,
        resume_at: Some(now),
        window_end: Some(window_end),
    };
    // The schedule moves on now: a failed cycle does not make the next one early.
    plan_next(&mut st.secret.rotation, now);
    Ok(token)
}

impl Service {
    /// [`open_cycle`], with the RotationStarted event committed alongside.
    fn start_cycle(
        &self,
        st: &mut SecretState,
        token: &str,
        scheduled: bool,
        window_end: Timestamp,
        now: Timestamp,
    ) -> Result<String> {
        let t = open_cycle(st, token, scheduled, window_end, now)?;
        let e = self.event(
            Event::RotationStarted,
            &st.secret.arn,
            &st.secret.name,
            Some(&t),
            None,
        );
        st.events.push(e);
        Ok(t)
    }
}

fn has_pending_elsewhere(stages: &Stages) -> bool {
    let p = stages.get(labels::PENDING);
    p.is_some() && p != stages.get(labels::CURRENT)
}

impl Service {
    pub async fn rotate_secret(
        &self,
        p: &Caller,
        req: RotateSecretRequest,
    ) -> Result<SecretVersionResponse> {
        let token = match req.client_request_token {
            Some(t) => {
                validate_version_id("ClientRequestToken", &t)?;
                t
            }
            None => new_uuid(),
        };
        let function_arn = match &req.rotation_lambda_arn {
            Some(arn) => {
                let name = self.function_name_of(arn)?;
                self.load_function(&name).await?;
                Some(self.function_arn(&name))
            }
            None => None,
        };
        let rules = match req.rotation_rules {
            Some(r) => {
                let probe = RotationConfig {
                    after_days: r.automatically_after_days,
                    schedule_expression: r.schedule_expression.clone(),
                    duration: r.duration.clone(),
                    ..Default::default()
                };
                match schedule_of(&probe)? {
                    None => {
                        return Err(Error::invalid_parameter(
                            "RotationRules needs AutomaticallyAfterDays or ScheduleExpression; omit RotationRules to rotate on demand only.",
                        ));
                    }
                    Some(s) if s.next_window(self.clock.now()).is_none() => {
                        return Err(Error::invalid_parameter(format!(
                            "ScheduleExpression {} never fires again: its years are over.",
                            probe.schedule_expression.as_deref().unwrap_or("")
                        )));
                    }
                    Some(_) => {}
                }
                Some(probe)
            }
            None => None,
        };
        let immediately = req.rotate_immediately.unwrap_or(true);
        let secret = self.resolve_live(p, &req.secret_id).await?;
        let now = self.clock.now();
        let mut started = None;
        let state = self
            .store
            .modify(secret.id, &mut |st| {
                if st.secret.is_scheduled_for_deletion() {
                    return Err(Error::marked_for_deletion());
                }
                let cfg = &mut st.secret.rotation;
                if let Some(f) = &function_arn {
                    cfg.function_arn = Some(f.clone());
                }
                if cfg.function_arn.is_none() {
                    return Err(Error::invalid_request(format!(
                        "This secret has no rotation function: send RotationLambdaARN, e.g. {} (built in), or a function created with Kura.CreateRotationFunction.",
                        self.function_arn(functions::KURA_PASSWORD)
                    )));
                }
                if let Some(r) = &rules {
                    cfg.after_days = r.after_days;
                    cfg.schedule_expression = r.schedule_expression.clone();
                    cfg.duration = r.duration.clone();
                }
                cfg.enabled = true;
                started = None;
                if !immediately {
                    if st.secret.run.phase != RotationPhase::InProgress {
                        let anchor = cfg.last_rotated_at.unwrap_or(now);
                        plan_next(cfg, anchor.max(now));
                    }
                    return Ok(());
                }
                if st.secret.run.phase == RotationPhase::InProgress {
                    if st.secret.run.token.as_deref() == Some(token.as_str()) {
                        started = Some(token.clone()); // a retried call: same rotation
                        return Ok(());
                    }
                    return Err(Error::invalid_request(format!(
                        "A previous rotation isn't complete: version {} is being rotated in (step {}). Wait for it, or call CancelRotateSecret.",
                        st.secret.run.token.as_deref().unwrap_or("?"),
                        st.secret.run.step.map(|s| s.as_str()).unwrap_or("?")
                    )));
                }
                let window_end = now.plus_ms(ON_DEMAND_WINDOW_MS);
                started = Some(self.start_cycle(st, &token, false, window_end, now)?);
                Ok(())
            })
            .await?;
        if let Some(t) = &started {
            tracing::info!(secret = %state.secret.arn, version = %t, by = %p.arn, "rotation requested");
            self.announce(&state.events);
            self.rotation.kick();
        }
        Ok(SecretVersionResponse {
            arn: state.secret.arn,
            name: state.secret.name,
            version_id: started,
            version_stages: None,
        })
    }

    pub async fn cancel_rotate_secret(
        &self,
        p: &Caller,
        req: SecretIdRequest,
    ) -> Result<SecretVersionResponse> {
        let secret = self.resolve_live(p, &req.secret_id).await?;
        let now = self.clock.now();
        let state = self
            .store
            .modify(secret.id, &mut |st| {
                if st.secret.is_scheduled_for_deletion() {
                    return Err(Error::marked_for_deletion());
                }
                st.secret.rotation.enabled = false;
                st.secret.rotation.next_rotation_at = None;
                st.secret.rotation.next_rotation_end = None;
                let run = &mut st.secret.run;
                if run.phase == RotationPhase::InProgress {
                    // Labels stay as they are (AWS does the same); the next cycle clears them.
                    run.phase = RotationPhase::Failed;
                    run.last_error = Some("cancelled by CancelRotateSecret".into());
                    run.resume_at = None;
                    run.last_attempt_at = run.last_attempt_at.or(Some(now));
                }
                Ok(())
            })
            .await?;
        tracing::info!(secret = %state.secret.arn, by = %p.arn, "rotation cancelled");
        let pending = has_pending_elsewhere(&state.stages)
            .then(|| state.stages.get(labels::PENDING).cloned())
            .flatten();
        Ok(SecretVersionResponse {
            arn: state.secret.arn,
            name: state.secret.name,
            version_id: pending,
            version_stages: None,
        })
    }
}
