//! The chain conversion model: a journey's touches walk a first-order chain over the channels
//! (the template's [`Chain`]) until it converts or leaves, and the truth states each channel's
//! removal effect on the expected chain, as Markov attribution defines it.
//!
//! Persons differ in the channels they can be reached through (no WeChat, no app, not a
//! member), and each journey walks the template's chain with those channels left out. Markov
//! attribution reads one chain pooled over every journey, so the truth is computed on the
//! pooled chain the generator's journeys follow in expectation: per availability mask, the
//! expected transitions of one journey (the expected visits `π₀ (I − Q)⁻¹`, times each row)
//! weighted by how many journeys started with that mask. The removal effect of channel `c` is
//! `1 − P(conversion | c removed) / P(conversion)`, with every transition into `c` sent to
//! leaving. Both probabilities are solved exactly on the 8 channel states (a dense elimination
//! of its own, so the truth shares no code with the modelling service).

use std::collections::BTreeMap;

use super::Gen;
use crate::rng;
use crate::template::{Chain, Template, Touch};

const HOUR_MS: i64 = 3_600_000;
/// Channels.
const N: usize = 8;
/// Column of converting in a walk's row; leaving is the one after it.
const CONVERT: usize = N;
/// No journey walks more touches than this; one that would ends without converting. With
/// every row leaving or converting at least a third of the time, this is never reached in
/// practice (p < 1e-8 per journey).
const MAX_TOUCHES: usize = 40;

/// A journey's chain for one availability mask: the first channel's probabilities and, per
/// channel, those of the next channel, of converting and of leaving (rows sum to 1).
#[derive(Debug, Clone)]
pub(crate) struct Walk {
    pub start: [f64; N],
    pub rows: [[f64; N + 2]; N],
}

/// Bit `i` of a mask: channel `Touch::ALL[i]` can reach the person.
pub(crate) fn mask_of(weights: &[f64; N]) -> u8 {
    weights
        .iter()
        .enumerate()
        .filter(|(_, w)| **w > 0.0)
        .fold(0u8, |m, (i, _)| m | (1 << i))
}

fn available(mask: u8, i: usize) -> bool {
    mask & (1 << i) != 0
}

/// The walk of the template's chain over the channels of `mask`.
pub(crate) fn walk(t: &Template, mask: u8) -> Walk {
    let chain: &Chain = &t.chain;
    let mut start = [0.0; N];
    for (i, slot) in start.iter_mut().enumerate() {
        if available(mask, i) {
            *slot = t.touch_weights[i];
        }
    }
    normalise(&mut start);
    let mut rows = [[0.0; N + 2]; N];
    for (i, row) in rows.iter_mut().enumerate() {
        if !available(mask, i) {
            // Never entered; leaving keeps the system solvable.
            row[CONVERT + 1] = 1.0;
            continue;
        }
        for (j, cell) in row.iter_mut().take(N).enumerate() {
            if j != i && available(mask, j) {
                *cell = chain.next[i][j];
            }
        }
        row[CONVERT] = chain.convert[i];
        row[CONVERT + 1] = chain.leave[i];
        normalise(row);
    }
    Walk { start, rows }
}

fn normalise(v: &mut [f64]) {
    let total: f64 = v.iter().sum();
    if total > 0.0 {
        v.iter_mut().for_each(|x| *x /= total);
    }
}

