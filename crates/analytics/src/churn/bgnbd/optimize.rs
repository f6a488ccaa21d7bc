//! A small BFGS minimiser for smooth objectives of a few variables with analytic gradients.
//!
//! Why not Nelder–Mead: it needs hundreds of objective evaluations for four parameters, and one
//! evaluation over a million customers costs tens of milliseconds; BFGS with the analytic
//! gradient reaches a tighter optimum in a few dozen. The method is the textbook one: start
//! from the identity as inverse Hessian, search along `−H·g` with Armijo backtracking (the
//! first trial step is capped at `MAX_STEP` in the largest coordinate), update `H` with the
//! BFGS formula when the curvature `sᵀy` is positive and skip the update otherwise.
//!
//! Stopping rule, deterministic: converged when the largest gradient component is at most
//! `gradient_tolerance`; stopped unconverged after `max_iterations` iterations, or when a line
//! search cannot decrease the objective (at the optimum's floating-point floor), in which case
//! it still counts as converged if the gradient is within 1,000 × the tolerance.

/// The largest change of any coordinate on a first trial step.
const MAX_STEP: f64 = 2.0;
/// Armijo's sufficient-decrease constant.
const ARMIJO: f64 = 1e-4;
/// Step halvings before a line search gives up.
const MAX_HALVINGS: u32 = 60;

/// Where a minimisation ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Minimum<const N: usize> {
    pub(crate) point: [f64; N],
    pub(crate) value: f64,
    pub(crate) iterations: u32,
    pub(crate) converged: bool,
}

/// Minimises `objective` (returning value and gradient) from `start`.
pub(crate) fn minimize_bfgs<const N: usize>(
    mut objective: impl FnMut(&[f64; N]) -> (f64, [f64; N]),
    start: [f64; N],
    gradient_tolerance: f64,
    max_iterations: u32,
) -> Minimum<N> {
    let mut point = start;
    let (mut value, mut gradient) = objective(&point);
    let mut inverse_hessian = identity::<N>();
    for iteration in 0..max_iterations {
        if max_abs(&gradient) <= gradient_tolerance {
            return Minimum {
                point,
                value,
                iterations: iteration,
                converged: true,
            };
        }
        let mut direction = mat_vec(&inverse_hessian, &gradient).map(|v| -v);
        let mut slope = dot(&direction, &gradient);
        if slope.is_nan() || slope >= 0.0 {
            // Not a descent direction (lost positive definiteness): restart from steepest descent.
            inverse_hessian = identity::<N>();
            direction = gradient.map(|v| -v);
            slope = dot(&direction, &gradient);
        }
        let Some((next_point, next_value, next_gradient)) =
            line_search(&mut objective, &point, value, &direction, slope)
        else {
            let converged = max_abs(&gradient) <= 1e3 * gradient_tolerance;
            return Minimum {
                point,
                value,
                iterations: iteration,
                converged,
            };
        };
        let step: [f64; N] = std::array::from_fn(|i| next_point[i] - point[i]);
        let change: [f64; N] = std::array::from_fn(|i| next_gradient[i] - gradient[i]);
        update_inverse_hessian(&mut inverse_hessian, &step, &change);
        (point, value, gradient) = (next_point, next_value, next_gradient);
    }
    let converged = max_abs(&gradient) <= gradient_tolerance;
    Minimum {
        point,
        value,
        iterations: max_iterations,
        converged,
    }
}

/// Armijo backtracking along `direction`; `None` when no step decreases the objective.
#[allow(
    clippy::type_complexity,
    reason = "a private helper returning the accepted point, value and gradient"
)]
fn line_search<const N: usize>(
    objective: &mut impl FnMut(&[f64; N]) -> (f64, [f64; N]),
    point: &[f64; N],
    value: f64,
    direction: &[f64; N],
    slope: f64,
) -> Option<([f64; N], f64, [f64; N])> {
    let mut step = (MAX_STEP / max_abs(direction)).min(1.0);
    for _ in 0..MAX_HALVINGS {
        let trial: [f64; N] = std::array::from_fn(|i| point[i] + step * direction[i]);
        let (trial_value, trial_gradient) = objective(&trial);
        if trial_value.is_finite()
            && trial_gradient.iter().all(|g| g.is_finite())
            && trial_value <= value + ARMIJO * step * slope
        {
            if trial_value < value || trial != *point {
                return Some((trial, trial_value, trial_gradient));
            }
            return None;
        }
        step *= 0.5;
    }
    None
}

/// The BFGS update of the inverse Hessian, skipped when the curvature is not positive.
fn update_inverse_hessian<const N: usize>(
    h: &mut [[f64; N]; N],
    step: &[f64; N],
    change: &[f64; N],
) {
    let curvature = dot(step, change);
    if !curvature.is_finite() || curvature <= 1e-300 {
        return;
    }
    let rho = 1.0 / curvature;
    let h_change = mat_vec(h, change);
    let change_h_change = dot(change, &h_change);
    // H' = H − ρ(H y sᵀ + s yᵀ H) + (ρ² yᵀHy + ρ) s sᵀ, with H symmetric.
    for i in 0..N {
        for j in 0..N {
            h[i][j] += -rho * (h_change[i] * step[j] + step[i] * h_change[j])
                + (rho * rho * change_h_change + rho) * step[i] * step[j];
        }
    }
}

fn identity<const N: usize>() -> [[f64; N]; N] {
    std::array::from_fn(|i| std::array::from_fn(|j| if i == j { 1.0 } else { 0.0 }))
}

fn mat_vec<const N: usize>(m: &[[f64; N]; N], v: &[f64; N]) -> [f64; N] {
    std::array::from_fn(|i| dot(&m[i], v))
}

fn dot<const N: usize>(u: &[f64; N], v: &[f64; N]) -> f64 {
    u.iter().zip(v).map(|(p, q)| p * q).sum()
}

fn max_abs<const N: usize>(v: &[f64; N]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}
