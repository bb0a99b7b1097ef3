//! Running one rotation step: the [`StepContext`] kura gives a function (the service, scoped to
//! one secret and its cycle), the step's timeout, and the redaction of a failure's text.

use std::sync::Mutex;

use kura_core::labels;
use kura_core::model::{RotationStep, SecretRecord};
use kura_core::names::SecretRef;
use kura_core::{Error, Result, Timestamp};
use kura_rotation::function::{
    AcmeRequest, CertificateRequest, IssuedCertificate, RotationFunction, StepContext, StepFailure,
    StepFuture, StepKey, StepRequest, VersionRef,
};
use kura_rotation::redact;
use kura_store::VersionSelector;
use zeroize::Zeroizing;

use super::functions::principal_user;
use crate::service::access_keys::NewAccessKey;
use crate::service::types::UpdateSecretVersionStageRequest;
use crate::service::versions::ValueWrite;
use crate::service::{Caller, Plain, Service};

/// The service as one step of one cycle sees it: the rotated secret, the cycle's token, and
/// the function's own principal for the keys it issues.
struct CycleContext<'a> {
    svc: &'a Service,
    secret: &'a SecretRecord,
    token: &'a str,
    function: &'a str,
    /// Step keys whose reads are being noted; forgotten when the step ends, also when a
    /// timeout drops it midway.
    watched: Mutex<Vec<String>>,
}

impl Drop for CycleContext<'_> {
    fn drop(&mut self) {
        if let Ok(keys) = self.watched.lock() {
            for key in keys.iter() {
                self.svc.rotation.take_reads(key);
            }
        }
    }
}

