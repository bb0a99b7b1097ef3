//! Expiry of secrets: Kura.SetSecretExpiration, the notices before and at an expiration
//! (`SecretExpiring`, `SecretExpired`), and renewal by expiry of certificate secrets that
//! rotate without RotationRules.

use std::collections::BTreeSet;

use kura_core::expiry::{self, Notices, RENEWAL_RETRY_MS};
use kura_core::model::{RotationPhase, SecretRecord, SecretState};
use kura_core::{Error, ErrorCode, Result, Timestamp};
use kura_rotation::functions::managed::Managed;

use super::types::{SecretVersionResponse, SetSecretExpirationRequest};
use super::{Caller, Service};

/// Secrets whose notices one pass of the job sends, per batch.
const NOTICE_BATCH: usize = 100;
/// Batches per pass: the rest waits for the next pass.
const NOTICE_BATCHES: usize = 20;

impl Service {
    pub async fn set_secret_expiration(
        &self,
        p: &Caller,
        req: SetSecretExpirationRequest,
    ) -> Result<SecretVersionResponse> {
        let now = self.clock.now();
        let expires = match req.expiration_date {
            None => None,
            // Up to the year 5138: anything later is no expiration but a typo.
            Some(t) if (0.0..1e11).contains(&t) => Some(Timestamp((t * 1000.0) as i64)),
            Some(_) => {
                return Err(Error::invalid_parameter(
                    "ExpirationDate must be epoch seconds (a number, e.g. 1893456000), or null to clear the expiration.",
                ));
            }
        };
        if let Some(t) = expires
            && t <= now
        {
            return Err(Error::invalid_parameter(format!(
                "ExpirationDate {} is not in the future (now is {}): send a later time, or null to clear the expiration.",
                t.epoch_seconds(),
                now.epoch_seconds()
            )));
        }
        let secret = self.resolve_live(p, &req.secret_id).await?;
        let state = self
            .store
            .modify(
                secret.id,
                &mut |st| {
                    if st.secret.is_scheduled_for_deletion() {
                        return Err(Error::marked_for_deletion());
                    }
                    st.secret.set_expiration(expires, now);
                    self.plan_renewal(&mut st.secret, now);
                    Ok(())
                },
                &p.audit,
            )
            .await?;
        tracing::info!(
            secret = %state.secret.arn,
            expires = ?expires.map(|t| t.epoch_seconds()),
            by = %p.arn,
            "secret expiration set"
        );
        Ok(SecretVersionResponse {
            arn: state.secret.arn,
            name: state.secret.name,
            version_id: None,
            version_stages: None,
        })
    }

    /// The background job: queues the expiry notices that have fallen due, each in the
    /// transaction that moves the secret's next notice on, so a notice is queued once even
    /// across restarts and nodes, and one crossed while kura was down is sent when it is back.
    pub(crate) async fn expiry_notices_tick(&self) -> Result<()> {
        let mut wanted: Option<BTreeSet<i64>> = None;
        for _ in 0..NOTICE_BATCHES {
            let now = self.clock.now();
            let due = self.store.expiry_notices_due(now, NOTICE_BATCH).await?;
            if due.is_empty() {
                break;
            }
            // The days some target asked for: only those are queued (a notice time no target
            // asked for just moves on; after a long sleep most of them are).
            let wanted = match &wanted {
                Some(w) => w,
                None => wanted.insert(
                    self.store
                        .list_notification_targets()
                        .await?
                        .into_iter()
                        .flat_map(|t| t.expiring_days)
                        .collect(),
                ),
            };
            for id in &due {
                let done = self
                    .store
                    .modify(
                        *id,
                        &mut |st| {
                            self.queue_notices(st, wanted, now);
                            Ok(())
                        },
                        &kura_store::NO_AUDIT,
                    )
                    .await;
                match done {
                    Ok(st) => self.announce(&st.events),
                    // Destroyed meanwhile.
                    Err(e) if e.code == ErrorCode::ResourceNotFound => {}
                    Err(e) => return Err(e),
                }
            }
            if due.len() < NOTICE_BATCH {
                break;
            }
        }
        Ok(())
    }

