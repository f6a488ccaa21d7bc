//! Arbitrary events through the real services, collection to modeling: any Unicode (NUL,
//! controls, emoji, direction marks, lone combining marks) in every string field, every field
//! at its limit and one past it, nesting up to, past and far past what the stages take,
//! payloads around 64 KiB, NaN and ±Infinity, up to 1,500 identifiers, timestamps of every
//! form, message ids repeated within and across batches. Afterwards every acknowledged event
//! is clean in the event store, quarantined with a reason, set aside as a dead letter, or a
//! counted duplicate; the quality report balances and agrees; a canary of another tenant and
//! each tenant's sentinel reach modeling, so no consumer is stuck.
//!
//! `FUZZ_SEED` replays another seed; the long run is the `fuzz-pipeline` binary.

#[path = "fuzz_pipeline_gen.rs"]
mod generator;

use touchline_testkit::TestApp;

const SEED: u64 = 0x7fa5_2024_c0ff_ee01;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_events_end_clean_quarantined_or_counted_and_stop_no_consumer()
-> anyhow::Result<()> {
    crate::init();
    let seed = match std::env::var("FUZZ_SEED") {
        Ok(text) => u64::from_str_radix(text.trim_start_matches("0x"), 16)?,
        Err(_) => SEED,
    };
    let app = TestApp::spawn().await?;
    let plan = generator::Plan {
        seed,
        events: 5_000,
        dictionary_events: 1_500,
    };
    let report = generator::run(&app, &plan).await?;
    println!("{}", report.summary());
    let failures = report.failures();
    assert!(
        failures.is_empty(),
        "seed {seed:#x} (FUZZ_SEED={seed:x}):\n{}",
        failures.join("\n")
    );
    let gaps = report.coverage_gaps();
    assert!(gaps.is_empty(), "seed {seed:#x}: {}", gaps.join("; "));
    app.stop().await;
    Ok(())
}
