//! The data-driven Markov model of order k (1–3) with removal effects, computed exactly.
//!
//! States are windows of k consecutive channels (a path shorter than k is one state),
//! consecutive identical states collapse (no self-loops), transitions are weighted by journeys
//! (conversions + nulls of each path), and `(conversion)` / `(null)` absorb. P(conversion) from
//! `(start)` comes from solving the absorbing chain ([`solve`]), never from simulation, so the
//! same paths always give the same numbers.
//!
//! Removal effect of channel c: `1 − P(conversion | c removed) / P(conversion)`, where removing
//! c sends every transition into a state containing c to `(null)`. Attributed conversions of c
//! = `RE_c / Σ RE × total conversions`. Value, as in ChannelAttribution, has its own removal
//! effect on the expected conversion value per journey (a conversion leaving state s carries
//! the mean value of the conversions that left s): attributed value of c =
//! `value-RE_c / Σ value-RE × total value`. No conversion at all gives zeros, never NaN.

mod chain;
mod scc;
mod solve;

use chain::{CONVERSION, Chain, FIRST_WINDOW, NULL, START};
use solve::{Workspace, solve};

use super::credits::{AttributionError, ChannelCredits};
use super::path_table::PathTable;

/// Parameters of a Markov run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkovOptions {
    /// The order k, 1–3.
    pub order: usize,
    /// Threads for the per-channel removal solves (1 = the calling thread only).
    pub threads: usize,
}

impl Default for MarkovOptions {
    fn default() -> Self {
        Self {
            order: 1,
            threads: 1,
        }
    }
}

/// A state of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkovState {
    /// Where every journey starts.
    Start,
    /// Absorbing: the journey converted.
    Conversion,
    /// Absorbing: the journey ended without converting.
    Null,
    /// A window of up to k consecutive channel codes.
    Window(Vec<u32>),
}

impl MarkovState {
    /// The state's display name: `(start)`, `(conversion)`, `(null)` or the window's channel
    /// names joined by ` > `.
    pub fn name(&self, channel_names: &[String]) -> String {
        match self {
            Self::Start => "(start)".to_owned(),
            Self::Conversion => "(conversion)".to_owned(),
            Self::Null => "(null)".to_owned(),
            Self::Window(codes) => codes
                .iter()
                .map(|&c| channel_names.get(c as usize).map_or("?", String::as_str))
                .collect::<Vec<_>>()
                .join(" > "),
        }
    }
}

/// One transition with a non-zero count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarkovTransition {
    /// Index into [`MarkovResult::states`] of the state left.
    pub from: u32,
    /// Index into [`MarkovResult::states`] of the state entered.
    pub to: u32,
    /// Journeys making the transition.
    pub count: f64,
    /// `count` / all journeys leaving `from`.
    pub probability: f64,
}

/// The removal effect of one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemovalEffect {
    /// `1 − P(conversion | removed) / P(conversion)`, in 0–1 (0 when P(conversion) is 0).
    pub removal_effect: f64,
    /// P(conversion) with the channel removed.
    pub conversion_probability_without: f64,
    /// The same on the expected conversion value per journey.
    pub value_removal_effect: f64,
    /// Expected conversion value per journey with the channel removed.
    pub value_per_journey_without: f64,
}

/// Everything a Markov run computed.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkovResult {
    /// The order used.
    pub order: usize,
    /// Attributed conversions and value per channel code.
    pub credits: ChannelCredits,
    /// P(conversion) from `(start)` in the full chain.
    pub conversion_probability: f64,
    /// Expected conversion value per journey in the full chain.
    pub value_per_journey: f64,
    /// Per channel code.
    pub removal_effects: Vec<RemovalEffect>,
    /// All states: `Start`, `Conversion`, `Null`, then the windows in first-seen order.
    pub states: Vec<MarkovState>,
    /// Every transition with a non-zero count, ordered by (from, to).
    pub transitions: Vec<MarkovTransition>,
}

