//! Console sessions: a random id in a cookie names a server-side session holding the signed-in
//! principal and its CSRF token. In memory, per node: a cluster behind a load balancer needs
//! sticky sessions (see docs/ARCHITECTURE.md).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kura_core::Result;

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

/// A message for the next page a session sees (the outcome of a form, after its redirect).
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

struct Session {
    principal: Principal,
    csrf: String,
    created: Instant,
    last_seen: Instant,
    flash: Option<Flash>,
}

/// What a request learns of its session.
pub struct Current {
    pub principal: Principal,
    pub csrf: String,
    pub flash: Option<Flash>,
}

/// Failed sign-ins from one address allowed within [`FAILURE_WINDOW`]; more are refused
/// unchecked until the window has passed.
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(5 * 60);
/// Sessions held at once: a flood of sign-ins cannot grow the table without bound.
const MAX_SESSIONS: usize = 10_000;

pub struct Console {
    pub settings: Settings,
    sessions: Mutex<HashMap<String, Session>>,
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

impl Console {
    pub fn new(settings: Settings) -> Self {
        Console {
            settings,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.settings.idle_timeout
            && now.duration_since(s.created) < self.settings.lifetime
    }

    /// A new session for `principal`; its id goes in the cookie.
    pub fn open(&self, principal: Principal) -> Result<String> {
        let id = random_hex()?;
        let now = Instant::now();
        let session = Session {
            principal,
            csrf: random_hex()?,
            created: now,
            last_seen: now,
            flash: None,
        };
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| self.live(s, now));
        if sessions.len() >= MAX_SESSIONS {
            return Err(kura_core::Error::new(
                kura_core::ErrorCode::LimitExceeded,
                "Too many console sessions are open on this node; try again later.",
            ));
        }
        sessions.insert(id.clone(), session);
        Ok(id)
    }

    /// The session `id` names, if it has not timed out; using it resets its idle time and
    /// takes its flash message.
    pub fn use_session(&self, id: &str) -> Option<Current> {
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        let s = sessions.get_mut(id)?;
        if !self.live(s, now) {
            sessions.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(Current {
            principal: s.principal.clone(),
            csrf: s.csrf.clone(),
            flash: s.flash.take(),
        })
    }

    pub fn end(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }

    pub fn flash(&self, id: &str, flash: Flash) {
        if let Some(s) = lock(&self.sessions).get_mut(id) {
            s.flash = Some(flash);
        }
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

    fn principal() -> Principal {
        Principal {
            user_name: "alice".into(),
            arn: "arn:aws:iam::123456789012:user/alice".into(),
            user_id: "AIDAEXAMPLE".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            scope_secret_id: None,
        }
    }

    #[test]
    fn a_session_ends_after_its_idle_timeout() {
        let console = Console::new(Settings {
            idle_timeout: Duration::from_millis(50),
            lifetime: Duration::from_secs(60),
        });
        let id = console.open(principal()).unwrap();
        assert!(console.use_session(&id).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(console.use_session(&id).is_none());
        assert!(console.use_session("not-a-session").is_none());
    }

    #[test]
    fn a_session_ends_after_its_lifetime_however_busy() {
        let console = Console::new(Settings {
            idle_timeout: Duration::from_secs(60),
            lifetime: Duration::from_millis(100),
        });
        let id = console.open(principal()).unwrap();
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(20));
            assert!(console.use_session(&id).is_some());
        }
        std::thread::sleep(Duration::from_millis(80));
        assert!(console.use_session(&id).is_none());
    }

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
    fn a_flash_is_shown_once_and_sessions_have_distinct_tokens() {
        let console = Console::new(Settings::default());
        let id = console.open(principal()).unwrap();
        let other = console.open(principal()).unwrap();
        assert_ne!(id, other);
        console.flash(
            &id,
            Flash {
                ok: true,
                text: "done".into(),
            },
        );
        let first = console.use_session(&id).unwrap();
        assert_eq!(first.flash.unwrap().text, "done");
        let second = console.use_session(&id).unwrap();
        assert!(second.flash.is_none());
        assert_ne!(first.csrf, console.use_session(&other).unwrap().csrf);
        console.end(&id);
        assert!(console.use_session(&id).is_none());
    }
}
