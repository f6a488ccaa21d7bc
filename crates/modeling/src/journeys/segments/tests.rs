//! The evaluator against a deliberately naive reading of the same rules: random timelines,
//! random rule trees, thousands of persons, the same answer and the same next instant a
//! window moves.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use chrono::TimeZone;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use touchline_projection::Event;
use touchline_projection::query::Condition;
use uuid::Uuid;

use super::evaluate::{Compiled, Context, holds};
use super::rule::{Aggregation, Comparison, Window};

const HOUR: i64 = 3_600_000;
const NOW: i64 = 1_780_000_000_000;

/// A rule as plain data the naive reading walks.
#[derive(Debug, Clone)]
enum Plain {
    All(Vec<Plain>),
    Any(Vec<Plain>),
    Not(Box<Plain>),
    Events {
        event: Option<u32>,
        aggregation: Aggregation,
        comparison: Comparison,
        window: Window,
    },
    Member(bool),
}

fn random_comparison(rng: &mut ChaCha8Rng) -> Comparison {
    let v = f64::from(rng.random_range(0..6u8));
    match rng.random_range(0..7) {
        0 => Comparison::Equals(v),
        1 => Comparison::NotEquals(v),
        2 => Comparison::Greater(v),
        3 => Comparison::AtLeast(v),
        4 => Comparison::Less(v),
        5 => Comparison::AtMost(v),
        _ => Comparison::Between(v, v + f64::from(rng.random_range(0..4u8))),
    }
}

fn random_rule(rng: &mut ChaCha8Rng, depth: u32) -> Plain {
    let leaf = depth >= 3 || rng.random_bool(0.5);
    if leaf {
        if rng.random_bool(0.1) {
            return Plain::Member(rng.random_bool(0.5));
        }
        let aggregation = match rng.random_range(0..6) {
            0 => Aggregation::Count,
            1 => Aggregation::Sum,
            2 => Aggregation::Average,
            3 => Aggregation::Min,
            4 => Aggregation::Max,
            _ => Aggregation::DistinctDays,
        };
        let window = if rng.random_bool(0.7) {
            Window::Last {
                ms: rng.random_range(1..=96) * HOUR,
            }
        } else {
            let start_ms = NOW - rng.random_range(0..=120) * HOUR;
            Window::Range {
                start_ms,
                end_ms: start_ms + rng.random_range(1..=96) * HOUR,
            }
        };
        return Plain::Events {
            event: rng.random_bool(0.8).then(|| rng.random_range(1..4)),
            aggregation,
            comparison: random_comparison(rng),
            window,
        };
    }
    let children = (0..rng.random_range(1..4))
        .map(|_| random_rule(rng, depth + 1))
        .collect();
    match rng.random_range(0..3) {
        0 => Plain::All(children),
        1 => Plain::Any(children),
        _ => Plain::Not(Box::new(random_rule(rng, depth + 1))),
    }
}

fn compiled(rule: &Plain, member: Uuid) -> Compiled {
    match rule {
        Plain::All(rules) => Compiled::AllOf(rules.iter().map(|r| compiled(r, member)).collect()),
        Plain::Any(rules) => Compiled::AnyOf(rules.iter().map(|r| compiled(r, member)).collect()),
        Plain::Not(rule) => Compiled::Not(Box::new(compiled(rule, member))),
        Plain::Events {
            event,
            aggregation,
            comparison,
            window,
        } => Compiled::Events {
            condition: Condition {
                event: *event,
                filters: Vec::new(),
            },
            aggregation: *aggregation,
            comparison: *comparison,
            window: *window,
        },
        Plain::Member(is_member) => {
            let set: HashSet<Uuid> = if *is_member {
                HashSet::from([member])
            } else {
                HashSet::new()
            };
            Compiled::Member(Arc::new(set))
        }
    }
}

