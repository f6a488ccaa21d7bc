//! RFM and churn through the projection equal a deliberately naive computation from the raw
//! list of purchases, on a few hundred random histories: values, scores and quantile bounds,
//! P(alive) and the churn score by the chosen model's formula (BG/NBD, MBG/NBD or the default)
//! on whole UTC days, the inactivity flag and the suggested threshold, with a random segment
//! rule before the default rule in half the histories.

use std::collections::BTreeMap;

use chrono::{TimeZone as _, Utc};
use prost::Message as _;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use touchline_analytics::churn::bgnbd::{BetaGeoModel, BgNbdParams, CustomerSummary};
use touchline_analytics::churn::rfm::{RfmScores, ScoreLevels, classify_default};
use touchline_modeling::journeys::churn::{
    ChurnRow, ChurnTable, PurchaseEvent, RuleMembers, churn_table, purchase_condition, run_rfm,
};
use touchline_modeling::journeys::churn_settings::{
    BgNbdSettings, CHURN_MODEL_BG_NBD, CHURN_MODEL_EVENTS_ANY_EVENT, CHURN_MODEL_EVENTS_PURCHASES,
    CHURN_MODEL_MBG_NBD, ChurnSettings, DEFAULT_CHURN_MODEL, ModelSettings, RfmSettings,
    RuleSettings, churn_model_number,
};
use touchline_modeling::journeys::query::Matcher;
use touchline_modeling::journeys::{RunContext, TenantView};
use touchline_modeling::store::journal::JournalEvent;
use touchline_proto::governance::v1::CleanEvent;
use uuid::Uuid;

const DAY_S: i64 = 86_400;
/// The evaluation time: 2026-06-01T10:00:00Z.
const NOW_S: i64 = 1_780_308_000;

/// One raw event of the reference: person, time (ms), whether it is a purchase, its value.
#[derive(Debug, Clone, Copy)]
struct Raw {
    person: usize,
    time_ms: i64,
    sequence: i64,
    purchase: bool,
    value: f64,
}

fn journal(raw: &Raw, persons: &[Uuid]) -> JournalEvent {
    let name = if raw.purchase { "pay" } else { "view" };
    let payload = CleanEvent {
        sequence: raw.sequence,
        event_name: name.to_owned(),
        channel: "app".to_owned(),
        value: raw.value,
        ..CleanEvent::default()
    }
    .encode_to_vec();
    JournalEvent {
        sequence: raw.sequence,
        person_id: persons[raw.person],
        event_name: name.to_owned(),
        channel: "app".to_owned(),
        event_time: Utc
            .timestamp_millis_opt(raw.time_ms)
            .single()
            .unwrap_or_default(),
        payload,
    }
}

fn history(rng: &mut ChaCha8Rng) -> (Vec<Uuid>, Vec<Raw>) {
    let persons: Vec<Uuid> = (0..rng.random_range(1..25))
        .map(|_| Uuid::from_u128(rng.random()))
        .collect();
    let mut raw = Vec::new();
    for sequence in 1..=rng.random_range(1..150) {
        let person = rng.random_range(0..persons.len());
        // Up to 500 days back, some after now, at any millisecond; amounts in halves (sums
        // are exact in any order), some 0 (the projection keeps no value then).
        let time_ms = (NOW_S - rng.random_range(-5 * DAY_S..500 * DAY_S)) * 1_000
            + rng.random_range(0..1_000);
        let purchase = rng.random_bool(0.6);
        let value = if purchase && rng.random_bool(0.9) {
            f64::from(rng.random_range(1..400)) * 0.5
        } else {
            0.0
        };
        raw.push(Raw {
            person,
            time_ms,
            sequence,
            purchase,
            value,
        });
    }
    (persons, raw)
}

/// Each person's purchases (seconds, value) up to `now_s`, in (time, sequence) order.
fn purchases(raw: &[Raw], persons: &[Uuid], now_s: i64) -> BTreeMap<Uuid, Vec<(i64, f64)>> {
    events_of(raw, persons, now_s, true)
}

