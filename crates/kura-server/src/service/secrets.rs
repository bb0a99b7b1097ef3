//! Creating, describing, listing, updating, deleting and restoring secrets.

use kura_core::labels::{self, Stages};
use kura_core::model::{NewVersion, SecretRecord};
use kura_core::names::{self, SecretRef, validate_description, validate_name, validate_version_id};
use kura_core::{Error, Result};
use kura_store::{Cursor, CursorValue, FilterKey, ListFilter, ListQuery, SortKey};

use super::keys::ENCRYPT_ACTION;
use super::rotation::Event;
use super::tags::validated_tags;
use super::tokens::page_size;
use super::types::*;
use super::versions::{ValueWrite, token_in_use};
use super::{Caller, Service, new_uuid, take_value};

const MIN_RECOVERY_DAYS: i64 = 7;
const MAX_RECOVERY_DAYS: i64 = 30;

fn sort_key(s: Option<&str>) -> Result<SortKey> {
    Ok(match s {
        None | Some("created-date") => SortKey::Created,
        Some("last-accessed-date") => SortKey::LastAccessed,
        Some("last-changed-date") => SortKey::LastChanged,
        Some("name") => SortKey::Name,
        Some(other) => {
            return Err(Error::validation(format!(
                "SortBy {other:?} is not one of created-date, last-accessed-date, last-changed-date, name."
            )));
        }
    })
}

pub(crate) struct ListParams<'a> {
    pub filters: Vec<Filter>,
    pub include_deleted: bool,
    pub sort: SortKey,
    pub descending: bool,
    pub limit: usize,
    pub next_token: Option<&'a str>,
    /// Which operation pages, so its tokens are not accepted by the other.
    pub purpose: &'static str,
}

/// AWS's pattern for filter values: an optional leading `!`, then letters, digits, spaces and `:_@/+=.-!`.
fn validate_filter_value(v: &str) -> Result<()> {
    let ok = v.chars().count() <= 512
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || " :_@/+=.-!".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "Filter value {v:?} is invalid: up to 512 letters, digits, spaces and :_@/+=.-! (a leading ! negates)."
        )))
    }
}

/// kura's filter key: secrets that expire before the value's time.
const EXPIRES_BEFORE: &str = "kura:expires-before";

fn filter_key(k: &str) -> Result<FilterKey> {
    Ok(match k {
        "name" => FilterKey::Name,
        "description" => FilterKey::Description,
        "tag-key" => FilterKey::TagKey,
        "tag-value" => FilterKey::TagValue,
        "primary-region" => FilterKey::PrimaryRegion,
        "owning-service" => FilterKey::OwningService,
        "all" => FilterKey::All,
        EXPIRES_BEFORE => FilterKey::ExpiresBefore,
        other => {
            return Err(Error::validation(format!(
                "Filter key {other:?} is not one of description, name, tag-key, tag-value, primary-region, owning-service, all, {EXPIRES_BEFORE}."
            )));
        }
    })
}

fn cursor_json(c: &Cursor) -> serde_json::Value {
    match &c.value {
        CursorValue::Int(i) => serde_json::json!([i, c.id]),
        CursorValue::Text(t) => serde_json::json!([t, c.id]),
    }
}

fn cursor_from_json(v: &serde_json::Value) -> Option<Cursor> {
    let value = match v.get(0)? {
        serde_json::Value::Number(n) => CursorValue::Int(n.as_i64()?),
        serde_json::Value::String(s) => CursorValue::Text(s.clone()),
        _ => return None,
    };
    Some(Cursor {
        value,
        id: v.get(1)?.as_i64()?,
    })
}

