//! Console sessions: a random id in a cookie names a session record in the database holding
//! the signed-in principal and its CSRF token. In the database, so that every node of a
//! cluster knows every session: a browser may be sent to any node, and signing out on one
//! ends the session on all. The database holds only the id's SHA-256. Failed sign-ins are
//! counted per node, in memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kura_core::clock::{Clock, SystemClock};
use kura_core::{Result, Timestamp};
use kura_store::prelude::*;
use kura_store::{SessionCutoff, SessionRecord};

use crate::service::Principal;

/// How long a console session lives (`--console-idle-timeout`, `--console-session-lifetime`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Ends a session nobody used for this long.
    pub idle_timeout: Duration,
    /// Ends a session this long after sign-in, however busy.
    pub lifetime: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            idle_timeout: Duration::from_secs(15 * 60),
            lifetime: Duration::from_secs(8 * 3600),
        }
    }
}

/// What a request learns of its session.
pub struct Current {
    pub principal: Principal,
    pub csrf: String,
}

/// Failed sign-ins from one address allowed within [`FAILURE_WINDOW`]; more are refused
/// unchecked until the window has passed.
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);
/// Sessions open at once: a flood of sign-ins cannot grow the table without bound.
const MAX_SESSIONS: i64 = 10_000;

pub struct Console {
    pub settings: Settings,
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

/// A poisoned lock only means another request panicked; the table itself is still sound.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 32];
    kura_crypto::random::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// What the database keeps of the cookie's id.
fn stored_id(id: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        id.as_bytes(),
    ))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Console {
    pub fn new(settings: Settings) -> Self {
        Console {
            settings,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Sessions unused since, or begun before, these times have ended. Wall-clock time:
    /// timeouts are real time even on a server whose service clock is a test's.
    fn cutoff(&self, now: Timestamp) -> SessionCutoff {
        SessionCutoff {
            idle_before: Timestamp(now.0.saturating_sub(millis(self.settings.idle_timeout))),
            started_before: Timestamp(now.0.saturating_sub(millis(self.settings.lifetime))),
        }
    }

    /// A new session for `principal`; its id goes in the cookie.
    pub async fn open(&self, store: &dyn Store, principal: Principal) -> Result<String> {
        let id = random_hex()?;
        let now = SystemClock.now();
        let record = SessionRecord {
            id: stored_id(&id),
            user_name: principal.user_name,
            arn: principal.arn,
            user_id: principal.user_id,
            access_key_id: principal.access_key_id,
            scope_secret_id: principal.scope_secret_id,
            csrf: random_hex()?,
            created_at: now,
            last_seen: now,
        };
        if !store
            .open_session(&record, self.cutoff(now), MAX_SESSIONS)
            .await?
        {
            return Err(kura_core::Error::new(
                kura_core::ErrorCode::LimitExceeded,
                "Too many console sessions are open; try again later.",
            ));
        }
        Ok(id)
    }

    /// The session `id` names, if it has not timed out; using it resets its idle time.
    pub async fn use_session(&self, store: &dyn Store, id: &str) -> Result<Option<Current>> {
        let now = SystemClock.now();
        let Some(s) = store
            .use_session(&stored_id(id), self.cutoff(now), now)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Current {
            principal: Principal {
                user_name: s.user_name,
                arn: s.arn,
                user_id: s.user_id,
                access_key_id: s.access_key_id,
                scope_secret_id: s.scope_secret_id,
            },
            csrf: s.csrf,
        }))
    }

    pub async fn end(&self, store: &dyn Store, id: &str) -> Result<()> {
        store.end_session(&stored_id(id)).await
    }

    /// Whether `ip` has failed to sign in too often lately.
    pub fn throttled(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        match failures.get_mut(&ip) {
            Some(times) => {
                times.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
                times.len() >= MAX_FAILURES
            }
            None => false,
        }
    }

    pub fn failed(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        // Forget addresses whose failures are all old, so the table stays small.
        failures.retain(|_, times| {
            times
                .last()
                .is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW)
        });
        failures.entry(ip).or_default().push(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_failures_throttle_one_address() {
        let console = Console::new(Settings::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(!console.throttled(a));
            console.failed(a);
        }
        assert!(console.throttled(a));
        assert!(!console.throttled(b));
    }

    #[test]
    fn the_database_keeps_a_digest_of_the_id() {
        let id = random_hex().unwrap();
        assert_eq!(stored_id(&id).len(), 64);
        assert_ne!(stored_id(&id), id);
        assert_eq!(stored_id(&id), stored_id(&id));
    }
}
