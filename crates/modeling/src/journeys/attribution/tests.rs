//! Journeys read from a view against a deliberately naive reading of the same rules, on
//! thousands of random timelines: for every conversion in the range, the touches are found
//! again from scratch (every touch event after the person's previous conversion, grouped into
//! visits, cut to the lookback window, each event read as the channel its referrer names when
//! the request reads one; an order whose key an earlier order of the person carried is dropped
//! when the request reads keys; split where a pause longer than the journey gap separates two
//! touch events when the request sets one), so a shortcut of the one-pass reader (the running
//! touch list, the binary search for the window, the partitions read in parallel) that
//! changes an answer shows as a difference.

use std::collections::BTreeMap;

use prost::Message as _;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use touchline_proto::governance::v1::CleanEvent;
use uuid::Uuid;

use super::collect::{Plan, VISIT_GAP_MS, collect};
use super::query::{AttributionQuery, Model, ModelRequest, ModelType};
use crate::journeys::query::{Matcher, Scope};
use crate::journeys::view::TenantView;
use crate::journeys::{Cancel, RunContext};
use crate::store::journal::JournalEvent;

const DAY: i64 = 86_400_000;
const T0: i64 = 1_788_739_200_000;
const NAMES: [&str; 4] = ["view", "cart", "order", "note"];
const CHANNELS: [&str; 4] = ["web", "app", "store", ""];
/// Referrer values: a channel events have, one they never have, none.
const REFERRERS: [&str; 4] = ["", "", "store", "ads"];
/// The analysable property holding the referrer.
const REFERRER_PATH: &str = "properties.ref";
/// Order keys: none, or one of two orders (each reported up to several times).
const KEYS: [&str; 4] = ["", "o1", "o2", "o1"];
/// The analysable property holding an order's key.
const KEY_PATH: &str = "properties.key";

#[derive(Debug, Clone)]
struct Planned {
    person: u32,
    sequence: i64,
    time: i64,
    name: &'static str,
    channel: &'static str,
    classified: bool,
    value: f64,
    referrer: &'static str,
    key: &'static str,
}

fn random_events(rng: &mut ChaCha8Rng) -> Vec<Planned> {
    let persons = rng.random_range(1..12);
    let mut events = Vec::new();
    for person in 0..persons {
        let mut time = T0 + rng.random_range(-12..20) * DAY;
        for _ in 0..rng.random_range(0..14) {
            // Gaps in whole quarter hours, hours and days, so that touches fall exactly on
            // the visit gap, the lookback's start and the range's ends, and times repeat.
            time += match rng.random_range(0..4) {
                0 => 0,
                1 => rng.random_range(0..5) * VISIT_GAP_MS / 2,
                2 => rng.random_range(0..72) * 3_600_000,
                _ => rng.random_range(0..12) * DAY,
            };
            events.push(Planned {
                person,
                sequence: events.len() as i64 + 1,
                time,
                name: NAMES[rng.random_range(0..NAMES.len())],
                channel: CHANNELS[rng.random_range(0..CHANNELS.len())],
                classified: rng.random_bool(0.8),
                value: if rng.random_bool(0.7) {
                    f64::from(rng.random_range(1..500u32))
                } else {
                    0.0
                },
                referrer: REFERRERS[rng.random_range(0..REFERRERS.len())],
                key: KEYS[rng.random_range(0..KEYS.len())],
            });
        }
    }
    events
}

