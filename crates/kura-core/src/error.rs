//! One error type for the whole service: it carries the AWS error code, and the HTTP layer only
//! serialises it. Messages tell the caller what to fix and never contain a secret value.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ResourceNotFound,
    ResourceExists,
    InvalidParameter,
    InvalidRequest,
    InvalidNextToken,
    LimitExceeded,
    MalformedPolicyDocument,
    PublicPolicy,
    Validation,
    Serialization,
    UnknownOperation,
    DecryptionFailure,
    EncryptionFailure,
    MissingAuthenticationToken,
    IncompleteSignature,
    InvalidSignature,
    UnrecognizedClient,
    AccessDenied,
    /// The client did not send its request in time (botocore and the SDKs retry it).
    RequestTimeout,
    /// The node cannot serve now (it is sealed); another node or a later try may.
    ServiceUnavailable,
    InternalServiceError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            ResourceNotFound => "ResourceNotFoundException",
            ResourceExists => "ResourceExistsException",
            InvalidParameter => "InvalidParameterException",
            InvalidRequest => "InvalidRequestException",
            InvalidNextToken => "InvalidNextTokenException",
            LimitExceeded => "LimitExceededException",
            MalformedPolicyDocument => "MalformedPolicyDocumentException",
            PublicPolicy => "PublicPolicyException",
            Validation => "ValidationException",
            Serialization => "SerializationException",
            UnknownOperation => "UnknownOperationException",
            DecryptionFailure => "DecryptionFailure",
            EncryptionFailure => "EncryptionFailure",
            MissingAuthenticationToken => "MissingAuthenticationTokenException",
            IncompleteSignature => "IncompleteSignatureException",
            InvalidSignature => "InvalidSignatureException",
            UnrecognizedClient => "UnrecognizedClientException",
            AccessDenied => "AccessDeniedException",
            RequestTimeout => "RequestTimeoutException",
            ServiceUnavailable => "ServiceUnavailable",
            InternalServiceError => "InternalServiceError",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// Operator-facing detail for the log (e.g. a database error); never sent to the client.
    pub detail: Option<String>,
}

const UNAVAILABLE_MESSAGE: &str = "kura's database is unavailable; retry the request shortly.";

const DISK_FULL_MESSAGE: &str = "kura cannot write to its database: the disk is full. Nothing was changed; \
     try again once the operator has freed space.";

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            detail: None,
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceNotFound, message)
    }
    pub fn secret_not_found() -> Self {
        Self::not_found("Secrets Manager can't find the specified secret.")
    }
    pub fn exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceExists, message)
    }
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameter, message)
    }
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LimitExceeded, message)
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Validation, message)
    }
    pub fn marked_for_deletion() -> Self {
        Self::invalid_request(
            "You can't perform this operation on the secret because it was marked for deletion.",
        )
    }
    /// A server-side fault. The client sees a generic message; `detail` goes to the log.
    /// The store cannot write (a full disk). Still a server error (500: retry later), but one
    /// whose reason the client is told, since nothing they change in the request helps.
    pub fn disk_full(detail: impl Into<String>) -> Self {
        Error {
            code: ErrorCode::InternalServiceError,
            message: DISK_FULL_MESSAGE.into(),
            detail: Some(detail.into()),
        }
    }

    pub fn is_disk_full(&self) -> bool {
        self.message == DISK_FULL_MESSAGE
    }

    /// The database cannot be reached or keeps refusing the transaction (an outage, a full
    /// pool, repeated serialization conflicts). A server error (500), which AWS clients retry;
    /// the message tells the caller that retrying is the remedy. `detail` goes to the log.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Error {
            code: ErrorCode::InternalServiceError,
            message: UNAVAILABLE_MESSAGE.into(),
            detail: Some(detail.into()),
        }
    }

    pub fn is_unavailable(&self) -> bool {
        self.message == UNAVAILABLE_MESSAGE
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Error {
            code: ErrorCode::InternalServiceError,
            message: "kura hit an internal error; the request had no effect. See the server log."
                .into(),
            detail: Some(detail.into()),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}
