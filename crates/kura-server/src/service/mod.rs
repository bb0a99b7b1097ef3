//! The service layer, transport-free: the pipeline every door calls (`pipeline.rs`), the list of
//! operations (`operation.rs`) and one function per operation. Every door (AWS protocol,
//! extensions, STS, and the console and CLI to come) goes through `Service::call`, so neither
//! authorization nor the audit record can be skipped.

pub(crate) mod access_keys;
mod acme;
pub mod audit_events;
pub mod authz;
mod batch;
mod expiry;
mod identity;
mod jobs;
mod keys;
pub mod operation;
mod operator;
mod password;
mod pipeline;
mod pki;
mod policy;
pub mod root;
pub mod rotation;
mod scheduler;
mod secrets;
mod tags;
mod tokens;
pub mod types;
mod versions;
mod watch;

use std::sync::Arc;

use kura_core::model::{SealedValue, SecretRecord, ValueKind};
use kura_core::names::{MAX_VALUE_BYTES, SecretRef};
use kura_core::{Clock, Error, ManualClock, Result};
use kura_crypto::Keyring;
use kura_crypto::mac::MacKey;
use kura_store::Store;
use zeroize::Zeroizing;

pub use operation::{Family, Operation, Outcome};
pub use pipeline::{Caller, RequestInfo};

pub const DEFAULT_KEY: &str = "alias/kura/default";

/// Who is calling: the user behind a verified access key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_name: String,
    pub arn: String,
    /// GetCallerIdentity's `UserId` and `aws:userid`: the user's `AIDA…` id, or for a rotation
    /// function's short-lived key `AROA…:ACCESS_KEY_ID` (AWS's assumed-role form, the key as
    /// the session name).
    pub user_id: String,
    pub access_key_id: String,
    /// A rotation function's short-lived key reaches only this secret.
    pub scope_secret_id: Option<i64>,
}

impl Principal {
    /// kura itself, for work it does on its own behalf (built-in rotation steps).
    pub(crate) fn system(account: &str) -> Self {
        Principal {
            user_name: "kura".into(),
            arn: format!("arn:aws:iam::{account}:user/kura"),
            user_id: String::new(),
            access_key_id: String::new(),
            scope_secret_id: None,
        }
    }

    /// Until per-user policies exist, the root user is the only administrator.
    pub fn is_administrator(&self) -> bool {
        self.user_name == "root" && self.scope_secret_id.is_none()
    }
}

pub struct Service {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keyring: Arc<Keyring>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) region: String,
    pub(crate) account: String,
    pub(crate) token_key: MacKey,
    /// Set only when the server runs with `--test-clock`.
    pub(crate) test_clock: Option<Arc<ManualClock>>,
    pub(crate) rotation: rotation::RotationRuntime,
    /// Tests only (`--test-pause-before-step`): rotations hang before this step.
    pub test_pause_step: Option<kura_core::model::RotationStep>,
    audit: std::sync::OnceLock<kura_audit::AuditLog>,
    pub(crate) subjects: authz::SubjectCache,
    pub(crate) compiled: authz::CompiledPolicies,
    /// The named keys this node knows (`keys.rs`).
    pub(crate) keys: keys::KeyCatalog,
    /// This process's name in the audit trail (`node-id` in the data directory).
    pub(crate) node_id: String,
    /// Set when the node can be sealed again (the Shamir seal): `Kura.Seal` wakes it.
    pub(crate) seal_requests: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
    /// `kura operator generate-root` challenges waiting for their answer.
    pub(crate) root_challenges: root::RootChallenges,
    /// How this node keeps its root key, for `Kura.RotateRootKey` (set by the node).
    pub(crate) root_keeper: std::sync::OnceLock<Arc<crate::rootkey::RootKeeper>>,
    /// What wakes Kura.WatchSecrets calls (`watch.rs`).
    watch: watch::WatchHub,
    /// The http-01 tokens of this node's ACME orders in flight (`acme.rs`).
    acme_tokens: acme::Http01Tokens,
}

/// A secret value in the clear (zeroizing, never in `Debug`); it lives in kura-crypto so the
/// rotation functions can take it too.
pub use kura_crypto::Plain;

