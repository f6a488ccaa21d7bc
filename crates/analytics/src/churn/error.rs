//! The one error type of the churn models.
//!
//! Every variant names the input field at fault, so the modeling service can turn it into a
//! field violation without parsing messages.

/// Why a churn computation refused its input or could not finish.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChurnError {
    /// An input value is out of its documented range.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The input field at fault (e.g. `customers.recency`).
        field: &'static str,
        /// The position in a list input, when the field is one element of a list.
        index: Option<usize>,
        /// What is wrong, lowercase, no trailing period.
        reason: String,
    },
    /// The hypergeometric series behind the expected-purchases forecast did not reach its
    /// error bound within the term budget (the horizon is huge compared with the customer's age).
    #[error("expected purchases did not converge for horizon {horizon} after {terms} terms")]
    SeriesDidNotConverge {
        /// The forecast horizon that was asked for, in model time units.
        horizon: f64,
        /// Terms summed before giving up.
        terms: usize,
    },
}

impl ChurnError {
    /// An `InvalidInput` for a scalar field.
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            index: None,
            reason: reason.into(),
        }
    }

    /// An `InvalidInput` for one element of a list field.
    pub(crate) fn invalid_at(field: &'static str, index: usize, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            index: Some(index),
            reason: reason.into(),
        }
    }
}
