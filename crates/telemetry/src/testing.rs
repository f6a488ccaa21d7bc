//! Test support: capture finished spans in memory so tests can assert on traces.
//!
//! Call [`install_in_memory`] at the start of every test that inspects spans. The first call in
//! a process installs the global subscriber; later calls return the same exporter. Because the
//! subscriber is process-wide, all tests in one binary share one exporter: each test must find
//! its own spans (by trace id or a unique name) instead of counting or resetting everything.
//!
//! A span is exported when its `tracing` span closes, that is when the last handle to it
//! (including the one inside `.instrument(..)`) is dropped; a span that is still open is not
//! in [`InMemorySpanExporter::get_finished_spans`]. Export is synchronous, so once the handle
//! is dropped the span is visible, with no waiting.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();

/// Installs (once per process) a global subscriber that records spans into an in-memory
/// exporter, sets the W3C TraceContext propagator, and returns the exporter.
///
/// Spans at `DEBUG` and above are recorded (the very chatty `TRACE` spans of the HTTP/2 stack
/// are left out). Log lines go to the test harness's captured output, filtered by `RUST_LOG`
/// (default `warn`), so a failing test shows them.
///
/// # Panics
///
/// When another global subscriber was installed first (for example by [`crate::init`]), since
/// no span could then ever reach the exporter and every assertion would fail confusingly.
pub fn install_in_memory() -> InMemorySpanExporter {
    EXPORTER.get_or_init(install).clone()
}

fn install() -> InMemorySpanExporter {
    let exporter = InMemorySpanExporter::default();
    // The simple processor exports on the closing thread, so a closed span is visible at once.
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("touchline-telemetry-testing"))
        .with_filter(LevelFilter::DEBUG);
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let fmt_layer = tracing_subscriber::fmt::layer()
        .with_test_writer()
        .with_filter(log_filter);

    if let Err(error) = tracing_subscriber::registry()
        .with(otel_layer)
        .with(fmt_layer)
        .try_init()
    {
        panic!("install_in_memory needs to own the global subscriber: {error}");
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider);
    exporter
}