fn view_of(events: &[Planned]) -> TenantView {
    let stored: Vec<JournalEvent> = events
        .iter()
        .map(|e| {
            let mut properties = prost_types::Struct::default();
            for (name, value) in [("ref", e.referrer), ("key", e.key)] {
                if !value.is_empty() {
                    properties.fields.insert(
                        name.to_owned(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue(value.to_owned())),
                        },
                    );
                }
            }
            JournalEvent {
                sequence: e.sequence,
                person_id: Uuid::from_u128(u128::from(e.person) + 1),
                event_name: e.name.to_owned(),
                channel: e.channel.to_owned(),
                event_time: chrono::DateTime::from_timestamp_millis(e.time).unwrap_or_default(),
                payload: CleanEvent {
                    touchpoint_type: i32::from(e.classified),
                    value: e.value,
                    properties: Some(properties),
                    ..CleanEvent::default()
                }
                .encode_to_vec(),
            }
        })
        .collect();
    match TenantView::build(
        stored.chunks(7).map(<[JournalEvent]>::to_vec),
        vec![REFERRER_PATH.to_owned(), KEY_PATH.to_owned()],
        3,
    ) {
        Ok(view) => view,
        Err(err) => panic!("the view was refused: {err}"),
    }
}

/// Path (channel names) → (conversions, value, non-converting journeys); plus the direct
/// conversions and their value; plus the time-decay credit per channel.
type Expected = (
    BTreeMap<Vec<String>, (f64, f64, f64)>,
    (f64, f64),
    BTreeMap<String, f64>,
);

/// A journey as the naive reading finds it: (visits as channel and first time, end, converted,
/// value).
type NaiveJourney = (Vec<(String, i64)>, i64, bool, f64);

/// The channel an event is read as: its referrer when the request reads one and it has one,
/// else its own.
fn channel_of(e: &Planned, referred: bool) -> &'static str {
    if referred && !e.referrer.is_empty() {
        e.referrer
    } else {
        e.channel
    }
}

fn is_touch(e: &Planned, every_event: bool, referred: bool) -> bool {
    e.name != "order" && (every_event || e.classified) && !channel_of(e, referred).is_empty()
}

/// The visits among `touches` (time-ordered), as (channel, first time).
fn visits(touches: &[&Planned], referred: bool) -> Vec<(String, i64)> {
    let mut visits: Vec<(String, i64, i64)> = Vec::new();
    for touch in touches {
        let channel = channel_of(touch, referred);
        let joins = visits
            .last()
            .is_some_and(|(c, _, last)| c == channel && touch.time - last <= VISIT_GAP_MS);
        if joins {
            if let Some(last) = visits.last_mut() {
                last.2 = touch.time;
            }
        } else {
            visits.push((channel.to_owned(), touch.time, touch.time));
        }
    }
    visits.into_iter().map(|(c, first, _)| (c, first)).collect()
}

/// Drops every order whose key an earlier order of the timeline carried: a later report of
/// an order already seen is no event at all.
fn drop_repeated_orders(timeline: &mut Vec<&Planned>) {
    let mut seen: Vec<&str> = Vec::new();
    timeline.retain(|e| {
        if e.name != "order" || e.key.is_empty() {
            return true;
        }
        if seen.contains(&e.key) {
            return false;
        }
        seen.push(e.key);
        true
    });
}

/// Splits time-ordered touch events wherever more than `gap` passes between two of them.
fn spells<'a>(touches: &[&'a Planned], gap: Option<i64>) -> Vec<Vec<&'a Planned>> {
    let mut spells: Vec<Vec<&Planned>> = Vec::new();
    for touch in touches {
        let previous = spells.last().and_then(|s| s.last()).map(|e| e.time);
        match (previous, gap) {
            (Some(previous), Some(gap)) if touch.time - previous <= gap => {}
            (Some(_), None) => {}
            _ => {
                spells.push(Vec::new());
            }
        }
        if let Some(spell) = spells.last_mut() {
            spell.push(touch);
        }
    }
    spells
}

/// What the request reads besides the range and the lookback.
#[derive(Debug, Clone, Copy)]
struct Reading {
    every_event: bool,
    referred: bool,
    keyed: bool,
    half_life: i64,
    gap: Option<i64>,
}

