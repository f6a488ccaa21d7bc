//! Builds a projection of synthetic events — by default 1 M persons, about 10 M events over
//! 180 days, from a seed — and times what the modeling service would do with it: the load
//! (rebuild on start), incremental appends with late events, identity changes, and the
//! journey queries against their targets on this machine (2 cores).
//!
//! ```text
//! cargo run --release -p touchline-projection --example projection_bench -- \
//!     [--seed 42] [--persons 1000000] [--runs 7] [--threads 2] [--partitions 16] [--baseline] \
//!     [--only funnel|weekly|paths] [--compact] [--csv events.csv]
//! ```
//!
//! With `--csv` it writes the events the queries run on (after the appends and identity
//! changes) as `person,time,seq,event,channel` (codes; channel 0 is missing), so another
//! engine can run the same funnel on the same data.
//!
//! The data has the shape of the analytics crate's `funnel_bench` (1–19 events a person,
//! starting on a random day of the first 160, event codes 0–3 the funnel's steps, 7 channels
//! with one event in seven missing its channel), with two changes so that every model has
//! something to chew on: 60 % of the gaps between a person's events are under 10 minutes
//! (sessions for paths), the rest up to 4 days; and events carry a touchpoint, a source, a
//! value on purchases and two analysable properties on some events. One event in twenty is
//! held back from the load and appended afterwards in clean-log order, in batches of 1,000,
//! a twentieth of them late (enough appends for every partition to compact a few times).
//!
//! Queries run on the projection as appends and identity changes left it (deltas and removals
//! pending), or with `--compact` after folding them in. `--baseline` also runs each model on
//! inputs materialised before timing, to show what reading through the projection costs.
//! Run with `MIMALLOC_PURGE_DELAY=0` for a resident set that follows the counted heap.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark's setup is fixed, not input-driven"
)]

use std::error::Error;
use std::time::Instant;

use chrono::Weekday;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use touchline_analytics::calendar::{Calendar, Interval, IntervalGrid};
use touchline_analytics::funnel::{Attribution, FunnelOrder, run_partitions};
use touchline_analytics::lifecycle::{LifecycleModel, LifecyclePerson};
use touchline_analytics::paths::{self, EdgeSelection, PathEvent, PathOptions};
use touchline_analytics::retention::{
    CohortType, RETURN, RetentionEvent, RetentionModel, RetentionOptions, START,
};
use touchline_projection::query::{
    Condition, Dimension, FirstSeen, FunnelBreakdown, FunnelColumns, FunnelSpec, LifecycleSpec,
    PathSpec, RetentionSpec, Scope,
};
use touchline_projection::{
    Event, MAX_PROPERTIES, MemoryReport, NewEvent, Projection, ProjectionConfig, Touch,
};

/// The allocator the service binary runs with, so the resident set means what it would there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DAY_MS: i64 = 24 * 3_600 * 1_000;
const MINUTE_MS: i64 = 60_000;
/// 2026-01-01T00:00:00Z.
const EPOCH_MS: i64 = 1_767_225_600_000;
const DAYS: i64 = 180;
/// The end of the data's 180 days.
const END_MS: i64 = EPOCH_MS + DAYS * DAY_MS;
/// Event names e0..e7: e0–e3 are the funnel's steps.
const EVENT_TYPES: u32 = 8;
/// How often each event appears, in percent.
const EVENT_WEIGHTS: [u32; EVENT_TYPES as usize] = [25, 20, 10, 5, 10, 10, 10, 10];
/// Channels c1..c6 (and missing).
const CHANNELS: u32 = 7;
const TOUCHPOINTS_PER_CHANNEL: u32 = 3;
const SOURCES: u32 = 4;
/// Values of the two analysable properties.
const CATEGORIES: u32 = 50;
const STORES: u32 = 200;
/// Events per batch when appending after the load.
const APPEND_BATCH: usize = 1_000;

/// The flags; `only` names one query (funnel, weekly, paths).
struct Options {
    seed: u64,
    persons: usize,
    runs: usize,
    threads: usize,
    partitions: usize,
    baseline: bool,
    only: Option<String>,
    compact: bool,
    csv: Option<String>,
}

