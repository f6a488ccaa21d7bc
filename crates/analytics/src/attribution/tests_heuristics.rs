//! Heuristic and time-decay tests: scenarios, and the fast credits against a naive reference
//! that expands every path into explicit per-touch weights.
#![allow(clippy::unwrap_used, reason = "tests")]

use proptest::prelude::*;

use super::tests_markov::table;
use super::{
    AttributionError, ChannelCredits, HeuristicModel, Journey, PathTable, PathTableBuilder,
    channel_roi, heuristic_credits, time_decay_credits,
};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn close(a: f64, b: f64) -> bool {
    super::tests_markov::close(a, b, 1e-9)
}

fn credits_close(got: &ChannelCredits, want: &[f64]) -> bool {
    got.conversions.len() == want.len()
        && got.conversions.iter().zip(want).all(|(g, w)| close(*g, *w))
}

/// Per-touch weights written out position by position, independent of the fast code.
fn naive_weights(path: &[u32], model: HeuristicModel) -> Vec<(u32, f64)> {
    let n = path.len();
    let mut weights = Vec::new();
    for (i, &c) in path.iter().enumerate() {
        let w = match model {
            HeuristicModel::FirstTouch => f64::from(u8::from(i == 0)),
            HeuristicModel::LastTouch => f64::from(u8::from(i == n - 1)),
            HeuristicModel::Linear {
                distinct_channels: false,
            } => 1.0 / n as f64,
            HeuristicModel::Linear {
                distinct_channels: true,
            } => {
                let mut distinct = path.to_vec();
                distinct.sort_unstable();
                distinct.dedup();
                // Only the first occurrence carries the channel's share.
                if path[..i].contains(&c) {
                    0.0
                } else {
                    1.0 / distinct.len() as f64
                }
            }
            HeuristicModel::PositionBased {
                first_share,
                last_share,
            } => {
                if n == 1 {
                    1.0
                } else if n == 2 {
                    let both = first_share + last_share;
                    if both == 0.0 {
                        0.5
                    } else if i == 0 {
                        first_share / both
                    } else {
                        last_share / both
                    }
                } else if i == 0 {
                    first_share
                } else if i == n - 1 {
                    last_share
                } else {
                    (1.0 - first_share - last_share) / (n - 2) as f64
                }
            }
        };
        weights.push((c, w));
    }
    weights
}

fn naive_credits(paths: &PathTable, model: HeuristicModel) -> ChannelCredits {
    let mut credits = ChannelCredits::zeros(paths.channel_count());
    for row in paths.rows() {
        for (c, w) in naive_weights(row.channels, model) {
            credits.conversions[c as usize] += w * row.conversions;
            credits.value[c as usize] += w * row.value;
        }
    }
    credits
}

#[test]
fn scenarios_per_model() {
    let one_journey = |path: &str| table(&[(path, 1.0, 10.0, 3.0)]);
    // (path, model, expected conversions per channel code in first-seen order)
    let cases: Vec<(&str, HeuristicModel, Vec<f64>)> = vec![
        (
            "a > b > c > d",
            HeuristicModel::FirstTouch,
            vec![1.0, 0.0, 0.0, 0.0],
        ),
        (
            "a > b > c > d",
            HeuristicModel::LastTouch,
            vec![0.0, 0.0, 0.0, 1.0],
        ),
        (
            "a > b > c > d",
            HeuristicModel::POSITION_BASED_DEFAULT,
            vec![0.4, 0.1, 0.1, 0.4],
        ),
        (
            "a > b > c",
            HeuristicModel::POSITION_BASED_DEFAULT,
            vec![0.4, 0.2, 0.4],
        ),
        (
            "a > b",
            HeuristicModel::POSITION_BASED_DEFAULT,
            vec![0.5, 0.5],
        ),
        ("a", HeuristicModel::POSITION_BASED_DEFAULT, vec![1.0]),
        (
            "a > b",
            HeuristicModel::PositionBased {
                first_share: 0.3,
                last_share: 0.1,
            },
            vec![0.75, 0.25],
        ),
        (
            "a > b > a",
            HeuristicModel::Linear {
                distinct_channels: false,
            },
            vec![2.0 / 3.0, 1.0 / 3.0],
        ),
        (
            "a > b > a",
            HeuristicModel::Linear {
                distinct_channels: true,
            },
            vec![0.5, 0.5],
        ),
        (
            "a > b > a",
            HeuristicModel::POSITION_BASED_DEFAULT,
            vec![0.8, 0.2],
        ),
    ];
    for (path, model, want) in cases {
        let credits = heuristic_credits(&one_journey(path), model).unwrap();
        assert!(
            credits_close(&credits, &want),
            "{path} {model:?}: {credits:?}"
        );
        let values: Vec<f64> = want.iter().map(|w| w * 10.0).collect();
        assert!(
            credits
                .value
                .iter()
                .zip(&values)
                .all(|(g, w)| close(*g, *w)),
            "{path} {model:?}"
        );
    }
}

