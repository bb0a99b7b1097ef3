//! The AWS door (awsJson 1.1): a codec only. It reads `X-Amz-Target` and the JSON body into an
//! [`Operation`], hands it to [`Service::call`], and writes the [`Outcome`] or the error
//! (`__type`, status) back. Authorization, running and auditing are the service's.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kura_core::model::RotationPhase;
use kura_core::{Error, ErrorCode, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{BodyRefusal, JSON_CONTENT_TYPE, Received, auth, error_response};
use crate::service::operation::with_operations;
use crate::service::{Caller, Family, Operation, Outcome, Plain, types};
use convert::Conv;
use wire::SecretText;
use wire::*;

mod convert;
pub mod wire;

/// Reads a JSON body; an empty body is `{}` (operations without parameters).
fn parse<T: DeserializeOwned>(op: &str, body: &[u8]) -> Result<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    // serde's messages can quote the offending value, which may be a secret: say only where.
    serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => {
                "a field has the wrong type or a required field is missing"
            }
            _ => "the body is not valid JSON",
        };
        Error::new(
            ErrorCode::Serialization,
            format!(
                "Could not read the {op} request: {what} (line {}, column {}).",
                e.line(),
                e.column()
            ),
        )
    })
}

fn to_body<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::internal(format!("serialising a response: {e}")))
}

macro_rules! define_codec {
    ($($family:ident $op:ident($req:ty) -> $resp:ty = $handler:ident;)*) => {
        /// The operation `family.name` with `body` as its parameters. The STS door's
        /// operation is not reachable here: it speaks its own protocol.
        pub(super) fn decode(family: Family, name: &str, body: &[u8]) -> Result<Operation> {
            $(
                if family == Family::$family
                    && family != Family::Sts
                    && name == stringify!($op)
                {
                    return Ok(Operation::$op(parse::<$req>(name, body)?.conv()?));
                }
            )*
            Err(unknown_operation(family, name))
        }

        /// Every operation this door decodes, by family and name.
        #[cfg(test)]
        pub(super) const OPERATIONS: &[(Family, &str)] = &[
            $((Family::$family, stringify!($op)),)*
        ];

        pub(super) fn encode(outcome: Outcome) -> Result<Vec<u8>> {
            match outcome {
                $(Outcome::$op(r) => r.encode(),)*
            }
        }
    };
}
with_operations!(define_codec);

/// `SecretString` xor `SecretBinary` (base64) as a value.
fn value(string: Option<SecretText>, binary: Option<SecretText>) -> Result<Option<Plain>> {
    use base64::Engine as _;
    match (string, binary) {
        (Some(_), Some(_)) => Err(Error::invalid_parameter(
            "You can't specify both SecretString and SecretBinary: send one of them.",
        )),
        (None, None) => Ok(None),
        (Some(s), None) => Ok(Some(Plain::text(&s.0))),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.0.as_bytes())
            .map(|bytes| Some(Plain::binary(zeroize::Zeroizing::new(bytes))))
            // A blob that is not base64 is a body that does not decode, as for AWS's own
            // deserializer: SerializationException, like every other malformed field.
            .map_err(|_| {
                Error::new(
                    ErrorCode::Serialization,
                    "SecretBinary must be base64-encoded (standard alphabet, with padding).",
                )
            }),
    }
}

impl Conv<types::CreateSecretRequest> for wire::CreateSecretRequest {
    fn conv(self) -> Result<types::CreateSecretRequest> {
        let w = self;
        Ok(types::CreateSecretRequest {
            value: value(w.secret_string, w.secret_binary)?,
            name: w.name,
            client_request_token: w.client_request_token,
            description: w.description,
            kms_key_id: w.kms_key_id,
            tags: w.tags.conv()?,
            replica_regions: w.add_replica_regions.is_some(),
        })
    }
}

impl Conv<types::PutSecretValueRequest> for wire::PutSecretValueRequest {
    fn conv(self) -> Result<types::PutSecretValueRequest> {
        let w = self;
        Ok(types::PutSecretValueRequest {
            value: value(w.secret_string, w.secret_binary)?,
            secret_id: w.secret_id,
            client_request_token: w.client_request_token,
            version_stages: w.version_stages,
        })
    }
}

impl Conv<types::UpdateSecretRequest> for wire::UpdateSecretRequest {
    fn conv(self) -> Result<types::UpdateSecretRequest> {
        let w = self;
        Ok(types::UpdateSecretRequest {
            value: value(w.secret_string, w.secret_binary)?,
            secret_id: w.secret_id,
            client_request_token: w.client_request_token,
            description: w.description,
            kms_key_id: w.kms_key_id,
        })
    }
}

/// An answer as the wire carries it.
trait Encode {
    fn encode(self) -> Result<Vec<u8>>;
}

