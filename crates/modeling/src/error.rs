//! The modeling service's failures and how each reaches a caller: the one place where they
//! become gRPC codes (through [`touchline_error::to_status`]). A store failure's text stays in
//! the server log; an upstream's code is kept, so a caller can tell an outage of governance or
//! identity (UNAVAILABLE, retry) from a request the upstream refused.
// Error mappings name every variant: a new one must choose its code, not fall through.
#![warn(clippy::wildcard_enum_match_arm)]

use std::time::Duration;

use touchline_error::{ApiError, ErrorCode, FieldViolation};

/// Failures of the modeling service.
#[derive(Debug, thiserror::Error)]
pub enum ModelingError {
    /// Fields of the request that cannot be served.
    #[error("the request has {} invalid field(s)", .0.len())]
    Invalid(Vec<FieldViolation>),
    /// The store does not yet reflect the raw-log position the caller asked for.
    #[error(
        "the event store does not yet reflect raw-log position {wanted}; retry, or raise the deadline"
    )]
    NotYetVisible {
        /// The position asked for.
        wanted: i64,
    },
    /// The caller's deadline comes before the store reflects the position asked for.
    #[error(
        "the caller's deadline passed before the event store reflected raw-log position {wanted}"
    )]
    DeadlineExceeded {
        /// The position asked for.
        wanted: i64,
    },
    /// A service modeling relies on failed; its code is kept.
    #[error("{service} could not answer ({code:?})")]
    Upstream {
        /// governance or identity.
        service: &'static str,
        /// The upstream's code.
        code: tonic::Code,
    },
    /// PostgreSQL failed.
    #[error("the event store could not answer")]
    Store(#[from] sqlx::Error),
    /// The journey projection refused what the service handed it: a bug or a full
    /// dictionary, never the caller's request (requests are checked before).
    #[error("the journey projection failed")]
    Projection(#[source] touchline_projection::ProjectionError),
    /// A page token's computation is gone (expired after an hour, or made by another
    /// replica): the listing must start again.
    #[error("the listing this page token continues has expired; start again without a token")]
    ListingExpired,
    /// A query could hold more memory than one query may.
    #[error(
        "the query could hold up to {estimate_mib} MiB, over the {budget_mib} MiB one query may use; narrow its range, steps or breakdown"
    )]
    TooLarge {
        /// The query's upper bound.
        estimate_mib: u64,
        /// The budget.
        budget_mib: u64,
    },
    /// A model would need more channels computed exactly than it may.
    #[error(
        "models[{model}] needs {channels} channels valued exactly, more than {limit}: narrow the channels with filters, or set allow_approximation"
    )]
    TooManyChannels {
        /// The model's index in the request.
        model: usize,
        /// Channels taking part.
        channels: usize,
        /// The exact limit.
        limit: usize,
    },
    /// The named thing does not exist (or was erased).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// A write named a version that is no longer current (a stale etag).
    #[error("{0}; read again and retry")]
    Aborted(&'static str),
    /// A resource with that name exists already.
    #[error("a {0} with that id exists already")]
    AlreadyExists(&'static str),
    /// The resource is not in a state that allows the call; the text says what to do.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A segment's first build has not finished.
    #[error("the segment's first build has not finished; retry shortly")]
    Building,
    /// A change-log cursor older than what is kept.
    #[error(
        "changes after sequence {cursor} are no longer kept (the oldest kept is {oldest}); bootstrap again with ListSegmentMembers and continue from its as_of_sequence / 该游标之后的变更已过保留期，请用 ListSegmentMembers 重新全量同步，再从其 as_of_sequence 继续"
    )]
    CursorExpired {
        /// The cursor given.
        cursor: i64,
        /// The oldest sequence kept.
        oldest: i64,
    },
    /// A replay from a time older than the triggers kept.
    #[error(
        "triggers before {kept_since} are no longer kept; replay from a later time or a sequence / 该时间之前的触发已过保留期，请从更晚的时间或序号重放"
    )]
    ReplayTooOld {
        /// The oldest time whose triggers are all kept.
        kept_since: chrono::DateTime<chrono::Utc>,
    },
    /// A task of the service failed (the log says how).
    #[error("the {0} failed")]
    Internal(&'static str),
}

impl ModelingError {
    /// One invalid field.
    pub fn invalid(field: &str, reason: &'static str, description: impl Into<String>) -> Self {
        ModelingError::Invalid(vec![FieldViolation::new(field, reason, description)])
    }

    /// A failed call to `service`, its code kept.
    pub fn upstream(service: &'static str, status: &tonic::Status) -> Self {
        tracing::warn!(service, code = ?status.code(), message = status.message(), "upstream call failed");
        ModelingError::Upstream {
            service,
            code: status.code(),
        }
    }
}

impl ApiError for ModelingError {
    fn code(&self) -> ErrorCode {
        match self {
            // Too many channels is the request's to fix (set the flag or narrow the
            // channels), whatever the stored data holds, so it is an invalid argument.
            ModelingError::Invalid(_) | ModelingError::TooManyChannels { .. } => {
                ErrorCode::InvalidArgument
            }
            ModelingError::NotYetVisible { .. } => ErrorCode::Unavailable,
            ModelingError::DeadlineExceeded { .. } => ErrorCode::DeadlineExceeded,
            ModelingError::Upstream { code, .. } => ErrorCode::after_hop(*code),
            ModelingError::Store(err) if touchline_db::classify(err).is_transient() => {
                ErrorCode::Unavailable
            }
            ModelingError::Store(_) => ErrorCode::Internal,
            ModelingError::Projection(touchline_projection::ProjectionError::DictionaryFull {
                ..
            }) => ErrorCode::ResourceExhausted,
            ModelingError::NotFound(_) => ErrorCode::NotFound,
            ModelingError::ListingExpired => ErrorCode::FailedPrecondition,
            ModelingError::TooLarge { .. } => ErrorCode::ResourceExhausted,
            ModelingError::Aborted(_) => ErrorCode::Aborted,
            ModelingError::AlreadyExists(_) => ErrorCode::AlreadyExists,
            ModelingError::FailedPrecondition(_) | ModelingError::Building => {
                ErrorCode::FailedPrecondition
            }
            ModelingError::CursorExpired { .. } | ModelingError::ReplayTooOld { .. } => {
                ErrorCode::OutOfRange
            }
            ModelingError::Projection(_) | ModelingError::Internal(_) => ErrorCode::Internal,
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            ModelingError::Invalid(violations) => violations.clone(),
            ModelingError::TooManyChannels { model, .. } => vec![FieldViolation::new(
                format!("models[{model}].allow_approximation"),
                "TOO_MANY_CHANNELS",
                self.to_string(),
            )],
            ModelingError::NotYetVisible { .. }
            | ModelingError::DeadlineExceeded { .. }
            | ModelingError::Upstream { .. }
            | ModelingError::Store(_)
            | ModelingError::Projection(_)
            | ModelingError::ListingExpired
            | ModelingError::TooLarge { .. }
            | ModelingError::NotFound(_)
            | ModelingError::Aborted(_)
            | ModelingError::AlreadyExists(_)
            | ModelingError::FailedPrecondition(_)
            | ModelingError::Building
            | ModelingError::CursorExpired { .. }
            | ModelingError::ReplayTooOld { .. }
            | ModelingError::Internal(_) => Vec::new(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        if matches!(self, ModelingError::Building) {
            return Some(Duration::from_secs(1));
        }
        (self.code() == ErrorCode::Unavailable).then_some(Duration::from_secs(1))
    }
}