impl Service {
    pub async fn create_secret(
        &self,
        p: &Caller,
        req: CreateSecretRequest,
    ) -> Result<SecretVersionResponse> {
        validate_name(&req.name)?;
        if let Some(d) = &req.description {
            validate_description(d)?;
        }
        if let Some(t) = &req.client_request_token {
            validate_version_id("ClientRequestToken", t)?;
        }
        if req.replica_regions {
            return Err(Error::invalid_request(
                "Replication to other regions is not available on this kura server; remove AddReplicaRegions.",
            ));
        }
        let tags = validated_tags(req.tags.unwrap_or_default())?;
        let plain = take_value(req.value)?;
        let key = self.key_for(req.kms_key_id.as_deref()).await?;
        // Stored as the caller named it (DescribeSecret shows it so, as AWS does); the default
        // key is stored as no key.
        let kms_key_id = req.kms_key_id.clone().filter(|_| !key.is_default());
        if plain.is_some() {
            self.authorize_key_use(p, &key, ENCRYPT_ACTION).await?;
        }

        if let Some(existing) = self
            .store
            .find_secret(&SecretRef::Name(req.name.clone()))
            .await?
        {
            if existing.is_scheduled_for_deletion() {
                return Err(Error::invalid_request(
                    "You can't create this secret because a secret with this name is already scheduled for deletion.",
                ));
            }
            // A retried CreateSecret (same token, same value) gets the first call's answer.
            if let (Some(token), Some(plain)) = (&req.client_request_token, &plain)
                && let Some(v) = self
                    .store
                    .read_version(existing.id, kura_store::VersionSelector::Id(token))
                    .await?
                && let Some(sealed) = &v.value
            {
                self.ready_version(&sealed.key_name, sealed.key_version)
                    .await?;
                let old = self.open(&existing.arn, token, sealed)?;
                if old.kind() == plain.kind() && old.bytes() == plain.bytes() {
                    return Ok(SecretVersionResponse {
                        arn: existing.arn,
                        name: existing.name,
                        version_id: Some(token.clone()),
                        version_stages: None,
                    });
                }
                return Err(token_in_use(token, &existing.arn));
            }
            return Err(Error::exists(format!(
                "The operation failed because the secret {} already exists.",
                req.name
            )));
        }

        let now = self.clock.now();
        let suffix = kura_crypto::random::alnum(names::ARN_SUFFIX_LEN)?;
        let arn = names::secret_arn(&self.region, &self.account, &req.name, &suffix);
        let secret = SecretRecord {
            kms_key_id,
            ..SecretRecord::new(req.name, arn, req.description, tags, now)
        };
        let mut stages = Stages::new();
        let first = match &plain {
            Some(plain) => {
                let version_id = req.client_request_token.unwrap_or_else(new_uuid);
                labels::attach_new_version(&mut stages, &version_id, None, true)?;
                Some(NewVersion {
                    value: Some(self.seal(&secret, &version_id, plain).await?),
                    version_id,
                    created_at: now,
                })
            }
            None => None,
        };
        self.store
            .create_secret(&secret, first.as_ref(), &stages, &p.audit)
            .await?;
        Ok(SecretVersionResponse {
            arn: secret.arn,
            name: secret.name,
            version_id: first.map(|v| v.version_id),
            version_stages: None,
        })
    }

    pub async fn describe_secret(
        &self,
        p: &Caller,
        req: SecretIdRequest,
    ) -> Result<SecretDescription> {
        let secret = self.resolve(p, &req.secret_id).await?;
        let (_, stages) = self.store.versions(secret.id).await?;
        Ok(SecretDescription {
            secret: Box::new(secret),
            stages,
            now: self.clock.now(),
        })
    }

