//! The parameters and answers of operations, as the service takes and gives them. Where a
//! protocol's representation differs from the domain's (a value as text or base64, a date
//! as epoch seconds), these hold the domain's, and each door converts.
//!
//! No type here knows how any protocol spells it; the AWS door's codec (`http/aws.rs`) maps
//! these to and from `crate::wire`.

use std::collections::BTreeMap;

use kura_core::Timestamp;
use kura_core::labels::Stages;
use kura_core::model::SecretRecord;
use zeroize::Zeroizing;

pub use super::Plain;
pub use kura_core::model::Tag;

/// A secret string that is not a stored value: a generated password, an access key's secret,
/// a signing secret, a function's environment. `Debug` prints `[redacted]`.
#[derive(Clone, Default)]
pub struct SecretText(pub Zeroizing<String>);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// LookupAuditEvents' filters.
#[derive(Debug)]
pub struct LookupAuditEventsRequest {
    /// Epoch seconds, inclusive.
    pub start_time: Option<f64>,
    pub end_time: Option<f64>,
    pub principal: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    /// `Success` or `Error`.
    pub outcome: Option<String>,
    /// Newest first rather than oldest first.
    pub newest_first: Option<bool>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug)]
pub struct LookupAuditEventsResponse {
    pub events: Vec<kura_store::AuditRecord>,
    pub next_token: Option<String>,
}

/// Kura.WatchSecrets: changes to secrets after a cursor, waiting for them up to a limit.
#[derive(Debug)]
pub struct WatchSecretsRequest {
    /// A `Cursor` from an earlier answer; absent: from now.
    pub cursor: Option<String>,
    /// Only these secrets (names or ARNs); absent: every secret the caller may describe.
    pub secret_ids: Option<Vec<String>>,
    /// How long to wait for a change, 0 to 60 seconds (default 20).
    pub wait_seconds: Option<i64>,
    pub max_results: Option<i64>,
}

/// One change to a secret; never a value.
#[derive(Debug)]
pub struct WatchChange {
    /// The audit record's sequence number.
    pub seq: i64,
    /// Epoch seconds.
    pub time: f64,
    pub arn: String,
    pub name: String,
    /// `Created`, `ValueChanged`, `StagesMoved`, `RotationStarted`, `Rotated`,
    /// `MetadataChanged`, `Deleted`, `Restored` or `Purged`.
    pub change: String,
    /// The action that made it (`secretsmanager:PutSecretValue`, `rotation:finishSecret`, …).
    pub action: String,
    pub version_id: Option<String>,
}

#[derive(Debug)]
pub struct WatchSecretsResponse {
    pub changes: Vec<WatchChange>,
    /// Where the next call resumes.
    pub cursor: String,
    /// The cursor given was not from this audit trail (ahead of its end): changes may have
    /// been missed, so whatever the caller holds should be dropped.
    pub reset: bool,
}

#[derive(Debug)]
pub struct CreateSecretRequest {
    pub name: String,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub value: Option<Plain>,
    pub tags: Option<Vec<Tag>>,
    /// Replication was asked for (`AddReplicaRegions`); kura refuses it.
    pub replica_regions: bool,
}

#[derive(Debug)]
pub struct PutSecretValueRequest {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub value: Option<Plain>,
    pub version_stages: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct UpdateSecretRequest {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub value: Option<Plain>,
}

/// One version's value, as GetSecretValue and BatchGetSecretValue answer it.
#[derive(Debug)]
pub struct GetSecretValueResponse {
    pub arn: String,
    pub name: String,
    pub version_id: String,
    pub value: Plain,
    pub version_stages: Vec<String>,
    pub created: Timestamp,
}

#[derive(Debug)]
pub struct BatchGetSecretValueResponse {
    pub secret_values: Vec<GetSecretValueResponse>,
    pub next_token: Option<String>,
    pub errors: Vec<ApiErrorEntry>,
}

/// A secret's metadata and where its labels are: DescribeSecret's answer.
#[derive(Debug)]
pub struct SecretDescription {
    /// Boxed: the record is most of the answer, and operations' answers share one enum.
    pub secret: Box<SecretRecord>,
    pub stages: Stages,
    /// When it was read: whether the secret has expired.
    pub now: Timestamp,
}

/// One page of ListSecrets.
#[derive(Debug)]
pub struct SecretListPage {
    pub secrets: Vec<SecretDescription>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default)]
