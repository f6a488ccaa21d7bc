//! Collection and governance on the reference data set, judged against its ground truth:
//! starts the real services on a fresh database, sends a run of the generator through them and
//! prints how every planted defect and every untouched record ended.
//!
//! `cargo run --release -p touchline-e2e --bin governance-acceptance -- [PERSONS] [SEED] [STAGES]`
//! (PERSONS defaults to the `medium` preset, 20,000; STAGES `all` (default) also scores
//! identity resolution on the event store, `governance` serves collection and governance only).

use touchline::ServiceName;
use touchline_testkit::{TestApp, TestDatabase};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let persons: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let seed: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(42);
    // Warnings of the services go to stderr (RUST_LOG raises verbosity).
    let telemetry = touchline_telemetry::init(&touchline_telemetry::TelemetryConfig {
        filter: "warn".to_owned(),
        ..Default::default()
    })?;
    let all_stages = args.next().as_deref() != Some("governance");
    let app = TestApp::spawn_with(TestDatabase::create().await?, |config| {
        if !all_stages {
            config.services = vec![ServiceName::Collection, ServiceName::Governance];
        }
    })
    .await?;
    let report =
        touchline_e2e::acceptance::run(&app, "acceptance", persons, seed, all_stages).await;
    app.stop().await;
    let report = report?;
    println!("{report}");
    let (planted, handled) = report.defects();
    println!(
        "summary: defects handled {:.3} %, clean records lost or altered {}, instants wrong {}, cross-source recognised {:.3} %, false merges {}",
        handled as f64 * 100.0 / planted.max(1) as f64,
        report.clean_wrong,
        report.instants_wrong,
        report.cross_source.1 as f64 * 100.0 / report.cross_source.0.max(1) as f64,
        report.false_merges
    );
    telemetry.shutdown()?;
    Ok(())
}
