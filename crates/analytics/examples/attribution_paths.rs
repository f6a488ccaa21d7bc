//! Attribution on a path file in the `path;conversions;value;nulls` layout, with timings; and
//! a seeded generator of realistic path files to run it on.
//!
//! ```text
//! cargo run --release -p touchline-analytics --example attribution_paths -- run paths.csv [--threads N] [--tsv]
//! cargo run --release -p touchline-analytics --example attribution_paths -- generate paths.csv [--journeys N] [--seed S]
//! cargo run --release -p touchline-analytics --example attribution_paths -- parse paths.csv [--threads N] [--runs R]
//! ```
//!
//! `run` parses the file, runs Markov of order 1, 2 and 3 and the heuristics, and prints the
//! credit per channel and how long each step took (`--tsv` prints machine-readable lines
//! instead: `result<TAB>model<TAB>channel<TAB>conversions<TAB>value` and
//! `timing<TAB>step<TAB>milliseconds`). `generate` writes journeys over 12 channels
//! aggregated into distinct paths (1 M journeys by default). `parse` only parses the file, `R`
//! times (20 by default), and prints the best and the median time: one parse is short enough
//! for a single timing to be mostly noise.
#![allow(clippy::print_stdout, reason = "an example prints its results")]

use std::collections::BTreeMap;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use touchline_analytics::attribution::{
    ChannelCredits, HeuristicModel, MarkovOptions, PathTable, heuristic_credits,
    markov_attribution, parse_paths_text_parallel,
};

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| -> Option<&str> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("run"), Some(file)) => {
            let threads = match flag("--threads") {
                Some(t) => t.parse()?,
                None => std::thread::available_parallelism().map_or(1, usize::from),
            };
            run(file, threads, args.iter().any(|a| a == "--tsv"))
        }
        (Some("parse"), Some(file)) => {
            let threads = match flag("--threads") {
                Some(t) => t.parse()?,
                None => std::thread::available_parallelism().map_or(1, usize::from),
            };
            let runs = flag("--runs").map_or(Ok(20), str::parse)?;
            parse_only(file, threads, runs)
        }
        (Some("generate"), Some(file)) => {
            let journeys = flag("--journeys").map_or(Ok(1_000_000), str::parse)?;
            let seed = flag("--seed").map_or(Ok(7), str::parse)?;
            generate(file, journeys, seed)
        }
        _ => Err("usage: attribution_paths run <file> [--threads N] [--tsv] | generate <file> [--journeys N] [--seed S] | parse <file> [--threads N] [--runs R]".into()),
    }
}

fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn parse_only(file: &str, threads: usize, runs: usize) -> Result<(), Failure> {
    let text = std::fs::read_to_string(file)?;
    let mut times = Vec::with_capacity(runs);
    let mut paths = 0;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let table = parse_paths_text_parallel(&text, ">", threads).map_err(|e| e.to_string())?;
        times.push(elapsed_ms(start));
        paths = table.len();
    }
    times.sort_by(f64::total_cmp);
    let (best, median) = (times[0], times[times.len() / 2]);
    println!(
        "{paths} distinct paths, {threads} thread(s), {} runs: parse best {best:.1} ms, median {median:.1} ms",
        times.len()
    );
    Ok(())
}

fn run(file: &str, threads: usize, tsv: bool) -> Result<(), Failure> {
    let read_start = Instant::now();
    let text = std::fs::read_to_string(file)?;
    let read_ms = elapsed_ms(read_start);
    let parse_start = Instant::now();
    let paths = parse_paths_text_parallel(&text, ">", threads).map_err(|e| {
        let first: Vec<String> = e
            .violations
            .iter()
            .take(5)
            .map(ToString::to_string)
            .collect();
        format!("{e}: {}", first.join("; "))
    })?;
    let parse_ms = elapsed_ms(parse_start);
    let mut timings = vec![("read".to_owned(), read_ms), ("parse".to_owned(), parse_ms)];
    let mut results: Vec<(String, ChannelCredits)> = Vec::new();
    for order in 1..=3 {
        let start = Instant::now();
        let markov = markov_attribution(&paths, MarkovOptions { order, threads })?;
        let ms = elapsed_ms(start);
        timings.push((format!("markov_{order}"), ms));
        timings.push((format!("markov_{order}_with_parse"), ms + parse_ms));
        results.push((format!("markov_{order}"), markov.credits));
    }
    let heuristics = [
        ("first_touch", HeuristicModel::FirstTouch),
        ("last_touch", HeuristicModel::LastTouch),
        (
            "linear",
            HeuristicModel::Linear {
                distinct_channels: false,
            },
        ),
        (
            "linear_distinct",
            HeuristicModel::Linear {
                distinct_channels: true,
            },
        ),
        ("position_based", HeuristicModel::POSITION_BASED_DEFAULT),
    ];
    let start = Instant::now();
    for (name, model) in heuristics {
        results.push((name.to_owned(), heuristic_credits(&paths, model)?));
    }
    let heuristics_ms = elapsed_ms(start);
    timings.push(("heuristics".to_owned(), heuristics_ms));
    timings.push(("heuristics_with_parse".to_owned(), heuristics_ms + parse_ms));
    if tsv {
        print_tsv(&paths, &results, &timings);
    } else {
        print_table(&paths, &results, &timings);
    }
    Ok(())
}

