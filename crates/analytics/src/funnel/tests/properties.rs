//! The fast evaluator against the naive reference on thousands of random timelines, and
//! the aggregation's merge against a single pass.

use proptest::prelude::*;

use super::reference;
use crate::funnel::{
    Attribution, BreakdownSpec, ExclusionRange, FunnelAccumulator, FunnelDefinition,
    FunnelEvaluator, FunnelEvent, FunnelOrder, PersonBatch, PersonOutcome, PersonStatus,
    run_partitions,
};

/// Event types 0..5 may fill steps or exclusions; 5 and 6 are "anything else".
const TYPES: u32 = 7;

#[derive(Clone, Debug)]
struct RandomFunnel {
    definition: FunnelDefinition,
    exclusion_types: Vec<u32>,
}

fn order() -> impl Strategy<Value = FunnelOrder> {
    prop_oneof![
        Just(FunnelOrder::Ordered),
        Just(FunnelOrder::Strict),
        Just(FunnelOrder::Unordered)
    ]
}

fn attribution(steps: usize) -> impl Strategy<Value = Option<Attribution>> {
    prop_oneof![
        Just(None),
        Just(Some(Attribution::FirstTouch)),
        Just(Some(Attribution::LastTouch)),
        (1..=steps).prop_map(|s| Some(Attribution::Step(s))),
        Just(Some(Attribution::AllEvents)),
    ]
}

fn funnel() -> impl Strategy<Value = RandomFunnel> {
    (2usize..=4, order(), 1i64..=12)
        .prop_flat_map(|(steps, order, window)| {
            let exclusion = (0u32..TYPES, 1..steps, 1..=steps);
            (
                prop::collection::vec(0u32..4, steps),
                Just(order),
                Just(window),
                prop::collection::vec(exclusion, 0..=2),
                attribution(steps),
            )
        })
        .prop_map(|(types, order, window, exclusions, attribution)| {
            let steps = types.len();
            let ranges = exclusions
                .iter()
                .map(|&(_, from, to)| match order {
                    FunnelOrder::Unordered => ExclusionRange {
                        from_step: 1,
                        to_step: steps,
                    },
                    _ => ExclusionRange {
                        from_step: from,
                        to_step: to.max(from + 1),
                    },
                })
                .collect();
            RandomFunnel {
                definition: FunnelDefinition {
                    step_event_types: types,
                    window_ms: window * 1_000,
                    order,
                    exclusions: ranges,
                    breakdown: attribution.map(|attribution| BreakdownSpec {
                        attribution,
                        value_count: 4,
                    }),
                },
                exclusion_types: exclusions.iter().map(|e| e.0).collect(),
            }
        })
}

/// `(seconds, event type, filter bits, breakdown)`; times often equal on purpose.
fn raw_events() -> impl Strategy<Value = Vec<(i64, u32, u32, u32)>> {
    prop::collection::vec((0i64..30, 0..TYPES, any::<u32>(), 0u32..4), 0..24)
}

fn build(funnel: &RandomFunnel, raw: &[(i64, u32, u32, u32)]) -> Vec<FunnelEvent> {
    let types = &funnel.definition.step_event_types;
    let mut events: Vec<FunnelEvent> = raw
        .iter()
        .enumerate()
        .map(|(seq, &(seconds, kind, filters, breakdown))| {
            // A step matches its event type unless its "property filter" bit says no
            // (about one time in four), so neighbouring steps may differ on one event.
            let steps = types
                .iter()
                .enumerate()
                .filter(|&(k, &t)| t == kind && (filters >> (2 * k)) & 3 != 0)
                .fold(0, |m, (k, _)| m | (1 << k));
            let exclusions = funnel
                .exclusion_types
                .iter()
                .enumerate()
                .filter(|&(_, &t)| t == kind)
                .fold(0, |m, (j, _)| m | (1 << j));
            FunnelEvent {
                time: seconds * 1_000,
                seq: seq as u64,
                steps,
                exclusions,
                breakdown,
            }
        })
        .collect();
    events.sort_by_key(|e| (e.time, e.seq));
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn evaluator_agrees_with_the_naive_reference(funnel in funnel(), raw in raw_events()) {
        let events = build(&funnel, &raw);
        let valid = funnel.definition.clone().validate().expect("generated funnels are valid");
        let mut evaluator = FunnelEvaluator::new(&valid);
        let mut outcome = PersonOutcome::default();
        evaluator.evaluate(&events, &mut outcome).expect("sorted");
        let naive = reference::evaluate(&funnel.definition, &events);
        prop_assert_eq!(outcome.furthest_step, naive.furthest);
        let counted = outcome.status == PersonStatus::Counted;
        prop_assert_eq!(counted, naive.counted);
        let steps: Vec<usize> = outcome.step_events[..outcome.counted_steps()]
            .iter()
            .map(|&i| i as usize)
            .collect();
        prop_assert_eq!(steps, naive.step_events);
        prop_assert_eq!(&outcome.values, &naive.values);
        for pair in outcome.counted_step_times().windows(2) {
            prop_assert!(pair[0] <= pair[1]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn partitions_merge_to_the_single_pass(
        funnel in funnel(),
        persons in prop::collection::vec(raw_events(), 0..12),
        split in 0usize..12,
    ) {
        let valid = funnel.definition.clone().validate().expect("valid");
        let timelines: Vec<Vec<FunnelEvent>> = persons.iter().map(|p| build(&funnel, p)).collect();
        let mut single = FunnelAccumulator::new(valid.step_count(), true);
        let mut evaluator = FunnelEvaluator::new(&valid);
        let mut outcome = PersonOutcome::default();
        for (id, events) in timelines.iter().enumerate() {
            evaluator.evaluate(events, &mut outcome).expect("sorted");
            single.add(id as u64, &outcome);
        }
        let split = split.min(timelines.len());
        let columns: Vec<(Vec<u64>, Vec<usize>, Vec<FunnelEvent>)> = [0..split, split..timelines.len()]
            .into_iter()
            .map(|range| {
                let mut offsets = vec![0];
                let mut events = Vec::new();
                for events_of in &timelines[range.clone()] {
                    events.extend_from_slice(events_of);
                    offsets.push(events.len());
                }
                (range.map(|i| i as u64).collect(), offsets, events)
            })
            .collect();
        let batches: Vec<PersonBatch<'_>> = columns
            .iter()
            .map(|(ids, offsets, events)| PersonBatch { person_ids: ids, offsets, events })
            .collect();
        let merged = run_partitions(&valid, &batches, true).expect("well formed");
        let (single_report, single_index) = single.finish(2);
        let (merged_report, merged_index) = merged.finish(2);
        prop_assert_eq!(single_report, merged_report.clone());
        prop_assert_eq!(single_index, merged_index);
        for step in &merged_report.overall {
            prop_assert!(step.overall_conversion_rate.is_finite());
            prop_assert!(step.step_conversion_rate <= 1.0);
            prop_assert!(step.mean_conversion_ms.is_none_or(|m| m.is_finite() && m >= 0.0));
        }
    }
}
