//! Ordered and strict funnels in one pass over a person's events, O(events × steps).
//!
//! Every step-1 event starts an attempt that fills each next step with the earliest eligible
//! event (ordered) or only with the very next event (strict). Rather than walking each attempt
//! separately, the live attempts are kept in one queue per step, sorted by start. Greedy
//! attempts never overtake each other: an attempt that started later has every step event at
//! or after the earlier one's. So an event that fills step k+1 takes a prefix of the step-k
//! queue (the suffix is only the attempts blocked by the equal-timestamp rule), and an attempt
//! whose window has passed is always at a queue's front.
//!
//! Attempts that an exclusion invalidated ("ghosts") still matter — the furthest step of any
//! attempt decides whether the person is removed — but a ghost followed in its queue by a later
//! attempt that can advance whenever the ghost can is dropped. That keeps at most a couple of
//! ghosts per queue, so exclusion sweeps stay amortised O(1) per attempt.

use std::collections::VecDeque;

use super::definition::{FunnelEvent, FunnelOrder, MAX_STEPS, ValidFunnel};

/// Parent of a step-1 trail node.
const NO_PARENT: u32 = u32::MAX;

/// One filled step of some attempt; attempts share nothing, the arena only saves allocations.
#[derive(Clone, Copy, Debug)]
struct TrailNode {
    event: u32,
    parent: u32,
}

#[derive(Clone, Copy, Debug)]
struct Attempt {
    /// Index of the step-1 event.
    start: u32,
    /// Trail node of the last filled step.
    node: u32,
    /// Time of the last filled step's event.
    last_time: i64,
    /// Latest time a step (or an invalidating exclusion) may happen: step-1 time + window.
    deadline: i64,
    /// No exclusion has invalidated it.
    clean: bool,
    /// Strict funnels: an event that did not advance it came, so it never advances again.
    frozen: bool,
}

/// Which attempt of a person counts, as the evaluators report it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AttemptPick {
    /// The furthest step any attempt reached, invalidated ones included; 0 if none started.
    pub furthest: usize,
    /// Steps reached by the counted attempt; 0 when no clean attempt reaches `furthest`.
    pub counted: usize,
    /// Index of the event that filled each step of the counted attempt.
    pub step_events: [u32; MAX_STEPS],
}

impl Default for AttemptPick {
    fn default() -> Self {
        Self {
            furthest: 0,
            counted: 0,
            step_events: [0; MAX_STEPS],
        }
    }
}

/// The best attempts seen so far among those that can no longer change.
#[derive(Clone, Copy, Debug, Default)]
struct Tracker {
    furthest: usize,
    best_reach: usize,
    best_start: u32,
    best_node: u32,
}

impl Tracker {
    fn retire(&mut self, attempt: &Attempt, reach: usize) {
        self.furthest = self.furthest.max(reach);
        let better = reach > self.best_reach
            || (reach == self.best_reach && attempt.start > self.best_start);
        if attempt.clean && better {
            self.best_reach = reach;
            self.best_start = attempt.start;
            self.best_node = attempt.node;
        }
    }
}

/// Reusable buffers for ordered and strict funnels; allocation-free once warmed up.
#[derive(Debug, Default)]
pub(crate) struct SequentialScratch {
    queues: Vec<VecDeque<Attempt>>,
    trail: Vec<TrailNode>,
    moved: Vec<Attempt>,
    tracker: Tracker,
}

/// The per-event view of the funnel settings the engine needs.
struct Rules<'a> {
    funnel: &'a ValidFunnel,
    steps: usize,
    strict: bool,
    no_exclusions: bool,
    /// Per step index, exclusions whose `from_step` is that step.
    starting_at: [u32; MAX_STEPS],
}

impl Rules<'_> {
    /// Whether `earlier` can be forgotten because `later`, behind it in the same queue,
    /// reaches at least as far whatever comes next (`now` is the current event's time).
    fn dominated(&self, earlier: &Attempt, later: &Attempt, now: i64) -> bool {
        if earlier.clean && !self.no_exclusions {
            return false;
        }
        self.strict || later.last_time < now || later.last_time == earlier.last_time
    }
}