/// Runs the Markov model on the paths.
pub fn markov_attribution(
    table: &PathTable,
    options: MarkovOptions,
) -> Result<MarkovResult, AttributionError> {
    if !(1..=3).contains(&options.order) {
        return Err(AttributionError::InvalidParameter {
            field: "markov_order",
            reason: "must be 1, 2 or 3".to_owned(),
        });
    }
    let chain = Chain::build(table, options.order);
    let components = scc::components_sinks_first(&chain);
    let channel_count = table.channel_count();
    let mut workspace = Workspace::default();
    let full = solve(
        &chain,
        &components,
        &vec![false; chain.state_count()],
        &mut workspace,
    )?;
    let without = removal_solves(&chain, &components, channel_count, options.threads)?;
    let removal_effects: Vec<RemovalEffect> = without
        .iter()
        .map(|w| RemovalEffect {
            removal_effect: relative_loss(full.conversion, w.conversion),
            conversion_probability_without: w.conversion,
            value_removal_effect: relative_loss(full.value, w.value),
            value_per_journey_without: w.value,
        })
        .collect();
    let conversion_effects: Vec<f64> = removal_effects.iter().map(|r| r.removal_effect).collect();
    let value_effects: Vec<f64> = removal_effects
        .iter()
        .map(|r| r.value_removal_effect)
        .collect();
    Ok(MarkovResult {
        order: options.order,
        credits: ChannelCredits {
            conversions: distribute(&conversion_effects, table.total_conversions()),
            value: distribute(&value_effects, table.total_value()),
        },
        conversion_probability: full.conversion,
        value_per_journey: full.value,
        removal_effects,
        states: states_of(&chain),
        transitions: transitions_of(&chain),
    })
}

/// `1 − without / full`, clamped to 0–1 (rounding may stray by an ulp); 0 when `full` is 0.
fn relative_loss(full: f64, without: f64) -> f64 {
    if full > 0.0 {
        (1.0 - without / full).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// `effect_c / Σ effect × total`, zeros when no effect.
fn distribute(effects: &[f64], total: f64) -> Vec<f64> {
    let sum: f64 = effects.iter().sum();
    effects
        .iter()
        .map(|&e| if sum > 0.0 { e / sum * total } else { 0.0 })
        .collect()
}

/// The absorption with each channel removed, channel by channel, on up to `threads` threads.
fn removal_solves(
    chain: &Chain,
    components: &[Vec<u32>],
    channel_count: usize,
    threads: usize,
) -> Result<Vec<solve::Absorption>, AttributionError> {
    let channels: Vec<u32> = (0..channel_count as u32).collect();
    let threads = threads.clamp(1, channel_count.max(1));
    let chunk = channel_count.div_ceil(threads).max(1);
    let solve_chunk = |codes: &[u32]| -> Result<Vec<solve::Absorption>, AttributionError> {
        let mut workspace = Workspace::default();
        let mut dead = vec![false; chain.state_count()];
        codes
            .iter()
            .map(|&channel| {
                for (s, is_dead) in dead.iter_mut().enumerate() {
                    *is_dead = chain
                        .window(s as u32)
                        .is_some_and(|w| w.channels().contains(&channel));
                }
                solve(chain, components, &dead, &mut workspace)
            })
            .collect()
    };
    if threads == 1 {
        return solve_chunk(&channels);
    }
    let results = crate::calendar::on_threads(channels.chunks(chunk), solve_chunk);
    let mut all = Vec::with_capacity(channel_count);
    for result in results {
        all.extend(result?);
    }
    Ok(all)
}

fn states_of(chain: &Chain) -> Vec<MarkovState> {
    let mut states = vec![
        MarkovState::Start,
        MarkovState::Conversion,
        MarkovState::Null,
    ];
    states.extend(
        chain
            .windows
            .iter()
            .map(|w| MarkovState::Window(w.channels().to_vec())),
    );
    debug_assert_eq!(
        [START, CONVERSION, NULL, FIRST_WINDOW],
        [0, 1, 2, 3],
        "state numbering shared with the chain"
    );
    states
}

fn transitions_of(chain: &Chain) -> Vec<MarkovTransition> {
    (0..chain.state_count())
        .flat_map(|s| {
            chain.row(s).map(move |e| MarkovTransition {
                from: s as u32,
                to: chain.targets[e],
                count: chain.counts[e],
                probability: chain.probabilities[e],
            })
        })
        .collect()
}