/// Each person's events (purchases only, or all) up to `now_s`, in (time, sequence) order.
fn events_of(
    raw: &[Raw],
    persons: &[Uuid],
    now_s: i64,
    only_purchases: bool,
) -> BTreeMap<Uuid, Vec<(i64, f64)>> {
    let mut sorted: Vec<Raw> = raw.to_vec();
    sorted.sort_by_key(|r| (r.time_ms, r.sequence));
    let mut out: BTreeMap<Uuid, Vec<(i64, f64)>> = BTreeMap::new();
    for r in sorted {
        let secs = r.time_ms.div_euclid(1_000);
        if (r.purchase || !only_purchases) && secs <= now_s {
            out.entry(persons[r.person])
                .or_default()
                .push((secs, r.value));
        }
    }
    out
}

/// The value at 1-based rank ⌈i·n/L⌉, for i = 1..L.
fn bounds<T: Copy>(
    mut values: Vec<T>,
    levels: usize,
    cmp: fn(&T, &T) -> std::cmp::Ordering,
) -> Vec<T> {
    values.sort_by(cmp);
    let n = values.len();
    (1..levels)
        .map(|i| values[(i * n).div_ceil(levels) - 1])
        .collect()
}

fn level<T>(bounds: &[T], value: &T, below: fn(&T, &T) -> bool) -> u8 {
    1 + bounds.iter().filter(|b| below(b, value)).count() as u8
}

fn check_rfm(view: &TenantView, raw: &[Raw], persons: &[Uuid], levels: u8, lookback_days: i64) {
    let run = RunContext {
        threads: 2,
        ..RunContext::default()
    };
    let settings = ModelSettings {
        rfm: RfmSettings {
            lookback: Some((lookback_days * DAY_S, 0)),
            score_levels: i32::from(levels),
            segment_rules: Vec::new(),
        },
        ..ModelSettings::default()
    };
    let effective = settings
        .validate("")
        .unwrap_or_else(|p| panic!("valid settings: {p:?}"));
    let purchase = PurchaseEvent::Matcher(Matcher {
        event_name: "pay".to_owned(),
        filters: Vec::new(),
    });
    let Ok(condition) = purchase_condition(view, &purchase, &run, "purchase_event", false) else {
        panic!("the purchase event compiles");
    };
    let as_of_ms = NOW_S * 1_000 + 999;
    let got = run_rfm(view, &condition, &effective.rfm, as_of_ms, &run);

    // The reference: purchases in (as_of − lookback, as_of], by person id.
    let window_start = NOW_S - lookback_days * DAY_S;
    let mut values: Vec<(Uuid, i64, u64, f64)> = Vec::new();
    for (person, list) in purchases(raw, persons, NOW_S) {
        let inside: Vec<&(i64, f64)> = list.iter().filter(|(t, _)| *t > window_start).collect();
        if let Some(last) = inside.iter().map(|(t, _)| *t).max() {
            let monetary = inside.iter().map(|(_, v)| *v).sum();
            values.push((person, NOW_S - last, inside.len() as u64, monetary));
        }
    }
    assert_eq!(got.persons.len(), values.len(), "persons scored");
    if values.is_empty() {
        assert!(got.thresholds.is_none());
        return;
    }
    let l = usize::from(levels);
    let r_bounds = bounds(values.iter().map(|v| v.1).collect(), l, i64::cmp);
    let f_bounds = bounds(values.iter().map(|v| v.2).collect(), l, u64::cmp);
    let m_bounds = bounds(values.iter().map(|v| v.3).collect(), l, f64::total_cmp);
    let thresholds = got.thresholds.clone().unwrap_or_else(|| panic!("bounds"));
    assert_eq!(thresholds.recency_secs, r_bounds);
    assert_eq!(thresholds.frequency, f_bounds);
    assert_eq!(thresholds.monetary, m_bounds);
    for (got, (person, recency, frequency, monetary)) in got.persons.iter().zip(&values) {
        assert_eq!(got.person, *person);
        assert_eq!(
            (
                got.values.recency_secs,
                got.values.frequency,
                got.values.monetary
            ),
            (*recency, *frequency, *monetary)
        );
        let scores = RfmScores {
            recency: levels + 1 - level(&r_bounds, recency, |b, v| b < v),
            frequency: level(&f_bounds, frequency, |b, v| b < v),
            monetary: level(&m_bounds, monetary, |b, v| b < v),
        };
        assert_eq!(got.scores, scores);
        let levels = ScoreLevels::new(u32::from(levels)).unwrap_or_default();
        assert_eq!(got.segment, classify_default(scores, levels));
    }
}

