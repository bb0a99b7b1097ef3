//! Authorization of every request with AWS's policy language: the caller's identity policies
//! and the secret's resource policy, evaluated by `kura_iam::eval`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use kura_core::model::SecretRecord;
use kura_core::{Error, ErrorCode, Result};
use kura_iam::eval::{self, ConditionKeys, RequestContext};
use kura_iam::policy::{self, PolicyDocument, PolicyKind};

use super::operation::{Family, Operation, RequestFacts};
use super::{Caller, Principal, Service};

/// How long a user's tags and parsed policies are reused. IAM itself takes seconds to
/// apply a policy change everywhere; on this server a change applies at once (the cache
/// entry is dropped), on other servers sharing the database within this time.
const SUBJECT_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// A user as authorization needs it: tags and parsed identity policies.
pub(crate) struct Subject {
    tags: Vec<kura_core::model::Tag>,
    pub(crate) policies: Vec<Arc<PolicyDocument>>,
}

/// Per-user cache of [`Subject`]s, so a request does not load and parse policies again.
#[derive(Default)]
pub(crate) struct SubjectCache {
    map: std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, std::sync::Arc<Subject>)>,
    >,
}

/// Parsed policies by their text, so a request does not parse the policy it is judged by
/// again (a secret's resource policy, a rotation credential's). Keyed by content, so nothing
/// is ever stale; bounded by count.
#[derive(Default)]
pub(crate) struct CompiledPolicies {
    resource: std::sync::Mutex<HashMap<String, Arc<PolicyDocument>>>,
    identity: std::sync::Mutex<HashMap<String, Arc<PolicyDocument>>>,
}

const MAX_COMPILED: usize = 10_000;

impl CompiledPolicies {
    /// `text` parsed as a policy of `kind`; a text that does not parse is not kept.
    pub(crate) fn get(
        &self,
        text: &str,
        kind: PolicyKind,
    ) -> std::result::Result<Arc<PolicyDocument>, String> {
        let map = match kind {
            PolicyKind::Resource => &self.resource,
            PolicyKind::Identity => &self.identity,
        };
        if let Some(d) = map.lock().ok().and_then(|m| m.get(text).cloned()) {
            return Ok(d);
        }
        let d = Arc::new(policy::parse(text, kind).map_err(|e| e.to_string())?);
        if let Ok(mut m) = map.lock() {
            if m.len() >= MAX_COMPILED {
                m.clear();
            }
            m.insert(text.to_string(), d.clone());
        }
        Ok(d)
    }
}

impl SubjectCache {
    /// Drops what is known of `user` (after a change to the user or its policies).
    pub(crate) fn forget(&self, user: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(user);
        }
    }

    fn forget_everyone(&self) {
        if let Ok(mut m) = self.map.lock() {
            m.clear();
        }
    }
}

impl Service {
    /// On a shared database, drops a user's cached policies as soon as any node changes
    /// them, so a change applies on every node at once rather than after the cache's TTL.
    pub fn follow_identity_changes(self: &std::sync::Arc<Self>) {
        let Some(mut rx) = self.store.changes() else {
            return;
        };
        let svc = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let change = rx.recv().await;
                let Some(svc) = svc.upgrade() else { return };
                match change {
                    Ok(kura_store::Change::User(name)) => svc.subjects.forget(&name),
                    // Keys are followed by `follow_key_changes`.
                    Ok(kura_store::Change::Keys) => {}
                    Ok(kura_store::Change::Everything)
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        svc.subjects.forget_everyone()
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}

/// What the HTTP layer knows about the caller beyond the principal.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub source_ip: Option<IpAddr>,
    /// The request came over TLS (kura's own listener; a proxy's TLS in front is not seen).
    pub secure_transport: bool,
    pub user_agent: Option<String>,
}

impl RequestFacts<'_> {
    /// Request parameters that AWS documents as `secretsmanager:*` condition keys.
    fn condition_keys(&self, keys: &mut ConditionKeys) {
        let text = [
            ("secretsmanager:VersionStage", self.version_stage),
            ("secretsmanager:VersionId", self.version_id),
            ("secretsmanager:Description", self.description),
            ("secretsmanager:KmsKeyId", self.kms_key_id),
        ];
        for (key, v) in text {
            if let Some(v) = v {
                keys.set(key, [v]);
            }
        }
        if let Some(b) = self.force_delete_without_recovery {
            keys.set("secretsmanager:ForceDeleteWithoutRecovery", [b.to_string()]);
        }
        if let Some(n) = self.recovery_window_in_days {
            keys.set("secretsmanager:RecoveryWindowInDays", [n.to_string()]);
        }
        if let Some(b) = self.block_public_policy {
            keys.set("secretsmanager:BlockPublicPolicy", [b.to_string()]);
        }
        if let Some(tags) = self.tags {
            for t in tags {
                keys.set(&format!("aws:RequestTag/{}", t.key), [t.value.as_str()]);
            }
            keys.set("aws:TagKeys", tags.iter().map(|t| t.key.as_str()));
        }
        if let Some(k) = self.tag_keys {
            keys.set("aws:TagKeys", k.iter().map(String::as_str));
        }
    }
}

