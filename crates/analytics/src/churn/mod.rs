//! churn: to be built.
