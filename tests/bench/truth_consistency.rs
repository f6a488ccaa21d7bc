//! Whether the attribution models converge to the generator's truth as the data grows, on the
//! generator's own journey list (perfect data: every true touch, every drawn conversion,
//! nothing lost by collection or identity):
//! - the uplift game against the logistic model's expected Shapley conversions;
//! - Markov (order 1) against the chain model's removal effects.
//!
//! Per world, size and seed: journeys, conversions, the largest difference between a
//! channel's share and the truth's share, Spearman's rank correlation with the truth's
//! ranking, and the smallest gap between two truth shares. An estimator of the truth has
//! errors that shrink as the journeys grow, with no channel drifting one way at every seed.
//! Where the largest error is over half the smallest truth gap, a swap of those two channels
//! is chance, and the ranking needs more journeys, not another model.
//!
//! `cargo run --release -p touchline-e2e --bin truth-consistency -- [SIZES] [SEEDS]`
//! (SIZES, persons, defaults to `5000,20000,50000,100000`; SEEDS to 3: seeds 1 to SEEDS at
//! every size). The data sets are written to a scratch folder and removed.
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context as _;
use touchline_analytics::attribution::{
    MarkovOptions, PathTableBuilder, ShapleyGame, ShapleyOptions, markov_attribution,
    shapley_attribution,
};
use touchline_sim::template::Touch;
use touchline_sim::{ConversionModel, SimConfig, TemplateKind};

#[path = "truth_shares.rs"]
mod truth_shares;

use truth_shares::{by_stored_channel, ranks, shares, spearman, stored_channel, true_journeys};

/// One run's comparison with the truth.
struct Row {
    journeys: usize,
    conversions: usize,
    /// The channel with the largest share difference, and that difference (ours − truth).
    worst: (&'static str, f64),
    spearman: f64,
    /// Ours − truth, in share points, per channel.
    errors: BTreeMap<&'static str, f64>,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let sizes: Vec<u64> = args
        .next()
        .unwrap_or_else(|| "5000,20000,50000,100000".to_owned())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .context("SIZES is a comma-separated list of persons")
        })
        .collect::<anyhow::Result<_>>()?;
    let seeds: u64 = args
        .next()
        .map(|s| s.parse().context("SEEDS is a count"))
        .transpose()?
        .unwrap_or(3);
    for (world, title) in [
        (
            ConversionModel::Logistic,
            "uplift game against the logistic model's expected Shapley conversions / 增量博弈对照逻辑模型真值",
        ),
        (
            ConversionModel::Chain,
            "Markov (order 1) against the chain model's removal effects / 马尔可夫对照链模型移除效应",
        ),
    ] {
        println!("\n=== {title}");
        println!(
            "  {:>8}{:>6}{:>10}{:>8}{:>26}{:>10}{:>22}",
            "persons",
            "seed",
            "journeys",
            "conv",
            "largest error (points)",
            "Spearman",
            "smallest truth gap"
        );
        for &persons in &sizes {
            print_size(world, persons, seeds)?;
        }
    }
    Ok(())
}

/// One line per seed at one size, then how many seeds rank as the truth and the mean error
/// per channel over the seeds (a bias shows as a mean far from zero).
fn print_size(world: ConversionModel, persons: u64, seeds: u64) -> anyhow::Result<()> {
    let mut by_channel: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut exact = 0;
    for seed in 1..=seeds {
        let started = Instant::now();
        let (row, gap) = run(world, persons, seed)?;
        println!(
            "  {persons:>8}{seed:>6}{:>10}{:>8}{:>17} {:>+7.2}{:>10.3}{:>16.2} pts  ({:.1} s)",
            row.journeys,
            row.conversions,
            row.worst.0,
            row.worst.1,
            row.spearman,
            gap,
            started.elapsed().as_secs_f64()
        );
        exact += usize::from(row.spearman >= 1.0 - 1e-12);
        for (channel, error) in row.errors {
            by_channel.entry(channel).or_default().push(error);
        }
    }
    let means: Vec<String> = by_channel
        .iter()
        .map(|(c, e)| format!("{c} {:+.2}", e.iter().sum::<f64>() / e.len() as f64))
        .collect();
    println!(
        "  {persons} persons: {exact} of {seeds} seeds rank every channel as the truth; mean error per channel: {}",
        means.join(", ")
    );
    Ok(())
}

