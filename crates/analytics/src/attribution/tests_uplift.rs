//! The uplift game: the per-set Shapley values against the average over every order of the
//! channels, the fit against a known model it never saw (journeys drawn from it here, with
//! their own generator), and inputs with nothing to fit.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use super::shapley::channel_sets;
use super::tests_markov::table;
use super::uplift::{fit, uplift_shapley};
use super::{PathTableBuilder, ShapleyGame, ShapleyOptions, shapley_attribution};

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Every order of `0..k`.
fn orders(k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for rest in orders(k - 1) {
        for at in 0..=rest.len() {
            let mut order = rest.clone();
            order.insert(at, k - 1);
            out.push(order);
        }
    }
    out
}

/// The Shapley value by its definition: each channel's marginal contribution averaged over
/// every order in which the channels join.
fn by_every_order(a: f64, b: &[f64]) -> Vec<f64> {
    let all = orders(b.len());
    let mut phi = vec![0.0; b.len()];
    for order in &all {
        let mut sum = 0.0;
        for &i in order {
            phi[i] += sigmoid(a + sum + b[i]) - sigmoid(a + sum);
            sum += b[i];
        }
    }
    phi.iter().map(|v| v / all.len() as f64).collect()
}

#[test]
fn a_sets_values_equal_the_average_over_every_order_of_its_channels() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for case in 0..2_000 {
        let k = rng.random_range(1..=6);
        let a = rng.random_range(-6.0..2.0);
        let b: Vec<f64> = (0..k).map(|_| rng.random_range(-2.0..3.0)).collect();
        let fast = uplift_shapley(a, &b);
        let naive = by_every_order(a, &b);
        for (x, y) in fast.iter().zip(&naive) {
            assert!((x - y).abs() < 1e-12, "case {case}: {fast:?} vs {naive:?}");
        }
        // Efficiency: the values add up to what all the channels together add.
        let total: f64 = fast.iter().sum();
        let lift = sigmoid(a + b.iter().sum::<f64>()) - sigmoid(a);
        assert!((total - lift).abs() < 1e-12, "case {case}");
    }
}

/// A known model: intercept and one coefficient per channel.
const INTERCEPT: f64 = -2.5;
const BETAS: [f64; 5] = [0.2, 1.1, -0.4, 0.7, 0.0];
const NAMES: [&str; 5] = ["ads", "pos", "crm", "mini", "web"];

/// 200,000 journeys drawn from the known model: each a random non-empty set of channels in a
/// random order, converting with the model's probability.
fn drawn_journeys(seed: u64) -> super::PathTable {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut paths: BTreeMap<Vec<usize>, (f64, f64)> = BTreeMap::new();
    for _ in 0..200_000 {
        let mut channels: Vec<usize> = (0..BETAS.len()).filter(|_| rng.random_bool(0.35)).collect();
        if channels.is_empty() {
            channels.push(rng.random_range(0..BETAS.len()));
        }
        for i in (1..channels.len()).rev() {
            channels.swap(i, rng.random_range(0..=i));
        }
        let logit = INTERCEPT + channels.iter().map(|&c| BETAS[c]).sum::<f64>();
        let entry = paths.entry(channels).or_default();
        if rng.random_bool(sigmoid(logit)) {
            entry.0 += 1.0;
        } else {
            entry.1 += 1.0;
        }
    }
    let mut builder = PathTableBuilder::new();
    for (i, (channels, (conversions, nulls))) in paths.iter().enumerate() {
        let names: Vec<&str> = channels.iter().map(|&c| NAMES[c]).collect();
        builder
            .add_named_path(i, &names, *conversions, 0.0, *nulls)
            .unwrap();
    }
    builder.finish()
}

