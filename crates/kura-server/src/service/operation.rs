//! Every operation kura serves, as one typed enum: what the pipeline authorizes, runs and
//! audits. The list below is the only place an operation is named; the service's dispatch
//! and the AWS door's codec are both generated from it, so a new operation cannot be
//! reachable without an action, a handler and an audit record.

use super::types::*;

/// The named, non-secret fields of a request, for authorization and the audit record. Each
/// request type fills in its own (`operation::Facts`); value fields (`SecretString`,
/// passwords, policy documents) have no place here.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub secret_id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub user_name: Option<&'a str>,
    pub target_id: Option<&'a str>,
    /// A key (`Kura.*Key` operations), as the request named it.
    pub key_id: Option<&'a str>,
    pub version_id: Option<&'a str>,
    pub version_stage: Option<&'a str>,
    pub rotation_lambda_arn: Option<&'a str>,
    pub description: Option<&'a str>,
    pub kms_key_id: Option<&'a str>,
    pub force_delete_without_recovery: Option<bool>,
    pub recovery_window_in_days: Option<i64>,
    pub block_public_policy: Option<bool>,
    pub tags: Option<&'a [kura_core::model::Tag]>,
    pub tag_keys: Option<&'a [String]>,
}

impl<'a> RequestFacts<'a> {
    /// A request that names one secret and nothing else of note.
    pub fn secret(secret_id: &'a str) -> Self {
        RequestFacts {
            secret_id: Some(secret_id),
            ..Default::default()
        }
    }
}

/// Which API an operation belongs to: its IAM action prefix and its `X-Amz-Target` family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// AWS Secrets Manager's own operations: `secretsmanager.<Op>`, actions `secretsmanager:<Op>`.
    SecretsManager,
    /// kura's extensions: `Kura.<Op>`, actions `kura:<Op>`.
    Kura,
    /// STS's query protocol (only GetCallerIdentity): actions `sts:<Op>`.
    Sts,
}

