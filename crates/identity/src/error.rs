//! Failures of the identity service and how callers see them.
//!
//! Redis has no variant on purpose: a cache failure is logged and the call
//! goes on against PostgreSQL.
// Error mappings name every variant: a new one must choose its code, not fall through.
#![warn(clippy::wildcard_enum_match_arm)]

use std::time::Duration;

use touchline_error::{ApiError, ErrorCode, FieldViolation};

use crate::domain::Rejection;

/// How long a caller should wait before retrying a transient failure.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// Failures of the identity service.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The request was refused as a whole.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Concurrent writers kept claiming the same identifiers; the whole call
    /// may be retried.
    #[error("identifiers kept changing concurrently; gave up after {attempts} attempts")]
    Contention {
        /// How many times the write was tried.
        attempts: u32,
    },
    /// A named resource does not exist (or belongs to another tenant).
    #[error("{0} not found")]
    NotFound(String),
    /// The resource is not in a state that allows the operation.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A concurrent change won (stale etag).
    #[error("{0}")]
    Stale(String),
    /// PostgreSQL failed.
    #[error("identity storage failed")]
    Store(#[source] sqlx::Error),
    /// Planning a batch on the blocking pool did not finish: it panicked, or
    /// the runtime is shutting down.
    #[error("planning the batch failed")]
    Planner(#[source] tokio::task::JoinError),
    /// A reply kept for an idempotent retry no longer decodes.
    #[error("a stored reply is unreadable")]
    UnreadableReply(#[source] touchline_proto::prost::DecodeError),
}

impl From<sqlx::Error> for IdentityError {
    fn from(err: sqlx::Error) -> Self {
        IdentityError::Store(err)
    }
}

impl ApiError for IdentityError {
    fn code(&self) -> ErrorCode {
        match self {
            IdentityError::Rejected(
                Rejection::TooManyIdentifiers { .. } | Rejection::Invalid(_),
            ) => ErrorCode::InvalidArgument,
            IdentityError::Contention { .. } | IdentityError::Stale(_) => ErrorCode::Aborted,
            IdentityError::NotFound(_) => ErrorCode::NotFound,
            IdentityError::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            IdentityError::Store(err) => {
                if touchline_db::classify(err).is_transient() {
                    ErrorCode::Unavailable
                } else {
                    ErrorCode::Internal
                }
            }
            IdentityError::Planner(err) => {
                if err.is_cancelled() {
                    ErrorCode::Unavailable
                } else {
                    ErrorCode::Internal
                }
            }
            IdentityError::UnreadableReply(_) => ErrorCode::Internal,
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            IdentityError::Rejected(Rejection::TooManyIdentifiers { limit, .. }) => {
                vec![FieldViolation::new(
                    "items",
                    "TOO_MANY_IDENTIFIERS",
                    format!("at most {limit} identifiers per call, summed over all items"),
                )]
            }
            IdentityError::Rejected(Rejection::Invalid(violations)) => violations.clone(),
            IdentityError::Contention { .. }
            | IdentityError::NotFound(_)
            | IdentityError::FailedPrecondition(_)
            | IdentityError::Stale(_)
            | IdentityError::Store(_)
            | IdentityError::Planner(_)
            | IdentityError::UnreadableReply(_) => Vec::new(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self.code() {
            ErrorCode::Unavailable | ErrorCode::Aborted => Some(RETRY_AFTER),
            ErrorCode::InvalidArgument
            | ErrorCode::NotFound
            | ErrorCode::AlreadyExists
            | ErrorCode::FailedPrecondition
            | ErrorCode::PermissionDenied
            | ErrorCode::Unauthenticated
            | ErrorCode::ResourceExhausted
            | ErrorCode::DeadlineExceeded
            | ErrorCode::Cancelled
            | ErrorCode::Unimplemented
            | ErrorCode::OutOfRange
            | ErrorCode::DataLoss
            | ErrorCode::Internal => None,
        }
    }
}
