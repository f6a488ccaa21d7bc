//! Inactivity rules and the threshold suggestion.

use proptest::prelude::*;

use crate::churn::ChurnError;
use crate::churn::inactivity::*;

const DAY: i64 = SECONDS_PER_DAY;

fn days(n: u32) -> InactivityThreshold {
    InactivityThreshold::from_days(n).unwrap()
}

#[test]
fn status_scenarios() {
    let as_of = 1_000 * DAY;
    // (last activity, threshold days, expected status)
    let cases: &[(Option<i64>, u32, InactivityStatus)] = &[
        (None, 30, InactivityStatus::NeverActive),
        (
            Some(as_of),
            30,
            InactivityStatus::Active {
                inactive_for_secs: 0,
            },
        ),
        (
            Some(as_of - 30 * DAY + 1),
            30,
            InactivityStatus::Active {
                inactive_for_secs: 30 * DAY - 1,
            },
        ),
        // Exactly N days: the N days have passed.
        (
            Some(as_of - 30 * DAY),
            30,
            InactivityStatus::Churned {
                inactive_for_secs: 30 * DAY,
            },
        ),
        (
            Some(as_of - 400 * DAY),
            365,
            InactivityStatus::Churned {
                inactive_for_secs: 400 * DAY,
            },
        ),
        // Activity after the evaluation time (clock skew) counts as just now.
        (
            Some(as_of + DAY),
            1,
            InactivityStatus::Active {
                inactive_for_secs: 0,
            },
        ),
        // Extreme times do not overflow.
        (
            Some(i64::MIN),
            1_095,
            InactivityStatus::Churned {
                inactive_for_secs: i64::MAX,
            },
        ),
    ];
    for &(last, threshold, expected) in cases {
        assert_eq!(
            inactivity_status(last, as_of, days(threshold)),
            expected,
            "last {last:?}, threshold {threshold}"
        );
    }
    assert!(inactivity_status(Some(0), as_of, days(1)).is_churned());
    assert!(!inactivity_status(None, as_of, days(1)).is_churned());
}

#[test]
fn threshold_range_is_enforced() {
    assert!(InactivityThreshold::from_days(0).is_err());
    assert!(InactivityThreshold::from_days(1_096).is_err());
    assert_eq!(days(1_095).seconds(), 1_095 * DAY);
    assert_eq!(days(7).days(), 7);
}

#[test]
fn rules_first_match_wins_and_default_comes_last() {
    let rules = vec![
        InactivityRule {
            segment: Some("vip"),
            threshold: days(60),
        },
        InactivityRule {
            segment: Some("new"),
            threshold: days(14),
        },
        InactivityRule {
            segment: None,
            threshold: days(90),
        },
    ];
    validate_rules(&rules).unwrap();
    let pick = |member_of: &[&str]| {
        select_rule(&rules, |segment| member_of.contains(segment)).map(|rule| rule.threshold.days())
    };
    assert_eq!(pick(&["vip", "new"]), Some(60));
    assert_eq!(pick(&["new"]), Some(14));
    assert_eq!(pick(&[]), Some(90));

    let without_default = &rules[..2];
    validate_rules(without_default).unwrap();
    assert_eq!(select_rule(without_default, |_| false), None);

    let default_first = vec![
        InactivityRule {
            segment: None,
            threshold: days(90),
        },
        InactivityRule {
            segment: Some("vip"),
            threshold: days(60),
        },
    ];
    assert!(matches!(
        validate_rules(&default_first),
        Err(ChurnError::InvalidInput { index: Some(0), .. })
    ));
    assert!(validate_rules::<&str>(&[]).is_err());
}

