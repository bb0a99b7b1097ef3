//! Background jobs (the purge of secrets whose recovery window has ended) and the test clock.

use std::sync::Arc;

use kura_core::{Error, ErrorCode, Result, Timestamp};

use super::{Caller, Service};
use crate::service::types::{AdvanceClockRequest, ClockResponse, SetClockRequest};

const PURGE_BATCH: usize = 100;
/// How long a node holds a secret it is purging before another may try.
const PURGE_LEASE_MS: i64 = 60_000;
/// How long a clock move waits for the rotations it started.
const CLOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Service {
    /// Destroys every secret whose deletion date has passed; returns how many.
    pub async fn purge_due(&self) -> Result<usize> {
        let mut purged = 0;
        loop {
            let due = self
                .store
                .due_for_purge(self.clock.now(), PURGE_BATCH)
                .await?;
            for id in &due {
                // On a shared database every node sees the same due secrets: the secret's
                // lease (rotation never runs on a secret pending deletion) says which purges.
                let now = self.clock.now();
                let owner = &self.rotation.owner;
                if !self
                    .store
                    .claim_rotation(*id, owner, now, now.plus_ms(PURGE_LEASE_MS))
                    .await?
                {
                    continue;
                }
                let gone = self.store.secret_by_id(*id).await?;
                if gone
                    .as_ref()
                    .is_none_or(|s| s.purge_at.is_none_or(|t| t > now))
                {
                    // Purged by another node, or restored meanwhile.
                    self.store.release_rotation(*id, owner).await?;
                    continue;
                }
                self.store.delete_secret(*id, &kura_store::NO_AUDIT).await?;
                if let Some(s) = gone {
                    self.audit_background(kura_store::AuditRecord {
                        kind: "job".into(),
                        principal: "kura".into(),
                        action: "job:PurgeSecret".into(),
                        resource: s.arn.clone(),
                        outcome: "Success".into(),
                        ..Default::default()
                    })
                    .await;
                    self.emit(
                        super::rotation::Event::SecretDeleted,
                        &s.arn,
                        &s.name,
                        None,
                        None,
                    )
                    .await;
                }
            }
            purged += due.len();
            if due.len() < PURGE_BATCH {
                break;
            }
        }
        if purged > 0 {
            tracing::info!(purged, "purged secrets whose recovery window ended");
        }
        Ok(purged)
    }

    fn test_clock(&self) -> Result<&kura_core::ManualClock> {
        self.test_clock.as_deref().ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidRequest,
                "The clock can only be set on a server started with --test-clock.",
            )
        })
    }

    /// Moves the test clock, then runs the jobs that are due at the new time — purges,
    /// rotations, notifications — so a test sees their effect as soon as the call returns.
    async fn clock_moved(self: &Arc<Self>) -> Result<ClockResponse> {
        // The jobs' changes are theirs, audited as jobs (they write with NO_AUDIT), not this
        // request's change.
        self.background_tick().await;
        self.wait_rotations_idle(CLOCK_WAIT).await;
        // Events the rotations just queued go out before the answer too.
        self.deliver_notifications().await?;
        Ok(ClockResponse {
            time: self.clock.now(),
        })
    }

    pub async fn set_clock(
        self: &Arc<Self>,
        _p: &Caller,
        req: SetClockRequest,
    ) -> Result<ClockResponse> {
        let clock = self.test_clock()?;
        if !req.time.is_finite() || req.time < 0.0 {
            return Err(Error::invalid_parameter(
                "Time must be epoch seconds (a non-negative number).",
            ));
        }
        clock.set(Timestamp((req.time * 1000.0) as i64));
        self.clock_moved().await
    }

    pub async fn advance_clock(
        self: &Arc<Self>,
        _p: &Caller,
        req: AdvanceClockRequest,
    ) -> Result<ClockResponse> {
        let clock = self.test_clock()?;
        if !req.seconds.is_finite() || req.seconds < 0.0 {
            return Err(Error::invalid_parameter(
                "Seconds must be a non-negative number: the clock only moves forward.",
            ));
        }
        clock.advance_ms((req.seconds * 1000.0) as i64);
        self.clock_moved().await
    }
}