/// The non-converting journeys of `spells` that a pause ended (each at its last touch event
/// plus the gap), when that instant is in the range.
fn paused_journeys(
    spells: Vec<Vec<&Planned>>,
    reading: Reading,
    range: (i64, i64),
    lookback: i64,
    journeys: &mut Vec<NaiveJourney>,
) {
    let Some(gap) = reading.gap else {
        assert!(spells.is_empty(), "without a gap nothing pauses");
        return;
    };
    for spell in spells {
        let Some(last) = spell.last() else { continue };
        let end = last.time + gap;
        if end < range.0 {
            continue;
        }
        let kept: Vec<(String, i64)> = visits(&spell, reading.referred)
            .into_iter()
            .filter(|(_, first)| *first >= end - lookback)
            .collect();
        if !kept.is_empty() {
            journeys.push((kept, end, false, 0.0));
        }
    }
}

/// Of the spells before `end`, the last when no pause separates it from `end` (it is the
/// journey ending at `end`); the others ended at a pause.
fn last_spell(
    mut spells: Vec<Vec<&Planned>>,
    end: i64,
    gap: Option<i64>,
) -> (Vec<&Planned>, Vec<Vec<&Planned>>) {
    let ended = match (spells.last().and_then(|s| s.last()), gap) {
        (Some(last), Some(gap)) => end - last.time > gap,
        _ => false,
    };
    let own = if ended {
        Vec::new()
    } else {
        spells.pop().unwrap_or_default()
    };
    (own, spells)
}

fn naive(events: &[Planned], range: (i64, i64), lookback: i64, reading: Reading) -> Expected {
    let Reading {
        every_event,
        referred,
        keyed,
        half_life,
        gap,
    } = reading;
    let mut expected: Expected = (BTreeMap::new(), (0.0, 0.0), BTreeMap::new());
    let persons: std::collections::BTreeSet<u32> = events.iter().map(|e| e.person).collect();
    for person in persons {
        let mut timeline: Vec<&Planned> = events
            .iter()
            .filter(|e| e.person == person && e.time < range.1)
            .collect();
        timeline.sort_by_key(|e| (e.time, e.sequence));
        if keyed {
            drop_repeated_orders(&mut timeline);
        }
        let ends: Vec<usize> = (0..timeline.len())
            .filter(|&i| timeline[i].name == "order")
            .collect();
        let mut journeys: Vec<NaiveJourney> = Vec::new();
        for (k, &at) in ends.iter().enumerate() {
            let conversion = timeline[at];
            if conversion.time < range.0 {
                continue;
            }
            let after = if k == 0 { 0 } else { ends[k - 1] + 1 };
            let touches: Vec<&Planned> = timeline[after..at]
                .iter()
                .copied()
                .filter(|e| is_touch(e, every_event, referred))
                .collect();
            let (touches, paused) = last_spell(spells(&touches, gap), conversion.time, gap);
            paused_journeys(paused, reading, range, lookback, &mut journeys);
            let kept: Vec<(String, i64)> = visits(&touches, referred)
                .into_iter()
                .filter(|(_, first)| *first >= conversion.time - lookback)
                .collect();
            journeys.push((kept, conversion.time, true, conversion.value));
        }
        let after = ends.last().map_or(0, |&i| i + 1);
        let touches: Vec<&Planned> = timeline[after..]
            .iter()
            .copied()
            .filter(|e| is_touch(e, every_event, referred))
            .collect();
        let (touches, paused) = last_spell(spells(&touches, gap), range.1, gap);
        paused_journeys(paused, reading, range, lookback, &mut journeys);
        let kept: Vec<(String, i64)> = visits(&touches, referred)
            .into_iter()
            .filter(|(_, first)| *first >= range.1 - lookback)
            .collect();
        if !kept.is_empty() {
            journeys.push((kept, range.1, false, 0.0));
        }
        for journey in journeys {
            tally(journey, half_life, &mut expected);
        }
    }
    expected
}

