//! Built-in functions that change a credential inside the system it unlocks: PostgreSQL and
//! MySQL/MariaDB users (single user, or alternating between a user and its `_clone`) in
//! `db.rs`, the password or key pair of a user on an SSH server (Alibaba's "ECS secret") in
//! `ssh/`, and a kura user's own access key in `access_key.rs`. Every step is safe to run again:
//! a step first checks whether its work is already done, so a retry or a resumed rotation is
//! harmless. `certificate.rs` (`kura-private-certificate`) is built in the same way, its
//! "system" being kura's own certificate authorities, and `acme.rs` (`kura-acme-certificate`)
//! too, its system an ACME certificate authority.

/// `RotationFunction` for a managed function whose `settings` field is its settings and whose
/// steps are `call` (`|function, ctx, req| …`, a future of a [`Step`]); a step's error text
/// becomes a failure under those settings.
macro_rules! managed_function {
    ($ty:ty, |$this:ident, $ctx:ident, $req:ident| $call:expr) => {
        impl $crate::function::RotationFunction for $ty {
            fn settings(&self) -> &$crate::function::Settings {
                &self.settings
            }

            fn run_step<'a>(
                &'a self,
                ctx: &'a dyn $crate::function::StepContext,
                req: $crate::function::StepRequest<'a>,
            ) -> $crate::function::StepFuture<
                'a,
                std::result::Result<(), $crate::function::StepFailure>,
            > {
                Box::pin(async move {
                    let ($this, $ctx, $req) = (self, ctx, &req);
                    $call
                        .await
                        .map_err(|e| $crate::functions::managed::failure(&self.settings, e))
                })
            }
        }
    };
}

mod access_key;
mod acme;
mod certificate;
mod db;
mod mysql;
mod postgres;
mod ssh;
mod target;

pub use access_key::key_ttl_of;

use kura_core::ErrorCode;
use kura_core::labels;
use kura_core::model::ValueKind;
use kura_core::names::SecretRef;
use kura_crypto::{PasswordSpec, Plain, generate_password};
use serde_json::Value;
use zeroize::Zeroizing;

use self::target::str_field;
use crate::function::{
    RotationFunction, Settings, StepContext, StepFailure, StepRequest, VersionRef,
};

/// What a managed step reports: its failure's text may quote the target system.
type Step<T = ()> = std::result::Result<T, String>;

/// The built-in managed rotation functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Managed {
    PostgresSingle,
    PostgresAlternating,
    MysqlSingle,
    MysqlAlternating,
    SshPassword,
    SshKeypair,
    AccessKey,
    PrivateCertificate,
    AcmeCertificate,
}

