//! A small language for scenario tests: events as `(seconds, "name")`, steps as names.
//!
//! A step named `pageview:aloha` matches only events named exactly so; a step named `pageview`
//! matches `pageview` and every `pageview:…` (the part before `:` is the canonical event, the
//! rest stands for a property filter). `*` matches every event. A value after `@` is the
//! event's breakdown value.

use crate::funnel::{
    Attribution, BreakdownSpec, ExclusionRange, FunnelAccumulator, FunnelDefinition,
    FunnelEvaluator, FunnelEvent, FunnelOrder, FunnelReport, PersonIndex, PersonOutcome,
    ValidFunnel,
};

pub const HOUR: i64 = 3_600;
pub const DAY: i64 = 24 * HOUR;

/// Breakdown values used by the scenarios, code = index (0 is missing).
pub const VALUES: [&str; 8] = [
    "", "Chrome", "Safari", "Mac", "0", "alakazam", "Alakazam", "x",
];

pub struct Scenario {
    pub steps: Vec<&'static str>,
    pub order: FunnelOrder,
    pub window_s: i64,
    pub exclusions: Vec<(&'static str, usize, usize)>,
    pub attribution: Option<Attribution>,
}

impl Scenario {
    pub fn new(steps: &[&'static str]) -> Self {
        Self {
            steps: steps.to_vec(),
            order: FunnelOrder::Ordered,
            window_s: 14 * DAY,
            exclusions: Vec::new(),
            attribution: None,
        }
    }

    pub fn order(mut self, order: FunnelOrder) -> Self {
        self.order = order;
        self
    }

    pub fn window(mut self, seconds: i64) -> Self {
        self.window_s = seconds;
        self
    }

    pub fn exclude(mut self, name: &'static str, from: usize, to: usize) -> Self {
        self.exclusions.push((name, from, to));
        self
    }

    pub fn breakdown(mut self, attribution: Attribution) -> Self {
        self.attribution = Some(attribution);
        self
    }

    pub fn funnel(&self) -> ValidFunnel {
        let definition = FunnelDefinition {
            step_event_types: self.steps.iter().map(|s| canonical_code(s)).collect(),
            window_ms: self.window_s * 1_000,
            order: self.order,
            exclusions: self
                .exclusions
                .iter()
                .map(|&(_, from_step, to_step)| ExclusionRange { from_step, to_step })
                .collect(),
            breakdown: self.attribution.map(|attribution| BreakdownSpec {
                attribution,
                value_count: VALUES.len() as u32,
            }),
        };
        definition.validate().expect("scenario funnel is valid")
    }

    /// Turns one person's `(seconds, "name@value")` list into sorted funnel events.
    pub fn events(&self, person: &[(i64, &str)]) -> Vec<FunnelEvent> {
        let mut events: Vec<FunnelEvent> = person
            .iter()
            .enumerate()
            .map(|(seq, &(seconds, spec))| {
                let (name, value) = spec.split_once('@').unwrap_or((spec, ""));
                FunnelEvent {
                    time: seconds * 1_000,
                    seq: seq as u64,
                    steps: mask(self.steps.iter().copied(), name),
                    exclusions: mask(self.exclusions.iter().map(|e| e.0), name),
                    breakdown: VALUES
                        .iter()
                        .position(|v| *v == value)
                        .expect("known value") as u32,
                }
            })
            .collect();
        events.sort_by_key(|e| (e.time, e.seq));
        events
    }

    /// Evaluates every person (ids 1, 2, …) and returns the figures and the person index.
    pub fn run(&self, persons: &[Vec<(i64, &str)>]) -> (FunnelReport, PersonIndex) {
        let funnel = self.funnel();
        let mut evaluator = FunnelEvaluator::new(&funnel);
        let mut accumulator = FunnelAccumulator::new(funnel.step_count(), true);
        let mut outcome = PersonOutcome::default();
        for (id, person) in persons.iter().enumerate() {
            evaluator
                .evaluate(&self.events(person), &mut outcome)
                .expect("sorted events");
            accumulator.add(id as u64 + 1, &outcome);
        }
        let (report, index) = accumulator.finish(100);
        (report, index.expect("persons kept"))
    }

    pub fn counts(&self, persons: &[Vec<(i64, &str)>]) -> Vec<u64> {
        self.run(persons)
            .0
            .overall
            .iter()
            .map(|s| s.count)
            .collect()
    }
}

fn matches(step: &str, name: &str) -> bool {
    step == "*" || step == name || name.split(':').next() == Some(step)
}

fn mask<'a>(names: impl Iterator<Item = &'a str>, event: &str) -> u32 {
    names
        .enumerate()
        .filter(|(_, step)| matches(step, event))
        .fold(0, |m, (k, _)| m | (1 << k))
}

/// The canonical event of a step: the name before any `:` property refinement.
fn canonical_code(step: &str) -> u32 {
    let canonical = step.split(':').next().unwrap_or(step);
    canonical
        .bytes()
        .fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
}

/// Events at one-second spacing, for scenarios whose source creates them one after another.
pub fn seq(names: &[&'static str]) -> Vec<(i64, &'static str)> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (1_000 + i as i64, *n))
        .collect()
}

/// The ids of persons who reached a step.
pub fn reached(index: &PersonIndex, step: usize) -> Vec<u64> {
    list(index, crate::funnel::PersonSelection::Reached(step), None)
}

pub fn list(
    index: &PersonIndex,
    selection: crate::funnel::PersonSelection,
    value: Option<u32>,
) -> Vec<u64> {
    let page = index.list(&crate::funnel::PersonQuery {
        selection,
        value,
        after: None,
        limit: 10_000,
    });
    page.persons.iter().map(|p| p.person).collect()
}

pub fn code(value: &str) -> u32 {
    VALUES
        .iter()
        .position(|v| *v == value)
        .expect("known value") as u32
}
