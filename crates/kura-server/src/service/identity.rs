//! Users, their access keys and inline policies (kura's extension of the AWS API, shaped like
//! IAM's), and GetCallerIdentity.

use kura_core::model::Tag;
use kura_core::names::validate_tag;
use kura_core::{Error, ErrorCode, Result, Timestamp};
use kura_iam::policy::{self, PolicyKind};
use kura_store::{AccessKeyRecord, UserRecord};

use super::access_keys::NewAccessKey;
use super::{Caller, Service};
use crate::service::types::*;

/// Users kura makes for itself; nobody else may take these names or delete them.
const RESERVED_USERS: [&str; 3] = ["root", "kura", "kura-rotation"];

/// IAM's name rule: 1-64 (users) or 1-128 (policies) of letters, digits and `+=,.@_-`.
fn validate_iam_name(field: &str, name: &str, max: usize) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "{field} {name:?} must be 1 to {max} characters of letters, digits and +=,.@_-"
        )))
    }
}

/// An identity policy sent as a JSON object or as that object in a string (IAM takes the
/// string), checked by the policy parser; its text.
pub(crate) fn identity_policy_text(field: &str, v: serde_json::Value) -> Result<String> {
    let document = match v {
        serde_json::Value::String(text) => text,
        v @ serde_json::Value::Object(_) => v.to_string(),
        _ => {
            return Err(Error::new(
                ErrorCode::MalformedPolicyDocument,
                format!("{field} must be a policy: a JSON object, or that object as a string."),
            ));
        }
    };
    policy::parse(&document, PolicyKind::Identity)
        .map_err(|e| Error::new(ErrorCode::MalformedPolicyDocument, format!("{field}: {e}")))?;
    Ok(document)
}

fn user_entry(u: &UserRecord) -> UserEntry {
    UserEntry {
        user_name: u.name.clone(),
        user_id: u.user_id.clone(),
        arn: u.arn.clone(),
        create_date: u.created_at,
        tags: (!u.tags.is_empty()).then(|| {
            u.tags
                .iter()
                .map(|t| Tag {
                    key: t.key.clone(),
                    value: t.value.clone(),
                })
                .collect()
        }),
    }
}

fn status_str(active: bool) -> &'static str {
    if active { "Active" } else { "Inactive" }
}

fn no_such_user(name: &str) -> Error {
    Error::new(
        ErrorCode::ResourceNotFound,
        format!("The user {name} does not exist."),
    )
}

impl Service {
    pub(crate) fn user_arn(&self, name: &str) -> String {
        if name == "root" {
            format!("arn:aws:iam::{}:root", self.account)
        } else {
            format!("arn:aws:iam::{}:user/{name}", self.account)
        }
    }

    /// The user a request names, or the caller when it names none (IAM's convention).
    async fn target_user(&self, p: &Caller, name: Option<String>) -> Result<UserRecord> {
        let name = name.unwrap_or_else(|| p.user_name.clone());
        validate_iam_name("UserName", &name, 64)?;
        self.store
            .get_user(&name)
            .await?
            .ok_or_else(|| no_such_user(&name))
    }