/// The type-7 percentile of the gaps, rounded up to days and clamped; 90 below 10 gaps.
fn suggested_days(purchases: &BTreeMap<Uuid, Vec<(i64, f64)>>, percentile: f64) -> u32 {
    let mut gaps: Vec<i64> = Vec::new();
    for list in purchases.values() {
        for pair in list.windows(2) {
            if pair[1].0 > pair[0].0 {
                gaps.push(pair[1].0 - pair[0].0);
            }
        }
    }
    if gaps.len() < 10 {
        return 90;
    }
    gaps.sort_unstable();
    let position = (gaps.len() - 1) as f64 * percentile;
    let lower = position.floor() as usize;
    let upper = (lower + 1).min(gaps.len() - 1);
    let gap = gaps[lower] as f64 + (position - lower as f64) * (gaps[upper] - gaps[lower]) as f64;
    (gap / DAY_S as f64).ceil().clamp(1.0, 1_095.0) as u32
}

/// Each person's (seconds, value) events.
type ByPerson = BTreeMap<Uuid, Vec<(i64, f64)>>;

/// Whole UTC days of `list`, each once.
fn days_of(list: &[(i64, f64)]) -> Vec<i64> {
    let mut days: Vec<i64> = list.iter().map(|(t, _)| t.div_euclid(DAY_S)).collect();
    days.dedup();
    days
}

/// One row against the model's formula on whole UTC days and the inactivity rule. `counted`
/// is what the model counts (purchases, or every event).
fn check_row(
    row: &ChurnRow,
    (bought, counted): (&ByPerson, &ByPerson),
    raw: &[Raw],
    persons: &[Uuid],
    (model, params, prediction_days): (i32, [f64; 4], u32),
    threshold_days: i64,
) {
    let [r, alpha, a, b] = params;
    let today = NOW_S.div_euclid(DAY_S);
    assert_eq!(
        row.repeat_purchases,
        bought
            .get(&row.person)
            .map_or(0, |list| (days_of(list).len() - 1) as u64),
        "repeat purchases are purchase days whatever the model counts"
    );
    if bought.get(&row.person).is_none() {
        assert!(!row.churned, "never active by purchases");
    }
    let Some(list) = counted.get(&row.person) else {
        assert_eq!(
            (row.score, row.probability_alive, row.expected_purchases),
            (None, None, None)
        );
        return;
    };
    let days = days_of(list);
    let (first, last) = (days[0], days[days.len() - 1]);
    let x = (days.len() - 1) as f64;
    let (t_x, age) = ((last - first) as f64, (today - first) as f64);
    let widening = ((alpha + age) / (alpha + t_x)).powf(r + x);
    let alive = if model == CHURN_MODEL_MBG_NBD {
        1.0 / (1.0 + a / (b + x) * widening)
    } else if days.len() == 1 {
        1.0
    } else {
        1.0 / (1.0 + a / (b + x - 1.0) * widening)
    };
    let got_alive = row.probability_alive.unwrap_or(f64::NAN);
    let got_score = row.score.unwrap_or(f64::NAN);
    assert!((got_alive - alive).abs() < 1e-9, "{got_alive} vs {alive}");
    assert!((got_score - (1.0 - alive)).abs() < 1e-9);
    // Expected purchases: the model's forecast (checked against its series and lifetimes in
    // the analytics crate) on the summary counted here by hand, over the chosen period.
    let chosen = if model == CHURN_MODEL_MBG_NBD {
        BetaGeoModel::MbgNbd
    } else {
        BetaGeoModel::BgNbd
    };
    let summary = CustomerSummary {
        repeat_purchases: days.len() as u64 - 1,
        recency: t_x,
        age,
    };
    let expected = chosen
        .expected_purchases(
            &BgNbdParams { r, alpha, a, b },
            &summary,
            f64::from(prediction_days),
        )
        .ok();
    let got = row.expected_purchases.unwrap_or(f64::NAN);
    assert!(
        expected.is_some_and(|e| (got - e).abs() <= 1e-9 * (1.0 + e.abs())),
        "{got} vs {expected:?} over {prediction_days} days"
    );
    // Activity after now (clock skew) counts as inactive for no time at all.
    let last_s = raw
        .iter()
        .filter(|e| e.purchase && persons[e.person] == row.person)
        .map(|e| e.time_ms.div_euclid(1_000))
        .max();
    assert_eq!(
        row.churned,
        last_s.is_some_and(|last| NOW_S - last >= threshold_days * DAY_S)
    );
}

