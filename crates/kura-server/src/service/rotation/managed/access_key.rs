//! `kura-access-key`: rotates a kura user's access key, the secret being
//! `{"UserName", "AccessKeyId", "SecretAccessKey"}`. createSecret makes a second key,
//! testSecret proves it with a signed call to kura itself, finishSecret moves AWSCURRENT and
//! then deactivates and deletes the old key.

use kura_core::model::{RotationStep, SecretRecord};
use kura_iam::sigv4;
use kura_store::VersionSelector;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::Step;
use super::db::str_field;
use crate::service::Service;
use crate::service::access_keys::{MAX_KEYS_PER_USER, NewAccessKey};

impl Service {
    pub(super) async fn access_key_step(
        &self,
        s: &SecretRecord,
        step: RotationStep,
        token: &str,
    ) -> Step {
        match step {
            RotationStep::CreateSecret => {
                if self
                    .version_json(s, VersionSelector::Id(token))
                    .await?
                    .is_some()
                {
                    return Ok(());
                }
                let current = self.current_json(s).await?;
                let user = str_field(&current, "UserName")?;
                let user = self
                    .store
                    .get_user(user)
                    .await
                    .map_err(|e| e.message)?
                    .ok_or_else(|| format!("the user {user} does not exist in kura"))?;
                let (id, secret) = self
                    .create_access_key(NewAccessKey::long_term(&user.name, None), &kura_store::NO_AUDIT)
                    .await
                    .map_err(|e| match e.code {
                        kura_core::ErrorCode::LimitExceeded => format!(
                            "the user {} already has {MAX_KEYS_PER_USER} access keys; delete the one that is not {} so rotation can create a new one",
                            user.name,
                            str_field(&current, "AccessKeyId").unwrap_or("the current one")
                        ),
                        _ => e.message,
                    })?;
                let mut new = current.clone();
                new["AccessKeyId"] = Value::String(id.clone());
                new["SecretAccessKey"] = Value::String(secret.to_string());
                if let Err(e) = self.store_pending(s, token, &new).await {
                    // Without the pending value nobody knows the key: do not leave it behind.
                    let _ = self
                        .store
                        .delete_access_key(&id, &kura_store::NO_AUDIT)
                        .await;
                    return Err(e);
                }
                Ok(())
            }
            RotationStep::SetSecret => Ok(()), // the key exists in kura since createSecret
            RotationStep::TestSecret => {
                let pending = self.pending_json(s, token).await?;
                self.prove_key(&pending).await
            }
            RotationStep::FinishSecret => {
                self.move_current_to(s, token)
                    .await
                    .map_err(|e| e.message)?;
                let pending = self.pending_json(s, token).await?;
                let Some(previous) = self
                    .version_json(s, VersionSelector::Stage(kura_core::labels::PREVIOUS))
                    .await?
                else {
                    return Ok(());
                };
                let old = str_field(&previous, "AccessKeyId")?;
                if old == str_field(&pending, "AccessKeyId")? {
                    return Ok(());
                }
                let user = str_field(&pending, "UserName")?;
                match self
                    .store
                    .find_access_key(old)
                    .await
                    .map_err(|e| e.message)?
                {
                    Some(k) if k.user_name == user => {
                        self.store
                            .set_access_key_status(old, false, &kura_store::NO_AUDIT)
                            .await
                            .map_err(|e| e.message)?;
                        self.store
                            .delete_access_key(old, &kura_store::NO_AUDIT)
                            .await
                            .map_err(|e| e.message)?;
                        tracing::info!(
                            user,
                            access_key_id = old,
                            "old access key deactivated and deleted after rotation"
                        );
                    }
                    Some(_) => {
                        return Err(format!(
                            "the old key {old} belongs to another user; not deleting it"
                        ));
                    }
                    None => {} // deleted by an earlier run of this step
                }
                Ok(())
            }
        }
    }

    /// A signed Kura.GetCallerIdentity with the new key, over HTTP to this server.
    async fn prove_key(&self, pending: &Value) -> Step {
        let id = str_field(pending, "AccessKeyId")?;
        let secret = Zeroizing::new(str_field(pending, "SecretAccessKey")?.to_string());
        let user = str_field(pending, "UserName")?;
        let endpoint = self
            .rotation
            .endpoint()
            .ok_or("kura's own endpoint is not known yet")?;
        let url = reqwest::Url::parse(endpoint).map_err(|e| format!("endpoint {endpoint}: {e}"))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return Err(format!("endpoint {endpoint} has no host")),
        };
        let body = "{}";
        let headers = sigv4::json_call_headers(
            &host,
            "Kura.GetCallerIdentity",
            body.as_bytes(),
            id,
            &secret,
            &self.region,
            chrono::Utc::now(),
        )
        .map_err(|e| format!("signing the test call: {e}"))?;
        let mut request = self.rotation.http().post(url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let resp = request
            .body(body)
            .send()
            .await
            .map_err(|e| format!("the test call with key {id} failed: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let answer: Value = serde_json::from_str(&text).unwrap_or(json!({}));
        if !status.is_success() {
            return Err(format!(
                "the new key {id} was refused: {}",
                answer["__type"].as_str().unwrap_or("error")
            ));
        }
        let arn = answer["Arn"].as_str().unwrap_or("");
        if !arn.ends_with(&format!(":user/{user}")) {
            return Err(format!("the new key {id} signs as {arn}, not as {user}"));
        }
        Ok(())
    }
}