/// Solves `a · x = b` by Gaussian elimination with partial pivoting. `a` is `I − Q` of a
/// chain whose every state can leave, so it is non-singular.
fn solve(mut a: [[f64; N]; N], mut b: [f64; N]) -> [f64; N] {
    for col in 0..N {
        let pivot = (col..N)
            .max_by(|x, y| a[*x][col].abs().total_cmp(&a[*y][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let p = a[col][col];
        if p == 0.0 {
            continue;
        }
        let pivot_row = a[col];
        for row in col + 1..N {
            let f = a[row][col] / p;
            if f != 0.0 {
                for (x, y) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                    *x -= f * y;
                }
                b[row] -= f * b[col];
            }
        }
    }
    let mut x = [0.0; N];
    for row in (0..N).rev() {
        let tail: f64 = (row + 1..N).map(|k| a[row][k] * x[k]).sum();
        x[row] = if a[row][row] == 0.0 {
            0.0
        } else {
            (b[row] - tail) / a[row][row]
        };
    }
    x
}

/// Per channel, the probability that a walk standing there converts; with `removed`, every
/// transition into that channel leaves instead.
fn absorption(w: &Walk, removed: Option<usize>) -> [f64; N] {
    let mut a = [[0.0; N]; N];
    let mut b = [0.0; N];
    for i in 0..N {
        a[i][i] = 1.0;
        if Some(i) == removed {
            continue;
        }
        // The removed channel's own row stays `h = 0`, so entering it is leaving.
        for (cell, q) in a[i].iter_mut().zip(&w.rows[i][..N]) {
            *cell -= q;
        }
        b[i] = w.rows[i][CONVERT];
    }
    solve(a, b)
}

/// Every availability mask's walk with, per channel, the probability that a walk standing
/// there converts: solved once per run, not once per journey.
#[derive(Debug, Clone, Default)]
pub struct Walks {
    by_mask: Vec<(Walk, [f64; N])>,
}

impl Walks {
    /// The walks of the template's chain, one per mask.
    pub(crate) fn of(t: &Template) -> Self {
        let by_mask = (0..=u8::MAX)
            .map(|mask| {
                let w = walk(t, mask);
                let h = absorption(&w, None);
                (w, h)
            })
            .collect();
        Self { by_mask }
    }

    /// The walk of `mask` and its conversion probabilities; `None` when the run draws no
    /// chain journeys.
    fn get(&self, mask: u8) -> Option<&(Walk, [f64; N])> {
        self.by_mask.get(usize::from(mask))
    }
}

/// The probability that a journey of `w` converts, with `removed` as in [`absorption`].
pub(crate) fn conversion_probability(w: &Walk, removed: Option<usize>) -> f64 {
    let h = absorption(w, removed);
    (0..N)
        .filter(|i| Some(*i) != removed)
        .map(|i| w.start[i] * h[i])
        .sum()
}

/// The expected transitions of one journey of `w`: row 0 from the start, row `1 + i` from
/// channel `i`; columns the channels, converting and leaving.
fn expected_flows(w: &Walk) -> [[f64; N + 2]; N + 1] {
    // Expected visits v solve vᵀ (I − Q) = π₀ᵀ, i.e. (I − Q)ᵀ v = π₀.
    let mut a = [[0.0; N]; N];
    for (i, row) in a.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = f64::from(u8::from(i == j)) - w.rows[j][i];
        }
    }
    let visits = solve(a, w.start);
    let mut flows = [[0.0; N + 2]; N + 1];
    flows[0][..N].copy_from_slice(&w.start);
    for ((row, v), from) in flows[1..].iter_mut().zip(visits).zip(&w.rows) {
        for (cell, p) in row.iter_mut().zip(from) {
            *cell = v * p;
        }
    }
    flows
}

/// The pooled chain of `journeys` (journeys per availability mask) as a walk.
fn pooled(t: &Template, journeys: &BTreeMap<u8, u64>) -> Walk {
    let mut flows = [[0.0; N + 2]; N + 1];
    for (mask, count) in journeys {
        let one = expected_flows(&walk(t, *mask));
        for (total, row) in flows.iter_mut().zip(one) {
            for (cell, x) in total.iter_mut().zip(row) {
                *cell += *count as f64 * x;
            }
        }
    }
    let mut start = [0.0; N];
    start.copy_from_slice(&flows[0][..N]);
    normalise(&mut start);
    let mut rows = [[0.0; N + 2]; N];
    for (i, row) in rows.iter_mut().enumerate() {
        *row = flows[1 + i];
        if row.iter().sum::<f64>() == 0.0 {
            row[CONVERT + 1] = 1.0;
        }
        normalise(row);
    }
    Walk { start, rows }
}

