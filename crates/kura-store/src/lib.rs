//! Storage: the [`Store`] traits the service layer talks to (one per aggregate), and their
//! two backends, SQLite (one node, embedded) and PostgreSQL (one or more nodes). The traits
//! speak in whole-operation terms (one call = one transaction), so both backends give the
//! same guarantees; `tests/contract.rs` runs one suite on both. Both run the same SQL, written
//! once in `sql/`.

mod audit;
pub mod backup;
mod cache;
mod postgres;
mod rows;
mod sql;
mod sqlite;
pub mod transfer;

use async_trait::async_trait;
use kura_core::labels::Stages;
use kura_core::model::{NewVersion, SealedValue, SecretRecord, SecretState, VersionMeta};
use kura_core::names::SecretRef;
use kura_core::{Result, Timestamp};

pub use audit::{AuditDraft, AuditSlot, NO_AUDIT};
pub use cache::{CacheStats, one_barrier};
// The audit trail's own types live in kura-audit; its callers keep naming them from here.
pub use kura_audit::{AuditChain, AuditQuery, AuditRecord, AuditStore};
pub use kura_core::filter::{FilterKey, ListFilter};
pub use postgres::PgStore;
pub use sqlite::{SqliteStore, database_files, open_read_only};

/// A stored access key; the secret half stays sealed until the keyring opens it.
#[derive(Debug, Clone)]
pub struct AccessKeyRecord {
    pub access_key_id: String,
    pub user_name: String,
    pub user_arn: String,
    /// The owner's unique id (`AIDA…`), read from the user's row.
    pub user_id: String,
    pub sealed_secret: SealedValue,
    pub active: bool,
    pub created_at: Timestamp,
    /// The key stops working at this time: always for a rotation step's short-lived key, and
    /// for a user's key created with an expiry.
    pub expires_at: Option<Timestamp>,
    /// A key limited to one secret (the one being rotated): set only on a rotation step's
    /// short-lived key, which is what tells it from a user's own key.
    pub scope_secret_id: Option<i64>,
    /// Day of the last request signed with the key.
    pub last_used_at: Option<Timestamp>,
}

/// An access key the sweeper deleted (no secret half: what its audit record names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweptAccessKey {
    pub access_key_id: String,
    pub user_name: String,
    /// A rotation step's short-lived key, rather than a user's own.
    pub step_key: bool,
}

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub name: String,
    pub arn: String,
    /// IAM's unique id: `AIDA` and 16 characters of A-Z and 2-7, never reused.
    pub user_id: String,
    pub created_at: Timestamp,
    pub tags: Vec<kura_core::model::Tag>,
}

/// A user-defined rotation function (`command` or `webhook`, or a configured built-in).
#[derive(Debug, Clone)]
pub struct RotationFunctionRecord {
    pub name: String,
    pub kind: String,
    /// The function's settings as JSON; never holds a secret.
    pub config: String,
    /// A webhook's signing secret.
    pub sealed_secret: Option<SealedValue>,
    pub created_at: Timestamp,
}

/// A private certificate authority. Its key is sealed; `certificate` is `None` while an
/// intermediate waits for an external root to sign its `csr`.
#[derive(Debug, Clone)]
pub struct AuthorityRecord {
    pub name: String,
    /// `root` or `intermediate`.
    pub kind: String,
    /// The kura CA that signed this one, if any.
    pub parent: Option<String>,
    pub common_name: String,
    pub key_algorithm: String,
    /// PEM.
    pub certificate: Option<String>,
    /// The certificates above this one, root excluded (PEM, concatenated).
    pub chain: String,
    pub csr: Option<String>,
    pub not_after: Option<Timestamp>,
    pub sealed_key: SealedValue,
    pub created_at: Timestamp,
}

/// A certificate template: its CA, and its rules as JSON (kura-pki's `Template`).
#[derive(Debug, Clone)]
pub struct TemplateRecord {
    pub name: String,
    pub authority: String,
    pub config: String,
    pub created_at: Timestamp,
}

