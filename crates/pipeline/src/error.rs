//! What can go wrong while a log is tailed, in the shared vocabulary of codes.
//!
//! The caller of a `Tail…` stream learns which selector field it got wrong, or that the log is
//! unavailable for now (retry) or broken (INTERNAL); store text and decoder messages go to the
//! log with their whole cause chain, never to the caller.
// Error mappings name every variant: a new one must choose its code, not fall through.
#![warn(clippy::wildcard_enum_match_arm)]

use touchline_error::{ApiError, ErrorCode, FieldViolation};

/// A failure of a tailed log, or of the selector a caller sent.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The selector asks for something no caller may ask for.
    #[error("the tail selector is invalid")]
    InvalidSelector(Vec<FieldViolation>),
    /// The caller's tenant may not read what the selector names.
    #[error("{0}")]
    PermissionDenied(&'static str),
    /// The store holding the log did not answer; the stream can be opened again.
    #[error("the {log} is temporarily unavailable")]
    Unavailable {
        /// Which log, for people.
        log: &'static str,
        /// What the store said.
        #[source]
        cause: sqlx::Error,
    },
    /// Reading the log failed for a reason retrying will not mend.
    #[error("reading the {log} failed")]
    Store {
        /// Which log, for people.
        log: &'static str,
        /// What the store said.
        #[source]
        cause: sqlx::Error,
    },
    /// A stored record does not decode.
    #[error("{log} record {sequence} is unreadable")]
    Unreadable {
        /// Which log, for people.
        log: &'static str,
        /// The record's sequence.
        sequence: i64,
        /// What the decoder said.
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl LogError {
    /// A store failure reading `log`, classified as transient or not. The caller hears only
    /// which log; the cause is logged once: here for an outage, by the shared mapping for the
    /// rest (it logs every INTERNAL error with its chain).
    pub fn store(log: &'static str, cause: sqlx::Error) -> Self {
        if touchline_db::classify(&cause).is_transient() {
            let err = Self::Unavailable { log, cause };
            tracing::warn!(error = %touchline_error::cause_chain(&err), "reading a log failed");
            err
        } else {
            Self::Store { log, cause }
        }
    }

    /// A record of `log` at `sequence` that does not decode (logged by the shared mapping).
    pub fn unreadable(
        log: &'static str,
        sequence: i64,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Unreadable {
            log,
            sequence,
            cause: Box::new(cause),
        }
    }
}

impl ApiError for LogError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidSelector(_) => ErrorCode::InvalidArgument,
            Self::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Self::Unavailable { .. } => ErrorCode::Unavailable,
            Self::Store { .. } | Self::Unreadable { .. } => ErrorCode::Internal,
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::InvalidSelector(violations) => violations.clone(),
            Self::PermissionDenied(_)
            | Self::Unavailable { .. }
            | Self::Store { .. }
            | Self::Unreadable { .. } => Vec::new(),
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Unavailable { .. } => Some(std::time::Duration::from_secs(1)),
            Self::InvalidSelector(_)
            | Self::PermissionDenied(_)
            | Self::Store { .. }
            | Self::Unreadable { .. } => None,
        }
    }
}

/// Where a log's failures become statuses: through the one shared mapping.
impl From<LogError> for tonic::Status {
    fn from(err: LogError) -> Self {
        touchline_error::to_status(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_store_reaches_the_caller_without_its_text() {
        let status = tonic::Status::from(LogError::store(
            "clean log",
            sqlx::Error::Protocol("secret internals".to_owned()),
        ));
        assert!(!status.message().contains("secret"));
    }

    #[test]
    fn an_undecodable_record_is_internal_and_names_no_decoder_text() {
        let cause = std::io::Error::other("decoder detail");
        let status = tonic::Status::from(LogError::unreadable("raw log", 7, cause));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("decoder detail"));
    }

    #[test]
    fn a_bad_selector_names_its_field() {
        let status = tonic::Status::from(LogError::InvalidSelector(vec![FieldViolation::new(
            "selector.max_batch_size",
            "OUT_OF_RANGE",
            "must be within 1..=5000",
        )]));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "the tail selector is invalid");
    }
}
