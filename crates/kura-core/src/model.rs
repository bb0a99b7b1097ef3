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
}

impl SecretRecord {
    pub fn is_scheduled_for_deletion(&self) -> bool {
        self.deleted_at.is_some()
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
}

impl SecretState {
    pub fn version(&self, id: &str) -> Option<&VersionMeta> {
        self.versions.iter().find(|v| v.version_id == id)
    }
}
