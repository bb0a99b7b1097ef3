//! The parameters and answers of operations, as the service takes and gives them. Where a
//! protocol's representation differs from the domain's (a value as text or base64, a date
//! as epoch seconds), these hold the domain's, and each door converts.
//!
//! Operations not yet given their own types here still use the AWS shapes re-exported below;
//! a type defined here takes precedence over the re-exported one of the same name.

use kura_core::Timestamp;
use kura_core::labels::Stages;
use kura_core::model::SecretRecord;

pub use super::Plain;
pub use crate::wire::*;

#[derive(Debug)]
pub struct CreateSecretRequest {
    pub name: String,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub value: Option<Plain>,
    pub tags: Option<Vec<Tag>>,
    /// Replication was asked for (`AddReplicaRegions`); kura refuses it.
    pub replica_regions: bool,
}

#[derive(Debug)]
pub struct PutSecretValueRequest {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub value: Option<Plain>,
    pub version_stages: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct UpdateSecretRequest {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub value: Option<Plain>,
}

/// One version's value, as GetSecretValue and BatchGetSecretValue answer it.
#[derive(Debug)]
pub struct GetSecretValueResponse {
    pub arn: String,
    pub name: String,
    pub version_id: String,
    pub value: Plain,
    pub version_stages: Vec<String>,
    pub created: Timestamp,
}

#[derive(Debug)]
pub struct BatchGetSecretValueResponse {
    pub secret_values: Vec<GetSecretValueResponse>,
    pub next_token: Option<String>,
    pub errors: Vec<ApiErrorEntry>,
}

/// A secret's metadata and where its labels are: DescribeSecret's answer.
#[derive(Debug)]
pub struct SecretDescription {
    pub secret: SecretRecord,
    pub stages: Stages,
}

/// One page of ListSecrets.
#[derive(Debug)]
pub struct SecretListPage {
    pub secrets: Vec<SecretDescription>,
    pub next_token: Option<String>,
}
