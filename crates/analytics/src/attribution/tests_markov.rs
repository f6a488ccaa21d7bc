//! Markov tests: hand-checked scenarios, and the exact solve against an independent dense
//! reference (states and windows rebuilt from the definition, then the fundamental matrix
//! `N = (I − Q)^-1` by Gauss–Jordan inversion) on thousands of random path tables.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{MarkovOptions, MarkovState, PathTable, PathTableBuilder, markov_attribution};

/// A table from `(path, conversions, value, nulls)` with single-letter channel names.
pub(super) fn table(rows: &[(&str, f64, f64, f64)]) -> PathTable {
    let mut builder = PathTableBuilder::new();
    for (i, (path, conversions, value, nulls)) in rows.iter().enumerate() {
        let names: Vec<&str> = path.split('>').map(str::trim).collect();
        builder
            .add_named_path(i, &names, *conversions, *value, *nulls)
            .unwrap();
    }
    builder.finish()
}

fn run(table: &PathTable, order: usize) -> super::MarkovResult {
    markov_attribution(table, MarkovOptions { order, threads: 1 }).unwrap()
}

/// What the reference computes.
struct Reference {
    conversion: f64,
    value: f64,
    conversion_without: Vec<f64>,
    value_without: Vec<f64>,
}

/// Windows straight from the definition: all windows of `order` (the path itself when
/// shorter), consecutive duplicates dropped.
fn reference_states(path: &[u32], order: usize) -> Vec<Vec<u32>> {
    let mut states: Vec<Vec<u32>> = Vec::new();
    if path.len() <= order {
        states.push(path.to_vec());
    } else {
        for start in 0..=path.len() - order {
            let window = path[start..start + order].to_vec();
            if states.last() != Some(&window) {
                states.push(window);
            }
        }
    }
    states
}

/// The chain as the reference sees it: transient state 0 is start, `n` is conversion and
/// `n + 1` null; counts by (from, to).
struct ReferenceChain {
    n: usize,
    counts: BTreeMap<(usize, usize), f64>,
    out: Vec<f64>,
    value_out: Vec<f64>,
    states: Vec<Vec<u32>>,
}

fn reference_chain(table: &PathTable, order: usize) -> ReferenceChain {
    let mut index: BTreeMap<Vec<u32>, usize> = BTreeMap::new();
    let mut edges = Vec::new();
    let mut value_at: BTreeMap<usize, f64> = BTreeMap::new();
    for row in table.rows().filter(|r| r.conversions + r.nulls > 0.0) {
        let mut from = 0;
        for state in reference_states(row.channels, order) {
            let next = index.len() + 1;
            let to = *index.entry(state).or_insert(next);
            edges.push((from, Some(to), row.conversions + row.nulls));
            from = to;
        }
        edges.push((from, None, row.conversions));
        edges.push((from, Some(usize::MAX), row.nulls));
        *value_at.entry(from).or_default() += row.value;
    }
    let n = index.len() + 1;
    let mut counts: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for (from, to, w) in edges {
        let to = match to {
            None => n,
            Some(usize::MAX) => n + 1,
            Some(t) => t,
        };
        *counts.entry((from, to)).or_default() += w;
    }
    let mut out = vec![0.0; n];
    for (&(from, _), &w) in &counts {
        out[from] += w;
    }
    let mut states = vec![Vec::new(); n];
    for (state, &i) in &index {
        states[i] = state.clone();
    }
    let value_out = (0..n)
        .map(|i| value_at.get(&i).copied().unwrap_or(0.0))
        .collect();
    ReferenceChain {
        n,
        counts,
        out,
        value_out,
        states,
    }
}

