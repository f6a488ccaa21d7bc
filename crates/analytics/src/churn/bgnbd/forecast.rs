//! The expected number of purchases in the next t time units of a customer with history
//! (x, t_x, T), for either model. With d the customer's chances to drop out so far (see
//! `model`: d = x for BG/NBD, x + 1 for MBG/NBD) and `z = t/(α+T+t)`:
//!
//! `E[Y(t) | x, t_x, T] = (a+b+d−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) · ₂F₁(r+x, b+d; a+b+d−1; z)]
//!                        · P(alive | x, t_x, T)`.
//!
//! For BG/NBD this is the paper's equation (10); for MBG/NBD it is
//! `(a+b+x)/(a−1) · [1 − (…)^(r+x) ₂F₁(r+x, b+x+1; a+b+x; z)] / (1 + a/(b+x) · ((α+T)/(α+t_x))^(r+x))`,
//! Batislam et al.'s expectation as corrected by Wagner and Hoppe (2008). Both come from one
//! argument: a customer alive at T with rate λ and dropout probability p lives on for an
//! exponential time of rate λp, so buys `(1 − e^(−λpt))/p` times on average in the next t;
//! given the history and alive, λ ~ Gamma(r+x, α+T) and p ~ Beta(a, b+d), and the mean of that
//! over both is the bracket times its factor. The mean is finite for every a > 0 (it is at most
//! λt), although E[1/p] is not for a ≤ 1: the closed form is its continuation there, and the
//! evaluation below keeps it finite and smooth through a = 1.
//!
//! Evaluated without the formula's two weak spots:
//! - `₂F₁(r+x, …)` grows like `(1−z)^−(r+x)` and overflows for large x. Euler's transformation
//!   `₂F₁(A, B; C; z) = (1−z)^(C−A−B) ₂F₁(C−A, C−B; C; z)` turns the bracket into
//!   `1 − (1−z)^(a−1) · F̃` with `F̃ = ₂F₁(a+b+d−1−r−x, a−1; a+b+d−1; z)`, whose parameters do
//!   not grow with x (d − x is 0 or 1).
//! - The factor `1/(a−1)` is singular at a = 1. With ε = a − 1, `F̃ = 1 + ε·G` where
//!   `G = Σ_{n≥1} (p)_n (a)_{n−1} / ((c)_n n!) zⁿ` (p = a+b+d−1−r−x, c = a+b+d−1), so the
//!   bracket over ε is `−expm1(ε ln(1−z))/ε − (1−z)^ε · G`, finite and smooth through a = 1
//!   (at ε = 0 the first part is `−ln(1−z)`).
//!
//! The series for G is summed until a proven bound on the rest is below 1e-15 of the sum: once
//! `n ≥ max(−p, 1−a, 1)`, every later ratio of consecutive terms is at most
//! `q = z · max(1, (p+n)/(n+1))` (the factor `(a−1+k)/(c+k)` is below 1 because
//! `c−(a−1) = b+d > 0`, and `|p+k|/(k+1)` moves monotonically towards 1), so when q < 1 the rest
//! after term n is at most `|term n| · q/(1−q)`. The series converges for every z < 1 but needs
//! about `35/(1−z)` terms; past `MAX_SERIES_TERMS` the forecast fails with
//! `SeriesDidNotConverge`.
//!
//! A fit on buyers who hardly ever drop out drives a and b to large values (a retail fit gave
//! about 10^12) with a/(a+b) finite. The series' sum then grows like `(1−z)^−a`: past e^600 it
//! overflows, and long before it cancels against `(1−z)^(a−1)`; it would also need about
//! `a·z` terms. So when `a·ln(1/(1−z)) > 600`, or `a+b+d ≥ 10^6`, the Beta(a, b+d) of the
//! dropout probability q is narrow and the mean of `g(q) = (1 − ((α+T)/(α+T+qt))^(r+x)) / q`
//! over it is taken at its two sigma points, `(g(q̄−σ) + g(q̄+σ))/2 · P(alive)`: exact for a
//! quadratic g, off by the Beta's skewness times σ³ beyond. Against the integral of the
//! definition it is within 1e-6 relative in the tests, from a+b = 10 to 4.4·10^12.

use super::model::{BetaGeoModel, BgNbdParams, CustomerSummary};
use crate::churn::error::ChurnError;

/// The most terms the hypergeometric series may take.
pub const MAX_SERIES_TERMS: usize = 1_000_000;

