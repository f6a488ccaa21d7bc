//! RFM scoring, the segment map and the report totals.

use proptest::prelude::*;

use crate::churn::rfm::*;

const DAY: i64 = 86_400;

fn person(recency_days: i64, frequency: u64, monetary: f64) -> RfmValues {
    RfmValues {
        recency_secs: recency_days * DAY,
        frequency,
        monetary,
    }
}

fn scores(recency: u8, frequency: u8, monetary: u8) -> RfmScores {
    RfmScores {
        recency,
        frequency,
        monetary,
    }
}

#[test]
fn ten_distinct_persons_get_two_per_level() {
    let values: Vec<RfmValues> = (1..=10)
        .map(|k| person(k, k as u64, k as f64 * 10.0))
        .collect();
    let (thresholds, scored) = score_persons(&values, ScoreLevels::FIVE).unwrap();
    assert_eq!(thresholds.frequency, vec![2, 4, 6, 8]);
    assert_eq!(thresholds.monetary, vec![20.0, 40.0, 60.0, 80.0]);
    assert_eq!(thresholds.recency_days(), vec![2.0, 4.0, 6.0, 8.0]);
    let frequency: Vec<u8> = scored.iter().map(|s| s.frequency).collect();
    assert_eq!(frequency, vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    // Recency runs the other way: the most recent (1 day) scores 5.
    let recency: Vec<u8> = scored.iter().map(|s| s.recency).collect();
    assert_eq!(recency, vec![5, 5, 4, 4, 3, 3, 2, 2, 1, 1]);
}

#[test]
fn ties_share_a_score_and_may_leave_levels_empty() {
    // Seven one-time buyers and three repeat buyers: the single purchase count fills levels 1–3.
    let values: Vec<RfmValues> = [1, 1, 1, 1, 1, 1, 1, 2, 3, 9]
        .iter()
        .map(|&f| person(5, f, 1.0))
        .collect();
    let (thresholds, scored) = score_persons(&values, ScoreLevels::FIVE).unwrap();
    assert_eq!(thresholds.frequency, vec![1, 1, 1, 2]);
    let frequency: Vec<u8> = scored.iter().map(|s| s.frequency).collect();
    assert_eq!(frequency, vec![1, 1, 1, 1, 1, 1, 1, 4, 5, 5]);
    // Everyone equal: everyone level 1, recency score L.
    assert!(scored.iter().all(|s| s.monetary == 1 && s.recency == 5));
}

#[test]
fn single_person_and_refusals() {
    let (thresholds, scored) =
        score_persons(&[person(0, 1, 0.0)], ScoreLevels::new(3).unwrap()).unwrap();
    assert_eq!(thresholds.recency_secs, vec![0, 0]);
    assert_eq!(scored, vec![scores(3, 1, 1)]);
    assert!(score_persons(&[], ScoreLevels::FIVE).is_err());
    assert!(score_persons(&[person(-1, 1, 0.0)], ScoreLevels::FIVE).is_err());
    assert!(score_persons(&[person(1, 1, f64::NAN)], ScoreLevels::FIVE).is_err());
    assert!(
        ScoreLevels::new(1).is_err()
            && ScoreLevels::new(11).is_err()
            && ScoreLevels::new(300).is_err()
    );
    // Huge values are fine.
    let (_, scored) = score_persons(
        &[
            person(0, u64::MAX, f64::MAX),
            person(i64::MAX / DAY, 1, -f64::MAX),
        ],
        ScoreLevels::FIVE,
    )
    .unwrap();
    // Two persons on five levels: bounds at ranks 1, 1, 2, 2, so the top score is 3 (5 for recency).
    assert_eq!(scored, vec![scores(5, 3, 3), scores(3, 1, 1)]);
}

/// The naive reference of the documented bounds: the smallest value with at least i·n/L of the
/// values at or below it, found by trying every value.
fn naive_bound<T: PartialOrd + Copy>(values: &[T], i: usize, levels: usize) -> T {
    let n = values.len();
    let mut best: Option<T> = None;
    for &candidate in values {
        let at_or_below = values.iter().filter(|&&v| v <= candidate).count();
        if at_or_below * levels >= i * n && best.is_none_or(|b| candidate < b) {
            best = Some(candidate);
        }
    }
    best.unwrap()
}

/// Level = 1 + bounds strictly below, counted one by one.
fn naive_level<T: PartialOrd>(bounds: &[T], value: &T) -> u8 {
    1 + bounds.iter().filter(|b| *b < value).count() as u8
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn scores_match_naive_quantiles(
        raw in prop::collection::vec((0i64..20, 1u64..8, -3i32..40), 1..40),
        level_count in 2u32..=10,
    ) {
        let values: Vec<RfmValues> = raw.iter().map(|&(r, f, m)| person(r, f, f64::from(m) * 2.5)).collect();
        let levels = ScoreLevels::new(level_count).unwrap();
        let l = level_count as usize;
        let (thresholds, scored) = score_persons(&values, levels).unwrap();
        let recency: Vec<i64> = values.iter().map(|v| v.recency_secs).collect();
        let frequency: Vec<u64> = values.iter().map(|v| v.frequency).collect();
        let monetary: Vec<f64> = values.iter().map(|v| v.monetary).collect();
        let r_bounds: Vec<i64> = (1..l).map(|i| naive_bound(&recency, i, l)).collect();
        let f_bounds: Vec<u64> = (1..l).map(|i| naive_bound(&frequency, i, l)).collect();
        let m_bounds: Vec<f64> = (1..l).map(|i| naive_bound(&monetary, i, l)).collect();
        prop_assert_eq!(&thresholds.recency_secs, &r_bounds);
        prop_assert_eq!(&thresholds.frequency, &f_bounds);
        prop_assert_eq!(&thresholds.monetary, &m_bounds);
        for (value, score) in values.iter().zip(&scored) {
            prop_assert_eq!(score.recency, level_count as u8 + 1 - naive_level(&r_bounds, &value.recency_secs));
            prop_assert_eq!(score.frequency, naive_level(&f_bounds, &value.frequency));
            prop_assert_eq!(score.monetary, naive_level(&m_bounds, &value.monetary));
        }
        // Equal values, equal scores; larger values never score lower.
        for (x, sx) in values.iter().zip(&scored) {
            for (y, sy) in values.iter().zip(&scored) {
                if x.frequency <= y.frequency { prop_assert!(sx.frequency <= sy.frequency); }
                if x.recency_secs <= y.recency_secs { prop_assert!(sx.recency >= sy.recency); }
            }
        }
    }
}

/// The R package's ten rows in its own order, applied as it applies them: every matching row
/// overwrites the previous one (scenario from the `rfm` package's segmentation example), except
/// that Champions is applied after Loyal Customers, whose row would otherwise hide it.
fn r_package_last_match(s: RfmScores) -> &'static str {
    let rows: [(&str, [u8; 6]); 10] = [
        ("Loyal Customers", [2, 5, 3, 5, 3, 5]),
        ("Champions", [4, 5, 4, 5, 4, 5]),
        ("Potential Loyalist", [3, 5, 1, 3, 1, 3]),
        ("New Customers", [4, 5, 1, 1, 1, 1]),
        ("Promising", [3, 4, 1, 1, 1, 1]),
        ("Need Attention", [2, 3, 2, 3, 2, 3]),
        ("About To Sleep", [2, 3, 1, 2, 1, 2]),
        ("At Risk", [1, 2, 2, 5, 2, 5]),
        ("Can't Lose Them", [1, 1, 4, 5, 4, 5]),
        ("Lost", [1, 2, 1, 2, 1, 2]),
    ];
    let mut segment = "Others";
    for (name, [r0, r1, f0, f1, m0, m1]) in rows {
        if (r0..=r1).contains(&s.recency)
            && (f0..=f1).contains(&s.frequency)
            && (m0..=m1).contains(&s.monetary)
        {
            segment = name;
        }
    }
    segment
}