#[test]
fn suggestion_scenarios() {
    // One person buying every 10 days, another every 40: gaps 10,10,10,10,40,40,40,40 days.
    let mut sample = PurchaseGapSample::new();
    sample
        .add_person(&[0, 10 * DAY, 20 * DAY, 30 * DAY, 40 * DAY])
        .unwrap();
    sample
        .add_person(&(0..5).map(|k| k * 40 * DAY).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(sample.len(), 8);
    let options = SuggestionOptions {
        min_gap_count: 8,
        ..SuggestionOptions::default()
    };
    // 90th percentile: position 6.3, between two 40-day gaps.
    let suggestion = sample.suggest(&options).unwrap();
    assert_eq!(suggestion.threshold.days(), 40);
    assert_eq!(suggestion.gap_sample_size, 8);
    // Median: position 3.5, halfway between 10 and 40 days → 25 days.
    let median = sample
        .suggest(&SuggestionOptions {
            percentile: 0.5,
            ..options
        })
        .unwrap();
    assert_eq!(median.percentile_gap_secs, Some(25.0 * DAY as f64));
    assert_eq!(median.threshold.days(), 25);
    // One gap short of the minimum: the fallback.
    let strict = sample
        .suggest(&SuggestionOptions {
            min_gap_count: 9,
            ..options
        })
        .unwrap();
    assert_eq!(
        (strict.threshold.days(), strict.percentile_gap_secs),
        (90, None)
    );
    // A gap of one second more than a day rounds up to two days.
    let mut short = PurchaseGapSample::new();
    short.add_person(&[0, DAY + 1]).unwrap();
    let options = SuggestionOptions {
        min_gap_count: 1,
        ..SuggestionOptions::default()
    };
    assert_eq!(short.suggest(&options).unwrap().threshold.days(), 2);
}

#[test]
fn suggestion_edges() {
    let options = SuggestionOptions::default();
    // No gaps at all, and too few gaps: the documented fallback.
    let mut empty = PurchaseGapSample::new();
    let fallback = empty.suggest(&options).unwrap();
    assert_eq!(
        (
            fallback.threshold.days(),
            fallback.gap_sample_size,
            fallback.percentile_gap_secs
        ),
        (90, 0, None)
    );
    let mut few = PurchaseGapSample::new();
    few.add_person(&[0, DAY, 2 * DAY]).unwrap();
    assert_eq!(few.suggest(&options).unwrap().percentile_gap_secs, None);
    // Equal timestamps are one purchase: no zero gaps.
    let mut duplicates = PurchaseGapSample::new();
    duplicates.add_person(&[5, 5, 5]).unwrap();
    assert!(duplicates.is_empty());
    // Tiny gaps clamp to one day, huge ones to 1,095 days.
    let one = SuggestionOptions {
        min_gap_count: 1,
        ..options
    };
    let mut tiny = PurchaseGapSample::new();
    tiny.add_person(&[0, 1]).unwrap();
    assert_eq!(tiny.suggest(&one).unwrap().threshold.days(), 1);
    let mut huge = PurchaseGapSample::new();
    huge.add_person(&[i64::MIN / 2, i64::MAX / 2]).unwrap();
    assert_eq!(
        huge.suggest(&one).unwrap().threshold.days(),
        MAX_THRESHOLD_DAYS
    );
    // Refusals.
    assert!(PurchaseGapSample::new().add_person(&[10, 5]).is_err());
    assert!(
        PurchaseGapSample::new()
            .add_person(&[i64::MIN, i64::MAX])
            .is_err()
    );
    assert!(
        few.suggest(&SuggestionOptions {
            percentile: 1.5,
            ..options
        })
        .is_err()
    );
    assert!(
        few.suggest(&SuggestionOptions {
            percentile: f64::NAN,
            ..options
        })
        .is_err()
    );
    assert!(
        few.suggest(&SuggestionOptions {
            fallback_days: 0,
            ..options
        })
        .is_err()
    );
}

/// The naive reference: sort every gap, interpolate at (n − 1)·p, round up to days.
fn naive_suggestion(people: &[Vec<i64>], percentile: f64) -> Option<(u32, f64)> {
    let mut gaps = Vec::new();
    for times in people {
        for i in 1..times.len() {
            if times[i] != times[i - 1] {
                gaps.push(times[i] - times[i - 1]);
            }
        }
    }
    if gaps.is_empty() {
        return None;
    }
    gaps.sort();
    let position = (gaps.len() - 1) as f64 * percentile;
    let low = position.floor() as usize;
    let high = (low + 1).min(gaps.len() - 1);
    let value = gaps[low] as f64 + (position - low as f64) * (gaps[high] - gaps[low]) as f64;
    let days = ((value / DAY as f64).ceil()).clamp(1.0, 1_095.0) as u32;
    Some((days, value))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn suggestion_matches_naive_sort(
        people in prop::collection::vec(prop::collection::vec(0i64..400 * DAY, 0..8), 0..12),
        percentile in 0.0f64..=1.0,
        split in 0usize..12,
    ) {
        let people: Vec<Vec<i64>> = people.into_iter().map(|mut times| { times.sort(); times }).collect();
        // Two partitions merged must equal one.
        let (left, right) = people.split_at(split.min(people.len()));
        let mut sample = PurchaseGapSample::new();
        let mut other = PurchaseGapSample::new();
        left.iter().for_each(|times| sample.add_person(times).unwrap());
        right.iter().for_each(|times| other.add_person(times).unwrap());
        sample.merge(other);
        let options = SuggestionOptions { percentile, min_gap_count: 1, fallback_days: 77 };
        let suggestion = sample.suggest(&options).unwrap();
        match naive_suggestion(&people, percentile) {
            None => prop_assert_eq!(suggestion.threshold.days(), 77),
            Some((days, value)) => {
                prop_assert_eq!(suggestion.threshold.days(), days);
                let got = suggestion.percentile_gap_secs.unwrap();
                prop_assert!((got - value).abs() <= 1e-6 * value.abs().max(1.0), "{} vs {}", got, value);
            }
        }
    }
}