/// From this `a+b+d` on, the mean over the dropout probability is taken at the Beta's sigma
/// points instead of by the series (see the module docs).
pub const SIGMA_POINTS_FROM: f64 = 1e6;

/// Past this `a · ln(1/(1−z))` the series is not summed (see the module docs).
const SERIES_GROWTH_LIMIT: f64 = 600.0;

/// The BG/NBD expected purchases of `customer` in the next `horizon` time units (same unit as
/// the summaries and α); `horizon` must be finite and not negative.
pub fn expected_purchases(
    params: &BgNbdParams,
    customer: &CustomerSummary,
    horizon: f64,
) -> Result<f64, ChurnError> {
    BetaGeoModel::BgNbd.expected_purchases(params, customer, horizon)
}

impl BetaGeoModel {
    /// This model's expected purchases of `customer` in the next `horizon` time units (same
    /// unit as the summaries and α); `horizon` must be finite and not negative.
    pub fn expected_purchases(
        self,
        params: &BgNbdParams,
        customer: &CustomerSummary,
        horizon: f64,
    ) -> Result<f64, ChurnError> {
        expected(self, params, customer, horizon)
    }
}

fn expected(
    model: BetaGeoModel,
    params: &BgNbdParams,
    customer: &CustomerSummary,
    horizon: f64,
) -> Result<f64, ChurnError> {
    params.validate()?;
    customer.validate(None)?;
    if !(horizon.is_finite() && horizon >= 0.0) {
        return Err(ChurnError::invalid(
            "horizon",
            "must be finite and not negative",
        ));
    }
    if horizon == 0.0 {
        return Ok(0.0);
    }
    let BgNbdParams { r, alpha, a, b } = *params;
    let d = model.dropout_chances(customer.repeat_purchases);
    // Given alive with dropout probability q, the mean purchases in the horizon.
    let shape = r + customer.repeat_purchases as f64;
    let bought = |q: f64| -(-shape * (q * horizon / (alpha + customer.age)).ln_1p()).exp_m1() / q;
    let mean = a / (a + b + d);
    let z = horizon / (alpha + customer.age + horizon);
    let log_one_minus_z = -(horizon / (alpha + customer.age)).ln_1p();
    let epsilon = a - 1.0;
    // p = a+b+d−1−r−x, with d − x taken exactly rather than as a difference of large numbers.
    let p = a + b + model.first_purchase_chance() - 1.0 - r;
    if a + b + d >= SIGMA_POINTS_FROM || -a * log_one_minus_z > SERIES_GROWTH_LIMIT {
        let sd = (mean * (1.0 - mean) / (a + b + d + 1.0)).sqrt();
        if sd < mean && mean + sd < 1.0 {
            let both = 0.5 * (bought(mean - sd) + bought(mean + sd));
            return Ok(both * model.probability_alive(params, customer));
        }
        return Err(ChurnError::SeriesDidNotConverge { horizon, terms: 0 });
    }
    let g = tail_series(p, a, a + b + d - 1.0, z).ok_or(ChurnError::SeriesDidNotConverge {
        horizon,
        terms: MAX_SERIES_TERMS,
    })?;
    let first = if epsilon == 0.0 {
        -log_one_minus_z
    } else {
        -(epsilon * log_one_minus_z).exp_m1() / epsilon
    };
    let bracket_over_epsilon = first - (epsilon * log_one_minus_z).exp() * g;
    Ok((a + b + d - 1.0) * bracket_over_epsilon * model.probability_alive(params, customer))
}

/// `G = Σ_{n≥1} (p)_n (a)_{n−1} / ((c)_n n!) zⁿ`, or `None` past the term budget.
fn tail_series(p: f64, a: f64, c: f64, z: f64) -> Option<f64> {
    let bound_from = (-p).max(1.0 - a).max(1.0).ceil();
    let mut term = p / c * z;
    let mut sum = term;
    for n in 1..MAX_SERIES_TERMS {
        let nf = n as f64;
        if nf >= bound_from {
            let q = z * ((p + nf) / (nf + 1.0)).max(1.0);
            if q < 1.0 && term.abs() * q / (1.0 - q) <= 1e-15 * sum.abs() {
                return Some(sum);
            }
        }
        term *= (p + nf) * (a + nf - 1.0) / ((c + nf) * (nf + 1.0)) * z;
        sum += term;
        if term == 0.0 {
            return Some(sum);
        }
    }
    None
}
