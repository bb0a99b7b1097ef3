//! The read cache: what a request reads on every call (a secret's row and tags, its labelled
//! versions' ciphertext and wrapped data key, access keys, settings), kept in memory so a
//! read does not query the database when nothing changed.
//!
//! It never answers with something a committed write has changed:
//! - Every write of this process drops what it touched, after its transaction ends (committed
//!   or not), before it returns, so before the write is acknowledged.
//! - A fill races with writes: a reader takes a ticket (the cache's epoch) before it reads the
//!   database and stores what it read only if nothing it would store was dropped since (the
//!   drops of the last [`DROPS_KEPT`] epochs are remembered by what they dropped; a fill
//!   older than that stores nothing). A write that committed after the read began drops
//!   entries after it committed, so either the fill sees that drop and stores nothing, or
//!   the drop removes what the fill stored. Writes to other secrets do not stop a fill.
//! - On a shared database other nodes write too (PostgreSQL): triggers announce every change
//!   on a channel this node listens to (and drops entries as it hears them), and before each
//!   lookup a [`Barrier`] waits until this node has heard everything committed before the
//!   lookup began. While the listener is down the cache is not used at all.
//! - Within one request ([`one_barrier`]) the first lookup's barrier serves the rest: what
//!   the cache holds later was kept in step with every change heard since, so each later
//!   lookup is at least as fresh as the request's start, which is all a request concurrent
//!   with a write may promise (a request that runs long passes a barrier again each second).
//!
//! Plaintext is never here: values stay sealed until the service opens them. The cache is
//! bounded by an estimate of the bytes it holds; when full it drops an arbitrary share of its
//! secrets (cheap, and a read-mostly working set refills at once).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kura_core::Result;
use kura_core::labels::Stages;
use kura_core::model::{SecretRecord, VersionMeta};
use kura_core::names::SecretRef;

use crate::{AccessKeyRecord, KeyPlace, StoredVersion, VersionSelector, WrappedDataKey};

/// Default bound on what the cache holds, in estimated bytes.
pub const DEFAULT_BUDGET: usize = 64 << 20;

/// Access keys and settings are few and small: bounded by count.
const MAX_SMALL_ENTRIES: usize = 100_000;

/// How many of the latest drops are remembered by what they dropped.
const DROPS_KEPT: usize = 1024;

/// What a drop dropped, and so which fills begun before it may not store what they read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dropped {
    Secret(i64),
    AccessKey(u64),
    AccessKeys,
    Settings,
    Everything,
}

impl Dropped {
    /// Whether a fill of `self` must not store what it read before drop `d`.
    fn spoilt_by(self, d: Dropped) -> bool {
        d == self
            || d == Dropped::Everything
            || (d == Dropped::AccessKeys && matches!(self, Dropped::AccessKey(_)))
    }
}

/// An access key's id, as a drop remembers it.
fn key_subject(id: &str) -> Dropped {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    Dropped::AccessKey(h.hash_one(id))
}

tokio::task_local! {
    /// Within [`one_barrier`]: when the request's last barrier began.
    static REQUEST_FRESH: std::cell::Cell<Option<Instant>>;
}

/// How long one request's barrier serves its later lookups.
const REQUEST_FRESH_FOR: Duration = Duration::from_secs(1);

/// Runs `f`, one request, so that its lookups pass one freshness barrier (a shared
/// database's round trip) rather than one each.
pub async fn one_barrier<F: Future>(f: F) -> F::Output {
    REQUEST_FRESH.scope(std::cell::Cell::new(None), f).await
}

/// Waits until this node has heard every change committed before the call began (a shared
/// database); false when it cannot know (then the cache is not used).
#[async_trait]
pub(crate) trait Barrier: Send + Sync {
    async fn fresh(&self) -> bool;
}

/// What one secret's reads found.
#[derive(Default)]
struct Entry {
    record: Option<SecretRecord>,
    /// The lookup keys (name or ARN forms) that resolved to it.
    refs: Vec<String>,
    /// `read_version` answers by selector, including "no such version".
    versions: HashMap<String, Option<StoredVersion>>,
    /// `versions()`: every version with the labels.
    all: Option<(Vec<VersionMeta>, Stages)>,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    /// Whether the cache may be used (a shared database: while its listener is connected).
    live: bool,
    /// Bumped by every drop; a fill stores only if none of the drops since it began
    /// concerns what it stores.
    epoch: u64,
    /// The latest drops (epoch after the drop, what it dropped), oldest first.
    drops: std::collections::VecDeque<(u64, Dropped)>,
    refs: HashMap<String, i64>,
    secrets: HashMap<i64, Entry>,
    keys: HashMap<String, Option<AccessKeyRecord>>,
    settings: HashMap<String, Option<Vec<u8>>>,
    bytes: usize,
}