/// Calls `$m!` with the list of operations: `Family Variant(Request) -> Response = handler;`.
/// `Variant` is also the operation's wire name.
macro_rules! with_operations {
    ($m:ident) => {
        $m! {
            SecretsManager CreateSecret(CreateSecretRequest) -> SecretVersionResponse = create_secret;
            SecretsManager GetSecretValue(GetSecretValueRequest) -> GetSecretValueResponse = get_secret_value;
            SecretsManager PutSecretValue(PutSecretValueRequest) -> SecretVersionResponse = put_secret_value;
            SecretsManager UpdateSecret(UpdateSecretRequest) -> SecretVersionResponse = update_secret;
            SecretsManager UpdateSecretVersionStage(UpdateSecretVersionStageRequest) -> SecretVersionResponse = update_secret_version_stage;
            SecretsManager DescribeSecret(SecretIdRequest) -> SecretDescription = describe_secret;
            SecretsManager ListSecrets(ListSecretsRequest) -> SecretListPage = list_secrets;
            SecretsManager ListSecretVersionIds(ListSecretVersionIdsRequest) -> ListSecretVersionIdsResponse = list_secret_version_ids;
            SecretsManager DeleteSecret(DeleteSecretRequest) -> DeleteSecretResponse = delete_secret;
            SecretsManager RestoreSecret(SecretIdRequest) -> SecretVersionResponse = restore_secret;
            SecretsManager GetRandomPassword(GetRandomPasswordRequest) -> GetRandomPasswordResponse = get_random_password;
            SecretsManager TagResource(TagResourceRequest) -> Empty = tag_resource;
            SecretsManager UntagResource(UntagResourceRequest) -> Empty = untag_resource;
            SecretsManager BatchGetSecretValue(BatchGetSecretValueRequest) -> BatchGetSecretValueResponse = batch_get_secret_value;
            SecretsManager PutResourcePolicy(PutResourcePolicyRequest) -> SecretVersionResponse = put_resource_policy;
            SecretsManager GetResourcePolicy(SecretIdRequest) -> GetResourcePolicyResponse = get_resource_policy;
            SecretsManager DeleteResourcePolicy(SecretIdRequest) -> SecretVersionResponse = delete_resource_policy;
            SecretsManager ValidateResourcePolicy(ValidateResourcePolicyRequest) -> ValidateResourcePolicyResponse = validate_resource_policy;
            SecretsManager RotateSecret(RotateSecretRequest) -> SecretVersionResponse = rotate_secret;
            SecretsManager CancelRotateSecret(SecretIdRequest) -> SecretVersionResponse = cancel_rotate_secret;
            SecretsManager ReplicateSecretToRegions(SecretIdRequest) -> Empty = replication_unavailable;
            SecretsManager RemoveRegionsFromReplication(SecretIdRequest) -> Empty = replication_unavailable;
            SecretsManager StopReplicationToReplica(SecretIdRequest) -> Empty = replication_unavailable;
            Kura SetClock(SetClockRequest) -> ClockResponse = set_clock;
            Kura AdvanceClock(AdvanceClockRequest) -> ClockResponse = advance_clock;
            Kura CreateRotationFunction(CreateRotationFunctionRequest) -> CreateRotationFunctionResponse = create_rotation_function;
            Kura ListRotationFunctions(Empty) -> ListRotationFunctionsResponse = list_rotation_functions;
            Kura DeleteRotationFunction(NameRequest) -> Empty = delete_rotation_function;
            Kura CreateNotificationTarget(CreateNotificationTargetRequest) -> CreateNotificationTargetResponse = create_notification_target;
            Kura ListNotificationTargets(Empty) -> ListNotificationTargetsResponse = list_notification_targets;
            Kura DeleteNotificationTarget(TargetIdRequest) -> Empty = delete_notification_target;
            Kura CreateUser(CreateUserRequest) -> UserResponse = create_user;
            Kura DeleteUser(UserNameRequest) -> Empty = delete_user;
            Kura ListUsers(Empty) -> ListUsersResponse = list_users;
            Kura CreateAccessKey(CreateAccessKeyRequest) -> CreateAccessKeyResponse = create_user_access_key;
            Kura UpdateAccessKey(UpdateAccessKeyRequest) -> Empty = update_access_key;
            Kura DeleteAccessKey(AccessKeyIdRequest) -> Empty = delete_user_access_key;
            Kura ListAccessKeys(OptionalUserRequest) -> ListAccessKeysResponse = list_user_access_keys;
            Kura PutUserPolicy(PutUserPolicyRequest) -> Empty = put_user_policy;
            Kura GetUserPolicy(UserPolicyRequest) -> GetUserPolicyResponse = get_user_policy;
            Kura DeleteUserPolicy(UserPolicyRequest) -> Empty = delete_user_policy;
            Kura ListUserPolicies(UserNameRequest) -> ListUserPoliciesResponse = list_user_policies;
            Kura GetCallerIdentity(Empty) -> GetCallerIdentityResponse = get_caller_identity;
            Kura LookupAuditEvents(LookupAuditEventsRequest) -> LookupAuditEventsResponse = lookup_audit_events;
            Kura WatchSecrets(WatchSecretsRequest) -> WatchSecretsResponse = watch_secrets;
            Kura Seal(Empty) -> Empty = seal_node;
            Kura DisableRoot(Empty) -> Empty = disable_root;
            Kura EnableRoot(Empty) -> Empty = enable_root;
            Kura RotateRootKey(Empty) -> RotateRootKeyResponse = rotate_root_key;
            Kura CreateKey(CreateKeyRequest) -> KeyResponse = create_key;
            Kura DescribeKey(KeyIdRequest) -> KeyResponse = describe_key;
            Kura ListKeys(ListKeysRequest) -> ListKeysResponse = list_keys;
            Kura RotateKey(KeyIdRequest) -> KeyResponse = rotate_key;
            Kura PutKeyPolicy(PutKeyPolicyRequest) -> Empty = put_key_policy;
            Kura ScheduleKeyDeletion(ScheduleKeyDeletionRequest) -> KeyResponse = schedule_key_deletion;
            Kura CancelKeyDeletion(KeyIdRequest) -> KeyResponse = cancel_key_deletion;
            Kura CreateCertificateAuthority(CreateCertificateAuthorityRequest) -> CertificateAuthorityResponse = create_certificate_authority;
            Kura DescribeCertificateAuthority(NameRequest) -> CertificateAuthorityResponse = describe_certificate_authority;
            Kura ListCertificateAuthorities(Empty) -> ListCertificateAuthoritiesResponse = list_certificate_authorities;
            Kura DeleteCertificateAuthority(NameRequest) -> Empty = delete_certificate_authority;
            Kura ImportCertificateAuthorityCertificate(ImportCertificateAuthorityCertificateRequest) -> CertificateAuthorityResponse = import_certificate_authority_certificate;
            Kura CreateCertificateTemplate(CreateCertificateTemplateRequest) -> CertificateTemplateResponse = create_certificate_template;
            Kura DescribeCertificateTemplate(NameRequest) -> CertificateTemplateResponse = describe_certificate_template;
            Kura ListCertificateTemplates(Empty) -> ListCertificateTemplatesResponse = list_certificate_templates;
            Kura DeleteCertificateTemplate(NameRequest) -> Empty = delete_certificate_template;
            Kura RevokeCertificate(RevokeCertificateRequest) -> RevokeCertificateResponse = revoke_certificate;
            Kura SetSecretExpiration(SetSecretExpirationRequest) -> SecretVersionResponse = set_secret_expiration;
            Sts StsGetCallerIdentity(Empty) -> GetCallerIdentityResponse = get_caller_identity;
        }
    };
}
pub(crate) use with_operations;