/// The removal effect of every channel (in [`Touch::ALL`] order) on the pooled chain of
/// `journeys`, and that chain's conversion probability. All zero when no journey was drawn.
pub fn removal_effects(t: &Template, journeys: &BTreeMap<u8, u64>) -> ([f64; N], f64) {
    let mut effects = [0.0; N];
    if journeys.values().sum::<u64>() == 0 {
        return (effects, 0.0);
    }
    let w = pooled(t, journeys);
    let p = conversion_probability(&w, None);
    if p > 0.0 {
        for (c, effect) in effects.iter_mut().enumerate() {
            *effect = 1.0 - conversion_probability(&w, Some(c)) / p;
        }
    }
    (effects, p)
}

impl Gen<'_> {
    /// A journey of the chain model starting near `start`: its touches, the end of the last
    /// one, the conversion probability from its first channel, and whether the walk converted.
    pub(super) fn chain_walk(
        &mut self,
        first: i64,
        active_end: i64,
    ) -> Option<(Vec<Touch>, i64, f64, bool)> {
        let weights = self.touch_weights(first);
        let mask = mask_of(&weights);
        let ctx = self.ctx;
        let (w, from) = ctx.walks.get(mask)?;
        let mut state = rng::weighted(&mut self.rng, &w.start);
        let p = from[state];
        let (mut t, mut last_end) = (first, first);
        let mut touches = Vec::new();
        let mut converts = false;
        while touches.len() < MAX_TOUCHES && t < active_end {
            let touch = Touch::ALL[state];
            // A member who opts out mid-journey gets no further CRM message: the walk leaves.
            if self.touch_weights(t)[state] == 0.0 {
                break;
            }
            last_end = self.touch(touch, t);
            touches.push(touch);
            self.stats.touches[state] += 1;
            let gap = rng::exponential(&mut self.rng, 7.0 * HOUR_MS as f64) as i64;
            t = last_end + gap + 300_000;
            match rng::weighted(&mut self.rng, &w.rows[state]) {
                next if next < N => state = next,
                CONVERT => {
                    converts = true;
                    break;
                }
                _ => break,
            }
        }
        if touches.is_empty() {
            return None;
        }
        *self.stats.chain_journeys.entry(mask).or_default() += 1;
        Some((touches, last_end, p, converts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TemplateKind;
    use crate::template;
    use rand::{Rng as _, SeedableRng as _};

    fn retail() -> &'static Template {
        template::get(TemplateKind::Retail)
    }

    /// Walks `w` once, with `removed` sending every entry into it to leaving: whether it
    /// converted. Adds the transitions it took to `seen` as (from, to): from `N` is the start;
    /// to is a channel, `N` converting or `N + 1` leaving.
    fn simulate(
        w: &Walk,
        removed: Option<usize>,
        rng: &mut rand_chacha::ChaCha8Rng,
        seen: &mut Vec<(usize, usize)>,
    ) -> bool {
        let pick = |weights: &[f64], rng: &mut rand_chacha::ChaCha8Rng| {
            let mut x: f64 = rng.random::<f64>();
            for (i, p) in weights.iter().enumerate() {
                if x < *p {
                    return i;
                }
                x -= p;
            }
            weights.len() - 1
        };
        let mut state = pick(&w.start, rng);
        seen.push((N, state));
        loop {
            if Some(state) == removed {
                return false;
            }
            let next = pick(&w.rows[state], rng);
            seen.push((state, next));
            match next {
                j if j < N => state = j,
                CONVERT => return true,
                _ => return false,
            }
        }
    }

    #[test]
    fn the_solved_conversion_probability_equals_walking_the_chain() {
        // Every mask's exact probability, with and without each channel, against 40,000
        // simulated walks: within four standard errors.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for mask in [0xFFu8, 0b1011_1011, 0b0110_0101, 0b0010_0000] {
            let w = walk(retail(), mask);
            for removed in [None, Some(3), Some(6)] {
                let exact = conversion_probability(&w, removed);
                let runs = 40_000;
                let mut seen = Vec::new();
                let hits = (0..runs)
                    .filter(|_| simulate(&w, removed, &mut rng, &mut seen))
                    .count();
                let observed = hits as f64 / f64::from(runs);
                let se = (exact * (1.0 - exact) / f64::from(runs)).sqrt().max(1e-4);
                assert!(
                    (observed - exact).abs() < 4.0 * se,
                    "mask {mask:#b} removed {removed:?}: exact {exact}, walked {observed}"
                );
            }
        }
    }

    #[test]
    fn the_pooled_chain_equals_the_transitions_of_walked_journeys() {
        // Journeys of three masks walked and their transitions counted: the chain built from
        // the counts gives the same removal effects as the expected chain, within 0.01. The
        // masks share only the store, so weighting each mask's rows by its expected visits
        // (not by its journeys, nor transposed) is what the test can tell apart.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let masks: BTreeMap<u8, u64> =
            [(0b1110_0001, 60_000), (0b0101_1110, 40_000), (0xFF, 20_000)]
                .into_iter()
                .collect();
        let mut counts = [[0.0; N + 2]; N + 1];
        for (mask, n) in &masks {
            let w = walk(retail(), *mask);
            for _ in 0..*n {
                let mut seen = Vec::new();
                simulate(&w, None, &mut rng, &mut seen);
                for (from, to) in seen {
                    let row = if from == N { 0 } else { from + 1 };
                    counts[row][to.min(N + 1)] += 1.0;
                }
            }
        }
        let mut start = [0.0; N];
        start.copy_from_slice(&counts[0][..N]);
        normalise(&mut start);
        let mut rows = [[0.0; N + 2]; N];
        for (i, row) in rows.iter_mut().enumerate() {
            *row = counts[1 + i];
            normalise(row);
        }
        let counted = Walk { start, rows };
        let (expected, _) = removal_effects(retail(), &masks);
        let p = conversion_probability(&counted, None);
        for (c, effect) in expected.iter().enumerate() {
            let walked = 1.0 - conversion_probability(&counted, Some(c)) / p;
            assert!(
                (walked - effect).abs() < 0.01,
                "channel {c}: expected {effect}, walked {walked}"
            );
        }
    }

    #[test]
    fn the_expected_transitions_equal_those_of_walked_journeys() {
        // One mask's expected transitions per journey against the mean over 60,000 walks.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let w = walk(retail(), 0b1101_1011);
        let expected = expected_flows(&w);
        let runs = 60_000;
        let mut counts = [[0.0; N + 2]; N + 1];
        for _ in 0..runs {
            let mut seen = Vec::new();
            simulate(&w, None, &mut rng, &mut seen);
            for (from, to) in seen {
                counts[if from == N { 0 } else { from + 1 }][to] += 1.0;
            }
        }
        for (row, (want, got)) in expected.iter().zip(counts).enumerate() {
            for (col, (e, c)) in want.iter().zip(got).enumerate() {
                let mean = c / f64::from(runs);
                // A count per journey is at most a few; its spread is below 2 · sqrt(e).
                let se = 2.0 * (e / f64::from(runs)).sqrt() + 1e-4;
                assert!(
                    (mean - e).abs() < 4.0 * se,
                    "row {row} col {col}: expected {e}, walked {mean}"
                );
            }
        }
    }

    #[test]
    fn a_channel_no_journey_can_reach_has_no_effect() {
        let masks: BTreeMap<u8, u64> = [(0b1111_1011, 100)].into_iter().collect();
        let (effects, p) = removal_effects(retail(), &masks);
        assert!(p > 0.05 && p < 0.6, "conversion probability {p}");
        assert!(effects[2].abs() < 1e-12, "crm {}", effects[2]);
        assert!(effects.iter().enumerate().all(|(c, e)| c == 2 || *e > 0.0));
        assert_eq!(removal_effects(retail(), &BTreeMap::new()).1, 0.0);
    }
}