/// Generates one data set and compares the world's model on its journey list with its truth;
/// also returns the smallest gap between two truth shares, in points.
fn run(world: ConversionModel, persons: u64, seed: u64) -> anyhow::Result<(Row, f64)> {
    let mut cfg = SimConfig::new(TemplateKind::Retail, persons, seed);
    cfg.conversion_model = world;
    let scratch = std::env::temp_dir().join(format!(
        "truth-consistency-{}-{persons}-{seed}",
        std::process::id()
    ));
    let summary = touchline_sim::generate(cfg.clone(), &scratch, &mut |_| {})?;
    let journeys_csv = std::fs::read_to_string(scratch.join("truth/journeys.csv"))
        .context("reading the journey list")?;
    std::fs::remove_dir_all(&scratch).ok();
    let stats = &summary.stats;
    let truth = match world {
        ConversionModel::Logistic => by_stored_channel(&stats.shapley),
        ConversionModel::Chain => {
            let template = touchline_sim::template::get(cfg.template);
            by_stored_channel(
                &touchline_sim::engine::chain::removal_effects(template, &stats.chain_journeys).0,
            )
        }
    };

    let names: Vec<&'static str> = Touch::ALL.iter().map(|t| stored_channel(*t)).collect();
    let mut builder =
        PathTableBuilder::with_channels(names.iter().map(|n| (*n).to_owned()).collect());
    let journeys = true_journeys(&journeys_csv);
    let mut conversions = 0;
    for (index, (path, converted)) in journeys.iter().enumerate() {
        let channels: Vec<&str> = path.split(" > ").collect();
        let (conversion, null) = if *converted { (1.0, 0.0) } else { (0.0, 1.0) };
        conversions += usize::from(*converted);
        builder
            .add_named_path(index, &channels, conversion, 0.0, null)
            .with_context(|| format!("journey {index}"))?;
    }
    let table = builder.finish();
    let credits = match world {
        ConversionModel::Logistic => {
            let options = ShapleyOptions {
                game: ShapleyGame::Uplift,
                ..ShapleyOptions::default()
            };
            shapley_attribution(&table, options)?.credits.conversions
        }
        ConversionModel::Chain => {
            markov_attribution(&table, MarkovOptions::default())?
                .credits
                .conversions
        }
    };
    let ours: BTreeMap<&str, f64> = table
        .channel_names()
        .iter()
        .zip(&credits)
        .filter_map(|(name, credit)| {
            let name = names.iter().find(|n| **n == name.as_str())?;
            Some((*name, *credit))
        })
        .collect();

    Ok(compare(&ours, &truth, journeys.len(), conversions))
}

/// The comparison of a model's credit with the truth's, and the smallest gap between two
/// truth shares, in points.
fn compare(
    ours: &BTreeMap<&'static str, f64>,
    truth: &BTreeMap<&'static str, f64>,
    journeys: usize,
    conversions: usize,
) -> (Row, f64) {
    let (our_shares, truth_shares) = (shares(ours), shares(truth));
    let errors: BTreeMap<&'static str, f64> = truth_shares
        .iter()
        .map(|(c, truth)| {
            let ours = our_shares.get(c).copied().unwrap_or(0.0);
            (*c, (ours - truth) * 100.0)
        })
        .collect();
    let worst = errors
        .iter()
        .map(|(c, e)| (*c, *e))
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap_or(("", 0.0));
    let mut sorted: Vec<f64> = truth_shares.values().map(|s| s * 100.0).collect();
    sorted.sort_by(f64::total_cmp);
    let gap = sorted
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min);
    let row = Row {
        journeys,
        conversions,
        worst,
        spearman: spearman(&ranks(&our_shares), &ranks(&truth_shares)),
        errors,
    };
    (row, gap)
}
