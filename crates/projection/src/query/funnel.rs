//! Funnels over the projection.
//!
//! Every worker owns a [`FunnelEvaluator`], a [`FunnelAccumulator`] and one `FunnelEvent`
//! buffer; per person it fills the buffer (steps and exclusions as bit masks, the breakdown
//! code) and evaluates — what `run_partition` does over a `PersonBatch`, without first
//! writing every event of the tenant into one. For callers that want the batch itself (to
//! run `run_partitions` over a subset, or to compare), [`FunnelColumns`] fills one
//! partition's `PersonBatch` columns into reused vectors.
//!
//! Ordered and unordered funnels only see the events that match a step or an exclusion:
//! neither the attempts nor the breakdown attribution read other events, and skipping them
//! is what keeps a query near the cost of the matching events. Strict funnels see every
//! event, since any event breaks a strict attempt. A person with no event that can start an
//! attempt (step 1; any step when unordered) is counted as considered without evaluation.
//! The property tests check all of it against the funnel run on every event of naive
//! timelines.

use touchline_analytics::funnel::{
    Attribution, BreakdownSpec, ExclusionRange, FunnelAccumulator, FunnelDefinition,
    FunnelEvaluator, FunnelEvent, FunnelOrder, PersonBatch, PersonOutcome, ValidFunnel,
};

use super::{
    CompiledScope, Condition, Dimension, Matcher, Plain, PlainRow, Reader, Scope, fill_person,
};
use crate::error::ProjectionError;
use crate::fields::{EventFields, EventVisitor};
use crate::projection::Projection;
use crate::timeline::PersonEvents;

/// An exclusion step: events matching `condition` between two steps invalidate an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunnelExclusion {
    /// Between which steps it applies.
    pub range: ExclusionRange,
    /// Which events it excludes.
    pub condition: Condition,
}

/// The breakdown: which column, and which event's value counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunnelBreakdown {
    /// The column.
    pub dimension: Dimension,
    /// First touch, last touch, a step, or all events.
    pub attribution: Attribution,
}

/// A funnel over the projection's codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunnelSpec {
    /// Each step's condition (2 to 20). A step's canonical event (`None` for any event) is
    /// what the equal-timestamp rule compares between neighbouring steps.
    pub steps: Vec<Condition>,
    /// Conversion window in ms.
    pub window_ms: i64,
    /// Ordered, strict or unordered.
    pub order: FunnelOrder,
    /// Exclusions (at most 10).
    pub exclusions: Vec<FunnelExclusion>,
    /// The breakdown, if any.
    pub breakdown: Option<FunnelBreakdown>,
}

/// The compiled per-event mapping of a funnel.
struct Compiled<'a> {
    funnel: ValidFunnel,
    scope: CompiledScope<'a>,
    matcher: Matcher,
    steps: usize,
    breakdown: Option<Reader>,
    every_event: bool,
    /// The common case as lookup tables, when it applies.
    plain: Option<Plain>,
}

impl Compiled<'_> {
    /// Writes `person`'s events as the funnel reads them to the front of `out` and returns
    /// how many; `None` when the person is not considered (see [`fill_person`]).
    #[inline]
    fn fill(&self, person: &PersonEvents<'_>, out: &mut Vec<FunnelEvent>) -> Option<usize> {
        if !self.scope.admits_person(person.person()) {
            return None;
        }
        let (every_event, steps) = (self.every_event, self.steps);
        let step_bits = (1u32 << steps) - 1;
        let row = |row: &PlainRow| {
            let event = FunnelEvent {
                time: row.time_ms,
                seq: row.seq,
                steps: row.mask & step_bits,
                exclusions: row.mask >> steps,
                breakdown: row.column,
            };
            (event, row.mask != 0 || every_event)
        };
        let general = |out: &mut Vec<FunnelEvent>| {
            let bound = person.upper_bound();
            if out.len() < bound {
                out.resize(bound, FunnelEvent::default());
            }
            let mut fill = Fill {
                compiled: self,
                step_bits,
                out,
                len: 0,
                considered: false,
            };
            person.visit(&mut fill);
            fill.considered.then_some(fill.len)
        };
        let blank = FunnelEvent::default();
        fill_person(person, self.plain.as_ref(), out, blank, row, general)
    }
}

/// Turns one person's events into funnel events.
struct Fill<'c, 'a, 'o> {
    compiled: &'c Compiled<'a>,
    step_bits: u32,
    out: &'o mut [FunnelEvent],
    len: usize,
    considered: bool,
}

impl EventVisitor for Fill<'_, '_, '_> {
    /// Every in-scope event is written and the length only advances past those the funnel
    /// sees: whether an event matches a step is data, and a branch on it mispredicts often
    /// enough to cost as much as the rest of the scan.
    #[inline(always)]
    fn visit<E: EventFields>(&mut self, event: &E) {
        let compiled = self.compiled;
        if !compiled.scope.admits(event) {
            return;
        }
        self.considered = true;
        let mask = compiled.matcher.mask(event);
        let Some(slot) = self.out.get_mut(self.len) else {
            return;
        };
        *slot = FunnelEvent {
            time: event.time_ms(),
            seq: event.seq(),
            steps: mask & self.step_bits,
            exclusions: mask >> compiled.steps,
            breakdown: compiled.breakdown.as_ref().map_or(0, |r| r.read(event)),
        };
        self.len += usize::from(mask != 0 || compiled.every_event);
    }
}

