//! Paths: the most common sequences of items (event or touchpoint codes) within sessions, as
//! a graph of items at positions joined by transitions.
//!
//! Per person, with the timeline sorted by (time, sequence):
//! 1. excluded items are removed first, as if they never happened (they neither extend nor
//!    split a session);
//! 2. the remaining items are cut into sessions at every gap longer than the session gap
//!    (a gap exactly equal to it keeps the session);
//! 3. with `collapse_repeats`, consecutive repeats of one item become one, keeping the first
//!    occurrence's time (A A B becomes A B; a repeat still extends the session's gap clock);
//! 4. start and end items shape each session independently (a session is never joined to
//!    the next one to find a start or an end):
//!    - `start_item`: the session starts at its first occurrence (position 1); sessions
//!      without it are left out;
//!    - `end_item`: the session ends at its first occurrence at or after the start (strictly
//!      after it when the start and end items are the same); sessions without one are left
//!      out; positions count back from it: the end item is at position `max_steps`, or at the
//!      session's length when shorter (and the start item may then be cut off);
//!    - otherwise the session keeps its first `max_steps` items.
//!
//! A node is `(position, item)` (1-based; the service renders the key `{position}_{item}`
//! with the item's name); an edge joins position p to p + 1 of one session. Edges carry the
//! transition count, the distinct persons and the total time between the two items (mean =
//! total / transitions); nodes carry sessions, distinct persons and drop-offs (sessions ending
//! at the node). Heaviest edges first with a tie-break the caller chooses (by default by
//! position then item codes; the service can order ties by its rendered keys), so the
//! selection is deterministic.
//!
//! Accumulators of disjoint partitions of persons merge by addition (a person's timeline must
//! be entirely in one partition, or its distinct-person counts would be counted twice).

mod accumulate;
mod graph;
mod hash;

pub use accumulate::{EdgeStats, NodeStats, PathAccumulator};
pub use graph::{EdgeSelection, PathEdge, PathGraph, PathNode};

/// Default session gap: 30 minutes.
pub const DEFAULT_SESSION_GAP_MS: i64 = 30 * 60_000;
/// Default items per session.
pub const DEFAULT_MAX_STEPS: usize = 5;
/// Default most edges returned.
pub const DEFAULT_MAX_EDGES: usize = 50;

/// Why paths could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathsError {
    /// An input field is not acceptable.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field, as the service names it.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> PathsError {
    PathsError::InvalidInput {
        field,
        reason: reason.into(),
    }
}

/// One event of a person's timeline, as paths need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathEvent {
    /// When it happened (UTC ms).
    pub time_ms: i64,
    /// The event's sequence number, ordering events of equal time.
    pub seq: u64,
    /// The item's code (an event or a touchpoint).
    pub item: u32,
}

/// An item at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey {
    /// 1-based position in the session.
    pub position: u8,
    /// The item's code.
    pub item: u32,
}

/// A transition from an item at `position` to an item at `position + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    /// The source's 1-based position.
    pub position: u8,
    /// The source item's code.
    pub source_item: u32,
    /// The target item's code.
    pub target_item: u32,
}

impl EdgeKey {
    /// The node the edge leaves.
    pub fn source(&self) -> NodeKey {
        NodeKey {
            position: self.position,
            item: self.source_item,
        }
    }

    /// The node the edge enters.
    pub fn target(&self) -> NodeKey {
        NodeKey {
            position: self.position + 1,
            item: self.target_item,
        }
    }
}

/// How sessions are cut and shaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathOptions {
    /// A gap longer than this ends a session (1 minute to 7 days).
    pub session_gap_ms: i64,
    /// Items kept per session (2 to 20).
    pub max_steps: usize,
    /// Sessions start at the first occurrence of this item.
    pub start_item: Option<u32>,
    /// Sessions end at the first occurrence of this item after the start.
    pub end_item: Option<u32>,
    /// Items removed before anything else (at most 50).
    pub exclude_items: Vec<u32>,
    /// Collapse consecutive repeats of one item.
    pub collapse_repeats: bool,
}

impl Default for PathOptions {
    fn default() -> Self {
        Self {
            session_gap_ms: DEFAULT_SESSION_GAP_MS,
            max_steps: DEFAULT_MAX_STEPS,
            start_item: None,
            end_item: None,
            exclude_items: Vec::new(),
            collapse_repeats: false,
        }
    }
}

impl PathOptions {
    /// Checks every field, naming the first one out of bounds.
    pub fn validate(&self) -> Result<(), PathsError> {
        if !(60_000..=7 * 24 * 3_600_000).contains(&self.session_gap_ms) {
            return Err(invalid("session_gap", "must be from 1 minute to 7 days"));
        }
        if !(2..=20).contains(&self.max_steps) {
            return Err(invalid("max_steps", "must be from 2 to 20"));
        }
        if self.exclude_items.len() > 50 {
            return Err(invalid("exclude_items", "at most 50 items"));
        }
        let excluded = |item: Option<u32>| item.is_some_and(|i| self.exclude_items.contains(&i));
        if excluded(self.start_item) {
            return Err(invalid("start_item", "is also excluded"));
        }
        if excluded(self.end_item) {
            return Err(invalid("end_item", "is also excluded"));
        }
        Ok(())
    }
}

/// Folds every person's timeline (sorted by time, then sequence), `threads` partitions side
/// by side.
pub fn run(
    persons: &[&[PathEvent]],
    options: &PathOptions,
    threads: usize,
) -> Result<PathAccumulator, PathsError> {
    options.validate()?;
    crate::calendar::run_partitioned(
        persons,
        threads,
        || PathAccumulator::new(options.clone()),
        |accumulator, events| accumulator.add_person(events),
        |total, partial| total.merge(&partial),
    )
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_reference;
