//! The one error type of the collection service and its mapping to the
//! shared error vocabulary.
// Error mappings name every variant: a new one must choose its code, not fall through.
#![warn(clippy::wildcard_enum_match_arm)]

use std::sync::Arc;
use std::time::Duration;

use touchline_error::{ApiError, ErrorCode, FieldViolation};

use crate::committer::CommitError;
use crate::limits::LimitError;

/// Failures of the collection service.
#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    /// The batch holds more events than allowed.
    #[error("a batch may hold at most {limit} events; this one has {actual}")]
    BatchTooLarge {
        /// The limit.
        limit: usize,
        /// What was sent.
        actual: usize,
    },
    /// The batch holds no events.
    #[error("a batch must hold at least one event")]
    EmptyBatch,
    /// The batch is over the byte limit.
    #[error("a batch may hold at most {limit} bytes; this one has {actual}")]
    BatchTooBig {
        /// The limit.
        limit: usize,
        /// What was sent.
        actual: usize,
    },
    /// A rate or capacity limit.
    #[error(transparent)]
    Limited(#[from] LimitError),
    /// The request is malformed.
    #[error("{message}")]
    Invalid {
        /// What is wrong, for people.
        message: String,
        /// Field by field.
        violations: Vec<FieldViolation>,
    },
    /// The named resource does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The id is taken.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The etag is stale.
    #[error("the etag is stale: re-read the source and retry")]
    StaleEtag,
    /// Another call with the same idempotency key is acting now.
    #[error("{}", touchline_error::REQUEST_IN_FLIGHT)]
    InFlight,
    /// The resource is not in a state that allows the operation.
    #[error("{0}")]
    FailedPrecondition(String),
    /// PostgreSQL failed.
    #[error("storing failed")]
    Store(#[source] Arc<sqlx::Error>),
    /// The service is shutting down.
    #[error("the service is shutting down")]
    ShuttingDown,
    /// The caller went away before the reply could be sent.
    #[error("the caller went away")]
    CallerGone,
}

impl CollectionError {
    /// An invalid request with one violation.
    pub fn invalid(field: &str, reason: &'static str, description: impl Into<String>) -> Self {
        let description = description.into();
        CollectionError::Invalid {
            message: format!("{field}: {description}"),
            violations: vec![FieldViolation::new(field, reason, description)],
        }
    }

    /// An invalid request with many violations.
    pub fn violations(violations: Vec<FieldViolation>) -> Self {
        let message = match violations.as_slice() {
            [one] => format!("{}: {}", one.field, one.description),
            many => format!("{} fields are invalid", many.len()),
        };
        CollectionError::Invalid {
            message,
            violations,
        }
    }
}

impl From<sqlx::Error> for CollectionError {
    fn from(err: sqlx::Error) -> Self {
        CollectionError::Store(Arc::new(err))
    }
}

impl From<CommitError> for CollectionError {
    fn from(err: CommitError) -> Self {
        match err {
            CommitError::Store(err) => CollectionError::Store(err),
            CommitError::Stopped => CollectionError::ShuttingDown,
        }
    }
}

impl ApiError for CollectionError {
    fn code(&self) -> ErrorCode {
        match self {
            CollectionError::BatchTooLarge { .. }
            | CollectionError::EmptyBatch
            | CollectionError::Invalid { .. } => ErrorCode::InvalidArgument,
            CollectionError::BatchTooBig { .. } | CollectionError::Limited(_) => {
                ErrorCode::ResourceExhausted
            }
            CollectionError::NotFound(_) => ErrorCode::NotFound,
            CollectionError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            CollectionError::StaleEtag | CollectionError::InFlight => ErrorCode::Aborted,
            CollectionError::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            CollectionError::ShuttingDown => ErrorCode::Unavailable,
            CollectionError::CallerGone => ErrorCode::Cancelled,
            CollectionError::Store(err) => {
                if touchline_db::classify(err).is_transient() {
                    ErrorCode::Unavailable
                } else {
                    ErrorCode::Internal
                }
            }
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            CollectionError::BatchTooLarge { limit, .. } => vec![FieldViolation::new(
                "events",
                "BATCH_TOO_LARGE",
                format!("at most {limit} events per call"),
            )],
            CollectionError::EmptyBatch => {
                vec![FieldViolation::new("events", "EMPTY", "must not be empty")]
            }
            CollectionError::Invalid { violations, .. } => violations.clone(),
            CollectionError::BatchTooBig { .. }
            | CollectionError::Limited(_)
            | CollectionError::NotFound(_)
            | CollectionError::AlreadyExists(_)
            | CollectionError::StaleEtag
            | CollectionError::InFlight
            | CollectionError::FailedPrecondition(_)
            | CollectionError::ShuttingDown
            | CollectionError::CallerGone
            | CollectionError::Store(_) => Vec::new(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            CollectionError::Limited(
                LimitError::RateExceeded { retry_after, .. } | LimitError::Busy { retry_after },
            ) => Some(*retry_after),
            CollectionError::ShuttingDown => Some(Duration::from_secs(1)),
            CollectionError::InFlight => Some(Duration::from_millis(200)),
            CollectionError::BatchTooLarge { .. }
            | CollectionError::EmptyBatch
            | CollectionError::BatchTooBig { .. }
            | CollectionError::Invalid { .. }
            | CollectionError::NotFound(_)
            | CollectionError::AlreadyExists(_)
            | CollectionError::StaleEtag
            | CollectionError::FailedPrecondition(_)
            | CollectionError::CallerGone
            | CollectionError::Store(_) => {
                (self.code() == ErrorCode::Unavailable).then_some(Duration::from_millis(200))
            }
        }
    }
}