/// The epoch a fill began under.
#[derive(Clone, Copy)]
pub(crate) struct Ticket(u64);

pub(crate) struct ReadCache {
    inner: Mutex<Inner>,
    budget: AtomicUsize,
    barrier: OnceLock<Arc<dyn Barrier>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What the read cache did so far and holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups that read the database while the cache was in use.
    pub misses: u64,
    pub secrets: usize,
    /// Estimated bytes held for secrets.
    pub bytes: usize,
}

fn ref_key(r: &SecretRef) -> String {
    match r {
        SecretRef::Name(name) => format!("n\0{name}"),
        SecretRef::Arn { arn, .. } => format!("a\0{arn}"),
    }
}

fn version_key(which: VersionSelector<'_>) -> String {
    match which {
        VersionSelector::Id(id) => format!("i\0{id}"),
        VersionSelector::Stage(stage) => format!("s\0{stage}"),
    }
}

fn opt_len(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, String::len)
}

/// Roughly what a record holds on the heap, for the budget.
fn record_bytes(s: &SecretRecord) -> usize {
    256 + s.name.len()
        + s.arn.len()
        + opt_len(&s.description)
        + opt_len(&s.kms_key_id)
        + opt_len(&s.resource_policy)
        + s.tags
            .iter()
            .map(|t| 48 + t.key.len() + t.value.len())
            .sum::<usize>()
}

fn version_bytes(v: &Option<StoredVersion>) -> usize {
    128 + v.as_ref().map_or(0, |v| {
        v.meta.version_id.len()
            + v.stages.iter().map(|s| 24 + s.len()).sum::<usize>()
            + v.value.as_ref().map_or(0, |s| {
                s.ciphertext.len() + s.wrapped_key.len() + s.key_name.len()
            })
    })
}

/// Empties the cache, which `live` says may be used from now on; in-flight fills are not kept.
fn reset(g: &mut Inner, live: bool) {
    let epoch = g.epoch + 1;
    *g = Inner {
        live,
        epoch,
        drops: [(epoch, Dropped::Everything)].into(),
        ..Inner::default()
    };
}

impl Inner {
    /// A drop of `what`: fills begun before it will not store it.
    fn dropped(&mut self, what: Dropped) {
        self.epoch += 1;
        if self.drops.len() >= DROPS_KEPT {
            self.drops.pop_front();
        }
        self.drops.push_back((self.epoch, what));
    }

    /// Whether a fill of `what` begun under `ticket` may store what it read: every drop
    /// since is remembered and none concerns it.
    fn may_keep(&self, ticket: Ticket, what: Dropped) -> bool {
        if self.epoch == ticket.0 {
            return true;
        }
        let remembered = self
            .drops
            .front()
            .is_some_and(|(first, _)| *first <= ticket.0 + 1);
        remembered
            && !self
                .drops
                .iter()
                .rev()
                .take_while(|(e, _)| *e > ticket.0)
                .any(|(_, d)| what.spoilt_by(*d))
    }
}

/// Access keys and settings: bounded by count, all dropped at once when full.
fn keep_small<T: Clone>(map: &mut HashMap<String, Option<T>>, key: &str, found: &Option<T>) {
    if map.len() >= MAX_SMALL_ENTRIES {
        map.clear();
    }
    map.insert(key.to_string(), found.clone());
}

fn all_bytes(all: &(Vec<VersionMeta>, Stages)) -> usize {
    64 + all.0.len() * 96 + all.1.len() * 96
}

impl ReadCache {
    /// A cache used from the start (a database only this process writes).
    pub(crate) fn live(budget: usize) -> Self {
        let cache = ReadCache::new(budget);
        cache.lock().live = true;
        cache
    }

