//! Generation benchmark: writes a run to a temporary directory, prints records per second and
//! peak resident memory (VmHWM), then deletes the output.
//!
//! `cargo run --release -p touchline-sim --example bench_large -- [PERSONS] [TEMPLATE]`
//! (PERSONS defaults to the `large` preset, 1,000,000).

use std::time::Instant;

use touchline_sim::{SimConfig, TemplateKind};

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let persons: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let template = match args.next().as_deref() {
        Some("healthcare") => TemplateKind::Healthcare,
        _ => TemplateKind::Retail,
    };
    let dir = tempfile::Builder::new()
        .prefix("touchline-sim-bench")
        .tempdir()?;
    let cfg = SimConfig::new(template, persons, 42);
    let started = Instant::now();
    let mut last_print = Instant::now();
    let summary = touchline_sim::generate(cfg, dir.path(), &mut |p| {
        if last_print.elapsed().as_secs() >= 10 {
            last_print = Instant::now();
            eprintln!(
                "bench: {}/{} persons, {} records",
                p.persons_done, p.persons_total, p.records
            );
        }
    })?;
    let secs = started.elapsed().as_secs_f64();
    let bytes: u64 = walk(dir.path());
    println!("persons: {persons}");
    println!("records: {}", summary.records);
    println!(
        "records per person: {:.1}",
        summary.records as f64 / persons as f64
    );
    println!("seconds: {secs:.1}");
    println!("records/s: {:.0}", summary.records as f64 / secs);
    println!("output bytes: {bytes}");
    println!("peak rss KiB (VmHWM): {}", peak_rss_kib().unwrap_or(0));
    Ok(())
}

fn walk(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                walk(&path)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}
