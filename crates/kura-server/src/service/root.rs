//! The root user's break glass. `kura operator generate-root` issues new root credentials to
//! an operator who proves they hold the root key (opened from the installation's seal: the
//! file, `threshold` shares, or the HSM) by opening a challenge the server sealed under the
//! keyring. `Kura.DisableRoot` refuses root's access keys once an administrator exists;
//! `Kura.EnableRoot` and generate-root lift that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use kura_core::{Error, ErrorCode, Result};
use kura_iam::eval::{self, ConditionKeys, RequestContext};
use kura_iam::policy::{self, PolicyKind};
use kura_store::{AuditDraft, AuditRecord, AuditSlot};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::access_keys::NewAccessKey;
use super::pipeline::log_request;
use super::types::Empty;
use super::{Caller, RequestInfo, Service};

/// Set (to who disabled root, and when) while the root user's access keys are refused.
pub const ROOT_DISABLED_SETTING: &str = "root_disabled";
const ROOT: &str = "root";
/// How long a challenge may be answered; opening the root key (shares typed in) comes first.
const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// Challenges waiting at once: anyone may ask for one, so memory stays bounded.
const MAX_CHALLENGES: usize = 32;

fn challenge_context(id: &str) -> Vec<u8> {
    format!("kura/generate-root\n{id}").into_bytes()
}

/// A challenge handed out: when, and the random bytes sealed in it.
type Waiting = (Instant, Zeroizing<Vec<u8>>);

/// Challenges handed out and not yet answered, by id.
#[derive(Default)]
pub(crate) struct RootChallenges {
    map: Mutex<HashMap<String, Waiting>>,
}

/// What `POST /operator/generate-root/challenge` answers: random bytes sealed under the
/// default key, which only a holder of the root key can open. Binary fields are base64.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootChallenge {
    pub challenge_id: String,
    pub ciphertext: String,
    pub wrapped_key: String,
    pub key_name: String,
    pub key_version: i64,
}

/// The opened challenge (base64), from a keyring the operator's command opened with the root
/// key.
pub fn answer_challenge(
    keyring: &kura_crypto::Keyring,
    c: &RootChallenge,
) -> Result<Zeroizing<String>> {
    let field = |name: &str, text: &str| {
        B64.decode(text).map_err(|_| {
            Error::invalid_request(format!("the server's challenge has a damaged {name}"))
        })
    };
    let opened = keyring
        .open(
            &c.key_name,
            c.key_version,
            &challenge_context(&c.challenge_id),
            &field("Ciphertext", &c.ciphertext)?,
            &field("WrappedKey", &c.wrapped_key)?,
        )
        .map_err(|_| {
            Error::invalid_request(
                "the root key opened here does not open the server's challenge: is --endpoint the server of this --data-dir (and --database-url)?",
            )
        })?;
    Ok(Zeroizing::new(B64.encode(opened.as_slice())))
}

/// New root credentials, shown once.
pub struct NewRoot {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    /// Root's earlier access keys, deleted.
    pub deleted: Vec<String>,
    /// Root's earlier access keys, left as they were (`--keep-old-keys`).
    pub kept: Vec<String>,
    /// Root was disabled and is enabled again.
    pub re_enabled: bool,
}

fn root_disabled_error() -> Error {
    Error::new(
        ErrorCode::AccessDenied,
        "The root user is disabled (Kura.DisableRoot): sign with an administrator's access key. An administrator can enable root again with Kura.EnableRoot; an operator holding the root key (or the unseal shares, or the HSM) with `kura operator generate-root`, which issues new root credentials.",
    )
}

impl Service {
    /// Whether root's access keys are refused now. Read from the database on every root
    /// request, so disabling applies on every node of a cluster at once.
    pub async fn root_disabled(&self) -> Result<bool> {
        Ok(self
            .store
            .get_setting(ROOT_DISABLED_SETTING)
            .await?
            .is_some())
    }

    /// Refuses a request signed with one of root's keys while root is disabled.
    pub async fn check_root_enabled(&self, user_name: &str) -> Result<()> {
        if user_name == ROOT && self.root_disabled().await? {
            return Err(root_disabled_error());
        }
        Ok(())
    }

