//! The error-code vocabulary shared by every touchline service, and the one
//! place where it becomes a gRPC status.
//!
//! Domain code never builds a `tonic::Status`: each service has its own
//! `thiserror` enum implementing [`ApiError`], and its gRPC adapter calls
//! [`to_status`]. That keeps the mapping exhaustive (no wildcard arms), keeps
//! SQL text and internal cause chains out of replies (they are logged), and
//! gives every caller the same rich details: field violations, retry hints and
//! a machine-readable reason.

use std::collections::HashMap;
use std::time::Duration;

use tonic_types::{ErrorDetails, StatusExt};

/// The domain every `ErrorInfo` detail names.
pub const ERROR_DOMAIN: &str = "touchline.dev";

/// What a call hears (as ABORTED, with a retry hint) when another call with
/// its idempotency key is still acting.
pub const REQUEST_IN_FLIGHT: &str = "a call with this request_id is still in progress; retry it \
     shortly / 使用相同 request_id 的调用仍在进行中，请稍后重试";

/// What kind of failure an error is, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed; retrying it unchanged will fail again.
    InvalidArgument,
    /// A named resource does not exist (or the caller may not know it does).
    NotFound,
    /// A resource with that name or key exists already.
    AlreadyExists,
    /// The system is not in a state that allows the operation.
    FailedPrecondition,
    /// The caller is known but lacks the right.
    PermissionDenied,
    /// The caller could not be authenticated.
    Unauthenticated,
    /// A quota, rate or size limit was hit.
    ResourceExhausted,
    /// A dependency is down or overloaded; retry with backoff.
    Unavailable,
    /// The deadline passed before the work finished.
    DeadlineExceeded,
    /// A concurrent change won; retry the whole read-modify-write.
    Aborted,
    /// The caller went away.
    Cancelled,
    /// The operation exists in the contract but is not built yet.
    Unimplemented,
    /// A position the caller named is outside what is kept (an expired cursor).
    OutOfRange,
    /// What the caller sent arrived damaged (a checksum does not match); send it again.
    DataLoss,
    /// A bug or an unexpected failure; details are in the server log only.
    Internal,
}

impl ErrorCode {
    /// The gRPC status code for this kind of failure.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::AlreadyExists => tonic::Code::AlreadyExists,
            ErrorCode::FailedPrecondition => tonic::Code::FailedPrecondition,
            ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            ErrorCode::Aborted => tonic::Code::Aborted,
            ErrorCode::Cancelled => tonic::Code::Cancelled,
            ErrorCode::Unimplemented => tonic::Code::Unimplemented,
            ErrorCode::OutOfRange => tonic::Code::OutOfRange,
            ErrorCode::DataLoss => tonic::Code::DataLoss,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    /// What a caller hears when a call this service made to another one, on the caller's
    /// behalf, failed with `code`. The upstream's verdict on the request itself survives the
    /// hop (an INVALID_ARGUMENT stays one, so does a deadline or a limit); what is only this
    /// service's trouble — its own credentials refused, a method the upstream does not know
    /// yet, an upstream failing or answering garbage — is UNAVAILABLE, which the caller can
    /// retry. Exhaustive on purpose: a new code must be placed here.
    pub fn after_hop(code: tonic::Code) -> ErrorCode {
        match code {
            tonic::Code::InvalidArgument => ErrorCode::InvalidArgument,
            tonic::Code::NotFound => ErrorCode::NotFound,
            tonic::Code::AlreadyExists => ErrorCode::AlreadyExists,
            tonic::Code::FailedPrecondition => ErrorCode::FailedPrecondition,
            tonic::Code::OutOfRange => ErrorCode::OutOfRange,
            tonic::Code::PermissionDenied => ErrorCode::PermissionDenied,
            tonic::Code::ResourceExhausted => ErrorCode::ResourceExhausted,
            tonic::Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            tonic::Code::Aborted => ErrorCode::Aborted,
            tonic::Code::Cancelled => ErrorCode::Cancelled,
            tonic::Code::Unauthenticated
            | tonic::Code::Unimplemented
            | tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Internal
            | tonic::Code::DataLoss
            | tonic::Code::Ok => ErrorCode::Unavailable,
        }
    }

    /// The stable reason string put in `ErrorInfo`.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorCode::Aborted => "ABORTED",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::Unimplemented => "UNIMPLEMENTED",
            ErrorCode::OutOfRange => "OUT_OF_RANGE",
            ErrorCode::DataLoss => "DATA_LOSS",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, e.g. `events[3].original_timestamp`.
    pub field: String,
    /// What is wrong, for people.
    pub description: String,
    /// A stable machine-readable reason, e.g. `EMPTY_EVENT_NAME`.
    pub reason: &'static str,
}