#[test]
fn non_converting_paths_earn_nothing() {
    let paths = table(&[("a > b", 0.0, 0.0, 9.0), ("b", 2.0, 4.0, 0.0)]);
    for model in [
        HeuristicModel::FirstTouch,
        HeuristicModel::Linear {
            distinct_channels: false,
        },
    ] {
        let credits = heuristic_credits(&paths, model).unwrap();
        assert!(credits_close(&credits, &[0.0, 2.0]), "{credits:?}");
    }
}

#[test]
fn position_shares_are_validated() {
    let paths = table(&[("a", 1.0, 0.0, 0.0)]);
    let cases = [
        (-0.1, 0.4, "position_first_share"),
        (0.4, 1.5, "position_last_share"),
        (0.6, 0.6, "position_last_share"),
    ];
    for (first_share, last_share, field) in cases {
        let error = heuristic_credits(
            &paths,
            HeuristicModel::PositionBased {
                first_share,
                last_share,
            },
        )
        .unwrap_err();
        assert!(
            matches!(error, AttributionError::InvalidParameter { field: f, .. } if f == field),
            "{error}"
        );
    }
}

fn journey<'a>(channels: &'a [u32], times: &'a [i64], end_ms: i64, value: f64) -> Journey<'a> {
    Journey {
        channels,
        touch_times_ms: times,
        end_ms,
        converted: true,
        value,
    }
}

#[test]
fn time_decay_halves_per_half_life() {
    // Touches 7 days and 0 days before the conversion: weights 1/2 and 1, so 1/3 and 2/3.
    let end = 100 * DAY_MS;
    let times = [end - 7 * DAY_MS, end];
    let journeys = [journey(&[0, 1], &times, end, 30.0)];
    let credits = time_decay_credits(&journeys, 2, super::DEFAULT_HALF_LIFE_MS).unwrap();
    assert!(
        credits_close(&credits, &[1.0 / 3.0, 2.0 / 3.0]),
        "{credits:?}"
    );
    assert!(close(credits.value[0], 10.0) && close(credits.value[1], 20.0));
    // Continuous time: half a half-life is a factor √2.
    let times = [end - 84 * 3600 * 1000, end - 1];
    let journeys = [journey(&[0, 1], &times, end, 0.0)];
    let credits = time_decay_credits(&journeys, 2, super::DEFAULT_HALF_LIFE_MS).unwrap();
    let ratio = credits.conversions[0] / credits.conversions[1];
    assert!((ratio - 0.5f64.sqrt()).abs() < 1e-6, "{ratio}");
}

#[test]
fn time_decay_edge_cases() {
    // Equal timestamps split evenly; a decade at a one-minute half-life is no NaN.
    let journeys = [
        journey(&[0, 1], &[5, 5], 9, 0.0),
        journey(&[0, 1], &[0, 10 * 365 * DAY_MS], 10 * 365 * DAY_MS, 0.0),
        Journey {
            channels: &[0],
            touch_times_ms: &[0],
            end_ms: 1,
            converted: false,
            value: 5.0,
        },
        journey(&[], &[], 3, 7.0),
    ];
    let credits = time_decay_credits(&journeys, 2, super::MIN_HALF_LIFE_MS).unwrap();
    assert!(credits_close(&credits, &[0.5, 1.5]), "{credits:?}");
    assert!(credits.value.iter().all(|v| v.is_finite()));
}

