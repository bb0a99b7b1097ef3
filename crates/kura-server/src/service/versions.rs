//! Writing and reading secret values, and moving stage labels.

use kura_core::labels::{self, StageMove};
use kura_core::model::{NewVersion, SecretRecord, VersionMeta};
use kura_core::names::validate_version_id;
use kura_core::{Error, Result};
use kura_store::{AuditSlot, VersionSelector};

use super::keys::{DECRYPT_ACTION, ENCRYPT_ACTION};
use super::rotation::Event;
use super::tokens::page_size;
use super::types::*;
use super::{Caller, Plain, Service, new_uuid, take_value};

/// A value write: PutSecretValue, or UpdateSecret with a value.
pub(crate) struct ValueWrite<'a> {
    pub token: Option<String>,
    pub plain: Plain,
    pub stages: Option<Vec<String>>,
    /// UpdateSecret's metadata changes, applied in the same transaction.
    pub description: Option<&'a str>,
    pub kms_key_id: Option<Option<String>>,
}

impl Service {
    /// Stores a new version (or fills a value-less placeholder) and moves labels, in one
    /// transaction. A retry with the same token and value is answered as the first call was.
    pub(crate) async fn write_value(
        &self,
        secret: &SecretRecord,
        w: ValueWrite<'_>,
        audit: &AuditSlot,
    ) -> Result<SecretVersionResponse> {
        let token = match w.token {
            Some(t) => {
                validate_version_id("ClientRequestToken", &t)?;
                t
            }
            None => new_uuid(),
        };
        if let Some(st) = &w.stages {
            for s in st {
                labels::validate_stage(s)?;
            }
        }
        let answer = |stages: Vec<String>| SecretVersionResponse {
            arn: secret.arn.clone(),
            name: secret.name.clone(),
            version_id: Some(token.clone()),
            version_stages: Some(labels::order_as_requested(stages, w.stages.as_deref())),
        };
        // Idempotency: compare with the value already stored under this token.
        if let Some(existing) = self
            .store
            .read_version(secret.id, VersionSelector::Id(&token))
            .await?
            && let Some(sealed) = &existing.value
        {
            self.ready_version(&sealed.key_name, sealed.key_version)
                .await?;
            let old = self.open(&secret.arn, &token, sealed)?;
            return if old.kind() == w.plain.kind() && old.bytes() == w.plain.bytes() {
                Ok(answer(existing.stages))
            } else {
                Err(token_in_use(&token, &secret.arn))
            };
        }
        let mut target = secret.clone();
        if let Some(k) = &w.kms_key_id {
            target.kms_key_id = k.clone();
        }
        let sealed = self.seal(&target, &token, &w.plain).await?;
        let now = self.clock.now();
        let requested = w.stages.as_deref();
        let state = self
            .store
            .modify(
                secret.id,
                &mut |st| {
                    if st.secret.is_scheduled_for_deletion() {
                        return Err(Error::marked_for_deletion());
                    }
                    let before_current = st.stages.get(labels::CURRENT).cloned();
                    match st.version(&token) {
                        Some(v) if v.has_value => return Err(token_in_use(&token, &st.secret.arn)),
                        Some(_) => {}
                        None => st.versions.push(VersionMeta {
                            version_id: token.clone(),
                            created_at: now,
                            accessed_at: None,
                            has_value: true,
                        }),
                    }
                    st.new_versions.push(NewVersion {
                        version_id: token.clone(),
                        created_at: now,
                        value: Some(sealed.clone()),
                    });
                    labels::attach_new_version(&mut st.stages, &token, requested, true)?;
                    let all: Vec<_> = st
                        .versions
                        .iter()
                        .map(|v| (v.version_id.clone(), v.created_at))
                        .collect();
                    let pruned = labels::versions_to_prune(&all, &st.stages, now)?;
                    st.versions.retain(|v| !pruned.contains(&v.version_id));
                    if let Some(d) = w.description {
                        st.secret.description = Some(d.to_string());
                    }
                    if let Some(k) = &w.kms_key_id {
                        st.secret.kms_key_id = k.clone();
                    }
                    st.secret.changed_at = now;
                    if self.after_manual_change(st, before_current.as_deref(), now) {
                        let e = self.event(
                            Event::SecretValueChanged,
                            &st.secret.arn,
                            &st.secret.name,
                            Some(&token),
                            None,
                        );
                        st.events.push(e);
                    }
                    Ok(())
                },
                audit,
            )
            .await?;
        self.announce(&state.events);
        Ok(answer(labels::stages_of(&state.stages, &token)))
    }

    pub async fn put_secret_value(
        &self,
        p: &Caller,
        req: PutSecretValueRequest,
    ) -> Result<SecretVersionResponse> {
        let plain = take_value(req.value)?.ok_or_else(|| {
            Error::invalid_parameter("You must provide either SecretString or SecretBinary.")
        })?;
        let secret = self.resolve_live(p, &req.secret_id).await?;
        let key = self.key_for(secret.kms_key_id.as_deref()).await?;
        self.authorize_key_use(p, &key, ENCRYPT_ACTION).await?;
        self.write_value(
            &secret,
            ValueWrite {
                token: req.client_request_token,
                plain,
                stages: req.version_stages,
                description: None,
                kms_key_id: None,
            },
            &p.audit,
        )
        .await
    }