fn parse_options() -> Result<Options, Box<dyn Error>> {
    let mut options = Options {
        seed: 42,
        persons: 1_000_000,
        runs: 7,
        threads: 2,
        partitions: 16,
        baseline: false,
        only: None,
        compact: false,
        csv: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--baseline" || flag == "--compact" {
            options.baseline |= flag == "--baseline";
            options.compact |= flag == "--compact";
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seed" => options.seed = value.parse()?,
            "--persons" => options.persons = value.parse()?,
            "--runs" => options.runs = value.parse::<usize>()?.max(1),
            "--threads" => options.threads = value.parse::<usize>()?.max(1),
            "--partitions" => options.partitions = value.parse()?,
            "--only" => options.only = Some(value),
            "--csv" => options.csv = Some(value),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(options)
}

/// Interns every text the generator uses; codes then follow the constants above.
fn intern_texts(projection: &mut Projection) -> Result<(), Box<dyn Error>> {
    let dictionaries = projection.dictionaries_mut();
    for code in 0..EVENT_TYPES {
        dictionaries.events.intern(&format!("e{code}"))?;
    }
    for channel in 1..CHANNELS {
        dictionaries.channels.intern(&format!("c{channel}"))?;
        for touchpoint in 0..TOUCHPOINTS_PER_CHANNEL {
            dictionaries
                .touchpoints
                .intern(&format!("c{channel}.t{touchpoint}"))?;
        }
    }
    for source in 0..SOURCES {
        dictionaries.sources.intern(&format!("s{source}"))?;
    }
    for category in 0..CATEGORIES {
        dictionaries.properties[0].intern(&format!("category{category}"))?;
    }
    for store in 0..STORES {
        dictionaries.properties[1].intern(&format!("store{store}"))?;
    }
    Ok(())
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

/// One event's columns: a touch derived from the channel, a value on purchases (e3), a
/// category on e2/e3 and every fifth other event, a store on offline events.
fn random_event(rng: &mut ChaCha8Rng, time_ms: i64, seq: u64) -> Event {
    let code = pick_event(rng);
    let channel = rng.random_range(0..CHANNELS);
    let touch = if channel == 0 {
        Touch::default()
    } else {
        let touchpoint_index = rng.random_range(0..TOUCHPOINTS_PER_CHANNEL);
        Touch {
            channel,
            touchpoint: 1 + (channel - 1) * TOUCHPOINTS_PER_CHANNEL + touchpoint_index,
            touchpoint_type: (1 + channel % 4) as u8,
            department: (1 + touchpoint_index % 4) as u8,
            source: 1 + (channel + touchpoint_index) % SOURCES,
        }
    };
    let mut properties = [0; MAX_PROPERTIES];
    if code == 2 || code == 3 || rng.random_ratio(1, 5) {
        properties[0] = 1 + rng.random_range(0..CATEGORIES);
    }
    if touch.touchpoint_type == 2 {
        properties[1] = 1 + rng.random_range(0..STORES);
    }
    Event {
        time_ms,
        seq,
        event: 1 + code,
        touch,
        value: (code == 3).then(|| f64::from(rng.random_range(100..100_000u32)) / 100.0),
        properties,
    }
}

/// Generates every person's events; one in twenty goes to `held_back`, the rest through
/// `sink` in chunks.
fn generate(
    options: &Options,
    held_back: &mut Vec<NewEvent>,
    mut sink: impl FnMut(&[NewEvent]) -> Result<(), Box<dyn Error>>,
) -> Result<usize, Box<dyn Error>> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut chunk = Vec::with_capacity(1 << 16);
    let (mut seq, mut total) = (0u64, 0usize);
    for person in 0..options.persons as u64 {
        let count = rng.random_range(1..=19);
        let mut time = EPOCH_MS + rng.random_range(0..160 * DAY_MS);
        for _ in 0..count {
            time += if rng.random_ratio(3, 5) {
                rng.random_range(0..10 * MINUTE_MS)
            } else {
                rng.random_range(0..4 * DAY_MS)
            };
            seq += 1;
            let new = NewEvent {
                person,
                event: random_event(&mut rng, time, seq),
            };
            if rng.random_ratio(1, 20) {
                held_back.push(new);
            } else {
                chunk.push(new);
            }
            total += 1;
        }
        if chunk.len() >= 1 << 16 {
            sink(&chunk)?;
            chunk.clear();
        }
    }
    sink(&chunk)?;
    Ok(total)
}

/// The held-back events in clean-log order: by time, except that one in twenty arrives
/// 1–3 days late; sequences are renumbered in arrival order, as the clean log would.
fn arrival_order(held_back: &mut [NewEvent], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut keyed: Vec<(i64, NewEvent)> = held_back
        .iter()
        .map(|new| {
            let delay = if rng.random_ratio(1, 20) {
                rng.random_range(DAY_MS..3 * DAY_MS)
            } else {
                0
            };
            (new.event.time_ms + delay, *new)
        })
        .collect();
    keyed.sort_by_key(|(arrival, _)| *arrival);
    let first_seq = 1u64 << 40;
    for (index, (slot, (_, new))) in held_back.iter_mut().zip(keyed).enumerate() {
        *slot = new;
        slot.event.seq = first_seq + index as u64;
    }
}

/// Prints the counted heap by part, and the process's resident set beyond `outside` bytes
/// (what the process held before the load, and events not yet appended) per event.
fn print_memory(label: &str, memory: &MemoryReport, outside: usize) {
    let per = |bytes: usize| bytes as f64 / memory.events.max(1) as f64;
    let resident = resident_bytes().map_or(0.0, |bytes| per(bytes.saturating_sub(outside)));
    println!(
        "{label}: {:.2} bytes/event counted, {resident:.2} resident ({:.1} MiB per million events counted; target <= 24 bytes) over {} events: \
         dense {:.2}, persons {:.2}, sparse {:.2} (values {:.2}), removed {:.2}, delta {:.2} ({} rows), dictionaries {:.3}",
        memory.bytes_per_event(),
        memory.mib_per_million_events(),
        memory.events,
        per(memory.dense_bytes),
        per(memory.person_bytes),
        per(memory.sparse_bytes),
        per(memory.sparse_value_bytes),
        per(memory.removed_bytes),
        per(memory.delta_bytes),
        memory.delta_events,
        per(memory.dictionary_bytes),
    );
}

/// The process's resident set in bytes (Linux): a cross-check of the counted heap.
fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The process's user + system CPU time in ms, from Linux's `/proc/self/stat`.
fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) * 10.0)
}

