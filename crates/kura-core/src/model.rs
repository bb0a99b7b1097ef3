//! The stored shape of secrets and versions, as the service layer sees them.

use crate::Timestamp;
use crate::labels::Stages;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// A secret's metadata (never its value).
#[derive(Debug, Clone)]
pub struct SecretRecord {
    /// Store-internal id.
    pub id: i64,
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    /// The key-encryption key the caller chose; `None` means the default key.
    pub kms_key_id: Option<String>,
    pub created_at: Timestamp,
    pub changed_at: Timestamp,
    pub accessed_at: Option<Timestamp>,
    /// When DeleteSecret was called; `Some` means the secret is scheduled for deletion.
    pub deleted_at: Option<Timestamp>,
    /// When the purge job may destroy it.
    pub purge_at: Option<Timestamp>,
    /// The resource policy document, as validated and stored.
    pub resource_policy: Option<String>,
    pub tags: Vec<Tag>,
    /// Whether the secret ever had a tag (the store keeps it): AWS then answers an empty tag
    /// list as `Tags: []`, and leaves `Tags` out for a secret never tagged.
    pub tagged: bool,
    pub rotation: RotationConfig,
    pub run: RotationRun,
    /// When the secret expires (Kura.SetSecretExpiration, or a certificate's own expiry).
    pub expires_at: Option<Timestamp>,
    /// When the next expiry notice is due (see `expiry::next_notice`); `None` when none is.
    pub expiry_notice_at: Option<Timestamp>,
}

/// How a secret rotates: RotateSecret's settings, and when the schedule is next due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationConfig {
    pub enabled: bool,
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`, naming a kura rotation function.
    pub function_arn: Option<String>,
    /// RotationRules as sent (validated): at most one of the first two.
    pub after_days: Option<i64>,
    pub schedule_expression: Option<String>,
    pub duration: Option<String>,
    pub last_rotated_at: Option<Timestamp>,
    /// Start of the next scheduled rotation window; `None` when rotation is on demand only.
    pub next_rotation_at: Option<Timestamp>,
    /// End of that window: a cycle's retries stop there.
    pub next_rotation_end: Option<Timestamp>,
}

impl RotationConfig {
    pub fn has_rules(&self) -> bool {
        self.after_days.is_some() || self.schedule_expression.is_some()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RotationPhase {
    #[default]
    Idle,
    InProgress,
    Succeeded,
    Failed,
}

impl RotationPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RotationPhase::Idle => "Idle",
            RotationPhase::InProgress => "InProgress",
            RotationPhase::Succeeded => "Succeeded",
            RotationPhase::Failed => "Failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Idle, Self::InProgress, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// The four steps of AWS's rotation protocol, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationStep {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl RotationStep {
    pub const ALL: [RotationStep; 4] = [
        RotationStep::CreateSecret,
        RotationStep::SetSecret,
        RotationStep::TestSecret,
        RotationStep::FinishSecret,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            RotationStep::CreateSecret => "createSecret",
            RotationStep::SetSecret => "setSecret",
            RotationStep::TestSecret => "testSecret",
            RotationStep::FinishSecret => "finishSecret",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
    pub fn next(self) -> Option<Self> {
        match self {
            RotationStep::CreateSecret => Some(RotationStep::SetSecret),
            RotationStep::SetSecret => Some(RotationStep::TestSecret),
            RotationStep::TestSecret => Some(RotationStep::FinishSecret),
            RotationStep::FinishSecret => None,
        }
    }
}

/// Progress of the current (or last) rotation cycle, persisted after every step so a
/// restarted server resumes where the last one stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationRun {
    pub phase: RotationPhase,
    /// The cycle's ClientRequestToken = the pending version's id.
    pub token: Option<String>,
    /// The step to run next (InProgress), or the step that failed (Failed).
    pub step: Option<RotationStep>,
    /// 1-based attempt number within the cycle.
    pub attempt: i64,
    /// Why the last attempt failed; never holds a secret value.
    pub last_error: Option<String>,
    pub last_attempt_at: Option<Timestamp>,
    /// When the engine should next work on this cycle (a retry, or recovery of a crashed step).
    pub resume_at: Option<Timestamp>,
    /// Retries stop at the end of the cycle's window.
    pub window_end: Option<Timestamp>,
}

impl SecretRecord {
    /// A secret as CreateSecret makes it at `now`, before the store gives it an id: default
    /// key, never accessed, deleted, tagged before or rotated, no resource policy.
    pub fn new(
        name: String,
        arn: String,
        description: Option<String>,
        tags: Vec<Tag>,
        now: Timestamp,
    ) -> Self {
        SecretRecord {
            id: 0,
            name,
            arn,
            description,
            kms_key_id: None,
            created_at: now,
            changed_at: now,
            accessed_at: None,
            deleted_at: None,
            purge_at: None,
            resource_policy: None,
            tags,
            tagged: false,
            rotation: RotationConfig::default(),
            run: RotationRun::default(),
            expires_at: None,
            expiry_notice_at: None,
        }
    }

    pub fn is_scheduled_for_deletion(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// Sets (or, with `None`, clears) the expiration at `now`: notices already past are not
    /// sent, the next one is due at its time.
    pub fn set_expiration(&mut self, expires: Option<Timestamp>, now: Timestamp) {
        self.expires_at = expires;
        self.expiry_notice_at = expires.and_then(|e| crate::expiry::next_notice(e, now));
    }
}

/// A version's metadata. `has_value` is false for the AWSPENDING placeholder rotation creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionMeta {
    pub version_id: String,
    pub created_at: Timestamp,
    pub accessed_at: Option<Timestamp>,
    pub has_value: bool,
}

/// Whether the value is a string or bytes; the sealed form is opaque to everything but crypto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    String,
    Binary,
}

/// A version's value as stored: sealed with a data key that is itself wrapped.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub kind: ValueKind,
    pub ciphertext: Vec<u8>,
    pub wrapped_key: Vec<u8>,
    pub key_name: String,
    pub key_version: i64,
}

impl std::fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedValue")
            .field("kind", &self.kind)
            .field("key_name", &self.key_name)
            .field("key_version", &self.key_version)
            .finish_non_exhaustive()
    }
}

/// A version to write: a new one, or the value for an existing value-less placeholder.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub version_id: String,
    pub created_at: Timestamp,
    pub value: Option<SealedValue>,
}

/// Everything a single-secret write may change, loaded and saved in one transaction.
#[derive(Debug, Clone)]
pub struct SecretState {
    pub secret: SecretRecord,
    pub versions: Vec<VersionMeta>,
    pub stages: Stages,
    /// Versions to insert (or, for a placeholder, to fill) when the transaction commits.
    pub new_versions: Vec<NewVersion>,
    /// Notifications to queue in the same transaction, so a change and its event are
    /// committed together or not at all.
    pub events: Vec<OutboxEvent>,
}

/// An event for the notification outbox: its name (targets subscribe by name) and JSON body.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// What targets subscribe by: the event's name, or for `SecretExpiring` the name and the
    /// days before (`SecretExpiring:7`), so each target hears only the days it asked for.
    pub event: String,
    pub body: String,
    pub at: Timestamp,
}

impl SecretState {
    pub fn version(&self, id: &str) -> Option<&VersionMeta> {
        self.versions.iter().find(|v| v.version_id == id)
    }
}
