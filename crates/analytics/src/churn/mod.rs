//! Churn: who has stopped buying, by rule and by model.
//!
//! - `inactivity`: churned after N days without qualifying activity, with N suggested from
//!   the gaps between consecutive purchases.
//! - `rfm`: recency, frequency and monetary value scored by quantiles and mapped to the named
//!   segments of the contract.
//! - `bgnbd`: the BG/NBD model; its maximum-likelihood fit, P(alive) per person (the churn
//!   score is `1 − P(alive)`) and the expected purchases in a coming period.
//! - `mbgnbd`: the MBG/NBD variant, which lets a customer drop out right after the first
//!   purchase too, so one-time buyers are not all scored as certainly alive; it shares BG/NBD's
//!   types and machinery (`bgnbd::BetaGeoModel` names either model).
//!
//! Rules chosen where the contract and the definitions leave room (each module says more):
//! - Time unit. The contract gives BG/NBD parameters in days; the fit itself is unit-agnostic
//!   (α is in whatever unit the summaries use), so the service builds summaries with
//!   `TimeUnit::Days`. Weeks exist for comparisons with the paper and lifetimes' CDNOW data.
//! - Optimiser. BFGS with the analytic gradient in log-parameters instead of Nelder–Mead: a
//!   fit over a million customers needs a few dozen likelihood passes instead of hundreds.
//! - `penalizer` has lifetimes' shape (`coef · Σ params²` added to the mean negative
//!   log-likelihood) but applies to α in the caller's unit, not lifetimes' rescaled α.
//! - A person without any purchase has no BG/NBD summary; the contract leaves their score unset.
//!   A person with one purchase (x = 0) has P(alive) = 1 by the BG/NBD formula, below 1 by
//!   MBG/NBD's. A summary with x = 0 must have t_x = 0.
//! - RFM: nearest-rank quantile bounds, equal values share a level; the default segment map is
//!   the R `rfm` package's table, made first-match, with Champions ahead of Loyal and its
//!   "Lost" row split into Lost (R = 1) and Hibernating (R = 2); other level counts are mapped
//!   onto 1–5 for the default map only.
//! - Inactivity: elapsed 86,400-second days, churned at exactly N days, never-active persons are
//!   not churned; the suggestion falls back to 90 days below 10 gaps.
//!
//! Everything is pure: the modeling service decides what a purchase and qualifying activity
//! are, gathers per-person times and values, and turns these results into replies. Where the
//! contract leaves a rule open, the module that implements it says which rule it chose.

pub mod bgnbd;
mod error;
pub mod inactivity;
pub mod mbgnbd;
pub mod rfm;
#[cfg(test)]
mod tests;

pub use error::ChurnError;