pub struct SecretVersionResponse {
    pub arn: String,
    pub name: String,
    pub version_id: Option<String>,
    pub version_stages: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct SecretIdRequest {
    pub secret_id: String,
}

#[derive(Debug)]
pub struct SetSecretExpirationRequest {
    pub secret_id: String,
    /// Epoch seconds; `None` clears the expiration.
    pub expiration_date: Option<f64>,
}

#[derive(Debug)]
pub struct GetSecretValueRequest {
    pub secret_id: String,
    pub version_id: Option<String>,
    pub version_stage: Option<String>,
}

#[derive(Debug)]
pub struct UpdateSecretVersionStageRequest {
    pub secret_id: String,
    pub version_stage: String,
    pub remove_from_version_id: Option<String>,
    pub move_to_version_id: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct RotationRules {
    pub automatically_after_days: Option<i64>,
    pub duration: Option<String>,
    pub schedule_expression: Option<String>,
}

#[derive(Debug)]
pub struct RotateSecretRequest {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub rotation_lambda_arn: Option<String>,
    pub rotation_rules: Option<RotationRules>,
    pub rotate_immediately: Option<bool>,
}

/// Kura.CreateRotationFunction.
#[derive(Debug)]
pub struct CreateRotationFunctionRequest {
    pub name: String,
    /// `command`, `webhook` or `kura-password`.
    pub kind: String,
    pub command: Option<Vec<String>>,
    /// Values may be credentials for the function: redacted in `Debug`, stored sealed.
    pub environment: Option<BTreeMap<String, SecretText>>,
    pub url: Option<String>,
    pub signing_secret: Option<SecretText>,
    pub password_rules: Option<GetRandomPasswordRequest>,
    pub timeout_seconds: Option<i64>,
    pub max_attempts: Option<i64>,
    /// An IAM policy (object, or that object as a string) added to what a command
    /// function's step key may do.
    pub policy: Option<serde_json::Value>,
}

#[derive(Debug)]
pub struct RotationFunctionEntry {
    pub name: String,
    pub arn: String,
    pub kind: String,
    pub built_in: bool,
    /// Who the function's steps act as (in the audit trail and in policies).
    pub principal_arn: String,
    pub policy: Option<String>,
    pub command: Option<Vec<String>>,
    pub environment_keys: Option<Vec<String>>,
    pub url: Option<String>,
    pub password_rules: Option<GetRandomPasswordRequest>,
    pub timeout_seconds: i64,
    pub max_attempts: i64,
    pub created_date: Option<Timestamp>,
}

#[derive(Debug)]
pub struct CreateRotationFunctionResponse {
    pub function: RotationFunctionEntry,
    /// A webhook's signing secret, shown once when kura generated it.
    pub signing_secret: Option<SecretText>,
}

#[derive(Debug)]
pub struct ListRotationFunctionsResponse {
    pub rotation_functions: Vec<RotationFunctionEntry>,
}

#[derive(Debug)]
pub struct NameRequest {
    pub name: String,
}

#[derive(Debug)]
pub struct CreateNotificationTargetRequest {
    pub url: String,
    pub events: Vec<String>,
    pub signing_secret: Option<SecretText>,
    pub expiring_days: Option<Vec<i64>>,
}

#[derive(Debug)]
pub struct NotificationTargetEntry {
    pub target_id: String,
    pub url: String,
    pub events: Vec<String>,
    /// Shown for a target that asked for `SecretExpiring`.
    pub expiring_days: Option<Vec<i64>>,
    pub created_date: Timestamp,
}

#[derive(Debug)]
pub struct CreateNotificationTargetResponse {
    pub target: NotificationTargetEntry,
    pub signing_secret: Option<SecretText>,
}

#[derive(Debug)]
pub struct ListNotificationTargetsResponse {
    pub notification_targets: Vec<NotificationTargetEntry>,
}

#[derive(Debug)]
pub struct TargetIdRequest {
    pub target_id: String,
}

#[derive(Debug)]
pub struct Filter {
    pub key: Option<String>,
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Default)]
pub struct ListSecretsRequest {
    pub include_planned_deletion: Option<bool>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub filters: Option<Vec<Filter>>,
    pub sort_order: Option<String>,
    pub sort_by: Option<String>,
}

#[derive(Debug)]
pub struct ListSecretVersionIdsRequest {
    pub secret_id: String,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub include_deprecated: Option<bool>,
}

#[derive(Debug)]
pub struct VersionEntry {
    pub version_id: String,
    pub version_stages: Vec<String>,
    pub last_accessed_date: Option<Timestamp>,
    pub created_date: Timestamp,
}

#[derive(Debug)]
pub struct ListSecretVersionIdsResponse {
    pub versions: Vec<VersionEntry>,
    pub next_token: Option<String>,
    pub arn: String,
    pub name: String,
}

#[derive(Debug)]
pub struct DeleteSecretRequest {
    pub secret_id: String,
    pub recovery_window_in_days: Option<i64>,
    pub force_delete_without_recovery: Option<bool>,
}

#[derive(Debug)]
pub struct DeleteSecretResponse {
    pub arn: String,
    pub name: String,
    pub deletion_date: Timestamp,
}

#[derive(Debug, Default, Clone)]
pub struct GetRandomPasswordRequest {
    pub password_length: Option<i64>,
    pub exclude_characters: Option<String>,
    pub exclude_numbers: Option<bool>,
    pub exclude_punctuation: Option<bool>,
    pub exclude_uppercase: Option<bool>,
    pub exclude_lowercase: Option<bool>,
    pub include_space: Option<bool>,
    pub require_each_included_type: Option<bool>,
}

#[derive(Debug)]
pub struct GetRandomPasswordResponse {
    pub random_password: SecretText,
}

#[derive(Debug)]
pub struct TagResourceRequest {
    pub secret_id: String,
    pub tags: Vec<Tag>,
}

#[derive(Debug)]
pub struct UntagResourceRequest {
    pub secret_id: String,
    pub tag_keys: Vec<String>,
}

#[derive(Debug)]
pub struct Empty {}

/// What `Kura.RotateRootKey` did.
#[derive(Debug)]
pub struct RotateRootKeyResponse {
    pub seal_type: String,
    pub keys_rewrapped: i64,
    pub root_key_generation: i64,
}

#[derive(Debug)]
pub struct BatchGetSecretValueRequest {
    pub secret_id_list: Option<Vec<String>>,
    pub filters: Option<Vec<Filter>>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug)]
