//! Retention, lifecycle and paths through the projection equal the models' own `run` over
//! the naive reference's timelines.

use chrono::Weekday;
use proptest::prelude::*;
use touchline_analytics::calendar::{Calendar, Interval, IntervalGrid};
use touchline_analytics::lifecycle::{LifecycleModel, LifecyclePerson};
use touchline_analytics::paths::{self, PathEvent, PathOptions};
use touchline_analytics::retention::{
    CohortType, RETURN, RetentionEvent, RetentionModel, RetentionOptions, START,
};
use touchline_projection::Projection;
use touchline_projection::query::{
    Condition, Dimension, FirstSeen, LifecycleSpec, PathSpec, RetentionSpec,
};

use crate::funnels::{ScopeKnobs, naive_code, naive_matches};
use crate::support::{BASE_MS, EVENTS, Reference, apply, op, projection};

fn day() -> Calendar {
    Calendar::from_zone_name(Interval::Day, "Asia/Shanghai", Weekday::Mon).expect("zone")
}

/// The reference's in-scope events of every considered person.
fn scoped(
    projection: &Projection,
    reference: &Reference,
    scope: &ScopeKnobs,
) -> Vec<(u64, Vec<touchline_projection::Event>)> {
    reference
        .persons()
        .into_iter()
        .filter_map(|person| {
            let events: Vec<_> = reference
                .timeline(person)
                .into_iter()
                .filter(|e| scope.admits(projection, person, e))
                .collect();
            (!events.is_empty()).then_some((person, events))
        })
        .collect()
}

fn check_retention(
    projection: &Projection,
    reference: &Reference,
    scope: &ScopeKnobs,
    knobs: (u32, u32, bool, bool),
) -> Result<(), TestCaseError> {
    let (start, returning, recurring, breakdown) = knobs;
    let calendar = day();
    let cohorts = IntervalGrid::from_instant(&calendar, BASE_MS, 4).expect("grid");
    let options = RetentionOptions {
        cohort_type: if recurring {
            CohortType::Recurring
        } else {
            CohortType::FirstTime
        },
        periods: 4,
        breakdown,
        ..RetentionOptions::default()
    };
    let model = RetentionModel::new(&calendar, &cohorts, options).expect("model");
    let spec = RetentionSpec {
        start: Condition::event(start),
        returning: Condition::event(returning),
        breakdown: breakdown.then_some(Dimension::Channel),
    };
    let timelines: Vec<Vec<RetentionEvent>> = scoped(projection, reference, scope)
        .into_iter()
        .map(|(_, events)| {
            events
                .iter()
                .map(|e| RetentionEvent {
                    time_ms: e.time_ms,
                    flags: if e.event == start { START } else { 0 }
                        | if e.event == returning { RETURN } else { 0 },
                    breakdown: if breakdown { e.touch.channel } else { 0 },
                })
                .collect()
        })
        .collect();
    let slices: Vec<&[RetentionEvent]> = timelines.iter().map(Vec::as_slice).collect();
    let end = BASE_MS + 7 * 86_400_000;
    let expected = model.run(&slices, 1).result(end, 100);
    let actual = projection
        .retention(&model, &spec, &scope.scope(), 2)
        .map_err(|e| TestCaseError::fail(format!("{e}")))?
        .result(end, 100);
    prop_assert_eq!(actual, expected);
    Ok(())
}

fn check_lifecycle(
    projection: &Projection,
    reference: &Reference,
    scope: &ScopeKnobs,
    activity: Option<u32>,
) -> Result<(), TestCaseError> {
    let calendar = day();
    let reported = IntervalGrid::from_instant(&calendar, BASE_MS, 7).expect("grid");
    let model = LifecycleModel::new(&calendar, &reported, 2).expect("model");
    let condition = activity.map_or_else(Condition::any, Condition::event);
    let considered = scoped(projection, reference, scope);
    let activity_times: Vec<Vec<i64>> = considered
        .iter()
        .map(|(_, events)| {
            events
                .iter()
                .filter(|e| naive_matches(projection, &condition, e))
                .map(|e| e.time_ms)
                .collect()
        })
        .collect();
    let persons: Vec<LifecyclePerson<'_>> = considered
        .iter()
        .zip(&activity_times)
        .map(|((person, _), times)| LifecyclePerson {
            first_seen_ms: reference.timeline(*person).first().map(|e| e.time_ms),
            activity_ms: times,
        })
        .collect();
    let expected = model.run(&persons, 1).intervals();
    let spec = LifecycleSpec {
        activity: condition,
        first_seen: FirstSeen::EarliestEvent,
    };
    let actual = projection
        .lifecycle(&model, &spec, &scope.scope(), 2)
        .map_err(|e| TestCaseError::fail(format!("{e}")))?
        .intervals();
    prop_assert_eq!(actual, expected);
    Ok(())
}

fn check_paths(
    projection: &Projection,
    reference: &Reference,
    scope: &ScopeKnobs,
    touchpoints: bool,
) -> Result<(), TestCaseError> {
    let item = if touchpoints {
        Dimension::ChannelTouchpoint
    } else {
        Dimension::Event
    };
    let options = PathOptions {
        session_gap_ms: 5 * 3_600_000,
        max_steps: 4,
        ..PathOptions::default()
    };
    let timelines: Vec<Vec<PathEvent>> = scoped(projection, reference, scope)
        .into_iter()
        .map(|(_, events)| {
            events
                .iter()
                .map(|e| PathEvent {
                    time_ms: e.time_ms,
                    seq: e.seq,
                    item: naive_code(projection, item, e),
                })
                .filter(|e| e.item != 0)
                .collect()
        })
        .collect();
    let slices: Vec<&[PathEvent]> = timelines.iter().map(Vec::as_slice).collect();
    let expected = paths::run(&slices, &options, 1).expect("valid").graph();
    let spec = PathSpec { item, events: None };
    let actual = projection
        .paths(&options, &spec, &scope.scope(), 2)
        .map_err(|e| TestCaseError::fail(format!("{e}")))?
        .graph();
    prop_assert_eq!(actual, expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn journey_models_equal_their_run_on_naive_timelines(
        ops in proptest::collection::vec(op(), 1..16),
        scope in (
            proptest::option::weighted(0.3, (0i64..40, 1i64..60)),
            proptest::option::weighted(0.2, 1u8..16),
            proptest::bool::weighted(0.2),
        ),
        retention in (1..=EVENTS, 1..=EVENTS, any::<bool>(), any::<bool>()),
        activity in proptest::option::of(1..=EVENTS),
        touchpoints in any::<bool>(),
    ) {
        let mut projection = projection();
        let mut reference = Reference::default();
        apply(&ops, &mut projection, &mut reference);
        let scope = ScopeKnobs::new(&scope);
        check_retention(&projection, &reference, &scope, retention)?;
        check_lifecycle(&projection, &reference, &scope, activity)?;
        check_paths(&projection, &reference, &scope, touchpoints)?;
    }
}
