//! The AWS shapes (`wire`) to and from the service's (`service::types`), field by field. A
//! field whose representation differs (a date as epoch seconds, a tag) converts through
//! [`Conv`]; everything else is moved as it is.

use std::collections::BTreeMap;

use kura_core::{Result, Timestamp};

use super::wire;
use crate::service::types;

/// One field's value, from one representation to the other.
pub(super) trait Conv<T> {
    fn conv(self) -> Result<T>;
}

macro_rules! same {
    ($($t:ty),* $(,)?) => {
        $(impl Conv<$t> for $t {
            fn conv(self) -> Result<$t> {
                Ok(self)
            }
        })*
    };
}
same!(
    String,
    bool,
    i64,
    f64,
    serde_json::Value,
    kura_store::AuditRecord
);

impl<A: Conv<B>, B> Conv<Option<B>> for Option<A> {
    fn conv(self) -> Result<Option<B>> {
        self.map(Conv::conv).transpose()
    }
}

impl<A: Conv<B>, B> Conv<Vec<B>> for Vec<A> {
    fn conv(self) -> Result<Vec<B>> {
        self.into_iter().map(Conv::conv).collect()
    }
}

impl<A: Conv<B>, B> Conv<BTreeMap<String, B>> for BTreeMap<String, A> {
    fn conv(self) -> Result<BTreeMap<String, B>> {
        self.into_iter().map(|(k, v)| Ok((k, v.conv()?))).collect()
    }
}

/// Dates travel as epoch seconds.
impl Conv<f64> for Timestamp {
    fn conv(self) -> Result<f64> {
        Ok(self.epoch_seconds())
    }
}

impl Conv<types::SecretText> for wire::SecretText {
    fn conv(self) -> Result<types::SecretText> {
        Ok(types::SecretText(self.0))
    }
}

impl Conv<wire::SecretText> for types::SecretText {
    fn conv(self) -> Result<wire::SecretText> {
        Ok(wire::SecretText(self.0))
    }
}

impl Conv<types::Tag> for wire::Tag {
    fn conv(self) -> Result<types::Tag> {
        Ok(types::Tag {
            key: self.key,
            value: self.value,
        })
    }
}

impl Conv<wire::Tag> for types::Tag {
    fn conv(self) -> Result<wire::Tag> {
        Ok(wire::Tag {
            key: self.key,
            value: self.value,
        })
    }
}

/// `Name { fields };` for shapes that match field for field.
macro_rules! from_wire {
    ($($t:ident { $($f:ident),* };)*) => {
        $(impl Conv<types::$t> for wire::$t {
            #[allow(unused_variables)]
            fn conv(self) -> Result<types::$t> {
                Ok(types::$t { $($f: self.$f.conv()?),* })
            }
        })*
    };
}

macro_rules! to_wire {
    ($($t:ident { $($f:ident),* };)*) => {
        $(impl Conv<wire::$t> for types::$t {
            #[allow(unused_variables)]
            fn conv(self) -> Result<wire::$t> {
                Ok(wire::$t { $($f: self.$f.conv()?),* })
            }
        })*
    };
}

from_wire! {
SecretIdRequest { secret_id };
    SetSecretExpirationRequest { secret_id, expiration_date };
    GetSecretValueRequest { secret_id, version_id, version_stage };
    UpdateSecretVersionStageRequest { secret_id, version_stage, remove_from_version_id, move_to_version_id };
    RotationRules { automatically_after_days, duration, schedule_expression };
    RotateSecretRequest { secret_id, client_request_token, rotation_lambda_arn, rotation_rules, rotate_immediately };
    CreateRotationFunctionRequest { name, kind, command, environment, url, signing_secret, password_rules, timeout_seconds, max_attempts, policy };
    NameRequest { name };
    CreateNotificationTargetRequest { url, events, signing_secret, expiring_days };
    TargetIdRequest { target_id };
    Filter { key, values };
    ListSecretsRequest { include_planned_deletion, max_results, next_token, filters, sort_order, sort_by };
    ListSecretVersionIdsRequest { secret_id, max_results, next_token, include_deprecated };
    DeleteSecretRequest { secret_id, recovery_window_in_days, force_delete_without_recovery };
    GetRandomPasswordRequest { password_length, exclude_characters, exclude_numbers, exclude_punctuation, exclude_uppercase, exclude_lowercase, include_space, require_each_included_type };
    TagResourceRequest { secret_id, tags };
    UntagResourceRequest { secret_id, tag_keys };
    Empty {};
    BatchGetSecretValueRequest { secret_id_list, filters, max_results, next_token };
    SetClockRequest { time };
    AdvanceClockRequest { seconds };
    PutResourcePolicyRequest { secret_id, resource_policy, block_public_policy };
    ValidateResourcePolicyRequest { secret_id, resource_policy };
    CreateUserRequest { user_name, tags };
    UserNameRequest { user_name };
    OptionalUserRequest { user_name };
    CreateAccessKeyRequest { user_name, access_key_id, secret_access_key, expires_in };
    UpdateAccessKeyRequest { user_name, access_key_id, status };
    AccessKeyIdRequest { user_name, access_key_id };
    PutUserPolicyRequest { user_name, policy_name, policy_document };
    UserPolicyRequest { user_name, policy_name };
    LookupAuditEventsRequest { start_time, end_time, principal, action, resource, outcome, newest_first, max_results, next_token };
    WatchSecretsRequest { cursor, secret_ids, wait_seconds, max_results };
    CreateKeyRequest { description, alias, policy, tags };
    KeyIdRequest { key_id };
    ListKeysRequest { max_results, next_token };
    PutKeyPolicyRequest { key_id, policy };
    ScheduleKeyDeletionRequest { key_id, pending_window_in_days };
    CreateCertificateAuthorityRequest { name, kind, common_name, key_algorithm, ttl, parent_authority };
    ImportCertificateAuthorityCertificateRequest { name, certificate, certificate_chain };
    CreateCertificateTemplateRequest { name, certificate_authority, ttl, max_ttl, allowed_domains, allow_ip_sans, key_algorithm, key_usages };
    RevokeCertificateRequest { certificate_authority, serial_number };
}