/// An ACME account of the kura-acme-certificate rotation, per directory and contact email:
/// instant-acme's credentials (account URL and key) as JSON, sealed.
#[derive(Debug, Clone)]
pub struct AcmeAccountRecord {
    pub directory_url: String,
    pub email: String,
    pub sealed_credentials: SealedValue,
    pub created_at: Timestamp,
}

/// A certificate a CA issued: what revocation and the CRL need (no key, no body).
#[derive(Debug, Clone)]
pub struct IssuedCertificateRecord {
    pub authority: String,
    /// Lowercase hex, no separators.
    pub serial: String,
    pub template: Option<String>,
    pub common_name: String,
    pub secret_arn: Option<String>,
    pub issued_at: Timestamp,
    pub not_after: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NotificationTargetRecord {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// The days before an expiration a `SecretExpiring` subscriber hears of it (stored in
    /// `events` as `SecretExpiring:<days>`, what those events are queued by).
    pub expiring_days: Vec<i64>,
    pub sealed_secret: SealedValue,
    pub created_at: Timestamp,
}

/// A key of the keyring as `Kura.CreateKey` made it (or the default key): its versions are the
/// `keys` rows under `name`, the name its data keys record.
#[derive(Debug, Clone)]
pub struct KmsKeyRecord {
    pub id: String,
    pub name: String,
    pub alias: Option<String>,
    pub description: Option<String>,
    /// The key policy (JSON), if any.
    pub policy: Option<String>,
    pub tags: Vec<kura_core::model::Tag>,
    pub created_at: Timestamp,
    /// The version a rotation's re-wrap moves data keys to (the last one, once finished).
    pub rewrap_target: Option<i64>,
    /// Data keys the re-wrap toward `rewrap_target` has moved so far.
    pub rewrap_done: i64,
    /// Whether that re-wrap still has data keys to move.
    pub rewrap_running: bool,
    /// When a scheduled deletion destroys the key.
    pub deletion_date: Option<Timestamp>,
}

/// Where a wrapped data key is stored: what the re-wrap rewrites and what binds it (its
/// associated data is made from these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlace {
    SecretVersion {
        secret_id: i64,
        version_id: String,
        arn: String,
    },
    AccessKey(String),
    RotationFunction(String),
    NotificationTarget(String),
    /// A certificate authority's private key, by the CA's name.
    CertificateAuthority(String),
    /// An ACME account's credentials.
    AcmeAccount {
        directory_url: String,
        email: String,
    },
}

/// A data key wrapped by an older version of its key.
#[derive(Debug, Clone)]
pub struct WrappedDataKey {
    pub place: KeyPlace,
    pub key_version: i64,
    pub wrapped_key: Vec<u8>,
}

/// An event waiting for delivery to one target.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub target_id: String,
    pub body: String,
    pub attempts: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Created,
    LastAccessed,
    LastChanged,
    Name,
}

/// Where the previous page stopped: the sort key's value and the row id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorValue {
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub value: CursorValue,
    pub id: i64,
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub include_deleted: bool,
    pub filters: Vec<ListFilter>,
    pub sort: SortKey,
    pub descending: bool,
    pub limit: usize,
    pub after: Option<Cursor>,
}

#[derive(Debug, Clone)]
pub struct ListPage {
    pub secrets: Vec<(SecretRecord, Stages)>,
    pub next: Option<Cursor>,
}

/// How GetSecretValue names a version.
#[derive(Debug, Clone, Copy)]
pub enum VersionSelector<'a> {
    Id(&'a str),
    Stage(&'a str),
}

/// One version as read for GetSecretValue.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub meta: VersionMeta,
    pub value: Option<SealedValue>,
    pub stages: Vec<String>,
}

/// [`SecretStore::modify`] that hands back what the closure returned (from its last run, the
/// one whose changes were written).
#[async_trait]
pub trait ModifyReturning {
    async fn modify_returning<T, F>(
        &self,
        secret_id: i64,
        audit: &AuditSlot,
        f: F,
    ) -> Result<(SecretState, T)>
    where
        T: Send,
        F: FnMut(&mut SecretState) -> Result<T> + Send;
}

