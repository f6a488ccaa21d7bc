//! The governance service's failures and how each reaches a caller: the one place where they
//! become gRPC codes (through [`touchline_error::to_status`]). A store failure's text stays in
//! the server log; callers get a fixed sentence.
// Error mappings name every variant: a new one must choose its code, not fall through.
#![warn(clippy::wildcard_enum_match_arm)]

use std::time::Duration;

use touchline_error::{ApiError, ErrorCode, FieldViolation};

use crate::replay::ReplayError;
use crate::reprocess::StartError;

/// Failures of the governance service.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    /// Bad input.
    #[error("invalid argument")]
    Invalid(Vec<FieldViolation>),
    /// Missing resource.
    #[error("{0} not found")]
    NotFound(String),
    /// Name taken.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Draft inconsistent or unchanged.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Concurrent change.
    #[error("{0}")]
    Aborted(String),
    /// Another call with the same idempotency key is acting now.
    #[error("{}", touchline_error::REQUEST_IN_FLIGHT)]
    InFlight,
    /// A dependency is briefly unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// Part of the contract not built yet.
    #[error("{0}")]
    Unimplemented(String),
    /// Database trouble. The driver's text stays in the server log (the cause chain); callers
    /// get this sentence only.
    #[error("the governance store could not answer")]
    Store(#[from] sqlx::Error),
}

impl GovernanceError {
    /// One invalid field.
    pub fn invalid(field: &str, reason: &'static str, description: &str) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, reason, description)])
    }

    /// The problems a definition check found, each an invalid field.
    pub fn problems(problems: Vec<(String, String)>) -> Self {
        Self::Invalid(
            problems
                .into_iter()
                .map(|(f, d)| FieldViolation::new(f, "INVALID", d))
                .collect(),
        )
    }
}

impl ApiError for GovernanceError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Self::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            Self::Aborted(_) | Self::InFlight => ErrorCode::Aborted,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Unimplemented(_) => ErrorCode::Unimplemented,
            Self::Store(e) if touchline_db::classify(e).is_transient() => ErrorCode::Unavailable,
            Self::Store(_) => ErrorCode::Internal,
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::Invalid(v) => v.clone(),
            Self::NotFound(_)
            | Self::AlreadyExists(_)
            | Self::FailedPrecondition(_)
            | Self::Aborted(_)
            | Self::InFlight
            | Self::Unavailable(_)
            | Self::Unimplemented(_)
            | Self::Store(_) => Vec::new(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable(_) => Some(Duration::from_secs(1)),
            Self::InFlight => Some(Duration::from_millis(200)),
            Self::Store(e) if touchline_db::classify(e).is_transient() => {
                Some(Duration::from_secs(1))
            }
            Self::Store(_)
            | Self::Invalid(_)
            | Self::NotFound(_)
            | Self::AlreadyExists(_)
            | Self::FailedPrecondition(_)
            | Self::Aborted(_)
            | Self::Unimplemented(_) => None,
        }
    }
}

impl From<ReplayError> for GovernanceError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::VersionNotFound(v) => Self::NotFound(format!("dictionaryVersions/{v}")),
            ReplayError::MessageIdChanged(s) => Self::invalid(
                "corrections",
                "MESSAGE_ID_CHANGED",
                &format!("the correction of quarantined event {s} changes its message id"),
            ),
            ReplayError::Upstream(status) => {
                tracing::warn!(code = ?status.code(), "source registry unavailable during replay");
                Self::Unavailable("the source registry is unavailable; retry".to_owned())
            }
            ReplayError::Store(e) => Self::Store(e),
        }
    }
}

impl From<StartError> for GovernanceError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::VersionNotFound(v) => Self::NotFound(format!("dictionaryVersions/{v}")),
            StartError::NotActiveVersion { asked, active } => Self::FailedPrecondition(format!(
                "APPLY publishes under the active dictionary version {active}, not {asked}: \
                 publish the version first, or run a dry run \
                 (应用模式只能使用当前生效的词典版本 {active}：请先发布该版本，或改为试运行)"
            )),
            StartError::ApplyRunning(job) => Self::FailedPrecondition(format!(
                "reprocessJobs/{job} is applying an overlapping range; wait for it to finish \
                 (任务 {job} 正在应用重叠的时间范围，请待其完成)"
            )),
            StartError::Store(e) => Self::Store(e),
        }
    }
}