#[test]
fn default_map_equals_the_r_package_table_with_documented_changes() {
    for r in 1..=5 {
        for f in 1..=5 {
            for m in 1..=5 {
                let ours = classify(&DEFAULT_SEGMENT_RULES, scores(r, f, m));
                let expected = match r_package_last_match(scores(r, f, m)) {
                    "Champions" => RfmSegment::Champions,
                    "Loyal Customers" => RfmSegment::Loyal,
                    "Potential Loyalist" => RfmSegment::PotentialLoyalist,
                    "New Customers" => RfmSegment::NewCustomers,
                    "Promising" => RfmSegment::Promising,
                    "Need Attention" => RfmSegment::NeedAttention,
                    "About To Sleep" => RfmSegment::AboutToSleep,
                    "At Risk" => RfmSegment::AtRisk,
                    "Can't Lose Them" => RfmSegment::CannotLose,
                    "Lost" if r == 2 => RfmSegment::Hibernating,
                    "Lost" => RfmSegment::Lost,
                    _ => RfmSegment::Other,
                };
                assert_eq!(ours, expected, "scores {r}{f}{m}");
            }
        }
    }
}

#[test]
fn segment_scenarios_codes_and_names() {
    let cases = [
        (scores(5, 5, 5), RfmSegment::Champions),
        (scores(3, 4, 4), RfmSegment::Loyal),
        (scores(5, 2, 3), RfmSegment::PotentialLoyalist),
        (scores(5, 1, 1), RfmSegment::NewCustomers),
        (scores(4, 1, 1), RfmSegment::Promising),
        // The R table sends 311 to About To Sleep (its row comes after Promising).
        (scores(3, 1, 1), RfmSegment::AboutToSleep),
        (scores(3, 3, 3), RfmSegment::NeedAttention),
        (scores(3, 1, 2), RfmSegment::AboutToSleep),
        (scores(2, 5, 5), RfmSegment::AtRisk),
        (scores(1, 5, 5), RfmSegment::CannotLose),
        (scores(2, 1, 1), RfmSegment::Hibernating),
        (scores(1, 1, 1), RfmSegment::Lost),
        (scores(1, 1, 5), RfmSegment::Other),
    ];
    for (s, expected) in cases {
        assert_eq!(classify_default(s, ScoreLevels::FIVE), expected, "{s:?}");
    }
    // Other level counts rescale to five: on 10 levels, 10 → 5 and 1 → 1.
    let ten = ScoreLevels::new(10).unwrap();
    assert_eq!(
        classify_default(scores(10, 10, 10), ten),
        RfmSegment::Champions
    );
    assert_eq!(classify_default(scores(1, 1, 1), ten), RfmSegment::Lost);
    assert_eq!(
        classify_default(scores(1, 1, 1), ScoreLevels::new(2).unwrap()),
        RfmSegment::Lost
    );
    assert_eq!(
        classify_default(scores(2, 2, 2), ScoreLevels::new(2).unwrap()),
        RfmSegment::Champions
    );
    // On 3 levels the middle maps to 3: 1 + round(4·1/2).
    assert_eq!(
        classify_default(scores(2, 2, 2), ScoreLevels::new(3).unwrap()),
        RfmSegment::NeedAttention
    );
    assert_eq!(classify(&[], scores(5, 5, 5)), RfmSegment::Other);
    // Codes are the contract's numbers, and names exist in both languages.
    for (index, segment) in RfmSegment::ALL.iter().enumerate() {
        assert_eq!(usize::from(segment.code()), index + 1);
        assert_eq!(RfmSegment::from_code(segment.code()), Some(*segment));
        assert!(!segment.name_en().is_empty() && !segment.name_zh_cn().is_empty());
    }
    assert_eq!(RfmSegment::from_code(0), None);
    assert_eq!(RfmSegment::from_code(13), None);
    assert_eq!(RfmSegment::Champions.name_zh_cn(), "冠军客户");
    // Custom rule bounds: 0 is open.
    let levels = ScoreLevels::FIVE;
    assert_eq!(
        ScoreRange::from_bounds(0, 0, levels).unwrap(),
        ScoreRange::new(1, 5)
    );
    assert!(ScoreRange::from_bounds(4, 2, levels).is_err());
    assert!(ScoreRange::from_bounds(1, 6, levels).is_err());
}

