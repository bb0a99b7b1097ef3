//! What this node hears from the database: identity and key changes (passed on to the
//! service's caches as [`Change`](crate::Change)s) and changes to what the read cache holds
//! (dropped here, in the order they committed).
//!
//! Freshness: PostgreSQL delivers a listener the notifications of committed transactions in
//! commit order. So when this node's own ping, sent after a lookup began, comes back on the
//! cache channel, every change committed before the lookup began has been heard and dropped:
//! the cache may answer. Lookups that arrive while a ping is in flight wait for the next one,
//! so one ping (one tiny transaction) serves every lookup of its round trip.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};

use super::{CACHE_CHANNEL, IDENTITY_CHANNEL, KEYS_CHANNEL, PgStore};
use crate::cache::{Barrier, ReadCache};

/// How long a lookup waits for its ping. A ping that does not come back in time means the
/// listener may be deaf: the cache is turned off (lookups read the database) and the
/// listener starts over, turning it on again once it listens.
const PING_WAIT: Duration = Duration::from_millis(500);

/// Pings sent and asked for; the listener reports those heard.
struct Freshness {
    /// This node's pings among everyone's on the channel.
    token: String,
    /// (sent, wanted): the highest ping sent, and the highest a lookup waits for.
    pings: Mutex<(u64, u64)>,
    wake: Notify,
    heard: watch::Sender<u64>,
    /// Asks the listener to start over (a ping was not heard in time).
    restart: Notify,
}

#[async_trait]
impl Barrier for Freshness {
    async fn fresh(&self) -> bool {
        // The next ping to be sent is sent after this moment.
        let want = {
            let mut p = self.pings.lock().unwrap_or_else(|e| e.into_inner());
            let want = p.0 + 1;
            p.1 = p.1.max(want);
            want
        };
        self.wake.notify_one();
        let mut heard = self.heard.subscribe();
        let fresh = matches!(
            tokio::time::timeout(PING_WAIT, heard.wait_for(|h| *h >= want)).await,
            Ok(Ok(_))
        );
        if !fresh {
            self.restart.notify_one();
        }
        fresh
    }
}

impl Freshness {
    /// Sends pings while lookups want them, one at a time.
    async fn send_pings(self: Arc<Self>, pool: sqlx::PgPool) {
        loop {
            self.wake.notified().await;
            loop {
                if pool.is_closed() {
                    return;
                }
                let seq = {
                    let mut p = self.pings.lock().unwrap_or_else(|e| e.into_inner());
                    if p.1 <= p.0 {
                        break;
                    }
                    p.0 += 1;
                    p.0
                };
                let payload = format!("p:{}:{seq}", self.token);
                // A ping carries no state, so its commit need not wait for the WAL flush:
                // the ordering the barrier relies on is the notification queue's (commit
                // order), which an asynchronous commit keeps. Saves an fsync per ping.
                if let Err(e) = sqlx::query(
                    "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)",
                )
                .bind(CACHE_CHANNEL)
                .bind(payload)
                .execute(&pool)
                .await
                {
                    // The lookups waiting on it time out and read the database.
                    tracing::debug!(detail = %e, "the read cache's ping was not sent");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn heard(&self, payload: &str) {
        if let Some((token, seq)) = payload.rsplit_once(':')
            && token == self.token
            && let Ok(seq) = seq.parse::<u64>()
        {
            self.heard.send_if_modified(|h| {
                let newer = seq > *h;
                if newer {
                    *h = seq;
                }
                newer
            });
        }
    }
}

/// A name for this process's pings that no other node's process shares.
fn node_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}.{nanos}", std::process::id())
}

/// Applies one announcement on the cache channel.
fn apply(cache: &ReadCache, fresh: &Freshness, payload: &str) {
    match payload.split_once(':') {
        Some(("s", id)) => match id.parse() {
            Ok(id) => cache.secret_changed(id),
            Err(_) => cache.clear(),
        },
        Some(("k", id)) => cache.access_key_changed(id),
        Some(("g", _)) => cache.settings_changed(),
        Some(("p", rest)) => fresh.heard(rest),
        // Not understood (a newer node?): drop everything rather than keep something stale.
        _ => cache.clear(),
    }
}

impl PgStore {
    /// Listens for changes and passes them on; keeps the read cache in step. A lost
    /// connection may have missed announcements: then everything is announced as changed and
    /// the cache is off until the listener is back.
    pub(super) fn listen_for_changes(&self) -> tokio::sync::broadcast::Sender<crate::Change> {
        let (tx, _) = tokio::sync::broadcast::channel(1024);
        let pool = self.pool.clone();
        let out = tx.clone();
        self.cache.set_live(false);
        let weak = Arc::downgrade(&self.cache);
        let fresh = Arc::new(Freshness {
            token: node_token(),
            pings: Mutex::new((0, 0)),
            wake: Notify::new(),
            heard: watch::Sender::new(0),
            restart: Notify::new(),
        });
        self.cache.set_barrier(fresh.clone());
        tokio::spawn(fresh.clone().send_pings(pool.clone()));
        tokio::spawn(async move {
            loop {
                // The store was closed (shutdown) or dropped: nothing is left to listen for.
                let Some(cache) = weak.upgrade().filter(|_| !pool.is_closed()) else {
                    return;
                };
                cache.set_live(false);
                let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(detail = %e, "cannot listen for changes; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(e) = listener
                    .listen_all([IDENTITY_CHANNEL, KEYS_CHANNEL, CACHE_CHANNEL])
                    .await
                {
                    tracing::warn!(detail = %e, "cannot listen for changes; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                // Whatever changed before (or while) listening was not heard.
                let _ = out.send(crate::Change::Everything);
                cache.set_live(true);
                // Only while the store lives (the connection outlives its pool).
                drop(cache);
                loop {
                    let Some(cache) = weak.upgrade() else { return };
                    let heard = tokio::select! {
                        heard = listener.try_recv() => heard,
                        () = fresh.restart.notified() => {
                            tracing::warn!("the read cache's ping was not heard in time; it is off until the listener is back");
                            break;
                        }
                    };
                    match heard {
                        Ok(Some(n)) if n.channel() == CACHE_CHANNEL => {
                            apply(&cache, &fresh, n.payload());
                        }
                        Ok(Some(n)) if n.channel() == KEYS_CHANNEL => {
                            let _ = out.send(crate::Change::Keys);
                        }
                        Ok(Some(n)) => {
                            let _ = out.send(crate::Change::User(n.payload().to_string()));
                        }
                        // The connection was lost: start over (and announce everything).
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        });
        tx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_nodes_newer_pings_count() {
        let fresh = Freshness {
            token: "me".into(),
            pings: Mutex::new((0, 0)),
            wake: Notify::new(),
            heard: watch::Sender::new(0),
            restart: Notify::new(),
        };
        fresh.heard("other:5");
        assert_eq!(*fresh.heard.borrow(), 0);
        fresh.heard("me:3");
        fresh.heard("me:2");
        assert_eq!(*fresh.heard.borrow(), 3);
    }
}
