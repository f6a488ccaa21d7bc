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

use super::{CompiledScope, Condition, Dimension, Matcher, Plain, Reader, Scope};
use crate::error::ProjectionError;
use crate::event::{unpack_seq, unpack_time};
use crate::fields::{EventFields, EventVisitor, Slices};
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
    /// Per event code of a plain query, its steps (low half) and exclusions (high half): one
    /// load for both, where splitting the condition mask took a shift by a variable.
    plain_codes: Vec<u64>,
}

/// A person's events as the funnel reads them, at the front of the worker's buffer.
#[derive(Clone, Copy, Debug)]
struct Filled {
    /// How many events.
    len: usize,
    /// The steps any of them matches: a person matching no step that can start an attempt
    /// is known not to enter without a second look at the events.
    steps: u32,
}

impl Compiled<'_> {
    /// Writes `person`'s events as the funnel reads them to the front of `out`; `None` when
    /// the person is not considered (no event in scope).
    #[inline]
    fn fill(&self, person: &PersonEvents<'_>, out: &mut Vec<FunnelEvent>) -> Option<Filled> {
        if !self.scope.admits_person(person.person()) {
            return None;
        }
        if let (Some(plain), Some((segment, start, end))) = (&self.plain, person.plain_range()) {
            if out.len() < end - start {
                out.resize(end - start, FunnelEvent::default());
            }
            return self.fill_plain(plain, &segment.slices(start, end), out);
        }
        let bound = person.upper_bound();
        if out.len() < bound {
            out.resize(bound, FunnelEvent::default());
        }
        let mut fill = Fill {
            compiled: self,
            step_bits: (1u32 << self.steps) - 1,
            out,
            len: 0,
            seen: 0,
            considered: false,
        };
        person.visit(&mut fill);
        let filled = Filled {
            len: fill.len,
            steps: fill.seen,
        };
        fill.considered.then_some(filled)
    }

    /// The fill of a plain timeline (one untouched segment range) of a [`Plain`] query:
    /// table lookups and one store per event, without a branch on the data. Every event is
    /// written and the length only advances past those the funnel sees: whether an event
    /// matches a step is data, and a branch on it mispredicts often enough to cost as much
    /// as the rest of the loop.
    #[inline]
    fn fill_plain(
        &self,
        plain: &Plain,
        slices: &Slices<'_>,
        out: &mut [FunnelEvent],
    ) -> Option<Filled> {
        // One loop per shape, so that each keeps only what it needs in registers.
        let (len, seen, considered) = match (plain.range, plain.by_event) {
            (None, false) => self.fill_rows::<false, false>(plain, slices, out),
            (None, true) => self.fill_rows::<false, true>(plain, slices, out),
            (Some(_), false) => self.fill_rows::<true, false>(plain, slices, out),
            (Some(_), true) => self.fill_rows::<true, true>(plain, slices, out),
        };
        let filled = Filled {
            len,
            steps: seen & ((1u32 << self.steps) - 1),
        };
        considered.then_some(filled)
    }

    /// The loop of [`Compiled::fill_plain`]: `RANGED` when the scope has a time range,
    /// `BY_EVENT` when the breakdown is the event itself. Returns the length, the OR of the
    /// kept events' masks, and whether any event was in scope.
    #[inline(always)]
    fn fill_rows<const RANGED: bool, const BY_EVENT: bool>(
        &self,
        plain: &Plain,
        slices: &Slices<'_>,
        out: &mut [FunnelEvent],
    ) -> (usize, u32, bool) {
        // Strict funnels keep every event; the others only those matching something.
        let keep_all = usize::from(self.every_event);
        let (from_ms, to_ms) = plain.range.map_or((0, 0), |r| (r.from_ms, r.to_ms));
        let columns = slices
            .time_low
            .iter()
            .zip(slices.time_high)
            .zip(slices.seq_low.iter().zip(slices.seq_high))
            .zip(slices.event.iter().zip(slices.touch));
        let (mut len, mut in_scope_any, mut seen) = (0usize, 0usize, 0u32);
        for (((&time_low, &time_high), (&seq_low, &seq_high)), (&code, &touch)) in columns {
            let time = unpack_time(time_low, time_high);
            let codes = self
                .plain_codes
                .get(usize::from(code))
                .copied()
                .unwrap_or(0);
            let column = if BY_EVENT {
                u32::from(code)
            } else {
                plain.by_touch.get(usize::from(touch)).copied().unwrap_or(0)
            };
            let in_scope = if RANGED {
                usize::from(from_ms <= time) & usize::from(time < to_ms)
            } else {
                1
            };
            let keep = in_scope & (usize::from(codes != 0) | keep_all);
            let Some(slot) = out.get_mut(len) else {
                break;
            };
            *slot = FunnelEvent {
                time,
                seq: unpack_seq(seq_low, seq_high),
                steps: codes as u32,
                exclusions: (codes >> 32) as u32,
                breakdown: column,
            };
            len += keep;
            in_scope_any |= in_scope;
            // All ones when kept, zero otherwise.
            seen |= (codes as u32) & (keep as u32).wrapping_neg();
        }
        (len, seen, in_scope_any != 0)
    }
}

/// Turns one person's events into funnel events.
struct Fill<'c, 'a, 'o> {
    compiled: &'c Compiled<'a>,
    step_bits: u32,
    out: &'o mut [FunnelEvent],
    len: usize,
    /// The steps the kept events match.
    seen: u32,
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
        let keep = mask != 0 || compiled.every_event;
        self.len += usize::from(keep);
        // All ones when kept, zero otherwise.
        self.seen |= mask & self.step_bits & u32::from(keep).wrapping_neg();
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
        let plain = Plain::new(self, &matcher, &scope, breakdown.as_ref());
        Ok(Compiled {
            plain_codes: plain.as_ref().map_or_else(Vec::new, |plain| {
                split_masks(&plain.masks, spec.steps.len())
            }),
            plain,
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
                let Some(filled) = compiled.fill(&person, &mut worker.events) else {
                    return Ok(());
                };
                if filled.steps & entry_bits == 0 {
                    worker.accumulator.add(person.person(), &not_entered);
                    return Ok(());
                }
                let events = worker.events.get(..filled.len).unwrap_or_default();
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
            if let Some(filled) = compiled.fill(&person, &mut person_events) {
                self.events.extend_from_slice(&person_events[..filled.len]);
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

/// Splits each event code's condition mask into its steps (low half) and exclusions (high
/// half), for [`Compiled::fill_rows`].
fn split_masks(masks: &[u32], steps: usize) -> Vec<u64> {
    let step_bits = (1u32 << steps) - 1;
    masks
        .iter()
        .map(|&mask| u64::from(mask & step_bits) | (u64::from(mask >> steps) << 32))
        .collect()
}
