//! BatchGetSecretValue: up to 20 values by id list, or a page of a filtered listing. A secret
//! that cannot be read becomes an entry in `Errors`, not a failed call.

use kura_core::model::SecretRecord;
use kura_core::{Error, Result};
use kura_store::SortKey;

use super::secrets::ListParams;
use super::types::*;
use super::{Caller, Service};

const MAX_BATCH: usize = 20;

impl Service {
    pub async fn batch_get_secret_value(
        &self,
        p: &Caller,
        req: BatchGetSecretValueRequest,
    ) -> Result<BatchGetSecretValueResponse> {
        // With Filters the secrets come from a listing: the caller needs ListSecrets too (as on
        // AWS), and each listed secret is already loaded.
        let (wanted, next_token): (Vec<(String, Option<SecretRecord>)>, _) =
            match (req.secret_id_list, req.filters) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(Error::invalid_parameter(
                        "Specify either SecretIdList or Filters, not both and not neither.",
                    ));
                }
                (Some(list), None) => {
                    if req.max_results.is_some() || req.next_token.is_some() {
                        return Err(Error::invalid_parameter(
                            "MaxResults and NextToken go with Filters, not with SecretIdList.",
                        ));
                    }
                    if list.is_empty() || list.len() > MAX_BATCH {
                        return Err(Error::validation(format!(
                            "SecretIdList must name 1 to {MAX_BATCH} secrets."
                        )));
                    }
                    (list.into_iter().map(|id| (id, None)).collect(), None)
                }
                (None, Some(filters)) => {
                    let limit = match req.max_results {
                        None => MAX_BATCH,
                        Some(n @ 1..=20) => n as usize,
                        Some(n) => {
                            return Err(Error::invalid_parameter(format!(
                                "MaxResults must be between 1 and {MAX_BATCH}; got {n}."
                            )));
                        }
                    };
                    self.authorize_unscoped(p, "secretsmanager:ListSecrets")
                        .await?;
                    let (page, next) = self
                        .list_page(ListParams {
                            filters,
                            include_deleted: false,
                            sort: SortKey::Created,
                            descending: false,
                            limit,
                            next_token: req.next_token.as_deref(),
                            purpose: "BatchGetSecretValue",
                        })
                        .await?;
                    (
                        page.into_iter()
                            .map(|(s, _)| (s.arn.clone(), Some(s)))
                            .collect(),
                        next,
                    )
                }
            };
        let mut secret_values = Vec::with_capacity(wanted.len());
        let mut errors = Vec::new();
        for (id, listed) in wanted {
            // Each secret needs GetSecretValue permission of its own (as on AWS).
            if !p.is_administrator() {
                let allowed = match &listed {
                    Some(s) => {
                        self.authorize_on_secret(p, "secretsmanager:GetSecretValue", s)
                            .await
                    }
                    None => match self.resolve(p, &id).await {
                        Ok(s) => {
                            self.authorize_on_secret(p, "secretsmanager:GetSecretValue", &s)
                                .await
                        }
                        Err(_) => Ok(()), // the read below reports it
                    },
                };
                if let Err(e) = allowed {
                    // A secret found by the filter, not named by the caller, is reported only
                    // to a caller who may see that it exists; otherwise it is left out.
                    if let Some(s) = &listed
                        && self
                            .authorize_on_secret(p, "secretsmanager:DescribeSecret", s)
                            .await
                            .is_err()
                    {
                        continue;
                    }
                    errors.push(ApiErrorEntry {
                        secret_id: id,
                        error_code: e.code.as_str().to_string(),
                        message: e.message,
                    });
                    continue;
                }
            }
            let got = self
                .get_secret_value(
                    p,
                    GetSecretValueRequest {
                        secret_id: id.clone(),
                        version_id: None,
                        version_stage: None,
                    },
                )
                .await;
            match got {
                Ok(v) => secret_values.push(v),
                Err(e) if e.code == kura_core::ErrorCode::InternalServiceError => return Err(e),
                Err(e) => errors.push(ApiErrorEntry {
                    secret_id: id,
                    error_code: e.code.as_str().to_string(),
                    message: e.message,
                }),
            }
        }
        Ok(BatchGetSecretValueResponse {
            secret_values,
            next_token,
            errors,
        })
    }
}
