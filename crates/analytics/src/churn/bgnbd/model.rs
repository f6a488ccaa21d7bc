//! The BG/NBD model of Fader, Hardie and Lee (2005): its parameters, a customer's summary
//! (x, t_x, T), the per-customer log-likelihood and the probability that a customer is alive.
//!
//! The likelihood of one customer is the paper's equation (6):
//!
//! `L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
//!    + [x>0] · B(a+1, b+x−1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x))`
//!
//! taken in logs as `A1 + A2 + ln(e^A3 + [x>0] e^A4)` with
//! `A1 = lnΓ(r+x) − lnΓ(r) + r ln α`, `A2 = lnΓ(a+b) + lnΓ(b+x) − lnΓ(b) − lnΓ(a+b+x)`,
//! `A3 = −(r+x) ln(α+T)` and `A4 = ln a − ln(b+x−1) − (r+x) ln(α+t_x)` (using
//! `B(a+1, b+x−1)/B(a, b+x) = a/(b+x−1)`). For x = 0 the second term is absent, so `A4` (where
//! `b+x−1` may be negative) is never evaluated. `A4 − A3` is the log-odds that the customer has
//! dropped out, so `ln(e^A3 + e^A4) = A3 + softplus(A4 − A3)` — a stable log-sum-exp — and
//! `P(alive) = 1 / (1 + e^(A4−A3))`, the contract's formula.

use crate::churn::error::ChurnError;

/// BG/NBD parameters, all > 0; α is in the same time unit as the customers' summaries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbdParams {
    /// Shape of the gamma distribution of purchase rates.
    pub r: f64,
    /// Scale of the gamma distribution of purchase rates (time units).
    pub alpha: f64,
    /// First shape of the beta distribution of dropout probabilities.
    pub a: f64,
    /// Second shape of the beta distribution of dropout probabilities.
    pub b: f64,
}

impl BgNbdParams {
    /// Refuses parameters that are not finite and positive.
    pub fn validate(&self) -> Result<(), ChurnError> {
        for (field, value) in [
            ("r", self.r),
            ("alpha", self.alpha),
            ("a", self.a),
            ("b", self.b),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(ChurnError::invalid(
                    field,
                    "must be finite and greater than 0",
                ));
            }
        }
        Ok(())
    }

    /// As an array `[r, α, a, b]`.
    pub(crate) fn to_array(self) -> [f64; 4] {
        [self.r, self.alpha, self.a, self.b]
    }

    /// From an array `[r, α, a, b]`.
    pub(crate) fn from_array(values: [f64; 4]) -> Self {
        let [r, alpha, a, b] = values;
        Self { r, alpha, a, b }
    }
}

/// One customer's purchase summary in model time units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerSummary {
    /// x: repeat purchases (purchases after the first).
    pub repeat_purchases: u64,
    /// t_x: time of the last purchase since the first (0 when x = 0).
    pub recency: f64,
    /// T: time from the first purchase to the end of observation.
    pub age: f64,
}

impl CustomerSummary {
    /// A summary, refusing non-finite times, negative times and `t_x > T`.
    pub fn new(repeat_purchases: u64, recency: f64, age: f64) -> Result<Self, ChurnError> {
        let summary = Self {
            repeat_purchases,
            recency,
            age,
        };
        summary.validate(None)?;
        Ok(summary)
    }

    /// The same checks as `new`, naming the list position when there is one.
    pub(crate) fn validate(&self, index: Option<usize>) -> Result<(), ChurnError> {
        let fail = |field: &'static str, reason: &str| ChurnError::InvalidInput {
            field,
            index,
            reason: reason.to_owned(),
        };
        if !(self.age.is_finite() && self.age >= 0.0) {
            return Err(fail("customers.age", "must be finite and not negative"));
        }
        if !(self.recency.is_finite() && self.recency >= 0.0) {
            return Err(fail("customers.recency", "must be finite and not negative"));
        }
        if self.recency > self.age {
            return Err(fail("customers.recency", "must not exceed age"));
        }
        Ok(())
    }
}

/// `ln(1 + e^v)` without overflow or loss for large |v|.
pub(crate) fn softplus(v: f64) -> f64 {
    v.max(0.0) + (-v.abs()).exp().ln_1p()
}

/// `1 / (1 + e^(−v))` without overflow.
pub(crate) fn logistic(v: f64) -> f64 {
    let e = (-v.abs()).exp();
    if v >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// `(softplus(v), logistic(v))` from one exponential, for the likelihood's inner loop.
pub(crate) fn softplus_and_logistic(v: f64) -> (f64, f64) {
    let e = (-v.abs()).exp();
    let inverse = 1.0 / (1.0 + e);
    (
        v.max(0.0) + e.ln_1p(),
        if v >= 0.0 { inverse } else { e * inverse },
    )
}

/// The log-odds `A4 − A3` that a customer with x > 0 has dropped out.
pub(crate) fn dropout_log_odds(params: &BgNbdParams, customer: &CustomerSummary) -> f64 {
    let x = customer.repeat_purchases as f64;
    let widening = ((customer.age - customer.recency) / (params.alpha + customer.recency)).ln_1p();
    params.a.ln() - (params.b + x - 1.0).ln() + (params.r + x) * widening
}

/// The log-likelihood of one customer (paper equation 6, in logs; see the module docs).
pub fn customer_log_likelihood(params: &BgNbdParams, customer: &CustomerSummary) -> f64 {
    let BgNbdParams { r, alpha, a, b } = *params;
    let x = customer.repeat_purchases as f64;
    let a1 = libm::lgamma(r + x) - libm::lgamma(r) + r * alpha.ln();
    let a2 = libm::lgamma(a + b) + libm::lgamma(b + x) - libm::lgamma(b) - libm::lgamma(a + b + x);
    let a3 = -(r + x) * (alpha + customer.age).ln();
    if customer.repeat_purchases == 0 {
        return a1 + a2 + a3;
    }
    a1 + a2 + a3 + softplus(dropout_log_odds(params, customer))
}

/// The log-likelihood of a set of customers (the sum of `customer_log_likelihood`).
pub fn log_likelihood(params: &BgNbdParams, customers: &[CustomerSummary]) -> f64 {
    customers
        .iter()
        .map(|customer| customer_log_likelihood(params, customer))
        .sum()
}

/// P(alive) = 1 / (1 + [x>0] · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)).
pub fn probability_alive(params: &BgNbdParams, customer: &CustomerSummary) -> f64 {
    if customer.repeat_purchases == 0 {
        return 1.0;
    }
    logistic(-dropout_log_odds(params, customer))
}

/// The churn score `1 − P(alive)`, computed directly so small scores keep their precision.
pub fn churn_score(params: &BgNbdParams, customer: &CustomerSummary) -> f64 {
    if customer.repeat_purchases == 0 {
        return 0.0;
    }
    logistic(dropout_log_odds(params, customer))
}
