//! Authorization of every request with AWS's policy language: the caller's identity policies
//! and the secret's resource policy, evaluated by `kura_iam::eval`.

use std::net::IpAddr;

use kura_core::model::SecretRecord;
use kura_core::names::SecretRef;
use kura_core::{Error, ErrorCode, Result};
use kura_iam::eval::{self, ConditionKeys, RequestContext};
use kura_iam::policy::{self, PolicyDocument, PolicyKind};
use serde_json::Value;

use super::{Principal, Service};

/// How long a user's tags and parsed policies are reused. IAM itself takes seconds to
/// apply a policy change everywhere; on this server a change applies at once (the cache
/// entry is dropped), on other servers sharing the database within this time.
const SUBJECT_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// A user as authorization needs it: tags and parsed identity policies.
pub(crate) struct Subject {
    tags: Vec<kura_core::model::Tag>,
    policies: Vec<PolicyDocument>,
}

/// Per-user cache of [`Subject`]s, so a request does not load and parse policies again.
#[derive(Default)]
pub(crate) struct SubjectCache {
    map: std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, std::sync::Arc<Subject>)>,
    >,
}

impl SubjectCache {
    /// Drops what is known of `user` (after a change to the user or its policies).
    pub(crate) fn forget(&self, user: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(user);
        }
    }
}

/// What the HTTP layer knows about the caller beyond the principal.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub source_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// Request parameters that become `secretsmanager:*` condition keys, as AWS documents them.
const PARAM_KEYS: [(&str, &str); 8] = [
    ("VersionStage", "secretsmanager:VersionStage"),
    ("VersionId", "secretsmanager:VersionId"),
    ("RotationLambdaARN", "secretsmanager:RotationLambdaARN"),
    ("Description", "secretsmanager:Description"),
    ("KmsKeyId", "secretsmanager:KmsKeyId"),
    (
        "ForceDeleteWithoutRecovery",
        "secretsmanager:ForceDeleteWithoutRecovery",
    ),
    (
        "RecoveryWindowInDays",
        "secretsmanager:RecoveryWindowInDays",
    ),
    ("BlockPublicPolicy", "secretsmanager:BlockPublicPolicy"),
];

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn denied(message: String) -> Error {
    Error::new(ErrorCode::AccessDenied, message)
}

impl Service {
    /// Decides whether `p` may call `family.op` with `body`. Root and kura itself may do
    /// everything (as AWS's root user); a rotation credential reaches its one secret only.
    pub async fn authorize(
        &self,
        p: &Principal,
        family: &str,
        op: &str,
        body: &[u8],
    ) -> Result<()> {
        // As sts:GetCallerIdentity on AWS, asking who you are needs no permission.
        if p.is_administrator() || (family == "Kura" && op == "GetCallerIdentity") {
            return Ok(());
        }
        let params: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if let Some(scope) = p.scope_secret_id {
            return self.check_scope(p, scope, family, op, &params).await;
        }
        let action = if family == "Kura" {
            format!("kura:{op}")
        } else {
            format!("secretsmanager:{op}")
        };
        let mut keys = ConditionKeys::new();
        for (param, key) in PARAM_KEYS {
            if let Some(v) = params.get(param).and_then(scalar) {
                keys.set(key, [v]);
            }
        }
        // A function named by its bare name is judged by its full ARN, as policies name it.
        if let Some(f) = params.get("RotationLambdaARN").and_then(Value::as_str)
            && let Ok(name) = self.function_name_of(f)
        {
            keys.set(
                "secretsmanager:RotationLambdaARN",
                [self.function_arn(&name)],
            );
        }
        let (resource, secret) = match params.get("SecretId").and_then(Value::as_str) {
            Some(id) if family != "Kura" => match self.resolve(id).await {
                Ok(s) => {
                    super::remember_resolved(id, &s);
                    (s.arn.clone(), Some(s))
                }
                // A secret that does not exist is judged by the name asked for; if that is
                // allowed the operation then answers ResourceNotFoundException.
                Err(_) => (self.requested_arn(id), None),
            },
            _ => match (family, params.get("Name").and_then(Value::as_str)) {
                ("secretsmanager", Some(name)) if op == "CreateSecret" => {
                    keys.set("secretsmanager:Name", [name]);
                    (self.requested_arn(name), None)
                }
                ("Kura", _) => match params.get("UserName").and_then(Value::as_str) {
                    Some(user) => (self.user_arn(user), None),
                    None => ("*".to_string(), None),
                },
                _ => ("*".to_string(), None),
            },
        };
        if let Some(tags) = params.get("Tags").and_then(Value::as_array) {
            let mut names = Vec::new();
            for t in tags {
                if let (Some(k), Some(v)) = (t["Key"].as_str(), t["Value"].as_str()) {
                    keys.set(&format!("aws:RequestTag/{k}"), [v]);
                    names.push(k.to_string());
                }
            }
            keys.set("aws:TagKeys", names);
        }
        if let Some(tag_keys) = params.get("TagKeys").and_then(Value::as_array) {
            keys.set("aws:TagKeys", tag_keys.iter().filter_map(scalar));
        }
        self.decide(p, &action, &resource, secret.as_ref(), keys)
            .await
    }

