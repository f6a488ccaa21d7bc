//! What can go wrong when feeding or querying the projection, naming the field at fault so
//! the modeling service can say which input it refused.

use thiserror::Error;
use touchline_analytics::funnel::FunnelError;
use touchline_analytics::lifecycle::LifecycleError;
use touchline_analytics::paths::PathsError;
use touchline_analytics::retention::RetentionError;

/// Why the projection refused an input or a query.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ProjectionError {
    /// A dictionary reached the most codes its column can hold.
    #[error("the {column} dictionary is full at {limit} codes")]
    DictionaryFull {
        /// The column, in the contract's field names.
        column: &'static str,
        /// The most codes the column holds.
        limit: usize,
    },
    /// A code was not handed out by the dictionary it claims to come from.
    #[error("code {code} is unknown to the {column} dictionary")]
    UnknownCode {
        /// The column whose dictionary does not know the code.
        column: &'static str,
        /// The offending code.
        code: u32,
    },
    /// A value does not fit the projection's storage (times and sequences keep 48 bits).
    #[error("{field} {value} is outside what the projection stores")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The offending value.
        value: i128,
    },
    /// A setting or a query argument is out of its range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The setting or argument.
        field: &'static str,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The funnel refused its definition or its input.
    #[error(transparent)]
    Funnel(#[from] FunnelError),
    /// Retention refused its input.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// Lifecycle refused its input.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// Paths refused their options or input.
    #[error(transparent)]
    Paths(#[from] PathsError),
}

pub(crate) fn invalid(field: &'static str, reason: &'static str) -> ProjectionError {
    ProjectionError::Invalid { field, reason }
}
