//! Retention: of the persons who did a start event in an interval (a cohort), how many came
//! back with a return event k intervals later.
//!
//! Rules, following PostHog's retention where the contract is silent:
//! - cohorts: `FirstTime` puts a person in the cohort of the interval of their first-ever start
//!   event (a person whose first start event is before the cohort range is in no cohort, so the
//!   caller must include the person's earliest start event in the timeline); `Recurring` puts
//!   them in every cohort interval holding one of their start events;
//! - period 0 is the cohort interval itself and always 100 % of the cohort (return events in
//!   the cohort interval do not matter); period k ≥ 1 counts the persons with a return event
//!   in interval c + k (`On`) or in c + k or any later interval of the grid (`OnOrAfter`);
//! - the start and return events may be the same: an event can carry both flags;
//! - breakdown: each value is analysed on its own, as if the person's other events did not
//!   exist: the cohort comes from the start events carrying the value and only return events
//!   carrying the same value count (so a person may be in several tables). A missing value is
//!   whatever code the caller gives the empty string;
//! - cells exist from period 0 to the last period that has begun by `data_end_ms`; a cell whose
//!   interval has not ended is partial; averages are per period over the cohorts that have
//!   reached it, weighted by cohort size (Σ retained / Σ size); an empty cohort has rate 0,
//!   never NaN;
//! - tables are ordered by total cohort size, largest first, then by breakdown code.
//!
//! Events are bucketed by binary search over the grid of cohort intervals followed by the
//! `periods − 1` intervals after them; order within a timeline does not matter. Accumulators
//! of disjoint partitions of persons merge by addition.

mod accumulate;
mod table;

pub use accumulate::RetentionAccumulator;
pub use table::{RetentionCell, RetentionCohort, RetentionResult, RetentionTable};

use crate::calendar::{Calendar, CalendarError, IntervalGrid};

/// Flag bit: the event is a start (cohorting) event.
pub const START: u8 = 1;
/// Flag bit: the event is a return event.
pub const RETURN: u8 = 2;

/// Default periods per cohort, period 0 included.
pub const DEFAULT_PERIODS: usize = 11;
/// The most periods per cohort.
pub const MAX_PERIODS: usize = 100;
/// The most cohort intervals.
pub const MAX_COHORTS: usize = 400;

/// Why a retention could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
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

/// How persons are put into cohorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CohortType {
    /// The interval of the person's first-ever start event.
    #[default]
    FirstTime,
    /// Every interval with a start event.
    Recurring,
}

/// When a return counts for period k.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnMode {
    /// A return event in interval k itself.
    #[default]
    On,
    /// A return event in interval k or any later one.
    OnOrAfter,
}

/// One event of a person's timeline, as the retention needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionEvent {
    /// When it happened (UTC ms).
    pub time_ms: i64,
    /// [`START`] and/or [`RETURN`]; events with neither are ignored.
    pub flags: u8,
    /// The breakdown value's code (ignored without a breakdown).
    pub breakdown: u32,
}

/// Retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionOptions {
    /// First-time or recurring cohorts.
    pub cohort_type: CohortType,
    /// On or on-or-after.
    pub return_mode: ReturnMode,
    /// Periods per cohort, period 0 included (1 to [`MAX_PERIODS`]).
    pub periods: usize,
    /// Whether events' breakdown codes split the result into tables.
    pub breakdown: bool,
}

impl Default for RetentionOptions {
    fn default() -> Self {
        Self {
            cohort_type: CohortType::FirstTime,
            return_mode: ReturnMode::On,
            periods: DEFAULT_PERIODS,
            breakdown: false,
        }
    }
}

/// A retention over given cohort intervals.
#[derive(Debug, Clone)]
pub struct RetentionModel {
    /// The cohort intervals followed by `periods − 1` more.
    grid: IntervalGrid,
    cohorts: usize,
    options: RetentionOptions,
}

impl RetentionModel {
    /// A model whose cohorts are the intervals of `cohort_grid` (built with `calendar`).
    pub fn new(
        calendar: &Calendar,
        cohort_grid: &IntervalGrid,
        options: RetentionOptions,
    ) -> Result<Self, RetentionError> {
        if !(1..=MAX_PERIODS).contains(&options.periods) {
            return Err(RetentionError::InvalidInput {
                field: "periods",
                reason: format!("must be from 1 to {MAX_PERIODS}"),
            });
        }
        if cohort_grid.is_empty() || cohort_grid.len() > MAX_COHORTS {
            return Err(RetentionError::InvalidInput {
                field: "scope.time_range",
                reason: format!("must hold from 1 to {MAX_COHORTS} cohort intervals"),
            });
        }
        let grid = cohort_grid.extended(calendar, 0, options.periods - 1)?;
        Ok(Self {
            grid,
            cohorts: cohort_grid.len(),
            options,
        })
    }

    /// How many cohort intervals the model has.
    pub fn cohorts(&self) -> usize {
        self.cohorts
    }

    /// The settings.
    pub fn options(&self) -> &RetentionOptions {
        &self.options
    }

    /// An empty accumulator for one partition of persons.
    pub fn accumulator(&self) -> RetentionAccumulator<'_> {
        RetentionAccumulator::new(self)
    }

    /// Adds every person (one timeline each), folding `threads` partitions side by side.
    pub fn run(&self, persons: &[&[RetentionEvent]], threads: usize) -> RetentionAccumulator<'_> {
        crate::calendar::run_partitioned_infallible(
            persons,
            threads,
            || self.accumulator(),
            |accumulator, events| accumulator.add_person(events),
            |total, partial| total.merge(&partial),
        )
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_reference;
