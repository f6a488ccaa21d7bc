//! The reporting service's failures, in the shared vocabulary of codes.
#![warn(clippy::wildcard_enum_match_arm)]

use touchline_error::{ApiError, ErrorCode};

/// Why a report could not be composed.
#[derive(Debug, thiserror::Error)]
pub enum ReportingError {
    /// The modeling service failed the call reporting made for the caller; its code is kept
    /// (see [`ErrorCode::after_hop`]) and its text stays in the log.
    #[error("the modeling service could not answer ({})", .0.reason())]
    Modeling(ErrorCode),
}

impl ReportingError {
    /// A failed modeling call, logged here with what modeling said.
    pub fn modeling(status: &tonic::Status) -> Self {
        tracing::warn!(code = ?status.code(), message = status.message(), "modeling call failed");
        Self::Modeling(ErrorCode::after_hop(status.code()))
    }
}

impl ApiError for ReportingError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Modeling(code) => *code,
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Modeling(ErrorCode::Unavailable | ErrorCode::ResourceExhausted) => {
                Some(std::time::Duration::from_secs(1))
            }
            Self::Modeling(_) => None,
        }
    }
}

/// Where reporting's failures become statuses: through the one shared mapping.
impl From<ReportingError> for tonic::Status {
    fn from(err: ReportingError) -> Self {
        touchline_error::to_status(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_from_modeling_stays_a_refusal_and_its_text_stays_home() {
        let status = tonic::Status::from(ReportingError::modeling(
            &tonic::Status::invalid_argument("modeling's own words"),
        ));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(!status.message().contains("own words"));
        let outage = tonic::Status::from(ReportingError::modeling(&tonic::Status::internal("x")));
        assert_eq!(outage.code(), tonic::Code::Unavailable);
    }
}