macro_rules! define_operations {
    ($($family:ident $op:ident($req:ty) -> $resp:ty = $handler:ident;)*) => {
        /// One request to kura, decoded by a door.
        #[derive(Debug)]
        pub enum Operation {
            $($op($req),)*
        }

        /// An operation's answer, for a door to encode.
        #[derive(Debug)]
        pub enum Outcome {
            $($op($resp),)*
        }

        impl Operation {
            /// The operation's name as its API spells it.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Operation::$op(_) => wire_name(stringify!($op)),)*
                }
            }

            pub fn family(&self) -> Family {
                match self {
                    $(Operation::$op(_) => Family::$family,)*
                }
            }

            /// The operation's non-secret request fields, for authorization and audit.
            pub fn facts(&self) -> RequestFacts<'_> {
                match self {
                    $(Operation::$op(r) => r.facts(),)*
                }
            }
        }

        impl Outcome {
            /// The secret (or function) the answer names, and the version it wrote or read:
            /// what the audit record keeps of an answer.
            pub fn audit_target(&self) -> (Option<&str>, Option<&str>) {
                match self {
                    $(Outcome::$op(r) => r.audit_target(),)*
                }
            }
        }

        impl super::Service {
            /// Runs an authorized operation.
            pub(crate) async fn run(
                self: &std::sync::Arc<Self>,
                c: &super::Caller,
                op: Operation,
            ) -> kura_core::Result<Outcome> {
                match op {
                    $(Operation::$op(r) => self.$handler(c, r).await.map(Outcome::$op),)*
                }
            }
        }
    };
}
with_operations!(define_operations);

macro_rules! define_action_list {
    ($($family:ident $op:ident($req:ty) -> $resp:ty = $handler:ident;)*) => {
        /// Every action an operation is authorized as (`kura:CreateUser`, …).
        pub fn all_actions() -> Vec<String> {
            vec![$(format!("{}:{}", Family::$family.action_prefix(), wire_name(stringify!($op))),)*]
        }
    };
}
with_operations!(define_action_list);

/// A variant's wire name: the STS door's variant carries a prefix that the wire does not.
const fn wire_name(variant: &'static str) -> &'static str {
    match variant.as_bytes() {
        [b'S', b't', b's', rest @ ..] => match std::str::from_utf8(rest) {
            Ok(s) => s,
            Err(_) => variant,
        },
        _ => variant,
    }
}

impl Family {
    /// The prefix of the operation's IAM action.
    pub fn action_prefix(self) -> &'static str {
        match self {
            Family::SecretsManager => "secretsmanager",
            Family::Kura => "kura",
            Family::Sts => "sts",
        }
    }
}