    /// A new challenge for `kura operator generate-root`.
    pub fn root_challenge(&self) -> Result<RootChallenge> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut bytes = Zeroizing::new(vec![0u8; 32]);
        kura_crypto::random::fill(bytes.as_mut_slice())?;
        let sealed = self.seal_internal(&challenge_context(&id), &bytes)?;
        let mut map = self
            .root_challenges
            .map
            .lock()
            .map_err(|_| Error::internal("the challenge table's lock is poisoned"))?;
        map.retain(|_, (at, _)| at.elapsed() < CHALLENGE_TTL);
        if map.len() >= MAX_CHALLENGES {
            return Err(Error::new(
                ErrorCode::LimitExceeded,
                "Too many generate-root challenges are waiting for an answer; try again in a few minutes.",
            ));
        }
        map.insert(id.clone(), (Instant::now(), bytes));
        Ok(RootChallenge {
            challenge_id: id,
            ciphertext: B64.encode(&sealed.ciphertext),
            wrapped_key: B64.encode(&sealed.wrapped_key),
            key_name: sealed.key_name,
            key_version: sealed.key_version,
        })
    }

    /// Whether `answer` opens the challenge `id`; each challenge is answered once at most.
    fn take_challenge(&self, id: &str, answer: &str) -> Result<bool> {
        let entry = self
            .root_challenges
            .map
            .lock()
            .map_err(|_| Error::internal("the challenge table's lock is poisoned"))?
            .remove(id);
        let Some((_, expected)) = entry.filter(|(at, _)| at.elapsed() < CHALLENGE_TTL) else {
            return Err(Error::invalid_request(
                "That challenge is unknown, used or expired (they last 5 minutes, on the server that gave them out): run `kura operator generate-root` again.",
            ));
        };
        let Ok(given) = B64.decode(answer.trim()).map(Zeroizing::new) else {
            return Ok(false);
        };
        Ok(aws_lc_rs::constant_time::verify_slices_are_equal(&given, &expected).is_ok())
    }

    /// `kura operator generate-root`, its challenge answered: a new access key for root;
    /// root's other keys deleted unless `keep_old` (a lost key may be a stolen one); root
    /// enabled again. Recorded as the operator's act, whether it succeeds or not.
    pub async fn generate_root(
        &self,
        request: &RequestInfo,
        challenge_id: &str,
        answer: &str,
        keep_old: bool,
    ) -> Result<NewRoot> {
        let mut record = AuditRecord {
            time: self.now_ms(),
            request_id: request.id.clone(),
            kind: "request".into(),
            principal: "operator".into(),
            action: "kura:GenerateRoot".into(),
            resource: self.user_arn(ROOT),
            source_ip: request.meta.source_ip.map(|ip| ip.to_string()),
            user_agent: request.meta.user_agent.clone(),
            decision: "Deny".into(),
            outcome: "Error".into(),
            node: self.node_id.clone(),
            ..Default::default()
        };
        let result = match self.take_challenge(challenge_id, answer) {
            Ok(true) => {
                record.decision = "Allow".into();
                let slot = AuditSlot::empty();
                slot.offer(AuditDraft {
                    record: record.clone(),
                    started: request.started,
                    clock: self.clock.clone(),
                });
                let result = self.issue_root_key(keep_old, &slot).await;
                if slot.committed() {
                    if let Ok(done) = &result {
                        tracing::warn!(access_key_id = %done.access_key_id, deleted = done.deleted.len(), "an operator generated new root credentials");
                    }
                    log_request(
                        request,
                        "GenerateRoot",
                        "operator",
                        result.as_ref().map(|_| ()),
                    );
                    return result;
                }
                result
            }
            Ok(false) => Err(Error::new(
                ErrorCode::AccessDenied,
                "The answer does not open the challenge: the root key it was opened with is not this installation's.",
            )),
            Err(e) => Err(e),
        };
        record.time = self.now_ms();
        record.duration_us = request.started.elapsed().as_micros() as i64;
        match &result {
            Ok(_) => record.outcome = "Success".into(),
            Err(e) => record.error_code = Some(e.code.as_str().to_string()),
        }
        self.audit(record).await?;
        log_request(
            request,
            "GenerateRoot",
            "operator",
            result.as_ref().map(|_| ()),
        );
        result
    }

    async fn issue_root_key(&self, keep_old: bool, audit: &AuditSlot) -> Result<NewRoot> {
        let old: Vec<String> = self
            .store
            .list_access_keys(ROOT)
            .await?
            .into_iter()
            .map(|k| k.access_key_id)
            .collect();
        let mut deleted = Vec::new();
        if !keep_old {
            for id in &old {
                self.store.delete_access_key(id, audit).await?;
                deleted.push(id.clone());
            }
        }
        let (access_key_id, secret_access_key) = self
            .create_access_key(NewAccessKey::long_term(ROOT, None), audit)
            .await
            .map_err(|e| {
                if e.code == ErrorCode::LimitExceeded {
                    Error::new(
                        ErrorCode::LimitExceeded,
                        "Root has two access keys already, the most a user may have: leave out --keep-old-keys so they are deleted, or delete one first.",
                    )
                } else {
                    e
                }
            })?;
        let re_enabled = self.clear_root_disabled().await?;
        Ok(NewRoot {
            access_key_id,
            secret_access_key,
            kept: if keep_old { old } else { Vec::new() },
            deleted,
            re_enabled,
        })
    }

    /// Lifts `Kura.DisableRoot`; whether root was disabled.
    async fn clear_root_disabled(&self) -> Result<bool> {
        let Some(current) = self.store.get_setting(ROOT_DISABLED_SETTING).await? else {
            return Ok(false);
        };
        // Compare-and-set: a concurrent change to the setting is left to win.
        self.store
            .replace_setting(ROOT_DISABLED_SETTING, Some(&current), None)
            .await?;
        tracing::warn!("the root user is enabled again");
        Ok(true)
    }

    /// `Kura.DisableRoot`: root's access keys are refused from now on, on every node. Only
    /// once an administrator exists (see [`Self::administrators`]), so nobody is locked out.
    pub async fn disable_root(&self, c: &Caller, _: Empty) -> Result<Empty> {
        if self.root_disabled().await? {
            return Ok(Empty {});
        }
        let admins = self.administrators().await?;
        if admins.is_empty() {
            return Err(Error::invalid_request(
                "Create an administrator first: a user other than root with an active access key whose identity policies allow every kura:* and secretsmanager:* action on Resource \"*\" without conditions (e.g. {\"Effect\":\"Allow\",\"Action\":[\"kura:*\",\"secretsmanager:*\"],\"Resource\":\"*\"}). Then root can be disabled without locking everyone out.",
            ));
        }
        let value = serde_json::json!({"DisabledBy": c.arn, "DisabledAt": self.now_ms()});
        let bytes = value.to_string().into_bytes();
        self.store
            .replace_setting(ROOT_DISABLED_SETTING, None, Some(&bytes))
            .await?;
        tracing::warn!(by = %c.arn, administrators = ?admins, "the root user is disabled");
        Ok(Empty {})
    }

    /// `Kura.EnableRoot`: root's access keys work again.
    pub async fn enable_root(&self, c: &Caller, _: Empty) -> Result<Empty> {
        if self.clear_root_disabled().await? {
            tracing::warn!(by = %c.arn, "root enabled by Kura.EnableRoot");
        }
        Ok(Empty {})
    }

    /// The users who could run kura without root: not root nor kura's own, with an active
    /// long-term access key, whose identity policies allow every `kura:*` and
    /// `secretsmanager:*` action on `*` with no condition keys present (so a condition such
    /// as a source address does not count: it might not hold when root is needed).
    pub async fn administrators(&self) -> Result<Vec<String>> {
        let actions: Vec<String> = super::operation::all_actions()
            .into_iter()
            .filter(|a| !a.starts_with("sts:"))
            .collect();
        let keys = ConditionKeys::new();
        let mut found = Vec::new();
        for user in self.store.list_users().await? {
            if user.name == ROOT || user.name == "kura" || user.name.starts_with("kura-rotation") {
                continue;
            }
            let has_key = self
                .store
                .list_access_keys(&user.name)
                .await?
                .iter()
                .any(|k| k.active && k.expires_at.is_none());
            if !has_key {
                continue;
            }
            let policies: Vec<_> = self
                .store
                .user_policies(&user.name)
                .await?
                .iter()
                .filter_map(|(_, text)| policy::parse(text, PolicyKind::Identity).ok())
                .collect();
            let refs: Vec<_> = policies.iter().collect();
            let allowed_all = actions.iter().all(|action| {
                let ctx = RequestContext {
                    principal_arn: &user.arn,
                    account: &self.account,
                    action,
                    resource: "*",
                    keys: &keys,
                };
                eval::evaluate(&ctx, &refs, None).is_allow()
            });
            if allowed_all {
                found.push(user.name);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use kura_crypto::{Keyring, RootKey};

    use super::{RootChallenge, answer_challenge, challenge_context};

    /// A keyring with one key, and the same keyring as an operator's command opens it.
    fn installation() -> (Keyring, Keyring) {
        let root = RootKey::generate().unwrap();
        let server = Keyring::new(RootKey::from_bytes(root.expose_bytes()).unwrap());
        let wrapped = server.new_kek("alias/kura/default", 1).unwrap();
        server.load_kek("alias/kura/default", 1, &wrapped).unwrap();
        let operator = Keyring::new(root);
        operator
            .load_kek("alias/kura/default", 1, &wrapped)
            .unwrap();
        (server, operator)
    }

    fn challenge(server: &Keyring, id: &str, bytes: &[u8]) -> RootChallenge {
        let s = server
            .seal("alias/kura/default", &challenge_context(id), bytes)
            .unwrap();
        RootChallenge {
            challenge_id: id.into(),
            ciphertext: B64.encode(&s.ciphertext),
            wrapped_key: B64.encode(&s.wrapped_key),
            key_name: "alias/kura/default".into(),
            key_version: s.key_version,
        }
    }

    #[test]
    fn only_the_installations_root_key_answers_its_challenge() {
        let (server, operator) = installation();
        let c = challenge(&server, "one", b"thirty-two bytes of challenge...");
        let answer = answer_challenge(&operator, &c).unwrap();
        assert_eq!(
            B64.decode(answer.as_str()).unwrap(),
            b"thirty-two bytes of challenge..."
        );

        // Another installation's root key opens nothing.
        let (_, stranger) = installation();
        let e = answer_challenge(&stranger, &c).unwrap_err();
        assert!(
            e.message.contains("does not open the server's challenge"),
            "{e:?}"
        );

        // A challenge is bound to its id: moved to another id it does not open.
        let mut moved = c.clone();
        moved.challenge_id = "two".into();
        assert!(answer_challenge(&operator, &moved).is_err());
    }
}
