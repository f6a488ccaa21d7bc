//! The chain conversion model's truth against the journeys the run walked.

use std::collections::BTreeMap;

use touchline_sim::config::{ConversionModel, SimConfig, TemplateKind};

use super::{assert_clean, run};

/// Transition counts of `journeys.csv` read as a first-order chain: from `start` or a channel
/// to a channel, `conversion` or `null`.
fn counted_chain(journeys_csv: &str) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut chain: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for line in journeys_csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let (Some(touches), Some(converted)) = (cells.get(3), cells.get(5)) else {
            continue;
        };
        let mut from = "start".to_owned();
        for touch in touches.split('>').filter(|t| !t.is_empty()) {
            if touch != from {
                *chain
                    .entry(from)
                    .or_default()
                    .entry(touch.to_owned())
                    .or_default() += 1.0;
            }
            from = touch.to_owned();
        }
        let end = if *converted == "Y" {
            "conversion"
        } else {
            "null"
        };
        *chain
            .entry(from)
            .or_default()
            .entry(end.to_owned())
            .or_default() += 1.0;
    }
    chain
}

/// P(conversion) of a counted chain with `removed` sent to null, by value iteration (a naive
/// reading, unlike the generator's elimination).
fn conversion_probability(
    chain: &BTreeMap<String, BTreeMap<String, f64>>,
    removed: Option<&str>,
) -> f64 {
    let mut h: BTreeMap<&str, f64> = BTreeMap::new();
    let value = |h: &BTreeMap<&str, f64>, to: &str| match to {
        "conversion" => 1.0,
        "null" => 0.0,
        t if Some(t) == removed => 0.0,
        t => h.get(t).copied().unwrap_or(0.0),
    };
    for _ in 0..500 {
        let mut next = BTreeMap::new();
        for (from, row) in chain {
            let total: f64 = row.values().sum();
            let p: f64 = row.iter().map(|(to, n)| n * value(&h, to)).sum::<f64>() / total;
            next.insert(from.as_str(), p);
        }
        h = next;
    }
    h.get("start").copied().unwrap_or(0.0)
}

#[test]
fn the_chain_truth_equals_a_markov_reading_of_the_walked_journeys() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = SimConfig::new(TemplateKind::Retail, 3_000, 17);
    cfg.conversion_model = ConversionModel::Chain;
    let summary = run(cfg, dir.path());
    assert_clean(dir.path());
    let model: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("truth/conversion_model.json")).expect("model"),
    )
    .expect("json");
    assert_eq!(model["conversion_model"], "chain");
    assert_eq!(
        model["drawn_conversions"].as_u64(),
        Some(summary.stats.conversions)
    );
    let journeys =
        std::fs::read_to_string(dir.path().join("truth/journeys.csv")).expect("journeys");
    let chain = counted_chain(&journeys);
    let p = conversion_probability(&chain, None);
    // About 11,000 journeys: each removal effect read from them moves by about 0.01 by chance.
    for channel in model["channels"].as_array().expect("channels") {
        let name = channel["channel"].as_str().expect("name");
        let stated = channel["removal_effect"].as_f64().expect("effect");
        let read = 1.0 - conversion_probability(&chain, Some(name)) / p;
        assert!(stated > 0.0, "{name}: {stated}");
        assert!(
            (read - stated).abs() < 0.03,
            "{name}: the truth states {stated}, the walked journeys give {read}"
        );
    }
}
