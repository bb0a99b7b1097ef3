//! Rotation: RotateSecret and CancelRotateSecret, schedules, and the engine that runs the four
//! steps (see `engine`). Progress lives in the secret's row, so a restarted server resumes.

mod engine;
mod exec;
pub(crate) mod functions;
pub(crate) mod notify;

use kura_core::labels::{self, Stages};
use kura_core::model::{RotationConfig, RotationPhase, SecretState};
use kura_core::names::validate_version_id;
use kura_core::{Error, Result, Timestamp};
use kura_rotation::run;
pub(crate) use kura_rotation::run::{plan_next, schedule_of};
use kura_store::ModifyReturning;

pub(crate) use engine::{DEFAULT_CONCURRENCY, RotationRuntime};
pub use notify::Event;

use super::{Caller, Service, new_uuid};
use crate::service::types::*;

/// A cycle started by hand may retry for this long.
const ON_DEMAND_WINDOW_MS: i64 = Timestamp::MS_PER_DAY;

impl Service {
    /// [`run::open_cycle`], with the RotationStarted event committed alongside.
    fn start_cycle(
        &self,
        st: &mut SecretState,
        token: &str,
        scheduled: bool,
        window_end: Timestamp,
        now: Timestamp,
    ) -> Result<String> {
        let t = run::open_cycle(st, token, scheduled, window_end, now)?;
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

impl Service {
    /// IBM's rule for secrets whose credentials expire (certificates, and access keys with a
    /// `key_ttl`): a schedule whose interval is longer than their lifetime would let each
    /// expire before the next is made.
    async fn check_lifetime_interval(
        &self,
        secret: &kura_core::model::SecretRecord,
        function_arn: Option<&str>,
        rules: Option<&RotationConfig>,
    ) -> Result<()> {
        use kura_rotation::functions::managed::{Managed, key_ttl_of};
        let function = function_arn.or(secret.rotation.function_arn.as_deref());
        let kind = Managed::ALL
            .into_iter()
            .filter(|m| m.issues_certificates() || matches!(m, Managed::AccessKey))
            .find(|m| function == Some(self.function_arn(m.name()).as_str()));
        let Some(kind) = kind else {
            return Ok(());
        };
        let cfg = match rules {
            Some(r) => r.clone(),
            None if secret.rotation.enabled => secret.rotation.clone(),
            None => return Ok(()),
        };
        let Some(schedule) = schedule_of(&cfg)? else {
            return Ok(());
        };
        let Some(first) = schedule.next_window(self.clock.now()) else {
            return Ok(());
        };
        let Some(second) = schedule.next_window(first.start) else {
            return Ok(());
        };
        let interval_s = (second.start.0 - first.start.0) / 1000;
        let current = self
            .version_plain(secret, kura_store::VersionSelector::Stage(labels::CURRENT))
            .await?;
        let Some(value) = current
            .as_ref()
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v.bytes()).ok())
        else {
            return Ok(());
        };
        let show = kura_core::duration::show_duration;
        if kind == Managed::AccessKey {
            // A malformed key_ttl is the rotation's to report, when it reads the value.
            let Ok(Some(ttl)) = key_ttl_of(&value) else {
                return Ok(());
            };
            if interval_s > ttl {
                return Err(Error::invalid_request(format!(
                    "The rotation interval ({}) is longer than the lifetime of this secret's access keys ({}, its key_ttl): each would expire before the next is made. Rotate at least every {}, or raise key_ttl.",
                    show(interval_s),
                    show(ttl),
                    show(ttl)
                )));
            }
            return Ok(());
        }
        let Some((template, ttl)) = self.certificate_ttl_of(&value).await? else {
            return Ok(());
        };
        if interval_s > ttl {
            return Err(Error::invalid_request(format!(
                "The rotation interval ({}) is longer than the lifetime of this secret's certificates ({}, from template {template} or the secret's ttl): each would expire before the next is issued. Rotate at least every {}.",
                show(interval_s),
                show(ttl),
                show(ttl)
            )));
        }
        Ok(())
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
        self.check_lifetime_interval(&secret, function_arn.as_deref(), rules.as_ref())
            .await?;
        let now = self.clock.now();
        let (state, started) = self
            .store
            .modify_returning(secret.id, &p.audit, |st| {
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
                if !immediately {
                    if st.secret.run.phase != RotationPhase::InProgress {
                        let anchor = cfg.last_rotated_at.unwrap_or(now);
                        plan_next(cfg, anchor.max(now));
                        self.plan_renewal(&mut st.secret, now);
                    }
                    return Ok(None);
                }
                if st.secret.run.phase == RotationPhase::InProgress {
                    if st.secret.run.token.as_deref() == Some(token.as_str()) {
                        return Ok(Some(token.clone())); // a retried call: same rotation
                    }
                    return Err(Error::invalid_request(format!(
                        "A previous rotation isn't complete: version {} is being rotated in (step {}). Wait for it, or call CancelRotateSecret.",
                        st.secret.run.token.as_deref().unwrap_or("?"),
                        st.secret.run.step.map(|s| s.as_str()).unwrap_or("?")
                    )));
                }
                let window_end = now.plus_ms(ON_DEMAND_WINDOW_MS);
                Ok(Some(self.start_cycle(st, &token, false, window_end, now)?))
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
            .modify(
                secret.id,
                &mut |st| {
                    if st.secret.is_scheduled_for_deletion() {
                        return Err(Error::marked_for_deletion());
                    }
                    let _ = run::on_cancel(&st.secret.run, &st.secret.rotation, now)
                        .apply(&mut st.secret);
                    Ok(())
                },
                &p.audit,
            )
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
