//! A database login as AWS's rotation templates store it:
//! `{"engine","host","port","username","password","dbname","masterarn","ssl"}`.

use kura_core::labels;
use kura_core::model::RotationStep;
use serde_json::Value;
use zeroize::Zeroizing;

use super::{
    Step, current_json, failure, master_json, move_current, mysql, new_password, pending_json,
    postgres, store_pending, version_json,
};
use crate::function::{
    RotationFunction, Settings, StepContext, StepFailure, StepFuture, StepRequest, VersionRef,
};

pub struct DbTarget {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Zeroizing<String>,
    pub dbname: Option<String>,
    /// Absent: TLS if the server offers it, else plain; true: TLS only; false: plain only.
    pub ssl: Option<bool>,
}

impl std::fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("dbname", &self.dbname)
            .finish_non_exhaustive()
    }
}

pub fn str_field<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    match v.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(format!(
            "the secret's \"{field}\" must be a non-empty string"
        )),
        None => Err(format!("the secret has no \"{field}\" field")),
    }
}

pub fn port_field(v: &Value, default: u16) -> Result<u16, String> {
    match v.get("port") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("the secret's \"port\" {n} is not a TCP port")),
        // AWS's templates accept the port as a string too.
        Some(Value::String(s)) => s
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("the secret's \"port\" {s:?} is not a TCP port")),
        Some(_) => Err("the secret's \"port\" must be a number".into()),
    }
}

impl DbTarget {
    pub fn from_json(v: &Value, default_port: u16) -> Result<Self, String> {
        let ssl = match v.get("ssl") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            Some(_) => return Err("the secret's \"ssl\" must be true or false".into()),
        };
        let dbname = match v.get("dbname") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => return Err("the secret's \"dbname\" must be a non-empty string".into()),
        };
        Ok(DbTarget {
            host: str_field(v, "host")?.to_string(),
            port: port_field(v, default_port)?,
            username: str_field(v, "username")?.to_string(),
            password: Zeroizing::new(str_field(v, "password")?.to_string()),
            dbname,
            ssl,
        })
    }

    /// `host:port`, as errors name the system.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The same server and database as `other`, with this login.
    pub fn same_server(&self, other: &DbTarget) -> bool {
        self.host == other.host && self.port == other.port
    }
}

/// A sqlx error as a message for LastError: the server's own words for database errors
/// (they name roles, never passwords), the OS error for connection failures.
pub fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".into()
        }
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(t) => format!("TLS: {t}"),
        sqlx::Error::PoolTimedOut => "timed out".into(),
        other => other.to_string(),
    }
}

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

impl RotationFunction for DatabaseFunction {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn run_step<'a>(
        &'a self,
        ctx: &'a dyn StepContext,
        req: StepRequest<'a>,
    ) -> StepFuture<'a, std::result::Result<(), StepFailure>> {
        Box::pin(async move {
            self.step(ctx, &req)
                .await
                .map_err(|e| failure(&self.settings, e))
        })
    }
}

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