/// Median wall ms and mean CPU ms of `runs` runs, and the last run's output.
fn time<T>(runs: usize, mut work: impl FnMut() -> T) -> (f64, Option<f64>, T) {
    let mut wall = Vec::with_capacity(runs);
    let mut last = None;
    let cpu_before = process_cpu_ms();
    for _ in 0..runs {
        let started = Instant::now();
        last = Some(work());
        wall.push(started.elapsed().as_secs_f64() * 1_000.0);
    }
    let cpu = process_cpu_ms()
        .zip(cpu_before)
        .map(|(after, before)| (after - before) / runs as f64);
    wall.sort_by(f64::total_cmp);
    (wall[wall.len() / 2], cpu, last.unwrap())
}

fn report(name: &str, target_ms: f64, (median, cpu): (f64, Option<f64>), detail: &str) {
    let verdict = if median <= target_ms {
        "within"
    } else {
        "OVER"
    };
    println!(
        "{name}: median {median:.1} ms (cpu {} ms per run), target <= {target_ms:.0} ms: {verdict}; {detail}",
        cpu.map_or("?".to_owned(), |ms| format!("{ms:.0}")),
    );
}

fn load(options: &Options, held_back: &mut Vec<NewEvent>) -> Result<Projection, Box<dyn Error>> {
    let config = ProjectionConfig {
        partitions: options.partitions,
        ..ProjectionConfig::default()
    };
    let mut projection = Projection::new(config)?;
    intern_texts(&mut projection)?;
    // Generating alone first, so the load's own time can be told apart.
    let started = Instant::now();
    generate(options, &mut Vec::new(), |_| Ok(()))?;
    let generating = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut loader = projection.loader(options.threads);
    let total = generate(options, held_back, |chunk| Ok(loader.push(chunk)?))?;
    let projection = loader.finish();
    let both = started.elapsed().as_secs_f64();
    println!(
        "load: {} events of {} persons (seed {}), {} held back; generating {generating:.2} s, loading {:.2} s more on {} threads, {} partitions",
        total,
        options.persons,
        options.seed,
        held_back.len(),
        both - generating,
        options.threads,
        options.partitions,
    );
    Ok(projection)
}

