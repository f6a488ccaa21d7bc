//! Maximum-likelihood fit of the parameters of either model (BG/NBD or MBG/NBD).
//!
//! The optimiser works on `θ = ln(r, α, a, b)`, so every trial point is a valid parameter set,
//! and minimises the mean negative log-likelihood plus an optional L2 penalty on the parameters
//! (`penalizer · (r² + α² + a² + b²)`, the same shape as lifetimes' `penalizer_coef`, but on α in
//! the caller's time unit rather than on lifetimes' internally rescaled α; default 0).
//!
//! Start values are fixed: r = a = b = 1 and α = the largest T (1 when every T is 0), which puts
//! the start on the data's time scale whatever the unit. Above twice `warm_start_sample`
//! customers, a first fit on a systematic sample (every k-th customer in (x, t_x, T) order, about
//! `warm_start_sample` of them, to a looser tolerance) gives the start of the full fit, which
//! then needs only a few passes over all customers. Both steps depend only on the set of
//! customers, never on their order. See `optimize` for the stopping rule.

use super::likelihood::FitData;
use super::model::{BetaGeoModel, BgNbdParams, CustomerSummary};
use super::optimize::minimize_bfgs;
use crate::churn::error::ChurnError;

/// The default warm-start sample size.
pub const DEFAULT_WARM_START_SAMPLE: usize = 50_000;
/// The gradient tolerance of the warm-start fit.
const WARM_START_TOLERANCE: f64 = 1e-6;

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
    /// Above twice this many customers, a fit on a sample of about this many gives the start
    /// of the full fit; default 50,000, 0 turns the warm start off.
    pub warm_start_sample: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            penalizer: 0.0,
            gradient_tolerance: 1e-9,
            max_iterations: 500,
            threads: 1,
            warm_start_sample: DEFAULT_WARM_START_SAMPLE,
        }
    }
}

/// The outcome of a fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbdFit {
    /// The model fitted.
    pub model: BetaGeoModel,
    /// The parameters found.
    pub params: BgNbdParams,
    /// The log-likelihood (summed over customers, without the penalty) at those parameters.
    pub log_likelihood: f64,
    /// Optimiser iterations taken (warm start included).
    pub iterations: u32,
    /// True when the stopping rule's gradient test passed.
    pub converged: bool,
    /// Customers the fit used.
    pub customer_count: u64,
}

/// Fits the BG/NBD r, α, a, b by maximum likelihood; refuses an empty or invalid customer list.
pub fn fit_bgnbd(
    customers: &[CustomerSummary],
    options: &FitOptions,
) -> Result<BgNbdFit, ChurnError> {
    BetaGeoModel::BgNbd.fit(customers, options)
}

impl BetaGeoModel {
    /// Fits r, α, a, b of this model by maximum likelihood; refuses an empty or invalid
    /// customer list.
    pub fn fit(
        self,
        customers: &[CustomerSummary],
        options: &FitOptions,
    ) -> Result<BgNbdFit, ChurnError> {
        fit(self, customers, options)
    }
}

fn fit(
    model: BetaGeoModel,
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
    let mut sorted = customers.to_vec();
    FitData::sort(&mut sorted);
    let data = FitData::from_sorted(model, sorted.iter().copied());
    let max_age = data.max_age();
    let start_alpha = if max_age > 0.0 { max_age } else { 1.0 };
    let mut start = [1.0, start_alpha, 1.0, 1.0].map(f64::ln);
    let mut warm_iterations = 0;
    let sample_size = options.warm_start_sample;
    if sample_size > 0 && sorted.len() > 2 * sample_size {
        let stride = sorted.len() / sample_size;
        let sample = FitData::from_sorted(model, sorted.iter().copied().step_by(stride));
        let warm = minimize_bfgs(
            objective(&sample, options),
            start,
            WARM_START_TOLERANCE,
            options.max_iterations,
        );
        if warm.value.is_finite() {
            start = warm.point;
        }
        warm_iterations = warm.iterations;
    }
    drop(sorted);
    let minimum = minimize_bfgs(
        objective(&data, options),
        start,
        options.gradient_tolerance,
        options.max_iterations,
    );
    let params = BgNbdParams::from_array(minimum.point.map(f64::exp));
    let log_likelihood = data.evaluate(&params, options.threads).value;
    Ok(BgNbdFit {
        model,
        params,
        log_likelihood,
        iterations: warm_iterations + minimum.iterations,
        converged: minimum.converged,
        customer_count: customers.len() as u64,
    })
}

/// The minimised function of θ = ln(r, α, a, b): the mean negative log-likelihood plus the
/// penalty, with its gradient in θ.
fn objective<'a>(
    data: &'a FitData,
    options: &'a FitOptions,
) -> impl FnMut(&[f64; 4]) -> (f64, [f64; 4]) + 'a {
    let count = data.customer_count() as f64;
    move |theta: &[f64; 4]| {
        let params = BgNbdParams::from_array(theta.map(f64::exp));
        let sum = data.evaluate(&params, options.threads);
        let values = params.to_array();
        let penalty: f64 = values.iter().map(|v| v * v).sum::<f64>() * options.penalizer;
        let gradient: [f64; 4] = std::array::from_fn(|i| {
            (-sum.gradient[i] / count + 2.0 * options.penalizer * values[i]) * values[i]
        });
        (-sum.value / count + penalty, gradient)
    }
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
