//! Times a 4-step ordered funnel (14-day window, first-touch breakdown, then none) over a
//! synthetic data set — by default 1 M persons, about 10 M events over 180 days, from a seed —
//! on 2 threads; then the same funnel strict and unordered.
//!
//! ```text
//! cargo run --release -p touchline-analytics --example funnel_bench -- \
//!     [--seed 42] [--persons 1000000] [--runs 7] [--threads 2] [--csv events.csv]
//! ```
//!
//! With `--csv` it also writes the same events as `person,time,event` (time in ms, event
//! codes 0–3 are the funnel's steps in order), so another engine can run the same funnel on
//! the same data. It prints the median wall time of the runs and the step counts.

use std::error::Error;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use touchline_analytics::funnel::{
    Attribution, BreakdownSpec, FunnelDefinition, FunnelEvent, FunnelOrder, PersonBatch,
    ValidFunnel, run_partitions,
};

const DAY_MS: i64 = 24 * 3_600 * 1_000;
/// 2026-01-01T00:00:00Z.
const EPOCH_MS: i64 = 1_767_225_600_000;
const STEPS: usize = 4;
/// Event codes 0..4 are the steps; 4..8 are other events.
const EVENT_TYPES: u32 = 8;
/// How often each event code appears, in percent.
const EVENT_WEIGHTS: [u32; EVENT_TYPES as usize] = [25, 20, 10, 5, 10, 10, 10, 10];
/// Channel codes; 0 is missing.
const CHANNELS: u32 = 7;

struct Options {
    seed: u64,
    persons: usize,
    runs: usize,
    threads: usize,
    csv: Option<String>,
}

fn parse_options() -> Result<Options, Box<dyn Error>> {
    let mut options = Options {
        seed: 42,
        persons: 1_000_000,
        runs: 7,
        threads: 2,
        csv: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seed" => options.seed = value.parse()?,
            "--persons" => options.persons = value.parse()?,
            "--runs" => options.runs = value.parse()?,
            "--threads" => options.threads = value.parse::<usize>()?.max(1),
            "--csv" => options.csv = Some(value),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(options)
}

/// The data set in the columnar shape the funnel reads: one event slice, person offsets.
struct DataSet {
    person_ids: Vec<u64>,
    offsets: Vec<usize>,
    events: Vec<FunnelEvent>,
    /// Event code of each event (the CSV's `event` column).
    codes: Vec<u8>,
}

fn pick_event(rng: &mut ChaCha8Rng) -> u32 {
    let mut roll = rng.random_range(0..100u32);
    for (code, weight) in (0u32..).zip(EVENT_WEIGHTS) {
        if roll < weight {
            return code;
        }
        roll -= weight;
    }
    EVENT_TYPES - 1
}

/// Each person: 1–19 events (10 on average), starting on a random day of the 180, with gaps
/// of up to 4 days; a channel per event, missing one time in seven.
fn generate(seed: u64, persons: usize) -> DataSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = DataSet {
        person_ids: Vec::with_capacity(persons),
        offsets: Vec::with_capacity(persons + 1),
        events: Vec::with_capacity(persons * 10),
        codes: Vec::with_capacity(persons * 10),
    };
    data.offsets.push(0);
    let mut seq = 0u64;
    for person in 0..persons {
        let count = rng.random_range(1..=19);
        let mut time = EPOCH_MS + rng.random_range(0..160 * DAY_MS);
        for _ in 0..count {
            time += rng.random_range(0..4 * DAY_MS);
            let code = pick_event(&mut rng);
            let steps = if (code as usize) < STEPS {
                1 << code
            } else {
                0
            };
            data.events.push(FunnelEvent {
                time,
                seq,
                steps,
                exclusions: 0,
                breakdown: rng.random_range(0..CHANNELS),
            });
            data.codes.push(code as u8);
            seq += 1;
        }
        data.person_ids.push(person as u64);
        data.offsets.push(data.events.len());
    }
    data
}

