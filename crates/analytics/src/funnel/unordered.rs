//! Unordered funnels: step k is reached with k distinct steps done within the window of the
//! attempt's first event, in any order.
//!
//! Every event matching any step starts an attempt. The attempt reads the following events
//! while they are within the window and until the next exclusion event (an exclusion only
//! resets progress: later events start new attempts). Since one event fills at most one step
//! and an event may match several steps, "distinct steps done" is a maximum matching between
//! events and steps, grown one event at a time with an augmenting path over at most 20 steps.
//! The step-k event is the event with which the matching first reached k steps, so step times
//! never decrease and conversion times are the gaps between them.
//!
//! Cost: O(events × steps) when no event matches two steps (then the matching is just the set
//! of distinct steps); otherwise O(attempts × events in the window × steps²) at worst. The
//! buffers are reused, so nothing is allocated per event.

use super::definition::{FunnelEvent, MAX_STEPS, ValidFunnel};
use super::sequential::AttemptPick;

const NO_EVENT: u32 = u32::MAX;

/// Reusable state of the matching between steps and events.
#[derive(Debug)]
pub(crate) struct UnorderedScratch {
    owner: [u32; MAX_STEPS],
    filled: u32,
    reached_at: [u32; MAX_STEPS],
}

impl Default for UnorderedScratch {
    fn default() -> Self {
        Self {
            owner: [NO_EVENT; MAX_STEPS],
            filled: 0,
            reached_at: [0; MAX_STEPS],
        }
    }
}

impl UnorderedScratch {
    /// Runs an unordered funnel over one person's sorted events.
    pub(crate) fn evaluate(
        &mut self,
        funnel: &ValidFunnel,
        events: &[FunnelEvent],
        pick: &mut AttemptPick,
    ) {
        let steps = funnel.step_count();
        let all_steps = step_mask(steps);
        pick.furthest = 0;
        pick.counted = 0;
        if events
            .iter()
            .all(|e| (e.steps & all_steps).count_ones() <= 1)
        {
            self.evaluate_single_matches(funnel, events, pick);
            return;
        }
        for (start, first) in events.iter().enumerate() {
            if first.steps & all_steps == 0 {
                continue;
            }
            let deadline = first.time.saturating_add(funnel.definition.window_ms);
            let reach = self.run_attempt(events, start, deadline, all_steps, steps);
            // Later starts come later in this loop, so `>=` keeps the latest-started attempt.
            if reach >= pick.furthest {
                pick.furthest = reach;
                pick.counted = reach;
                pick.step_events[..reach].copy_from_slice(&self.reached_at[..reach]);
            }
        }
    }

    /// The common case where no event matches two steps: the matching is then just the set
    /// of distinct steps seen, and step k's event is the k-th first occurrence after the
    /// start. Walking the starts backwards keeps each step's next occurrence, so this is
    /// O(events × steps).
    fn evaluate_single_matches(
        &mut self,
        funnel: &ValidFunnel,
        events: &[FunnelEvent],
        pick: &mut AttemptPick,
    ) {
        let steps = funnel.step_count();
        let all_steps = step_mask(steps);
        let mut next_at = [NO_EVENT; MAX_STEPS];
        let mut next_exclusion = NO_EVENT;
        for (start, first) in events.iter().enumerate().rev() {
            let start = u32::try_from(start).unwrap_or(NO_EVENT);
            if let Some(after) = events.get(start as usize + 1)
                && after.exclusions != 0
            {
                next_exclusion = start + 1;
            }
            let mask = first.steps & all_steps;
            if mask == 0 {
                continue;
            }
            next_at[mask.trailing_zeros() as usize] = start;
            let deadline = first.time.saturating_add(funnel.definition.window_ms);
            let mut reach = 0;
            for &at in &next_at[..steps] {
                let inside = at < next_exclusion
                    && events.get(at as usize).is_some_and(|e| e.time <= deadline);
                if inside {
                    self.reached_at[reach] = at;
                    reach += 1;
                }
            }
            // Walking backwards, a tie keeps the later start already recorded.
            if reach > pick.furthest {
                let reached = &mut self.reached_at[..reach];
                reached.sort_unstable();
                pick.furthest = reach;
                pick.counted = reach;
                pick.step_events[..reach].copy_from_slice(reached);
            }
        }
    }

    fn run_attempt(
        &mut self,
        events: &[FunnelEvent],
        start: usize,
        deadline: i64,
        all_steps: u32,
        steps: usize,
    ) -> usize {
        self.owner = [NO_EVENT; MAX_STEPS];
        self.filled = 0;
        let mut reach = 0;
        for (index, event) in events.iter().enumerate().skip(start) {
            if event.time > deadline || (index > start && event.exclusions != 0) {
                break;
            }
            let mask = event.steps & all_steps;
            if mask == 0 {
                continue;
            }
            let mut visited = 0u32;
            let index = u32::try_from(index).unwrap_or(NO_EVENT);
            if self.augment(index, mask, &mut visited, events, all_steps) {
                self.reached_at[reach] = index;
                reach += 1;
                if reach == steps {
                    break;
                }
            }
        }
        reach
    }

    /// Gives `event` a step, moving other events to other steps if needed (Kuhn's algorithm).
    fn augment(
        &mut self,
        event: u32,
        mask: u32,
        visited: &mut u32,
        events: &[FunnelEvent],
        all_steps: u32,
    ) -> bool {
        let free = mask & !self.filled;
        if free != 0 {
            let step = free.trailing_zeros() as usize;
            self.owner[step] = event;
            self.filled |= 1 << step;
            return true;
        }
        let mut candidates = mask & !*visited;
        while candidates != 0 {
            let step = candidates.trailing_zeros() as usize;
            *visited |= 1 << step;
            let holder = self.owner[step];
            let holder_mask = events
                .get(holder as usize)
                .map_or(0, |e| e.steps & all_steps);
            if self.augment(holder, holder_mask, visited, events, all_steps) {
                self.owner[step] = event;
                return true;
            }
            candidates = mask & !*visited;
        }
        false
    }
}

/// The mask with one bit per step of a funnel of `steps` steps.
pub(crate) fn step_mask(steps: usize) -> u32 {
    if steps >= 32 {
        u32::MAX
    } else {
        (1u32 << steps) - 1
    }
}