impl Operation {
    /// The IAM action policies name this operation by, e.g. `secretsmanager:GetSecretValue`.
    pub fn action(&self) -> String {
        format!("{}:{}", self.family().action_prefix(), self.name())
    }
}

/// What the pipeline reads of a request: each request type names its own fields.
pub trait Facts {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts::default()
    }
}

/// What the audit record keeps of an answer.
pub trait AuditTarget {
    fn audit_target(&self) -> (Option<&str>, Option<&str>) {
        (None, None)
    }
}

macro_rules! no_facts {
    ($($t:ty),* $(,)?) => { $(impl Facts for $t {})* };
}
no_facts!(
    Empty,
    ListSecretsRequest,
    GetRandomPasswordRequest,
    BatchGetSecretValueRequest,
    SetClockRequest,
    AdvanceClockRequest,
    LookupAuditEventsRequest,
    WatchSecretsRequest,
    ListKeysRequest,
);

macro_rules! no_target {
    ($($t:ty),* $(,)?) => { $(impl AuditTarget for $t {})* };
}
no_target!(
    Empty,
    RotateRootKeyResponse,
    SecretListPage,
    GetRandomPasswordResponse,
    BatchGetSecretValueResponse,
    ValidateResourcePolicyResponse,
    ClockResponse,
    ListRotationFunctionsResponse,
    CreateNotificationTargetResponse,
    ListNotificationTargetsResponse,
    UserResponse,
    ListUsersResponse,
    CreateAccessKeyResponse,
    ListAccessKeysResponse,
    GetUserPolicyResponse,
    ListUserPoliciesResponse,
    GetCallerIdentityResponse,
    LookupAuditEventsResponse,
    WatchSecretsResponse,
    ListKeysResponse,
    CertificateAuthorityResponse,
    ListCertificateAuthoritiesResponse,
    CertificateTemplateResponse,
    ListCertificateTemplatesResponse,
    RevokeCertificateResponse,
);

impl AuditTarget for KeyResponse {
    fn audit_target(&self) -> (Option<&str>, Option<&str>) {
        (Some(&self.key_metadata.arn), None)
    }
}

impl Facts for CreateKeyRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            tags: self.tags.as_deref(),
            ..Default::default()
        }
    }
}

impl Facts for KeyIdRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            // RotateKey without KeyId rotates the default key.
            key_id: Some(self.key_id.as_deref().unwrap_or(super::DEFAULT_KEY)),
            ..Default::default()
        }
    }
}

impl Facts for ScheduleKeyDeletionRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            key_id: Some(&self.key_id),
            ..Default::default()
        }
    }
}

impl Facts for PutKeyPolicyRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            key_id: Some(&self.key_id),
            ..Default::default()
        }
    }
}

impl AuditTarget for SecretVersionResponse {
    fn audit_target(&self) -> (Option<&str>, Option<&str>) {
        (Some(&self.arn), self.version_id.as_deref())
    }
}

impl AuditTarget for super::types::GetSecretValueResponse {
    fn audit_target(&self) -> (Option<&str>, Option<&str>) {
        (Some(&self.arn), Some(&self.version_id))
    }
}

macro_rules! arn_target {
    ($($t:ty),* $(,)?) => {
        $(impl AuditTarget for $t {
            fn audit_target(&self) -> (Option<&str>, Option<&str>) {
                (Some(&self.arn), None)
            }
        })*
    };
}
impl AuditTarget for SecretDescription {
    fn audit_target(&self) -> (Option<&str>, Option<&str>) {
        (Some(&self.secret.arn), None)
    }
}

arn_target!(
    ListSecretVersionIdsResponse,
    DeleteSecretResponse,
    GetResourcePolicyResponse,
);

impl AuditTarget for CreateRotationFunctionResponse {
    fn audit_target(&self) -> (Option<&str>, Option<&str>) {
        (Some(&self.function.arn), None)
    }
}

impl Facts for SecretIdRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts::secret(&self.secret_id)
    }
}

impl Facts for SetSecretExpirationRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts::secret(&self.secret_id)
    }
}

