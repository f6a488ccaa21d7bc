//! The beta-geometric/NBD models: BG/NBD (Fader, Hardie and Lee, 2005) and its MBG/NBD variant
//! (Batislam, Denizel and Filiztekin, 2007), their shared parameters, a customer's summary
//! (x, t_x, T), the per-customer log-likelihood and the probability that a customer is alive.
//!
//! Both models tell the same story — purchases at a Poisson rate λ ~ Gamma(r, α) while alive,
//! and a coin with dropout probability p ~ Beta(a, b) tossed right after purchases — and differ
//! only in which purchases toss it: BG/NBD after each repeat purchase, MBG/NBD after the first
//! purchase too. So a customer with x repeat purchases has had `d` chances to drop out, `d = x`
//! (BG/NBD) or `d = x + 1` (MBG/NBD), and every formula below is the paper's with `d` where the
//! beta part counts coins and `x` where the gamma part counts purchases.
//!
//! The likelihood of one customer (BG/NBD paper's equation 6; Batislam et al.'s equation 3):
//!
//! `L = B(a, b+d)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
//!    + [d>0] · B(a+1, b+d−1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x))`
//!
//! taken in logs as `A1 + A2 + ln(e^A3 + [d>0] e^A4)` with
//! `A1 = lnΓ(r+x) − lnΓ(r) + r ln α`, `A2 = lnΓ(a+b) + lnΓ(b+d) − lnΓ(b) − lnΓ(a+b+d)`,
//! `A3 = −(r+x) ln(α+T)` and `A4 = ln a − ln(b+d−1) − (r+x) ln(α+t_x)` (using
//! `B(a+1, b+d−1)/B(a, b+d) = a/(b+d−1)`). For d = 0 (BG/NBD, x = 0) the second term is absent,
//! so `A4` (where `b+d−1` may be negative) is never evaluated. `A4 − A3` is the log-odds that
//! the customer has dropped out, so `ln(e^A3 + e^A4) = A3 + softplus(A4 − A3)` — a stable
//! log-sum-exp — and `P(alive) = 1 / (1 + e^(A4−A3))`:
//!
//! - BG/NBD, the contract's formula: `1 / (1 + [x>0] · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x))`;
//! - MBG/NBD: `1 / (1 + a/(b+x) · ((α+T)/(α+t_x))^(r+x))` — below 1 for a customer who never
//!   came back, falling as their first purchase ages.

use super::special::ln_gamma_ratio;
use crate::churn::error::ChurnError;

/// Which member of the family scores customers: where a customer may drop out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BetaGeoModel {
    /// BG/NBD: a customer may drop out right after each repeat purchase, never before the
    /// first one, so a customer who bought once is alive for sure.
    #[default]
    BgNbd,
    /// MBG/NBD: a customer may also drop out right after their first purchase.
    MbgNbd,
}

impl BetaGeoModel {
    /// d − x: 1 when the first purchase tosses the dropout coin too, else 0.
    pub(crate) fn first_purchase_chance(self) -> f64 {
        match self {
            Self::BgNbd => 0.0,
            Self::MbgNbd => 1.0,
        }
    }

    /// d: the chances to drop out a customer with `repeat_purchases` has had.
    pub(crate) fn dropout_chances(self, repeat_purchases: u64) -> f64 {
        repeat_purchases as f64 + self.first_purchase_chance()
    }

    /// The log-likelihood of one customer (see the module docs).
    pub fn customer_log_likelihood(self, params: &BgNbdParams, customer: &CustomerSummary) -> f64 {
        let BgNbdParams { r, alpha, a, b } = *params;
        let x = customer.repeat_purchases as f64;
        let d = self.dropout_chances(customer.repeat_purchases);
        let a1 = ln_gamma_ratio(r, x) + r * alpha.ln();
        let a2 = ln_gamma_ratio(b, d) - ln_gamma_ratio(a + b, d);
        let a3 = -(r + x) * (alpha + customer.age).ln();
        match self.dropout_log_odds(params, customer) {
            None => a1 + a2 + a3,
            Some(odds) => a1 + a2 + a3 + softplus(odds),
        }
    }

    /// The log-likelihood of a set of customers (the sum of `customer_log_likelihood`).
    pub fn log_likelihood(self, params: &BgNbdParams, customers: &[CustomerSummary]) -> f64 {
        customers
            .iter()
            .map(|customer| self.customer_log_likelihood(params, customer))
            .sum()
    }

    /// P(alive): `1 / (1 + [d>0] · a/(b+d−1) · ((α+T)/(α+t_x))^(r+x))`.
    pub fn probability_alive(self, params: &BgNbdParams, customer: &CustomerSummary) -> f64 {
        self.dropout_log_odds(params, customer)
            .map_or(1.0, |odds| logistic(-odds))
    }

    /// The churn score `1 − P(alive)`, computed directly so small scores keep their precision.
    pub fn churn_score(self, params: &BgNbdParams, customer: &CustomerSummary) -> f64 {
        self.dropout_log_odds(params, customer)
            .map_or(0.0, logistic)
    }

    /// The log-odds `A4 − A3` that a customer has dropped out; `None` when they have had no
    /// chance to (BG/NBD without a repeat purchase).
    pub(crate) fn dropout_log_odds(
        self,
        params: &BgNbdParams,
        customer: &CustomerSummary,
    ) -> Option<f64> {
        let d = self.dropout_chances(customer.repeat_purchases);
        if d == 0.0 {
            return None;
        }
        let x = customer.repeat_purchases as f64;
        let widening =
            ((customer.age - customer.recency) / (params.alpha + customer.recency)).ln_1p();
        Some(params.a.ln() - (params.b + d - 1.0).ln() + (params.r + x) * widening)
    }
}

/// The four parameters of either model, all > 0; α is in the same time unit as the customers'
/// summaries.
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
    /// t_x: time of the last purchase since the first (must be 0 when x = 0).
    pub recency: f64,
    /// T: time from the first purchase to the end of observation.
    pub age: f64,
}

impl CustomerSummary {
    /// A summary, refusing non-finite times, negative times, `t_x > T` and `t_x > 0` without a
    /// repeat purchase (the last purchase is then the first).
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
        if self.repeat_purchases == 0 && self.recency != 0.0 {
            return Err(fail(
                "customers.recency",
                "must be 0 without a repeat purchase",
            ));
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

/// The BG/NBD log-likelihood of one customer (paper equation 6, in logs; see the module docs).
pub fn customer_log_likelihood(params: &BgNbdParams, customer: &CustomerSummary) -> f64 {
    BetaGeoModel::BgNbd.customer_log_likelihood(params, customer)
}

/// The BG/NBD log-likelihood of a set of customers.
pub fn log_likelihood(params: &BgNbdParams, customers: &[CustomerSummary]) -> f64 {
    BetaGeoModel::BgNbd.log_likelihood(params, customers)
}

/// BG/NBD P(alive) = 1 / (1 + [x>0] · a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)).
pub fn probability_alive(params: &BgNbdParams, customer: &CustomerSummary) -> f64 {
    BetaGeoModel::BgNbd.probability_alive(params, customer)
}

/// The BG/NBD churn score `1 − P(alive)`.
pub fn churn_score(params: &BgNbdParams, customer: &CustomerSummary) -> f64 {
    BetaGeoModel::BgNbd.churn_score(params, customer)
}