/// A value any door may store: not empty, at most [`MAX_VALUE_BYTES`].
fn check_value(value: &Plain) -> Result<()> {
    let field = match value.kind() {
        ValueKind::String => "SecretString",
        ValueKind::Binary => "SecretBinary",
    };
    let len = value.bytes().len();
    if len == 0 {
        return Err(Error::invalid_parameter(format!(
            "{field} must not be empty."
        )));
    }
    // A length outside the model's bounds is ValidationException on AWS.
    if len > MAX_VALUE_BYTES {
        return Err(Error::validation(format!(
            "{field} must be at most {MAX_VALUE_BYTES} bytes; this one has {len}."
        )));
    }
    Ok(())
}

/// A request's value, checked.
fn take_value(value: Option<Plain>) -> Result<Option<Plain>> {
    if let Some(v) = &value {
        check_value(v)?;
    }
    Ok(value)
}

pub(crate) fn seal_context(arn: &str, version_id: &str) -> Vec<u8> {
    format!("{arn}\n{version_id}").into_bytes()
}

impl Service {
    pub fn new(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        clock: Arc<dyn Clock>,
        region: String,
        account: String,
        token_key: MacKey,
    ) -> Self {
        Service {
            store,
            keyring,
            clock,
            region,
            account,
            token_key,
            test_clock: None,
            rotation: rotation::RotationRuntime::new(rotation::DEFAULT_CONCURRENCY),
            test_pause_step: None,
            audit: std::sync::OnceLock::new(),
            subjects: authz::SubjectCache::default(),
            compiled: authz::CompiledPolicies::default(),
            keys: keys::KeyCatalog::default(),
            node_id: String::new(),
            seal_requests: std::sync::OnceLock::new(),
            root_challenges: root::RootChallenges::default(),
            root_keeper: std::sync::OnceLock::new(),
            watch: watch::WatchHub::default(),
            acme_tokens: acme::Http01Tokens::default(),
        }
    }

    /// Names this process in the audit records it writes.
    pub fn with_node_id(mut self, node_id: String) -> Self {
        self.node_id = node_id;
        self
    }

    /// Runs at most `n` rotations at once (set before the service starts its jobs).
    pub fn with_rotation_concurrency(mut self, n: usize) -> Self {
        self.rotation = rotation::RotationRuntime::new(n);
        self
    }

    /// Runs the service on a clock that only `Kura.SetClock` / `Kura.AdvanceClock` move.
    pub fn with_test_clock(mut self, clock: Arc<ManualClock>) -> Self {
        self.clock = clock.clone();
        self.test_clock = Some(clock);
        self
    }

    pub(crate) fn set_audit(&self, log: kura_audit::AuditLog) {
        log.observe(self.watch_observer());
        log.observe_latency(Box::new(crate::metrics::audit_commit));
        let _ = self.audit.set(log);
    }

    /// Writes an audit record and waits until it is durable. A service without an audit log
    /// (benchmarks, unit tests) records nothing.
    pub async fn audit(&self, entry: kura_store::AuditRecord) -> Result<()> {
        match self.audit.get() {
            Some(log) => log.record(entry).await,
            None => Ok(()),
        }
    }

    /// Records `entry` as [`audit`](Self::audit) does, telling `queued` once the record will
    /// be written whatever becomes of the caller (a request whose client went away).
    pub(crate) async fn audit_telling(
        &self,
        entry: kura_store::AuditRecord,
        queued: &mut bool,
    ) -> Result<()> {
        match self.audit.get() {
            Some(log) => {
                let written = log.queue(entry).await?;
                *queued = true;
                written.await
            }
            None => Ok(()),
        }
    }

    /// Audit records waiting for the writer; `None` without an audit log.
    pub fn audit_queue_depth(&self) -> Option<usize> {
        self.audit.get().map(kura_audit::AuditLog::queue_depth)
    }

    /// Audit records this process committed; `None` without an audit log.
    pub fn audit_records_committed(&self) -> Option<u64> {
        self.audit
            .get()
            .map(kura_audit::AuditLog::records_committed)
    }