impl Facts for CreateSecretRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            name: Some(&self.name),
            description: self.description.as_deref(),
            kms_key_id: self.kms_key_id.as_deref(),
            tags: self.tags.as_deref(),
            ..Default::default()
        }
    }
}

impl Facts for GetSecretValueRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            version_id: self.version_id.as_deref(),
            version_stage: self.version_stage.as_deref(),
            ..RequestFacts::secret(&self.secret_id)
        }
    }
}

impl Facts for PutSecretValueRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts::secret(&self.secret_id)
    }
}

impl Facts for UpdateSecretRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            description: self.description.as_deref(),
            kms_key_id: self.kms_key_id.as_deref(),
            ..RequestFacts::secret(&self.secret_id)
        }
    }
}

impl Facts for UpdateSecretVersionStageRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            version_stage: Some(&self.version_stage),
            ..RequestFacts::secret(&self.secret_id)
        }
    }
}

impl Facts for ListSecretVersionIdsRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts::secret(&self.secret_id)
    }
}

impl Facts for DeleteSecretRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            force_delete_without_recovery: self.force_delete_without_recovery,
            recovery_window_in_days: self.recovery_window_in_days,
            ..RequestFacts::secret(&self.secret_id)
        }
    }
}

impl Facts for TagResourceRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            tags: Some(&self.tags),
            ..RequestFacts::secret(&self.secret_id)
        }
    }
}

impl Facts for UntagResourceRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            tag_keys: Some(&self.tag_keys),
            ..RequestFacts::secret(&self.secret_id)
        }
    }
}

impl Facts for PutResourcePolicyRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            block_public_policy: self.block_public_policy,
            ..RequestFacts::secret(&self.secret_id)
        }
    }
}

impl Facts for ValidateResourcePolicyRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            secret_id: self.secret_id.as_deref(),
            ..Default::default()
        }
    }
}

impl Facts for RotateSecretRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            rotation_lambda_arn: self.rotation_lambda_arn.as_deref(),
            ..RequestFacts::secret(&self.secret_id)
        }
    }
}

impl Facts for CreateRotationFunctionRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            name: Some(&self.name),
            ..Default::default()
        }
    }
}

impl Facts for NameRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            name: Some(&self.name),
            ..Default::default()
        }
    }
}

impl Facts for CreateNotificationTargetRequest {}

impl Facts for TargetIdRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            target_id: Some(&self.target_id),
            ..Default::default()
        }
    }
}

macro_rules! user_facts {
    ($($t:ty: $field:ident),* $(,)?) => {
        $(impl Facts for $t {
            fn facts(&self) -> RequestFacts<'_> {
                RequestFacts {
                    user_name: user_field(&self.$field),
                    ..Default::default()
                }
            }
        })*
    };
}

/// A user name field, required or optional.
fn user_field<U: AsUser + ?Sized>(u: &U) -> Option<&str> {
    u.as_user()
}

trait AsUser {
    fn as_user(&self) -> Option<&str>;
}
impl AsUser for String {
    fn as_user(&self) -> Option<&str> {
        Some(self)
    }
}
impl AsUser for Option<String> {
    fn as_user(&self) -> Option<&str> {
        self.as_deref()
    }
}

impl Facts for CreateUserRequest {
    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            user_name: Some(&self.user_name),
            tags: self.tags.as_deref(),
            ..Default::default()
        }
    }
}

user_facts!(
    UserNameRequest: user_name,
    OptionalUserRequest: user_name,
    CreateAccessKeyRequest: user_name,
    UpdateAccessKeyRequest: user_name,
    AccessKeyIdRequest: user_name,
    PutUserPolicyRequest: user_name,
    UserPolicyRequest: user_name,
);

macro_rules! name_facts {
    ($($t:ty: $field:ident),* $(,)?) => {
        $(impl Facts for $t {
            fn facts(&self) -> RequestFacts<'_> {
                RequestFacts {
                    name: Some(&self.$field),
                    ..Default::default()
                }
            }
        })*
    };
}

name_facts!(
    CreateCertificateAuthorityRequest: name,
    ImportCertificateAuthorityCertificateRequest: name,
    CreateCertificateTemplateRequest: name,
    RevokeCertificateRequest: certificate_authority,
);