impl StepContext for CycleContext<'_> {
    fn now(&self) -> Timestamp {
        self.svc.clock.now()
    }

    fn region(&self) -> &str {
        &self.svc.region
    }

    fn endpoint(&self) -> Option<&str> {
        self.svc.rotation.endpoint()
    }

    fn http(&self) -> &reqwest::Client {
        self.svc.rotation.http()
    }

    fn read_version<'a>(&'a self, which: VersionRef<'a>) -> StepFuture<'a, Result<Option<Plain>>> {
        Box::pin(async move {
            let which = match which {
                VersionRef::Pending => VersionSelector::Id(self.token),
                VersionRef::Stage(stage) => VersionSelector::Stage(stage),
            };
            self.svc.version_plain(self.secret, which).await
        })
    }

    fn read_other_secret<'a>(
        &'a self,
        secret: &'a SecretRef,
    ) -> StepFuture<'a, Result<Option<Plain>>> {
        Box::pin(async move {
            let other = self
                .svc
                .store
                .find_secret(secret)
                .await?
                .filter(|s| !s.is_scheduled_for_deletion())
                .ok_or_else(Error::secret_not_found)?;
            self.svc
                .version_plain(&other, VersionSelector::Stage(labels::CURRENT))
                .await
        })
    }

    fn stage_pending(&self, value: Plain) -> StepFuture<'_, Result<()>> {
        Box::pin(async move {
            self.svc
                .write_value(
                    self.secret,
                    ValueWrite {
                        token: Some(self.token.to_string()),
                        plain: value,
                        stages: Some(vec![labels::PENDING.to_string()]),
                        description: None,
                        kms_key_id: None,
                    },
                    &kura_store::NO_AUDIT,
                )
                .await
                .map(|_| ())
        })
    }

    fn move_current_to_pending(&self) -> StepFuture<'_, Result<()>> {
        Box::pin(self.svc.move_current_to(self.secret, self.token))
    }

    fn event_json(&self, step: RotationStep) -> String {
        let s = self.secret;
        let rotation_token = hex::encode(
            self.svc
                .token_key
                .sign(format!("rotation\n{}\n{}", s.arn, self.token).as_bytes()),
        );
        serde_json::json!({
            "Step": step.as_str(),
            "SecretId": s.arn,
            "ClientRequestToken": self.token,
            "RotationToken": rotation_token,
        })
        .to_string()
    }

    fn issue_step_key(&self, until: Timestamp) -> StepFuture<'_, Result<StepKey>> {
        Box::pin(async move {
            let (access_key_id, secret_access_key) = self
                .svc
                .issue_rotation_key(self.function, self.secret.id, until)
                .await?;
            self.svc.rotation.watch_reads(&access_key_id);
            if let Ok(mut w) = self.watched.lock() {
                w.push(access_key_id.clone());
            }
            Ok(StepKey {
                access_key_id,
                secret_access_key,
            })
        })
    }

    fn revoke_step_key<'a>(&'a self, access_key_id: &'a str) -> StepFuture<'a, Vec<i64>> {
        Box::pin(async move {
            if let Err(e) = self
                .svc
                .store
                .delete_access_key(access_key_id, &kura_store::NO_AUDIT)
                .await
            {
                tracing::warn!(detail = ?e, "cannot delete a rotation credential; it expires anyway");
            }
            if let Ok(mut w) = self.watched.lock() {
                w.retain(|k| k != access_key_id);
            }
            self.svc.rotation.take_reads(access_key_id)
        })
    }

    fn find_user<'a>(&'a self, user: &'a str) -> StepFuture<'a, Result<Option<String>>> {
        Box::pin(async move { Ok(self.svc.store.get_user(user).await?.map(|u| u.name)) })
    }

    fn create_access_key<'a>(
        &'a self,
        user: &'a str,
        lifetime_seconds: Option<i64>,
    ) -> StepFuture<'a, Result<(String, Zeroizing<String>)>> {
        let mut key = NewAccessKey::long_term(user, None);
        key.expires_at = lifetime_seconds.map(|s| Timestamp(self.svc.clock.now().0 + s * 1000));
        Box::pin(self.svc.create_access_key(key, &kura_store::NO_AUDIT))
    }

    fn access_key_owner<'a>(
        &'a self,
        access_key_id: &'a str,
    ) -> StepFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            Ok(self
                .svc
                .store
                .find_access_key(access_key_id)
                .await?
                .map(|k| k.user_name))
        })
    }

    fn deactivate_access_key<'a>(&'a self, access_key_id: &'a str) -> StepFuture<'a, Result<()>> {
        Box::pin(async move {
            self.svc
                .store
                .set_access_key_status(access_key_id, false, &kura_store::NO_AUDIT)
                .await
                .map(|_| ())
        })
    }

    fn delete_access_key<'a>(&'a self, access_key_id: &'a str) -> StepFuture<'a, Result<()>> {
        Box::pin(async move {
            self.svc
                .store
                .delete_access_key(access_key_id, &kura_store::NO_AUDIT)
                .await
                .map(|_| ())
        })
    }

    fn expire_access_key<'a>(
        &'a self,
        access_key_id: &'a str,
        after_seconds: i64,
    ) -> StepFuture<'a, Result<()>> {
        Box::pin(async move {
            let at = Timestamp(self.svc.clock.now().0 + after_seconds * 1000);
            self.svc
                .store
                .expire_access_key(access_key_id, at, &kura_store::NO_AUDIT)
                .await
                .map(|_| ())
        })
    }

    fn issue_certificate<'a>(
        &'a self,
        req: CertificateRequest<'a>,
    ) -> StepFuture<'a, Result<IssuedCertificate>> {
        Box::pin(self.svc.issue_for_secret(&self.secret.arn, req))
    }

    fn revoke_certificate<'a>(
        &'a self,
        authority: &'a str,
        serial_number: &'a str,
    ) -> StepFuture<'a, Result<()>> {
        Box::pin(self.svc.revoke_replaced(authority, serial_number))
    }

    fn order_acme_certificate<'a>(
        &'a self,
        req: AcmeRequest<'a>,
    ) -> StepFuture<'a, Result<IssuedCertificate>> {
        Box::pin(self.svc.order_acme(self, req))
    }
}

impl Service {
    /// Runs `step` with `function` within its timeout; `Err` is redacted before it is kept or
    /// shown.
    pub(super) async fn run_step(
        &self,
        s: &SecretRecord,
        function: &dyn RotationFunction,
        step: RotationStep,
        token: &str,
    ) -> std::result::Result<(), StepFailure> {
        let settings = function.settings();
        let ctx = CycleContext {
            svc: self,
            secret: s,
            token,
            function: &settings.name,
            watched: Mutex::new(Vec::new()),
        };
        let req = StepRequest {
            secret_arn: &s.arn,
            secret_name: &s.name,
            token,
            step,
        };
        match tokio::time::timeout(settings.timeout, function.run_step(&ctx, req)).await {
            Ok(r) => r,
            Err(_) => Err(StepFailure::own(format!(
                "{} did not finish within {} s",
                settings.name,
                settings.timeout.as_secs()
            ))),
        }
    }

    /// A version's value, opened; `None` when there is no such version or it has no value.
    pub(crate) async fn version_plain(
        &self,
        s: &SecretRecord,
        which: VersionSelector<'_>,
    ) -> Result<Option<Plain>> {
        let Some(v) = self.store.read_version(s.id, which).await? else {
            return Ok(None);
        };
        let Some(sealed) = &v.value else {
            return Ok(None);
        };
        // Sealed under a key version another node added: load it first.
        self.ready_version(&sealed.key_name, sealed.key_version)
            .await?;
        self.open(&s.arn, &v.meta.version_id, sealed).map(Some)
    }

