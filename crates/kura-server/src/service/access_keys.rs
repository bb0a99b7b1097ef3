//! Access keys: generated here, the secret half sealed before it is stored.

use kura_core::{Result, Timestamp};
use kura_crypto::random;
use kura_iam::MAX_ACCESS_KEYS_PER_USER as MAX_KEYS_PER_USER;
use kura_store::AccessKeyRecord;
use zeroize::Zeroizing;

use super::{Service, access_key_context};

/// AWS's access key id alphabet (base32).
const KEY_ID_ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// What kind of key to make.
pub(crate) struct NewAccessKey<'a> {
    pub user_name: &'a str,
    /// `AKIA` for long-term keys, `ASIA` for short-lived ones (AWS's conventions).
    pub prefix: &'a str,
    pub expires_at: Option<Timestamp>,
    pub scope_secret_id: Option<i64>,
    /// An existing key pair to import (migrations) instead of generating one.
    pub imported: Option<(String, Zeroizing<String>)>,
    /// Refuse (LimitExceededException) when the user already has this many long-term keys.
    pub max_per_user: Option<usize>,
}

impl<'a> NewAccessKey<'a> {
    /// A user's long-term key (generated, or `imported`), within IAM's two-key limit.
    pub(crate) fn long_term(
        user_name: &'a str,
        imported: Option<(String, Zeroizing<String>)>,
    ) -> Self {
        NewAccessKey {
            user_name,
            prefix: "AKIA",
            expires_at: None,
            scope_secret_id: None,
            imported,
            max_per_user: Some(MAX_KEYS_PER_USER),
        }
    }
}

impl Service {
    /// Creates and stores a key; returns its id and secret (shown once, never stored clear).
    pub(crate) async fn create_access_key(
        &self,
        k: NewAccessKey<'_>,
        audit: &kura_store::AuditSlot,
    ) -> Result<(String, Zeroizing<String>)> {
        let (id, secret) = match k.imported {
            Some(pair) => pair,
            None => {
                let alphabet: Vec<char> = KEY_ID_ALPHABET.chars().collect();
                (
                    format!("{}{}", k.prefix, random::string_from(&alphabet, 16)?),
                    Zeroizing::new(random::alnum(40)?),
                )
            }
        };
        let sealed = self.seal_internal(&access_key_context(&id), secret.as_bytes())?;
        self.store
            .insert_access_key(
                &AccessKeyRecord {
                    access_key_id: id.clone(),
                    user_name: k.user_name.to_string(),
                    user_arn: String::new(),
                    user_id: String::new(),
                    sealed_secret: sealed,
                    active: true,
                    created_at: self.clock.now(),
                    expires_at: k.expires_at,
                    scope_secret_id: k.scope_secret_id,
                    last_used_at: None,
                },
                k.max_per_user,
                audit,
            )
            .await?;
        Ok((id, secret))
    }
}

impl Service {
    /// The key-expiry job: deletes rotation steps' keys whose time is up and users' keys a
    /// week after theirs. A user's key going is a change to an identity: audited (the key's
    /// id and its user, nothing secret) and logged.
    pub(crate) async fn sweep_expired_access_keys(&self) -> Result<()> {
        let swept = self
            .store
            .delete_expired_access_keys(self.clock.now())
            .await?;
        for k in swept.iter().filter(|k| !k.step_key) {
            let user_arn = self.user_arn(&k.user_name);
            tracing::info!(access_key_id = %k.access_key_id, user = %user_arn, "deleted an access key a week after it expired");
            self.audit_background(kura_store::AuditRecord {
                kind: "job".into(),
                principal: "kura".into(),
                access_key_id: k.access_key_id.clone(),
                action: "job:DeleteExpiredAccessKey".into(),
                resource: user_arn,
                outcome: "Success".into(),
                ..Default::default()
            })
            .await;
        }
        Ok(())
    }
}