/// Checks one history; returns the persons scored and the persons flagged churned.
#[expect(
    clippy::too_many_lines,
    reason = "one history end to end: random settings, the table, every row and the order against the reference"
)]
fn check_churn(
    view: &TenantView,
    raw: &[Raw],
    persons: &[Uuid],
    rng: &mut ChaCha8Rng,
) -> (usize, usize) {
    let run = RunContext {
        threads: 2,
        ..RunContext::default()
    };
    let params = [
        rng.random_range(0.1..3.0),
        rng.random_range(1.0..60.0),
        rng.random_range(0.1..3.0),
        rng.random_range(0.1..5.0),
    ];
    let fixed_days = rng.random_bool(0.5).then(|| rng.random_range(1..200i64));
    let chosen = [0, CHURN_MODEL_BG_NBD, CHURN_MODEL_MBG_NBD][rng.random_range(0..3)];
    let model = match chosen {
        0 => churn_model_number(DEFAULT_CHURN_MODEL),
        number => number,
    };
    let percentile = [0.0, 0.5, 0.9, 1.0][rng.random_range(0..4)];
    let prediction = rng.random_bool(0.5).then(|| rng.random_range(1..=366i64));
    let model_events = [
        0,
        CHURN_MODEL_EVENTS_PURCHASES,
        CHURN_MODEL_EVENTS_ANY_EVENT,
    ][rng.random_range(0..3)];
    // Half the histories have a segment rule first: a random third of the persons (and one
    // id nobody has) with its own threshold, fixed or suggested from its members' gaps.
    let segment_rule = rng.random_bool(0.5).then(|| {
        let mut members: Vec<Uuid> = persons
            .iter()
            .copied()
            .filter(|_| rng.random_bool(0.33))
            .chain(std::iter::once(Uuid::from_u128(u128::MAX)))
            .collect();
        members.sort();
        members.dedup();
        let fixed = rng.random_bool(0.5).then(|| rng.random_range(1..200i64));
        let percentile = [0.0, 0.25, 0.75][rng.random_range(0..3)];
        (members, fixed, percentile)
    });
    let mut inactivity_rules: Vec<RuleSettings> = segment_rule
        .iter()
        .map(|(_, fixed, percentile)| RuleSettings {
            segment: "tenants/t/segments/members".to_owned(),
            threshold: fixed.map(|d| (d * DAY_S, 0)),
            suggestion_percentile: *percentile,
        })
        .collect();
    // Without a default rule the implicit one (suggested at the 90th percentile) closes the
    // list: a fixed default threshold always comes with an explicit rule.
    let implicit_default = segment_rule.is_some() && fixed_days.is_none() && percentile == 0.0;
    if !implicit_default {
        inactivity_rules.push(RuleSettings {
            segment: String::new(),
            threshold: fixed_days.map(|d| (d * DAY_S, 0)),
            suggestion_percentile: percentile,
        });
    }
    let settings = ModelSettings {
        churn: ChurnSettings {
            inactivity_rules,
            qualifying: Vec::new(),
            model: chosen,
            model_events,
            bg_nbd: BgNbdSettings {
                fixed_parameters: Some(params),
                prediction_period: prediction.map(|d| (d * DAY_S, 0)),
                ..BgNbdSettings::default()
            },
        },
        ..ModelSettings::default()
    };
    let effective = settings
        .validate("")
        .unwrap_or_else(|p| panic!("valid settings: {p:?}"));
    let purchase = PurchaseEvent::Conversions(vec!["pay".to_owned(), "never_sent".to_owned()]);
    let Ok(condition) = purchase_condition(view, &purchase, &run, "purchase_event", false) else {
        panic!("the purchase event compiles");
    };
    let now_ms = NOW_S * 1_000 + 250;
    let members = RuleMembers(
        effective
            .rules
            .iter()
            .map(|rule| match (&rule.segment, &segment_rule) {
                (Some(_), Some((members, _, _))) => members.clone(),
                _ => Vec::new(),
            })
            .collect(),
    );
    let table: ChurnTable =
        churn_table(view, &condition, (&effective, &members), now_ms, None, &run);

    let bought = purchases(raw, persons, NOW_S);
    let counted = events_of(
        raw,
        persons,
        NOW_S,
        model_events != CHURN_MODEL_EVENTS_ANY_EVENT,
    );
    // The rules by hand: a member of the segment falls under its rule, everyone else under
    // the default; each suggestion reads the gaps of its own persons only.
    let member = |person: &Uuid| {
        segment_rule
            .as_ref()
            .is_some_and(|(members, _, _)| members.binary_search(person).is_ok())
    };
    let of = |segment: bool| -> ByPerson {
        bought
            .iter()
            .filter(|(person, _)| member(person) == segment)
            .map(|(person, list)| (*person, list.clone()))
            .collect()
    };
    let or_default = |p: f64| if p > 0.0 { p } else { 0.9 };
    let default_suggestion = suggested_days(&of(false), or_default(percentile));
    let default_days = fixed_days.map_or(i64::from(default_suggestion), |d| d);
    let mut expected_rules = Vec::new();
    if let Some((_, fixed, segment_percentile)) = &segment_rule {
        let suggestion = suggested_days(&of(true), or_default(*segment_percentile));
        expected_rules.push((
            Some("tenants/t/segments/members".to_owned()),
            suggestion,
            fixed.map_or(i64::from(suggestion), |d| d),
        ));
    }
    expected_rules.push((None, default_suggestion, default_days));
    let got_rules: Vec<(Option<String>, u32, i64)> = table
        .rules
        .iter()
        .map(|r| {
            (
                r.segment.clone(),
                r.suggestion.threshold.days(),
                i64::from(r.threshold.days()),
            )
        })
        .collect();
    assert_eq!(
        got_rules, expected_rules,
        "each rule's suggestion and threshold"
    );
    let mut everyone: Vec<Uuid> = raw.iter().map(|r| persons[r.person]).collect();
    everyone.sort();
    everyone.dedup();
    assert_eq!(
        table.rows.iter().map(|r| r.person).collect::<Vec<_>>(),
        everyone,
        "every person with an event has a row, by id"
    );
    for row in &table.rows {
        // Index 0 is the segment rule when there is one; the default rule comes last.
        let rule = usize::from(segment_rule.is_some() && !member(&row.person));
        assert_eq!(usize::from(row.rule), rule, "the rule of {}", row.person);
        check_row(
            row,
            (&bought, &counted),
            raw,
            persons,
            (
                model,
                params,
                prediction.map_or(30, |d| u32::try_from(d).unwrap_or(0)),
            ),
            expected_rules[rule].2,
        );
    }
    // Score order: highest first, unscored last, ties by id.
    let order: Vec<(f64, Uuid)> = table
        .by_score
        .iter()
        .map(|&i| {
            let row = &table.rows[i as usize];
            (row.score.unwrap_or(-1.0), row.person)
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    assert_eq!(order, sorted);
    (
        table.rows.iter().filter(|r| r.score.is_some()).count(),
        table.rows.iter().filter(|r| r.churned).count(),
    )
}

#[test]
fn rfm_and_churn_through_the_projection_equal_a_naive_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let (mut scored, mut churned) = (0, 0);
    for _ in 0..300 {
        let (persons, raw) = history(&mut rng);
        let events: Vec<JournalEvent> = raw.iter().map(|r| journal(r, &persons)).collect();
        let view = TenantView::build(std::iter::once(events), Vec::new(), 2)
            .unwrap_or_else(|err| panic!("the view builds: {err}"));
        let levels = rng.random_range(2..=10u8);
        let lookback = rng.random_range(1..400i64);
        check_rfm(&view, &raw, &persons, levels, lookback);
        let (s, c) = check_churn(&view, &raw, &persons, &mut rng);
        scored += s;
        churned += c;
    }
    assert!(
        scored > 1_000 && churned > 500,
        "{scored} scored, {churned} churned"
    );
}
