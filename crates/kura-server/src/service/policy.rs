//! Resource policies: stored and validated here; enforced once identities and policies arrive.

use kura_core::{Error, ErrorCode, Result};
use kura_iam::policy::{self, PolicyKind};

use super::{Caller, Service};
use crate::service::types::*;

fn malformed(e: policy::PolicyError) -> Error {
    Error::new(
        ErrorCode::MalformedPolicyDocument,
        format!("The resource policy is not valid: {e}"),
    )
}

impl Service {
    pub async fn put_resource_policy(
        &self,
        p: &Caller,
        req: PutResourcePolicyRequest,
    ) -> Result<SecretVersionResponse> {
        let doc = policy::parse(&req.resource_policy, PolicyKind::Resource).map_err(malformed)?;
        if req.block_public_policy.unwrap_or(false) && policy::is_public(&doc) {
            return Err(Error::new(
                ErrorCode::PublicPolicy,
                "BlockPublicPolicy is set and this policy grants access to everyone (Principal \"*\" without a narrowing condition); name the principals, or add a condition such as aws:PrincipalAccount.",
            ));
        }
        let secret = self.resolve_live(p, &req.secret_id).await?;
        self.set_policy(secret.id, Some(req.resource_policy), &p.audit)
            .await?;
        Ok(SecretVersionResponse {
            arn: secret.arn,
            name: secret.name,
            ..Default::default()
        })
    }

    pub async fn get_resource_policy(
        &self,
        p: &Caller,
        req: SecretIdRequest,
    ) -> Result<GetResourcePolicyResponse> {
        let secret = self.resolve_live(p, &req.secret_id).await?;
        Ok(GetResourcePolicyResponse {
            arn: secret.arn,
            name: secret.name,
            resource_policy: secret.resource_policy,
        })
    }

    pub async fn delete_resource_policy(
        &self,
        p: &Caller,
        req: SecretIdRequest,
    ) -> Result<SecretVersionResponse> {
        let secret = self.resolve_live(p, &req.secret_id).await?;
        self.set_policy(secret.id, None, &p.audit).await?;
        Ok(SecretVersionResponse {
            arn: secret.arn,
            name: secret.name,
            ..Default::default()
        })
    }

    pub async fn validate_resource_policy(
        &self,
        p: &Caller,
        req: ValidateResourcePolicyRequest,
    ) -> Result<ValidateResourcePolicyResponse> {
        if let Some(id) = &req.secret_id {
            self.resolve_live(p, id).await?;
        }
        let mut errors = Vec::new();
        match policy::parse(&req.resource_policy, PolicyKind::Resource) {
            Ok(doc) if policy::is_public(&doc) => errors.push(ValidationErrorEntry {
                check_name: "BROAD_ACCESS".into(),
                error_message: "The policy grants access to everyone (Principal \"*\" without a narrowing condition); PutResourcePolicy with BlockPublicPolicy would refuse it.".into(),
            }),
            Ok(_) => {}
            Err(e) => errors.push(ValidationErrorEntry {
                check_name: "POLICY_SYNTAX".into(),
                error_message: e.to_string(),
            }),
        }
        Ok(ValidateResourcePolicyResponse {
            policy_validation_passed: errors.is_empty(),
            validation_errors: errors,
        })
    }

    async fn set_policy(
        &self,
        secret_id: i64,
        policy: Option<String>,
        audit: &kura_store::AuditSlot,
    ) -> Result<()> {
        self.store
            .modify(
                secret_id,
                &mut |st| {
                    if st.secret.is_scheduled_for_deletion() {
                        return Err(Error::marked_for_deletion());
                    }
                    st.secret.resource_policy = policy.clone();
                    Ok(())
                },
                audit,
            )
            .await?;
        Ok(())
    }
}