fn append_held_back(projection: &mut Projection, held_back: &mut [NewEvent], seed: u64) {
    arrival_order(held_back, seed);
    let started = Instant::now();
    for batch in held_back.chunks(APPEND_BATCH) {
        projection.append(batch).unwrap();
    }
    let (elapsed, count) = (started.elapsed().as_secs_f64(), held_back.len());
    let per_event = elapsed * 1e6 / count.max(1) as f64;
    let compactions = projection.compactions();
    println!(
        "append: {count} events in batches of {APPEND_BATCH}, 5 % late by 1-3 days: {elapsed:.2} s ({per_event:.2} us per event, {compactions} partition compactions included)"
    );
}

/// Times merges, splits and erasures of random persons.
fn identity_changes(projection: &mut Projection, persons: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1d);
    let count = 1_000;
    let mut person = || rng.random_range(0..persons as u64);
    let picks: Vec<[u64; 3]> = (0..count).map(|_| [person(), person(), person()]).collect();
    let per_op = |started: Instant| started.elapsed().as_secs_f64() * 1e6 / count as f64;
    let started = Instant::now();
    let moved: usize = picks.iter().map(|p| projection.merge(p[0], p[1])).sum();
    let merge_us = per_op(started);
    let started = Instant::now();
    let mut split = 0;
    for (index, pick) in (persons as u64..).zip(&picks) {
        let timeline = projection.timeline(pick[0]);
        let seqs: Vec<u64> = timeline.iter().step_by(2).map(|e| e.seq).collect();
        split += projection.split(pick[0], index, &seqs);
    }
    let split_us = per_op(started);
    let started = Instant::now();
    let erased: usize = picks.iter().map(|p| projection.erase(p[2])).sum();
    let erase_us = per_op(started);
    println!(
        "identity: {count} merges {merge_us:.1} us each ({moved} events moved), {count} splits {split_us:.1} us each (reading the timeline included; {split} moved), {count} erasures {erase_us:.1} us each ({erased} removed)"
    );
}

fn funnel_spec() -> FunnelSpec {
    FunnelSpec {
        steps: (1..=4).map(Condition::event).collect(),
        window_ms: 14 * DAY_MS,
        order: FunnelOrder::Ordered,
        exclusions: Vec::new(),
        breakdown: Some(FunnelBreakdown {
            dimension: Dimension::Channel,
            attribution: Attribution::FirstTouch,
        }),
    }
}

/// The funnel by channel (the target's query), then the same funnel without a breakdown.
fn time_funnel(projection: &Projection, options: &Options) {
    let by_channel = funnel_spec();
    let overall = FunnelSpec {
        breakdown: None,
        ..funnel_spec()
    };
    let variants = [
        (
            "funnel ordered 4 steps, 14-day window, by channel",
            by_channel,
        ),
        (
            "funnel ordered 4 steps, 14-day window, no breakdown",
            overall,
        ),
    ];
    for (name, spec) in variants {
        let (median, cpu, funnel) = time(options.runs, || {
            let scope = Scope::default();
            let accumulator = projection
                .funnel(&spec, &scope, options.threads, false)
                .unwrap();
            accumulator.finish(25).0
        });
        let counts: Vec<u64> = funnel.overall.iter().map(|s| s.count).collect();
        let detail = format!(
            "counts {counts:?}, {} breakdown rows",
            funnel.breakdown.len()
        );
        report(name, 150.0, (median, cpu), &detail);
    }
}

