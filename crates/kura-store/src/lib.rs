//! Storage: the [`Store`] trait the service layer talks to, and its SQLite backend.
//! The trait speaks in whole-operation terms (one call = one transaction) so a PostgreSQL
//! backend can implement it with the same guarantees.

mod sqlite;

use async_trait::async_trait;
use kura_core::labels::Stages;
use kura_core::model::{NewVersion, SealedValue, SecretRecord, SecretState, VersionMeta};
use kura_core::names::SecretRef;
use kura_core::{Result, Timestamp};

pub use sqlite::SqliteStore;

/// A stored access key; the secret half stays sealed until the keyring opens it.
#[derive(Debug, Clone)]
pub struct AccessKeyRecord {
    pub access_key_id: String,
    pub user_name: String,
    pub user_arn: String,
    pub sealed_secret: SealedValue,
    pub active: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Created,
    LastAccessed,
    LastChanged,
    Name,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKey {
    Name,
    Description,
    TagKey,
    TagValue,
    PrimaryRegion,
    OwningService,
    All,
}

#[derive(Debug, Clone)]
pub struct ListFilter {
    pub key: FilterKey,
    /// Values as sent; a leading `!` negates.
    pub values: Vec<String>,
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

pub type Mutation<'a> = dyn FnMut(&mut SecretState) -> Result<()> + Send + 'a;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- settings and keys -------------------------------------------------------------
    async fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `value` unless the key exists; returns what is stored either way.
    async fn init_setting(&self, key: &str, value: &[u8]) -> Result<Vec<u8>>;
    async fn load_keys(&self) -> Result<Vec<(String, i64, Vec<u8>)>>;
    async fn insert_key(
        &self,
        name: &str,
        version: i64,
        wrapped: &[u8],
        now: Timestamp,
    ) -> Result<()>;

    // --- identity ------------------------------------------------------------------------
    async fn create_user(&self, name: &str, arn: &str, now: Timestamp) -> Result<()>;
    async fn insert_access_key(&self, key: &AccessKeyRecord) -> Result<()>;
    async fn find_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>>;
    async fn user_exists(&self, name: &str) -> Result<bool>;

    // --- secrets -------------------------------------------------------------------------
    /// Inserts a secret (and its first version, labelled by `stages`). A taken name or ARN
    /// answers ResourceExistsException.
    async fn create_secret(
        &self,
        secret: &SecretRecord,
        first: Option<&NewVersion>,
        stages: &Stages,
    ) -> Result<i64>;
    async fn find_secret(&self, secret: &SecretRef) -> Result<Option<SecretRecord>>;
    async fn versions(&self, secret_id: i64) -> Result<(Vec<VersionMeta>, Stages)>;
    async fn read_version(
        &self,
        secret_id: i64,
        which: VersionSelector<'_>,
    ) -> Result<Option<StoredVersion>>;
    /// Loads the secret's full state inside a write transaction, lets `f` change it, and
    /// writes back what changed; an error from `f` rolls everything back.
    async fn modify(&self, secret_id: i64, f: &mut Mutation<'_>) -> Result<SecretState>;
    async fn list_secrets(&self, query: &ListQuery) -> Result<ListPage>;
    /// Secrets whose recovery window has ended, oldest first.
    async fn due_for_purge(&self, now: Timestamp, limit: usize) -> Result<Vec<i64>>;
    /// Records a read at day granularity; writes only when the stored day is older.
    async fn touch_accessed(&self, secret_id: i64, version_id: &str, day: Timestamp) -> Result<()>;
    /// Finishes pending work and closes the database; called once at shutdown.
    async fn close(&self);
    /// Destroys a secret with all its versions, labels and tags.
    async fn delete_secret(&self, secret_id: i64) -> Result<()>;
}
