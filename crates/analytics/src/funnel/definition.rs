//! The funnel's settings and its per-event input, validated once before any person is read.
//!
//! The caller resolves step filters, exclusion filters and breakdown values into small
//! integers (bit masks and dictionary codes); this module only checks that those settings
//! describe a funnel the evaluators can run.

use thiserror::Error;

/// Most steps a funnel may have (the contract's limit; masks are `u32`).
pub const MAX_STEPS: usize = 20;
/// Most exclusions a funnel may have (the contract's limit).
pub const MAX_EXCLUSIONS: usize = 10;
/// Shortest conversion window the contract accepts: one second.
pub const MIN_WINDOW_MS: i64 = 1_000;
/// Longest conversion window the contract accepts: 366 days.
pub const MAX_WINDOW_MS: i64 = 366 * 24 * 3_600 * 1_000;
/// The breakdown code meaning "missing or empty value".
pub const MISSING_VALUE: u32 = 0;

/// One event of a person, as the evaluators read it.
///
/// A person's events must be sorted by `(time, seq)`. Events matching no step are included
/// too: strict funnels are broken by them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FunnelEvent {
    /// Milliseconds since the Unix epoch.
    pub time: i64,
    /// The event's position in the tenant's clean log; breaks ties between equal times.
    pub seq: u64,
    /// Bit `k − 1` set when the event matches step `k`.
    pub steps: u32,
    /// Bit `j` set when the event matches exclusion `j` of [`FunnelDefinition::exclusions`].
    pub exclusions: u32,
    /// The breakdown value's dictionary code; [`MISSING_VALUE`] when missing or empty.
    pub breakdown: u32,
}

/// How the steps of a funnel must follow each other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FunnelOrder {
    /// Steps in order; other events may come between them.
    #[default]
    Ordered,
    /// Steps in order with no other event of the person between two steps.
    Strict,
    /// Any order: step k is reached with k distinct steps done within the window of the first.
    Unordered,
}

/// An exclusion: its events must not happen between two steps of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExclusionRange {
    /// 1-based step after whose event the exclusion applies.
    pub from_step: usize,
    /// 1-based step before whose event it applies; greater than `from_step`.
    pub to_step: usize,
}

/// Which event's breakdown value puts a person into a breakdown row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Attribution {
    /// The earliest non-missing value among the person's events that matched any step.
    #[default]
    FirstTouch,
    /// The latest non-missing value among those events.
    LastTouch,
    /// The value on the event that filled this 1-based step of the counted attempt.
    Step(usize),
    /// Every value on the events that filled the counted attempt's steps.
    AllEvents,
}

/// The breakdown settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakdownSpec {
    /// Which event's value counts.
    pub attribution: Attribution,
    /// Codes run from 0 ([`MISSING_VALUE`]) to `value_count − 1`.
    pub value_count: u32,
}

/// A funnel as the caller describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunnelDefinition {
    /// The canonical event code of each step, in order (2–20 steps). Two neighbouring steps
    /// with the same code may be filled by events of equal time, ordered by `seq`.
    pub step_event_types: Vec<u32>,
    /// Conversion window in milliseconds: the last step at most this long after step 1.
    pub window_ms: i64,
    /// Ordered, strict or unordered.
    pub order: FunnelOrder,
    /// Exclusions; bit `j` of [`FunnelEvent::exclusions`] refers to `exclusions[j]`.
    pub exclusions: Vec<ExclusionRange>,
    /// The breakdown, if any.
    pub breakdown: Option<BreakdownSpec>,
}

