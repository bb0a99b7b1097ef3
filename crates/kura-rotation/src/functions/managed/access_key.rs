//! `kura-access-key`: rotates a kura user's access key, the secret being
//! `{"UserName", "AccessKeyId", "SecretAccessKey"}` and optionally `key_ttl` and
//! `previous_key_ttl` (durations such as `"30d"`, `"24h"` or `"3600s"`). createSecret makes a
//! second key (expiring `key_ttl` from then, if set), testSecret proves it with a signed call to
//! kura itself, finishSecret moves AWSCURRENT and then deactivates and deletes the old key, or
//! with `previous_key_ttl` leaves it working until that long from then (IBM's IAM credentials:
//! the previous key stays valid for the rest of its TTL).

use kura_core::ErrorCode;
use kura_core::labels;
use kura_core::model::RotationStep;
use kura_iam::sigv4;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::target::str_field;
use super::{Step, current_json, move_current, pending_json, store_pending, version_json};
use crate::function::{Settings, StepContext, StepRequest, VersionRef};

pub struct AccessKeyFunction {
    settings: Settings,
}

impl AccessKeyFunction {
    pub fn new(settings: Settings) -> Self {
        AccessKeyFunction { settings }
    }
}

/// A duration field of the secret's value, in seconds; `None` when absent.
fn ttl_field(v: &Value, field: &str) -> Step<Option<i64>> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => kura_core::duration::parse_duration(field, s)
            .map(Some)
            .map_err(|e| e.message),
        Some(_) => Err(format!(
            "the secret's \"{field}\" must be a duration such as \"30d\", \"24h\" or \"3600s\""
        )),
    }
}

/// The lifetime of the keys this secret's rotation makes (`key_ttl`), in seconds.
pub fn key_ttl_of(value: &Value) -> std::result::Result<Option<i64>, String> {
    ttl_field(value, "key_ttl")
}

async fn step(ctx: &dyn StepContext, req: &StepRequest<'_>) -> Step {
    match req.step {
        RotationStep::CreateSecret => {
            if version_json(ctx, req, VersionRef::Pending).await?.is_some() {
                return Ok(());
            }
            let current = current_json(ctx, req).await?;
            let key_ttl = key_ttl_of(&current)?;
            let keeps_previous = ttl_field(&current, "previous_key_ttl")?.is_some();
            let user = str_field(&current, "UserName")?;
            let user = ctx
                .find_user(user)
                .await
                .map_err(|e| e.message)?
                .ok_or_else(|| format!("the user {user} does not exist in kura"))?;
            let (id, secret) = ctx
                .create_access_key(&user, key_ttl)
                .await
                .map_err(|e| match e.code {
                    ErrorCode::LimitExceeded => format!(
                        "the user {user} already has {} access keys; delete the one that is not {} so rotation can create a new one{}",
                        kura_iam::MAX_ACCESS_KEYS_PER_USER,
                        str_field(&current, "AccessKeyId").unwrap_or("the current one"),
                        if keeps_previous {
                            " (with previous_key_ttl the replaced key counts until it expires: rotate less often than previous_key_ttl)"
                        } else {
                            ""
                        }
                    ),
                    _ => e.message,
                })?;
            let mut new = current.clone();
            new["AccessKeyId"] = Value::String(id.clone());
            new["SecretAccessKey"] = Value::String(secret.to_string());
            if let Err(e) = store_pending(ctx, &new).await {
                // Without the pending value nobody knows the key: do not leave it behind.
                let _ = ctx.delete_access_key(&id).await;
                return Err(e);
            }
            Ok(())
        }
        RotationStep::SetSecret => Ok(()), // the key exists in kura since createSecret
        RotationStep::TestSecret => {
            let pending = pending_json(ctx, req).await?;
            prove_key(ctx, &pending).await
        }
        RotationStep::FinishSecret => {
            move_current(ctx).await?;
            let pending = pending_json(ctx, req).await?;
            let Some(previous) =
                version_json(ctx, req, VersionRef::Stage(labels::PREVIOUS)).await?
            else {
                return Ok(());
            };
            let old = str_field(&previous, "AccessKeyId")?;
            if old == str_field(&pending, "AccessKeyId")? {
                return Ok(());
            }
            let user = str_field(&pending, "UserName")?;
            let keep_for = ttl_field(&pending, "previous_key_ttl")?;
            match (
                ctx.access_key_owner(old).await.map_err(|e| e.message)?,
                keep_for,
            ) {
                (Some(owner), Some(ttl)) if owner == user => {
                    ctx.expire_access_key(old, ttl)
                        .await
                        .map_err(|e| e.message)?;
                    tracing::info!(
                        user,
                        access_key_id = old,
                        expires_in = %kura_core::duration::show_duration(ttl),
                        "old access key kept working until previous_key_ttl after rotation"
                    );
                }
                (Some(owner), None) if owner == user => {
                    ctx.deactivate_access_key(old)
                        .await
                        .map_err(|e| e.message)?;
                    ctx.delete_access_key(old).await.map_err(|e| e.message)?;
                    tracing::info!(
                        user,
                        access_key_id = old,
                        "old access key deactivated and deleted after rotation"
                    );
                }
                (Some(_), _) => {
                    return Err(format!(
                        "the old key {old} belongs to another user; not deleting it"
                    ));
                }
                (None, _) => {} // deleted by an earlier run of this step
            }
            Ok(())
        }
    }
}

/// A signed Kura.GetCallerIdentity with the new key, over HTTP to this server.
async fn prove_key(ctx: &dyn StepContext, pending: &Value) -> Step {
    let id = str_field(pending, "AccessKeyId")?;
    let secret = Zeroizing::new(str_field(pending, "SecretAccessKey")?.to_string());
    let user = str_field(pending, "UserName")?;
    let endpoint = ctx
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
        ctx.region(),
        chrono::Utc::now(),
    )
    .map_err(|e| format!("signing the test call: {e}"))?;
    let mut request = ctx.http().post(url);
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

managed_function!(AccessKeyFunction, |_function, ctx, req| step(ctx, req));