impl SequentialScratch {
    /// Runs an ordered or strict funnel over one person's sorted events.
    pub(crate) fn evaluate(
        &mut self,
        funnel: &ValidFunnel,
        events: &[FunnelEvent],
        pick: &mut AttemptPick,
    ) {
        let steps = funnel.step_count();
        let mut starting_at = [0u32; MAX_STEPS];
        for (j, range) in funnel.definition.exclusions.iter().enumerate() {
            starting_at[range.from_step - 1] |= 1 << j;
        }
        let rules = Rules {
            funnel,
            steps,
            strict: funnel.definition.order == FunnelOrder::Strict,
            no_exclusions: funnel.definition.exclusions.is_empty(),
            starting_at,
        };
        self.reset(steps);
        let all_steps = super::unordered::step_mask(steps);
        for (index, event) in (0u32..).zip(events) {
            // Ordered funnels ignore events that match nothing; strict ones are broken by them.
            if event.steps & all_steps == 0 && event.exclusions == 0 && !rules.strict {
                continue;
            }
            self.advance(&rules, index, event);
            if event.steps & 1 != 0 {
                self.start(&rules, index, event);
            }
            if event.exclusions != 0 && !rules.no_exclusions {
                self.exclude(&rules, index, event);
            }
        }
        self.retire_all();
        self.fill_pick(pick);
    }

    fn reset(&mut self, steps: usize) {
        if self.queues.len() < steps {
            self.queues.resize_with(steps, VecDeque::new);
        }
        for queue in &mut self.queues {
            queue.clear();
        }
        self.trail.clear();
        self.tracker = Tracker::default();
    }

    /// Retires the attempts of step index `k` whose window ended before `now`; they can no
    /// longer change. Done lazily, only on the queue an event is about to read.
    fn expire(&mut self, k: usize, now: i64) {
        let queue = &mut self.queues[k];
        while let Some(front) = queue.front() {
            if front.deadline >= now {
                break;
            }
            self.tracker.retire(front, k + 1);
            queue.pop_front();
        }
    }

    /// Moves attempts from step k to k+1, highest step first so one event fills one step.
    fn advance(&mut self, rules: &Rules<'_>, index: u32, event: &FunnelEvent) {
        for k in (0..rules.steps - 1).rev() {
            let matches = event.steps & (1 << (k + 1)) != 0;
            if !matches && !rules.strict {
                continue;
            }
            let same_type = rules.funnel.same_type[k + 1];
            let split = if rules.strict {
                let Some(active) = self.queues[k].back_mut().filter(|a| !a.frozen) else {
                    continue;
                };
                let eligible = active.last_time < event.time || same_type;
                if matches && eligible && active.deadline >= event.time {
                    self.queues[k].len() - 1..self.queues[k].len()
                } else {
                    active.frozen = true;
                    continue;
                }
            } else {
                self.expire(k, event.time);
                let queue = &self.queues[k];
                // Equal-timestamp rule: blocked attempts form the queue's (short) suffix.
                let mut end = queue.len();
                while !same_type && end > 0 && queue[end - 1].last_time == event.time {
                    end -= 1;
                }
                0..end
            };
            if split.is_empty() {
                continue;
            }
            self.moved.clear();
            let queue = &mut self.queues[k];
            for _ in split {
                // Strict takes the active attempt at the back; ordered takes a prefix.
                let attempt = if rules.strict {
                    queue.pop_back()
                } else {
                    queue.pop_front()
                };
                self.moved.extend(attempt);
            }
            self.place_moved(rules, k + 1, index, event.time);
        }
    }

