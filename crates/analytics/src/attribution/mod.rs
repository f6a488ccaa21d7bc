//! Multi-touch attribution: which channels deserve the credit for conversions.
//!
//! Inputs are either person journeys ([`Journey`]: channel codes with touch times, the
//! conversion time or the analysis end, a converted flag and a value) or aggregated paths in
//! the common `path;conversions;value;nulls` layout ([`parse_paths_text`]). Both end up in a
//! [`PathTable`]: distinct channel sequences with their converting and non-converting journey
//! counts, built by mergeable accumulators so partitions can be aggregated on separate threads
//! ([`PathTable::from_journey_partitions`], [`parse_paths_text_parallel`]); merging in
//! partition order gives the same table as one sequential pass.
//!
//! Models, each a pure function returning [`ChannelCredits`] indexed by channel code:
//! - [`heuristic_credits`]: first touch, last touch, linear (per occurrence or per distinct
//!   channel), position based; [`time_decay_credits`] on journeys (it needs touch times).
//! - [`markov_attribution`]: the order-k Markov chain with removal effects, computed exactly by
//!   solving the absorbing chain (never by simulation).
//! - [`shapley_attribution`]: the conversions game (exact, closed form) and the conversion-rate
//!   game (exact over channel bitmasks up to [`SHAPLEY_EXACT_CHANNEL_LIMIT`] channels, a
//!   seeded permutation-sampling approximation beyond, flagged as such).
//! - [`channel_roi`]: cost per attributed conversion and return on spend.
//!
//! Rules chosen where the contract leaves room:
//! - Markov value credit follows ChannelAttribution: conversion value gets its own removal
//!   effect. A conversion leaving state `s` carries the mean value of the conversions that left
//!   `s`; the expected value per journey from `(start)` is solved exactly like the conversion
//!   probability, and attributed value = value-RE_c / Σ value-RE × total value. Both removal
//!   effects are exposed.
//! - Position based with two touches splits `first : last` in proportion to the two shares
//!   (50/50 at the defaults); one touch gets everything.
//! - Time decay measures Δt from each touch to the journey's end (conversion time); weights are
//!   normalised per journey, computed relative to the latest touch so they never underflow.
//! - Non-converting journeys carry no credit in the heuristics; they matter to Markov (the null
//!   transitions) and to the conversion-rate Shapley game.
//! - Shapley credits are the Shapley values scaled to the total conversions (and value); in the
//!   conversion-rate game a channel that lowers the rate gets a negative value and a negative
//!   credit. The conversions game's value credit splits each conversion's value equally over
//!   its distinct channels; the conversion-rate game's value credit uses the conversion shares.
//! - Aggregated-path text size limits (lines, bytes) are the service's to enforce; the parser
//!   accepts any size and reports every malformed row (the first [`MAX_REPORTED_VIOLATIONS`]).
//! - Every result is a number: no conversions at all gives zero credits and zero removal
//!   effects, never NaN.

mod credits;
mod dense;
mod distinct_paths;
mod fxhash;
mod heuristics;
mod journey;
mod markov;
mod path_index;
mod path_table;
mod paths_scan;
mod paths_text;
mod roi;
mod shapley;
mod uplift;

pub use credits::{AttributionError, ChannelCredits};
pub use heuristics::{
    DEFAULT_HALF_LIFE_MS, HeuristicModel, MIN_HALF_LIFE_MS, heuristic_credits, time_decay_credits,
};
pub use journey::Journey;
pub use markov::{
    MarkovOptions, MarkovResult, MarkovState, MarkovTransition, RemovalEffect, markov_attribution,
};
pub use path_table::{PathRow, PathTable, PathTableBuilder};
pub use paths_text::{
    MAX_REPORTED_VIOLATIONS, PathsField, PathsTextError, PathsTextViolation, parse_paths_text,
    parse_paths_text_parallel,
};
pub use roi::{ChannelRoi, channel_roi};
pub use shapley::{
    SHAPLEY_EXACT_CHANNEL_LIMIT, ShapleyGame, ShapleyOptions, ShapleyResult, shapley_attribution,
};
pub use uplift::{RIDGE as UPLIFT_RIDGE, UPLIFT_CHANNEL_LIMIT};

#[cfg(test)]
mod tests_heuristics;
#[cfg(test)]
mod tests_markov;
#[cfg(test)]
mod tests_paths_reference;
#[cfg(test)]
mod tests_paths_text;
#[cfg(test)]
mod tests_shapley;
#[cfg(test)]
mod tests_uplift;
