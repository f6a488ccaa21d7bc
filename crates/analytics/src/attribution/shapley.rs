//! Shapley values of two cooperative games over the channels.
//!
//! - Conversions game: `v(S)` = conversions of journeys whose distinct channels all lie in S.
//!   Each path is a unanimity game on its channel set, so its Shapley value is its conversions
//!   split equally over its distinct channels: computed that way, exactly, in one pass.
//! - Conversion-rate game: `v(S)` = conversions / journeys over the journeys whose channel set
//!   is a subset of S (0 when there are none). Exact up to [`SHAPLEY_EXACT_CHANNEL_LIMIT`]
//!   active channels: the per-set totals are summed over subsets with the zeta (subset-sum)
//!   transform over channel bitmasks, O(2^n·n), then every marginal contribution is weighed.
//!   Beyond the limit: a seeded permutation-sampling estimate (same seed, same numbers),
//!   flagged `approximate` with its sample count.
//! - Uplift game: what each journey's channels add to its conversion probability under a
//!   fitted logistic model (see `uplift`).
//!
//! Credits are the values scaled to the total conversions (and value); see the module docs of
//! `attribution` for the value rule.

use super::credits::{AttributionError, ChannelCredits};
use super::fxhash::FxHashMap;
use super::path_table::PathTable;

/// Most active channels the conversion-rate game is computed exactly for (2^20 coalitions).
pub const SHAPLEY_EXACT_CHANNEL_LIMIT: usize = 20;

/// The game to value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShapleyGame {
    /// `v(S)` = conversions of journeys whose distinct channels are all in S.
    #[default]
    Conversions,
    /// `v(S)` = conversion rate of journeys whose channel set ⊆ S.
    ConversionRate,
    /// Per journey, `v(T) = σ(a + Σ_{c∈T} β_c) − σ(a)` over its channels, under a logistic
    /// model of conversion fitted on the journeys (see `uplift`).
    Uplift,
}

/// Parameters of a Shapley run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapleyOptions {
    /// The game.
    pub game: ShapleyGame,
    /// Permutations sampled when the conversion-rate game is past the exact limit.
    pub samples: usize,
    /// Seed of the sampling.
    pub seed: u64,
}

impl Default for ShapleyOptions {
    fn default() -> Self {
        Self {
            game: ShapleyGame::Conversions,
            samples: 1000,
            seed: 0,
        }
    }
}

/// The Shapley values and the credits scaled from them.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapleyResult {
    /// The game valued.
    pub game: ShapleyGame,
    /// Raw Shapley value per channel code (conversions, or conversion-rate points).
    pub values: Vec<f64>,
    /// The values scaled to total conversions and value.
    pub credits: ChannelCredits,
    /// Whether the values are a sampling estimate rather than exact.
    pub approximate: bool,
    /// Permutations sampled (0 when exact).
    pub samples: usize,
}

/// Values the chosen game on the paths.
pub fn shapley_attribution(
    table: &PathTable,
    options: ShapleyOptions,
) -> Result<ShapleyResult, AttributionError> {
    match options.game {
        ShapleyGame::Conversions => Ok(conversions_game(table)),
        ShapleyGame::ConversionRate => {
            if options.samples == 0 {
                return Err(AttributionError::InvalidParameter {
                    field: "shapley_samples",
                    reason: "must be at least 1".to_owned(),
                });
            }
            Ok(conversion_rate_game(
                table,
                options,
                SHAPLEY_EXACT_CHANNEL_LIMIT,
            ))
        }
        ShapleyGame::Uplift => super::uplift::uplift_game(table, options),
    }
}

fn conversions_game(table: &PathTable) -> ShapleyResult {
    let mut credits = ChannelCredits::zeros(table.channel_count());
    let mut seen = vec![false; table.channel_count()];
    let mut distinct = Vec::new();
    for row in table
        .rows()
        .filter(|r| r.conversions > 0.0 || r.value > 0.0)
    {
        distinct.clear();
        for &c in row.channels {
            if !std::mem::replace(&mut seen[c as usize], true) {
                distinct.push(c);
            }
        }
        let share = 1.0 / distinct.len() as f64;
        for &c in &distinct {
            seen[c as usize] = false;
            credits.conversions[c as usize] += row.conversions * share;
            credits.value[c as usize] += row.value * share;
        }
    }
    ShapleyResult {
        game: ShapleyGame::Conversions,
        values: credits.conversions.clone(),
        credits,
        approximate: false,
        samples: 0,
    }
}

/// Journeys grouped by their distinct channel set (as local channel indices).
pub(super) struct ChannelSets {
    /// Channel codes that occur on a path with journeys; local index = position.
    pub(super) active: Vec<u32>,
    /// Distinct sets of local indices, each sorted, with (conversions, journeys).
    pub(super) sets: Vec<(Vec<u32>, f64, f64)>,
}

pub(super) fn channel_sets(table: &PathTable) -> ChannelSets {
    let mut local = vec![u32::MAX; table.channel_count()];
    let mut active = Vec::new();
    let mut index: FxHashMap<Vec<u32>, usize> = FxHashMap::default();
    let mut sets: Vec<(Vec<u32>, f64, f64)> = Vec::new();
    let mut key = Vec::new();
    for row in table.rows().filter(|r| r.conversions + r.nulls > 0.0) {
        key.clear();
        for &c in row.channels {
            if local[c as usize] == u32::MAX {
                local[c as usize] = active.len() as u32;
                active.push(c);
            }
            key.push(local[c as usize]);
        }
        key.sort_unstable();
        key.dedup();
        let journeys = row.conversions + row.nulls;
        match index.get(key.as_slice()) {
            Some(&i) => {
                sets[i].1 += row.conversions;
                sets[i].2 += journeys;
            }
            None => {
                index.insert(key.clone(), sets.len());
                sets.push((key.clone(), row.conversions, journeys));
            }
        }
    }
    ChannelSets { active, sets }
}