    /// Appends the attempts in `moved` to the queue of step index `target`.
    fn place_moved(&mut self, rules: &Rules<'_>, target: usize, index: u32, now: i64) {
        for attempt in &mut self.moved {
            let node = push_node(&mut self.trail, index, attempt.node);
            attempt.node = node;
            attempt.last_time = now;
            attempt.frozen = false;
        }
        if target + 1 == rules.steps {
            for attempt in &self.moved {
                self.tracker.retire(attempt, rules.steps);
            }
            return;
        }
        let queue = &mut self.queues[target];
        for (i, attempt) in self.moved.iter().enumerate() {
            if let Some(next) = self.moved.get(i + 1)
                && rules.dominated(attempt, next, now)
            {
                continue;
            }
            push_compacted(queue, *attempt, rules, now);
        }
    }

    fn start(&mut self, rules: &Rules<'_>, index: u32, event: &FunnelEvent) {
        let node = push_node(&mut self.trail, index, NO_PARENT);
        let attempt = Attempt {
            start: index,
            node,
            last_time: event.time,
            deadline: event.time.saturating_add(rules.funnel.definition.window_ms),
            clean: true,
            frozen: false,
        };
        push_compacted(&mut self.queues[0], attempt, rules, event.time);
    }

    /// Invalidates the live attempts that this exclusion event falls inside of.
    fn exclude(&mut self, rules: &Rules<'_>, index: u32, event: &FunnelEvent) {
        for k in 0..rules.steps - 1 {
            let covering = rules.funnel.exclusions_at_step[k] & event.exclusions;
            if covering == 0 {
                continue;
            }
            self.expire(k, event.time);
            let queue = &mut self.queues[k];
            for attempt in queue.iter_mut() {
                // The event that filled the exclusion's from-step is not "after" it.
                let fresh = self
                    .trail
                    .get(attempt.node as usize)
                    .is_some_and(|node| node.event == index);
                let applying = if fresh {
                    covering & !rules.starting_at[k]
                } else {
                    covering
                };
                if applying != 0 {
                    attempt.clean = false;
                }
            }
            compact(queue, rules, event.time);
        }
    }

    fn retire_all(&mut self) {
        for (k, queue) in self.queues.iter().enumerate() {
            for attempt in queue {
                self.tracker.retire(attempt, k + 1);
            }
        }
    }

    fn fill_pick(&self, pick: &mut AttemptPick) {
        let tracker = self.tracker;
        pick.furthest = tracker.furthest;
        pick.counted = 0;
        if tracker.furthest == 0 || tracker.best_reach != tracker.furthest {
            return;
        }
        pick.counted = tracker.best_reach;
        let mut node = tracker.best_node;
        for step in (0..tracker.best_reach).rev() {
            let Some(trail) = self.trail.get(node as usize) else {
                break;
            };
            pick.step_events[step] = trail.event;
            node = trail.parent;
        }
    }
}

fn push_node(trail: &mut Vec<TrailNode>, event: u32, parent: u32) -> u32 {
    let node = u32::try_from(trail.len()).unwrap_or(u32::MAX);
    trail.push(TrailNode { event, parent });
    node
}

/// Appends an attempt, first dropping the queue's trailing attempts that a later one
/// dominates, so queues stay short (amortised O(1): each attempt is dropped once).
fn push_compacted(queue: &mut VecDeque<Attempt>, attempt: Attempt, rules: &Rules<'_>, now: i64) {
    loop {
        let len = queue.len();
        if len >= 1 && rules.dominated(&queue[len - 1], &attempt, now) {
            queue.pop_back();
        } else if len >= 2 && rules.dominated(&queue[len - 2], &queue[len - 1], now) {
            queue.remove(len - 2);
        } else {
            break;
        }
    }
    queue.push_back(attempt);
}

/// Drops the attempts of a queue that a later attempt in it dominates.
fn compact(queue: &mut VecDeque<Attempt>, rules: &Rules<'_>, now: i64) {
    let len = queue.len();
    let mut write = 0;
    for read in 0..len {
        let attempt = queue[read];
        let keep = read + 1 == len || !rules.dominated(&attempt, &queue[read + 1], now);
        if keep {
            queue[write] = attempt;
            write += 1;
        }
    }
    queue.truncate(write);
}