fn funnel(order: FunnelOrder, breakdown: bool) -> Result<ValidFunnel, Box<dyn Error>> {
    let definition = FunnelDefinition {
        step_event_types: (0..STEPS as u32).collect(),
        window_ms: 14 * DAY_MS,
        order,
        exclusions: Vec::new(),
        breakdown: breakdown.then_some(BreakdownSpec {
            attribution: Attribution::FirstTouch,
            value_count: CHANNELS,
        }),
    };
    Ok(definition.validate()?)
}

/// Splits the persons into `threads` contiguous partitions.
fn partitions(data: &DataSet, threads: usize) -> Vec<PersonBatch<'_>> {
    let persons = data.person_ids.len();
    let per = persons.div_ceil(threads).max(1);
    (0..persons)
        .step_by(per)
        .map(|start| {
            let end = (start + per).min(persons);
            PersonBatch {
                person_ids: &data.person_ids[start..end],
                offsets: &data.offsets[start..=end],
                events: &data.events,
            }
        })
        .collect()
}

/// What the timed runs measured.
struct Timing {
    /// Median wall time of a run, in ms.
    median_ms: f64,
    /// Process CPU time per run (all threads), in ms; `None` where it cannot be read. On a
    /// busy machine this stays honest when wall time does not.
    cpu_ms: Option<f64>,
    counts: Vec<u64>,
    rows: usize,
}

/// The process's user + system CPU time in ms, from Linux's `/proc/self/stat` (clock ticks
/// of 10 ms).
fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) * 10.0)
}

/// Runs the funnel `runs` times.
fn time_runs(
    funnel: &ValidFunnel,
    batches: &[PersonBatch<'_>],
    runs: usize,
) -> Result<Timing, Box<dyn Error>> {
    let runs = runs.max(1);
    let mut timings = Vec::with_capacity(runs);
    let mut counts = Vec::new();
    let mut rows = 0;
    let cpu_before = process_cpu_ms();
    for _ in 0..runs {
        let started = Instant::now();
        let accumulator = run_partitions(funnel, batches, false)?;
        let (report, _) = accumulator.finish(25);
        timings.push(started.elapsed().as_secs_f64() * 1_000.0);
        counts = report.overall.iter().map(|s| s.count).collect();
        rows = report.breakdown.len();
    }
    let cpu_ms = process_cpu_ms()
        .zip(cpu_before)
        .map(|(after, before)| (after - before) / runs as f64);
    timings.sort_by(f64::total_cmp);
    Ok(Timing {
        median_ms: timings[timings.len() / 2],
        cpu_ms,
        counts,
        rows,
    })
}

fn write_csv(data: &DataSet, path: &str) -> Result<(), Box<dyn Error>> {
    let mut out = BufWriter::new(File::create(path)?);
    writeln!(out, "person,time,event")?;
    for (person, bounds) in data.person_ids.iter().zip(data.offsets.windows(2)) {
        for index in bounds[0]..bounds[1] {
            writeln!(
                out,
                "{person},{},{}",
                data.events[index].time, data.codes[index]
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let options = parse_options()?;
    let started = Instant::now();
    let data = generate(options.seed, options.persons);
    println!(
        "data: {} persons, {} events, seed {}, generated in {:.1} s",
        data.person_ids.len(),
        data.events.len(),
        options.seed,
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &options.csv {
        write_csv(&data, path)?;
        println!("csv: {path}");
    }
    let batches = partitions(&data, options.threads);
    let variants = [
        (FunnelOrder::Ordered, true),
        (FunnelOrder::Ordered, false),
        (FunnelOrder::Strict, false),
        (FunnelOrder::Unordered, false),
    ];
    for (order, breakdown) in variants {
        let timing = time_runs(&funnel(order, breakdown)?, &batches, options.runs)?;
        println!(
            "{} 4-step funnel, 14-day window, breakdown {}: median {:.1} ms over {} runs on {} threads (cpu {} ms per run); counts {:?}; {} breakdown rows",
            format!("{order:?}").to_lowercase(),
            if breakdown { "first_touch" } else { "none" },
            timing.median_ms,
            options.runs,
            batches.len(),
            timing
                .cpu_ms
                .map_or("?".to_owned(), |ms| format!("{ms:.0}")),
            timing.counts,
            timing.rows,
        );
    }
    Ok(())
}
