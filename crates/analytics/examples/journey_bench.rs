//! Times lifecycle, retention and paths on synthetic data and prints the median of several
//! runs: 10 M events of 1 M persons over 180 days, two threads.
//!
//! `cargo run --release -p touchline-analytics --example journey_bench [seed] [persons] [runs]`
//!
//! `... --example journey_bench export <dir> [seed] [persons]` instead writes a smaller data
//! set and this crate's results on it as CSV files (events, daily lifecycle in Europe/Berlin
//! across the spring clock change, weekly retention of both cohort types, path edges), so
//! they can be recomputed independently, e.g. in SQL with ClickHouse's time-zone functions.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark's setup is fixed, not input-driven"
)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::Weekday;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use touchline_analytics::calendar::{Calendar, Interval, IntervalGrid};
use touchline_analytics::lifecycle::{LifecycleModel, LifecyclePerson};
use touchline_analytics::paths::{self, EdgeSelection, PathEvent, PathOptions};
use touchline_analytics::retention::{
    CohortType, RETURN, RetentionEvent, RetentionModel, RetentionOptions, START,
};

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;
/// 2025-01-01T00:00:00Z, the first day of the synthetic data.
const EPOCH_MS: i64 = 1_735_689_600_000;
const DAYS: i64 = 180;
const THREADS: usize = 2;
/// Distinct items (event codes); low codes are far more frequent.
const ITEMS: u32 = 40;

/// Every person's events, flattened, with each person's range.
struct Dataset {
    first_seen: Vec<i64>,
    ranges: Vec<(usize, usize)>,
    times: Vec<i64>,
    retention: Vec<RetentionEvent>,
    paths: Vec<PathEvent>,
}

/// Which events are retention start events.
#[derive(Clone, Copy)]
enum Starts {
    /// Only each person's first event (first-time retention of "first visit").
    FirstEvent,
    /// Events of the five most frequent items (start and return events differ).
    FrequentItems,
}

fn generate(seed: u64, persons: usize, starts: Starts) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = Dataset {
        first_seen: Vec::with_capacity(persons),
        ranges: Vec::with_capacity(persons),
        times: Vec::with_capacity(persons * 10),
        retention: Vec::with_capacity(persons * 10),
        paths: Vec::with_capacity(persons * 10),
    };
    for _ in 0..persons {
        let begin = data.times.len();
        let count = rng.random_range(1..=19usize);
        let mut time = EPOCH_MS + rng.random_range(0..DAYS * DAY_MS);
        data.first_seen.push(time);
        for seq in 0..count {
            let item = skewed_item(&mut rng);
            let is_start = match starts {
                Starts::FirstEvent => seq == 0,
                Starts::FrequentItems => item < 5,
            };
            // Every event is a return event.
            let flags = if is_start { START | RETURN } else { RETURN };
            data.times.push(time);
            data.retention.push(RetentionEvent {
                time_ms: time,
                flags,
                breakdown: 0,
            });
            data.paths.push(PathEvent {
                time_ms: time,
                seq: seq as u64,
                item,
            });
            time += if rng.random_bool(0.7) {
                rng.random_range(0..10 * MINUTE_MS)
            } else {
                rng.random_range(DAY_MS / 2..20 * DAY_MS)
            };
        }
        data.ranges.push((begin, data.times.len()));
    }
    data
}

fn skewed_item(rng: &mut ChaCha8Rng) -> u32 {
    let a = rng.random_range(0..ITEMS);
    let b = rng.random_range(0..ITEMS);
    a.min(b)
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// The process's CPU time (user + system) so far, from `/proc/self/stat` where there is one:
/// on a busy machine wall time overstates the work, CPU time divided by the threads does not.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 per second on every mainstream configuration.
    Some(Duration::from_millis(ticks * 10))
}

/// Median wall time of `runs` runs, mean CPU time per run, and the last run's output.
fn time<T>(runs: usize, mut work: impl FnMut() -> T) -> (Duration, Option<Duration>, T) {
    let mut durations = Vec::with_capacity(runs);
    let mut last = None;
    let cpu_before = cpu_time();
    for _ in 0..runs {
        let started = Instant::now();
        last = Some(work());
        durations.push(started.elapsed());
    }
    let cpu = cpu_before
        .zip(cpu_time())
        .map(|(before, after)| (after - before) / runs as u32);
    (median(durations), cpu, last.unwrap())
}

