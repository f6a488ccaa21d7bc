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
//!
//! The same subscriber also keeps every log line of the process at `DEBUG` and above (the
//! HTTP/2 and database drivers at `WARN`) as text, for tests that must prove what the logs do
//! not hold — clear personal data, above all ([`captured_logs`]).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
static LOGS: OnceLock<LogCapture> = OnceLock::new();

/// The most log text kept; later lines are counted, not kept, so a long test cannot exhaust
/// memory.
const MAX_CAPTURED_BYTES: usize = 64 * 1024 * 1024;

/// Log text written so far, shared by every writer the formatter makes.
#[derive(Debug, Clone, Default)]
struct LogCapture {
    text: Arc<Mutex<CapturedText>>,
}

#[derive(Debug, Default)]
struct CapturedText {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut text = match self.text.lock() {
            Ok(text) => text,
            Err(poisoned) => poisoned.into_inner(),
        };
        if text.bytes.len() + buf.len() <= MAX_CAPTURED_BYTES {
            text.bytes.extend_from_slice(buf);
        } else {
            text.dropped += buf.len();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every log line the process wrote since [`install_in_memory`], as plain text (no colours),
/// and how many bytes past the cap were not kept.
pub fn captured_logs() -> (String, usize) {
    let Some(capture) = LOGS.get() else {
        return (String::new(), 0);
    };
    let text = match capture.text.lock() {
        Ok(text) => text,
        Err(poisoned) => poisoned.into_inner(),
    };
    (
        String::from_utf8_lossy(&text.bytes).into_owned(),
        text.dropped,
    )
}

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
    let capture = LOGS.get_or_init(LogCapture::default).clone();
    let quiet = tracing::Level::WARN;
    let capture_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(capture)
        .with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing::Level::DEBUG)
                .with_target("sqlx", quiet)
                .with_target("h2", quiet)
                .with_target("hyper", quiet)
                .with_target("hyper_util", quiet)
                .with_target("tower", quiet)
                .with_target("redis", quiet),
        );

    if let Err(error) = tracing_subscriber::registry()
        .with(otel_layer)
        .with(fmt_layer)
        .with(capture_layer)
        .try_init()
    {
        panic!("install_in_memory needs to own the global subscriber: {error}");
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider);
    exporter
}
