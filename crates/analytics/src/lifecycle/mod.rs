//! Lifecycle: how many persons are new, returning, resurrecting, dormant or churned in each
//! interval, and each person's current stage.
//!
//! Statuses of a person in interval `i` (an interval is *active* when it holds at least one
//! qualifying activity of the person):
//! - `new`: active, and `i` contains the person's first-seen time (supplied by the caller from
//!   identity; it may lie before the reported range). A person whose first-seen interval holds
//!   no qualifying activity is never new: their first active interval is resurrecting, as in
//!   PostHog when a person's creation is not in their first active period;
//! - `returning`: active in `i` and in `i − 1`, and not new;
//! - `resurrecting`: active in `i`, not in `i − 1`, and not new;
//! - `dormant`: not active in `i`, active in `i − 1` (reported once per inactive run);
//! - `churned` (touchline's addition): not active in `i − K + 1 ..= i`, active in `i − K`
//!   (reported once, at the K-th empty interval; default K = 3).
//!
//! Counts are positive numbers, dormant and churned included (PostHog reports dormant as a
//! negative count for charting; the contract counts persons, and charts flip the sign). The
//! counts are independent definitions: with K = 1 a person entering inactivity is counted both
//! dormant (PostHog's number, unchanged by K) and churned; a person's own history shows one
//! status per interval, and there churned wins over dormant.
//!
//! Looking back: the model adds K + 1 intervals before the reported range so that statuses of
//! the first reported intervals see the activity before the range, as PostHog does for the one
//! previous interval. Activity outside that extended grid is ignored.
//!
//! Stages (`current_stage`), judged on the interval `c` containing `as_of` when it is active,
//! otherwise on the previous (last complete) interval `j = c − 1`:
//! - judged interval active: status new → stage `New`, returning → `Active`, resurrecting →
//!   `Returning` (the contract's stage names);
//! - judged interval inactive: `Dormant` while the run of inactive intervals ending at `j` is
//!   shorter than K, `Churned` from K on; a person without any qualifying activity up to `j` has
//!   no stage.
//!
//! The input is one slice of qualifying activity instants per person (the caller precomputes
//! which events qualify); order does not matter. Per-partition accumulators merge by addition,
//! so partitions of persons may run on separate threads ([`LifecycleModel::run`]).

mod person;
mod report;

pub use person::{PersonInterval, PersonStage};
pub use report::{LifecycleAccumulator, LifecycleCounts, LifecycleIntervalCounts};

use crate::calendar::{Calendar, CalendarError, Interval, IntervalGrid};

/// The default K: consecutive empty intervals after which a person is churned.
pub const DEFAULT_CHURN_INTERVALS: u32 = 3;

/// The largest K accepted.
pub const MAX_CHURN_INTERVALS: u32 = 52;

/// The most intervals a report may hold.
pub const MAX_REPORTED_INTERVALS: usize = 400;

/// Why a lifecycle could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// An input field is not acceptable.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field, as the service names it.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The calendar could not produce the intervals.
    #[error(transparent)]
    Calendar(#[from] CalendarError),
}

/// How a person is classified in one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LifecycleStatus {
    /// The interval holds the person's first-seen time and activity.
    New,
    /// Active now and in the previous interval.
    Returning,
    /// Active now, not in the previous interval, not new.
    Resurrecting,
    /// Inactive now, active in the previous interval.
    Dormant,
    /// The K-th consecutive inactive interval after activity.
    Churned,
    /// None of the above.
    Inactive,
}

/// A person's current stage (the contract's `LifecycleStage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LifecycleStage {
    /// First-seen in the judged interval, and active in it.
    New,
    /// Active in the judged interval and the one before.
    Active,
    /// Active in the judged interval after one or more inactive intervals.
    Returning,
    /// Inactive for fewer than K intervals.
    Dormant,
    /// Inactive for K or more intervals.
    Churned,
}

/// One person's input: first-seen time and qualifying activity instants (any order).
#[derive(Debug, Clone, Copy)]
pub struct LifecyclePerson<'a> {
    /// The person's first-ever touchpoint (from identity), if known.
    pub first_seen_ms: Option<i64>,
    /// Instants (UTC ms) of the person's qualifying activity.
    pub activity_ms: &'a [i64],
}

/// A lifecycle over a reported range of intervals, with the look-back it needs.
#[derive(Debug, Clone)]
pub struct LifecycleModel {
    calendar: Calendar,
    /// The reported intervals preceded by `look_back` intervals.
    grid: IntervalGrid,
    churn_intervals: usize,
    /// K + 1 intervals before the reported ones: K for a churn inside the range, one more so
    /// a stage judged on the interval before `as_of` still sees that interval's predecessor.
    look_back: usize,
}

impl LifecycleModel {
    /// A model reporting the intervals of `reported` (built with `calendar`), churning after
    /// `churn_intervals` (K) empty intervals.
    pub fn new(
        calendar: &Calendar,
        reported: &IntervalGrid,
        churn_intervals: u32,
    ) -> Result<Self, LifecycleError> {
        if calendar.interval() == Interval::Hour {
            return Err(LifecycleError::InvalidInput {
                field: "options.interval",
                reason: "lifecycle is computed by day, week or month".to_owned(),
            });
        }
        if !(1..=MAX_CHURN_INTERVALS).contains(&churn_intervals) {
            return Err(LifecycleError::InvalidInput {
                field: "options.churn_intervals",
                reason: format!("must be from 1 to {MAX_CHURN_INTERVALS}"),
            });
        }
        if reported.is_empty() || reported.len() > MAX_REPORTED_INTERVALS {
            return Err(LifecycleError::InvalidInput {
                field: "scope.time_range",
                reason: format!("must hold from 1 to {MAX_REPORTED_INTERVALS} intervals"),
            });
        }
        let churn_intervals = churn_intervals as usize;
        let look_back = churn_intervals + 1;
        let grid = reported.extended(calendar, look_back, 0)?;
        Ok(Self {
            calendar: *calendar,
            grid,
            churn_intervals,
            look_back,
        })
    }

    /// K, the consecutive empty intervals after which a person is churned.
    pub fn churn_intervals(&self) -> usize {
        self.churn_intervals
    }

    /// The reported intervals' count.
    pub fn reported_len(&self) -> usize {
        self.grid.len() - self.look_back
    }

    /// An empty accumulator for one partition of persons.
    pub fn accumulator(&self) -> LifecycleAccumulator<'_> {
        LifecycleAccumulator::new(self)
    }

    /// Counts every person, folding `threads` partitions side by side.
    pub fn run(&self, persons: &[LifecyclePerson<'_>], threads: usize) -> LifecycleAccumulator<'_> {
        crate::calendar::run_partitioned_infallible(
            persons,
            threads,
            || self.accumulator(),
            |accumulator, person| accumulator.add_person(person),
            |total, partial| total.merge(&partial),
        )
    }
}

/// Marks the grid intervals holding activity in `bits` (cleared first; one bit per interval).
fn mark_activity(grid: &IntervalGrid, activity_ms: &[i64], bits: &mut Vec<u64>) {
    bits.clear();
    bits.resize(grid.len().div_ceil(64), 0);
    for &instant in activity_ms {
        if let Some(index) = grid.index_of(instant) {
            bits[index / 64] |= 1 << (index % 64);
        }
    }
}

/// Whether interval `index` is marked in `bits`.
fn is_marked(bits: &[u64], index: usize) -> bool {
    bits[index / 64] & (1 << (index % 64)) != 0
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_reference;