#[async_trait]
impl<S: SecretStore + ?Sized> ModifyReturning for S {
    async fn modify_returning<T, F>(
        &self,
        secret_id: i64,
        audit: &AuditSlot,
        mut f: F,
    ) -> Result<(SecretState, T)>
    where
        T: Send,
        F: FnMut(&mut SecretState) -> Result<T> + Send,
    {
        let mut out = None;
        let state = self
            .modify(
                secret_id,
                &mut |st| {
                    out = Some(f(st)?);
                    Ok(())
                },
                audit,
            )
            .await?;
        let out = out.ok_or_else(|| kura_core::Error::internal("modify did not run its change"))?;
        Ok((state, out))
    }
}

pub type Mutation<'a> = dyn FnMut(&mut SecretState) -> Result<()> + Send + 'a;

/// One row of `keys` as a root key rotation found it (`old`) and re-wrapped it (`new`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRewrap {
    pub name: String,
    pub version: i64,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

/// A compare-and-set of one setting, as [`SettingsStore::replace_setting`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct SettingSwap<'a> {
    pub key: &'a str,
    pub expected: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Settings and the keyring's wrapped keys.
#[async_trait]
pub trait SettingsStore: Send + Sync + 'static {
    async fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `value` unless the key exists; returns what is stored either way.
    async fn init_setting(&self, key: &str, value: &[u8]) -> Result<Vec<u8>>;
    /// Replaces the setting (`None` removes it) only while it is still `expected` (`None`:
    /// absent); returns whether it did, so two writers cannot both think they won.
    async fn replace_setting(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool>;
    async fn load_keys(&self) -> Result<Vec<(String, i64, Vec<u8>)>>;
    /// Root key rotation, in one transaction: every row of `keys` gets its `new` wrapping and
    /// every swap is applied, only if `keys` holds exactly the rows `keys` lists (same names,
    /// versions and `old` wrappings: no key added, removed or re-wrapped meanwhile, by this
    /// node or another) and every swap's setting is still `expected`. Otherwise nothing
    /// changes and it returns false, for the caller to read again and retry.
    async fn rewrap_keys(&self, keys: &[KeyRewrap], swaps: &[SettingSwap<'_>]) -> Result<bool>;
    async fn insert_key(
        &self,
        name: &str,
        version: i64,
        wrapped: &[u8],
        now: Timestamp,
    ) -> Result<()>;
}

/// Named keys, their versions, and the background re-wrap after a rotation.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores `key` unless a key of its name exists (the default key's row, at start-up).
    async fn ensure_kms_key(&self, key: &KmsKeyRecord) -> Result<()>;
    /// Stores a new key and its first version (wrapped by the root key) together. A taken
    /// alias answers AlreadyExists. `arn` names the key in the request's audit record (as
    /// for the other key changes).
    async fn create_kms_key(
        &self,
        key: &KmsKeyRecord,
        wrapped: &[u8],
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<()>;
    /// Every key, by id.
    async fn kms_keys(&self) -> Result<Vec<KmsKeyRecord>>;
    /// Stores version `version` of key `name` and starts the re-wrap toward it, in one
    /// transaction; a version someone stored first answers ResourceExists (try the next).
    async fn add_key_version(
        &self,
        name: &str,
        version: i64,
        wrapped: &[u8],
        now: Timestamp,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<()>;
    async fn put_key_policy(
        &self,
        name: &str,
        policy: &str,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<bool>;
    /// Keys whose re-wrap is running and whose lease is free or expired.
    async fn rewrap_due(&self, now: Timestamp) -> Result<Vec<String>>;
    /// Takes (or renews) the re-wrap lease of a key; false if another owner holds it.
    async fn claim_rewrap(
        &self,
        name: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool>;
    /// Up to `limit` data keys of `name` wrapped by a version below `below`.
    async fn rewrap_candidates(
        &self,
        name: &str,
        below: i64,
        limit: usize,
    ) -> Result<Vec<WrappedDataKey>>;
    /// Writes re-wrapped data keys (`(old, new wrapped key, new version)`) in one
    /// transaction, each only where the row still holds the old version, and counts them in
    /// the key's progress; returns how many were written.
    async fn apply_rewrap(
        &self,
        name: &str,
        updates: &[(WrappedDataKey, Vec<u8>, i64)],
    ) -> Result<u64>;
    /// Ends the re-wrap toward `target` (nothing is left below it) and frees its lease.
    async fn finish_rewrap(&self, name: &str, target: i64) -> Result<()>;
    /// Runs the finished re-wrap toward `target` again (a data key under an older version
    /// turned up after it finished: a node that had not yet heard of the rotation sealed it).
    async fn restart_rewrap(&self, name: &str, target: i64) -> Result<()>;
    /// How many data keys `name` wraps plus how many secrets name it in `KmsKeyId` (by any
    /// of `references`).
    async fn key_uses(&self, name: &str, references: &[String]) -> Result<i64>;
    /// Schedules (`Some`) or cancels (`None`) the key's deletion.
    async fn set_key_deletion(
        &self,
        name: &str,
        at: Option<Timestamp>,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<bool>;
    /// Destroys the key (its row and every version) if its deletion date has passed and
    /// nothing uses it (checked in the same transaction); whether it did.
    async fn delete_kms_key(
        &self,
        name: &str,
        references: &[String],
        now: Timestamp,
    ) -> Result<bool>;
    /// How many data keys of `name` are wrapped by a version below `below`.
    async fn rewrap_remaining(&self, name: &str, below: i64) -> Result<i64>;
}

/// Secrets with their versions, labels and tags.
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Inserts a secret (and its first version, labelled by `stages`). A taken name or ARN
    /// answers ResourceExistsException.
    async fn create_secret(
        &self,
        secret: &SecretRecord,
        first: Option<&NewVersion>,
        stages: &Stages,
        audit: &AuditSlot,
    ) -> Result<i64>;
    async fn find_secret(&self, secret: &SecretRef) -> Result<Option<SecretRecord>>;
    async fn versions(&self, secret_id: i64) -> Result<(Vec<VersionMeta>, Stages)>;
    async fn read_version(
        &self,
        secret_id: i64,
        which: VersionSelector<'_>,
    ) -> Result<Option<StoredVersion>>;
    /// Loads the secret's full state inside a write transaction, lets `f` change it, and
    /// writes back what changed; an error from `f` rolls everything back. A backend may run
    /// `f` again on a fresh state when the transaction must be retried (PostgreSQL, after a
    /// deadlock), so `f` should only change the state it is given.
    async fn modify(
        &self,
        secret_id: i64,
        f: &mut Mutation<'_>,
        audit: &AuditSlot,
    ) -> Result<SecretState>;
    async fn list_secrets(&self, query: &ListQuery) -> Result<ListPage>;
    /// Secrets whose recovery window has ended, oldest first.
    async fn due_for_purge(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>>;
    /// Secrets not pending deletion whose next expiry notice (`expiry_notice_at`) is due at
    /// `now`, soonest first.
    async fn expiry_notices_due(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>>;
    /// Records a read at day granularity; writes only when the stored day is older.
    async fn touch_accessed(&self, secret_id: i64, version_id: &str, day: Timestamp) -> Result<()>;
    /// Destroys a secret with all its versions, labels and tags.
    async fn delete_secret(&self, secret_id: i64, audit: &AuditSlot) -> Result<()>;
    async fn secret_by_id(&self, secret_id: i64) -> Result<Option<SecretRecord>>;
}

/// Users, their access keys and inline policies.
#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    async fn create_user(&self, user: &UserRecord, audit: &AuditSlot) -> Result<()>;
    async fn get_user(&self, name: &str) -> Result<Option<UserRecord>>;
    async fn list_users(&self) -> Result<Vec<UserRecord>>;
    /// Deletes a user with its access keys and policies; false if there was none.
    async fn delete_user(&self, name: &str, audit: &AuditSlot) -> Result<bool>;
    async fn user_exists(&self, name: &str) -> Result<bool>;
    /// Inserts a key; with `max`, only if its user has fewer long-term keys (else
    /// LimitExceededException), checked in the same transaction.
    async fn insert_access_key(
        &self,
        key: &AccessKeyRecord,
        max: Option<usize>,
        audit: &AuditSlot,
    ) -> Result<()>;
    /// A user's own keys, expiring ones included (a rotation step's keys are not listed).
    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyRecord>>;
    async fn find_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>>;
    async fn set_access_key_status(
        &self,
        access_key_id: &str,
        active: bool,
        audit: &AuditSlot,
    ) -> Result<bool>;
    /// Makes a key stop working at `at`, or sooner if it already expires sooner; false when
    /// there is no such key.
    async fn expire_access_key(
        &self,
        access_key_id: &str,
        at: Timestamp,
        audit: &AuditSlot,
    ) -> Result<bool>;
    /// Records use at day granularity; writes only when the stored day is older.
    async fn touch_access_key(&self, access_key_id: &str, day: Timestamp) -> Result<()>;
    async fn delete_access_key(&self, access_key_id: &str, audit: &AuditSlot) -> Result<()>;
    /// Deletes a rotation step's keys whose time is up, and users' keys a week after theirs
    /// (kept meanwhile so their owners see them listed, and refused as expired); returns the
    /// keys it deleted.
    async fn delete_expired_access_keys(&self, now: Timestamp) -> Result<Vec<SweptAccessKey>>;
    async fn put_user_policy(
        &self,
        user: &str,
        name: &str,
        document: &str,
        now: Timestamp,
        audit: &AuditSlot,
    ) -> Result<()>;
    async fn delete_user_policy(&self, user: &str, name: &str, audit: &AuditSlot) -> Result<bool>;
    /// A user's inline policies: (name, document), by name.
    async fn user_policies(&self, user: &str) -> Result<Vec<(String, String)>>;
}

/// Rotation work: what is due, the leases on it, and the rotation functions.
#[async_trait]
pub trait RotationStore: Send + Sync + 'static {
    /// Secrets with rotation work due at `now` (a scheduled cycle to start, or a cycle to
    /// continue) whose lease is free or expired, soonest first.
    async fn rotation_due(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>>;
    /// Secrets whose scheduled rotation is overdue at `now` (leased or not): its window
    /// closed before a cycle started, or its cycle still runs past the window's end.
    async fn rotation_overdue(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>>;
    /// Takes (or renews) the rotation lease of a secret; false if another owner holds it.
    async fn claim_rotation(
        &self,
        secret_id: i64,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool>;
    async fn release_rotation(&self, secret_id: i64, owner: &str) -> Result<()>;
    /// At start-up of a store only one server uses (SQLite): every lease belongs to a process
    /// that is gone, so steps it was running are due again now. A store several nodes share
    /// (PostgreSQL) releases nothing and returns 0: a lease may be a live node's, and a dead
    /// node's lease expires by itself.
    async fn recover_rotations(&self, now: Timestamp) -> Result<u64>;
    async fn insert_rotation_function(
        &self,
        f: &RotationFunctionRecord,
        audit: &AuditSlot,
    ) -> Result<()>;
    async fn rotation_function(&self, name: &str) -> Result<Option<RotationFunctionRecord>>;
    async fn list_rotation_functions(&self) -> Result<Vec<RotationFunctionRecord>>;
    /// Removes a function unless a secret's rotation uses it (InvalidRequestException).
    async fn delete_rotation_function(
        &self,
        name: &str,
        arn: &str,
        audit: &AuditSlot,
    ) -> Result<bool>;
}

/// Notification targets and the outbox of events waiting for delivery.
#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    async fn insert_notification_target(
        &self,
        t: &NotificationTargetRecord,
        audit: &AuditSlot,
    ) -> Result<()>;
    async fn list_notification_targets(&self) -> Result<Vec<NotificationTargetRecord>>;
    async fn delete_notification_target(&self, id: &str, audit: &AuditSlot) -> Result<bool>;
    /// Queues `body` for every target subscribed to `event`.
    async fn enqueue_notification(&self, event: &str, body: &str, now: Timestamp) -> Result<()>;
    /// Items due at `now`, soonest first (a read: on a shared database several nodes may see
    /// the same item; see [`claim_notifications`](Self::claim_notifications)).
    async fn due_notifications(&self, now: Timestamp, limit: usize) -> Result<Vec<OutboxItem>>;
    /// Items due at `now`, soonest first, each taken for delivery until `until`: no other
    /// claim returns it before then (nor does `due_notifications`), so of several nodes one
    /// delivers it. Finishing or retrying the item ends the claim; a claimant that dies just
    /// lets it come due again at `until`.
    async fn claim_notifications(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxItem>>;
    /// Delivered, or given up: the item leaves the outbox.
    async fn finish_notification(&self, id: i64) -> Result<()>;
    async fn retry_notification(&self, id: i64, at: Timestamp, error: &str) -> Result<()>;
}

/// The database connection as a whole.
#[async_trait]
pub trait StoreLifecycle: Send + Sync + 'static {
    /// Finishes pending work and closes the database; called once at shutdown.
    async fn close(&self);

    /// Whether the database answers now (a readiness probe).
    async fn ping(&self) -> Result<()>;

    /// Changes other processes made to what this one may cache (a shared database), as they
    /// commit. `None`: no other process writes (the embedded database).
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }

    /// What the read cache did and holds (metrics, tests).
    fn cache_stats(&self) -> CacheStats;

    /// The database connections each of the store's pools holds now (metrics).
    fn pool_stats(&self) -> Vec<PoolStats>;

    /// Bounds the read cache to about `bytes` (0: no cache).
    fn set_cache_budget(&self, bytes: usize);
}

/// The connections of one of a store's pools, at one moment (metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Which pool: `main` (PostgreSQL); `read`, `read-direct` and `write` (SQLite).
    pub pool: &'static str,
    /// Connections lent out: running a query or a transaction.
    pub in_use: usize,
    /// Connections open and waiting for work.
    pub idle: usize,
    /// The most the pool opens at once.
    pub max: usize,
}

impl PoolStats {
    /// The stats of a sqlx pool.
    pub(crate) fn of<DB: sqlx::Database>(pool: &'static str, p: &sqlx::Pool<DB>) -> PoolStats {
        let open = p.size() as usize;
        // Read one after the other: an idle count above the open one means a connection
        // came back in between.
        let idle = p.num_idle().min(open);
        PoolStats {
            pool,
            in_use: open - idle,
            idle,
            max: p.options().get_max_connections() as usize,
        }
    }
}

/// A change another node made, announced by a shared database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A user's tags, policies or existence.
    User(String),
    /// A key was created, rotated, or given a new policy: reload the keys.
    Keys,
    /// Announcements may have been missed: drop everything cached.
    Everything,
}

/// Certificate authorities, templates and issued certificates (Kura.*CertificateAuthority,
/// Kura.*CertificateTemplate, the kura-private-certificate rotation, Kura.RevokeCertificate).
#[async_trait]
pub trait PkiStore: Send + Sync + 'static {
    async fn insert_authority(&self, a: &AuthorityRecord, audit: &AuditSlot) -> Result<()>;
    async fn authority(&self, name: &str) -> Result<Option<AuthorityRecord>>;
    async fn list_authorities(&self) -> Result<Vec<AuthorityRecord>>;
    /// Completes an intermediate that waits for its certificate; false if none waits.
    async fn set_authority_certificate(
        &self,
        name: &str,
        certificate: &str,
        chain: &str,
        not_after: Timestamp,
        audit: &AuditSlot,
    ) -> Result<bool>;
    /// Refused (InvalidRequest) while a template or an intermediate uses it; false if none.
    async fn delete_authority(&self, name: &str, audit: &AuditSlot) -> Result<bool>;
    /// ResourceNotFound when its CA does not exist.
    async fn insert_template(&self, t: &TemplateRecord, audit: &AuditSlot) -> Result<()>;
    async fn template(&self, name: &str) -> Result<Option<TemplateRecord>>;
    async fn list_templates(&self) -> Result<Vec<TemplateRecord>>;
    async fn delete_template(&self, name: &str, audit: &AuditSlot) -> Result<bool>;
    async fn insert_certificate(&self, c: &IssuedCertificateRecord) -> Result<()>;
    async fn certificate(
        &self,
        authority: &str,
        serial: &str,
    ) -> Result<Option<IssuedCertificateRecord>>;
    /// Marks it revoked at `at` unless it already is; whether this call revoked it.
    async fn revoke_certificate(
        &self,
        authority: &str,
        serial: &str,
        at: Timestamp,
        audit: &AuditSlot,
    ) -> Result<bool>;
    /// Revoked certificates of `authority` not expired at `now`: serial (hex) and when.
    async fn revoked_certificates(
        &self,
        authority: &str,
        now: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>>;
    async fn acme_account(
        &self,
        directory_url: &str,
        email: &str,
    ) -> Result<Option<AcmeAccountRecord>>;
    /// Keeps `a` unless the directory and email have an account already (another rotation
    /// made it first); whether it was kept.
    async fn insert_acme_account(&self, a: &AcmeAccountRecord) -> Result<bool>;
}

/// A web console session: who signed in, the token its forms carry, and when it began and
/// was last used (wall-clock milliseconds: sessions time out in real time).
#[derive(Clone)]
pub struct SessionRecord {
    /// The SHA-256 (hex) of the id in the browser's cookie.
    pub id: String,
    pub user_name: String,
    pub arn: String,
    pub user_id: String,
    pub access_key_id: String,
    pub scope_secret_id: Option<i64>,
    pub csrf: String,
    pub created_at: Timestamp,
    pub last_seen: Timestamp,
}

/// The id and the CSRF token are credentials: never printed.
impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("user_name", &self.user_name)
            .field("access_key_id", &self.access_key_id)
            .field("created_at", &self.created_at)
            .field("last_seen", &self.last_seen)
            .finish_non_exhaustive()
    }
}

/// Which sessions have ended: unused since `idle_before`, or begun before `started_before`.
#[derive(Debug, Clone, Copy)]
pub struct SessionCutoff {
    pub idle_before: Timestamp,
    pub started_before: Timestamp,
}

/// Web console sessions, in the database so that every node of a cluster knows them (a
/// browser may be sent to any node, and a sign-out on one ends the session on all).
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores `s`, first forgetting the sessions that have ended; `false` (nothing stored)
    /// when `max` sessions are already open.
    async fn open_session(
        &self,
        s: &SessionRecord,
        cutoff: SessionCutoff,
        max: i64,
    ) -> Result<bool>;
    /// The live session `id` (as it was before this use), its last use now set to `now`;
    /// `None` (and the session forgotten) once it has ended.
    async fn use_session(
        &self,
        id: &str,
        cutoff: SessionCutoff,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>>;
    async fn end_session(&self, id: &str) -> Result<()>;
}

/// Everything the service needs from its database: one backend implements every aggregate's
/// trait, and `Arc<dyn Store>` reaches them all.
pub trait Store:
    SettingsStore
    + KeyStore
    + SecretStore
    + IdentityStore
    + AuditStore
    + RotationStore
    + NotificationStore
    + PkiStore
    + SessionStore
    + StoreLifecycle
{
}

impl<T> Store for T where
    T: SettingsStore
        + KeyStore
        + SecretStore
        + IdentityStore
        + AuditStore
        + RotationStore
        + NotificationStore
        + PkiStore
        + SessionStore
        + StoreLifecycle
{
}

/// The store traits, for `use kura_store::prelude::*;` wherever a store's methods are called.
pub mod prelude {
    pub use super::ModifyReturning;
    pub use crate::{
        AuditStore, IdentityStore, KeyStore, NotificationStore, PkiStore, RotationStore,
        SecretStore, SessionStore, SettingsStore, Store, StoreLifecycle,
    };
}
