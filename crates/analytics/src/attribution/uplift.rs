//! The uplift game: Shapley values of what each journey's channels add to its conversion
//! probability, under a logistic model of conversion fitted on the journeys.
//!
//! Markov removal effects and the conversions game credit the conversions a channel's
//! journeys carry, those that would have happened anyway included: a channel seen in few
//! journeys that lifts them a lot (a store visit) gets less than its share of the lift, and
//! one seen everywhere that lifts little gets more. Marketing asks for the lift.
//!
//! - **Fit.** `P(convert | S) = σ(a + Σ_{c∈S} β_c)` over the distinct channel sets S of the
//!   journeys with a touch (a direct conversion has no untouched journey to compare with, so
//!   it says nothing of the baseline), by Newton's method on the log-likelihood with a weak
//!   ridge [`RIDGE`] on the β, which keeps the fit finite for a channel seen only in
//!   converting journeys (or only in others).
//! - **Value.** For each set S, the exact Shapley split of `v(T) = σ(a + Σ_{c∈T} β_c) − σ(a)`
//!   over the channels of S (subset enumeration up to [`super::SHAPLEY_EXACT_CHANNEL_LIMIT`]
//!   channels in one set; past it a seeded permutation-sampling estimate, flagged
//!   approximate), times the set's journeys: the conversions the model credits to each
//!   channel over what the journeys would have converted without any touch; negative for a
//!   channel the fit finds harmful.
//! - **Credits** split the total conversions (and value) over the channels with a positive
//!   value, in proportion to it; a channel the fit finds harmful keeps its negative value and
//!   gets no credit.

use super::credits::{AttributionError, ChannelCredits};
use super::dense::eliminate;
use super::path_table::PathTable;
use super::shapley::{
    ChannelSets, ShapleyGame, ShapleyOptions, ShapleyResult, SplitMix64, channel_sets,
    coalition_weights,
};

/// The ridge on the channel coefficients (a Gaussian prior of variance 1 on the logit
/// scale): negligible against hundreds of journeys, decisive against none.
pub const RIDGE: f64 = 1.0;
/// Most channels the logistic fit takes: its Newton step solves a dense system of this size.
pub const UPLIFT_CHANNEL_LIMIT: usize = 500;
/// Newton steps at most; the penalised log-likelihood is strictly concave, so a handful do.
const MAX_STEPS: usize = 100;
/// A step this small in every coefficient ends the fit.
const CONVERGED: f64 = 1e-10;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Values the uplift game on `table`.
pub(super) fn uplift_game(
    table: &PathTable,
    options: ShapleyOptions,
) -> Result<ShapleyResult, AttributionError> {
    let ChannelSets { active, sets } = channel_sets(table);
    let n = active.len();
    if n > UPLIFT_CHANNEL_LIMIT {
        return Err(AttributionError::InvalidParameter {
            field: "shapley_game",
            reason: format!(
                "the uplift game fits at most {UPLIFT_CHANNEL_LIMIT} channels; the journeys have {n}"
            ),
        });
    }
    let coefficients = fit(n, &sets);
    let (intercept, betas) = coefficients.split_first().unwrap_or((&0.0, &[]));
    let mut local = vec![0.0; n];
    let mut approximate = false;
    let mut rng = SplitMix64(options.seed);
    let mut set_betas = Vec::new();
    for (set, _, journeys) in &sets {
        set_betas.clear();
        set_betas.extend(set.iter().map(|&c| betas[c as usize]));
        let phi = if set.len() <= super::SHAPLEY_EXACT_CHANNEL_LIMIT {
            uplift_shapley(*intercept, &set_betas)
        } else {
            approximate = true;
            sampled_uplift_shapley(*intercept, &set_betas, options.samples, &mut rng)
        };
        for (&c, value) in set.iter().zip(phi) {
            local[c as usize] += journeys * value;
        }
    }
    let mut values = vec![0.0; table.channel_count()];
    for (&code, &value) in active.iter().zip(&local) {
        values[code as usize] = value;
    }
    // Net lifts may cancel out or sum below zero, which a scale by their sum would turn
    // upside down: the conversions go to the channels that lift, in proportion.
    let lifting: f64 = values.iter().filter(|v| **v > 0.0).sum();
    let scale = |total: f64| -> Vec<f64> {
        values
            .iter()
            .map(|&v| if v > 0.0 { v / lifting * total } else { 0.0 })
            .collect()
    };
    let credits = ChannelCredits {
        conversions: scale(table.total_conversions()),
        value: scale(table.total_value()),
    };
    Ok(ShapleyResult {
        game: ShapleyGame::Uplift,
        values,
        credits,
        approximate,
        samples: if approximate { options.samples } else { 0 },
    })
}