    /// finishSecret's label move: AWSCURRENT to `token` (AWSPREVIOUS follows). A no-op when
    /// it is there already, so the step can run again.
    async fn move_current_to(&self, s: &SecretRecord, token: &str) -> Result<()> {
        let (_, stages) = self.store.versions(s.id).await?;
        let current = stages.get(labels::CURRENT).cloned();
        if current.as_deref() == Some(token) {
            return Ok(());
        }
        self.update_secret_version_stage(
            &Caller::system(&self.account),
            UpdateSecretVersionStageRequest {
                secret_id: s.arn.clone(),
                version_stage: labels::CURRENT.to_string(),
                remove_from_version_id: current,
                move_to_version_id: Some(token.to_string()),
            },
        )
        .await
        .map(|_| ())
    }

    /// A key for one secret, valid until `until` (on the service clock), of `function`'s own
    /// principal.
    async fn issue_rotation_key(
        &self,
        function: &str,
        secret_id: i64,
        until: Timestamp,
    ) -> Result<(String, Zeroizing<String>)> {
        let user = principal_user(function);
        if !self.store.user_exists(&user).await? {
            match self
                .store
                .create_user(
                    &kura_store::UserRecord {
                        name: user.clone(),
                        arn: self.function_principal_arn(function),
                        user_id: crate::service::new_user_id()?,
                        created_at: self.clock.now(),
                        tags: Vec::new(),
                    },
                    &kura_store::NO_AUDIT,
                )
                .await
            {
                Ok(()) => {}
                Err(e) if e.code == kura_core::ErrorCode::ResourceExists => {}
                Err(e) => return Err(e),
            }
        }
        self.create_access_key(
            NewAccessKey {
                user_name: &user,
                prefix: "ASIA",
                expires_at: Some(until),
                scope_secret_id: Some(secret_id),
                imported: None,
                max_per_user: None,
            },
            &kura_store::NO_AUDIT,
        )
        .await
    }

    /// `f`'s text without any value of the secret (see [`redact::redact`]); when that cannot
    /// be checked, only the part kura wrote itself (the exit status), saying why.
    pub(super) async fn redacted_failure(&self, s: &SecretRecord, f: &StepFailure) -> String {
        let withheld = |why: &str| format!("{} (error details withheld: {why})", f.safe);
        let mut values = match self.all_values(s).await {
            Ok(v) => v,
            Err(why) => return withheld(why),
        };
        for id in &f.also_read {
            let other = match self.store.secret_by_id(*id).await {
                Ok(Some(o)) => self.all_values(&o).await,
                Ok(None) => Ok(Vec::new()), // destroyed meanwhile: nothing left to leak
                Err(_) => Err("a secret the function read could not be read to check it"),
            };
            match other {
                Ok(v) => values.extend(v),
                Err(why) => return withheld(why),
            }
        }
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        match redact::redact(&f.text, &refs) {
            Ok(text) => text,
            Err(why) => match redact::redact(&f.safe, &refs) {
                Ok(safe) => format!("{safe} (error details withheld: {why})"),
                Err(_) => withheld(why),
            },
        }
    }

    /// Every value of every version of `s`: what a function may have read and printed.
    async fn all_values(
        &self,
        s: &SecretRecord,
    ) -> std::result::Result<Vec<Zeroizing<Vec<u8>>>, &'static str> {
        const UNREADABLE: &str = "the secret's values could not be read to check it";
        let (versions, _) = self.store.versions(s.id).await.map_err(|_| UNREADABLE)?;
        // A rotation's placeholder may stand beside the 100 kept versions; more is not normal.
        if versions.len() > labels::MAX_VERSIONS + 2 {
            return Err("the secret has too many versions to check it");
        }
        let mut out = Vec::new();
        for v in versions.iter().filter(|v| v.has_value) {
            let stored = self
                .store
                .read_version(s.id, VersionSelector::Id(&v.version_id))
                .await
                .map_err(|_| UNREADABLE)?;
            // Deleted meanwhile: nothing left to leak.
            let Some(sealed) = stored.as_ref().and_then(|st| st.value.as_ref()) else {
                continue;
            };
            let plain = self
                .open(&s.arn, &v.version_id, sealed)
                .map_err(|_| UNREADABLE)?;
            out.push(plain.into_bytes());
        }
        Ok(out)
    }
}