    /// Whether audit records can be written now (`/health?ready`).
    pub fn audit_writable(&self) -> std::result::Result<(), String> {
        match self.audit.get() {
            Some(log) => log.check_writable(),
            None => Err("no audit log is open".into()),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now().0
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Finds the secret a `SecretId` names; not found → ResourceNotFoundException.
    pub(crate) async fn lookup(&self, secret_id: &str) -> Result<SecretRecord> {
        let r = SecretRef::parse(secret_id)?;
        self.store
            .find_secret(&r)
            .await?
            .ok_or_else(Error::secret_not_found)
    }

    /// Like [`lookup`](Self::lookup), but the record authorization already loaded for this
    /// `SecretId` is used once instead of reading it again.
    pub(crate) async fn resolve(&self, c: &Caller, secret_id: &str) -> Result<SecretRecord> {
        match c.take_resolved(secret_id) {
            Some(s) => Ok(s),
            None => self.lookup(secret_id).await,
        }
    }

    /// Like [`resolve`](Self::resolve), for operations refused while deletion is scheduled.
    pub(crate) async fn resolve_live(&self, c: &Caller, secret_id: &str) -> Result<SecretRecord> {
        let s = self.resolve(c, secret_id).await?;
        if s.is_scheduled_for_deletion() {
            return Err(Error::marked_for_deletion());
        }
        Ok(s)
    }

    /// Seals kura's own secrets (access keys, signing secrets) under the default key,
    /// bound to `context` so a sealed blob cannot be moved to another owner.
    pub(crate) fn seal_internal(&self, context: &[u8], bytes: &[u8]) -> Result<SealedValue> {
        self.seal_with(DEFAULT_KEY, context, ValueKind::String, bytes)
    }

    fn seal_with(
        &self,
        key_name: &str,
        context: &[u8],
        kind: ValueKind,
        bytes: &[u8],
    ) -> Result<SealedValue> {
        let s = self.keyring.seal(key_name, context, bytes)?;
        Ok(SealedValue {
            kind,
            ciphertext: s.ciphertext,
            wrapped_key: s.wrapped_key,
            key_name: key_name.to_string(),
            key_version: s.key_version,
        })
    }

    pub(crate) fn open_internal(
        &self,
        context: &[u8],
        sealed: &SealedValue,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.keyring.open(
            &sealed.key_name,
            sealed.key_version,
            context,
            &sealed.ciphertext,
            &sealed.wrapped_key,
        )
    }

    /// Seals a secret's value under the key its `KmsKeyId` names.
    pub(crate) async fn seal(
        &self,
        secret: &SecretRecord,
        version_id: &str,
        plain: &Plain,
    ) -> Result<SealedValue> {
        let key = self.key_for(secret.kms_key_id.as_deref()).await?;
        self.seal_with(
            &key.rec.name,
            &seal_context(&secret.arn, version_id),
            plain.kind(),
            plain.bytes(),
        )
    }

    pub(crate) fn open(&self, arn: &str, version_id: &str, sealed: &SealedValue) -> Result<Plain> {
        Ok(Plain::new(
            sealed.kind,
            self.open_internal(&seal_context(arn, version_id), sealed)?,
        ))
    }

    /// Opens a sealed access-key secret (the SigV4 verifier needs it to recompute signatures).
    pub fn open_access_key(
        &self,
        access_key_id: &str,
        sealed: &SealedValue,
    ) -> Result<Zeroizing<String>> {
        let bytes = self.open_internal(&access_key_context(access_key_id), sealed)?;
        String::from_utf8(bytes.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| Error::internal("stored access key secret is not UTF-8"))
    }
}

pub(crate) fn access_key_context(access_key_id: &str) -> Vec<u8> {
    format!("kura/access-key/{access_key_id}").into_bytes()
}

pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new IAM-style unique user id: `AIDA` and 16 characters of IAM's alphabet (A-Z, 2-7).
pub(crate) fn new_user_id() -> Result<String> {
    let alphabet: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".chars().collect();
    Ok(format!(
        "AIDA{}",
        kura_crypto::random::string_from(&alphabet, 16)?
    ))
}