#[test]
fn report_totals_merge_across_partitions() {
    let values: Vec<RfmValues> = (1..=20)
        .map(|k| person(k % 7, (k % 4) as u64 + 1, f64::from(k as i32)))
        .collect();
    let (thresholds, scored) = score_persons(&values, ScoreLevels::FIVE).unwrap();
    let mut whole = RfmReport::new(ScoreLevels::FIVE);
    let mut left = RfmReport::new(ScoreLevels::FIVE);
    let mut right = RfmReport::new(ScoreLevels::FIVE);
    for (i, (value, score)) in values.iter().zip(&scored).enumerate() {
        assert_eq!(thresholds.score(value), *score);
        let segment = classify_default(*score, ScoreLevels::FIVE);
        whole.add(value, *score, segment);
        if i < 7 {
            left.add(value, *score, segment)
        } else {
            right.add(value, *score, segment)
        }
    }
    left.merge(&right);
    assert_eq!(left.segments(), whole.segments());
    assert_eq!(left.cells(), whole.cells());
    assert_eq!(whole.person_count(), 20);
    let segments = whole.segments();
    assert_eq!(segments.iter().map(|s| s.person_count).sum::<u64>(), 20);
    assert!((segments.iter().map(|s| s.share).sum::<f64>() - 1.0).abs() < 1e-12);
    assert!(
        segments
            .windows(2)
            .all(|w| w[0].person_count > w[1].person_count
                || (w[0].person_count == w[1].person_count && w[0].segment < w[1].segment))
    );
    assert!((segments.iter().map(|s| s.total_monetary).sum::<f64>() - 210.0).abs() < 1e-9);
    let cells = whole.cells();
    assert_eq!(cells.iter().map(|c| c.person_count).sum::<u64>(), 20);
    assert!(cells.windows(2).all(|w| w[0].scores < w[1].scores));
    for cell in &cells {
        let count = scored.iter().filter(|s| **s == cell.scores).count() as u64;
        assert_eq!(cell.person_count, count);
    }
}

