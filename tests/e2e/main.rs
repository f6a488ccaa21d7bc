//! End-to-end suite: the real application on port 0, real PostgreSQL (a
//! fresh database per test), real Redis (a key prefix per test), called
//! with the generated gRPC clients.
#![allow(
    clippy::too_many_lines,
    reason = "end-to-end scenarios read top to bottom, one step after another"
)]

mod acceptance;
mod architecture;
mod attribution;
mod auth;
mod bad_input;
mod determinism;
mod health;
mod imports;
mod ingest_stream;
mod metadata_limits;
mod metrics;
mod model_triggers;
mod outage;
mod pipeline;
mod pipeline_status;
mod poison;
mod properties;
mod reassigned_numbers;
mod segment_identifiers;
mod segments;
mod segments_fuzz;
mod sim_send;
mod sources;
mod tracing_spans;
mod transport_codes;
mod trigger_definitions;
mod truth_funnel;
mod unidentified_conversions;
mod webhook_concurrency;
mod webhook_operations;
mod webhooks;

/// Installs the process-wide in-memory span exporter before any test runs
/// spans, so every test sees the same subscriber.
pub fn init() -> opentelemetry_sdk::trace::InMemorySpanExporter {
    touchline_telemetry::testing::install_in_memory()
}
mod churn;
mod cleaning;
mod cohorts;
mod collection_fuzz;
mod conversion_keys;
mod dictionary;
mod funnels;
mod fuzz_pipeline;
mod journey_gap;
mod quality;
mod quarantine;
mod read_your_writes;
mod reprocess_apply;
mod restart;