/// Answers whose wire shape matches the service's field for field.
macro_rules! encode_as_converted {
    ($($t:ident),* $(,)?) => {
        $(impl Encode for types::$t {
            fn encode(self) -> Result<Vec<u8>> {
                to_body(&Conv::<wire::$t>::conv(self)?)
            }
        })*
    };
}
encode_as_converted!(
    SecretVersionResponse,
    ListSecretVersionIdsResponse,
    DeleteSecretResponse,
    GetRandomPasswordResponse,
    Empty,
    RotateRootKeyResponse,
    ClockResponse,
    GetResourcePolicyResponse,
    ValidateResourcePolicyResponse,
    CreateRotationFunctionResponse,
    ListRotationFunctionsResponse,
    CreateNotificationTargetResponse,
    ListNotificationTargetsResponse,
    UserResponse,
    ListUsersResponse,
    CreateAccessKeyResponse,
    ListAccessKeysResponse,
    GetUserPolicyResponse,
    ListUserPoliciesResponse,
    GetCallerIdentityResponse,
    LookupAuditEventsResponse,
    WatchSecretsResponse,
    KeyResponse,
    ListKeysResponse,
    CertificateAuthorityResponse,
    ListCertificateAuthoritiesResponse,
    CertificateTemplateResponse,
    ListCertificateTemplatesResponse,
    RevokeCertificateResponse,
);

fn value_out(v: &types::GetSecretValueResponse) -> Result<wire::GetSecretValueResponse<'_>> {
    use base64::Engine as _;
    let text = v.value.as_text()?;
    let binary = match text {
        Some(_) => None,
        None => Some(SecretText(zeroize::Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(v.value.bytes()),
        ))),
    };
    Ok(wire::GetSecretValueResponse {
        arn: &v.arn,
        name: &v.name,
        version_id: &v.version_id,
        secret_string: text,
        secret_binary: binary,
        version_stages: &v.version_stages,
        created_date: v.created.epoch_seconds(),
    })
}

impl Encode for types::GetSecretValueResponse {
    fn encode(self) -> Result<Vec<u8>> {
        to_body(&value_out(&self)?)
    }
}

impl Encode for types::BatchGetSecretValueResponse {
    fn encode(self) -> Result<Vec<u8>> {
        to_body(&wire::BatchGetSecretValueResponse {
            secret_values: self
                .secret_values
                .iter()
                .map(value_out)
                .collect::<Result<_>>()?,
            next_token: self.next_token.as_deref(),
            errors: self.errors.conv()?,
        })
    }
}

/// DescribeSecret's answer, and a ListSecrets entry (which names the stage map differently).
fn describe(d: &types::SecretDescription, listed: bool) -> wire::DescribeSecretResponse<'_> {
    let s = &d.secret;
    // kura_core::labels::versions_to_stages, borrowed: each version's stages in stage order.
    let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (stage, version) in &d.stages {
        map.entry(version.as_str())
            .or_default()
            .push(stage.as_str());
    }
    let map = (!map.is_empty()).then_some(map);
    let (cfg, run) = (&s.rotation, &s.run);
    let rules = cfg.has_rules().then(|| wire::RotationRules {
        automatically_after_days: cfg.after_days,
        duration: cfg.duration.clone(),
        schedule_expression: cfg.schedule_expression.clone(),
    });
    let in_progress = run.phase == RotationPhase::InProgress;
    let kura_rotation =
        (cfg.function_arn.is_some() || run.phase != RotationPhase::Idle).then(|| {
            wire::KuraRotation {
                state: run.phase.as_str().to_string(),
                step: run.step.map(|s| s.as_str().to_string()),
                attempt: run.attempt,
                last_error: run.last_error.clone(),
                last_attempt_date: run.last_attempt_at.map(|t| t.epoch_seconds()),
                next_attempt_date: run
                    .resume_at
                    .filter(|_| in_progress)
                    .map(|t| t.epoch_seconds()),
            }
        });
    let kura_state = (s.expires_at.is_some() || cfg.function_arn.is_some()).then(|| {
        if s.expires_at.is_some_and(|e| e <= d.now) {
            "Expired"
        } else if in_progress || kura_rotation::run::is_due(cfg, d.now) {
            "Active, rotation pending"
        } else if run.phase == RotationPhase::Failed {
            "Active, rotation failed"
        } else {
            "Active"
        }
    });
    wire::DescribeSecretResponse {
        arn: &s.arn,
        name: &s.name,
        description: s.description.as_deref(),
        kms_key_id: s.kms_key_id.as_deref(),
        // AWS leaves RotationEnabled out until rotation was first configured (a rotation
        // function set); after CancelRotateSecret it is false.
        rotation_enabled: (cfg.enabled || cfg.function_arn.is_some()).then_some(cfg.enabled),
        rotation_lambda_arn: cfg.function_arn.as_deref(),
        rotation_rules: rules,
        last_rotated_date: cfg.last_rotated_at.map(|t| t.epoch_seconds()),
        next_rotation_date: cfg
            .next_rotation_at
            .filter(|_| cfg.enabled)
            .map(|t| t.epoch_seconds()),
        kura_rotation,
        kura_expiration_date: s.expires_at.map(|t| t.epoch_seconds()),
        kura_state,
        last_changed_date: Some(s.changed_at.epoch_seconds()),
        last_accessed_date: s.accessed_at.map(|t| t.epoch_seconds()),
        deleted_date: s.deleted_at.map(|t| t.epoch_seconds()),
        tags: (s.tagged || !s.tags.is_empty()).then(|| {
            s.tags
                .iter()
                .map(|t| wire::TagRef {
                    key: &t.key,
                    value: &t.value,
                })
                .collect()
        }),
        version_ids_to_stages: if listed { None } else { map.clone() },
        secret_versions_to_stages: if listed { map } else { None },
        created_date: s.created_at.epoch_seconds(),
    }
}