fn denied(message: String) -> Error {
    Error::new(ErrorCode::AccessDenied, message)
}

impl Service {
    /// Decides whether the caller may run `op`. Root and kura itself may do everything (as
    /// AWS's root user); a rotation credential reaches its one secret only. The secret the
    /// operation names is resolved here once and kept in the caller for the operation.
    pub(crate) async fn authorize(&self, c: &Caller, op: &Operation) -> Result<()> {
        let family = op.family();
        let facts = op.facts();
        // A kura operation on one secret (Kura.SetSecretExpiration) is judged on it too.
        let secret_id = facts.secret_id;
        let found = match secret_id {
            Some(id) => self.lookup(id).await.ok(),
            None => None,
        };
        if let (Some(id), Some(s)) = (secret_id, &found) {
            c.remember(id, s.clone());
        }
        // As sts:GetCallerIdentity on AWS, asking who you are needs no permission.
        let who_am_i = matches!(
            op,
            Operation::GetCallerIdentity(_) | Operation::StsGetCallerIdentity(_)
        );
        if c.is_administrator() || who_am_i {
            return Ok(());
        }
        let action = op.action();
        let mut keys = ConditionKeys::new();
        facts.condition_keys(&mut keys);
        // A function named by its bare name is judged by its full ARN, as policies name it.
        if let Some(f) = facts.rotation_lambda_arn
            && let Ok(name) = self.function_name_of(f)
        {
            keys.set(
                "secretsmanager:RotationLambdaARN",
                [self.function_arn(&name)],
            );
        }
        let (resource, shown) = match (secret_id, &found) {
            // A refusal names the secret as the caller did, never the ARN it resolved to: the
            // suffix of an existing secret's ARN would tell a caller allowed nothing that it
            // exists.
            (Some(id), Some(s)) => (s.arn.clone(), Some(id.chars().take(2048).collect())),
            // A secret that does not exist is judged by the name asked for; if that is
            // allowed the operation then answers ResourceNotFoundException.
            (Some(id), None) => (
                self.requested_arn(id),
                Some(id.chars().take(2048).collect::<String>()),
            ),
            (None, _) => match (op, facts.name, facts.user_name) {
                (Operation::CreateSecret(_), Some(name), _) => {
                    keys.set("secretsmanager:Name", [name]);
                    (self.requested_arn(name), None)
                }
                (_, _, Some(user)) if family == Family::Kura => (self.user_arn(user), None),
                _ if family == Family::Kura && facts.key_id.is_some() => {
                    (self.key_resource(facts.key_id.unwrap_or_default()), None)
                }
                _ => ("*".to_string(), None),
            },
        };
        let shown = shown.as_deref().unwrap_or(&resource);
        self.decide(c, &action, &resource, shown, found.as_ref(), keys)
            .await
    }

    /// Whether `p` may take `action` on `secret` (BatchGetSecretValue checks each secret so).
    pub(crate) async fn authorize_on_secret(
        &self,
        p: &Caller,
        action: &str,
        secret: &SecretRecord,
    ) -> Result<()> {
        if p.is_administrator() {
            return Ok(());
        }
        self.decide(
            p,
            action,
            &secret.arn,
            &secret.arn,
            Some(secret),
            ConditionKeys::new(),
        )
        .await
    }

    /// Whether `p` may take `action` on the secret `arn`, which no longer exists (only
    /// identity policies apply).
    pub(crate) async fn authorize_on_arn(&self, p: &Caller, action: &str, arn: &str) -> Result<()> {
        if p.is_administrator() {
            return Ok(());
        }
        self.decide(p, action, arn, arn, None, ConditionKeys::new())
            .await
    }

    /// Whether `p` may take `action` on no particular secret (resource `*`), as the
    /// ListSecrets permission BatchGetSecretValue's Filters need.
    pub(crate) async fn authorize_unscoped(&self, p: &Caller, action: &str) -> Result<()> {
        if p.is_administrator() {
            return Ok(());
        }
        self.decide(p, action, "*", "*", None, ConditionKeys::new())
            .await
    }

    /// The ARN a request names for a secret that may not exist (no random suffix).
    fn requested_arn(&self, id: &str) -> String {
        if id.starts_with("arn:") {
            id.to_string()
        } else {
            format!(
                "arn:aws:secretsmanager:{}:{}:secret:{id}",
                self.region, self.account
            )
        }
    }

