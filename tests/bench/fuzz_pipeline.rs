//! The long cross-stage fuzz run: arbitrary events (default 100,000) through the real
//! application in-process against local PostgreSQL and Redis, then every acknowledged event
//! accounted for, exactly as the end-to-end fuzz test does with fewer. Prints the counts per
//! outcome and per quarantine reason and the elapsed time; exits non-zero when an invariant
//! fails.
//!
//! `cargo run --release -p touchline-e2e --bin fuzz-pipeline -- [EVENTS] [SEED_HEX]`

#[path = "../e2e/fuzz_pipeline_gen.rs"]
mod generator;

use touchline_testkit::{TestApp, TestDatabase};

const DEFAULT_SEED: u64 = 0x7fa5_2024_c0ff_ee01;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let events: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let seed = args
        .next()
        .map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16))
        .transpose()?
        .unwrap_or(DEFAULT_SEED);
    let app = TestApp::spawn_with(TestDatabase::create().await?, |config| {
        config.database.max_connections = 16;
    })
    .await?;
    let plan = generator::Plan {
        seed,
        events,
        dictionary_events: events / 4,
    };
    let report = generator::run(&app, &plan).await;
    app.stop().await;
    let report = report?;
    print!("{}", report.summary());
    let failures = report.failures();
    let gaps = report.coverage_gaps();
    for line in failures.iter().chain(&gaps) {
        eprintln!("FAILED: {line}");
    }
    if failures.is_empty() && gaps.is_empty() {
        println!("every acknowledged event accounted for; the quality report balances");
        Ok(())
    } else {
        anyhow::bail!(
            "seed {seed:#x}: {} invariants failed",
            failures.len() + gaps.len()
        )
    }
}