    /// A key of `user`, or ResourceNotFound (also when it belongs to someone else).
    async fn key_of(&self, user: &UserRecord, access_key_id: &str) -> Result<AccessKeyRecord> {
        self.store
            .find_access_key(access_key_id)
            .await?
            .filter(|k| k.user_name == user.name && k.scope_secret_id.is_none())
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::ResourceNotFound,
                    format!("The user {} has no access key {access_key_id}.", user.name),
                )
            })
    }

    pub async fn create_user(&self, p: &Caller, req: CreateUserRequest) -> Result<UserResponse> {
        validate_iam_name("UserName", &req.user_name, 64)?;
        if RESERVED_USERS.contains(&req.user_name.as_str()) {
            return Err(Error::invalid_parameter(format!(
                "The user name {} is reserved by kura.",
                req.user_name
            )));
        }
        let mut tags: Vec<Tag> = Vec::new();
        for t in req.tags.unwrap_or_default() {
            validate_tag(&t.key, &t.value)?;
            if tags.iter().any(|x| x.key == t.key) {
                return Err(Error::invalid_parameter(format!(
                    "The tag key {:?} appears twice.",
                    t.key
                )));
            }
            tags.push(Tag {
                key: t.key,
                value: t.value,
            });
        }
        let user = UserRecord {
            arn: self.user_arn(&req.user_name),
            user_id: super::new_user_id()?,
            name: req.user_name,
            created_at: self.clock.now(),
            tags,
        };
        self.store.create_user(&user, &p.audit).await?;
        self.subjects.forget(&user.name);
        tracing::info!(user = %user.name, by = %p.arn, "user created");
        Ok(UserResponse {
            user: user_entry(&user),
        })
    }

    pub async fn delete_user(&self, p: &Caller, req: UserNameRequest) -> Result<Empty> {
        validate_iam_name("UserName", &req.user_name, 64)?;
        if RESERVED_USERS.contains(&req.user_name.as_str()) {
            return Err(Error::invalid_request(format!(
                "The user {} belongs to kura itself and can't be deleted.",
                req.user_name
            )));
        }
        if !self.store.delete_user(&req.user_name, &p.audit).await? {
            return Err(no_such_user(&req.user_name));
        }
        self.subjects.forget(&req.user_name);
        tracing::info!(user = %req.user_name, by = %p.arn, "user deleted with its keys and policies");
        Ok(Empty {})
    }

    pub async fn list_users(&self, _p: &Caller, _req: Empty) -> Result<ListUsersResponse> {
        Ok(ListUsersResponse {
            users: self
                .store
                .list_users()
                .await?
                .iter()
                // kura's own principals for rotation functions (and the shared one of old).
                .filter(|u| !u.name.starts_with("kura-rotation"))
                .map(user_entry)
                .collect(),
        })
    }

    pub async fn create_user_access_key(
        &self,
        p: &Caller,
        req: CreateAccessKeyRequest,
    ) -> Result<CreateAccessKeyResponse> {
        let user = self.target_user(p, req.user_name).await?;
        let imported = match (req.access_key_id, req.secret_access_key) {
            (None, None) => None,
            (Some(id), Some(secret)) => {
                let id_ok =
                    (16..=128).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric());
                if !id_ok {
                    return Err(Error::validation(
                        "AccessKeyId must be 16 to 128 letters and digits.",
                    ));
                }
                let secret_ok = (16..=128).contains(&secret.0.len())
                    && secret.0.chars().all(|c| c.is_ascii_graphic());
                if !secret_ok {
                    return Err(Error::validation(
                        "SecretAccessKey must be 16 to 128 printable characters without spaces.",
                    ));
                }
                Some((id, secret.0))
            }
            _ => {
                return Err(Error::invalid_parameter(
                    "To import a key send both AccessKeyId and SecretAccessKey; send neither to have kura generate one.",
                ));
            }
        };
        let now = self.clock.now();
        let expiration = match &req.expires_in {
            Some(d) => Some(Timestamp(
                now.0 + kura_core::duration::parse_duration("ExpiresIn", d)? * 1000,
            )),
            None => None,
        };
        let mut new = NewAccessKey::long_term(&user.name, imported);
        new.expires_at = expiration;
        let (id, secret) = self.create_access_key(new, &p.audit).await?;
        tracing::info!(user = %user.name, access_key_id = %id, expires = ?expiration, by = %p.arn, "access key created");
        Ok(CreateAccessKeyResponse {
            access_key: AccessKeyEntry {
                user_name: user.name,
                access_key_id: id,
                status: "Active".into(),
                secret_access_key: SecretText(secret),
                create_date: now,
                expiration,
            },
        })
    }

    pub async fn update_access_key(
        &self,
        p: &Caller,
        req: UpdateAccessKeyRequest,
    ) -> Result<Empty> {
        let active = match req.status.as_str() {
            "Active" => true,
            "Inactive" => false,
            other => {
                return Err(Error::validation(format!(
                    "Status {other:?} is not Active or Inactive."
                )));
            }
        };
        let user = self.target_user(p, req.user_name).await?;
        self.key_of(&user, &req.access_key_id).await?;
        self.store
            .set_access_key_status(&req.access_key_id, active, &p.audit)
            .await?;
        tracing::info!(user = %user.name, access_key_id = %req.access_key_id, status = status_str(active), by = %p.arn, "access key updated");
        Ok(Empty {})
    }

    pub async fn delete_user_access_key(
        &self,
        p: &Caller,
        req: AccessKeyIdRequest,
    ) -> Result<Empty> {
        let user = self.target_user(p, req.user_name).await?;
        self.key_of(&user, &req.access_key_id).await?;
        self.store
            .delete_access_key(&req.access_key_id, &p.audit)
            .await?;
        tracing::info!(user = %user.name, access_key_id = %req.access_key_id, by = %p.arn, "access key deleted");
        Ok(Empty {})
    }

    pub async fn list_user_access_keys(
        &self,
        p: &Caller,
        req: OptionalUserRequest,
    ) -> Result<ListAccessKeysResponse> {
        let user = self.target_user(p, req.user_name).await?;
        Ok(ListAccessKeysResponse {
            access_key_metadata: self
                .store
                .list_access_keys(&user.name)
                .await?
                .into_iter()
                .map(|k| AccessKeyMetadata {
                    user_name: k.user_name,
                    access_key_id: k.access_key_id,
                    status: status_str(k.active).into(),
                    create_date: k.created_at,
                    last_used_date: k.last_used_at,
                    expiration: k.expires_at,
                })
                .collect(),
        })
    }

    pub async fn put_user_policy(&self, p: &Caller, req: PutUserPolicyRequest) -> Result<Empty> {
        let user = self.target_user(p, Some(req.user_name)).await?;
        validate_iam_name("PolicyName", &req.policy_name, 128)?;
        let document = identity_policy_text("PolicyDocument", req.policy_document)?;
        self.store
            .put_user_policy(
                &user.name,
                &req.policy_name,
                &document,
                self.clock.now(),
                &p.audit,
            )
            .await?;
        self.subjects.forget(&user.name);
        tracing::info!(user = %user.name, policy = %req.policy_name, by = %p.arn, "user policy set");
        Ok(Empty {})
    }

    pub async fn get_user_policy(
        &self,
        p: &Caller,
        req: UserPolicyRequest,
    ) -> Result<GetUserPolicyResponse> {
        let user = self.target_user(p, Some(req.user_name)).await?;
        let doc = self
            .store
            .user_policies(&user.name)
            .await?
            .into_iter()
            .find(|(n, _)| *n == req.policy_name)
            .map(|(_, d)| d)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::ResourceNotFound,
                    format!("The user {} has no policy {}.", user.name, req.policy_name),
                )
            })?;
        Ok(GetUserPolicyResponse {
            user_name: user.name,
            policy_name: req.policy_name,
            policy_document: doc,
        })
    }

    pub async fn delete_user_policy(&self, p: &Caller, req: UserPolicyRequest) -> Result<Empty> {
        let user = self.target_user(p, Some(req.user_name)).await?;
        if !self
            .store
            .delete_user_policy(&user.name, &req.policy_name, &p.audit)
            .await?
        {
            return Err(Error::new(
                ErrorCode::ResourceNotFound,
                format!("The user {} has no policy {}.", user.name, req.policy_name),
            ));
        }
        self.subjects.forget(&user.name);
        tracing::info!(user = %user.name, policy = %req.policy_name, by = %p.arn, "user policy deleted");
        Ok(Empty {})
    }

    pub async fn list_user_policies(
        &self,
        p: &Caller,
        req: UserNameRequest,
    ) -> Result<ListUserPoliciesResponse> {
        let user = self.target_user(p, Some(req.user_name)).await?;
        Ok(ListUserPoliciesResponse {
            policy_names: self
                .store
                .user_policies(&user.name)
                .await?
                .into_iter()
                .map(|(n, _)| n)
                .collect(),
        })
    }

    pub async fn get_caller_identity(
        &self,
        p: &Caller,
        _req: Empty,
    ) -> Result<GetCallerIdentityResponse> {
        Ok(GetCallerIdentityResponse {
            user_id: p.user_id.clone(),
            account: self.account.clone(),
            arn: p.arn.clone(),
        })
    }
}