/// RFM values as (recency days, frequency, monetary), or none.
type ExpectedValues = Option<(i64, u64, f64)>;

#[test]
fn values_from_purchases() {
    let as_of = 400 * DAY;
    let lookback = 365 * DAY;
    let buy = |day: i64, value: f64| Purchase {
        time: day * DAY,
        value,
    };
    // (purchases, expected (recency days, frequency, monetary))
    let cases: Vec<(Vec<Purchase>, ExpectedValues)> = vec![
        (vec![], None),
        // Exactly at the window start is outside; after as_of is outside.
        (vec![buy(35, 10.0), buy(401, 5.0)], None),
        (vec![buy(36, 10.0)], Some((364, 1, 10.0))),
        // Order does not matter; same-second purchases both count; a refund lowers the total.
        (
            vec![
                buy(390, 20.0),
                buy(100, 5.0),
                buy(390, 20.0),
                buy(200, -7.5),
            ],
            Some((10, 4, 37.5)),
        ),
        (vec![buy(400, 1.0)], Some((0, 1, 1.0))),
    ];
    for (purchases, expected) in cases {
        let got = rfm_values(&purchases, as_of, lookback)
            .unwrap()
            .map(|v| (v.recency_secs / DAY, v.frequency, v.monetary));
        assert_eq!(got, expected, "{purchases:?}");
    }
    assert!(rfm_values(&[buy(1, 1.0)], as_of, -1).is_err());
    assert!(rfm_values(&[buy(390, f64::INFINITY)], as_of, lookback).is_err());
    // Extreme times do not overflow.
    assert_eq!(
        rfm_values(
            &[Purchase {
                time: i64::MIN,
                value: 1.0
            }],
            i64::MIN + 10,
            i64::MAX
        )
        .unwrap(),
        None
    );
}
