//! Shapley tests: both games against a brute force over every coalition, scenarios, and the
//! seeded sampling estimate against the exact values.
#![allow(clippy::unwrap_used, reason = "tests")]

use proptest::prelude::*;

use super::shapley::conversion_rate_game;
use super::tests_markov::{close, table};
use super::{PathTable, PathTableBuilder, ShapleyGame, ShapleyOptions, shapley_attribution};

/// v(S) straight from the definition, scanning every path.
fn naive_game(paths: &PathTable, game: ShapleyGame, coalition: u32) -> f64 {
    let inside = |r: &super::PathRow<'_>| r.channels.iter().all(|&c| coalition & (1 << c) != 0);
    let (mut conversions, mut journeys) = (0.0, 0.0);
    for row in paths.rows().filter(|r| inside(r)) {
        conversions += row.conversions;
        journeys += row.conversions + row.nulls;
    }
    match game {
        ShapleyGame::Conversions => conversions,
        ShapleyGame::ConversionRate if journeys > 0.0 => conversions / journeys,
        ShapleyGame::ConversionRate => 0.0,
        // Not a game over the table's coalitions: its own checks are in `tests_uplift`.
        ShapleyGame::Uplift => f64::NAN,
    }
}

fn factorial(n: u32) -> f64 {
    (1..=n).map(f64::from).product()
}

/// φ_i = Σ over coalitions S without i of |S|!(n−|S|−1)!/n! · (v(S ∪ {i}) − v(S)).
fn brute_force(paths: &PathTable, game: ShapleyGame) -> Vec<f64> {
    let n = paths.channel_count() as u32;
    (0..n)
        .map(|i| {
            (0..1u32 << n)
                .filter(|s| s & (1 << i) == 0)
                .map(|s| {
                    let size = s.count_ones();
                    let weight = factorial(size) * factorial(n - size - 1) / factorial(n);
                    weight * (naive_game(paths, game, s | 1 << i) - naive_game(paths, game, s))
                })
                .sum()
        })
        .collect()
}

fn options(game: ShapleyGame) -> ShapleyOptions {
    ShapleyOptions {
        game,
        ..ShapleyOptions::default()
    }
}

#[test]
fn conversions_game_splits_each_conversion_over_distinct_channels() {
    // a > b > a converting twice: a and b get one each; b alone once.
    let paths = table(&[
        ("a > b > a", 2.0, 30.0, 1.0),
        ("b", 1.0, 6.0, 0.0),
        ("a", 0.0, 0.0, 4.0),
    ]);
    let result = shapley_attribution(&paths, options(ShapleyGame::Conversions)).unwrap();
    assert_eq!(result.values, [1.0, 2.0]);
    assert_eq!(result.credits.value, [15.0, 21.0]);
    assert!(!result.approximate);
    for (got, want) in result
        .values
        .iter()
        .zip(brute_force(&paths, ShapleyGame::Conversions))
    {
        assert!(close(*got, want, 1e-12));
    }
}

#[test]
fn conversion_rate_game_hand_checked() {
    // a alone: 1 of 4 converts; b alone: 1 of 2; a with b: 2 of 2.
    // v({a}) = 1/4, v({b}) = 1/2, v({a,b}) = 4/8 = 1/2.
    // φ_a = ½(1/4 − 0) + ½(1/2 − 1/2) = 1/8; φ_b = ½(1/2) + ½(1/2 − 1/4) = 3/8.
    let paths = table(&[
        ("a", 1.0, 10.0, 3.0),
        ("b", 1.0, 10.0, 1.0),
        ("a > b", 2.0, 20.0, 0.0),
    ]);
    let result = shapley_attribution(&paths, options(ShapleyGame::ConversionRate)).unwrap();
    assert!(
        close(result.values[0], 0.125, 1e-15) && close(result.values[1], 0.375, 1e-15),
        "{:?}",
        result.values
    );
    // Scaled to the 4 conversions and 40 of value: 1 and 3, 10 and 30.
    assert!(
        close(result.credits.conversions[0], 1.0, 1e-15)
            && close(result.credits.conversions[1], 3.0, 1e-15)
    );
    assert!(close(result.credits.value[1], 30.0, 1e-15));
}

#[test]
fn no_journeys_or_no_conversions_give_zeros() {
    for rows in [vec![], vec![("a > b", 0.0, 0.0, 3.0)]] {
        let paths = table(&rows);
        for game in [ShapleyGame::Conversions, ShapleyGame::ConversionRate] {
            let result = shapley_attribution(&paths, options(game)).unwrap();
            assert!(
                result
                    .credits
                    .conversions
                    .iter()
                    .chain(&result.credits.value)
                    .all(|&c| c == 0.0),
                "{result:?}"
            );
        }
    }
}

