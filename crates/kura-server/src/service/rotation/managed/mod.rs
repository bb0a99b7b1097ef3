//! Built-in functions that change a credential inside the system it unlocks: PostgreSQL and
//! MySQL/MariaDB users (single user, or alternating between a user and its `_clone`), and the
//! password or key pair of a user on an SSH server (Alibaba's "ECS secret"). Every step is safe to run again: a step
//! first checks whether its work is already done, so a retry or a resumed rotation is harmless.

mod access_key;

use kura_rotation::functions::managed::ssh::client as ssh;
use kura_rotation::functions::managed::{db, mysql, postgres};

use kura_core::labels;
use kura_core::model::{RotationStep, SecretRecord, ValueKind};
use kura_core::names::SecretRef;
use kura_crypto::{PasswordSpec, generate_password};
use kura_store::VersionSelector;
use serde_json::Value;
use zeroize::Zeroizing;

use self::db::{DbTarget, str_field};
use crate::service::Service;

type Step<T = ()> = std::result::Result<T, String>;

/// The built-in managed rotation functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Managed {
    PostgresSingle,
    PostgresAlternating,
    MysqlSingle,
    MysqlAlternating,
    SshPassword,
    SshKeypair,
    AccessKey,
}

impl Managed {
    pub(crate) const ALL: [Managed; 7] = [
        Managed::PostgresSingle,
        Managed::PostgresAlternating,
        Managed::MysqlSingle,
        Managed::MysqlAlternating,
        Managed::SshPassword,
        Managed::SshKeypair,
        Managed::AccessKey,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Managed::PostgresSingle => "kura-postgres-single-user",
            Managed::PostgresAlternating => "kura-postgres-alternating-users",
            Managed::MysqlSingle => "kura-mysql-single-user",
            Managed::MysqlAlternating => "kura-mysql-alternating-users",
            Managed::SshPassword => "kura-ssh-password",
            Managed::SshKeypair => "kura-ssh-keypair",
            Managed::AccessKey => "kura-access-key",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    fn alternating(self) -> bool {
        matches!(
            self,
            Managed::PostgresAlternating | Managed::MysqlAlternating
        )
    }

    fn is_ssh(self) -> bool {
        matches!(self, Managed::SshPassword | Managed::SshKeypair)
    }

    fn is_postgres(self) -> bool {
        matches!(self, Managed::PostgresSingle | Managed::PostgresAlternating)
    }

    fn default_port(self) -> u16 {
        if self.is_postgres() {
            postgres::DEFAULT_PORT
        } else {
            mysql::DEFAULT_PORT
        }
    }
}

/// The other user of an alternating pair: `app` ↔ `app_clone`.
fn other_user(name: &str) -> String {
    match name.strip_suffix("_clone") {
        Some(base) if !base.is_empty() => base.to_string(),
        _ => format!("{name}_clone"),
    }
}

fn new_password() -> Step<Zeroizing<String>> {
    generate_password(&PasswordSpec::default()).map_err(|e| e.message)
}

impl Service {
    /// Runs one step of a managed function.
    pub(in crate::service::rotation) async fn managed_step(
        &self,
        s: &SecretRecord,
        m: Managed,
        step: RotationStep,
        token: &str,
    ) -> Step {
        if m == Managed::AccessKey {
            return self.access_key_step(s, step, token).await;
        }
        match step {
            RotationStep::CreateSecret => self.managed_create(s, m, token).await,
            RotationStep::SetSecret => self.managed_set(s, m, token).await,
            RotationStep::TestSecret => {
                let pending = self.pending_json(s, token).await?;
                if m.is_ssh() {
                    return ssh::check_login(&ssh::SshTarget::from_json(&pending)?).await;
                }
                self.db_check_login(m, &DbTarget::from_json(&pending, m.default_port())?)
                    .await
            }
            RotationStep::FinishSecret => {
                self.move_current_to(s, token)
                    .await
                    .map_err(|e| e.message)?;
                if m == Managed::SshKeypair {
                    self.remove_previous_key(s, token).await?;
                }
                Ok(())
            }
        }
    }

