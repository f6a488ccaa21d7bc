//! Maximum-likelihood fit of the BG/NBD parameters.
//!
//! The optimiser works on `θ = ln(r, α, a, b)`, so every trial point is a valid parameter set,
//! and minimises the mean negative log-likelihood plus an optional L2 penalty on the parameters
//! (`penalizer · (r² + α² + a² + b²)`, the same shape as lifetimes' `penalizer_coef`, but on α in
//! the caller's time unit rather than on lifetimes' internally rescaled α; default 0).
//!
//! Start values are fixed: r = a = b = 1 and α = the largest T (1 when every T is 0), which puts
//! the start on the data's time scale whatever the unit. See `optimize` for the stopping rule.

use super::likelihood::FitData;
use super::model::{BgNbdParams, CustomerSummary};
use super::optimize::minimize_bfgs;
use crate::churn::error::ChurnError;

/// How a fit runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// L2 penalty coefficient on the parameters, ≥ 0; default 0.
    pub penalizer: f64,
    /// Converged when no component of the mean log-likelihood's gradient in log-parameters
    /// exceeds this; default 1e-9.
    pub gradient_tolerance: f64,
    /// Iterations before giving up; default 500.
    pub max_iterations: u32,
    /// Threads evaluating the likelihood; default 1. The result does not depend on it.
    pub threads: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            penalizer: 0.0,
            gradient_tolerance: 1e-9,
            max_iterations: 500,
            threads: 1,
        }
    }
}

/// The outcome of a fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbdFit {
    /// The parameters found.
    pub params: BgNbdParams,
    /// The log-likelihood (summed over customers, without the penalty) at those parameters.
    pub log_likelihood: f64,
    /// Optimiser iterations taken.
    pub iterations: u32,
    /// True when the stopping rule's gradient test passed.
    pub converged: bool,
    /// Customers the fit used.
    pub customer_count: u64,
}

/// Fits r, α, a, b by maximum likelihood; refuses an empty or invalid customer list.
pub fn fit_bgnbd(
    customers: &[CustomerSummary],
    options: &FitOptions,
) -> Result<BgNbdFit, ChurnError> {
    validate_options(options)?;
    if customers.is_empty() {
        return Err(ChurnError::invalid(
            "customers",
            "at least one customer is needed",
        ));
    }
    for (index, customer) in customers.iter().enumerate() {
        customer.validate(Some(index))?;
    }
    let data = FitData::new(customers);
    let count = data.len() as f64;
    let max_age = data.max_age();
    let start_alpha = if max_age > 0.0 { max_age } else { 1.0 };
    let start = [1.0, start_alpha, 1.0, 1.0].map(f64::ln);
    let objective = |theta: &[f64; 4]| {
        let params = BgNbdParams::from_array(theta.map(f64::exp));
        let sum = data.evaluate(&params, options.threads);
        let values = params.to_array();
        let penalty: f64 = values.iter().map(|v| v * v).sum::<f64>() * options.penalizer;
        let gradient: [f64; 4] = std::array::from_fn(|i| {
            (-sum.gradient[i] / count + 2.0 * options.penalizer * values[i]) * values[i]
        });
        (-sum.value / count + penalty, gradient)
    };
    let minimum = minimize_bfgs(
        objective,
        start,
        options.gradient_tolerance,
        options.max_iterations,
    );
    let params = BgNbdParams::from_array(minimum.point.map(f64::exp));
    let log_likelihood = data.evaluate(&params, options.threads).value;
    Ok(BgNbdFit {
        params,
        log_likelihood,
        iterations: minimum.iterations,
        converged: minimum.converged,
        customer_count: customers.len() as u64,
    })
}

fn validate_options(options: &FitOptions) -> Result<(), ChurnError> {
    if !(options.penalizer.is_finite() && options.penalizer >= 0.0) {
        return Err(ChurnError::invalid(
            "penalizer",
            "must be finite and not negative",
        ));
    }
    if !(options.gradient_tolerance.is_finite() && options.gradient_tolerance > 0.0) {
        return Err(ChurnError::invalid(
            "gradient_tolerance",
            "must be finite and greater than 0",
        ));
    }
    if options.max_iterations == 0 {
        return Err(ChurnError::invalid("max_iterations", "must be at least 1"));
    }
    Ok(())
}