    /// Whether `p` may take `action` on `secret` (BatchGetSecretValue checks each secret so).
    pub(crate) async fn authorize_on_secret(
        &self,
        p: &Principal,
        action: &str,
        secret: &SecretRecord,
    ) -> Result<()> {
        if p.is_administrator() {
            return Ok(());
        }
        if let Some(scope) = p.scope_secret_id {
            return if scope == secret.id {
                Ok(())
            } else {
                Err(denied(format!(
                    "{} is a rotation credential: it may only reach the secret being rotated.",
                    p.arn
                )))
            };
        }
        self.decide(p, action, &secret.arn, Some(secret), ConditionKeys::new())
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
        p: &Principal,
        action: &str,
        resource: &str,
        secret: Option<&SecretRecord>,
        mut keys: ConditionKeys,
    ) -> Result<()> {
        let meta = &p.meta;
        let subject = self.subject(&p.user_name).await?;
        keys.set("aws:username", [p.user_name.as_str()]);
        keys.set("aws:userid", [p.user_name.as_str()]);
        keys.set("aws:PrincipalArn", [p.arn.as_str()]);
        keys.set("aws:PrincipalAccount", [self.account.as_str()]);
        keys.set("aws:PrincipalType", ["User"]);
        // kura serves plain HTTP; TLS, where there is any, ends in front of it.
        keys.set("aws:SecureTransport", ["false"]);
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
            .and_then(|text| policy::parse(text, PolicyKind::Resource).ok());
        let ctx = RequestContext {
            principal_arn: &p.arn,
            account: &self.account,
            action,
            resource,
            keys: &keys,
        };
        let refs: Vec<&PolicyDocument> = subject.policies.iter().collect();
        let decision = eval::evaluate(&ctx, &refs, resource_policy.as_ref());
        match decision.denial_message(&ctx) {
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
            .filter_map(|(name, text)| match policy::parse(text, PolicyKind::Identity) {
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

    /// What a rotation function's short-lived key may do: the operations AWS's rotation
    /// templates use, on the one secret being rotated.
    async fn check_scope(
        &self,
        p: &Principal,
        scope: i64,
        family: &str,
        op: &str,
        params: &Value,
    ) -> Result<()> {
        let refuse = |what: String| {
            Err(denied(format!(
                "{} is a rotation credential: {what}",
                p.arn
            )))
        };
        if family != "secretsmanager" {
            return refuse(format!("it may not call {family}.{op}."));
        }
        match op {
            "GetRandomPassword" => return Ok(()),
            "DescribeSecret"
            | "GetSecretValue"
            | "PutSecretValue"
            | "UpdateSecretVersionStage"
            | "ListSecretVersionIds" => {}
            _ => return refuse(format!("it may not call {op}.")),
        }
        let target = params
            .get("SecretId")
            .and_then(Value::as_str)
            .and_then(|id| SecretRef::parse(id).ok());
        let found = match target {
            Some(r) => self.store.find_secret(&r).await?,
            None => None,
        };
        match found {
            Some(s) if s.id == scope => Ok(()),
            _ => refuse("it may only reach the secret being rotated.".into()),
        }
    }
}
