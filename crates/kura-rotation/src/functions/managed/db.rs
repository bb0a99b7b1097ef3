//! A database login as AWS's rotation templates store it:
//! `{"engine","host","port","username","password","dbname","masterarn","ssl"}`.

use kura_core::labels;
use kura_core::model::RotationStep;
use serde_json::Value;

use super::target::DbTarget;
use super::{
    Step, current_json, master_json, move_current, mysql, new_password, pending_json, postgres,
    store_pending, version_json,
};
use crate::function::{Settings, StepContext, StepRequest, VersionRef};

/// Which database server a function rotates users of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Mysql,
}

impl Engine {
    fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => postgres::DEFAULT_PORT,
            Engine::Mysql => mysql::DEFAULT_PORT,
        }
    }

    /// The longest user name the server takes.
    fn max_user_len(self) -> usize {
        match self {
            Engine::Postgres => 63,
            Engine::Mysql => 80,
        }
    }

    async fn check_login(self, t: &DbTarget) -> Step {
        match self {
            Engine::Postgres => postgres::check_login(t).await,
            Engine::Mysql => mysql::check_login(t).await,
        }
    }

    async fn set_own_password(self, login: &DbTarget, new_password: &str) -> Step {
        match self {
            Engine::Postgres => postgres::set_own_password(login, new_password).await,
            Engine::Mysql => mysql::set_own_password(login, new_password).await,
        }
    }
}

/// `kura-postgres-*` and `kura-mysql-*`: a database user's password, changed by the user
/// itself (single user) or, alternating between `app` and `app_clone`, by the administrator
/// of the secret's `masterarn`.
pub struct DatabaseFunction {
    settings: Settings,
    engine: Engine,
    alternating: bool,
}

impl DatabaseFunction {
    pub fn new(settings: Settings, engine: Engine, alternating: bool) -> Self {
        DatabaseFunction {
            settings,
            engine,
            alternating,
        }
    }

    fn target(&self, v: &Value) -> Step<DbTarget> {
        DbTarget::from_json(v, self.engine.default_port())
    }

    async fn step(&self, ctx: &dyn StepContext, req: &StepRequest<'_>) -> Step {
        match req.step {
            RotationStep::CreateSecret => self.create(ctx, req).await,
            RotationStep::SetSecret => self.set(ctx, req).await,
            RotationStep::TestSecret => {
                let pending = pending_json(ctx, req).await?;
                self.engine.check_login(&self.target(&pending)?).await
            }
            RotationStep::FinishSecret => move_current(ctx).await,
        }
    }

    async fn create(&self, ctx: &dyn StepContext, req: &StepRequest<'_>) -> Step {
        if version_json(ctx, req, VersionRef::Pending).await?.is_some() {
            return Ok(()); // done before, or a value staged for this rotation
        }
        let current = current_json(ctx, req).await?;
        let target = self.target(&current)?;
        let mut new = current.clone();
        let password = new_password()?;
        new["password"] = Value::String(password.to_string());
        if self.alternating {
            master_json(ctx, &current).await?;
            let user = other_user(&target.username);
            let limit = self.engine.max_user_len();
            if user.len() > limit {
                return Err(format!(
                    "the user name {user} would be longer than {limit} characters"
                ));
            }
            new["username"] = Value::String(user);
        }
        store_pending(ctx, &new).await
    }

    async fn set(&self, ctx: &dyn StepContext, req: &StepRequest<'_>) -> Step {
        let pending = pending_json(ctx, req).await?;
        let p = self.target(&pending)?;
        let current = current_json(ctx, req).await?;
        if self.alternating {
            let admin = self.target(&master_json(ctx, &current).await?)?;
            if !admin.same_server(&p) {
                return Err(format!(
                    "the master secret is for {}, but the user is on {}",
                    admin.address(),
                    p.address()
                ));
            }
            return match self.engine {
                Engine::Postgres => {
                    let original = p.username.strip_suffix("_clone").filter(|b| !b.is_empty());
                    postgres::set_user_password(&admin, &p.username, &p.password, original).await
                }
                Engine::Mysql => {
                    let template = self.target(&current)?.username;
                    mysql::set_user_password(&admin, &p.username, &p.password, &template).await
                }
            };
        }
        // Single user: log in with the current password and change it. When that login fails,
        // a previous attempt may already have set the new one (a retried or resumed step).
        // The pending login is tried only then: failed logins are what lockout tools count.
        let previous = version_json(ctx, req, VersionRef::Stage(labels::PREVIOUS))
            .await
            .ok()
            .flatten();
        let mut last = String::new();
        for v in std::iter::once(current).chain(previous) {
            let login = self.target(&v)?;
            if login.username != p.username {
                continue;
            }
            match self.engine.set_own_password(&login, &p.password).await {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            if self.engine.check_login(&p).await.is_ok() {
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

managed_function!(DatabaseFunction, |function, ctx, req| function
    .step(ctx, req));

/// The other user of an alternating pair: `app` ↔ `app_clone`.
fn other_user(name: &str) -> String {
    match name.strip_suffix("_clone") {
        Some(base) if !base.is_empty() => base.to_string(),
        _ => format!("{name}_clone"),
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