    /// A version's value as a JSON object; `None` when there is no such version or no value.
    async fn version_json(
        &self,
        s: &SecretRecord,
        which: VersionSelector<'_>,
    ) -> Step<Option<Value>> {
        let Some(plain) = self.version_plain(s, which).await.map_err(|e| e.message)? else {
            return Ok(None);
        };
        if plain.kind() != ValueKind::String {
            return Err(
                "the secret's value is binary; managed rotation needs a JSON object".into(),
            );
        }
        match serde_json::from_slice::<Value>(plain.bytes()) {
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            _ => {
                let which = match which {
                    VersionSelector::Id(id) => format!("version {id}"),
                    VersionSelector::Stage(stage) => format!("the {stage} version"),
                };
                Err(format!(
                    "{which} is not a JSON object (see the README for the fields this function needs)"
                ))
            }
        }
    }

    async fn pending_json(&self, s: &SecretRecord, token: &str) -> Step<Value> {
        self.version_json(s, VersionSelector::Id(token))
            .await?
            .ok_or_else(|| format!("version {token} has no value yet (createSecret has not run)"))
    }

    async fn current_json(&self, s: &SecretRecord) -> Step<Value> {
        self.version_json(s, VersionSelector::Stage(labels::CURRENT))
            .await?
            .ok_or_else(|| "the secret has no AWSCURRENT value to rotate".to_string())
    }

    /// The administrator's secret named by `masterarn` (its AWSCURRENT value).
    async fn master_json(&self, current: &Value) -> Step<Value> {
        let arn = str_field(current, "masterarn").map_err(|e| {
            format!(
                "{e}: alternating users and administrator logins need the administrator's secret"
            )
        })?;
        let r = SecretRef::parse(arn).map_err(|e| format!("masterarn: {}", e.message))?;
        let master = self
            .store
            .find_secret(&r)
            .await
            .map_err(|e| e.message)?
            .filter(|m| !m.is_scheduled_for_deletion())
            .ok_or_else(|| format!("the master secret {arn} does not exist"))?;
        self.current_json(&master)
            .await
            .map_err(|e| format!("master secret {arn}: {e}"))
    }

    async fn managed_create(&self, s: &SecretRecord, m: Managed, token: &str) -> Step {
        if self
            .version_json(s, VersionSelector::Id(token))
            .await?
            .is_some()
        {
            return Ok(()); // done before, or a value staged for this rotation
        }
        let current = self.current_json(s).await?;
        if m.is_ssh() {
            let new = self.ssh_create(s, m, &current).await?;
            return self.store_pending(s, token, &new).await;
        }
        let target = DbTarget::from_json(&current, m.default_port())?;
        let mut new = current.clone();
        let password = new_password()?;
        new["password"] = Value::String(password.to_string());
        if m.alternating() {
            self.master_json(&current).await?;
            let user = other_user(&target.username);
            let limit = if m.is_postgres() { 63 } else { 80 };
            if user.len() > limit {
                return Err(format!(
                    "the user name {user} would be longer than {limit} characters"
                ));
            }
            new["username"] = Value::String(user);
        }
        self.store_pending(s, token, &new).await
    }

    async fn store_pending(&self, s: &SecretRecord, token: &str, value: &Value) -> Step {
        self.store_pending_text(s, token, Zeroizing::new(value.to_string()))
            .await
            .map_err(|e| e.message)
    }

    async fn db_check_login(&self, m: Managed, t: &DbTarget) -> Step {
        if m.is_postgres() {
            postgres::check_login(t).await
        } else {
            mysql::check_login(t).await
        }
    }

