//! `kura-password`: a new password in createSecret (the whole value, or the `password` field of
//! a JSON object), nothing to set or test elsewhere, AWSCURRENT moved in finishSecret. Every
//! step is safe to repeat.

use kura_core::labels;
use kura_core::model::{RotationStep, ValueKind};
use kura_core::{Error, Result};
use kura_crypto::{PasswordSpec, Plain, generate_password};
use zeroize::Zeroizing;

use crate::function::{
    RotationFunction, Settings, StepContext, StepFailure, StepFuture, StepRequest, VersionRef,
};

/// The built-in function's name.
pub const NAME: &str = "kura-password";

pub struct PasswordFunction {
    settings: Settings,
    spec: PasswordSpec,
}

impl PasswordFunction {
    pub fn new(settings: Settings, spec: PasswordSpec) -> Self {
        PasswordFunction { settings, spec }
    }

    async fn step(&self, ctx: &dyn StepContext, req: StepRequest<'_>) -> Result<()> {
        let pending_has_value = ctx.read_version(VersionRef::Pending).await?.is_some();
        match req.step {
            RotationStep::CreateSecret if pending_has_value => Ok(()),
            RotationStep::CreateSecret => {
                let password = generate_password(&self.spec)?;
                let current = ctx.read_version(VersionRef::Stage(labels::CURRENT)).await?;
                let text = match current {
                    Some(p) if p.kind() == ValueKind::Binary => {
                        return Err(Error::invalid_request(
                            "kura-password rotates text secrets; this secret's value is binary",
                        ));
                    }
                    Some(p) => match serde_json::from_slice::<serde_json::Value>(p.bytes()) {
                        Ok(serde_json::Value::Object(mut map)) => {
                            if !map.get("password").is_some_and(|v| v.is_string()) {
                                return Err(Error::invalid_request(
                                    "the secret is a JSON object without a string \"password\" field for kura-password to replace",
                                ));
                            }
                            map.insert(
                                "password".into(),
                                serde_json::Value::String(password.to_string()),
                            );
                            Zeroizing::new(serde_json::Value::Object(map).to_string())
                        }
                        _ => password,
                    },
                    None => password,
                };
                ctx.stage_pending(Plain::text(&text)).await
            }
            RotationStep::SetSecret => Ok(()),
            RotationStep::TestSecret if pending_has_value => Ok(()),
            RotationStep::TestSecret => Err(Error::invalid_request(format!(
                "version {} has no value to test",
                req.token
            ))),
            RotationStep::FinishSecret => ctx.move_current_to_pending().await,
        }
    }
}

impl RotationFunction for PasswordFunction {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn in_process(&self) -> bool {
        true
    }

    fn run_step<'a>(
        &'a self,
        ctx: &'a dyn StepContext,
        req: StepRequest<'a>,
    ) -> StepFuture<'a, std::result::Result<(), StepFailure>> {
        Box::pin(async move {
            self.step(ctx, req)
                .await
                // kura's own errors, which never quote a value: shown even unchecked.
                .map_err(|e| StepFailure::own(e.message))
        })
    }
}