#[test]
fn the_fit_recovers_a_model_it_never_saw_and_credits_its_lift() {
    let table = drawn_journeys(11);
    let sets = channel_sets(&table);
    let theta = fit(sets.active.len(), &sets.sets);
    assert!(
        (theta[0] - INTERCEPT).abs() < 0.05,
        "intercept {}",
        theta[0]
    );
    let mut expected = vec![0.0; BETAS.len()];
    for (local, &code) in sets.active.iter().enumerate() {
        let truth = NAMES
            .iter()
            .position(|n| *n == table.channel_names()[code as usize])
            .unwrap();
        let got = theta[local + 1];
        assert!((got - BETAS[truth]).abs() < 0.05, "{}: {got}", NAMES[truth]);
    }
    // The true lift of each channel over the same journeys, by the definition.
    for (set, _, journeys) in &sets.sets {
        let truth: Vec<usize> = set
            .iter()
            .map(|&local| {
                let name = &table.channel_names()[sets.active[local as usize] as usize];
                NAMES.iter().position(|n| n == name).unwrap()
            })
            .collect();
        let b: Vec<f64> = truth.iter().map(|&c| BETAS[c]).collect();
        for (&c, phi) in truth.iter().zip(by_every_order(INTERCEPT, &b)) {
            expected[c] += journeys * phi;
        }
    }
    let result = shapley_attribution(
        &table,
        ShapleyOptions {
            game: ShapleyGame::Uplift,
            ..ShapleyOptions::default()
        },
    )
    .unwrap();
    assert!(!result.approximate);
    let total: f64 = expected.iter().sum();
    let got_total: f64 = result.values.iter().sum();
    for (c, name) in NAMES.iter().enumerate() {
        let code = table
            .channel_names()
            .iter()
            .position(|n| n == name)
            .unwrap();
        let (want, got) = (expected[c] / total, result.values[code] / got_total);
        // Sampling error of 200,000 draws moves a coefficient by about 0.02, a share by
        // about a point.
        assert!((want - got).abs() < 0.025, "{name}: share {got} vs {want}");
    }
    // The credits split the conversions: pos, the strongest lift, comes first.
    let credited: f64 = result.credits.conversions.iter().sum();
    assert!((credited - table.total_conversions()).abs() < 1e-6);
    let best = (0..NAMES.len())
        .max_by(|&x, &y| result.values[x].total_cmp(&result.values[y]))
        .unwrap();
    assert_eq!(table.channel_names()[best], "pos");
}

#[test]
fn nothing_to_fit_gives_zeros_and_a_channel_that_always_converts_stays_finite() {
    let options = ShapleyOptions {
        game: ShapleyGame::Uplift,
        ..ShapleyOptions::default()
    };
    // No conversion at all: no lift, no credit.
    let none = table(&[("a > b", 0.0, 0.0, 10.0), ("b", 0.0, 0.0, 5.0)]);
    let result = shapley_attribution(&none, options).unwrap();
    assert!(result.values.iter().all(|v| *v == 0.0 || v.abs() < 1e-9));
    assert!(result.credits.conversions.iter().all(|c| c.is_finite()));
    // `a` only ever converts: the ridge keeps its coefficient, and every figure, finite. The
    // fit finds `b` harmful: it keeps its negative value and gets no credit.
    let separated = table(&[
        ("a", 7.0, 70.0, 0.0),
        ("b", 2.0, 20.0, 30.0),
        ("a > b", 3.0, 30.0, 0.0),
    ]);
    let result = shapley_attribution(&separated, options).unwrap();
    assert!(result.values.iter().all(|v| v.is_finite()), "{result:?}");
    assert!((result.credits.conversions.iter().sum::<f64>() - 12.0).abs() < 1e-9);
    assert!(
        result.values[0] > 0.0 && result.values[1] < 0.0,
        "{result:?}"
    );
    assert_eq!(result.credits.conversions[1], 0.0);
    // Nothing at all.
    let empty = PathTableBuilder::new().finish();
    let result = shapley_attribution(&empty, options).unwrap();
    assert!(result.values.is_empty() && !result.approximate);
}
