//! `kura-private-certificate`: a secret whose JSON value names `template`, `common_name` and
//! optionally `alt_names`, `ip_sans`, `ttl`, `rotate_keys` (default true) and
//! `revoke_replaced` (default false) is issued a certificate by kura's own CA on every
//! rotation. The value keeps the request fields and gains `certificate`, `private_key`,
//! `intermediate`, `issuer`, `serial_number`, `expiration_date` and `key_algorithm` (IBM's
//! names). `rotate_keys: false` certifies the current key again.

use kura_core::labels;
use kura_core::model::RotationStep;
use serde_json::Value;
use zeroize::Zeroizing;

use super::target::str_field;
use super::{Step, current_json, move_current, pending_json, store_pending, version_json};
use crate::function::{
    CertificateRequest, IssuedCertificate, Settings, StepContext, StepRequest, VersionRef,
};

pub struct CertificateFunction {
    settings: Settings,
}

impl CertificateFunction {
    pub fn new(settings: Settings) -> Self {
        CertificateFunction { settings }
    }
}

/// A list of strings, absent or null meaning none.
pub(super) fn string_list(v: &Value, field: &str) -> Step<Vec<String>> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{field} must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(format!("{field} must be a list of strings")),
    }
}

pub(super) fn bool_field(v: &Value, field: &str, default: bool) -> Step<bool> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{field} must be true or false")),
    }
}

/// The secret's value `current` with the certificate `issued` (the fields every certificate
/// function writes: IBM's names).
pub(super) fn with_certificate(current: &Value, issued: IssuedCertificate) -> Value {
    let mut new = current.clone();
    new["certificate"] = Value::String(issued.certificate);
    new["private_key"] = Value::String(issued.private_key.to_string());
    new["intermediate"] = Value::String(issued.intermediate);
    new["issuer"] = Value::String(issued.issuer);
    new["serial_number"] = Value::String(issued.serial_number);
    new["expiration_date"] = Value::String(issued.expiration_date);
    new["key_algorithm"] = Value::String(issued.key_algorithm);
    new
}

/// testSecret: the pending value holds a certificate and its key.
pub(super) async fn test_certificate(ctx: &dyn StepContext, req: &StepRequest<'_>) -> Step {
    let pending = pending_json(ctx, req).await?;
    for field in ["certificate", "private_key", "serial_number", "issuer"] {
        str_field(&pending, field)?;
    }
    Ok(())
}

async fn step(ctx: &dyn StepContext, req: &StepRequest<'_>) -> Step {
    match req.step {
        RotationStep::CreateSecret => {
            if version_json(ctx, req, VersionRef::Pending).await?.is_some() {
                return Ok(());
            }
            let current = current_json(ctx, req).await?;
            let template = str_field(&current, "template")?;
            let common_name = str_field(&current, "common_name")?;
            let alt_names = string_list(&current, "alt_names")?;
            let ip_sans = string_list(&current, "ip_sans")?;
            let ttl = match current.get("ttl") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(_) => return Err("ttl must be a duration such as \"90d\" or \"720h\"".into()),
            };
            // The first rotation has no key yet: it makes one whatever rotate_keys says.
            let private_key = match (
                bool_field(&current, "rotate_keys", true)?,
                current.get("private_key"),
            ) {
                (false, Some(Value::String(k))) if !k.is_empty() => Some(Zeroizing::new(k.clone())),
                _ => None,
            };
            let issued = ctx
                .issue_certificate(CertificateRequest {
                    template,
                    common_name,
                    alt_names: &alt_names,
                    ip_sans: &ip_sans,
                    ttl,
                    private_key,
                })
                .await
                .map_err(|e| e.message)?;
            store_pending(ctx, &with_certificate(&current, issued)).await
        }
        // The certificate is kura's own: nothing outside to set.
        RotationStep::SetSecret => Ok(()),
        RotationStep::TestSecret => test_certificate(ctx, req).await,
        RotationStep::FinishSecret => {
            move_current(ctx).await?;
            let pending = pending_json(ctx, req).await?;
            if !bool_field(&pending, "revoke_replaced", false)? {
                return Ok(());
            }
            let Some(previous) =
                version_json(ctx, req, VersionRef::Stage(labels::PREVIOUS)).await?
            else {
                return Ok(());
            };
            // A value from before the first rotation has no certificate to revoke.
            let (Ok(issuer), Ok(serial)) = (
                str_field(&previous, "issuer"),
                str_field(&previous, "serial_number"),
            ) else {
                return Ok(());
            };
            if serial == str_field(&pending, "serial_number")? {
                return Ok(());
            }
            ctx.revoke_certificate(issuer, serial)
                .await
                .map_err(|e| e.message)
        }
    }
}

managed_function!(CertificateFunction, |_function, ctx, req| step(ctx, req));