/// The naive reading: filter the events the window counts, then compute the aggregate the
/// way its name says; the next instant a window moves is found by trying every event's
/// entry and exit instants.
fn naive(rule: &Plain, events: &[Event], zone: chrono_tz::Tz) -> bool {
    match rule {
        Plain::All(rules) => rules.iter().all(|r| naive(r, events, zone)),
        Plain::Any(rules) => rules.iter().any(|r| naive(r, events, zone)),
        Plain::Not(rule) => !naive(rule, events, zone),
        Plain::Member(is_member) => *is_member,
        Plain::Events {
            event,
            aggregation,
            comparison,
            window,
        } => {
            let counted: Vec<&Event> = events
                .iter()
                .filter(|e| event.is_none_or(|code| e.event == code))
                .filter(|e| match window {
                    Window::Last { ms } => e.time_ms <= NOW && e.time_ms > NOW - ms,
                    Window::Range { start_ms, end_ms } => {
                        *start_ms <= e.time_ms && e.time_ms < *end_ms
                    }
                })
                .collect();
            let values: Vec<f64> = counted.iter().filter_map(|e| e.value).collect();
            let value = match aggregation {
                Aggregation::Count => Some(counted.len() as f64),
                Aggregation::Sum => Some(values.iter().sum()),
                Aggregation::Average => {
                    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
                }
                Aggregation::Min => values.iter().copied().reduce(f64::min),
                Aggregation::Max => values.iter().copied().reduce(f64::max),
                Aggregation::DistinctDays => Some(
                    counted
                        .iter()
                        .map(|e| {
                            zone.timestamp_millis_opt(e.time_ms)
                                .single()
                                .map(|t| t.date_naive())
                        })
                        .collect::<BTreeSet<_>>()
                        .len() as f64,
                ),
            };
            value.is_some_and(|v| comparison.holds(v))
        }
    }
}

fn naive_due(rule: &Plain, events: &[Event]) -> Option<i64> {
    match rule {
        Plain::All(rules) | Plain::Any(rules) => {
            rules.iter().filter_map(|r| naive_due(r, events)).min()
        }
        Plain::Not(rule) => naive_due(rule, events),
        Plain::Member(_) => None,
        Plain::Events { event, window, .. } => match window {
            Window::Range { .. } => None,
            Window::Last { ms } => events
                .iter()
                .filter(|e| event.is_none_or(|code| e.event == code))
                .filter_map(|e| {
                    if e.time_ms > NOW {
                        Some(e.time_ms)
                    } else if e.time_ms > NOW - ms {
                        Some(e.time_ms + ms)
                    } else {
                        None
                    }
                })
                .min(),
        },
    }
}

fn random_timeline(rng: &mut ChaCha8Rng) -> Vec<Event> {
    let mut events: Vec<Event> = (0..rng.random_range(0..12))
        .map(|seq| Event {
            time_ms: NOW - rng.random_range(-6 * HOUR..130 * HOUR),
            seq,
            event: rng.random_range(1..4),
            value: rng
                .random_bool(0.6)
                .then(|| f64::from(rng.random_range(0..5u8))),
            ..Event::default()
        })
        .collect();
    events.sort_by_key(|e| (e.time_ms, e.seq));
    events
}

#[test]
fn random_rules_select_the_persons_the_naive_reading_selects_and_agree_on_when_windows_move() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let zone: chrono_tz::Tz = chrono_tz::Asia::Shanghai;
    let context = Context {
        now_ms: NOW,
        zone,
        churn: None,
        lifecycle: None,
        rfm: None,
        holders: None,
    };
    let mut selected = 0;
    for case in 0..4_000 {
        let person = Uuid::from_u128(case);
        let rule = random_rule(&mut rng, 0);
        let events = random_timeline(&mut rng);
        let (held, due) = holds(&compiled(&rule, person), person, &events, &context);
        assert_eq!(
            held,
            naive(&rule, &events, zone),
            "case {case}: {rule:?} over {events:?}"
        );
        assert_eq!(
            due,
            naive_due(&rule, &events),
            "case {case}: {rule:?} over {events:?}"
        );
        selected += usize::from(held);
    }
    // Both answers occur often enough for the comparison to mean something.
    assert!(
        (400..3_600).contains(&selected),
        "{selected} of 4,000 selected"
    );
}

#[test]
fn a_person_enters_no_purchase_in_30_days_the_instant_the_last_purchase_ages_out() {
    let day = 24 * HOUR;
    let purchase = Event {
        time_ms: NOW - 29 * day,
        event: 1,
        ..Event::default()
    };
    let rule = Compiled::Not(Box::new(Compiled::Events {
        condition: Condition::event(1),
        aggregation: Aggregation::Count,
        comparison: Comparison::AtLeast(1.0),
        window: Window::Last { ms: 30 * day },
    }));
    let at = |now_ms| Context {
        now_ms,
        zone: chrono_tz::UTC,
        churn: None,
        lifecycle: None,
        rfm: None,
        holders: None,
    };
    let person = Uuid::from_u128(1);
    let (held, due) = holds(&rule, person, &[purchase], &at(NOW));
    assert!(!held);
    let due = due.expect("the purchase leaves the window");
    assert_eq!(due, purchase.time_ms + 30 * day);
    assert!(!holds(&rule, person, &[purchase], &at(due - 1)).0);
    assert!(holds(&rule, person, &[purchase], &at(due)).0);
}
