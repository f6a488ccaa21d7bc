//! Funnels through the projection equal the funnel run on the naive reference's timelines,
//! where every event (matching or not) is passed and conditions are tested field by field.

use proptest::prelude::*;
use touchline_analytics::funnel::{
    Attribution, ExclusionRange, FunnelEvent, FunnelOrder, PersonBatch, PersonQuery,
    PersonSelection, run_partitions,
};
use touchline_projection::query::{
    Condition, Dimension, Filter, FunnelBreakdown, FunnelColumns, FunnelExclusion, FunnelSpec,
    Scope, TimeRange,
};
use touchline_projection::{CodeSet, Event, Projection};

use crate::support::{BASE_MS, EVENTS, HOUR_MS, Op, Reference, STEP_MS, apply, op, projection};

/// A dimension's code on an event, read field by field.
pub fn naive_code(projection: &Projection, dimension: Dimension, event: &Event) -> u32 {
    let touch = &event.touch;
    match dimension {
        Dimension::Event => event.event,
        Dimension::Channel => touch.channel,
        Dimension::Touchpoint => touch.touchpoint,
        Dimension::TouchpointType => u32::from(touch.touchpoint_type),
        Dimension::Department => u32::from(touch.department),
        Dimension::Source => touch.source,
        Dimension::Property(slot) => event.properties[slot],
        Dimension::ChannelTouchpoint => (0u32..)
            .find(|&code| {
                projection.channel_touchpoint(code) == Some((touch.channel, touch.touchpoint))
                    || projection.channel_touchpoint(code).is_none()
            })
            .unwrap_or(0),
    }
}

pub fn naive_matches(projection: &Projection, condition: &Condition, event: &Event) -> bool {
    condition.event.is_none_or(|code| code == event.event)
        && condition
            .filters
            .iter()
            .all(|f| f.codes.contains(naive_code(projection, f.dimension, event)))
}

/// Generated knobs of a funnel; turned into a valid spec by [`spec`].
type Knobs = (
    (usize, [u32; 4], [Option<(bool, u8)>; 4]),
    (usize, usize),
    Option<(u32, usize, usize)>,
    Option<(usize, usize, usize)>,
    (Option<(i64, i64)>, Option<u8>, bool),
);

fn knobs() -> impl Strategy<Value = Knobs> {
    let filter = proptest::option::weighted(0.25, (any::<bool>(), 1u8..16));
    (
        (
            2usize..=4,
            [1..=EVENTS, 1..=EVENTS, 1..=EVENTS, 1..=EVENTS],
            [filter.clone(), filter.clone(), filter.clone(), filter],
        ),
        (0usize..3, 0usize..4),
        proptest::option::weighted(0.3, (1..=EVENTS, 0usize..4, 0usize..4)),
        proptest::option::weighted(0.6, (0usize..5, 0usize..4, 0usize..4)),
        (
            proptest::option::weighted(0.3, (0i64..40, 1i64..60)),
            proptest::option::weighted(0.2, 1u8..16),
            proptest::bool::weighted(0.2),
        ),
    )
}

fn condition(event: u32, filter: Option<(bool, u8)>) -> Condition {
    let filters = filter
        .map(|(on_channel, mask)| Filter {
            dimension: if on_channel {
                Dimension::Channel
            } else {
                Dimension::Property(0)
            },
            codes: CodeSet::of((0..4).filter(|bit| mask & (1 << bit) != 0)),
        })
        .into_iter()
        .collect();
    Condition {
        event: Some(event),
        filters,
    }
}

/// The scope's knobs: a time range, channels allowed, whether persons are filtered.
pub struct ScopeKnobs {
    pub time_range: Option<TimeRange>,
    pub channels: Option<Condition>,
    pub some_persons: bool,
}

impl ScopeKnobs {
    pub fn new(knobs: &(Option<(i64, i64)>, Option<u8>, bool)) -> Self {
        let (range, channels, some_persons) = knobs;
        Self {
            time_range: range.map(|(from, length)| TimeRange {
                from_ms: BASE_MS + from * STEP_MS,
                to_ms: BASE_MS + (from + length) * STEP_MS,
            }),
            channels: channels.map(|mask| Condition {
                event: None,
                filters: vec![Filter {
                    dimension: Dimension::Channel,
                    codes: CodeSet::of((0..4).filter(|bit| mask & (1 << bit) != 0)),
                }],
            }),
            some_persons: *some_persons,
        }
    }

    pub fn scope(&self) -> Scope<'_> {
        Scope {
            time_range: self.time_range,
            events: self.channels.as_ref(),
            persons: if self.some_persons {
                Some(&in_segment as &(dyn Fn(u64) -> bool + Sync))
            } else {
                None
            },
        }
    }

    /// Whether the reference's event of `person` is in scope, tested field by field.
    pub fn admits(&self, projection: &Projection, person: u64, event: &Event) -> bool {
        (!self.some_persons || in_segment(person))
            && self
                .time_range
                .is_none_or(|r| r.from_ms <= event.time_ms && event.time_ms < r.to_ms)
            && self
                .channels
                .as_ref()
                .is_none_or(|c| naive_matches(projection, c, event))
    }
}