#[test]
fn journeys_are_validated_naming_the_field() {
    let cases: Vec<(Journey<'_>, &str)> = vec![
        (journey(&[0], &[], 5, 1.0), "touch_times_ms"),
        (journey(&[7], &[1], 5, 1.0), "channels"),
        (journey(&[0, 1], &[3, 1], 5, 1.0), "touch_times_ms"),
        (journey(&[0], &[9], 5, 1.0), "end_ms"),
        (journey(&[0], &[1], 5, f64::NAN), "value"),
    ];
    for (j, field) in cases {
        let error = time_decay_credits(&[j], 2, super::DEFAULT_HALF_LIFE_MS).unwrap_err();
        assert!(
            matches!(error, AttributionError::InvalidJourney { journey: 0, field: f, .. } if f == field),
            "{error}"
        );
        let mut builder = PathTableBuilder::with_channels(vec!["a".into(), "b".into()]);
        assert!(builder.add_journey(0, &j).is_err());
    }
    let error = time_decay_credits(&[], 2, 59_999).unwrap_err();
    assert!(error.to_string().contains("time_decay_half_life"));
}

#[test]
fn journeys_aggregate_into_paths_and_partitions_merge() {
    let names = || vec!["a".to_owned(), "b".to_owned()];
    let (mut left, mut right) = (
        PathTableBuilder::with_channels(names()),
        PathTableBuilder::with_channels(names()),
    );
    left.add_journey(0, &journey(&[0, 1], &[1, 2], 3, 5.0))
        .unwrap();
    right
        .add_journey(0, &journey(&[0, 1], &[1, 2], 3, 7.0))
        .unwrap();
    right
        .add_journey(
            1,
            &Journey {
                channels: &[0, 1],
                touch_times_ms: &[1, 2],
                end_ms: 3,
                converted: false,
                value: 9.0,
            },
        )
        .unwrap();
    right.add_journey(2, &journey(&[], &[], 3, 4.0)).unwrap();
    left.merge(right);
    let paths = left.finish();
    assert_eq!(paths.len(), 1);
    let row = paths.row(0);
    assert_eq!(
        (row.channels, row.conversions, row.value, row.nulls),
        (&[0u32, 1][..], 2.0, 12.0, 1.0)
    );
    assert_eq!(
        (paths.direct_conversions(), paths.direct_value()),
        (1.0, 4.0)
    );
}

