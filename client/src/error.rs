//! `ClientError`: what can go wrong talking to a broker.

use strand_protocol::native::{DecodeError, ErrorCode};
use thiserror::Error;

/// An error from the client or reported by the broker. Cheap to clone: one error is
/// handed to every record of a failed batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientError {
    #[error("cannot reach the broker at {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("TLS with the broker at {address} failed: {reason}")]
    Tls { address: String, reason: String },
    #[error("the broker at {address} refused the client's credentials: {reason}")]
    Authentication { address: String, reason: String },
    #[error("connection to {address} lost: {reason}")]
    Disconnected { address: String, reason: String },
    #[error("no answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    #[error("the broker answered {code:?}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Broker { code: ErrorCode, message: String },
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("the broker sent a response this client cannot decode: {0}")]
    Protocol(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the producer is closed")]
    Closed,
}

impl ClientError {
    /// Whether sending the same request again may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => code.is_retriable(),
            ClientError::Disconnected { .. } | ClientError::Timeout { .. } | ClientError::Connect { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn broker(code: ErrorCode) -> ClientError {
        ClientError::Broker { code, message: String::new() }
    }
}

impl From<DecodeError> for ClientError {
    fn from(error: DecodeError) -> ClientError {
        ClientError::Protocol(error.to_string())
    }
}

/// Result of a client operation.
pub type Result<T> = std::result::Result<T, ClientError>;