    /// Queues what is due at `now` on `st` (of `SecretExpiring`, the days in `wanted`) and
    /// sets when the next notice is due.
    fn queue_notices(&self, st: &mut SecretState, wanted: &BTreeSet<i64>, now: Timestamp) {
        let s = &st.secret;
        let (Some(expires), Some(from)) = (s.expires_at, s.expiry_notice_at) else {
            return;
        };
        // Another node sent these first, or the secret is pending deletion.
        if from > now || s.is_scheduled_for_deletion() {
            return;
        }
        let events = match expiry::notices_due(expires, from, now) {
            Notices::Expired => vec![self.expiry_event(&s.arn, &s.name, expires, None)],
            Notices::Expiring(days) => days
                .into_iter()
                .filter(|d| wanted.contains(d))
                .map(|d| self.expiry_event(&s.arn, &s.name, expires, Some(d)))
                .collect(),
        };
        st.events.extend(events);
        st.secret.expiry_notice_at = expiry::next_notice(expires, now);
    }

    /// Whether the rotation function `function_arn` names issues certificates.
    pub(crate) fn issues_certificates(&self, function_arn: Option<&str>) -> bool {
        function_arn
            .and_then(|arn| self.function_name_of(arn).ok())
            .and_then(|name| Managed::from_name(&name))
            .is_some_and(Managed::issues_certificates)
    }

    /// Renewal by expiry: a certificate secret that rotates without RotationRules is renewed
    /// 31 days before its certificate expires (two thirds into a life under 93 days), and a
    /// renewal that failed is tried again a day later until the certificate expires. Call
    /// after anything that plans the next rotation; other secrets are left as they are.
    pub(crate) fn plan_renewal(&self, s: &mut SecretRecord, now: Timestamp) {
        let cfg = &s.rotation;
        if !cfg.enabled
            || cfg.has_rules()
            || s.run.phase == RotationPhase::InProgress
            || !self.issues_certificates(cfg.function_arn.as_deref())
        {
            return;
        }
        let Some(expires) = s.expires_at else {
            return;
        };
        let next = if s.run.phase == RotationPhase::Failed {
            let retry = now.plus_ms(RENEWAL_RETRY_MS);
            (retry < expires).then_some(retry)
        } else {
            let issued = cfg.last_rotated_at.unwrap_or(now);
            Some(expiry::renewal_at(issued, expires).max(now))
        };
        s.rotation.next_rotation_at = next;
        s.rotation.next_rotation_end = None;
    }

    /// [`kura_rotation::run::after_manual_change`], keeping a certificate's renewal date.
    pub(crate) fn after_manual_change(
        &self,
        st: &mut SecretState,
        before_current: Option<&str>,
        now: Timestamp,
    ) -> bool {
        let moved = kura_rotation::run::after_manual_change(st, before_current, now);
        if moved {
            self.plan_renewal(&mut st.secret, now);
        }
        moved
    }

    /// The expiration a certificate function wrote into version `token` of `s`
    /// (`expiration_date`, RFC 3339); `None` for other functions, or a value without one.
    pub(crate) async fn issued_expiration(
        &self,
        s: &SecretRecord,
        token: &str,
    ) -> Option<Timestamp> {
        if !self.issues_certificates(s.rotation.function_arn.as_deref()) {
            return None;
        }
        let plain = match self
            .version_plain(s, kura_store::VersionSelector::Id(token))
            .await
        {
            Ok(p) => p?,
            Err(e) => {
                tracing::warn!(secret = %s.arn, detail = ?e, "cannot read the new certificate's expiration");
                return None;
            }
        };
        let value: serde_json::Value = serde_json::from_slice(plain.bytes()).ok()?;
        expiry::parse_time(value.get("expiration_date")?.as_str()?)
    }
}
