//! Churn: who has stopped buying, by rule and by model.
//!
//! - `inactivity`: churned after N days without qualifying activity, with N suggested from
//!   the gaps between consecutive purchases.
//! - `rfm`: recency, frequency and monetary value scored by quantiles and mapped to the named
//!   segments of the contract.
//! - `bgnbd`: the BG/NBD model; its maximum-likelihood fit, P(alive) per person (the churn
//!   score is `1 − P(alive)`) and the expected purchases in a coming period.
//!
//! Everything is pure: the modeling service decides what a purchase and qualifying activity
//! are, gathers per-person times and values, and turns these results into replies. Where the
//! contract leaves a rule open, the module that implements it says which rule it chose.

pub mod bgnbd;
mod error;
pub mod inactivity;
pub mod rfm;
#[cfg(test)]
mod tests;

pub use error::ChurnError;
