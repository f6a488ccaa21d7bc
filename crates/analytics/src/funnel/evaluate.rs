//! One person through a funnel: which attempt counts, its step times, its breakdown values.
//!
//! The evaluator checks the person's input, hands it to the engine of the funnel's order type
//! and then attributes the breakdown. It owns every buffer it needs, so evaluating a million
//! persons allocates nothing once the first few are done.

use super::definition::{
    Attribution, FunnelError, FunnelEvent, FunnelOrder, MAX_STEPS, MISSING_VALUE, ValidFunnel,
};
use super::forward::{self, ForwardScratch};
use super::sequential::{AttemptPick, SequentialScratch};
use super::unordered::{UnorderedScratch, step_mask};

/// Where a person ended up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PersonStatus {
    /// No event matched step 1 (unordered: no event matched any step).
    #[default]
    NotEntered,
    /// Every attempt that reached the person's furthest step was invalidated by an exclusion:
    /// the person is left out of every step.
    Excluded,
    /// The person counts at every step up to `furthest_step`.
    Counted,
}

/// The result for one person; reused across persons by [`FunnelEvaluator::evaluate`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersonOutcome {
    /// Where the person ended up.
    pub status: PersonStatus,
    /// The furthest step any attempt reached (invalidated ones included); 0 if not entered.
    pub furthest_step: usize,
    /// Time of each step of the counted attempt; the first `furthest_step` are meaningful
    /// when counted.
    pub step_times: [i64; MAX_STEPS],
    /// Index (in the person's events) of the event that filled each step of the counted attempt.
    pub step_events: [u32; MAX_STEPS],
    /// Breakdown codes the person counts under, ascending and distinct; empty without a
    /// breakdown or when not counted.
    pub values: Vec<u32>,
}

impl PersonOutcome {
    /// Steps the person counts at: `furthest_step` when counted, else 0.
    pub fn counted_steps(&self) -> usize {
        match self.status {
            PersonStatus::Counted => self.furthest_step,
            PersonStatus::NotEntered | PersonStatus::Excluded => 0,
        }
    }

    /// Times of the counted attempt's steps (empty when not counted).
    pub fn counted_step_times(&self) -> &[i64] {
        &self.step_times[..self.counted_steps()]
    }
}

/// Evaluates persons one at a time with reusable buffers.
#[derive(Debug)]
pub struct FunnelEvaluator<'f> {
    funnel: &'f ValidFunnel,
    /// Ordered without exclusions: the forward pass, which gives the same pick for less.
    forward: Option<ForwardScratch>,
    /// Breakdown codes must be below this (`u32::MAX` without a breakdown).
    value_count: u32,
    sequential: SequentialScratch,
    unordered: UnorderedScratch,
    pick: AttemptPick,
}

impl<'f> FunnelEvaluator<'f> {
    /// An evaluator for one funnel.
    pub fn new(funnel: &'f ValidFunnel) -> Self {
        Self {
            funnel,
            forward: forward::applies(funnel).then(ForwardScratch::default),
            value_count: funnel
                .definition
                .breakdown
                .map_or(u32::MAX, |spec| spec.value_count),
            sequential: SequentialScratch::default(),
            unordered: UnorderedScratch::default(),
            pick: AttemptPick::default(),
        }
    }

    /// The funnel it evaluates.
    pub fn funnel(&self) -> &'f ValidFunnel {
        self.funnel
    }

    /// Runs the funnel over one person's events (sorted by `(time, seq)`) into `out`.
    pub fn evaluate(
        &mut self,
        events: &[FunnelEvent],
        out: &mut PersonOutcome,
    ) -> Result<(), FunnelError> {
        if let Some(forward) = &mut self.forward {
            check_length(events)?;
            // The pass checks the input as it goes; on a fault the full check names it.
            if !forward.evaluate(self.funnel, events, self.value_count, &mut self.pick) {
                self.check(events)?;
            }
        } else {
            self.check(events)?;
            match self.funnel.definition.order {
                FunnelOrder::Ordered | FunnelOrder::Strict => {
                    self.sequential
                        .evaluate(self.funnel, events, &mut self.pick);
                }
                FunnelOrder::Unordered => {
                    self.unordered.evaluate(self.funnel, events, &mut self.pick);
                }
            }
        }
        let pick = &self.pick;
        out.furthest_step = pick.furthest;
        out.values.clear();
        out.status = if pick.furthest == 0 {
            PersonStatus::NotEntered
        } else if pick.counted == pick.furthest {
            PersonStatus::Counted
        } else {
            PersonStatus::Excluded
        };
        if out.status != PersonStatus::Counted {
            return Ok(());
        }
        for step in 0..pick.counted {
            let index = pick.step_events[step];
            out.step_events[step] = index;
            out.step_times[step] = events.get(index as usize).map_or(0, |e| e.time);
        }
        if let Some(spec) = self.funnel.definition.breakdown {
            attribute(spec.attribution, self.funnel, events, out);
        }
        Ok(())
    }

    fn check(&self, events: &[FunnelEvent]) -> Result<(), FunnelError> {
        check_length(events)?;
        let value_count = self.value_count;
        let mut previous = (i64::MIN, 0u64);
        for (index, event) in events.iter().enumerate() {
            let key = (event.time, event.seq);
            if key < previous {
                return Err(FunnelError::UnsortedEvents { index });
            }
            previous = key;
            if event.breakdown >= value_count {
                return Err(FunnelError::BreakdownCodeOutOfRange {
                    code: event.breakdown,
                });
            }
        }
        Ok(())
    }
}

/// Event indices are `u32`.
fn check_length(events: &[FunnelEvent]) -> Result<(), FunnelError> {
    if events.len() >= u32::MAX as usize {
        return Err(FunnelError::TooManyEvents {
            count: events.len(),
        });
    }
    Ok(())
}

/// Fills `out.values` for a counted person.
fn attribute(
    attribution: Attribution,
    funnel: &ValidFunnel,
    events: &[FunnelEvent],
    out: &mut PersonOutcome,
) {
    let any_step = step_mask(funnel.step_count());
    let touched = |e: &&FunnelEvent| e.steps & any_step != 0 && e.breakdown != MISSING_VALUE;
    let value = match attribution {
        Attribution::FirstTouch => events.iter().find(touched).map(|e| e.breakdown),
        Attribution::LastTouch => events.iter().rev().find(touched).map(|e| e.breakdown),
        Attribution::Step(step) => {
            let reached = step <= out.counted_steps();
            reached
                .then(|| events.get(out.step_events[step - 1] as usize))
                .flatten()
                .map(|e| e.breakdown)
        }
        Attribution::AllEvents => {
            for index in &out.step_events[..out.counted_steps()] {
                if let Some(event) = events.get(*index as usize) {
                    out.values.push(event.breakdown);
                }
            }
            out.values.sort_unstable();
            out.values.dedup();
            return;
        }
    };
    out.values.push(value.unwrap_or(MISSING_VALUE));
}
