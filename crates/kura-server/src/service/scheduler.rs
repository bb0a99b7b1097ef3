//! Background work, under one scheduler: each job runs on its own interval (and, for those
//! that react to requests, as soon as something wakes the scheduler), one at a time, and its
//! failure is logged under its own name without stopping the others. On a shared database
//! every node runs the scheduler; each job claims its work in the database (leases, outbox
//! claims), so the work itself is done once.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Service;

/// The jobs, and how often each looks for work when nothing wakes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    /// Start and continue rotations that are due (claimed by lease).
    Rotations,
    /// Deliver queued events to notification targets (claimed per outbox item).
    Notifications,
    /// Delete rotation functions' short-lived access keys whose time is up.
    KeyExpiry,
    /// Destroy secrets whose recovery window has ended (claimed by lease).
    Purge,
    /// Move data keys to a rotated key's new version (claimed by lease per key).
    KeyRewrap,
    /// Queue the notices of secrets that expire soon or expired (claimed per secret by the
    /// transaction that moves its next notice on).
    ExpiryNotices,
}

impl Job {
    // Expiry notices before notifications: a test clock's move delivers what it made due.
    pub(crate) const ALL: [Job; 6] = [
        Job::Rotations,
        Job::ExpiryNotices,
        Job::Notifications,
        Job::KeyExpiry,
        Job::Purge,
        Job::KeyRewrap,
    ];

    fn name(self) -> &'static str {
        match self {
            Job::Rotations => "rotations",
            Job::Notifications => "notifications",
            Job::KeyExpiry => "key expiry",
            Job::Purge => "purge",
            Job::KeyRewrap => "key re-wrap",
            Job::ExpiryNotices => "expiry notices",
        }
    }

    fn every(self) -> Duration {
        match self {
            Job::Rotations | Job::Notifications | Job::KeyRewrap => Duration::from_secs(5),
            Job::KeyExpiry | Job::ExpiryNotices => Duration::from_secs(30),
            Job::Purge => Duration::from_secs(60),
        }
    }

    /// Whether a wake-up (a rotation requested, an event queued) is for this job.
    fn woken_by_requests(self) -> bool {
        matches!(self, Job::Rotations | Job::Notifications | Job::KeyRewrap)
    }
}

impl Service {
    /// Runs one job once.
    pub(crate) async fn run_job(self: &Arc<Self>, job: Job) {
        let result = match job {
            Job::Rotations => self.rotation_tick().await.map(|_| ()),
            Job::Notifications => self.deliver_notifications().await,
            Job::KeyExpiry => self.sweep_expired_access_keys().await,
            Job::ExpiryNotices => self.expiry_notices_tick().await,
            Job::Purge => self.purge_due().await.map(|_| ()),
            Job::KeyRewrap => self.rewrap_tick().await,
        };
        if let Err(e) = result {
            tracing::error!(job = job.name(), detail = ?e, "a background job failed; it runs again on its next turn");
        }
    }

    /// Runs every job until the process ends.
    pub async fn run_jobs(self: Arc<Self>) {
        self.recover_interrupted_rotations().await;
        let start = Instant::now();
        let mut next: Vec<(Job, Instant)> = Job::ALL.iter().map(|j| (*j, start)).collect();
        loop {
            let now = Instant::now();
            for (job, at) in next.iter_mut() {
                if *at <= now {
                    self.run_job(*job).await;
                    *at = Instant::now() + job.every();
                }
            }
            let soonest = next.iter().map(|(_, at)| *at).min().unwrap_or(now);
            let woken = tokio::select! {
                _ = self.rotation.woken() => true,
                _ = tokio::time::sleep_until(soonest) => false,
            };
            if woken {
                let now = Instant::now();
                for (job, at) in next.iter_mut() {
                    if job.woken_by_requests() {
                        *at = now;
                    }
                }
            }
        }
    }
}