/// Writes the events the queries read, person by person, as CSV.
fn write_csv(projection: &Projection, path: &str) -> Result<(), Box<dyn Error>> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "person,time,seq,event,channel")?;
    let mut result = Ok(());
    projection.for_each_person(|person| {
        for event in person.iter() {
            if result.is_ok() {
                result = writeln!(
                    out,
                    "{},{},{},{},{}",
                    person.person(),
                    event.time_ms(),
                    event.seq(),
                    event.event(),
                    event.touch().channel
                );
            }
        }
    });
    result?;
    out.flush()?;
    Ok(())
}

/// The retention and lifecycle models of the targets: weekly in Shanghai, Monday weeks.
fn weekly_models() -> Result<(RetentionModel, LifecycleModel), Box<dyn Error>> {
    let week = Calendar::from_zone_name(Interval::Week, "Asia/Shanghai", Weekday::Mon)?;
    let cohorts = IntervalGrid::from_instant(&week, EPOCH_MS + 7 * DAY_MS, 12)?;
    let retention_options = RetentionOptions {
        cohort_type: CohortType::FirstTime,
        periods: 12,
        ..RetentionOptions::default()
    };
    let retention = RetentionModel::new(&week, &cohorts, retention_options)?;
    let reported = IntervalGrid::from_instant(&week, END_MS - 26 * 7 * DAY_MS, 26)?;
    let lifecycle = LifecycleModel::new(&week, &reported, 3)?;
    Ok((retention, lifecycle))
}

fn time_weekly(projection: &Projection, options: &Options) -> Result<(), Box<dyn Error>> {
    let (retention_model, lifecycle_model) = weekly_models()?;
    let scope = Scope::default();
    let retention = RetentionSpec {
        start: Condition::any(),
        returning: Condition::any(),
        breakdown: None,
    };
    let (median, cpu, result) = time(options.runs, || {
        let accumulator = projection
            .retention(&retention_model, &retention, &scope, options.threads)
            .unwrap();
        accumulator.result(END_MS, 25)
    });
    let cohorted: u64 = result.tables[0].cohorts.iter().map(|c| c.size).sum();
    let detail = format!("cohorted {cohorted}");
    let name = "retention weekly, 12 first-time cohorts";
    report(name, 300.0, (median, cpu), &detail);
    let lifecycle = LifecycleSpec {
        activity: Condition::any(),
        first_seen: FirstSeen::EarliestEvent,
    };
    let (median, cpu, intervals) = time(options.runs, || {
        let accumulator = projection
            .lifecycle(&lifecycle_model, &lifecycle, &scope, options.threads)
            .unwrap();
        accumulator.intervals()
    });
    let new: u64 = intervals.iter().map(|i| i.counts.new).sum();
    let (name, detail) = ("lifecycle 26 weeks, K = 3", format!("new {new}"));
    report(name, 300.0, (median, cpu), &detail);
    Ok(())
}

fn time_paths(projection: &Projection, options: &Options) {
    let path_options = PathOptions::default();
    let paths = PathSpec {
        item: Dimension::Event,
        events: None,
    };
    let (median, cpu, edges) = time(options.runs, || {
        let scope = Scope::default();
        let accumulator = projection
            .paths(&path_options, &paths, &scope, options.threads)
            .unwrap();
        accumulator.graph().top_edges(EdgeSelection::default())
    });
    let heaviest = edges.first().map_or(0, |e| e.stats.transitions);
    let detail = format!("{} edges, heaviest {heaviest} transitions", edges.len());
    report("paths 5 steps, top 50 edges", 500.0, (median, cpu), &detail);
}

/// Prints a baseline timing.
fn print_baseline(name: &str, (median, cpu): (f64, Option<f64>)) {
    let cpu = cpu.map_or("?".to_owned(), |ms| format!("{ms:.0}"));
    println!("baseline {name}: median {median:.1} ms (cpu {cpu} ms per run)");
}

