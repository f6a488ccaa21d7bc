//! Ordered funnels without exclusions in one forward pass that keeps at most two attempts
//! per step, O(events + matched steps), then one walk to recover the counted attempt's events.
//!
//! Without exclusions every attempt is clean, so only two things matter: the furthest step
//! any attempt reaches, and the latest-started attempt that reaches it. Greedy attempts never
//! overtake each other (see [`super::sequential`]), so among the attempts waiting at a step
//! the latest-started one has the latest deadline and reaches at least as far as any other —
//! except while it is blocked by the equal-timestamp rule: its last event is at the current
//! instant, and an earlier attempt whose last event is older may still advance now. Events
//! come in time order, so that only ever concerns the current instant, and the latest-started
//! of those older attempts ("fallback") dominates the rest of them. Per step that is two
//! attempts, whatever the person's number of events.
//!
//! Attempts reach a step in the order they started, so the newest arrival at a step always
//! replaces the latest-started one there, and the furthest step's latest arrival is the
//! counted attempt. Its step events are not tracked during the pass (copying trails on every
//! move costs more than the pass itself): the attempt is walked again from its step-1 event,
//! filling each step with the earliest eligible event, which is the definition of its trail.

use super::definition::{FunnelEvent, MAX_STEPS, ValidFunnel};
use super::sequential::AttemptPick;

/// The `start` of an empty slot.
const EMPTY: u32 = u32::MAX;

/// An attempt waiting at a step: where it started, its window's end, its last step's time.
#[derive(Clone, Copy, Debug)]
struct Slot {
    start: u32,
    deadline: i64,
    last_time: i64,
}

const VACANT: Slot = Slot {
    start: EMPTY,
    deadline: i64::MIN,
    last_time: i64::MIN,
};

/// Per step index, the latest-started attempt whose furthest filled step it is, and the
/// fallback (the latest-started one there whose last step is strictly older).
#[derive(Debug)]
pub(crate) struct ForwardScratch {
    latest: [Slot; MAX_STEPS],
    fallback: [Slot; MAX_STEPS],
}

impl Default for ForwardScratch {
    fn default() -> Self {
        Self {
            latest: [VACANT; MAX_STEPS],
            fallback: [VACANT; MAX_STEPS],
        }
    }
}

/// Whether the forward pass computes this funnel exactly.
pub(crate) fn applies(funnel: &ValidFunnel) -> bool {
    funnel.definition.order == super::definition::FunnelOrder::Ordered
        && funnel.definition.exclusions.is_empty()
}

impl ForwardScratch {
    /// Runs an ordered funnel without exclusions over one person's events, checking on the
    /// way that they are sorted by `(time, seq)` and their breakdown codes are below
    /// `value_count`; false (and `pick` meaningless) when they are not, so the caller's
    /// full check names the fault. One pass instead of two.
    pub(crate) fn evaluate(
        &mut self,
        funnel: &ValidFunnel,
        events: &[FunnelEvent],
        value_count: u32,
        pick: &mut AttemptPick,
    ) -> bool {
        let steps = funnel.step_count();
        let all_steps = super::unordered::step_mask(steps);
        let window = funnel.definition.window_ms;
        // Slots at or above `reached` have never been used this person: they are set up
        // when first reached instead of being cleared for every person.
        let mut reached = 0usize;
        let (mut previous_time, mut previous_seq, mut faulty) = (i64::MIN, 0u64, false);
        for (index, event) in (0u32..).zip(events) {
            // Without branches: faults are rare, and the flag is read once at the end.
            let unsorted = (event.time < previous_time)
                | ((event.time == previous_time) & (event.seq < previous_seq));
            faulty |= unsorted | (event.breakdown >= value_count);
            (previous_time, previous_seq) = (event.time, event.seq);
            let matched = event.steps & all_steps;
            if matched == 0 {
                continue;
            }
            // Step k + 1 (bit k) can only be filled from a slot below `reached`; highest
            // first so that one event fills one step of an attempt.
            let mut advancing = matched & (((2u32 << reached) - 1) & !1);
            while advancing != 0 {
                let bit = 31 - advancing.leading_zeros() as usize;
                advancing &= !(1 << bit);
                self.advance(funnel, bit - 1, event.time, &mut reached);
            }
            if matched & 1 != 0 {
                let attempt = Slot {
                    start: index,
                    deadline: event.time.saturating_add(window),
                    last_time: event.time,
                };
                self.arrive(0, attempt, &mut reached);
            }
        }
        if faulty {
            return false;
        }
        pick.furthest = reached;
        pick.counted = reached;
        if let Some(counted) = reached.checked_sub(1).map(|k| self.latest[k]) {
            trail(funnel, events, counted, reached, pick);
        }
        true
    }

    /// Moves the attempt of step index `k` that may advance on an event at `now` to `k + 1`.
    #[inline(always)]
    fn advance(&mut self, funnel: &ValidFunnel, k: usize, now: i64, reached: &mut usize) {
        let latest = self.latest[k];
        // An expired latest means every attempt of the step has expired (the others
        // started earlier).
        if latest.start == EMPTY || latest.deadline < now {
            return;
        }
        let blocked = latest.last_time == now && !funnel.same_type[k + 1];
        let mut mover = if blocked {
            let fallback = self.fallback[k];
            if fallback.start == EMPTY || fallback.deadline < now {
                return;
            }
            self.fallback[k] = VACANT;
            fallback
        } else {
            // Every attempt of the step advances; the latest-started one dominates.
            self.latest[k] = VACANT;
            self.fallback[k] = VACANT;
            latest
        };
        mover.last_time = now;
        self.arrive(k + 1, mover, reached);
    }

    /// Puts an attempt that just filled step index `k` at the current event into its slot.
    #[inline(always)]
    fn arrive(&mut self, k: usize, attempt: Slot, reached: &mut usize) {
        if k == *reached {
            *reached = k + 1;
            self.fallback[k] = VACANT;
        } else {
            let previous = self.latest[k];
            // The previous latest still matters at this instant only if its last step is
            // older than the arrival's; an equal one is dominated by the arrival.
            if previous.start != EMPTY && previous.last_time < attempt.last_time {
                self.fallback[k] = previous;
            }
        }
        self.latest[k] = attempt;
    }
}

/// Fills `pick.step_events` with the attempt's greedy trail: each step with the earliest
/// later event matching it within the window, at a later time unless both steps share an
/// event type.
fn trail(
    funnel: &ValidFunnel,
    events: &[FunnelEvent],
    attempt: Slot,
    reach: usize,
    pick: &mut AttemptPick,
) {
    let start = attempt.start as usize;
    let Some(first) = events.get(start) else {
        pick.furthest = 0;
        pick.counted = 0;
        return;
    };
    pick.step_events[0] = attempt.start;
    let mut step = 1;
    let mut last_time = first.time;
    let later = events.get(start + 1..).unwrap_or_default();
    for (index, event) in (attempt.start + 1..).zip(later) {
        if step >= reach || event.time > attempt.deadline {
            break;
        }
        let eligible = event.time > last_time || funnel.same_type[step];
        if event.steps & (1 << step) != 0 && eligible {
            pick.step_events[step] = index;
            last_time = event.time;
            step += 1;
        }
    }
    // The pass and the walk follow the same rules, so the walk reaches `reach` (the
    // property tests hold them to it); were they ever to disagree, reporting what the walk
    // found keeps the outcome consistent rather than pointing at steps never filled.
    debug_assert_eq!(step, reach, "the walk reaches what the pass reached");
    pick.furthest = step;
    pick.counted = step;
}