/// The persons of a pretend segment.
fn in_segment(person: u64) -> bool {
    person % 3 != 1
}

fn spec(knobs: &Knobs) -> FunnelSpec {
    let ((steps, events, filters), (order, window), exclusion, breakdown, _) = knobs;
    let order = [
        FunnelOrder::Ordered,
        FunnelOrder::Strict,
        FunnelOrder::Unordered,
    ][*order];
    let exclusions = exclusion
        .map(|(event, from, to)| {
            let (from_step, to_step) = if order == FunnelOrder::Unordered {
                (1, *steps)
            } else {
                let from_step = 1 + from % (steps - 1);
                (from_step, from_step + 1 + to % (steps - from_step))
            };
            FunnelExclusion {
                range: ExclusionRange { from_step, to_step },
                condition: Condition::event(event),
            }
        })
        .into_iter()
        .collect();
    let dimensions = [
        Dimension::Channel,
        Dimension::Property(0),
        Dimension::ChannelTouchpoint,
        Dimension::TouchpointType,
        // The event itself: the plain fill's other column.
        Dimension::Event,
    ];
    let breakdown = breakdown.map(|(dimension, attribution, step)| FunnelBreakdown {
        dimension: dimensions[dimension],
        attribution: [
            Attribution::FirstTouch,
            Attribution::LastTouch,
            Attribution::Step(1 + step % steps),
            Attribution::AllEvents,
        ][attribution],
    });
    FunnelSpec {
        steps: (0..*steps)
            .map(|k| condition(events[k], filters[k]))
            .collect(),
        window_ms: [2 * HOUR_MS, 8 * HOUR_MS, 24 * HOUR_MS, 72 * HOUR_MS][*window],
        order,
        exclusions,
        breakdown,
    }
}

/// Every event of the reference's timelines, masks computed field by field.
fn naive_batch(
    projection: &Projection,
    reference: &Reference,
    spec: &FunnelSpec,
    scope: &ScopeKnobs,
) -> (Vec<u64>, Vec<usize>, Vec<FunnelEvent>) {
    let (mut ids, mut offsets, mut events) = (Vec::new(), vec![0], Vec::new());
    for person in reference.persons() {
        let mut considered = false;
        for event in reference.timeline(person) {
            if !scope.admits(projection, person, &event) {
                continue;
            }
            considered = true;
            let bits = |conditions: &mut dyn Iterator<Item = &Condition>| {
                (0..).zip(conditions).fold(0u32, |mask, (k, c)| {
                    mask | (u32::from(naive_matches(projection, c, &event)) << k)
                })
            };
            events.push(FunnelEvent {
                time: event.time_ms,
                seq: event.seq,
                steps: bits(&mut spec.steps.iter()),
                exclusions: bits(&mut spec.exclusions.iter().map(|e| &e.condition)),
                breakdown: spec
                    .breakdown
                    .map_or(0, |b| naive_code(projection, b.dimension, &event)),
            });
        }
        if considered {
            ids.push(person);
            offsets.push(events.len());
        }
    }
    (ids, offsets, events)
}

fn check(ops: &[Op], knobs: &Knobs) -> Result<(), TestCaseError> {
    let mut projection = projection();
    let mut reference = Reference::default();
    apply(ops, &mut projection, &mut reference);
    let spec = spec(knobs);
    let scope_knobs = ScopeKnobs::new(&knobs.4);
    let scope = scope_knobs.scope();
    let funnel = projection
        .funnel_definition(&spec)
        .and_then(|definition| Ok(definition.validate()?));
    let funnel = funnel.map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let (ids, offsets, events) = naive_batch(&projection, &reference, &spec, &scope_knobs);
    let batch = PersonBatch {
        person_ids: &ids,
        offsets: &offsets,
        events: &events,
    };
    let expected =
        run_partitions(&funnel, &[batch], true).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let actual = projection
        .funnel(&spec, &scope, 2, true)
        .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let (expected, expected_persons) = expected.finish(3);
    let (actual, actual_persons) = actual.finish(3);
    prop_assert_eq!(&actual, &expected);
    let everyone = PersonQuery {
        selection: PersonSelection::Reached(1),
        value: None,
        after: None,
        limit: usize::MAX,
    };
    let list = |index: Option<touchline_analytics::funnel::PersonIndex>| {
        index.map(|index| index.list(&everyone).persons)
    };
    prop_assert_eq!(list(actual_persons), list(expected_persons));

    let mut columns = vec![FunnelColumns::default(); projection.config().partitions];
    for (partition, column) in columns.iter_mut().enumerate() {
        column
            .fill(&projection, &spec, &scope, partition)
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    }
    let batches: Vec<PersonBatch<'_>> = columns.iter().map(FunnelColumns::batch).collect();
    let through_batches = run_partitions(&funnel, &batches, false)
        .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(through_batches.finish(3).0, expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn funnels_equal_the_funnel_on_naive_timelines(
        ops in proptest::collection::vec(op(), 1..16),
        knobs in knobs(),
    ) {
        check(&ops, &knobs)?;
    }
}