/// The same models on inputs materialised before the clock starts, as the analytics
/// crate's own benchmarks run them: the difference is the cost of reading the projection.
fn baseline(projection: &Projection, options: &Options) -> Result<(), Box<dyn Error>> {
    let (scope, spec, runs, threads) = (
        Scope::default(),
        funnel_spec(),
        options.runs,
        options.threads,
    );
    let mut columns = vec![FunnelColumns::default(); projection.config().partitions];
    for (partition, column) in columns.iter_mut().enumerate() {
        column.fill(projection, &spec, &scope, partition)?;
    }
    let batches: Vec<_> = columns.iter().map(FunnelColumns::batch).collect();
    let funnel = projection.funnel_definition(&spec)?.validate()?;
    let (median, cpu, _) = time(runs, || {
        run_partitions(&funnel, &batches, false).unwrap().finish(25)
    });
    print_baseline(
        "funnel on materialised batches (matching events only)",
        (median, cpu),
    );
    let (mut retention, mut items) = (Vec::new(), Vec::new());
    projection.for_each_person(|person| {
        let events = person.to_events();
        let flags = START | RETURN;
        let starts = events.iter().map(|e| RetentionEvent {
            time_ms: e.time_ms,
            flags,
            breakdown: 0,
        });
        let path = events.iter().map(|e| PathEvent {
            time_ms: e.time_ms,
            seq: e.seq,
            item: e.event,
        });
        if !events.is_empty() {
            retention.push(starts.collect::<Vec<_>>());
            items.push(path.collect::<Vec<_>>());
        }
    });
    let times: Vec<Vec<i64>> = retention
        .iter()
        .map(|r| r.iter().map(|e| e.time_ms).collect())
        .collect();
    let (retention_model, lifecycle_model) = weekly_models()?;
    let slices: Vec<&[RetentionEvent]> = retention.iter().map(Vec::as_slice).collect();
    let (median, cpu, _) = time(runs, || {
        retention_model.run(&slices, threads).result(END_MS, 25)
    });
    print_baseline("retention on materialised timelines", (median, cpu));
    let persons: Vec<LifecyclePerson<'_>> = times
        .iter()
        .map(|own| LifecyclePerson {
            first_seen_ms: own.first().copied(),
            activity_ms: own,
        })
        .collect();
    let (median, cpu, _) = time(runs, || lifecycle_model.run(&persons, threads).intervals());
    print_baseline("lifecycle on materialised timelines", (median, cpu));
    let slices: Vec<&[PathEvent]> = items.iter().map(Vec::as_slice).collect();
    let path_options = PathOptions::default();
    let (median, cpu, _) = time(runs, || {
        let graph = paths::run(&slices, &path_options, threads).unwrap().graph();
        graph.top_edges(EdgeSelection::default())
    });
    print_baseline("paths on materialised timelines", (median, cpu));
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let options = parse_options()?;
    let mut held_back = Vec::new();
    let start = resident_bytes().unwrap_or(0);
    let mut projection = load(&options, &mut held_back)?;
    let held = held_back.capacity() * size_of::<NewEvent>();
    print_memory("memory after load", &projection.memory(), start + held);
    append_held_back(&mut projection, &mut held_back, options.seed);
    drop(held_back);
    print_memory("memory after appends", &projection.memory(), start);
    identity_changes(&mut projection, options.persons, options.seed);
    print_memory("memory after identity changes", &projection.memory(), start);
    if options.compact {
        let started = Instant::now();
        projection.compact_all(options.threads);
        let elapsed = started.elapsed().as_secs_f64() * 1_000.0;
        println!("compacted every partition in {elapsed:.0} ms");
        print_memory("memory after compaction", &projection.memory(), start);
    }
    if let Some(path) = &options.csv {
        write_csv(&projection, path)?;
        println!("wrote the events to {path}");
    }
    let wanted = |name: &str| options.only.as_deref().is_none_or(|only| only == name);
    if wanted("funnel") {
        time_funnel(&projection, &options);
    }
    if wanted("weekly") {
        time_weekly(&projection, &options)?;
    }
    if wanted("paths") {
        time_paths(&projection, &options);
    }
    if options.baseline {
        baseline(&projection, &options)?;
    }
    Ok(())
}