to_wire! {
SecretVersionResponse { arn, name, version_id, version_stages };
    RotationRules { automatically_after_days, duration, schedule_expression };
    RotationFunctionEntry { name, arn, kind, built_in, principal_arn, policy, command, environment_keys, url, password_rules, timeout_seconds, max_attempts, created_date };
    CreateRotationFunctionResponse { function, signing_secret };
    ListRotationFunctionsResponse { rotation_functions };
    NotificationTargetEntry { target_id, url, events, expiring_days, created_date };
    CreateNotificationTargetResponse { target, signing_secret };
    ListNotificationTargetsResponse { notification_targets };
    VersionEntry { version_id, version_stages, last_accessed_date, created_date };
    ListSecretVersionIdsResponse { versions, next_token, arn, name };
    DeleteSecretResponse { arn, name, deletion_date };
    GetRandomPasswordRequest { password_length, exclude_characters, exclude_numbers, exclude_punctuation, exclude_uppercase, exclude_lowercase, include_space, require_each_included_type };
    GetRandomPasswordResponse { random_password };
    Empty {};
    ApiErrorEntry { secret_id, error_code, message };
    ClockResponse { time };
    RotateRootKeyResponse { seal_type, keys_rewrapped, root_key_generation };
    GetResourcePolicyResponse { arn, name, resource_policy };
    ValidationErrorEntry { check_name, error_message };
    ValidateResourcePolicyResponse { policy_validation_passed, validation_errors };
    UserEntry { user_name, user_id, arn, create_date, tags };
    UserResponse { user };
    ListUsersResponse { users };
    AccessKeyEntry { user_name, access_key_id, status, secret_access_key, create_date, expiration };
    CreateAccessKeyResponse { access_key };
    AccessKeyMetadata { user_name, access_key_id, status, create_date, last_used_date, expiration };
    ListAccessKeysResponse { access_key_metadata };
    GetUserPolicyResponse { user_name, policy_name, policy_document };
    ListUserPoliciesResponse { policy_names };
    GetCallerIdentityResponse { user_id, account, arn };
    LookupAuditEventsResponse { events, next_token };
    WatchChange { seq, time, arn, name, change, action, version_id };
    WatchSecretsResponse { changes, cursor, reset };
    RewrapStatus { state, target_version, done, remaining };
    KeyMetadata { key_id, arn, alias, description, creation_date, current_version, key_state, deletion_date, policy, tags, rewrap_status };
    KeyResponse { key_metadata };
    ListKeysResponse { keys, next_token };
    CertificateAuthorityEntry { name, kind, status, common_name, key_algorithm, parent_authority, certificate, certificate_chain, csr, expiration_date, created_date, certificate_path, crl_path };
    CertificateAuthorityResponse { certificate_authority };
    ListCertificateAuthoritiesResponse { certificate_authorities };
    CertificateTemplateEntry { name, certificate_authority, ttl, max_ttl, allowed_domains, allow_ip_sans, key_algorithm, key_usages, created_date };
    CertificateTemplateResponse { certificate_template };
    ListCertificateTemplatesResponse { certificate_templates };
    RevokeCertificateResponse { certificate_authority, serial_number, revocation_date };
}