#[test]
fn journey_partitions_aggregate_like_one_sequence() {
    let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let channels: Vec<Vec<u32>> = (0..40u32)
        .map(|i| (0..1 + i % 4).map(|k| (i * 7 + k) % 3).collect())
        .collect();
    let times: Vec<Vec<i64>> = channels
        .iter()
        .map(|c| (0..c.len() as i64).collect())
        .collect();
    let journeys: Vec<Journey<'_>> = channels
        .iter()
        .zip(&times)
        .enumerate()
        .map(|(i, (c, t))| Journey {
            channels: c,
            touch_times_ms: t,
            end_ms: 10,
            converted: i % 3 == 0,
            value: i as f64,
        })
        .collect();
    let mut sequential = PathTableBuilder::with_channels(names.clone());
    for (i, journey) in journeys.iter().enumerate() {
        sequential.add_journey(i, journey).unwrap();
    }
    let (left, right) = journeys.split_at(17);
    let partitioned = PathTable::from_journey_partitions(&names, &[left, right]).unwrap();
    assert_eq!(partitioned, sequential.finish());
    // An invalid journey is named by its index across partitions.
    let bad = [Journey {
        channels: &[9],
        touch_times_ms: &[0],
        end_ms: 1,
        converted: true,
        value: 1.0,
    }];
    let error = PathTable::from_journey_partitions(&names, &[left, &bad]).unwrap_err();
    assert!(
        matches!(
            error,
            AttributionError::InvalidJourney {
                journey: 17,
                field: "channels",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn roi_per_channel() {
    let credits = ChannelCredits {
        conversions: vec![4.0, 0.0, 2.0],
        value: vec![100.0, 0.0, 10.0],
    };
    let roi = channel_roi(&credits, &[50.0, 10.0]).unwrap();
    assert_eq!(roi[0].cost_per_conversion, Some(12.5));
    assert_eq!(roi[0].return_on_spend, Some(2.0));
    assert_eq!(
        (roi[1].cost_per_conversion, roi[1].return_on_spend),
        (None, Some(0.0))
    );
    assert_eq!(
        (
            roi[2].cost,
            roi[2].cost_per_conversion,
            roi[2].return_on_spend
        ),
        (0.0, None, None)
    );
    assert!(channel_roi(&credits, &[-1.0]).is_err());
    assert!(channel_roi(&credits, &[f64::INFINITY]).is_err());
}

fn models() -> impl Strategy<Value = HeuristicModel> {
    prop_oneof![
        Just(HeuristicModel::FirstTouch),
        Just(HeuristicModel::LastTouch),
        any::<bool>().prop_map(|distinct_channels| HeuristicModel::Linear { distinct_channels }),
        (0.0..0.5f64, 0.0..0.5f64).prop_map(|(first_share, last_share)| {
            HeuristicModel::PositionBased {
                first_share,
                last_share,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn heuristics_match_naive_reference(
        rows in prop::collection::vec((prop::collection::vec(0u32..5, 1..8), 0u32..5, 0u32..5, 0u32..100), 0..10),
        model in models(),
    ) {
        let mut builder = PathTableBuilder::with_channels((0..5).map(|c| format!("ch{c}")).collect());
        for (i, (path, conv, nulls, value)) in rows.iter().enumerate() {
            let value = if *conv > 0 { f64::from(*value) } else { 0.0 };
            builder.add_path(i, path, f64::from(*conv), value, f64::from(*nulls)).unwrap();
        }
        let paths = builder.finish();
        let fast = heuristic_credits(&paths, model).unwrap();
        let slow = naive_credits(&paths, model);
        for c in 0..5 {
            prop_assert!(close(fast.conversions[c], slow.conversions[c]), "{:?} vs {:?}", fast, slow);
            prop_assert!(close(fast.value[c], slow.value[c]));
        }
        prop_assert!(close(fast.total_conversions(), paths.total_conversions()));
    }

    #[test]
    fn time_decay_matches_direct_formula(
        touches in prop::collection::vec((0u32..4, 0i64..(60 * DAY_MS)), 1..8),
        half_life in super::MIN_HALF_LIFE_MS..(30 * DAY_MS),
    ) {
        let mut touches = touches;
        touches.sort_by_key(|t| t.1);
        let channels: Vec<u32> = touches.iter().map(|t| t.0).collect();
        let times: Vec<i64> = touches.iter().map(|t| t.1).collect();
        let end = 61 * DAY_MS;
        let fast = time_decay_credits(&[journey(&channels, &times, end, 2.0)], 4, half_life).unwrap();
        // Direct formula from the conversion time, normalised.
        let weights: Vec<f64> = times.iter().map(|&t| 2f64.powf(-((end - t) as f64) / half_life as f64)).collect();
        let total: f64 = weights.iter().sum();
        let mut want = [0.0; 4];
        for (c, w) in channels.iter().zip(&weights) {
            want[*c as usize] += w / total;
        }
        if total > 1e-250 {
            for c in 0..4 {
                prop_assert!((fast.conversions[c] - want[c]).abs() < 1e-9, "{:?} vs {:?}", fast.conversions, want);
            }
        }
        prop_assert!(close(fast.total_conversions(), 1.0));
    }
}