pub struct ApiErrorEntry {
    pub secret_id: String,
    pub error_code: String,
    pub message: String,
}

#[derive(Debug)]
pub struct SetClockRequest {
    pub time: f64,
}

#[derive(Debug)]
pub struct AdvanceClockRequest {
    pub seconds: f64,
}

#[derive(Debug)]
pub struct ClockResponse {
    pub time: Timestamp,
}

#[derive(Debug)]
pub struct PutResourcePolicyRequest {
    pub secret_id: String,
    pub resource_policy: String,
    pub block_public_policy: Option<bool>,
}

#[derive(Debug)]
pub struct GetResourcePolicyResponse {
    pub arn: String,
    pub name: String,
    pub resource_policy: Option<String>,
}

#[derive(Debug)]
pub struct ValidateResourcePolicyRequest {
    pub secret_id: Option<String>,
    pub resource_policy: String,
}

#[derive(Debug)]
pub struct ValidationErrorEntry {
    pub check_name: String,
    pub error_message: String,
}

#[derive(Debug)]
pub struct ValidateResourcePolicyResponse {
    pub policy_validation_passed: bool,
    pub validation_errors: Vec<ValidationErrorEntry>,
}

#[derive(Debug)]
pub struct CreateUserRequest {
    pub user_name: String,
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug)]
pub struct UserEntry {
    pub user_name: String,
    /// IAM's unique id (`AIDA…`): GetCallerIdentity's `UserId` and `aws:userid`.
    pub user_id: String,
    pub arn: String,
    pub create_date: Timestamp,
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug)]
pub struct UserResponse {
    pub user: UserEntry,
}

