//! The expected number of purchases in the next t time units of a customer with history
//! (x, t_x, T): the paper's equation (10),
//!
//! `E[Y(t) | x, t_x, T] = (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) · ₂F₁(r+x, b+x; a+b+x−1; z)]
//!                        / (1 + [x>0] · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))`, `z = t/(α+T+t)`.
//!
//! Evaluated without its two weak spots:
//! - `₂F₁(r+x, …)` grows like `(1−z)^−(r+x)` and overflows for large x. Euler's transformation
//!   `₂F₁(A, B; C; z) = (1−z)^(C−A−B) ₂F₁(C−A, C−B; C; z)` turns the bracket into
//!   `1 − (1−z)^(a−1) · F̃` with `F̃ = ₂F₁(a+b−1−r, a−1; a+b+x−1; z)`, whose parameters do not
//!   grow with x.
//! - The factor `1/(a−1)` is singular at a = 1. With ε = a − 1, `F̃ = 1 + ε·G` where
//!   `G = Σ_{n≥1} (p)_n (a)_{n−1} / ((c)_n n!) zⁿ` (p = a+b−1−r, c = a+b+x−1), so the bracket over
//!   ε is `−expm1(ε ln(1−z))/ε − (1−z)^ε · G`, finite and smooth through a = 1 (at ε = 0 the
//!   first part is `−ln(1−z)`).
//!
//! The series for G is summed until a proven bound on the rest is below 1e-15 of the sum: once
//! `n ≥ max(−p, 1−a, 1)`, every later ratio of consecutive terms is at most
//! `q = z · max(1, (p+n)/(n+1))` (the factor `(a−1+k)/(c+k)` is below 1 because `c−(a−1) = b+x > 0`,
//! and `|p+k|/(k+1)` moves monotonically towards 1), so when q < 1 the rest after term n is at
//! most `|term n| · q/(1−q)`. The series converges for every z < 1 but needs about
//! `35/(1−z)` terms; past `MAX_SERIES_TERMS` the forecast fails with `SeriesDidNotConverge`.

use super::model::{BgNbdParams, CustomerSummary, probability_alive};
use crate::churn::error::ChurnError;

/// The most terms the hypergeometric series may take.
pub const MAX_SERIES_TERMS: usize = 1_000_000;

/// The expected purchases of `customer` in the next `horizon` time units (same unit as the
/// summaries and α); `horizon` must be finite and not negative.
pub fn expected_purchases(
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
    let x = customer.repeat_purchases as f64;
    let z = horizon / (alpha + customer.age + horizon);
    let log_one_minus_z = -(horizon / (alpha + customer.age)).ln_1p();
    let epsilon = a - 1.0;
    let g = tail_series(a + b - 1.0 - r, a, a + b + x - 1.0, z).ok_or(
        ChurnError::SeriesDidNotConverge {
            horizon,
            terms: MAX_SERIES_TERMS,
        },
    )?;
    let first = if epsilon == 0.0 {
        -log_one_minus_z
    } else {
        -(epsilon * log_one_minus_z).exp_m1() / epsilon
    };
    let bracket_over_epsilon = first - (epsilon * log_one_minus_z).exp() * g;
    Ok((a + b + x - 1.0) * bracket_over_epsilon * probability_alive(params, customer))
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
