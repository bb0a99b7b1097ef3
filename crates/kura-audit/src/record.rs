//! The audit record, the queries over stored records, and what the trail needs of a store.

use async_trait::async_trait;
use kura_core::Result;

/// One audit record. Holds no secret value and no request field that could hold one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuditRecord {
    pub seq: i64,
    /// Milliseconds since the epoch.
    pub time: i64,
    pub request_id: String,
    /// `request`, `rotation` or `job`.
    pub kind: String,
    pub principal: String,
    pub access_key_id: String,
    pub action: String,
    pub resource: String,
    pub version_id: Option<String>,
    pub version_stage: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// `Allow` or `Deny` (the authorization decision), `-` when none was made.
    pub decision: String,
    /// `Success` or `Error`.
    pub outcome: String,
    pub error_code: Option<String>,
    pub duration_us: i64,
    /// Hex HMAC chaining this record to the one before.
    pub mac: String,
    /// The node that wrote the record (its `node-id`); empty in records from before nodes
    /// were named, which therefore serialise, and verify, exactly as they were written.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
}

/// LookupAuditEvents' filters; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub principal: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub outcome: Option<String>,
    /// Only records after this sequence number (paging).
    pub after_seq: Option<i64>,
    /// Only records before this sequence number (paging newest first).
    pub before_seq: Option<i64>,
    /// Newest first (descending sequence numbers) rather than oldest first.
    pub newest_first: bool,
    pub limit: usize,
}

/// The audit chain as a store sees it: this crate owns the MAC key and the file.
pub trait AuditChain: Send + Sync + 'static {
    /// The MAC of `record` (its own `mac` ignored), chained after `prev`, the MAC of the
    /// record before it (`None` for the first record).
    fn mac(&self, prev: Option<&str>, record: &AuditRecord) -> String;
    /// Called right after `records` committed and before any other audit-writing
    /// transaction can begin, so calls come in commit order, which is seq order.
    fn committed(&self, records: &[AuditRecord]) -> Result<()>;
    /// How long a commit that made audit records durable took: from the first of its records
    /// written into the transaction until COMMIT returned (the commit latency of `/metrics`).
    fn commit_took(&self, _took: std::time::Duration) {}
}

/// The audit chain.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Gives the store the audit chain (set once, at start-up). From then on every write
    /// transaction of a request commits the request's record (see `kura_store::AuditSlot`).
    fn set_audit_chain(&self, chain: std::sync::Arc<dyn AuditChain>);
    /// Numbers and chains records after the last stored one and appends them, in one
    /// transaction; then hands them to the chain's `committed`, whose error it returns.
    /// Taken by value: a read's record is moved, never copied, on its way to the disk.
    async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<()>;
    async fn last_audit(&self) -> Result<Option<AuditRecord>>;
    /// Records matching `q`, oldest first (newest first with `q.newest_first`).
    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>>;
}