    async fn decide(
        &self,
        p: &Caller,
        action: &str,
        resource: &str,
        shown: &str,
        secret: Option<&SecretRecord>,
        mut keys: ConditionKeys,
    ) -> Result<()> {
        let meta = &p.request.meta;
        let subject = self.subject_of(p).await?;
        keys.set("aws:username", [p.user_name.as_str()]);
        keys.set("aws:userid", [p.user_id.as_str()]);
        keys.set("aws:PrincipalArn", [p.arn.as_str()]);
        keys.set("aws:PrincipalAccount", [self.account.as_str()]);
        keys.set("aws:PrincipalType", ["User"]);
        keys.set(
            "aws:SecureTransport",
            [if meta.secure_transport {
                "true"
            } else {
                "false"
            }],
        );
        keys.set_request_time(
            chrono::DateTime::from_timestamp_millis(self.clock.now().0).unwrap_or_default(),
        );
        if let Some(ip) = meta.source_ip {
            keys.set("aws:SourceIp", [ip.to_string()]);
        }
        if let Some(ua) = &meta.user_agent {
            keys.set("aws:UserAgent", [ua.as_str()]);
        }
        for t in &subject.tags {
            keys.set(&format!("aws:PrincipalTag/{}", t.key), [t.value.as_str()]);
        }
        if let Some(s) = secret {
            keys.set("secretsmanager:SecretId", [s.arn.as_str()]);
            for t in &s.tags {
                keys.set(
                    &format!("secretsmanager:ResourceTag/{}", t.key),
                    [t.value.as_str()],
                );
                keys.set(&format!("aws:ResourceTag/{}", t.key), [t.value.as_str()]);
            }
        }
        let resource_policy = secret
            .and_then(|s| s.resource_policy.as_deref())
            .and_then(|text| match self.compiled.get(text, PolicyKind::Resource) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::error!(secret = %resource, error = %e, "a stored resource policy no longer parses; ignoring it");
                    None
                }
            });
        let ctx = RequestContext {
            principal_arn: &p.arn,
            account: &self.account,
            action,
            resource,
            keys: &keys,
        };
        let refs: Vec<&PolicyDocument> = subject.policies.iter().map(Arc::as_ref).collect();
        let decision = eval::evaluate(&ctx, &refs, resource_policy.as_deref());
        let shown = RequestContext {
            resource: shown,
            ..ctx
        };
        match decision.denial_message(&shown) {
            None => Ok(()),
            Some(message) => {
                tracing::info!(principal = %p.arn, action, resource, decision = %decision, "access denied");
                Err(denied(message))
            }
        }
    }

    async fn subject(&self, user: &str) -> Result<std::sync::Arc<Subject>> {
        let fresh = self.subjects.map.lock().ok().and_then(|m| {
            m.get(user)
                .filter(|(at, _)| at.elapsed() < SUBJECT_TTL)
                .map(|(_, s)| s.clone())
        });
        if let Some(s) = fresh {
            return Ok(s);
        }
        let tags = self
            .store
            .get_user(user)
            .await?
            .map(|u| u.tags)
            .unwrap_or_default();
        let policies = self
            .store
            .user_policies(user)
            .await?
            .iter()
            .filter_map(|(name, text)| match self.compiled.get(text, PolicyKind::Identity) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::error!(user, policy = %name, error = %e, "a stored policy no longer parses; ignoring it");
                    None
                }
            })
            .collect();
        let subject = std::sync::Arc::new(Subject { tags, policies });
        if let Ok(mut m) = self.subjects.map.lock() {
            if m.len() >= 10_000 {
                m.clear();
            }
            m.insert(
                user.to_string(),
                (std::time::Instant::now(), subject.clone()),
            );
        }
        Ok(subject)
    }

    /// The caller's identity policies (cached), for decisions made outside `authorize`.
    pub(crate) async fn identity_policies(&self, p: &Principal) -> Result<std::sync::Arc<Subject>> {
        self.subject_of(p).await
    }

    /// Whose policies decide: a user's own, or — for a rotation function's short-lived key —
    /// a policy allowing what AWS's rotation templates call, on the one secret being rotated,
    /// plus the function's own execution policy.
    async fn subject_of(&self, p: &Principal) -> Result<std::sync::Arc<Subject>> {
        let Some(scope) = p.scope_secret_id else {
            return self.subject(&p.user_name).await;
        };
        let arn = match self.store.secret_by_id(scope).await? {
            Some(s) => s.arn,
            None => "arn:aws:secretsmanager:::secret:deleted".to_string(),
        };
        let text = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "secretsmanager:DescribeSecret",
                        "secretsmanager:GetSecretValue",
                        "secretsmanager:PutSecretValue",
                        "secretsmanager:UpdateSecretVersionStage",
                        "secretsmanager:ListSecretVersionIds"
                    ],
                    "Resource": arn
                },
                {"Effect": "Allow", "Action": "secretsmanager:GetRandomPassword", "Resource": "*"}
            ]
        })
        .to_string();
        let policy = self
            .compiled
            .get(&text, PolicyKind::Identity)
            .map_err(|e| Error::internal(format!("the rotation credential policy: {e}")))?;
        let mut policies = vec![policy];
        // The function's execution policy adds to that (an explicit Deny in it wins, as in IAM).
        if let Some(function) = p
            .user_name
            .strip_prefix(super::rotation::functions::PRINCIPAL_PREFIX)
            && let Some(text) = self.function_policy(function).await?
        {
            match self.compiled.get(&text, PolicyKind::Identity) {
                Ok(d) => policies.push(d),
                Err(e) => {
                    tracing::error!(function, error = %e, "a rotation function's stored policy no longer parses; ignoring it");
                }
            }
        }
        Ok(std::sync::Arc::new(Subject {
            tags: Vec::new(),
            policies,
        }))
    }
}