/// Adds one journey to the expected paths, direct conversions and time-decay credit.
fn tally(
    (touches, end, converted, value): NaiveJourney,
    half_life: i64,
    (paths, direct, decay): &mut Expected,
) {
    if touches.is_empty() {
        if converted {
            direct.0 += 1.0;
            direct.1 += value;
        }
        return;
    }
    let path: Vec<String> = touches.iter().map(|(c, _)| c.clone()).collect();
    let entry = paths.entry(path).or_default();
    if converted {
        entry.0 += 1.0;
        entry.1 += value;
        let weights: Vec<f64> = touches
            .iter()
            .map(|(_, t)| 2f64.powf(-((end - t) as f64) / half_life as f64))
            .collect();
        let total: f64 = weights.iter().sum();
        for ((channel, _), w) in touches.iter().zip(&weights) {
            *decay.entry(channel.clone()).or_default() += w / total;
        }
    } else {
        entry.2 += 1.0;
    }
}

#[test]
fn journeys_from_the_view_equal_a_naive_reading_of_the_rules() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for case in 0..2_000 {
        check_case(case, &mut rng);
    }
}

/// One random case: the view's journeys against the naive reading.
fn check_case(case: usize, rng: &mut ChaCha8Rng) {
    let events = random_events(rng);
    let view = view_of(&events);
    let range = (T0, T0 + rng.random_range(1..30) * DAY);
    let lookback = rng.random_range(1..15) * DAY / [1, 2, 24][rng.random_range(0..3)];
    let every_event = rng.random_bool(0.5);
    let referred = rng.random_bool(0.5);
    let keyed = rng.random_bool(0.5);
    let half_life = rng.random_range(1..10) * DAY;
    // Whole hours up to the lookback window, so that pauses fall exactly on the gap too.
    let gap = rng
        .random_bool(0.5)
        .then(|| rng.random_range(1..=lookback / 3_600_000) * 3_600_000);
    let reading = Reading {
        every_event,
        referred,
        keyed,
        half_life,
        gap,
    };
    let valid = match query_of(reading, range, lookback).validate(T0) {
        Ok(valid) => valid,
        Err(problems) => panic!("case {case}: {:?}", problems.0),
    };
    assert_eq!(
        valid.models,
        vec![Model::TimeDecay {
            half_life_ms: half_life
        }]
    );
    let run = RunContext {
        defined: Vec::new(),
        threads: 1 + case % 3,
        cancel: Cancel::default(),
        persons: None,
    };
    let plan = match Plan::new(&view, &valid, &run) {
        Ok(plan) => plan,
        Err(problems) => {
            // Only when no stored event is an order: the name is then unknown.
            assert!(events.iter().all(|e| e.name != "order"), "{:?}", problems.0);
            return;
        }
    };
    let collected = match collect(&view, &plan, &run) {
        Ok(collected) => collected,
        Err(err) => panic!("case {case}: {err}"),
    };
    let expected = naive(&events, range, lookback, reading);
    compare(case, &collected, &expected);
}

/// The request a case makes: orders are the conversions, over `range`.
fn query_of(reading: Reading, range: (i64, i64), lookback: i64) -> AttributionQuery {
    AttributionQuery {
        conversion: Some(Matcher {
            event_name: "order".to_owned(),
            filters: Vec::new(),
        }),
        touchpoints: if reading.every_event {
            vec![Matcher::default()]
        } else {
            Vec::new()
        },
        referrer_field: if reading.referred {
            REFERRER_PATH.to_owned()
        } else {
            String::new()
        },
        conversion_key_field: if reading.keyed {
            KEY_PATH.to_owned()
        } else {
            String::new()
        },
        lookback_ms: Some(lookback),
        journey_gap_ms: reading.gap,
        models: vec![ModelRequest {
            kind: ModelType::TimeDecay,
            half_life_ms: Some(reading.half_life),
            ..ModelRequest::default()
        }],
        scope: Scope {
            start_ms: Some(range.0),
            end_ms: Some(range.1),
            ..Scope::default()
        },
        ..AttributionQuery::default()
    }
}