/// `[a, β_0, …, β_{n−1}]` maximising the ridge-penalised log-likelihood of the sets (each
/// `(channels, conversions, journeys)`); all zero when there is nothing to fit.
pub(super) fn fit(n: usize, sets: &[(Vec<u32>, f64, f64)]) -> Vec<f64> {
    let dim = n + 1;
    let mut theta = vec![0.0; dim];
    if sets.iter().all(|(_, _, journeys)| *journeys <= 0.0) {
        return theta;
    }
    let objective = |theta: &[f64]| -> f64 {
        let mut total = 0.0;
        for (set, conversions, journeys) in sets {
            let logit = theta[0] + set.iter().map(|&c| theta[c as usize + 1]).sum::<f64>();
            // log σ(x) = −softplus(−x), log(1 − σ(x)) = −softplus(x).
            total -= conversions * softplus(-logit) + (journeys - conversions) * softplus(logit);
        }
        total - 0.5 * RIDGE * theta[1..].iter().map(|b| b * b).sum::<f64>()
    };
    let mut current = objective(&theta);
    for _ in 0..MAX_STEPS {
        let mut gradient = vec![0.0; dim];
        // The negated Hessian, row-major.
        let mut curvature = vec![0.0; dim * dim];
        for (set, conversions, journeys) in sets {
            let logit = theta[0] + set.iter().map(|&c| theta[c as usize + 1]).sum::<f64>();
            let p = sigmoid(logit);
            let residual = conversions - journeys * p;
            let weight = journeys * p * (1.0 - p);
            let features = std::iter::once(0).chain(set.iter().map(|&c| c as usize + 1));
            for i in features.clone() {
                gradient[i] += residual;
                for j in features.clone() {
                    curvature[i * dim + j] += weight;
                }
            }
        }
        for i in 1..dim {
            gradient[i] -= RIDGE * theta[i];
            curvature[i * dim + i] += RIDGE;
        }
        // The intercept alone may be unpinned (every journey converts or none does): a tiny
        // ridge keeps the system solvable without moving a real fit.
        curvature[0] += 1e-9;
        let Some(step) = solve(dim, &mut curvature, &gradient) else {
            break;
        };
        // Backtracking: a full Newton step can overshoot far from the optimum.
        let mut scale = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let trial: Vec<f64> = theta
                .iter()
                .zip(&step)
                .map(|(t, s)| t + scale * s)
                .collect();
            let value = objective(&trial);
            if value >= current - 1e-12 * current.abs() {
                accepted = Some((trial, value));
                break;
            }
            scale *= 0.5;
        }
        let Some((next, value)) = accepted else { break };
        let moved = next
            .iter()
            .zip(&theta)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        theta = next;
        current = value;
        if moved < CONVERGED {
            break;
        }
    }
    theta
}

/// `ln(1 + e^x)` without overflow.
fn softplus(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

/// Solves `matrix · x = rhs` (`dim × dim`, row-major) in place; `None` when the matrix is
/// singular or the solution is not finite.
fn solve(dim: usize, matrix: &mut [f64], rhs: &[f64]) -> Option<Vec<f64>> {
    let mut columns: Vec<[f64; 1]> = rhs.iter().map(|&r| [r]).collect();
    if !eliminate(matrix, &mut columns, dim) {
        return None;
    }
    let x: Vec<f64> = columns.into_iter().map(|[v]| v).collect();
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Exact Shapley values of `v(T) = σ(a + Σ_{i∈T} b_i) − σ(a)` over the channels `b` of one
/// set, by enumerating the coalitions (`b.len()` ≤ 20).
pub(super) fn uplift_shapley(a: f64, b: &[f64]) -> Vec<f64> {
    let k = b.len();
    let size = 1usize << k;
    // Σ b over every coalition, built from the coalition without its lowest channel.
    let mut sums = vec![0.0f64; size];
    for mask in 1..size {
        let low = mask.trailing_zeros() as usize;
        sums[mask] = sums[mask & (mask - 1)] + b[low];
    }
    let weights = coalition_weights(k);
    let mut phi = vec![0.0; k];
    for mask in 0..size {
        let weight = weights[mask.count_ones() as usize];
        let without = sigmoid(a + sums[mask]);
        for (i, value) in phi.iter_mut().enumerate() {
            if mask & (1 << i) == 0 {
                *value += weight * (sigmoid(a + sums[mask] + b[i]) - without);
            }
        }
    }
    phi
}

/// A permutation-sampling estimate of [`uplift_shapley`] for a set too large to enumerate.
fn sampled_uplift_shapley(a: f64, b: &[f64], samples: usize, rng: &mut SplitMix64) -> Vec<f64> {
    let k = b.len();
    let mut order: Vec<usize> = (0..k).collect();
    let mut phi = vec![0.0; k];
    let samples = samples.max(1);
    for _ in 0..samples {
        for i in (1..k).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let mut sum = 0.0;
        for &i in &order {
            phi[i] += sigmoid(a + sum + b[i]) - sigmoid(a + sum);
            sum += b[i];
        }
    }
    phi.iter_mut().for_each(|v| *v /= samples as f64);
    phi
}