#[derive(Debug)]
pub struct ListUsersResponse {
    pub users: Vec<UserEntry>,
}

#[derive(Debug)]
pub struct UserNameRequest {
    pub user_name: String,
}

#[derive(Debug, Default)]
pub struct OptionalUserRequest {
    pub user_name: Option<String>,
}

#[derive(Debug)]
pub struct CreateAccessKeyRequest {
    pub user_name: Option<String>,
    /// Importing an existing key (migrations): both or neither.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretText>,
    /// A lifetime (`30d`, `12h`, `3600s`) after which the key stops authenticating.
    pub expires_in: Option<String>,
}

#[derive(Debug)]
pub struct AccessKeyEntry {
    pub user_name: String,
    pub access_key_id: String,
    pub status: String,
    pub secret_access_key: SecretText,
    pub create_date: Timestamp,
    pub expiration: Option<Timestamp>,
}

#[derive(Debug)]
pub struct CreateAccessKeyResponse {
    pub access_key: AccessKeyEntry,
}

#[derive(Debug)]
pub struct UpdateAccessKeyRequest {
    pub user_name: Option<String>,
    pub access_key_id: String,
    pub status: String,
}

#[derive(Debug)]
pub struct AccessKeyIdRequest {
    pub user_name: Option<String>,
    pub access_key_id: String,
}

#[derive(Debug)]
pub struct AccessKeyMetadata {
    pub user_name: String,
    pub access_key_id: String,
    pub status: String,
    pub create_date: Timestamp,
    pub last_used_date: Option<Timestamp>,
    pub expiration: Option<Timestamp>,
}

#[derive(Debug)]
pub struct ListAccessKeysResponse {
    pub access_key_metadata: Vec<AccessKeyMetadata>,
}

#[derive(Debug)]
pub struct PutUserPolicyRequest {
    pub user_name: String,
    pub policy_name: String,
    /// A JSON string as in IAM; kura also takes the document as a JSON object.
    pub policy_document: serde_json::Value,
}

#[derive(Debug)]
pub struct UserPolicyRequest {
    pub user_name: String,
    pub policy_name: String,
}

#[derive(Debug)]
pub struct GetUserPolicyResponse {
    pub user_name: String,
    pub policy_name: String,
    pub policy_document: String,
}

#[derive(Debug)]
pub struct ListUserPoliciesResponse {
    pub policy_names: Vec<String>,
}

#[derive(Debug)]
pub struct GetCallerIdentityResponse {
    pub user_id: String,
    pub account: String,
    pub arn: String,
}

/// Kura.CreateKey.
#[derive(Debug, Default)]
pub struct CreateKeyRequest {
    pub description: Option<String>,
    pub alias: Option<String>,
    /// A key policy: a JSON object, or that object as a string.
    pub policy: Option<serde_json::Value>,
    pub tags: Option<Vec<Tag>>,
}

/// A key named by id, ARN, alias or alias ARN (`None`: the default key, where allowed).
#[derive(Debug, Default)]
pub struct KeyIdRequest {
    pub key_id: Option<String>,
}

#[derive(Debug, Default)]
pub struct ListKeysRequest {
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug)]
pub struct ScheduleKeyDeletionRequest {
    pub key_id: String,
    pub pending_window_in_days: Option<i64>,
}

#[derive(Debug)]
pub struct PutKeyPolicyRequest {
    pub key_id: String,
    pub policy: serde_json::Value,
}

/// Where a rotation's background re-wrap of data keys stands.
#[derive(Debug)]
pub struct RewrapStatus {
    /// `InProgress` or `Complete`.
    pub state: String,
    pub target_version: i64,
    pub done: i64,
    pub remaining: i64,
}