#[test]
fn twenty_channels_are_valued_exactly_as_the_definition_gives() {
    // The largest game computed exactly: 20 active channels, 2^20 coalitions. Each path's
    // channels come from a fixed linear congruential sequence, so the game is irregular but
    // the same every run; every channel is on at least one path.
    let mut builder = PathTableBuilder::with_channels((0..20).map(|c| format!("ch{c}")).collect());
    let mut state = 0x2545_f491_u32;
    let mut next = |below: u32| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 8) % below
    };
    for row in 0..60u32 {
        let mut path = vec![row % 20];
        for _ in 0..next(4) {
            path.push(next(20));
        }
        let (conversions, nulls) = (f64::from(next(4)), f64::from(1 + next(6)));
        builder
            .add_path(row as usize, &path, conversions, conversions * 10.0, nulls)
            .unwrap();
    }
    let paths = builder.finish();
    assert_eq!(paths.channel_count(), 20);
    let result = shapley_attribution(&paths, options(ShapleyGame::ConversionRate)).unwrap();
    assert!(!result.approximate && result.samples == 0, "{result:?}");

    // The reference: v(S) by scanning every path for every coalition, then the weighted
    // marginal contributions of the definition.
    let rows: Vec<(u32, f64, f64)> = paths
        .rows()
        .map(|r| {
            let mask = r.channels.iter().fold(0u32, |m, &c| m | 1 << c);
            (mask, r.conversions, r.conversions + r.nulls)
        })
        .collect();
    let game: Vec<f64> = (0..1u32 << 20)
        .map(|coalition| {
            let (mut conversions, mut journeys) = (0.0, 0.0);
            for &(mask, c, j) in &rows {
                if mask & !coalition == 0 {
                    conversions += c;
                    journeys += j;
                }
            }
            if journeys > 0.0 {
                conversions / journeys
            } else {
                0.0
            }
        })
        .collect();
    let weights: Vec<f64> = (0..20)
        .map(|size| factorial(size) * factorial(19 - size) / factorial(20))
        .collect();
    for (i, got) in result.values.iter().enumerate() {
        let want: f64 = (0..1u32 << 20)
            .filter(|s| s & (1 << i) == 0)
            .map(|s| {
                weights[s.count_ones() as usize] * (game[(s | 1 << i) as usize] - game[s as usize])
            })
            .sum();
        assert!(close(*got, want, 1e-9), "channel {i}: {got} vs {want}");
    }
}

#[test]
fn past_the_exact_limit_sampling_is_flagged_deterministic_and_close() {
    let mut builder = PathTableBuilder::with_channels((0..24).map(|c| format!("ch{c}")).collect());
    for c in 0..24u32 {
        let path = [c, (c + 1) % 24, (c * 7) % 24];
        builder
            .add_path(
                c as usize,
                &path,
                f64::from(c % 3),
                f64::from(c % 3),
                f64::from(1 + c % 4),
            )
            .unwrap();
    }
    let paths = builder.finish();
    let opts = ShapleyOptions {
        game: ShapleyGame::ConversionRate,
        samples: 200,
        seed: 42,
    };
    let first = shapley_attribution(&paths, opts).unwrap();
    assert!(first.approximate && first.samples == 200);
    assert_eq!(first, shapley_attribution(&paths, opts).unwrap());
    // Every sampled order telescopes to v(N): the values still sum to the overall rate.
    let rate = paths.total_conversions() / (paths.total_conversions() + paths.total_nulls());
    assert!(close(first.values.iter().sum(), rate, 1e-12));

    // On a small game the estimate approaches the exact values.
    let small = table(&[
        ("a > b", 3.0, 0.0, 1.0),
        ("b > c", 1.0, 0.0, 3.0),
        ("a", 1.0, 0.0, 1.0),
        ("c > d", 2.0, 0.0, 2.0),
    ]);
    let exact = shapley_attribution(&small, options(ShapleyGame::ConversionRate)).unwrap();
    let sampled = conversion_rate_game(
        &small,
        ShapleyOptions {
            samples: 20_000,
            seed: 3,
            ..opts
        },
        0,
    );
    assert!(sampled.approximate);
    for (s, e) in sampled.values.iter().zip(&exact.values) {
        assert!(
            (s - e).abs() < 0.01,
            "{:?} vs {:?}",
            sampled.values,
            exact.values
        );
    }
    assert!(shapley_attribution(&small, ShapleyOptions { samples: 0, ..opts }).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn both_games_match_brute_force(
        rows in prop::collection::vec((prop::collection::vec(0u32..6, 1..6), 0u32..4, 0u32..4), 0..10),
        channels in 1u32..=6,
    ) {
        let mut builder = PathTableBuilder::with_channels((0..channels).map(|c| format!("ch{c}")).collect());
        for (i, (path, conv, nulls)) in rows.iter().enumerate() {
            let path: Vec<u32> = path.iter().map(|c| c % channels).collect();
            builder.add_path(i, &path, f64::from(*conv), f64::from(*conv) * 3.0, f64::from(*nulls)).unwrap();
        }
        let paths = builder.finish();
        for game in [ShapleyGame::Conversions, ShapleyGame::ConversionRate] {
            let fast = shapley_attribution(&paths, options(game)).unwrap();
            let slow = brute_force(&paths, game);
            for (f, s) in fast.values.iter().zip(&slow) {
                prop_assert!(close(*f, *s, 1e-9), "{:?}: {:?} vs {:?}", game, fast.values, slow);
            }
            prop_assert!(fast.credits.conversions.iter().all(|c| c.is_finite()));
            let total = paths.total_conversions();
            if total > 0.0 && fast.values.iter().sum::<f64>() != 0.0 {
                prop_assert!(close(fast.credits.total_conversions(), total, 1e-9));
            }
        }
    }
}
