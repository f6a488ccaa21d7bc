//! How far a model's shares move by chance on the generator's own journeys (the uplift game
//! under the logistic model, Markov under the chain model). The journeys are drawn again with
//! replacement (a bootstrap, the same number as the list holds) and the model is run on each
//! sample: a share's spread over the samples is how far the estimate moves with which
//! conversions happened to be drawn, so a difference from the truth within it is not one the
//! data can show, and one outside it is the model's own.

use std::collections::BTreeMap;

use anyhow::Context as _;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use touchline_proto::modeling::v1::{
    AttributionModel, RunAttributionOnPathsRequest, run_attribution_on_paths_request::PathsInput,
};
use touchline_sim::template::Touch;

use super::{Modeling, credited, path_counts, paths_text, ranks, shares, spearman, stored_channel};

/// Bootstrap samples.
const SAMPLES: usize = 200;

/// Prints, per channel, the truth's share next to the 95 % interval of the model's share
/// over the samples, and how often a sample ranks every channel as the truth does.
pub(crate) async fn print(
    modeling: &mut Modeling,
    journeys: &[(String, bool)],
    (model, title): (AttributionModel, &str),
    truth: &BTreeMap<&'static str, f64>,
) -> anyhow::Result<()> {
    if journeys.is_empty() {
        return Ok(());
    }
    let names: Vec<&'static str> = Touch::ALL.iter().map(|t| stored_channel(*t)).collect();
    let truth_shares = shares(truth);
    let truth_ranks = ranks(&truth_shares);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut draws: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut same_ranking = 0;
    for _ in 0..SAMPLES {
        let sample = (0..journeys.len()).map(|_| {
            let (path, converted) = &journeys[rng.random_range(0..journeys.len())];
            (path.as_str(), *converted)
        });
        let reply = modeling
            .run_attribution_on_paths(RunAttributionOnPathsRequest {
                paths_input: Some(PathsInput::PathsText(paths_text(&path_counts(sample)))),
                models: vec![model],
                ..RunAttributionOnPathsRequest::default()
            })
            .await
            .context("RunAttributionOnPaths on a bootstrap sample")?
            .into_inner();
        let Some(result) = reply.results.first() else {
            anyhow::bail!("no result for a bootstrap sample");
        };
        let credit = credited(result, &names);
        if spearman(&ranks(&credit), &truth_ranks) >= 1.0 - 1e-12 {
            same_ranking += 1;
        }
        for (name, share) in shares(&credit) {
            draws.entry(name).or_default().push(share);
        }
    }
    println!(
        "\n{title}, over {SAMPLES} bootstrap samples of the same journeys: 95 % interval of each share"
    );
    println!(
        "  {:<18}{:>12}{:>20}{:>10}",
        "channel", "truth share", "our interval", "truth in"
    );
    let mut outside = 0;
    for name in &names {
        let mut values = draws.remove(name).unwrap_or_default();
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((values.len() - 1) as f64 * q).round() as usize;
            values.get(i).copied().unwrap_or(0.0)
        };
        let (low, high, t) = (at(0.025), at(0.975), truth_shares[name]);
        let inside = (low..=high).contains(&t);
        outside += usize::from(!inside);
        println!(
            "  {name:<18}{:>11.1}%{:>12.1}% – {:>4.1}%{:>10}",
            t * 100.0,
            low * 100.0,
            high * 100.0,
            if inside { "yes" } else { "no" }
        );
    }
    println!(
        "  {outside} of {} truth shares outside the interval; {same_ranking} of {SAMPLES} samples rank every channel as the truth does",
        names.len()
    );
    Ok(())
}