impl Managed {
    pub const ALL: [Managed; 9] = [
        Managed::PostgresSingle,
        Managed::PostgresAlternating,
        Managed::MysqlSingle,
        Managed::MysqlAlternating,
        Managed::SshPassword,
        Managed::SshKeypair,
        Managed::AccessKey,
        Managed::PrivateCertificate,
        Managed::AcmeCertificate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Managed::PostgresSingle => "kura-postgres-single-user",
            Managed::PostgresAlternating => "kura-postgres-alternating-users",
            Managed::MysqlSingle => "kura-mysql-single-user",
            Managed::MysqlAlternating => "kura-mysql-alternating-users",
            Managed::SshPassword => "kura-ssh-password",
            Managed::SshKeypair => "kura-ssh-keypair",
            Managed::AccessKey => "kura-access-key",
            Managed::PrivateCertificate => "kura-private-certificate",
            Managed::AcmeCertificate => "kura-acme-certificate",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the function issues certificates: each rotation writes `expiration_date`
    /// (RFC 3339) into the value, which becomes the secret's expiration, and a secret it
    /// rotates without RotationRules is renewed before that date.
    pub fn issues_certificates(self) -> bool {
        matches!(self, Managed::PrivateCertificate | Managed::AcmeCertificate)
    }

    /// The function itself, running with `settings`.
    pub fn function(self, settings: Settings) -> Box<dyn RotationFunction> {
        use db::{DatabaseFunction, Engine};
        match self {
            Managed::PostgresSingle => {
                Box::new(DatabaseFunction::new(settings, Engine::Postgres, false))
            }
            Managed::PostgresAlternating => {
                Box::new(DatabaseFunction::new(settings, Engine::Postgres, true))
            }
            Managed::MysqlSingle => Box::new(DatabaseFunction::new(settings, Engine::Mysql, false)),
            Managed::MysqlAlternating => {
                Box::new(DatabaseFunction::new(settings, Engine::Mysql, true))
            }
            Managed::SshPassword => Box::new(ssh::SshFunction::new(settings, false)),
            Managed::SshKeypair => Box::new(ssh::SshFunction::new(settings, true)),
            Managed::AccessKey => Box::new(access_key::AccessKeyFunction::new(settings)),
            Managed::PrivateCertificate => {
                Box::new(certificate::CertificateFunction::new(settings))
            }
            Managed::AcmeCertificate => Box::new(acme::AcmeFunction::new(settings)),
        }
    }
}

/// A step's failure: whatever it reports may quote the system it talked to.
fn failure(settings: &Settings, text: String) -> StepFailure {
    StepFailure::of(&settings.name, text)
}

fn new_password() -> Step<Zeroizing<String>> {
    generate_password(&PasswordSpec::default()).map_err(|e| e.message)
}

/// A value as a JSON object; `which` names it in errors.
fn json_object(plain: &Plain, which: impl FnOnce() -> String) -> Step<Value> {
    if plain.kind() != ValueKind::String {
        return Err("the secret's value is binary; managed rotation needs a JSON object".into());
    }
    match serde_json::from_slice::<Value>(plain.bytes()) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(format!(
            "{} is not a JSON object (see the README for the fields this function needs)",
            which()
        )),
    }
}

/// A version's value as a JSON object; `None` when there is no such version or no value.
async fn version_json(
    ctx: &dyn StepContext,
    req: &StepRequest<'_>,
    which: VersionRef<'_>,
) -> Step<Option<Value>> {
    let Some(plain) = ctx.read_version(which).await.map_err(|e| e.message)? else {
        return Ok(None);
    };
    json_object(&plain, || match which {
        VersionRef::Pending => format!("version {}", req.token),
        VersionRef::Stage(stage) => format!("the {stage} version"),
    })
    .map(Some)
}

async fn pending_json(ctx: &dyn StepContext, req: &StepRequest<'_>) -> Step<Value> {
    version_json(ctx, req, VersionRef::Pending)
        .await?
        .ok_or_else(|| {
            format!(
                "version {} has no value yet (createSecret has not run)",
                req.token
            )
        })
}

const NO_CURRENT: &str = "the secret has no AWSCURRENT value to rotate";

async fn current_json(ctx: &dyn StepContext, req: &StepRequest<'_>) -> Step<Value> {
    version_json(ctx, req, VersionRef::Stage(labels::CURRENT))
        .await?
        .ok_or_else(|| NO_CURRENT.to_string())
}

/// The administrator's secret named by `masterarn` (its AWSCURRENT value).
async fn master_json(ctx: &dyn StepContext, current: &Value) -> Step<Value> {
    let arn = str_field(current, "masterarn").map_err(|e| {
        format!("{e}: alternating users and administrator logins need the administrator's secret")
    })?;
    let r = SecretRef::parse(arn).map_err(|e| format!("masterarn: {}", e.message))?;
    let plain = match ctx.read_other_secret(&r).await {
        Ok(p) => p,
        Err(e) if e.code == ErrorCode::ResourceNotFound => {
            return Err(format!("the master secret {arn} does not exist"));
        }
        Err(e) => return Err(e.message),
    };
    let plain = plain.ok_or_else(|| format!("master secret {arn}: {NO_CURRENT}"))?;
    json_object(&plain, || format!("the {} version", labels::CURRENT))
        .map_err(|e| format!("master secret {arn}: {e}"))
}

/// createSecret's write of a JSON value.
async fn store_pending(ctx: &dyn StepContext, value: &Value) -> Step {
    let text = Zeroizing::new(value.to_string());
    ctx.stage_pending(Plain::text(&text))
        .await
        .map_err(|e| e.message)
}

async fn move_current(ctx: &dyn StepContext) -> Step {
    ctx.move_current_to_pending().await.map_err(|e| e.message)
}