#[derive(Debug)]
pub struct KeyMetadata {
    pub key_id: String,
    pub arn: String,
    pub alias: Option<String>,
    pub description: Option<String>,
    pub creation_date: Timestamp,
    pub current_version: i64,
    pub key_state: String,
    pub deletion_date: Option<Timestamp>,
    pub policy: Option<String>,
    pub tags: Option<Vec<Tag>>,
    pub rewrap_status: Option<RewrapStatus>,
}

#[derive(Debug)]
pub struct KeyResponse {
    pub key_metadata: KeyMetadata,
}

#[derive(Debug)]
pub struct ListKeysResponse {
    pub keys: Vec<KeyMetadata>,
    pub next_token: Option<String>,
}

/// Kura.CreateCertificateAuthority: a root, an intermediate signed by the kura CA
/// `parent_authority`, or (no parent) an intermediate whose CSR an external root signs.
#[derive(Debug)]
pub struct CreateCertificateAuthorityRequest {
    pub name: String,
    /// `root` or `intermediate`.
    pub kind: String,
    pub common_name: Option<String>,
    pub key_algorithm: Option<String>,
    pub ttl: Option<String>,
    pub parent_authority: Option<String>,
}

/// A CA as the API shows it; never its key.
#[derive(Debug)]
pub struct CertificateAuthorityEntry {
    pub name: String,
    pub kind: String,
    /// `Active`, or `PendingCertificate` while an external root has not signed it yet.
    pub status: String,
    pub common_name: String,
    pub key_algorithm: String,
    pub parent_authority: Option<String>,
    pub certificate: Option<String>,
    pub certificate_chain: Option<String>,
    pub csr: Option<String>,
    pub expiration_date: Option<Timestamp>,
    pub created_date: Timestamp,
    /// Where the certificate and the CRL are served, unauthenticated (paths on this server).
    pub certificate_path: String,
    pub crl_path: String,
}

#[derive(Debug)]
pub struct CertificateAuthorityResponse {
    pub certificate_authority: CertificateAuthorityEntry,
}

#[derive(Debug)]
pub struct ListCertificateAuthoritiesResponse {
    pub certificate_authorities: Vec<CertificateAuthorityEntry>,
}

/// Kura.ImportCertificateAuthorityCertificate: the certificate an external root signed for a
/// pending intermediate, and the certificates between it and the root (root excluded).
#[derive(Debug)]
pub struct ImportCertificateAuthorityCertificateRequest {
    pub name: String,
    pub certificate: String,
    pub certificate_chain: Option<String>,
}

/// Kura.CreateCertificateTemplate.
#[derive(Debug)]
pub struct CreateCertificateTemplateRequest {
    pub name: String,
    pub certificate_authority: String,
    pub ttl: Option<String>,
    pub max_ttl: Option<String>,
    pub allowed_domains: Vec<String>,
    pub allow_ip_sans: Option<bool>,
    pub key_algorithm: Option<String>,
    pub key_usages: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct CertificateTemplateEntry {
    pub name: String,
    pub certificate_authority: String,
    pub ttl: String,
    pub max_ttl: String,
    pub allowed_domains: Vec<String>,
    pub allow_ip_sans: bool,
    pub key_algorithm: String,
    pub key_usages: Vec<String>,
    pub created_date: Timestamp,
}

#[derive(Debug)]
pub struct CertificateTemplateResponse {
    pub certificate_template: CertificateTemplateEntry,
}

#[derive(Debug)]
pub struct ListCertificateTemplatesResponse {
    pub certificate_templates: Vec<CertificateTemplateEntry>,
}

/// Kura.RevokeCertificate: by the issuing CA and the serial number.
#[derive(Debug)]
pub struct RevokeCertificateRequest {
    pub certificate_authority: String,
    pub serial_number: String,
}

#[derive(Debug)]
pub struct RevokeCertificateResponse {
    pub certificate_authority: String,
    pub serial_number: String,
    pub revocation_date: Timestamp,
}