/// A worker's reusable state.
struct Worker<'f> {
    evaluator: FunnelEvaluator<'f>,
    accumulator: FunnelAccumulator,
    outcome: PersonOutcome,
    events: Vec<FunnelEvent>,
}

impl Projection {
    /// The analytics crate's definition of `spec`: step event codes, and the breakdown's
    /// value count taken from the dimension's dictionary.
    pub fn funnel_definition(
        &self,
        spec: &FunnelSpec,
    ) -> Result<FunnelDefinition, ProjectionError> {
        let breakdown = match spec.breakdown {
            Some(breakdown) => Some(BreakdownSpec {
                attribution: breakdown.attribution,
                value_count: u32::try_from(self.dimension_size(breakdown.dimension)?)
                    .unwrap_or(u32::MAX),
            }),
            None => None,
        };
        Ok(FunnelDefinition {
            step_event_types: spec
                .steps
                .iter()
                .map(|step| step.event.unwrap_or(u32::MAX))
                .collect(),
            window_ms: spec.window_ms,
            order: spec.order,
            exclusions: spec.exclusions.iter().map(|e| e.range).collect(),
            breakdown,
        })
    }

    fn compile_funnel<'a>(
        &self,
        spec: &FunnelSpec,
        scope: &Scope<'a>,
    ) -> Result<Compiled<'a>, ProjectionError> {
        let funnel = self.funnel_definition(spec)?.validate()?;
        let conditions: Vec<&Condition> = spec
            .steps
            .iter()
            .chain(spec.exclusions.iter().map(|e| &e.condition))
            .collect();
        let matcher = Matcher::new(self, &conditions)?;
        let scope = CompiledScope::new(self, scope)?;
        let breakdown = match spec.breakdown {
            Some(breakdown) => Some(self.reader(breakdown.dimension)?),
            None => None,
        };
        Ok(Compiled {
            plain: Plain::new(self, &matcher, &scope, breakdown.as_ref()),
            matcher,
            steps: spec.steps.len(),
            breakdown,
            every_event: spec.order == FunnelOrder::Strict,
            scope,
            funnel,
        })
    }

    /// Runs the funnel over every person in `scope` on up to `threads` threads;
    /// `keep_persons` keeps the person index (person keys as ids) for listings. Finish with
    /// [`FunnelAccumulator::finish`].
    pub fn funnel(
        &self,
        spec: &FunnelSpec,
        scope: &Scope<'_>,
        threads: usize,
        keep_persons: bool,
    ) -> Result<FunnelAccumulator, ProjectionError> {
        let compiled = self.compile_funnel(spec, scope)?;
        let steps = compiled.funnel.step_count();
        // Without an event that can start an attempt the person cannot enter: counted as
        // considered without running the evaluator.
        let entry_bits = match spec.order {
            FunnelOrder::Ordered | FunnelOrder::Strict => 1,
            FunnelOrder::Unordered => (1u32 << steps) - 1,
        };
        let not_entered = PersonOutcome::default();
        let workers = self.scan(
            threads,
            || Worker {
                evaluator: FunnelEvaluator::new(&compiled.funnel),
                accumulator: FunnelAccumulator::new(steps, keep_persons),
                outcome: PersonOutcome::default(),
                events: Vec::new(),
            },
            |worker, person| {
                let Some(len) = compiled.fill(&person, &mut worker.events) else {
                    return Ok(());
                };
                let events = worker.events.get(..len).unwrap_or_default();
                if !events.iter().any(|event| event.steps & entry_bits != 0) {
                    worker.accumulator.add(person.person(), &not_entered);
                    return Ok(());
                }
                worker.evaluator.evaluate(events, &mut worker.outcome)?;
                worker.accumulator.add(person.person(), &worker.outcome);
                Ok::<(), ProjectionError>(())
            },
        )?;
        let mut merged = FunnelAccumulator::new(steps, keep_persons);
        for worker in workers {
            merged.merge(worker.accumulator);
        }
        Ok(merged)
    }
}

/// One partition's persons in the columnar shape of a funnel `PersonBatch`, in vectors
/// reused from fill to fill.
#[derive(Clone, Debug, Default)]
pub struct FunnelColumns {
    person_ids: Vec<u64>,
    offsets: Vec<usize>,
    events: Vec<FunnelEvent>,
}

impl FunnelColumns {
    /// Fills the columns with partition `partition`'s persons in `scope` as `spec` reads
    /// them (a considered person without a matching event has an empty range).
    pub fn fill(
        &mut self,
        projection: &Projection,
        spec: &FunnelSpec,
        scope: &Scope<'_>,
        partition: usize,
    ) -> Result<(), ProjectionError> {
        let compiled = projection.compile_funnel(spec, scope)?;
        let partition = projection
            .partitions
            .get(partition)
            .ok_or_else(|| crate::error::invalid("partition", "below the partition count"))?;
        self.person_ids.clear();
        self.offsets.clear();
        self.events.clear();
        self.offsets.push(0);
        let mut person_events = Vec::new();
        partition.for_each_person(&projection.touches, |person| {
            if let Some(len) = compiled.fill(&person, &mut person_events) {
                self.events.extend_from_slice(&person_events[..len]);
                self.person_ids.push(person.person());
                self.offsets.push(self.events.len());
            }
        });
        Ok(())
    }

    /// The columns as the funnel's batch.
    pub fn batch(&self) -> PersonBatch<'_> {
        PersonBatch {
            person_ids: &self.person_ids,
            offsets: &self.offsets,
            events: &self.events,
        }
    }
}