impl FieldViolation {
    /// A violation of `field` for `reason`, described for people.
    pub fn new(
        field: impl Into<String>,
        reason: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
            reason,
        }
    }

    /// (field, reason) of each violation: what tests and logs compare.
    pub fn field_reasons(violations: &[FieldViolation]) -> Vec<(&str, &'static str)> {
        violations
            .iter()
            .map(|v| (v.field.as_str(), v.reason))
            .collect()
    }
}

/// An error a service can return to its callers.
pub trait ApiError: std::error::Error {
    /// The kind of failure.
    fn code(&self) -> ErrorCode;

    /// Field violations for invalid input.
    fn field_violations(&self) -> Vec<FieldViolation> {
        Vec::new()
    }

    /// How long the caller should wait before retrying, when retrying helps.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Turns a service error into a rich gRPC status. Internal errors are logged
/// with their whole cause chain and reach the caller only as a generic message.
pub fn to_status<E: ApiError + ?Sized>(err: &E) -> tonic::Status {
    let code = err.code();
    let message = match code {
        ErrorCode::Internal => {
            tracing::error!(error = %cause_chain(err), "internal error");
            "internal error; see the server log".to_owned()
        }
        _ => err.to_string(),
    };
    let mut details = ErrorDetails::new();
    details.set_error_info(code.reason(), ERROR_DOMAIN, HashMap::new());
    let violations: Vec<tonic_types::FieldViolation> = err
        .field_violations()
        .into_iter()
        .map(|violation| tonic_types::FieldViolation {
            // The reason leads the description too, for callers that show
            // the text alone.
            description: format!("{}: {}", violation.reason, violation.description),
            field: violation.field,
            reason: violation.reason.to_owned(),
            localized_message: None,
        })
        .collect();
    if !violations.is_empty() {
        details.set_bad_request(violations);
    }
    if let Some(delay) = err.retry_after() {
        details.set_retry_info(Some(delay));
    }
    tonic::Status::with_error_details(code.grpc_code(), message, details)
}

/// `err: cause: cause …` — the whole chain on one line, for logs.
pub fn cause_chain(err: &(impl std::error::Error + ?Sized)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Bad(ErrorCode, Vec<FieldViolation>);

    impl std::fmt::Display for Bad {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("secret sql text")
        }
    }
    impl std::error::Error for Bad {}
    impl ApiError for Bad {
        fn code(&self) -> ErrorCode {
            self.0
        }
        fn field_violations(&self) -> Vec<FieldViolation> {
            self.1.clone()
        }
        fn retry_after(&self) -> Option<Duration> {
            (self.0 == ErrorCode::ResourceExhausted).then_some(Duration::from_millis(250))
        }
    }

    #[test]
    fn an_upstreams_verdict_survives_the_hop_and_its_trouble_does_not() {
        assert_eq!(
            ErrorCode::after_hop(tonic::Code::InvalidArgument),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            ErrorCode::after_hop(tonic::Code::DeadlineExceeded),
            ErrorCode::DeadlineExceeded
        );
        for trouble in [
            tonic::Code::Internal,
            tonic::Code::Unauthenticated,
            tonic::Code::Unknown,
        ] {
            assert_eq!(ErrorCode::after_hop(trouble), ErrorCode::Unavailable);
        }
    }

    #[test]
    fn internal_errors_hide_their_text() {
        let status = to_status(&Bad(ErrorCode::Internal, vec![]));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("sql"));
    }

    #[test]
    fn violations_and_retry_hints_become_details() {
        let status = to_status(&Bad(
            ErrorCode::InvalidArgument,
            vec![FieldViolation::new(
                "events[2].event",
                "EMPTY_EVENT_NAME",
                "must not be empty",
            )],
        ));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request detail");
        assert_eq!(bad.field_violations[0].field, "events[2].event");
        assert_eq!(bad.field_violations[0].reason, "EMPTY_EVENT_NAME");
        assert_eq!(
            bad.field_violations[0].description,
            "EMPTY_EVENT_NAME: must not be empty"
        );
        assert_eq!(
            details.error_info().map(|i| i.reason.as_str()),
            Some("INVALID_ARGUMENT")
        );

        let limited = to_status(&Bad(ErrorCode::ResourceExhausted, vec![]));
        let retry = limited
            .get_error_details()
            .retry_info()
            .cloned()
            .expect("retry info");
        assert_eq!(retry.retry_delay, Some(Duration::from_millis(250)));
    }
}
