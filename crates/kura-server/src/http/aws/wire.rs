//! Request and response shapes of the AWS Secrets Manager JSON protocol (and kura's extensions).
//! Unset fields are omitted, never `null`. Secret values are `Zeroizing` and never `Debug`-printed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A secret value in transit. `Debug` prints `[redacted]`.
#[derive(Clone, Deserialize, Serialize, Default)]
#[serde(transparent)]
pub struct SecretText(pub Zeroizing<String>);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value", default)]
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSecretRequest {
    pub name: String,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    /// Base64 in JSON.
    pub secret_binary: Option<SecretText>,
    pub secret_string: Option<SecretText>,
    pub tags: Option<Vec<Tag>>,
    pub add_replica_regions: Option<serde_json::Value>,
    // ForceOverwriteReplicaSecret is read as any unknown field is (ignored): no replicas here.
}

#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct SecretVersionResponse {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_stages: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretIdRequest {
    pub secret_id: String,
}

/// Kura.SetSecretExpiration: epoch seconds, or null (or absent) to clear.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SetSecretExpirationRequest {
    pub secret_id: String,
    pub expiration_date: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSecretValueRequest {
    pub secret_id: String,
    pub version_id: Option<String>,
    pub version_stage: Option<String>,
}

/// Borrows the value it answers with; no `Debug`, so it cannot be printed.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSecretValueResponse<'a> {
    #[serde(rename = "ARN")]
    pub arn: &'a str,
    pub name: &'a str,
    pub version_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_string: Option<&'a str>,
    /// Base64 of the bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_binary: Option<SecretText>,
    pub version_stages: &'a [String],
    pub created_date: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutSecretValueRequest {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub secret_binary: Option<SecretText>,
    pub secret_string: Option<SecretText>,
    pub version_stages: Option<Vec<String>>,
    // RotationToken (sent by rotation functions) is ignored as unknown fields are: kura knows
    // the caller's rotation from its short-lived key.
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateSecretRequest {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub secret_binary: Option<SecretText>,
    pub secret_string: Option<SecretText>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateSecretVersionStageRequest {
    pub secret_id: String,
    pub version_stage: String,
    pub remove_from_version_id: Option<String>,
    pub move_to_version_id: Option<String>,
}

/// DescribeSecret's answer and a ListSecrets entry, borrowing from the secret it describes
/// (a page of 100 is encoded without copying its strings first).
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeSecretResponse<'a> {
    #[serde(rename = "ARN")]
    pub arn: &'a str,
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_changed_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagRef<'a>>>,
    /// DescribeSecret calls it `VersionIdsToStages`, ListSecrets `SecretVersionsToStages`.
    #[serde(rename = "VersionIdsToStages", skip_serializing_if = "Option::is_none")]
    pub version_ids_to_stages: Option<BTreeMap<&'a str, Vec<&'a str>>>,
    #[serde(
        rename = "SecretVersionsToStages",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret_versions_to_stages: Option<BTreeMap<&'a str, Vec<&'a str>>>,
    pub created_date: f64,
    #[serde(rename = "RotationLambdaARN", skip_serializing_if = "Option::is_none")]
    pub rotation_lambda_arn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_rules: Option<RotationRules>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rotated_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<f64>,
    /// kura's extension: how the current or last rotation went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kura_rotation: Option<KuraRotation>,
    /// kura's extension: when the secret expires (Kura.SetSecretExpiration, or a
    /// certificate's own expiry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kura_expiration_date: Option<f64>,
    /// kura's extension, for secrets that expire or rotate: `Active`, `Active, rotation
    /// pending`, `Active, rotation failed` or `Expired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kura_state: Option<&'static str>,
}

/// A tag as [`Tag`] writes it, borrowed.
#[derive(Debug, Serialize)]
pub struct TagRef<'a> {
    #[serde(rename = "Key")]
    pub key: &'a str,
    #[serde(rename = "Value")]
    pub value: &'a str,
}

#[derive(Debug, Deserialize, Serialize, Default, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct RotationRules {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatically_after_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_expression: Option<String>,
}

#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct KuraRotation {
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub attempt: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_date: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotateSecretRequest {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    #[serde(rename = "RotationLambdaARN")]
    pub rotation_lambda_arn: Option<String>,
    pub rotation_rules: Option<RotationRules>,
    pub rotate_immediately: Option<bool>,
}