fn print_tsv(paths: &PathTable, results: &[(String, ChannelCredits)], timings: &[(String, f64)]) {
    for (model, credits) in results {
        for (code, name) in paths.channel_names().iter().enumerate() {
            let (conversions, value) = (credits.conversions[code], credits.value[code]);
            println!("result\t{model}\t{name}\t{conversions}\t{value}");
        }
    }
    for (step, ms) in timings {
        println!("timing\t{step}\t{ms}");
    }
}

fn print_table(paths: &PathTable, results: &[(String, ChannelCredits)], timings: &[(String, f64)]) {
    println!(
        "{} distinct paths, {} channels, {:.0} conversions, {:.2} value, {:.0} non-converting journeys",
        paths.len(),
        paths.channel_count(),
        paths.total_conversions(),
        paths.total_value(),
        paths.total_nulls()
    );
    print!("{:<16}", "channel");
    results.iter().for_each(|(model, _)| print!("{model:>16}"));
    println!();
    let order = results
        .first()
        .map(|(_, c)| c.ranked_channels())
        .unwrap_or_default();
    for code in order {
        print!("{:<16}", paths.channel_names()[code as usize]);
        results
            .iter()
            .for_each(|(_, c)| print!("{:>16.2}", c.conversions[code as usize]));
        println!();
    }
    println!("timings (ms):");
    for (step, ms) in timings {
        println!("  {step:<24}{ms:>10.2}");
    }
}

const CHANNELS: [&str; 12] = [
    "paid_search",
    "organic_search",
    "email",
    "display",
    "social_paid",
    "social_organic",
    "direct",
    "referral",
    "affiliate",
    "video",
    "push",
    "sms",
];
/// How often a journey starts on each channel.
const ENTRY_WEIGHT: [f64; 12] = [
    18.0, 16.0, 8.0, 12.0, 10.0, 7.0, 9.0, 5.0, 4.0, 6.0, 3.0, 2.0,
];
/// How much touching each channel lifts the chance of converting.
const LIFT: [f64; 12] = [
    0.012, 0.010, 0.014, 0.002, 0.006, 0.003, 0.016, 0.008, 0.009, 0.002, 0.005, 0.007,
];

fn pick(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut target = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        target -= w;
        if target < 0.0 {
            return i;
        }
    }
    weights.len() - 1
}

/// Journeys move between channels with channel-specific habits (a random but seeded
/// preference matrix with a pull back to the same channel), last 1–20 touches (about 2.6 on
/// average), and convert with a chance that grows with the distinct channels touched.
fn generate(file: &str, journeys: usize, seed: u64) -> Result<(), Failure> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let preference: Vec<Vec<f64>> = (0..12)
        .map(|from| {
            (0..12)
                .map(|to| {
                    let base = ENTRY_WEIGHT[to] * rng.random_range(0.2..1.8);
                    if to == from { base * 2.5 } else { base }
                })
                .collect()
        })
        .collect();
    let mut aggregated: BTreeMap<Vec<u8>, (u64, f64, u64)> = BTreeMap::new();
    let mut path = Vec::new();
    for _ in 0..journeys {
        path.clear();
        let mut channel = pick(&mut rng, &ENTRY_WEIGHT);
        path.push(channel as u8);
        while path.len() < 20 && rng.random::<f64>() < 0.615 {
            channel = pick(&mut rng, &preference[channel]);
            path.push(channel as u8);
        }
        let mut touched = [false; 12];
        path.iter().for_each(|&c| touched[usize::from(c)] = true);
        let lift: f64 = (0..12).filter(|&c| touched[c]).map(|c| LIFT[c]).sum();
        let chance = (0.004 + lift * (1.0 + 0.05 * path.len() as f64)).min(0.6);
        let entry = aggregated.entry(path.clone()).or_insert((0, 0.0, 0));
        if rng.random::<f64>() < chance {
            // A skewed order value: 20–400 with a long tail.
            let value = 20.0 + 380.0 * rng.random::<f64>().powi(3);
            entry.0 += 1;
            entry.1 += (value * 100.0).round() / 100.0;
        } else {
            entry.2 += 1;
        }
    }
    let mut out = String::from("path;conversions;value;nulls\n");
    for (path, (conversions, value, nulls)) in &aggregated {
        let names: Vec<&str> = path.iter().map(|&c| CHANNELS[usize::from(c)]).collect();
        out.push_str(&format!(
            "{};{conversions};{value:.2};{nulls}\n",
            names.join(" > ")
        ));
    }
    std::fs::write(file, out)?;
    println!(
        "wrote {} distinct paths of {journeys} journeys to {file}",
        aggregated.len()
    );
    Ok(())
}