    pub async fn list_secrets(
        &self,
        _p: &Caller,
        req: ListSecretsRequest,
    ) -> Result<SecretListPage> {
        let sort = sort_key(req.sort_by.as_deref())?;
        let descending = match req.sort_order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(Error::validation(format!(
                    "SortOrder {other:?} is not asc or desc."
                )));
            }
        };
        let (secrets, next_token) = self
            .list_page(ListParams {
                filters: req.filters.unwrap_or_default(),
                include_deleted: req.include_planned_deletion.unwrap_or(false),
                sort,
                descending,
                limit: page_size(req.max_results)?,
                next_token: req.next_token.as_deref(),
                purpose: "ListSecrets",
            })
            .await?;
        let now = self.clock.now();
        Ok(SecretListPage {
            secrets: secrets
                .into_iter()
                .map(|(secret, stages)| SecretDescription {
                    secret: Box::new(secret),
                    stages,
                    now,
                })
                .collect(),
            next_token,
        })
    }

    /// One page of secrets matching filters; shared by ListSecrets and BatchGetSecretValue.
    pub(crate) async fn list_page(
        &self,
        p: ListParams<'_>,
    ) -> Result<(Vec<(SecretRecord, Stages)>, Option<String>)> {
        if p.filters.len() > 10 {
            return Err(Error::validation("At most 10 filters are allowed."));
        }
        let filters = p
            .filters
            .into_iter()
            .map(|f| {
                let key = filter_key(f.key.as_deref().unwrap_or_default())?;
                let values = f.values.unwrap_or_default();
                if values.is_empty() || values.len() > 10 {
                    return Err(Error::validation("Each filter needs 1 to 10 values."));
                }
                for v in &values {
                    validate_filter_value(v)?;
                    let term = v.strip_prefix('!').unwrap_or(v);
                    if key == FilterKey::ExpiresBefore
                        && kura_core::expiry::parse_time(term).is_none()
                    {
                        return Err(Error::invalid_parameter(format!(
                            "Filter {EXPIRES_BEFORE} needs a time: epoch seconds (1893456000) or RFC 3339 (2030-01-01T00:00:00Z); got {v:?}."
                        )));
                    }
                }
                Ok(ListFilter { key, values })
            })
            .collect::<Result<Vec<_>>>()?;
        // What a NextToken is bound to: a token from a differently shaped query is refused.
        let query_id = format!(
            "{} {:?} {} {} {:?}",
            p.purpose,
            p.sort,
            p.descending,
            p.include_deleted,
            filters
                .iter()
                .map(|f| (f.key, &f.values))
                .collect::<Vec<_>>()
        );
        let after = match p.next_token {
            Some(t) => Some(
                cursor_from_json(&self.redeem_token(&query_id, t)?)
                    .ok_or_else(super::tokens::invalid)?,
            ),
            None => None,
        };
        let page = self
            .store
            .list_secrets(&ListQuery {
                include_deleted: p.include_deleted,
                filters,
                sort: p.sort,
                descending: p.descending,
                limit: p.limit,
                after,
            })
            .await?;
        let next = page
            .next
            .map(|c| self.issue_token(&query_id, cursor_json(&c)));
        Ok((page.secrets, next))
    }

    pub async fn update_secret(
        &self,
        p: &Caller,
        req: UpdateSecretRequest,
    ) -> Result<SecretVersionResponse> {
        if let Some(d) = &req.description {
            validate_description(d)?;
        }
        let plain = take_value(req.value)?;
        let kms = match &req.kms_key_id {
            Some(k) => {
                let key = self.key_for(Some(k)).await?;
                Some(Some(k.clone()).filter(|_| !key.is_default()))
            }
            None => None,
        };
        let secret = self.resolve_live(p, &req.secret_id).await?;
        if let Some(plain) = plain {
            let target = match &kms {
                Some(k) => k.as_deref(),
                None => secret.kms_key_id.as_deref(),
            };
            let key = self.key_for(target).await?;
            self.authorize_key_use(p, &key, ENCRYPT_ACTION).await?;
            return self
                .write_value(
                    &secret,
                    ValueWrite {
                        token: req.client_request_token,
                        plain,
                        stages: None,
                        description: req.description.as_deref(),
                        kms_key_id: kms,
                    },
                    &p.audit,
                )
                .await;
        }
        let now = self.clock.now();
        self.store
            .modify(
                secret.id,
                &mut |st| {
                    if st.secret.is_scheduled_for_deletion() {
                        return Err(Error::marked_for_deletion());
                    }
                    if let Some(d) = &req.description {
                        st.secret.description = Some(d.clone());
                    }
                    if let Some(k) = &kms {
                        st.secret.kms_key_id = k.clone();
                    }
                    st.secret.changed_at = now;
                    Ok(())
                },
                &p.audit,
            )
            .await?;
        Ok(SecretVersionResponse {
            arn: secret.arn,
            name: secret.name,
            ..Default::default()
        })
    }

    pub async fn delete_secret(
        &self,
        p: &Caller,
        req: DeleteSecretRequest,
    ) -> Result<DeleteSecretResponse> {
        let force = req.force_delete_without_recovery.unwrap_or(false);
        if force && req.recovery_window_in_days.is_some() {
            return Err(Error::invalid_parameter(
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
            ));
        }
        let days = req.recovery_window_in_days.unwrap_or(MAX_RECOVERY_DAYS);
        if !(MIN_RECOVERY_DAYS..=MAX_RECOVERY_DAYS).contains(&days) {
            return Err(Error::invalid_parameter(format!(
                "RecoveryWindowInDays must be between {MIN_RECOVERY_DAYS} and {MAX_RECOVERY_DAYS} days; got {days}."
            )));
        }
        let now = self.clock.now();
        let found = self
            .store
            .find_secret(&SecretRef::parse(&req.secret_id)?)
            .await?;
        let secret = match found {
            Some(s) => s,
            // Deleting what is already gone, without recovery, is not an error.
            None if force => {
                return Ok(DeleteSecretResponse {
                    arn: if req.secret_id.starts_with("arn:") {
                        req.secret_id.clone()
                    } else {
                        format!(
                            "arn:aws:secretsmanager:{}:{}:secret:{}",
                            self.region, self.account, req.secret_id
                        )
                    },
                    name: req.secret_id.clone(),
                    deletion_date: now,
                });
            }
            None => return Err(Error::secret_not_found()),
        };
        if force {
            self.store.delete_secret(secret.id, &p.audit).await?;
            self.emit(Event::SecretDeleted, &secret.arn, &secret.name, None, None)
                .await;
            return Ok(DeleteSecretResponse {
                arn: secret.arn,
                name: secret.name,
                deletion_date: now,
            });
        }
        let state = self
            .store
            .modify(
                secret.id,
                &mut |st| {
                    if st.secret.is_scheduled_for_deletion() {
                        return Err(Error::marked_for_deletion());
                    }
                    st.secret.deleted_at = Some(now);
                    st.secret.purge_at = Some(now.plus_days(days));
                    let e = self.event(
                        Event::SecretScheduledForDeletion,
                        &st.secret.arn,
                        &st.secret.name,
                        None,
                        None,
                    );
                    st.events.push(e);
                    Ok(())
                },
                &p.audit,
            )
            .await?;
        self.announce(&state.events);
        Ok(DeleteSecretResponse {
            arn: secret.arn,
            name: secret.name,
            deletion_date: state.secret.purge_at.unwrap_or(now.plus_days(days)),
        })
    }

    pub async fn restore_secret(
        &self,
        p: &Caller,
        req: SecretIdRequest,
    ) -> Result<SecretVersionResponse> {
        let secret = self.resolve(p, &req.secret_id).await?;
        if secret.is_scheduled_for_deletion() {
            self.store
                .modify(
                    secret.id,
                    &mut |st| {
                        st.secret.deleted_at = None;
                        st.secret.purge_at = None;
                        Ok(())
                    },
                    &p.audit,
                )
                .await?;
        }
        Ok(SecretVersionResponse {
            arn: secret.arn,
            name: secret.name,
            ..Default::default()
        })
    }
}

impl Service {
    /// ReplicateSecretToRegions, RemoveRegionsFromReplication, StopReplicationToReplica.
    pub async fn replication_unavailable(
        &self,
        _p: &Caller,
        _req: SecretIdRequest,
    ) -> Result<Empty> {
        Err(Error::invalid_request(
            "kura does not offer replication to other regions. Run kura nodes in each site against one PostgreSQL instead.",
        ))
    }
}