impl Dataset {
    fn lifecycle_persons(&self) -> Vec<LifecyclePerson<'_>> {
        self.ranges
            .iter()
            .zip(&self.first_seen)
            .map(|(&(a, b), &first)| LifecyclePerson {
                first_seen_ms: Some(first),
                activity_ms: &self.times[a..b],
            })
            .collect()
    }

    fn retention_persons(&self) -> Vec<&[RetentionEvent]> {
        self.ranges
            .iter()
            .map(|&(a, b)| &self.retention[a..b])
            .collect()
    }

    fn path_persons(&self) -> Vec<&[PathEvent]> {
        self.ranges
            .iter()
            .map(|&(a, b)| &self.paths[a..b])
            .collect()
    }
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("export") {
        let numbers: Vec<u64> = raw.iter().skip(2).map(|a| a.parse().unwrap()).collect();
        let dir = std::path::PathBuf::from(raw.get(1).expect("export needs a directory"));
        let seed = numbers.first().copied().unwrap_or(7);
        let persons = numbers.get(1).copied().unwrap_or(20_000) as usize;
        export(&dir, seed, persons).unwrap();
        return;
    }
    let args: Vec<u64> = raw.iter().map(|a| a.parse().unwrap()).collect();
    let seed = args.first().copied().unwrap_or(7);
    let persons = args.get(1).copied().unwrap_or(1_000_000) as usize;
    let runs = args.get(2).copied().unwrap_or(5) as usize;
    let started = Instant::now();
    let data = generate(seed, persons, Starts::FirstEvent);
    println!(
        "generated {} events of {persons} persons over {DAYS} days (seed {seed}) in {:?}",
        data.times.len(),
        started.elapsed()
    );
    let week = Calendar::from_zone_name(Interval::Week, "Asia/Shanghai", Weekday::Mon).unwrap();
    bench_lifecycle(&data, &week, runs);
    bench_retention(&data, &week, runs);
    bench_paths(&data, runs);
}

/// Lifecycle: the last 26 weeks, K = 3.
fn bench_lifecycle(data: &Dataset, week: &Calendar, runs: usize) {
    let end_ms = EPOCH_MS + DAYS * DAY_MS;
    let grid = IntervalGrid::from_instant(week, end_ms - 26 * 7 * DAY_MS, 26).unwrap();
    let model = LifecycleModel::new(week, &grid, 3).unwrap();
    let persons = data.lifecycle_persons();
    let (elapsed, cpu, report) = time(runs, || model.run(&persons, THREADS).intervals());
    let new: u64 = report.iter().map(|i| i.counts.new).sum();
    println!("lifecycle 26 weeks, K=3: median {elapsed:?}, cpu per run {cpu:?} (new: {new})");
}

/// Retention: 12 weekly first-time cohorts, 12 periods.
fn bench_retention(data: &Dataset, week: &Calendar, runs: usize) {
    let end_ms = EPOCH_MS + DAYS * DAY_MS;
    let cohorts = IntervalGrid::from_instant(week, EPOCH_MS + 7 * DAY_MS, 12).unwrap();
    let options = RetentionOptions {
        cohort_type: CohortType::FirstTime,
        periods: 12,
        ..RetentionOptions::default()
    };
    let model = RetentionModel::new(week, &cohorts, options).unwrap();
    let persons = data.retention_persons();
    let (elapsed, cpu, result) = time(runs, || model.run(&persons, THREADS).result(end_ms, 25));
    let cohorted: u64 = result.tables[0].cohorts.iter().map(|c| c.size).sum();
    println!(
        "retention 12 weekly cohorts: median {elapsed:?}, cpu per run {cpu:?} (cohorted: {cohorted})"
    );
}

/// Paths: five steps, the 50 heaviest edges.
fn bench_paths(data: &Dataset, runs: usize) {
    let persons = data.path_persons();
    let options = PathOptions::default();
    let (elapsed, cpu, edges) = time(runs, || {
        let graph = paths::run(&persons, &options, THREADS).unwrap().graph();
        graph.top_edges(EdgeSelection::default())
    });
    let heaviest = edges.first().map_or(0, |e| e.stats.transitions);
    println!(
        "paths 5 steps, 50 heaviest edges: median {elapsed:?}, cpu per run {cpu:?} (heaviest: {heaviest})"
    );
}

