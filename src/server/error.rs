//! Kinesis API errors, and their one mapping to the wire (`__type`, message, status).

use std::fmt;

/// The error types the Kinesis API returns, by their wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    ResourceNotFound,
    ResourceInUse,
    InvalidArgument,
    Validation,
    Serialization,
    UnknownOperation,
    LimitExceeded,
    ExpiredIterator,
    ProvisionedThroughputExceeded,
    InternalFailure,
    AccessDenied,
    MissingAuthenticationToken,
    IncompleteSignature,
    UnrecognizedClient,
    InvalidSignature,
    /// Firehose's refusal for throughput (and its "back off and retry").
    ServiceUnavailable,
    /// Firehose's answer to an update made against an old version.
    ConcurrentModification,
}

impl ErrorKind {
    /// The `__type` field of the error body (and a PutRecords entry's `ErrorCode`).
    pub fn wire_name(self) -> &'static str {
        match self {
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::ResourceInUse => "ResourceInUseException",
            ErrorKind::InvalidArgument => "InvalidArgumentException",
            ErrorKind::Validation => "ValidationException",
            ErrorKind::Serialization => "SerializationException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::LimitExceeded => "LimitExceededException",
            ErrorKind::ExpiredIterator => "ExpiredIteratorException",
            ErrorKind::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            ErrorKind::InternalFailure => "InternalFailure",
            ErrorKind::AccessDenied => "AccessDeniedException",
            ErrorKind::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            ErrorKind::IncompleteSignature => "IncompleteSignatureException",
            ErrorKind::UnrecognizedClient => "UnrecognizedClientException",
            ErrorKind::InvalidSignature => "InvalidSignatureException",
            ErrorKind::ServiceUnavailable => "ServiceUnavailableException",
            ErrorKind::ConcurrentModification => "ConcurrentModificationException",
        }
    }

    /// HTTP status: 500 for the server's own failures, 400 for the caller's.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InternalFailure => 500,
            ErrorKind::ServiceUnavailable => 503,
            ErrorKind::MissingAuthenticationToken => 403,
            _ => 400,
        }
    }
}

/// An error answered to a Kinesis API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisError {
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for KinesisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.wire_name(), self.message)
    }
}

impl std::error::Error for KinesisError {}

macro_rules! constructors {
    ($($name:ident => $kind:ident),* $(,)?) => {
        impl KinesisError {
            $(
                pub fn $name(message: impl Into<String>) -> Self {
                    KinesisError { kind: ErrorKind::$kind, message: message.into() }
                }
            )*
        }
    };
}

constructors! {
    not_found => ResourceNotFound,
    in_use => ResourceInUse,
    invalid_argument => InvalidArgument,
    validation => Validation,
    serialization => Serialization,
    unknown_operation => UnknownOperation,
    limit_exceeded => LimitExceeded,
    expired_iterator => ExpiredIterator,
    throughput_exceeded => ProvisionedThroughputExceeded,
    internal => InternalFailure,
    service_unavailable => ServiceUnavailable,
    concurrent_modification => ConcurrentModification,
}

pub type OpResult<T> = Result<T, KinesisError>;