/// (P(conversion), expected value) from start, by the fundamental matrix, with the states
/// containing `removed` sending everything to null.
fn reference_solve(chain: &ReferenceChain, removed: Option<u32>) -> (f64, f64) {
    let n = chain.n;
    let dead = |s: usize| removed.is_some_and(|c| s > 0 && s < n && chain.states[s].contains(&c));
    let mut a = vec![vec![0.0; n]; n];
    let mut r_conv = vec![0.0; n];
    let mut r_value = vec![0.0; n];
    for i in 0..n {
        a[i][i] = 1.0;
        if chain.out[i] > 0.0 && !dead(i) {
            r_value[i] = chain.value_out[i] / chain.out[i];
        }
    }
    for (&(from, to), &w) in &chain.counts {
        let p = w / chain.out[from];
        if dead(from) {
            continue;
        }
        if to == n {
            r_conv[from] += p;
        } else if to < n && !dead(to) {
            a[from][to] -= p;
        }
    }
    let fundamental = invert(a);
    let conv: f64 = (0..n).map(|j| fundamental[0][j] * r_conv[j]).sum();
    let value: f64 = (0..n).map(|j| fundamental[0][j] * r_value[j]).sum();
    (conv, value)
}

fn reference(table: &PathTable, order: usize) -> Reference {
    let chain = reference_chain(table, order);
    let (conversion, value) = reference_solve(&chain, None);
    let (conversion_without, value_without) = (0..table.channel_count() as u32)
        .map(|c| reference_solve(&chain, Some(c)))
        .unzip();
    Reference {
        conversion,
        value,
        conversion_without,
        value_without,
    }
}

/// Gauss–Jordan inversion with partial pivoting, on whole rows of the augmented matrix.
fn invert(mut a: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let n = a.len();
    let mut inverse: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
            .unwrap();
        a.swap(col, pivot);
        inverse.swap(col, pivot);
        let d = a[col][col];
        for j in 0..n {
            a[col][j] /= d;
            inverse[col][j] /= d;
        }
        for row in 0..n {
            if row != col && a[row][col] != 0.0 {
                let f = a[row][col];
                for j in 0..n {
                    a[row][j] -= f * a[col][j];
                    inverse[row][j] -= f * inverse[col][j];
                }
            }
        }
    }
    inverse
}

pub(super) fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * (1.0 + a.abs().max(b.abs()))
}

