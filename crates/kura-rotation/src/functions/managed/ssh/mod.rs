//! `kura-ssh-password` and `kura-ssh-keypair`: a user's password, or a key pair in its
//! `authorized_keys`, on an SSH server, changed by the user itself or by the administrator of
//! the secret's `masterarn`. The SSH protocol work is in `client.rs`.

mod client;

use kura_core::labels;
use kura_core::model::RotationStep;
use serde_json::Value;

use self::client as ssh;
use super::target::str_field;
use super::{
    Step, current_json, master_json, move_current, new_password, pending_json, store_pending,
    version_json,
};
use crate::function::{Settings, StepContext, StepRequest, VersionRef};

pub struct SshFunction {
    settings: Settings,
    /// A key pair rather than a password.
    keypair: bool,
}

impl SshFunction {
    pub fn new(settings: Settings, keypair: bool) -> Self {
        SshFunction { settings, keypair }
    }

    async fn step(&self, ctx: &dyn StepContext, req: &StepRequest<'_>) -> Step {
        match req.step {
            RotationStep::CreateSecret => {
                if version_json(ctx, req, VersionRef::Pending).await?.is_some() {
                    return Ok(()); // done before, or a value staged for this rotation
                }
                let current = current_json(ctx, req).await?;
                let new = self.create(req, &current).await?;
                store_pending(ctx, &new).await
            }
            RotationStep::SetSecret => {
                let pending = pending_json(ctx, req).await?;
                self.set(ctx, req, &pending).await
            }
            RotationStep::TestSecret => {
                let pending = pending_json(ctx, req).await?;
                ssh::check_login(&ssh::SshTarget::from_json(&pending)?).await
            }
            RotationStep::FinishSecret => {
                move_current(ctx).await?;
                if self.keypair {
                    remove_previous_key(ctx, req).await?;
                }
                Ok(())
            }
        }
    }

    /// The pending value of a server login: a new password or key pair, the host key pinned.
    async fn create(&self, req: &StepRequest<'_>, current: &Value) -> Step<Value> {
        let target = ssh::SshTarget::from_json(current)?;
        let mut new = current.clone();
        if target.host_key.is_none() {
            if current.get("trust_on_first_use") != Some(&Value::Bool(true)) {
                return Err(format!(
                    "the secret pins no \"host_key\": add the server's key (ssh-keyscan -p {} {}), or set \"trust_on_first_use\": true to record the key the server presents now",
                    target.port, target.host
                ));
            }
            let key = ssh::fetch_host_key(&target.host, target.port).await?;
            tracing::warn!(secret = %req.secret_arn, host = %target.host, "trusting the SSH host key on first use and recording it");
            new["host_key"] = Value::String(key);
        }
        if self.keypair {
            let kind = match current.get("key_type").and_then(Value::as_str) {
                None | Some("rsa") => ssh::KeyKind::Rsa2048,
                Some("ed25519") => ssh::KeyKind::Ed25519,
                Some(other) => {
                    return Err(format!("\"key_type\" {other:?} is not rsa or ed25519"));
                }
            };
            let (private, public) =
                ssh::generate_keypair(kind, &format!("kura:{}", req.secret_name))?;
            new["private_key"] = Value::String(private.to_string());
            new["public_key"] = Value::String(public);
        } else {
            new["password"] = Value::String(new_password()?.to_string());
        }
        Ok(new)
    }

    async fn set(&self, ctx: &dyn StepContext, req: &StepRequest<'_>, pending: &Value) -> Step {
        let p = ssh::SshTarget::from_json(pending)?;
        let current = current_json(ctx, req).await?;
        let login = admin_or_self(ctx, &current, pending).await?;
        if self.keypair {
            // Adding a key that is there already changes nothing: safe to repeat.
            let public = str_field(pending, "public_key")?;
            return ssh::add_authorized_key(&login, &p.username, public).await;
        }
        let password = p
            .password
            .as_deref()
            .ok_or("the pending value has no \"password\"")?;
        match ssh::set_password(&login, &p.username, password).await {
            Ok(()) => Ok(()),
            // As the user, a repeated step cannot log in with the old password any more: the
            // new one working means the step is done. Tried only after a failure, since
            // failed logins are what lockout tools count.
            Err(e) if login.username == p.username => {
                if ssh::check_login(&p).await.is_ok() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// Who changes the server: the administrator of `masterarn`, else the user itself with the
/// login in `current`. A host key recorded on first use (in `pending`) pins this login too.
async fn admin_or_self(
    ctx: &dyn StepContext,
    current: &Value,
    pending: &Value,
) -> Step<ssh::SshTarget> {
    let mut login = if current.get("masterarn").is_some() {
        ssh::SshTarget::from_json(&master_json(ctx, current).await?)
            .map_err(|e| format!("master secret: {e}"))?
    } else {
        ssh::SshTarget::from_json(current)?
    };
    let p = ssh::SshTarget::from_json(pending)?;
    if login.host_key.is_none() && login.host == p.host && login.port == p.port {
        login.host_key = p.host_key;
    }
    Ok(login)
}

/// After AWSCURRENT moved to the new key: the old public key leaves authorized_keys.
async fn remove_previous_key(ctx: &dyn StepContext, req: &StepRequest<'_>) -> Step {
    let pending = pending_json(ctx, req).await?;
    let Some(previous) = version_json(ctx, req, VersionRef::Stage(labels::PREVIOUS)).await? else {
        return Ok(());
    };
    let Some(old) = previous.get("public_key").and_then(Value::as_str) else {
        return Ok(()); // no public key recorded for the old login: nothing to remove
    };
    if Some(old) == pending.get("public_key").and_then(Value::as_str) {
        return Ok(());
    }
    let user = ssh::SshTarget::from_json(&pending)?;
    let login = if pending.get("masterarn").is_some() {
        admin_or_self(ctx, &pending, &pending).await?
    } else {
        user.clone()
    };
    ssh::remove_authorized_key(&login, &user.username, old).await
}

managed_function!(SshFunction, |function, ctx, req| function.step(ctx, req));
