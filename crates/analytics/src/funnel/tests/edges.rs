//! Edge cases: empty input, validation, huge values, unsorted input, paging.

use super::support::Scenario;
use crate::funnel::{
    Attribution, BreakdownSpec, ExclusionRange, FunnelAccumulator, FunnelDefinition, FunnelError,
    FunnelEvaluator, FunnelEvent, FunnelOrder, PersonBatch, PersonOutcome, PersonQuery,
    PersonSelection, PersonStatus, run_partitions,
};

fn definition(steps: usize) -> FunnelDefinition {
    FunnelDefinition {
        step_event_types: (0..steps as u32).collect(),
        window_ms: 14 * 24 * 3_600 * 1_000,
        order: FunnelOrder::Ordered,
        exclusions: Vec::new(),
        breakdown: None,
    }
}

#[test]
fn invalid_definitions_name_their_field() {
    let field = |d: FunnelDefinition| match d.validate() {
        Err(FunnelError::InvalidDefinition { field, .. }) => field,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(field(definition(1)), "steps");
    assert_eq!(field(definition(21)), "steps");
    assert_eq!(
        field(FunnelDefinition {
            window_ms: 999,
            ..definition(2)
        }),
        "conversion_window"
    );
    let range = |from_step, to_step| FunnelDefinition {
        exclusions: vec![ExclusionRange { from_step, to_step }],
        ..definition(3)
    };
    assert_eq!(field(range(0, 2)), "exclusions.from_step");
    assert_eq!(field(range(2, 2)), "exclusions.to_step");
    assert_eq!(field(range(1, 4)), "exclusions.to_step");
    let unordered_partial = FunnelDefinition {
        order: FunnelOrder::Unordered,
        ..range(1, 2)
    };
    assert_eq!(field(unordered_partial), "exclusions.from_step");
    let step_out = FunnelDefinition {
        breakdown: Some(BreakdownSpec {
            attribution: Attribution::Step(4),
            value_count: 3,
        }),
        ..definition(3)
    };
    assert_eq!(field(step_out), "breakdown.step");
    assert!(definition(20).validate().is_ok());
}

#[test]
fn empty_person_and_empty_partitions() {
    let funnel = definition(3).validate().unwrap();
    let mut evaluator = FunnelEvaluator::new(&funnel);
    let mut outcome = PersonOutcome::default();
    evaluator.evaluate(&[], &mut outcome).unwrap();
    assert_eq!(outcome.status, PersonStatus::NotEntered);
    assert_eq!(outcome.counted_steps(), 0);
    let merged = run_partitions(&funnel, &[], true).unwrap();
    let (report, index) = merged.finish(10);
    assert!(
        report
            .overall
            .iter()
            .all(|s| s.count == 0 && s.overall_conversion_rate == 0.0)
    );
    assert!(
        report
            .overall
            .iter()
            .all(|s| s.mean_conversion_ms.is_none())
    );
    assert!(index.unwrap().is_empty());
}

#[test]
fn unsorted_events_and_out_of_range_codes_are_refused() {
    let mut with_breakdown = definition(2);
    with_breakdown.breakdown = Some(BreakdownSpec {
        attribution: Attribution::FirstTouch,
        value_count: 2,
    });
    let funnel = with_breakdown.validate().unwrap();
    let mut evaluator = FunnelEvaluator::new(&funnel);
    let mut outcome = PersonOutcome::default();
    let event = |time, seq, breakdown| FunnelEvent {
        time,
        seq,
        steps: 1,
        exclusions: 0,
        breakdown,
    };
    let unsorted = [event(5, 0, 0), event(4, 1, 0)];
    assert_eq!(
        evaluator.evaluate(&unsorted, &mut outcome),
        Err(FunnelError::UnsortedEvents { index: 1 })
    );
    assert_eq!(
        evaluator.evaluate(&[event(1, 0, 2)], &mut outcome),
        Err(FunnelError::BreakdownCodeOutOfRange { code: 2 })
    );
    let ids = [1u64];
    let bad = PersonBatch {
        person_ids: &ids,
        offsets: &[0],
        events: &[],
    };
    assert!(matches!(
        run_partitions(&funnel, &[bad], false),
        Err(FunnelError::MalformedPartition { partition: 0, .. })
    ));
}

#[test]
fn huge_times_do_not_overflow() {
    let funnel = definition(2).validate().unwrap();
    let mut evaluator = FunnelEvaluator::new(&funnel);
    let mut outcome = PersonOutcome::default();
    let events = [
        FunnelEvent {
            time: i64::MAX - 10,
            seq: u64::MAX - 1,
            steps: 1,
            exclusions: 0,
            breakdown: 0,
        },
        FunnelEvent {
            time: i64::MAX,
            seq: u64::MAX,
            steps: 2,
            exclusions: 0,
            breakdown: 0,
        },
    ];
    evaluator.evaluate(&events, &mut outcome).unwrap();
    assert_eq!(outcome.status, PersonStatus::Counted);
    assert_eq!(outcome.counted_step_times(), &[i64::MAX - 10, i64::MAX]);
    let mut accumulator = FunnelAccumulator::new(2, false);
    accumulator.add(1, &outcome);
    let (report, _) = accumulator.finish(1);
    assert_eq!(report.overall[1].median_conversion_ms, Some(10));
}

#[test]
fn drop_off_pages_are_stable_and_complete() {
    let scenario = Scenario::new(&["a", "b"]);
    let persons: Vec<Vec<(i64, &str)>> = (0..7)
        .map(|i| {
            if i % 2 == 0 {
                vec![(0, "a")]
            } else {
                vec![(0, "a"), (1, "b")]
            }
        })
        .collect();
    let (report, index) = scenario.run(&persons);
    assert_eq!(report.overall[1].drop_off, 4);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = index.list(&PersonQuery {
            selection: PersonSelection::DroppedAt(2),
            value: None,
            after,
            limit: 3,
        });
        assert_eq!(page.total, 4);
        seen.extend(page.persons.iter().map(|p| p.person));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, vec![1, 3, 5, 7]);
}

#[test]
fn median_is_the_lower_middle() {
    let scenario = Scenario::new(&["a", "b"]);
    let persons: Vec<Vec<(i64, &str)>> = [10, 40, 20, 30]
        .iter()
        .map(|&gap| vec![(0, "a"), (gap, "b")])
        .collect();
    let (report, _) = scenario.run(&persons);
    assert_eq!(report.overall[1].median_conversion_ms, Some(20_000));
    assert_eq!(report.overall[1].mean_conversion_ms, Some(25_000.0));
}