/// Writes the synthetic data and this crate's results as CSV files into `dir`.
fn export(dir: &std::path::Path, seed: u64, persons: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let data = generate(seed, persons, Starts::FrequentItems);
    let mut events = String::from("person,time_ms,seq,item,flags,first_seen_ms\n");
    for (person, &(a, b)) in data.ranges.iter().enumerate() {
        for (path, retention) in data.paths[a..b].iter().zip(&data.retention[a..b]) {
            let first = data.first_seen[person];
            let (time, seq, item, flags) = (path.time_ms, path.seq, path.item, retention.flags);
            writeln!(events, "{person},{time},{seq},{item},{flags},{first}").unwrap();
        }
    }
    std::fs::write(dir.join("events.csv"), events)?;
    std::fs::write(
        dir.join("lifecycle_day_berlin.csv"),
        export_lifecycle(&data),
    )?;
    std::fs::write(
        dir.join("retention_week_berlin.csv"),
        export_retention(&data),
    )?;
    std::fs::write(dir.join("path_edges.csv"), export_paths(&data))?;
    let events = data.times.len();
    println!(
        "exported {events} events of {persons} persons (seed {seed}) to {}",
        dir.display()
    );
    Ok(())
}

/// Daily lifecycle in Berlin, 45 days across the spring change (2025-03-30), K = 3.
fn export_lifecycle(data: &Dataset) -> String {
    let day = Calendar::from_zone_name(Interval::Day, "Europe/Berlin", Weekday::Mon).unwrap();
    let reported = IntervalGrid::from_instant(&day, EPOCH_MS + 73 * DAY_MS, 45).unwrap();
    let model = LifecycleModel::new(&day, &reported, 3).unwrap();
    let mut csv = String::from("start_ms,new,returning,resurrecting,dormant,churned\n");
    for interval in model.run(&data.lifecycle_persons(), THREADS).intervals() {
        let (start, c) = (interval.start_ms, interval.counts);
        let counts = [c.new, c.returning, c.resurrecting, c.dormant, c.churned];
        let counts: Vec<String> = counts.iter().map(u64::to_string).collect();
        writeln!(csv, "{start},{}", counts.join(",")).unwrap();
    }
    csv
}

/// Weekly retention in Berlin (Monday weeks), 12 cohorts, 8 periods, both cohort types.
fn export_retention(data: &Dataset) -> String {
    let week = Calendar::from_zone_name(Interval::Week, "Europe/Berlin", Weekday::Mon).unwrap();
    let cohorts = IntervalGrid::from_instant(&week, EPOCH_MS + 33 * DAY_MS, 12).unwrap();
    let timelines = data.retention_persons();
    let mut csv = String::from("cohort_type,cohort_start_ms,period,size,retained\n");
    let types = [
        ("first_time", CohortType::FirstTime),
        ("recurring", CohortType::Recurring),
    ];
    for (name, cohort_type) in types {
        let options = RetentionOptions {
            cohort_type,
            periods: 8,
            ..RetentionOptions::default()
        };
        let model = RetentionModel::new(&week, &cohorts, options).unwrap();
        let result = model.run(&timelines, THREADS).result(i64::MAX, 1);
        for cohort in &result.tables[0].cohorts {
            let (start, size) = (cohort.start_ms, cohort.size);
            for cell in &cohort.cells {
                let (period, retained) = (cell.period, cell.retained);
                writeln!(csv, "{name},{start},{period},{size},{retained}").unwrap();
            }
        }
    }
    csv
}

/// Paths with the default options: every edge.
fn export_paths(data: &Dataset) -> String {
    let graph = paths::run(&data.path_persons(), &PathOptions::default(), THREADS)
        .unwrap()
        .graph();
    let mut csv = String::from("position,source,target,transitions,persons,total_time_ms\n");
    for edge in &graph.edges {
        let (k, s) = (edge.key, edge.stats);
        let (position, source, target) = (k.position, k.source_item, k.target_item);
        let (transitions, persons, total) = (s.transitions, s.persons, s.total_time_ms);
        writeln!(
            csv,
            "{position},{source},{target},{transitions},{persons},{total}"
        )
        .unwrap();
    }
    csv
}