/// Kura.CreateRotationFunction.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRotationFunctionRequest {
    pub name: String,
    /// `command`, `webhook` or `kura-password`.
    #[serde(rename = "Type")]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationFunctionEntry {
    pub name: String,
    #[serde(rename = "ARN")]
    pub arn: String,
    #[serde(rename = "Type")]
    pub kind: String,
    pub built_in: bool,
    /// Who the function's steps act as (in the audit trail and in policies).
    pub principal_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_keys: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_rules: Option<GetRandomPasswordRequest>,
    pub timeout_seconds: i64,
    pub max_attempts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_date: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRotationFunctionResponse {
    #[serde(flatten)]
    pub function: RotationFunctionEntry,
    /// A webhook's signing secret, shown once when kura generated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<SecretText>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRotationFunctionsResponse {
    pub rotation_functions: Vec<RotationFunctionEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NameRequest {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateNotificationTargetRequest {
    pub url: String,
    pub events: Vec<String>,
    pub signing_secret: Option<SecretText>,
    /// With `SecretExpiring`: the days before an expiration to send it (default 30, 7, 1).
    pub expiring_days: Option<Vec<i64>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NotificationTargetEntry {
    pub target_id: String,
    pub url: String,
    pub events: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiring_days: Option<Vec<i64>>,
    pub created_date: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateNotificationTargetResponse {
    #[serde(flatten)]
    pub target: NotificationTargetEntry,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<SecretText>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListNotificationTargetsResponse {
    pub notification_targets: Vec<NotificationTargetEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetIdRequest {
    pub target_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    pub key: Option<String>,
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretsRequest {
    pub include_planned_deletion: Option<bool>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub filters: Option<Vec<Filter>>,
    pub sort_order: Option<String>,
    pub sort_by: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretsResponse<'a> {
    pub secret_list: Vec<DescribeSecretResponse<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretVersionIdsRequest {
    pub secret_id: String,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub include_deprecated: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionEntry {
    pub version_id: String,
    pub version_stages: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<f64>,
    pub created_date: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretVersionIdsResponse {
    pub versions: Vec<VersionEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteSecretRequest {
    pub secret_id: String,
    pub recovery_window_in_days: Option<i64>,
    pub force_delete_without_recovery: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteSecretResponse {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub deletion_date: f64,
}

#[derive(Debug, Deserialize, Serialize, Default, Clone)]
#[serde(rename_all = "PascalCase")]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRandomPasswordResponse {
    pub random_password: SecretText,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceRequest {
    pub secret_id: String,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceRequest {
    pub secret_id: String,
    pub tag_keys: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotateRootKeyResponse {
    pub seal_type: String,
    pub keys_rewrapped: i64,
    pub root_key_generation: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetSecretValueRequest {
    pub secret_id_list: Option<Vec<String>>,
    pub filters: Option<Vec<Filter>>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiErrorEntry {
    pub secret_id: String,
    pub error_code: String,
    pub message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetSecretValueResponse<'a> {
    pub secret_values: Vec<GetSecretValueResponse<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<&'a str>,
    pub errors: Vec<ApiErrorEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SetClockRequest {
    pub time: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AdvanceClockRequest {
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClockResponse {
    pub time: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutResourcePolicyRequest {
    pub secret_id: String,
    pub resource_policy: String,
    pub block_public_policy: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetResourcePolicyResponse {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidateResourcePolicyRequest {
    pub secret_id: Option<String>,
    pub resource_policy: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidationErrorEntry {
    pub check_name: String,
    pub error_message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidateResourcePolicyResponse {
    pub policy_validation_passed: bool,
    pub validation_errors: Vec<ValidationErrorEntry>,
}

// --- identity (Kura.*) -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateUserRequest {
    pub user_name: String,
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserEntry {
    pub user_name: String,
    /// IAM's unique id (`AIDA…`): GetCallerIdentity's `UserId` and `aws:userid`.
    pub user_id: String,
    pub arn: String,
    pub create_date: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserResponse {
    pub user: UserEntry,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListUsersResponse {
    pub users: Vec<UserEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserNameRequest {
    pub user_name: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct OptionalUserRequest {
    pub user_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAccessKeyRequest {
    pub user_name: Option<String>,
    /// Importing an existing key (migrations): both or neither.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretText>,
    /// kura's: a lifetime (`30d`, `12h`, `3600s`) after which the key stops authenticating.
    pub expires_in: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyEntry {
    pub user_name: String,
    pub access_key_id: String,
    pub status: String,
    pub secret_access_key: SecretText,
    pub create_date: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAccessKeyResponse {
    pub access_key: AccessKeyEntry,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAccessKeyRequest {
    pub user_name: Option<String>,
    pub access_key_id: String,
    pub status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyIdRequest {
    pub user_name: Option<String>,
    pub access_key_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyMetadata {
    pub user_name: String,
    pub access_key_id: String,
    pub status: String,
    pub create_date: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAccessKeysResponse {
    pub access_key_metadata: Vec<AccessKeyMetadata>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutUserPolicyRequest {
    pub user_name: String,
    pub policy_name: String,
    /// A JSON string as in IAM; kura also takes the document as a JSON object.
    pub policy_document: serde_json::Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserPolicyRequest {
    pub user_name: String,
    pub policy_name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetUserPolicyResponse {
    pub user_name: String,
    pub policy_name: String,
    pub policy_document: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListUserPoliciesResponse {
    pub policy_names: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetCallerIdentityResponse {
    pub user_id: String,
    pub account: String,
    pub arn: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupAuditEventsResponse {
    pub events: Vec<kura_store::AuditRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Kura.WatchSecrets.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WatchSecretsRequest {
    pub cursor: Option<String>,
    pub secret_ids: Option<Vec<String>>,
    pub wait_seconds: Option<i64>,
    pub max_results: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct WatchChange {
    pub seq: i64,
    pub time: f64,
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub change: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct WatchSecretsResponse {
    pub changes: Vec<WatchChange>,
    pub cursor: String,
    pub reset: bool,
}

/// Kura.CreateKey.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateKeyRequest {
    pub description: Option<String>,
    pub alias: Option<String>,
    /// A key policy: an object, or that object as a string.
    pub policy: Option<serde_json::Value>,
    pub tags: Option<Vec<Tag>>,
}

/// Kura.DescribeKey, Kura.RotateKey.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyIdRequest {
    pub key_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeysRequest {
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleKeyDeletionRequest {
    pub key_id: String,
    pub pending_window_in_days: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutKeyPolicyRequest {
    pub key_id: String,
    pub policy: serde_json::Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RewrapStatus {
    pub state: String,
    pub target_version: i64,
    pub done: i64,
    pub remaining: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    pub key_id: String,
    pub arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub creation_date: f64,
    pub current_version: i64,
    pub key_state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrap_status: Option<RewrapStatus>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyResponse {
    pub key_metadata: KeyMetadata,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeysResponse {
    pub keys: Vec<KeyMetadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Kura.CreateCertificateAuthority.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateCertificateAuthorityRequest {
    pub name: String,
    /// `root` or `intermediate`.
    #[serde(rename = "Type")]
    pub kind: String,
    pub common_name: Option<String>,
    pub key_algorithm: Option<String>,
    pub ttl: Option<String>,
    pub parent_authority: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CertificateAuthorityEntry {
    pub name: String,
    #[serde(rename = "Type")]
    pub kind: String,
    pub status: String,
    pub common_name: String,
    pub key_algorithm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_authority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_chain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<f64>,
    pub created_date: f64,
    pub certificate_path: String,
    pub crl_path: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CertificateAuthorityResponse {
    pub certificate_authority: CertificateAuthorityEntry,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListCertificateAuthoritiesResponse {
    pub certificate_authorities: Vec<CertificateAuthorityEntry>,
}

/// Kura.ImportCertificateAuthorityCertificate.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportCertificateAuthorityCertificateRequest {
    pub name: String,
    pub certificate: String,
    pub certificate_chain: Option<String>,
}

/// Kura.CreateCertificateTemplate.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CertificateTemplateEntry {
    pub name: String,
    pub certificate_authority: String,
    pub ttl: String,
    pub max_ttl: String,
    pub allowed_domains: Vec<String>,
    pub allow_ip_sans: bool,
    pub key_algorithm: String,
    pub key_usages: Vec<String>,
    pub created_date: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CertificateTemplateResponse {
    pub certificate_template: CertificateTemplateEntry,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListCertificateTemplatesResponse {
    pub certificate_templates: Vec<CertificateTemplateEntry>,
}

/// Kura.RevokeCertificate.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RevokeCertificateRequest {
    pub certificate_authority: String,
    pub serial_number: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RevokeCertificateResponse {
    pub certificate_authority: String,
    pub serial_number: String,
    pub revocation_date: f64,
}