impl Encode for types::SecretDescription {
    fn encode(self) -> Result<Vec<u8>> {
        to_body(&describe(&self, false))
    }
}

impl Encode for types::SecretListPage {
    fn encode(self) -> Result<Vec<u8>> {
        let page = wire::ListSecretsResponse {
            secret_list: self.secrets.iter().map(|d| describe(d, true)).collect(),
            next_token: self.next_token.as_deref(),
        };
        // Room for a typical entry each, so a page is written without growing the buffer
        // again and again.
        let mut body = Vec::with_capacity(512 * (self.secrets.len() + 1));
        serde_json::to_writer(&mut body, &page)
            .map_err(|e| Error::internal(format!("serialising a response: {e}")))?;
        Ok(body)
    }
}

fn unknown_operation(family: Family, name: &str) -> Error {
    let shown: String = name.chars().take(64).collect();
    let message = match family {
        Family::Kura => format!("kura has no extension operation {shown:?}."),
        _ => format!("kura does not implement the operation {shown:?}."),
    };
    Error::new(ErrorCode::UnknownOperation, message)
}

/// `X-Amz-Target: secretsmanager.<Op>` or `Kura.<Op>`.
pub(super) fn target(value: &str) -> Result<(Family, &str)> {
    match value.split_once('.') {
        Some(("secretsmanager", op)) => Ok((Family::SecretsManager, op)),
        Some(("Kura", op)) => Ok((Family::Kura, op)),
        _ => Err(Error::new(
            ErrorCode::UnknownOperation,
            "Set X-Amz-Target to secretsmanager.<Operation> or Kura.<Operation>.",
        )),
    }
}

pub(super) async fn serve(
    req: Received,
    body: std::result::Result<Bytes, BodyRefusal>,
) -> Response {
    let service = &req.live.service;
    let target_header = req
        .parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (prefix, name) = target_header
        .split_once('.')
        .unwrap_or(("", target_header.as_str()));
    // How the audit record names a request that never became an operation.
    let action = match prefix {
        "secretsmanager" => format!("secretsmanager:{name}"),
        "Kura" => format!("kura:{name}"),
        _ => name.to_string(),
    };
    let body = match body {
        Ok(b) => b,
        Err((status, e)) => {
            // A body that could not be read cannot be authenticated: answer why, and audit it.
            let answered = service
                .refuse(&req.info, None, &action, "*", e.clone())
                .await;
            let mut response = error_response(&answered);
            if answered == e {
                *response.status_mut() = status;
                // The rest of the body is not wanted: do not wait for it on this connection.
                response
                    .headers_mut()
                    .insert("connection", HeaderValue::from_static("close"));
            }
            return response;
        }
    };
    let principal = match req.authenticate(&body, auth::SERVICE_NAME).await {
        Ok(p) => p,
        Err(e) => {
            // Which secret an unauthenticated caller was after is worth keeping in the record.
            let tried = target(&target_header).and_then(|(f, n)| decode(f, n, &body));
            let resource = tried
                .as_ref()
                .ok()
                .and_then(|op| op.facts().secret_id.or(op.facts().name))
                .unwrap_or("*");
            let e = service.refuse(&req.info, None, &action, resource, e).await;
            return error_response(&e);
        }
    };
    let op = target(&target_header).and_then(|(family, name)| decode(family, name, &body));
    let op = match op {
        Ok(op) => op,
        Err(e) => {
            let e = service
                .refuse(&req.info, Some(&principal), &action, "*", e)
                .await;
            return error_response(&e);
        }
    };
    let caller = Caller::new(principal, req.info.clone());
    match service.call(&caller, op).await.and_then(encode) {
        Ok(body) => ([("content-type", JSON_CONTENT_TYPE)], body).into_response(),
        Err(e) => error_response(&e),
    }
}

/// AWS answers every client error with 400 (not-found included); the caching clients treat
/// 5xx as transient, so only genuine server faults may be 500.
pub(super) fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InternalServiceError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}
