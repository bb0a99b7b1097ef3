//! `kura-acme-certificate`: a secret whose JSON value names `directory_url`, `email`,
//! `common_name`, optionally `alt_names`, `challenge` (`dns-01` or `http-01`), `rotate_keys`
//! (default true), `directory_ca` and, for dns-01, `dns_provider` is issued a certificate by
//! an ACME server (RFC 8555) on every rotation. The value keeps the request fields and gains
//! the fields `kura-private-certificate` adds (`certificate`, `private_key`, `intermediate`,
//! `issuer`, `serial_number`, `expiration_date`, `key_algorithm`), so whatever treats a
//! certificate secret reads both alike. The order itself is kura's (the account, the
//! challenges): see [`StepContext::order_acme_certificate`].

use kura_core::model::RotationStep;
use serde_json::Value;
use zeroize::Zeroizing;

use super::certificate::{bool_field, string_list, test_certificate, with_certificate};
use super::target::str_field;
use super::{Step, current_json, move_current, store_pending, version_json};
use crate::function::{AcmeChallenge, AcmeRequest, Settings, StepContext, StepRequest, VersionRef};

pub struct AcmeFunction {
    settings: Settings,
}

impl AcmeFunction {
    pub fn new(settings: Settings) -> Self {
        AcmeFunction { settings }
    }
}

/// An optional string field; `what` says what it must be.
fn opt_str<'a>(v: &'a Value, field: &str, what: &str) -> Step<Option<&'a str>> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.as_str())),
        Some(_) => Err(format!("{field} must be {what}")),
    }
}

/// The names to certify: the common name first, then the alt_names not already named.
fn names(current: &Value) -> Step<Vec<String>> {
    let common_name = str_field(current, "common_name")?.to_ascii_lowercase();
    let mut names = vec![common_name];
    for n in string_list(current, "alt_names")? {
        let n = n.to_ascii_lowercase();
        if !names.contains(&n) {
            names.push(n);
        }
    }
    Ok(names)
}

async fn step(ctx: &dyn StepContext, req: &StepRequest<'_>) -> Step {
    match req.step {
        RotationStep::CreateSecret => {
            if version_json(ctx, req, VersionRef::Pending).await?.is_some() {
                return Ok(());
            }
            let current = current_json(ctx, req).await?;
            let directory_url = str_field(&current, "directory_url")?;
            let email = str_field(&current, "email")?;
            let names = names(&current)?;
            let challenge = match str_field(&current, "challenge")? {
                "dns-01" => AcmeChallenge::Dns01,
                "http-01" => AcmeChallenge::Http01,
                other => {
                    return Err(format!(
                        "challenge {other:?} is not one kura answers: use \"dns-01\" or \"http-01\""
                    ));
                }
            };
            let dns_provider = opt_str(
                &current,
                "dns_provider",
                "the name of a command or webhook rotation function",
            )?;
            if challenge == AcmeChallenge::Dns01 && dns_provider.is_none() {
                return Err(
                    "dns-01 needs dns_provider: the name of a command or webhook rotation function that sets and removes the TXT records"
                        .into(),
                );
            }
            let directory_ca = opt_str(
                &current,
                "directory_ca",
                "the PEM certificate of the CA that signed the ACME server's HTTPS certificate",
            )?;
            // The first rotation has no key yet: it makes one whatever rotate_keys says.
            let private_key = match (
                bool_field(&current, "rotate_keys", true)?,
                current.get("private_key"),
            ) {
                (false, Some(Value::String(k))) if !k.is_empty() => Some(Zeroizing::new(k.clone())),
                _ => None,
            };
            let issued = ctx
                .order_acme_certificate(AcmeRequest {
                    directory_url,
                    email,
                    names: &names,
                    challenge,
                    dns_provider,
                    directory_ca,
                    private_key,
                })
                .await
                .map_err(|e| e.message)?;
            store_pending(ctx, &with_certificate(&current, issued)).await
        }
        // The ACME server issued it; nothing outside to set.
        RotationStep::SetSecret => Ok(()),
        RotationStep::TestSecret => test_certificate(ctx, req).await,
        RotationStep::FinishSecret => move_current(ctx).await,
    }
}

managed_function!(AcmeFunction, |_function, ctx, req| step(ctx, req));
