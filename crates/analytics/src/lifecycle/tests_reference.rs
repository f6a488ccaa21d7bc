#![allow(clippy::unwrap_used, reason = "tests")]

//! The lifecycle checked against a deliberately naive reference: statuses straight from the
//! definitions, with the time-zone database asked for every event and every step back.

use super::*;
use crate::calendar::test_inputs::{BASE_MS, ZONES};
use chrono::Weekday;
use proptest::prelude::*;
use std::collections::BTreeSet;

const DAY_MS: i64 = 86_400_000;

struct NaivePerson {
    active: BTreeSet<i64>,
    first_seen: Option<i64>,
}

fn back(calendar: &Calendar, start: i64, steps: usize) -> i64 {
    (0..steps).fold(start, |at, _| calendar.previous_start(at).unwrap())
}

fn naive_status(
    calendar: &Calendar,
    person: &NaivePerson,
    start: i64,
    k: usize,
) -> LifecycleStatus {
    let active = |at: i64| person.active.contains(&at);
    let previous = back(calendar, start, 1);
    if active(start) {
        if person.first_seen == Some(start) {
            LifecycleStatus::New
        } else if active(previous) {
            LifecycleStatus::Returning
        } else {
            LifecycleStatus::Resurrecting
        }
    } else if active(back(calendar, start, k)) && (1..k).all(|j| !active(back(calendar, start, j)))
    {
        LifecycleStatus::Churned
    } else if active(previous) {
        LifecycleStatus::Dormant
    } else {
        LifecycleStatus::Inactive
    }
}

/// Counts straight from the definitions; dormant and churned counted independently.
fn naive_counts(
    calendar: &Calendar,
    persons: &[NaivePerson],
    starts: &[i64],
    k: usize,
) -> Vec<LifecycleCounts> {
    starts
        .iter()
        .map(|&start| {
            let mut counts = LifecycleCounts::default();
            for person in persons {
                let active = |at: i64| person.active.contains(&at);
                let previous_active = active(back(calendar, start, 1));
                match naive_status(calendar, person, start, k) {
                    LifecycleStatus::New => counts.new += 1,
                    LifecycleStatus::Returning => counts.returning += 1,
                    LifecycleStatus::Resurrecting => counts.resurrecting += 1,
                    _ => {}
                }
                if !active(start) && previous_active {
                    counts.dormant += 1;
                }
                if naive_status(calendar, person, start, k) == LifecycleStatus::Churned {
                    counts.churned += 1;
                }
            }
            counts
        })
        .collect()
}

fn naive_stage(
    calendar: &Calendar,
    person: &NaivePerson,
    current: i64,
    k: usize,
) -> Option<(LifecycleStage, i64)> {
    let first_active = *person.active.first()?;
    let judged = if person.active.contains(&current) {
        current
    } else {
        back(calendar, current, 1)
    };
    if judged < first_active {
        return None;
    }
    match naive_status(calendar, person, judged, k) {
        LifecycleStatus::New => return Some((LifecycleStage::New, judged)),
        LifecycleStatus::Resurrecting => return Some((LifecycleStage::Returning, judged)),
        LifecycleStatus::Returning => return Some((LifecycleStage::Active, 0)),
        _ => {}
    }
    let last_active = *person.active.range(..judged).next_back()?;
    let mut run = 0;
    let mut at = judged;
    while at != last_active {
        run += 1;
        at = back(calendar, at, 1);
    }
    let after = calendar.next_start(last_active).unwrap();
    if run < k {
        Some((LifecycleStage::Dormant, after))
    } else {
        let since = (1..k).fold(after, |at, _| calendar.next_start(at).unwrap());
        Some((LifecycleStage::Churned, since))
    }
}

#[derive(Debug, Clone)]
struct Case {
    zone: usize,
    interval: Interval,
    k: u32,
    first_ms: i64,
    count: usize,
    persons: Vec<(Option<i64>, Vec<i64>)>,
    as_of_offset: i64,
}

fn any_case() -> impl Strategy<Value = Case> {
    let interval = prop_oneof![
        Just(Interval::Day),
        Just(Interval::Week),
        Just(Interval::Month)
    ];
    let events = proptest::collection::vec(-40 * DAY_MS..80 * DAY_MS, 0..12);
    let person = (proptest::option::of(-60 * DAY_MS..80 * DAY_MS), events);
    (
        0..ZONES.len(),
        interval,
        1u32..6,
        0..30 * DAY_MS,
        1usize..10,
        proptest::collection::vec(person, 0..8),
        0..i64::MAX,
    )
        .prop_map(
            |(zone, interval, k, first_ms, count, persons, as_of_offset)| Case {
                zone,
                interval,
                k,
                first_ms: BASE_MS + first_ms,
                count,
                persons: persons
                    .into_iter()
                    .map(|(seen, events)| {
                        (
                            seen.map(|s| BASE_MS + s),
                            events.into_iter().map(|e| BASE_MS + e).collect(),
                        )
                    })
                    .collect(),
                as_of_offset,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn fast_lifecycle_matches_naive_reference(case in any_case()) {
        let calendar = Calendar::from_zone_name(case.interval, ZONES[case.zone], Weekday::Sun).unwrap();
        let reported = IntervalGrid::from_instant(&calendar, case.first_ms, case.count).unwrap();
        let model = LifecycleModel::new(&calendar, &reported, case.k).unwrap();
        let k = case.k as usize;
        let persons: Vec<LifecyclePerson<'_>> = case
            .persons
            .iter()
            .map(|(seen, events)| LifecyclePerson { first_seen_ms: *seen, activity_ms: events })
            .collect();
        let naive_persons: Vec<NaivePerson> = case
            .persons
            .iter()
            .map(|(seen, events)| NaivePerson {
                active: events.iter().map(|&e| calendar.interval_start(e).unwrap()).collect(),
                first_seen: seen.map(|s| calendar.interval_start(s).unwrap()),
            })
            .collect();
        let starts: Vec<i64> = (0..reported.len()).map(|i| reported.start(i)).collect();

        let fast: Vec<LifecycleCounts> = model.run(&persons, 2).intervals().iter().map(|i| i.counts).collect();
        prop_assert_eq!(fast, naive_counts(&calendar, &naive_persons, &starts, k));

        let span = reported.end(reported.len() - 1) - reported.start(0);
        let as_of = reported.start(0) + case.as_of_offset % span;
        let current = calendar.interval_start(as_of).unwrap();
        for (person, naive) in persons.iter().zip(&naive_persons) {
            let history: Vec<LifecycleStatus> = model.person_history(person).iter().map(|i| i.status).collect();
            let expected: Vec<LifecycleStatus> = starts.iter().map(|&s| naive_status(&calendar, naive, s, k)).collect();
            prop_assert_eq!(history, expected);

            // The stage ignores activity after as-of.
            let until: Vec<i64> = person.activity_ms.iter().copied().filter(|&e| e <= as_of).collect();
            let truncated = NaivePerson {
                active: until.iter().map(|&e| calendar.interval_start(e).unwrap()).collect(),
                first_seen: naive.first_seen,
            };
            let stage = model.person_stage(person, as_of).unwrap();
            let expected = naive_stage(&calendar, &truncated, current, k);
            prop_assert_eq!(stage.map(|s| s.stage), expected.map(|e| e.0));
            if let (Some(stage), Some((kind, since))) = (stage, expected) {
                prop_assert_eq!(Some(stage.last_active_ms), until.iter().copied().max());
                if kind != LifecycleStage::Active {
                    prop_assert_eq!(stage.since_ms, since);
                }
            }
        }
    }
}