/// The conversion-rate game, exact up to `exact_limit` active channels (tests lower it to
/// check the sampling estimate against the exact values).
pub(super) fn conversion_rate_game(
    table: &PathTable,
    options: ShapleyOptions,
    exact_limit: usize,
) -> ShapleyResult {
    let ChannelSets { active, sets } = channel_sets(table);
    let n = active.len();
    let (local_values, approximate, samples) = if n <= exact_limit {
        (exact_rate_values(n, &sets), false, 0)
    } else {
        let values = sampled_rate_values(n, &sets, options.samples, options.seed);
        (values, true, options.samples)
    };
    let mut values = vec![0.0; table.channel_count()];
    for (&code, &value) in active.iter().zip(&local_values) {
        values[code as usize] = value;
    }
    let sum: f64 = values.iter().sum();
    let scale = |total: f64| -> Vec<f64> {
        values
            .iter()
            .map(|&v| if sum != 0.0 { v / sum * total } else { 0.0 })
            .collect()
    };
    let credits = ChannelCredits {
        conversions: scale(table.total_conversions()),
        value: scale(table.total_value()),
    };
    ShapleyResult {
        game: ShapleyGame::ConversionRate,
        values,
        credits,
        approximate,
        samples,
    }
}

/// Exact Shapley values of the conversion-rate game over `n` ≤ 20 local channels.
fn exact_rate_values(n: usize, sets: &[(Vec<u32>, f64, f64)]) -> Vec<f64> {
    let size = 1usize << n;
    let mut conversions = vec![0.0f64; size];
    let mut journeys = vec![0.0f64; size];
    for (set, conv, total) in sets {
        let mask = set.iter().fold(0usize, |m, &i| m | 1 << i);
        conversions[mask] += conv;
        journeys[mask] += total;
    }
    for bit in 0..n {
        let step = 1usize << bit;
        for mask in 0..size {
            if mask & step != 0 {
                conversions[mask] += conversions[mask ^ step];
                journeys[mask] += journeys[mask ^ step];
            }
        }
    }
    // `conversions` becomes v(S) in place.
    for (rate, &total) in conversions.iter_mut().zip(&journeys) {
        *rate = if total > 0.0 { *rate / total } else { 0.0 };
    }
    let weights = coalition_weights(n);
    let mut values = vec![0.0; n];
    for mask in 0..size {
        let weight = weights[mask.count_ones() as usize];
        let base = conversions[mask];
        for (i, value) in values.iter_mut().enumerate() {
            if mask & (1 << i) == 0 {
                *value += weight * (conversions[mask | 1 << i] - base);
            }
        }
    }
    values
}

/// `w(s) = s!(n−s−1)!/n! = 1 / (n·C(n−1, s))` for coalition sizes s = 0..n−1, and 0 for the
/// grand coalition (nobody is left to join it).
pub(super) fn coalition_weights(n: usize) -> Vec<f64> {
    let mut weights = Vec::with_capacity(n + 1);
    let mut binomial = 1.0f64;
    for s in 0..n {
        weights.push(1.0 / (n as f64 * binomial));
        binomial = binomial * (n - 1 - s) as f64 / (s + 1) as f64;
    }
    weights.push(0.0);
    weights
}

/// Permutation-sampling estimate: in each seeded random order, a set's journeys join the
/// coalition when its last channel does, so one pass over the sets gives every prefix value.
fn sampled_rate_values(
    n: usize,
    sets: &[(Vec<u32>, f64, f64)],
    samples: usize,
    seed: u64,
) -> Vec<f64> {
    let mut rng = SplitMix64(seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut position = vec![0usize; n];
    let mut joined = vec![(0.0f64, 0.0f64); n];
    let mut values = vec![0.0; n];
    for _ in 0..samples {
        for i in (1..n).rev() {
            order.swap(i, rng.below(i + 1));
        }
        for (p, &channel) in order.iter().enumerate() {
            position[channel] = p;
        }
        joined.iter_mut().for_each(|j| *j = (0.0, 0.0));
        for (set, conv, total) in sets {
            let last = set.iter().map(|&c| position[c as usize]).max().unwrap_or(0);
            joined[last].0 += conv;
            joined[last].1 += total;
        }
        let (mut conv, mut total, mut previous) = (0.0, 0.0, 0.0);
        for (p, &channel) in order.iter().enumerate() {
            conv += joined[p].0;
            total += joined[p].1;
            let rate = if total > 0.0 { conv / total } else { 0.0 };
            values[channel] += rate - previous;
            previous = rate;
        }
    }
    values.iter_mut().for_each(|v| *v /= samples as f64);
    values
}

/// A tiny seeded generator (SplitMix64): deterministic across platforms, no dependency.
pub(super) struct SplitMix64(pub(super) u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound ≥ 1), by multiply-shift.
    pub(super) fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next()) * bound as u128) >> 64) as usize
    }
}