/// Checks every number of the fast result against the reference.
fn check_against_reference(table: &PathTable, order: usize) -> Result<(), TestCaseError> {
    let fast = run(table, order);
    let slow = reference(table, order);
    prop_assert!(close(fast.conversion_probability, slow.conversion, 1e-9));
    prop_assert!(close(fast.value_per_journey, slow.value, 1e-9));
    let loss = |full: f64, without: f64| {
        if full > 0.0 {
            (1.0 - without / full).clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    let effects: Vec<f64> = slow
        .conversion_without
        .iter()
        .map(|&w| loss(slow.conversion, w))
        .collect();
    let value_effects: Vec<f64> = slow
        .value_without
        .iter()
        .map(|&w| loss(slow.value, w))
        .collect();
    let effect_sum: f64 = effects.iter().sum();
    let value_effect_sum: f64 = value_effects.iter().sum();
    for c in 0..table.channel_count() {
        let re = fast.removal_effects[c];
        prop_assert!(close(
            re.conversion_probability_without,
            slow.conversion_without[c],
            1e-9
        ));
        prop_assert!(
            close(re.removal_effect, effects[c], 1e-9),
            "channel {c}: {} vs {}",
            re.removal_effect,
            effects[c]
        );
        prop_assert!(close(re.value_removal_effect, value_effects[c], 1e-9));
        let expected = if effect_sum > 0.0 {
            effects[c] / effect_sum * table.total_conversions()
        } else {
            0.0
        };
        prop_assert!(close(fast.credits.conversions[c], expected, 1e-9));
        let expected_value = if value_effect_sum > 0.0 {
            value_effects[c] / value_effect_sum * table.total_value()
        } else {
            0.0
        };
        prop_assert!(close(fast.credits.value[c], expected_value, 1e-9));
        prop_assert!(fast.credits.conversions[c].is_finite() && fast.credits.value[c].is_finite());
    }
    Ok(())
}

#[test]
fn three_journey_scenario_gives_half_one_one_at_every_order() {
    // The textbook example: c1 > c2 > c3 converts, c1 and c2 > c3 do not.
    let paths = table(&[
        ("c1 > c2 > c3", 1.0, 100.0, 0.0),
        ("c1", 0.0, 0.0, 1.0),
        ("c2 > c3", 0.0, 0.0, 1.0),
    ]);
    // At order 3 the converting path is the single state `c1 > c2 > c3`, so removing c1 kills
    // it too: every channel is indispensable.
    let third = 1.0 / 3.0;
    let cases = [
        (1, [0.5, 1.0, 1.0], [0.2, 0.4, 0.4]),
        (2, [0.5, 1.0, 1.0], [0.2, 0.4, 0.4]),
        (3, [1.0, 1.0, 1.0], [third, third, third]),
    ];
    for (order, expected_effects, expected_credits) in cases {
        let result = run(&paths, order);
        assert!(
            close(result.conversion_probability, 1.0 / 3.0, 1e-12),
            "order {order}"
        );
        let effects: Vec<f64> = result
            .removal_effects
            .iter()
            .map(|r| r.removal_effect)
            .collect();
        for (got, want) in effects.iter().zip(expected_effects) {
            assert!(close(*got, want, 1e-12), "order {order}: {effects:?}");
        }
        for (got, want) in result.credits.conversions.iter().zip(expected_credits) {
            assert!(
                close(*got, want, 1e-12),
                "order {order}: {:?}",
                result.credits
            );
        }
        for (got, want) in result
            .credits
            .value
            .iter()
            .zip(expected_credits.map(|c| c * 100.0))
        {
            assert!(
                close(*got, want, 1e-12),
                "order {order}: {:?}",
                result.credits
            );
        }
        check_against_reference(&paths, order).unwrap();
    }
}

#[test]
fn transitions_are_exposed_with_counts_and_probabilities() {
    let paths = table(&[
        ("c1 > c2 > c3", 1.0, 0.0, 0.0),
        ("c1", 0.0, 0.0, 1.0),
        ("c2 > c3", 0.0, 0.0, 1.0),
    ]);
    let result = run(&paths, 1);
    let names = paths.channel_names();
    let named: Vec<(String, String, f64, f64)> = result
        .transitions
        .iter()
        .map(|t| {
            let from = result.states[t.from as usize].name(names);
            let to = result.states[t.to as usize].name(names);
            (from, to, t.count, t.probability)
        })
        .collect();
    let expect = |from: &str, to: &str, count: f64, p: f64| {
        assert!(
            named
                .iter()
                .any(|(f, t, c, q)| f == from && t == to && *c == count && close(*q, p, 1e-15)),
            "missing {from} -> {to}: {named:?}"
        );
    };
    expect("(start)", "c1", 2.0, 2.0 / 3.0);
    expect("(start)", "c2", 1.0, 1.0 / 3.0);
    expect("c1", "c2", 1.0, 0.5);
    expect("c1", "(null)", 1.0, 0.5);
    expect("c2", "c3", 2.0, 1.0);
    expect("c3", "(conversion)", 1.0, 0.5);
    expect("c3", "(null)", 1.0, 0.5);
    assert_eq!(named.len(), 7);
    assert_eq!(result.states[0], MarkovState::Start);
}

#[test]
fn repeated_channels_collapse_and_short_paths_are_one_state() {
    // a > a > b at order 1 is a > b; at order 3 the 2-touch path `a > b` is the state `a > b`.
    let paths = table(&[("a > a > b", 1.0, 0.0, 0.0), ("a > b", 0.0, 0.0, 1.0)]);
    let first = run(&paths, 1);
    assert!(
        first.transitions.iter().all(|t| t.from != t.to),
        "no self-loops"
    );
    let third = run(&paths, 3);
    let names: Vec<String> = third
        .states
        .iter()
        .map(|s| s.name(paths.channel_names()))
        .collect();
    assert!(
        names.contains(&"a > b".to_owned()) && names.contains(&"a > a > b".to_owned()),
        "{names:?}"
    );
    check_against_reference(&paths, 1).unwrap();
    check_against_reference(&paths, 3).unwrap();
}

#[test]
fn no_conversions_gives_zeros_not_nan() {
    for rows in [vec![("a > b", 0.0, 0.0, 5.0), ("b", 0.0, 0.0, 2.0)], vec![]] {
        let paths = table(&rows);
        for order in 1..=3 {
            let result = run(&paths, order);
            assert_eq!(result.conversion_probability, 0.0);
            assert!(
                result
                    .credits
                    .conversions
                    .iter()
                    .chain(&result.credits.value)
                    .all(|&c| c == 0.0)
            );
            assert!(
                result
                    .removal_effects
                    .iter()
                    .all(|r| r.removal_effect == 0.0 && !r.value_removal_effect.is_nan())
            );
        }
    }
}

#[test]
fn order_outside_one_to_three_is_refused() {
    let paths = table(&[("a", 1.0, 0.0, 0.0)]);
    for order in [0, 4] {
        let error = markov_attribution(&paths, MarkovOptions { order, threads: 1 }).unwrap_err();
        assert!(error.to_string().contains("markov_order"), "{error}");
    }
}

#[test]
fn huge_counts_stay_finite_and_exact() {
    let paths = table(&[("a > b", 1e15, 1e300, 3e15), ("b > a > b", 2e15, 0.0, 1e12)]);
    check_against_reference(&paths, 1).unwrap();
    let result = run(&paths, 2);
    assert!(result.credits.conversions.iter().all(|c| c.is_finite()));
    assert!(close(result.credits.total_conversions(), 3e15, 1e-12));
}

/// Random path tables: up to `channels` channels, `rows` paths of length 1..=`max_len`.
fn random_tables(channels: u32, rows: usize, max_len: usize) -> impl Strategy<Value = PathTable> {
    let row = (
        prop::collection::vec(0..channels, 1..=max_len),
        0u32..4,
        0u32..4,
        0u32..1000,
    );
    prop::collection::vec(row, 1..=rows).prop_map(move |rows| {
        let mut builder =
            PathTableBuilder::with_channels((0..channels).map(|c| format!("ch{c}")).collect());
        for (i, (path, conversions, nulls, value)) in rows.into_iter().enumerate() {
            let value = if conversions > 0 {
                f64::from(value)
            } else {
                0.0
            };
            builder
                .add_path(i, &path, f64::from(conversions), value, f64::from(nulls))
                .unwrap();
        }
        builder.finish()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn exact_solve_matches_dense_reference(paths in random_tables(5, 8, 7), order in 1usize..=3) {
        check_against_reference(&paths, order)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20))]

    /// Large chains with big blocks (hundreds of states) for the iterative block solve.
    #[test]
    fn large_chains_match_dense_reference(paths in random_tables(7, 300, 9)) {
        check_against_reference(&paths, 3)?;
    }
}

#[test]
fn threads_do_not_change_a_single_bit() {
    let mut builder = PathTableBuilder::with_channels((0..6).map(|c| format!("ch{c}")).collect());
    let mut state = 7u64;
    for i in 0..400 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = 1 + (state >> 60) as usize % 6;
        let path: Vec<u32> = (0..len).map(|k| ((state >> (8 * k)) % 6) as u32).collect();
        let conversions = ((state >> 40) % 3) as f64;
        builder
            .add_path(
                i,
                &path,
                conversions,
                conversions * 10.0,
                ((state >> 50) % 4) as f64,
            )
            .unwrap();
    }
    let paths = builder.finish();
    for order in 1..=3 {
        let single = markov_attribution(&paths, MarkovOptions { order, threads: 1 }).unwrap();
        let several = markov_attribution(&paths, MarkovOptions { order, threads: 4 }).unwrap();
        assert_eq!(single, several);
        assert_eq!(
            single,
            markov_attribution(&paths, MarkovOptions { order, threads: 1 }).unwrap()
        );
    }
}