    /// A cache used only once [`set_live`](Self::set_live) says so.
    pub(crate) fn new(budget: usize) -> Self {
        ReadCache {
            inner: Mutex::new(Inner::default()),
            budget: AtomicUsize::new(budget),
            barrier: OnceLock::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub(crate) fn set_barrier(&self, barrier: Arc<dyn Barrier>) {
        let _ = self.barrier.set(barrier);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops everything; `live` says whether it may be used from now on.
    pub(crate) fn set_live(&self, live: bool) {
        reset(&mut self.lock(), live);
    }

    /// A new bound; what is held beyond it goes at the next fill.
    pub(crate) fn set_budget(&self, bytes: usize) {
        self.budget.store(bytes, Ordering::Relaxed);
        if bytes == 0 {
            self.clear();
        }
    }

    /// Drops everything (a write changed rows it cannot name, or an announcement was not
    /// understood).
    pub(crate) fn clear(&self) {
        let mut g = self.lock();
        let live = g.live;
        reset(&mut g, live);
    }

    /// Ready for a lookup: fresh with respect to other nodes, and usable.
    async fn begin(&self) -> Option<Ticket> {
        if self.budget.load(Ordering::Relaxed) == 0 || !self.lock().live {
            return None;
        }
        if let Some(b) = self.barrier.get() {
            let passed = REQUEST_FRESH
                .try_with(|t| t.get().is_some_and(|t| t.elapsed() < REQUEST_FRESH_FOR))
                .unwrap_or(false);
            if !passed {
                let began = Instant::now();
                if !b.fresh().await {
                    // The listener starts over and keeps the cache off until it listens again.
                    return None;
                }
                let _ = REQUEST_FRESH.try_with(|t| t.set(Some(began)));
            }
        }
        let g = self.lock();
        g.live.then_some(Ticket(g.epoch))
    }

    /// Every lookup's shape: `find` in memory, or `load` from the database and `keep` what
    /// it found, unless a drop happened since the lookup began.
    async fn through<T: Clone>(
        &self,
        what: impl FnOnce(&T) -> Option<Dropped>,
        find: impl FnOnce(&Inner) -> Option<T>,
        load: impl Future<Output = Result<T>>,
        keep: impl FnOnce(&mut Inner, &T),
    ) -> Result<T> {
        let Some(ticket) = self.begin().await else {
            return load.await;
        };
        if let Some(v) = find(&self.lock()) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(v);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let found = load.await?;
        // Nothing to keep (a name that names no secret) is not kept either.
        let Some(what) = what(&found) else {
            return Ok(found);
        };
        let mut g = self.lock();
        if g.live && g.may_keep(ticket, what) {
            keep(&mut g, &found);
            self.trim(&mut g);
        }
        Ok(found)
    }

    /// The secret `r` names: from the cache, or from `load` (then remembered).
    pub(crate) async fn secret(
        &self,
        r: &SecretRef,
        load: impl Future<Output = Result<Option<SecretRecord>>>,
    ) -> Result<Option<SecretRecord>> {
        let key = ref_key(r);
        let find = |g: &Inner| {
            let id = g.refs.get(&key)?;
            Some(Some(g.secrets.get(id)?.record.clone()?))
        };
        let keep = |g: &mut Inner, found: &Option<SecretRecord>| {
            if let Some(s) = found {
                let bytes = record_bytes(s) + key.len();
                let e = g.secrets.entry(s.id).or_default();
                e.bytes += bytes;
                e.refs.push(key.clone());
                e.record = Some(s.clone());
                g.refs.insert(key.clone(), s.id);
                g.bytes += bytes;
            }
        };
        let what = |found: &Option<SecretRecord>| found.as_ref().map(|s| Dropped::Secret(s.id));
        self.through(what, find, load, keep).await
    }

    /// The secret with store id `id`.
    pub(crate) async fn secret_by_id(
        &self,
        id: i64,
        load: impl Future<Output = Result<Option<SecretRecord>>>,
    ) -> Result<Option<SecretRecord>> {
        let find = |g: &Inner| Some(Some(g.secrets.get(&id)?.record.clone()?));
        let keep = |g: &mut Inner, found: &Option<SecretRecord>| {
            if let Some(s) = found {
                let bytes = record_bytes(s);
                let e = g.secrets.entry(id).or_default();
                if e.record.is_none() {
                    e.bytes += bytes;
                    e.record = Some(s.clone());
                    g.bytes += bytes;
                }
            }
        };
        self.through(|_| Some(Dropped::Secret(id)), find, load, keep)
            .await
    }

    /// One version of secret `id`, or its absence.
    pub(crate) async fn version(
        &self,
        id: i64,
        which: VersionSelector<'_>,
        load: impl Future<Output = Result<Option<StoredVersion>>>,
    ) -> Result<Option<StoredVersion>> {
        let key = version_key(which);
        let find = |g: &Inner| g.secrets.get(&id)?.versions.get(&key).cloned();
        let keep = |g: &mut Inner, found: &Option<StoredVersion>| {
            let bytes = version_bytes(found) + key.len();
            let e = g.secrets.entry(id).or_default();
            e.bytes += bytes;
            e.versions.insert(key.clone(), found.clone());
            g.bytes += bytes;
        };
        self.through(|_| Some(Dropped::Secret(id)), find, load, keep)
            .await
    }

    /// Every version of secret `id` with its labels.
    pub(crate) async fn versions(
        &self,
        id: i64,
        load: impl Future<Output = Result<(Vec<VersionMeta>, Stages)>>,
    ) -> Result<(Vec<VersionMeta>, Stages)> {
        let find = |g: &Inner| g.secrets.get(&id)?.all.clone();
        let keep = |g: &mut Inner, found: &(Vec<VersionMeta>, Stages)| {
            let bytes = all_bytes(found);
            let e = g.secrets.entry(id).or_default();
            if e.all.is_none() {
                e.bytes += bytes;
                e.all = Some(found.clone());
                g.bytes += bytes;
            }
        };
        self.through(|_| Some(Dropped::Secret(id)), find, load, keep)
            .await
    }

    /// The access key `id`, or its absence.
    pub(crate) async fn access_key(
        &self,
        id: &str,
        load: impl Future<Output = Result<Option<AccessKeyRecord>>>,
    ) -> Result<Option<AccessKeyRecord>> {
        let find = |g: &Inner| g.keys.get(id).cloned();
        let keep =
            |g: &mut Inner, found: &Option<AccessKeyRecord>| keep_small(&mut g.keys, id, found);
        self.through(|_| Some(key_subject(id)), find, load, keep)
            .await
    }

    /// The setting `key`, or its absence.
    pub(crate) async fn setting(
        &self,
        key: &str,
        load: impl Future<Output = Result<Option<Vec<u8>>>>,
    ) -> Result<Option<Vec<u8>>> {
        let find = |g: &Inner| g.settings.get(key).cloned();
        let keep = |g: &mut Inner, found: &Option<Vec<u8>>| keep_small(&mut g.settings, key, found);
        self.through(|_| Some(Dropped::Settings), find, load, keep)
            .await
    }

    /// A write changed secret `id` (its row, versions, labels or tags), or may have.
    pub(crate) fn secret_changed(&self, id: i64) {
        let mut g = self.lock();
        g.dropped(Dropped::Secret(id));
        if let Some(e) = g.secrets.remove(&id) {
            g.bytes -= e.bytes.min(g.bytes);
            for r in &e.refs {
                g.refs.remove(r);
            }
        }
    }

    /// A write changed access key `id`, or may have.
    pub(crate) fn access_key_changed(&self, id: &str) {
        let mut g = self.lock();
        g.dropped(key_subject(id));
        g.keys.remove(id);
    }

    /// A write changed access keys it cannot name (a user's, the expired ones).
    pub(crate) fn access_keys_changed(&self) {
        let mut g = self.lock();
        g.dropped(Dropped::AccessKeys);
        g.keys.clear();
    }

    /// A key re-wrap rewrote these data keys.
    pub(crate) fn rewrapped(&self, updates: &[(WrappedDataKey, Vec<u8>, i64)]) {
        for (old, _, _) in updates {
            match &old.place {
                KeyPlace::SecretVersion { secret_id, .. } => self.secret_changed(*secret_id),
                KeyPlace::AccessKey(id) => self.access_key_changed(id),
                KeyPlace::RotationFunction(_)
                | KeyPlace::NotificationTarget(_)
                | KeyPlace::CertificateAuthority(_)
                | KeyPlace::AcmeAccount { .. } => {}
            }
        }
    }

    /// A write changed a setting.
    pub(crate) fn settings_changed(&self) {
        let mut g = self.lock();
        g.dropped(Dropped::Settings);
        g.settings.clear();
    }

    /// Keeps the secrets within the budget by dropping about an eighth of them.
    fn trim(&self, g: &mut Inner) {
        if g.bytes <= self.budget.load(Ordering::Relaxed) {
            return;
        }
        let drop = (g.secrets.len() / 8).max(1);
        let victims: Vec<i64> = g.secrets.keys().take(drop).copied().collect();
        for id in victims {
            if let Some(e) = g.secrets.remove(&id) {
                g.bytes -= e.bytes.min(g.bytes);
                for r in &e.refs {
                    g.refs.remove(r);
                }
            }
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let g = self.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            secrets: g.secrets.len(),
            bytes: g.bytes,
        }
    }

    /// How many secrets and estimated bytes it holds.
    #[cfg(test)]
    fn size(&self) -> (usize, usize) {
        let s = self.stats();
        (s.secrets, s.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kura_core::Timestamp;

    fn record(id: i64, name: &str) -> SecretRecord {
        SecretRecord {
            id,
            name: name.into(),
            arn: format!("arn:aws:secretsmanager:r:1:secret:{name}-abcdef"),
            description: None,
            kms_key_id: None,
            created_at: Timestamp(0),
            changed_at: Timestamp(0),
            accessed_at: None,
            deleted_at: None,
            purge_at: None,
            resource_policy: None,
            tags: Vec::new(),
            tagged: false,
            rotation: Default::default(),
            run: Default::default(),
            expires_at: None,
            expiry_notice_at: None,
        }
    }

    fn by_name(name: &str) -> SecretRef {
        SecretRef::Name(name.into())
    }

    #[tokio::test]
    async fn a_second_read_is_answered_from_memory_until_a_write_drops_it() {
        let cache = ReadCache::live(DEFAULT_BUDGET);
        let first = cache
            .secret(&by_name("a"), async { Ok(Some(record(1, "a"))) })
            .await
            .unwrap();
        assert_eq!(first.map(|s| s.id), Some(1));
        let again = cache
            .secret(&by_name("a"), async { panic!("not from memory") })
            .await
            .unwrap();
        assert_eq!(again.map(|s| s.id), Some(1));
        cache.secret_changed(1);
        let mut changed = record(1, "a");
        changed.description = Some("new".into());
        let after = cache
            .secret(&by_name("a"), async { Ok(Some(changed)) })
            .await
            .unwrap();
        assert_eq!(after.and_then(|s| s.description).as_deref(), Some("new"));
    }

    #[tokio::test]
    async fn a_fill_that_raced_a_write_is_not_kept() {
        let cache = ReadCache::live(DEFAULT_BUDGET);
        // The read began, then a write committed and dropped the secret, then the read's
        // (old) answer arrived: it is answered but not kept.
        let stale = cache
            .secret(&by_name("a"), async {
                cache.secret_changed(1);
                Ok(Some(record(1, "a")))
            })
            .await
            .unwrap();
        assert!(stale.is_some());
        let fresh = cache
            .secret(&by_name("a"), async {
                let mut s = record(1, "a");
                s.description = Some("new".into());
                Ok(Some(s))
            })
            .await
            .unwrap();
        assert_eq!(fresh.and_then(|s| s.description).as_deref(), Some("new"));
    }

    /// Writes to other secrets (or an access key, or a setting) while a fill reads do not
    /// stop it being kept; a drop of everything does, and so does a fill older than the
    /// drops remembered.
    #[tokio::test]
    async fn a_fill_is_kept_unless_a_drop_since_concerns_it() {
        let cache = ReadCache::live(DEFAULT_BUDGET);
        let fill = |name: &'static str, id: i64, meanwhile: &'static dyn Fn(&ReadCache)| {
            let cache = &cache;
            async move {
                cache
                    .secret(&by_name(name), async {
                        meanwhile(cache);
                        Ok(Some(record(id, name)))
                    })
                    .await
                    .unwrap();
            }
        };
        let kept = |name: &'static str| {
            let cache = &cache;
            async move {
                let loaded = std::cell::Cell::new(false);
                let _ = cache
                    .secret(&by_name(name), async {
                        loaded.set(true);
                        Ok(None)
                    })
                    .await
                    .unwrap();
                !loaded.get()
            }
        };
        fill("a", 1, &|c| {
            c.secret_changed(2);
            c.access_key_changed("AKIA");
            c.settings_changed();
        })
        .await;
        assert!(kept("a").await, "writes elsewhere do not spoil the fill");
        fill("b", 2, &|c| c.clear()).await;
        assert!(!kept("b").await, "a drop of everything does");
        fill("c", 3, &|c| {
            for other in 100..100 + DROPS_KEPT as i64 + 1 {
                c.secret_changed(other);
            }
        })
        .await;
        assert!(!kept("c").await, "more drops than remembered do");
    }

    #[tokio::test]
    async fn access_keys_dropped_all_at_once_spoil_a_fill_of_one() {
        let cache = ReadCache::live(DEFAULT_BUDGET);
        let _ = cache
            .access_key("AKIA1", async {
                cache.access_keys_changed();
                Ok(None)
            })
            .await
            .unwrap();
        let loaded = std::cell::Cell::new(false);
        let _ = cache
            .access_key("AKIA1", async {
                loaded.set(true);
                Ok(None)
            })
            .await
            .unwrap();
        assert!(loaded.get());
    }

    #[tokio::test]
    async fn versions_and_their_absence_are_kept_per_secret() {
        let cache = ReadCache::live(DEFAULT_BUDGET);
        let none = cache
            .version(1, VersionSelector::Stage("AWSPENDING"), async { Ok(None) })
            .await
            .unwrap();
        assert!(none.is_none());
        let still = cache
            .version(1, VersionSelector::Stage("AWSPENDING"), async {
                panic!("not from memory")
            })
            .await
            .unwrap();
        assert!(still.is_none());
        cache.secret_changed(1);
        let loaded = std::cell::Cell::new(false);
        let _ = cache
            .version(1, VersionSelector::Stage("AWSPENDING"), async {
                loaded.set(true);
                Ok(None)
            })
            .await
            .unwrap();
        assert!(loaded.get(), "a write drops the secret's versions too");
    }

    /// Counts the barriers passed.
    #[derive(Default)]
    struct Counting(AtomicU64);

    #[async_trait]
    impl Barrier for Counting {
        async fn fresh(&self) -> bool {
            self.0.fetch_add(1, Ordering::Relaxed);
            true
        }
    }

    #[tokio::test]
    async fn one_request_passes_one_barrier_and_each_lookup_outside_a_request_its_own() {
        let cache = ReadCache::live(DEFAULT_BUDGET);
        let barrier = Arc::new(Counting::default());
        cache.set_barrier(barrier.clone());
        let lookups = || async {
            for name in ["a", "b", "a"] {
                let _ = cache
                    .secret(&by_name(name), async { Ok(Some(record(1, name))) })
                    .await
                    .unwrap();
            }
        };
        one_barrier(lookups()).await;
        assert_eq!(barrier.0.load(Ordering::Relaxed), 1, "one per request");
        one_barrier(lookups()).await;
        assert_eq!(barrier.0.load(Ordering::Relaxed), 2, "and one for the next");
        lookups().await;
        assert_eq!(
            barrier.0.load(Ordering::Relaxed),
            5,
            "one per lookup outside"
        );
    }

    #[tokio::test]
    async fn a_cache_that_is_not_live_always_reads_the_database() {
        let cache = ReadCache::new(DEFAULT_BUDGET);
        for _ in 0..2 {
            let loaded = std::cell::Cell::new(false);
            let _ = cache
                .secret(&by_name("a"), async {
                    loaded.set(true);
                    Ok(Some(record(1, "a")))
                })
                .await
                .unwrap();
            assert!(loaded.get());
        }
    }

    #[tokio::test]
    async fn the_budget_bounds_what_is_kept() {
        let cache = ReadCache::live(64 << 10);
        for i in 0..10_000 {
            let name = format!("s{i}");
            let _ = cache
                .secret(&by_name(&name), async { Ok(Some(record(i, &name))) })
                .await
                .unwrap();
        }
        let (count, bytes) = cache.size();
        assert!(bytes <= 64 << 10, "{bytes} bytes held");
        assert!(count > 0 && count < 10_000, "{count} secrets held");
    }
}