    pub async fn get_secret_value(
        &self,
        p: &Caller,
        req: GetSecretValueRequest,
    ) -> Result<GetSecretValueResponse> {
        let secret = self.resolve_live(p, &req.secret_id).await?;
        let stage = req.version_stage.as_deref().map(labels::canonical_stage);
        if let Some(id) = &req.version_id {
            validate_version_id("VersionId", id)?;
        }
        let which = match (&req.version_id, &stage) {
            (Some(id), _) => VersionSelector::Id(id),
            (None, Some(s)) => VersionSelector::Stage(s),
            (None, None) => VersionSelector::Stage(labels::CURRENT),
        };
        let not_found = || match which {
            VersionSelector::Id(id) => Error::not_found(format!(
                "Secrets Manager can't find the specified secret value for VersionId: {id}"
            )),
            VersionSelector::Stage(s) => Error::not_found(format!(
                "Secrets Manager can't find the specified secret value for staging label: {s}"
            )),
        };
        let v = self
            .store
            .read_version(secret.id, which)
            .await?
            .ok_or_else(not_found)?;
        if let (Some(id), Some(s)) = (&req.version_id, &stage)
            && !v.stages.contains(s)
        {
            // AWS's code and opening sentence for this case.
            return Err(Error::invalid_request(format!(
                "You provided a VersionStage that is not associated to the provided VersionId. Version {id} does not carry the staging label {s}: send only one of them, or two that name the same version."
            )));
        }
        let sealed = v.value.as_ref().ok_or_else(not_found)?;
        // The key that sealed this version decides, whatever the secret's KmsKeyId is now.
        let key = self.find_key(Some(&sealed.key_name)).await?;
        self.authorize_key_use(p, &key, DECRYPT_ACTION).await?;
        self.ready_version(&sealed.key_name, sealed.key_version)
            .await?;
        // A rotation function reading another secret: its error text must not show that either.
        self.rotation.note_read(p, secret.id);
        // LastAccessedDate is kept per day, so only the first read of a day writes.
        let today = self.clock.now().start_of_day();
        let stale = secret.accessed_at.is_none_or(|a| a < today)
            || v.meta.accessed_at.is_none_or(|a| a < today);
        if stale
            && let Err(e) = self
                .store
                .touch_accessed(secret.id, &v.meta.version_id, today)
                .await
        {
            tracing::warn!(detail = ?e, "could not record the access date");
        }
        let value = self.open(&secret.arn, &v.meta.version_id, sealed)?;
        Ok(GetSecretValueResponse {
            arn: secret.arn,
            name: secret.name,
            version_id: v.meta.version_id,
            value,
            version_stages: v.stages,
            created: v.meta.created_at,
        })
    }

    pub async fn update_secret_version_stage(
        &self,
        p: &Caller,
        req: UpdateSecretVersionStageRequest,
    ) -> Result<SecretVersionResponse> {
        for id in [&req.remove_from_version_id, &req.move_to_version_id]
            .into_iter()
            .flatten()
        {
            validate_version_id("VersionId", id)?;
        }
        let secret = self.resolve_live(p, &req.secret_id).await?;
        let now = self.clock.now();
        let state = self
            .store
            .modify(
                secret.id,
                &mut |st| {
                    if st.secret.is_scheduled_for_deletion() {
                        return Err(Error::marked_for_deletion());
                    }
                    let versions = st.versions.clone();
                    let before_current = st.stages.get(labels::CURRENT).cloned();
                    labels::update_stage(
                        &mut st.stages,
                        StageMove {
                            stage: &req.version_stage,
                            remove_from: req.remove_from_version_id.as_deref(),
                            move_to: req.move_to_version_id.as_deref(),
                        },
                        |id| {
                            versions
                                .iter()
                                .find(|v| v.version_id == id)
                                .map(|v| v.has_value)
                        },
                    )?;
                    st.secret.changed_at = now;
                    if self.after_manual_change(st, before_current.as_deref(), now) {
                        let current = st.stages.get(labels::CURRENT).cloned();
                        let e = self.event(
                            Event::SecretValueChanged,
                            &st.secret.arn,
                            &st.secret.name,
                            current.as_deref(),
                            None,
                        );
                        st.events.push(e);
                    }
                    Ok(())
                },
                &p.audit,
            )
            .await?;
        self.announce(&state.events);
        Ok(SecretVersionResponse {
            arn: secret.arn,
            name: secret.name,
            ..Default::default()
        })
    }

    pub async fn list_secret_version_ids(
        &self,
        p: &Caller,
        req: ListSecretVersionIdsRequest,
    ) -> Result<ListSecretVersionIdsResponse> {
        let limit = page_size(req.max_results)?;
        let secret = self.resolve(p, &req.secret_id).await?;
        let (versions, stages) = self.store.versions(secret.id).await?;
        let include_deprecated = req.include_deprecated.unwrap_or(false);
        let mut entries: Vec<VersionEntry> = versions
            .into_iter()
            .filter(|v| v.has_value)
            .map(|v| VersionEntry {
                version_stages: labels::stages_of(&stages, &v.version_id),
                version_id: v.version_id,
                last_accessed_date: v.accessed_at,
                created_date: v.created_at,
            })
            .filter(|e| include_deprecated || !e.version_stages.is_empty())
            .collect();
        entries.reverse(); // newest first
        let query_id = format!("ListSecretVersionIds {} {include_deprecated}", secret.arn);
        let start = match &req.next_token {
            None => 0,
            Some(t) => self
                .redeem_token(&query_id, t)?
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(super::tokens::invalid)?,
        };
        let rest: Vec<VersionEntry> = entries.into_iter().skip(start).collect();
        let next_token =
            (rest.len() > limit).then(|| self.issue_token(&query_id, (start + limit).into()));
        Ok(ListSecretVersionIdsResponse {
            versions: rest.into_iter().take(limit).collect(),
            next_token,
            arn: secret.arn,
            name: secret.name,
        })
    }
}

pub(crate) fn token_in_use(token: &str, arn: &str) -> Error {
    Error::exists(format!(
        "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {arn}."
    ))
}