/// What is wrong with a funnel or its input, naming the field so the service can report it.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FunnelError {
    /// A setting of the funnel is out of its range.
    #[error("invalid funnel setting {field}: {reason}")]
    InvalidDefinition {
        /// The setting, in the contract's field names.
        field: &'static str,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A person's events are not sorted by `(time, seq)`.
    #[error("events of a person are not sorted by time and sequence at index {index}")]
    UnsortedEvents {
        /// Index of the first event that comes before its predecessor.
        index: usize,
    },
    /// An event carries a breakdown code outside `0..value_count`.
    #[error("breakdown code {code} is outside the declared value count")]
    BreakdownCodeOutOfRange {
        /// The offending code.
        code: u32,
    },
    /// A person has more events than the evaluators can index (`u32`).
    #[error("a person has {count} events, more than can be evaluated")]
    TooManyEvents {
        /// The person's number of events.
        count: usize,
    },
    /// A partition's person ids and offsets do not describe its events.
    #[error("partition {partition} is malformed: {reason}")]
    MalformedPartition {
        /// Index of the partition.
        partition: usize,
        /// What does not fit.
        reason: &'static str,
    },
}

fn invalid(field: &'static str, reason: &'static str) -> FunnelError {
    FunnelError::InvalidDefinition { field, reason }
}

/// A checked funnel, ready to evaluate persons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidFunnel {
    pub(crate) definition: FunnelDefinition,
    /// `same_type[k]` (0-based k ≥ 1): steps k and k+1 (1-based) share a canonical event.
    pub(crate) same_type: Vec<bool>,
    /// Per step index (0-based), the exclusions whose range covers it, as a bit mask.
    pub(crate) exclusions_at_step: Vec<u32>,
}

impl ValidFunnel {
    /// Number of steps.
    pub fn step_count(&self) -> usize {
        self.definition.step_event_types.len()
    }

    /// The definition it was built from.
    pub fn definition(&self) -> &FunnelDefinition {
        &self.definition
    }
}

impl FunnelDefinition {
    /// Checks every setting and precomputes what the evaluators need.
    pub fn validate(self) -> Result<ValidFunnel, FunnelError> {
        let steps = self.step_event_types.len();
        if !(2..=MAX_STEPS).contains(&steps) {
            return Err(invalid("steps", "a funnel has 2 to 20 steps"));
        }
        if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&self.window_ms) {
            return Err(invalid(
                "conversion_window",
                "the window is 1 second to 366 days",
            ));
        }
        if self.exclusions.len() > MAX_EXCLUSIONS {
            return Err(invalid("exclusions", "at most 10 exclusions"));
        }
        for range in &self.exclusions {
            check_exclusion(range, steps, self.order)?;
        }
        if let Some(spec) = self.breakdown {
            if spec.value_count == 0 {
                return Err(invalid(
                    "breakdown",
                    "value count includes the missing value",
                ));
            }
            if let Attribution::Step(step) = spec.attribution
                && !(1..=steps).contains(&step)
            {
                return Err(invalid(
                    "breakdown.step",
                    "the step is one of the funnel's steps",
                ));
            }
        }
        let same_type = (0..steps)
            .map(|k| k > 0 && self.step_event_types[k] == self.step_event_types[k - 1])
            .collect();
        let exclusions_at_step = (0..steps)
            .map(|k| {
                let step = k + 1;
                self.exclusions
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.from_step <= step && step < r.to_step)
                    .fold(0u32, |mask, (j, _)| mask | (1 << j))
            })
            .collect();
        Ok(ValidFunnel {
            definition: self,
            same_type,
            exclusions_at_step,
        })
    }
}

fn check_exclusion(
    range: &ExclusionRange,
    steps: usize,
    order: FunnelOrder,
) -> Result<(), FunnelError> {
    if range.from_step < 1 || range.from_step >= steps {
        return Err(invalid(
            "exclusions.from_step",
            "from_step is a step before the last",
        ));
    }
    if range.to_step <= range.from_step || range.to_step > steps {
        return Err(invalid(
            "exclusions.to_step",
            "to_step is after from_step and at most the last step",
        ));
    }
    // As in PostHog: an unordered funnel has no "between two steps", so only exclusions
    // over the whole funnel mean something there.
    if order == FunnelOrder::Unordered && (range.from_step != 1 || range.to_step != steps) {
        return Err(invalid(
            "exclusions.from_step",
            "unordered funnels take exclusions over the whole funnel only",
        ));
    }
    Ok(())
}
