//! The forward pass for ordered funnels without exclusions against the general ordered
//! engine and the naive reference, on timelines made to stress it: many equal timestamps,
//! repeated step events, neighbouring steps of one event type, events matching several
//! steps, and windows that expire attempts mid-way.

use proptest::prelude::*;

use super::reference;
use crate::funnel::forward::ForwardScratch;
use crate::funnel::sequential::{AttemptPick, SequentialScratch};
use crate::funnel::{
    Attribution, BreakdownSpec, FunnelDefinition, FunnelError, FunnelEvaluator, FunnelEvent,
    FunnelOrder, PersonOutcome,
};

/// `(step event types, window in seconds)`: few types, so neighbouring steps often share one.
fn funnel() -> impl Strategy<Value = FunnelDefinition> {
    (prop::collection::vec(0u32..3, 2..=6), 1i64..=8).prop_map(|(types, window)| FunnelDefinition {
        step_event_types: types,
        window_ms: window * 1_000,
        order: FunnelOrder::Ordered,
        exclusions: Vec::new(),
        breakdown: None,
    })
}

/// `(seconds, event type, filter bits)`: at most 16 instants for up to 48 events, so most
/// events share their time with another; type 3 matches no step.
fn raw_events() -> impl Strategy<Value = Vec<(i64, u32, u32)>> {
    prop::collection::vec((0i64..16, 0u32..4, any::<u32>()), 0..48)
}

fn build(definition: &FunnelDefinition, raw: &[(i64, u32, u32)]) -> Vec<FunnelEvent> {
    let types = &definition.step_event_types;
    let mut events: Vec<FunnelEvent> = (0u64..)
        .zip(raw)
        .map(|(seq, &(seconds, kind, filters))| FunnelEvent {
            time: seconds * 1_000,
            seq,
            // A step matches its type unless its filter bits say no (one time in four).
            steps: types
                .iter()
                .enumerate()
                .filter(|&(k, &t)| t == kind && (filters >> (2 * k)) & 3 != 0)
                .fold(0, |m, (k, _)| m | (1 << k)),
            exclusions: 0,
            breakdown: 0,
        })
        .collect();
    events.sort_by_key(|e| (e.time, e.seq));
    events
}

fn counted_events(pick: &AttemptPick) -> Vec<u32> {
    pick.step_events[..pick.counted].to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn forward_pass_agrees_with_the_general_engine(
        definition in funnel(),
        raw in raw_events(),
    ) {
        let events = build(&definition, &raw);
        let valid = definition.clone().validate().expect("generated funnels are valid");
        let (mut fast, mut general) = (AttemptPick::default(), AttemptPick::default());
        prop_assert!(ForwardScratch::default().evaluate(&valid, &events, u32::MAX, &mut fast));
        SequentialScratch::default().evaluate(&valid, &events, &mut general);
        prop_assert_eq!(fast.furthest, general.furthest);
        prop_assert_eq!(fast.counted, general.counted);
        prop_assert_eq!(counted_events(&fast), counted_events(&general));
        let naive = reference::evaluate(&definition, &events);
        prop_assert_eq!(fast.furthest, naive.furthest);
        let naive_events: Vec<u32> = naive.step_events.iter().map(|&i| i as u32).collect();
        prop_assert_eq!(counted_events(&fast), naive_events);
    }

    #[test]
    fn forward_scratch_is_reusable_across_persons(
        definition in funnel(),
        persons in prop::collection::vec(raw_events(), 1..6),
    ) {
        let valid = definition.clone().validate().expect("generated funnels are valid");
        let mut reused = ForwardScratch::default();
        for raw in &persons {
            let events = build(&definition, raw);
            let (mut again, mut fresh) = (AttemptPick::default(), AttemptPick::default());
            prop_assert!(reused.evaluate(&valid, &events, u32::MAX, &mut again));
            prop_assert!(ForwardScratch::default().evaluate(&valid, &events, u32::MAX, &mut fresh));
            prop_assert_eq!(again.furthest, fresh.furthest);
            prop_assert_eq!(counted_events(&again), counted_events(&fresh));
        }
    }
}

/// The first fault of the input in index order, as the evaluator must name it.
fn naive_fault(events: &[FunnelEvent], value_count: u32) -> Option<FunnelError> {
    events.iter().enumerate().find_map(|(index, event)| {
        let unsorted = index > 0 && {
            let previous = &events[index - 1];
            (event.time, event.seq) < (previous.time, previous.seq)
        };
        if unsorted {
            Some(FunnelError::UnsortedEvents { index })
        } else if event.breakdown >= value_count {
            Some(FunnelError::BreakdownCodeOutOfRange {
                code: event.breakdown,
            })
        } else {
            None
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// The forward pass checks its input on the way; the evaluator must still refuse
    /// exactly what the full check refuses, naming the first fault.
    #[test]
    fn faulty_input_is_refused_as_by_the_full_check(
        definition in funnel(),
        raw in prop::collection::vec((0i64..6, 0u32..4, any::<u32>(), 0u32..5), 0..12),
        shuffle in any::<bool>(),
    ) {
        let definition = FunnelDefinition {
            breakdown: Some(BreakdownSpec {
                attribution: Attribution::FirstTouch,
                value_count: 4,
            }),
            ..definition
        };
        let plain: Vec<(i64, u32, u32)> = raw.iter().map(|&(t, k, f, _)| (t, k, f)).collect();
        let mut events = build(&definition, &plain);
        for (event, &(_, _, _, code)) in events.iter_mut().zip(&raw) {
            // Mostly valid codes, a fault one time in five.
            event.breakdown = code;
        }
        if shuffle {
            events.reverse();
        }
        let valid = definition.validate().expect("generated funnels are valid");
        let mut outcome = PersonOutcome::default();
        let result = FunnelEvaluator::new(&valid).evaluate(&events, &mut outcome);
        prop_assert_eq!(result.err(), naive_fault(&events, 4));
    }
}