/// The collected table and time-decay credits against the naive reading's.
fn compare(case: usize, collected: &super::collect::Collected, expected: &Expected) {
    let (paths, direct, decay) = expected;
    let table = &collected.table;
    let names = table.channel_names();
    assert_eq!(&rows_by_path(collected), paths, "case {case}: paths");
    assert_eq!(
        (table.direct_conversions(), table.direct_value()),
        *direct,
        "case {case}: direct conversions"
    );
    let credited: BTreeMap<String, f64> = names
        .iter()
        .enumerate()
        .filter_map(|(code, name)| {
            let credit = collected.decay.first().map_or(0.0, |d| d.conversions[code]);
            (credit != 0.0).then(|| (name.clone(), credit))
        })
        .collect();
    assert_eq!(
        credited.keys().collect::<Vec<_>>(),
        decay.keys().collect::<Vec<_>>(),
        "case {case}: time decay channels"
    );
    for (channel, want) in decay {
        let got = credited.get(channel).copied().unwrap_or_default();
        assert!(
            (got - want).abs() < 1e-9,
            "case {case}: time decay of {channel}: {got} vs {want}"
        );
    }
}

/// The converting rows of a collected table (path → conversions, value) and its direct
/// conversions.
type Converting = (BTreeMap<Vec<String>, (f64, f64)>, (f64, f64));

fn converting(collected: &super::collect::Collected) -> Converting {
    let rows = rows_by_path(collected)
        .into_iter()
        .filter(|(_, (conversions, _, _))| *conversions > 0.0)
        .map(|(path, (conversions, value, _))| (path, (conversions, value)))
        .collect();
    let table = &collected.table;
    (rows, (table.direct_conversions(), table.direct_value()))
}

/// A collected table's rows by path of channel names: (conversions, value, non-converting
/// journeys).
fn rows_by_path(collected: &super::collect::Collected) -> BTreeMap<Vec<String>, (f64, f64, f64)> {
    let table = &collected.table;
    let names = table.channel_names();
    table
        .rows()
        .map(|row| {
            let path = row
                .channels
                .iter()
                .map(|&c| names[c as usize].clone())
                .collect();
            (path, (row.conversions, row.value, row.nulls))
        })
        .collect()
}

/// A gap as long as the lookback window (the longest allowed) never changes what a
/// conversion is credited to: a touch before a longer pause is outside the window anyway.
/// Only journeys that did not convert change (which is why a segment's credit may take such
/// a gap).
#[test]
fn a_gap_as_long_as_the_lookback_changes_no_converting_journey() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut converted = 0;
    for case in 0..1_000 {
        let events = random_events(&mut rng);
        if events.iter().all(|e| e.name != "order") {
            continue;
        }
        let view = view_of(&events);
        let range = (T0, T0 + rng.random_range(1..30) * DAY);
        let lookback = rng.random_range(1..15) * DAY / [1, 2, 24][rng.random_range(0..3)];
        let reading = Reading {
            every_event: rng.random_bool(0.5),
            referred: rng.random_bool(0.5),
            keyed: rng.random_bool(0.5),
            half_life: DAY,
            gap: None,
        };
        let run = RunContext {
            defined: Vec::new(),
            threads: 1 + case % 3,
            cancel: Cancel::default(),
            persons: None,
        };
        let read = |gap: Option<i64>| {
            let query = query_of(Reading { gap, ..reading }, range, lookback);
            let valid = match query.validate(T0) {
                Ok(valid) => valid,
                Err(problems) => panic!("case {case}: {:?}", problems.0),
            };
            let plan = match Plan::new(&view, &valid, &run) {
                Ok(plan) => plan,
                Err(problems) => panic!("case {case}: {:?}", problems.0),
            };
            match collect(&view, &plan, &run) {
                Ok(collected) => collected,
                Err(err) => panic!("case {case}: {err}"),
            }
        };
        let without = read(None);
        let with = read(Some(lookback));
        assert_eq!(converting(&with), converting(&without), "case {case}");
        converted += usize::from(without.table.total_conversions() > 0.0);
    }
    assert!(
        converted > 300,
        "only {converted} cases had a converting journey"
    );
}