    async fn managed_set(&self, s: &SecretRecord, m: Managed, token: &str) -> Step {
        let pending = self.pending_json(s, token).await?;
        if m.is_ssh() {
            return self.ssh_set(s, m, &pending).await;
        }
        let p = DbTarget::from_json(&pending, m.default_port())?;
        let current = self.current_json(s).await?;
        if m.alternating() {
            let admin = DbTarget::from_json(&self.master_json(&current).await?, m.default_port())?;
            if !admin.same_server(&p) {
                return Err(format!(
                    "the master secret is for {}, but the user is on {}",
                    admin.address(),
                    p.address()
                ));
            }
            return if m.is_postgres() {
                let original = p.username.strip_suffix("_clone").filter(|b| !b.is_empty());
                postgres::set_user_password(&admin, &p.username, &p.password, original).await
            } else {
                let template = DbTarget::from_json(&current, m.default_port())?.username;
                mysql::set_user_password(&admin, &p.username, &p.password, &template).await
            };
        }
        // Single user: log in with the current password and change it. When that login fails,
        // a previous attempt may already have set the new one (a retried or resumed step).
        // The pending login is tried only then: failed logins are what lockout tools count.
        let previous = self
            .version_json(s, VersionSelector::Stage(labels::PREVIOUS))
            .await
            .ok()
            .flatten();
        let mut last = String::new();
        for v in std::iter::once(current).chain(previous) {
            let login = DbTarget::from_json(&v, m.default_port())?;
            if login.username != p.username {
                continue;
            }
            let r = if m.is_postgres() {
                postgres::set_own_password(&login, &p.password).await
            } else {
                mysql::set_own_password(&login, &p.password).await
            };
            match r {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            if self.db_check_login(m, &p).await.is_ok() {
                return Ok(());
            }
        }
        Err(if last.is_empty() {
            "neither AWSCURRENT nor AWSPREVIOUS holds a login for this user".into()
        } else {
            last
        })
    }
}

impl Service {
    /// The pending value of a server login: a new password or key pair, the host key pinned.
    async fn ssh_create(&self, s: &SecretRecord, m: Managed, current: &Value) -> Step<Value> {
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
            tracing::warn!(secret = %s.arn, host = %target.host, "trusting the SSH host key on first use and recording it");
            new["host_key"] = Value::String(key);
        }
        match m {
            Managed::SshKeypair => {
                let kind = match current.get("key_type").and_then(Value::as_str) {
                    None | Some("rsa") => ssh::KeyKind::Rsa2048,
                    Some("ed25519") => ssh::KeyKind::Ed25519,
                    Some(other) => {
                        return Err(format!("\"key_type\" {other:?} is not rsa or ed25519"));
                    }
                };
                let (private, public) = ssh::generate_keypair(kind, &format!("kura:{}", s.name))?;
                new["private_key"] = Value::String(private.to_string());
                new["public_key"] = Value::String(public);
            }
            _ => new["password"] = Value::String(new_password()?.to_string()),
        }
        Ok(new)
    }

    /// Who changes the server: the administrator of `masterarn`, else the user itself with the
    /// login in `current`. A host key recorded on first use (in `pending`) pins this login too.
    async fn ssh_admin_or_self(&self, current: &Value, pending: &Value) -> Step<ssh::SshTarget> {
        let mut login = if current.get("masterarn").is_some() {
            ssh::SshTarget::from_json(&self.master_json(current).await?)
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

    async fn ssh_set(&self, s: &SecretRecord, m: Managed, pending: &Value) -> Step {
        let p = ssh::SshTarget::from_json(pending)?;
        let current = self.current_json(s).await?;
        let login = self.ssh_admin_or_self(&current, pending).await?;
        match m {
            // Adding a key that is there already changes nothing: safe to repeat.
            Managed::SshKeypair => {
                let public = str_field(pending, "public_key")?;
                ssh::add_authorized_key(&login, &p.username, public).await
            }
            _ => {
                let password = p
                    .password
                    .as_deref()
                    .ok_or("the pending value has no \"password\"")?;
                match ssh::set_password(&login, &p.username, password).await {
                    Ok(()) => Ok(()),
                    // As the user, a repeated step cannot log in with the old password any
                    // more: the new one working means the step is done. Tried only after a
                    // failure, since failed logins are what lockout tools count.
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
    }

    /// After AWSCURRENT moved to the new key: the old public key leaves authorized_keys.
    async fn remove_previous_key(&self, s: &SecretRecord, token: &str) -> Step {
        let pending = self.pending_json(s, token).await?;
        let Some(previous) = self
            .version_json(s, VersionSelector::Stage(labels::PREVIOUS))
            .await?
        else {
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
            self.ssh_admin_or_self(&pending, &pending).await?
        } else {
            user.clone()
        };
        ssh::remove_authorized_key(&login, &user.username, old).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternating_users_toggle_the_clone_suffix() {
        assert_eq!(other_user("app"), "app_clone");
        assert_eq!(other_user("app_clone"), "app");
        assert_eq!(other_user("_clone"), "_clone_clone");
    }
}
