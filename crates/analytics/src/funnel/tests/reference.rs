//! A deliberately naive funnel: every attempt walked on its own, every exclusion checked
//! against every attempt, matchings found by trying every set of steps. Slow and obvious.

use crate::funnel::{Attribution, FunnelDefinition, FunnelEvent, FunnelOrder};

/// What the reference decides for one person.
#[derive(Debug, PartialEq, Eq)]
pub struct NaiveOutcome {
    /// 0 = not entered.
    pub furthest: usize,
    /// Whether a clean attempt reaches `furthest`.
    pub counted: bool,
    /// Event indices of the counted attempt's steps.
    pub step_events: Vec<usize>,
    /// Breakdown codes, ascending and distinct (empty when not counted or no breakdown).
    pub values: Vec<u32>,
}

struct NaiveAttempt {
    start: usize,
    steps: Vec<usize>,
    clean: bool,
}

pub fn evaluate(definition: &FunnelDefinition, events: &[FunnelEvent]) -> NaiveOutcome {
    let attempts = match definition.order {
        FunnelOrder::Ordered | FunnelOrder::Strict => sequential_attempts(definition, events),
        FunnelOrder::Unordered => unordered_attempts(definition, events),
    };
    let furthest = attempts.iter().map(|a| a.steps.len()).max().unwrap_or(0);
    let counted = attempts
        .iter()
        .filter(|a| a.clean && a.steps.len() == furthest && furthest > 0)
        .max_by_key(|a| a.start);
    let Some(counted) = counted else {
        return NaiveOutcome {
            furthest,
            counted: false,
            step_events: Vec::new(),
            values: Vec::new(),
        };
    };
    let values = match definition.breakdown {
        None => Vec::new(),
        Some(spec) => values(spec.attribution, definition, events, &counted.steps),
    };
    NaiveOutcome {
        furthest,
        counted: true,
        step_events: counted.steps.clone(),
        values,
    }
}

fn has_step(event: &FunnelEvent, step: usize) -> bool {
    event.steps & (1 << step) != 0
}

fn sequential_attempts(definition: &FunnelDefinition, events: &[FunnelEvent]) -> Vec<NaiveAttempt> {
    let n = definition.step_event_types.len();
    let strict = definition.order == FunnelOrder::Strict;
    let mut attempts = Vec::new();
    for start in 0..events.len() {
        if !has_step(&events[start], 0) {
            continue;
        }
        let deadline = events[start].time + definition.window_ms;
        let mut steps = vec![start];
        for p in start + 1..events.len() {
            if steps.len() == n || events[p].time > deadline {
                break;
            }
            let k = steps.len();
            let previous = &events[steps[k - 1]];
            let same_event = definition.step_event_types[k] == definition.step_event_types[k - 1];
            let later =
                events[p].time > previous.time || (events[p].time == previous.time && same_event);
            if has_step(&events[p], k) && later {
                steps.push(p);
            } else if strict {
                break;
            }
        }
        let clean = (0..definition.exclusions.len())
            .all(|j| !invalidates(definition, events, j, &steps, deadline));
        attempts.push(NaiveAttempt {
            start,
            steps,
            clean,
        });
    }
    attempts
}

fn invalidates(
    definition: &FunnelDefinition,
    events: &[FunnelEvent],
    exclusion: usize,
    steps: &[usize],
    deadline: i64,
) -> bool {
    let range = definition.exclusions[exclusion];
    if steps.len() < range.from_step {
        return false;
    }
    let after = steps[range.from_step - 1];
    (after + 1..events.len()).any(|p| {
        let excluded = events[p].exclusions & (1 << exclusion) != 0;
        let before_to = match steps.get(range.to_step - 1) {
            Some(&to) => p < to,
            None => events[p].time <= deadline,
        };
        excluded && before_to
    })
}

fn unordered_attempts(definition: &FunnelDefinition, events: &[FunnelEvent]) -> Vec<NaiveAttempt> {
    let n = definition.step_event_types.len();
    let all = (1u32 << n) - 1;
    let mut attempts = Vec::new();
    for start in 0..events.len() {
        if events[start].steps & all == 0 {
            continue;
        }
        let deadline = events[start].time + definition.window_ms;
        let mut window = Vec::new();
        let mut steps = Vec::new();
        for (p, event) in events.iter().enumerate().skip(start) {
            if event.time > deadline || (p > start && event.exclusions != 0) {
                break;
            }
            window.push(event.steps & all);
            if max_matching(&window) > steps.len() {
                steps.push(p);
            }
        }
        attempts.push(NaiveAttempt {
            start,
            steps,
            clean: true,
        });
    }
    attempts
}

/// Largest number of distinct steps the events can fill, one step per event, by trying
/// every set of used steps.
fn max_matching(masks: &[u32]) -> usize {
    let mut reachable = vec![0u32];
    for &mask in masks {
        let mut next = reachable.clone();
        for &used in &reachable {
            for bit in 0..32 {
                if mask & (1 << bit) != 0 && used & (1 << bit) == 0 {
                    next.push(used | (1 << bit));
                }
            }
        }
        next.sort_unstable();
        next.dedup();
        reachable = next;
    }
    reachable
        .iter()
        .map(|m| m.count_ones() as usize)
        .max()
        .unwrap_or(0)
}

fn values(
    attribution: Attribution,
    definition: &FunnelDefinition,
    events: &[FunnelEvent],
    steps: &[usize],
) -> Vec<u32> {
    let n = definition.step_event_types.len();
    let touching: Vec<u32> = events
        .iter()
        .filter(|e| (0..n).any(|k| has_step(e, k)) && e.breakdown != 0)
        .map(|e| e.breakdown)
        .collect();
    match attribution {
        Attribution::FirstTouch => vec![touching.first().copied().unwrap_or(0)],
        Attribution::LastTouch => vec![touching.last().copied().unwrap_or(0)],
        Attribution::Step(step) => {
            vec![steps.get(step - 1).map_or(0, |&i| events[i].breakdown)]
        }
        Attribution::AllEvents => {
            let mut all: Vec<u32> = steps.iter().map(|&i| events[i].breakdown).collect();
            all.sort_unstable();
            all.dedup();
            all
        }
    }
}
