//! The MBG/NBD probability-alive model (Batislam, Denizel and Filiztekin, 2007): BG/NBD's story
//! with one more chance to drop out, right after the first purchase.
//!
//! Why it exists beside BG/NBD: BG/NBD lets a customer drop out only after a repeat purchase,
//! so everyone who bought once has P(alive) = 1 and a churn score of 0, however long ago that
//! purchase was. Where most buyers buy once, that ranks most of them as the safest customers.
//! MBG/NBD tosses the dropout coin after the first purchase too, so a one-time buyer's
//! P(alive) falls as their purchase ages.
//!
//! With x repeat purchases, t_x the time of the last purchase since the first and T the time
//! since the first purchase:
//!
//! - likelihood: `B(a, b+x+1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))` plus
//!   `B(a+1, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x))`, with no `[x>0]`: the second
//!   term, "dropped out right after the last purchase", exists for x = 0 too;
//! - `P(alive) = 1 / (1 + a/(b+x) · ((α+T)/(α+t_x))^(r+x))`;
//! - expected purchases in the next t:
//!   `(a+b+x)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x+1; a+b+x; t/(α+T+t))] · P(alive)`
//!   (with Wagner and Hoppe's 2008 correction), finite and smooth for every a > 0.
//!
//! These are the formulas of lifetimes' `ModifiedBetaGeoFitter`. The parameters, the customer
//! summary, the fit options and the fit's outcome are BG/NBD's types (the four parameters mean
//! the same in both models); the computations are `BetaGeoModel::MbgNbd`'s, which share the
//! BG/NBD machinery (see `bgnbd::model` for how the two differ in one count).

use super::ChurnError;
use super::bgnbd::{BetaGeoModel, BgNbdFit, BgNbdParams, CustomerSummary, FitOptions};

const MODEL: BetaGeoModel = BetaGeoModel::MbgNbd;

/// The log-likelihood of one customer.
pub fn customer_log_likelihood(params: &BgNbdParams, customer: &CustomerSummary) -> f64 {
    MODEL.customer_log_likelihood(params, customer)
}

/// The log-likelihood of a set of customers (the sum of `customer_log_likelihood`).
pub fn log_likelihood(params: &BgNbdParams, customers: &[CustomerSummary]) -> f64 {
    MODEL.log_likelihood(params, customers)
}

/// P(alive) = 1 / (1 + a/(b+x) · ((α+T)/(α+t_x))^(r+x)).
pub fn probability_alive(params: &BgNbdParams, customer: &CustomerSummary) -> f64 {
    MODEL.probability_alive(params, customer)
}

/// The churn score `1 − P(alive)`, computed directly so small scores keep their precision.
pub fn churn_score(params: &BgNbdParams, customer: &CustomerSummary) -> f64 {
    MODEL.churn_score(params, customer)
}

/// The expected purchases of `customer` in the next `horizon` time units.
pub fn expected_purchases(
    params: &BgNbdParams,
    customer: &CustomerSummary,
    horizon: f64,
) -> Result<f64, ChurnError> {
    MODEL.expected_purchases(params, customer, horizon)
}

/// Fits r, α, a, b by maximum likelihood; refuses an empty or invalid customer list.
pub fn fit_mbgnbd(
    customers: &[CustomerSummary],
    options: &FitOptions,
) -> Result<BgNbdFit, ChurnError> {
    MODEL.fit(customers, options)
}
