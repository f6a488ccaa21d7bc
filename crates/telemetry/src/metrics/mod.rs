//! Metrics through the OpenTelemetry metrics API, read by Prometheus and exported over OTLP.
//!
//! What belongs here:
//! - [`install`]: builds the process's `SdkMeterProvider` with a Prometheus reader (always) and a
//!   periodic OTLP/gRPC exporter (when an endpoint is configured, like spans), and makes it the
//!   global meter provider. [`crate::init`] calls it; tests that want metrics without the
//!   `tracing` subscriber call it directly.
//! - [`serve_metrics`]: the `GET /metrics` scrape endpoint over a listener the caller binds.
//! - [`RpcMetricsLayer`]: per-call duration and status of every gRPC server call.
//! - [`pipeline`]: typed instruments for the event pipeline, so other crates record lag,
//!   quarantines, cache lookups and import progress without touching OpenTelemetry.
//!
//! What does not: choosing ports, business rules about what to count, or attributes of
//! unbounded cardinality (message ids, identifiers, raw paths).

mod endpoint;
mod pipeline;
mod rpc;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};
use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::Meter;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::config::TelemetryConfig;

pub use endpoint::{MetricsHandle, serve_metrics};
pub use pipeline::{PipelineMetrics, pipeline};
pub use rpc::{
    RpcMetricsBody, RpcMetricsFuture, RpcMetricsLayer, RpcMetricsService, parse_grpc_timeout,
};

/// Set once a meter provider has been made global, so a second one is refused: instruments
/// created from the first would otherwise keep reporting to a provider nobody reads.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The Prometheus registry of the installed provider, for [`handle`].
static HANDLE: OnceLock<MetricsHandle> = OnceLock::new();

/// The instrumentation scope of every instrument this crate creates.
fn meter() -> Meter {
    let scope = InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    opentelemetry::global::meter_with_scope(scope)
}

/// Whether [`install`] (directly or through [`crate::init`]) has run in this process.
pub(crate) fn is_installed() -> bool {
    INSTALLED.load(Ordering::SeqCst)
}

/// The scrape handle of the installed meter provider, for [`serve_metrics`].
///
/// Before [`install`] (or in a process that never calls it) this is an empty registry, so a
/// scrape endpoint still answers, with no series.
pub fn handle() -> MetricsHandle {
    HANDLE.get().cloned().unwrap_or_default()
}

/// The process's meter provider and its scrape handle. Flush it with [`Metrics::shutdown`]
/// (the [`crate::TelemetryGuard`] does so for [`crate::init`]).
#[derive(Debug)]
pub struct Metrics {
    provider: SdkMeterProvider,
    handle: MetricsHandle,
}

impl Metrics {
    /// The handle [`serve_metrics`] reads.
    pub fn handle(&self) -> MetricsHandle {
        self.handle.clone()
    }

    /// Exports what the OTLP reader has not sent yet and shuts the provider down. Blocks while
    /// the exporter drains, like [`crate::TelemetryGuard::shutdown`].
    pub fn shutdown(self) -> anyhow::Result<()> {
        let on_multi_thread_runtime = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        let result = if on_multi_thread_runtime {
            tokio::task::block_in_place(|| self.provider.shutdown())
        } else {
            self.provider.shutdown()
        };
        result.context("shutting down the meter provider")
    }
}

/// Builds the meter provider for `cfg` and makes it the global one.
///
/// Errors when exporting is asked for outside a Tokio runtime, when an exporter cannot be
/// built, and when a provider was already installed in this process.
pub fn install(cfg: &TelemetryConfig) -> anyhow::Result<Metrics> {
    let metrics = build(cfg)?;
    install_built(&metrics)?;
    Ok(metrics)
}

/// Makes an already built provider global; see [`install`].
pub(crate) fn install_built(metrics: &Metrics) -> anyhow::Result<()> {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        let _ = metrics.provider.shutdown();
        bail!("a meter provider is already installed in this process");
    }
    let _ = HANDLE.set(metrics.handle.clone());
    opentelemetry::global::set_meter_provider(metrics.provider.clone());
    Ok(())
}

/// A meter provider reporting to a fresh Prometheus registry and, with `cfg.otlp_endpoint`
/// set, to an OTLP/gRPC collector every 60 s (`OTEL_METRIC_EXPORT_INTERVAL` overrides).
pub(crate) fn build(cfg: &TelemetryConfig) -> anyhow::Result<Metrics> {
    let registry = prometheus::Registry::new();
    let prometheus_reader = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .context("building the prometheus metrics reader")?;
    let resource = Resource::builder()
        .with_service_name(cfg.service_name.clone())
        .build();
    let mut builder = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(prometheus_reader);
    if let Some(endpoint) = cfg.otlp_endpoint.as_deref() {
        if tokio::runtime::Handle::try_current().is_err() {
            bail!(
                "exporting metrics to {endpoint:?} needs a tokio runtime; call init from inside one"
            );
        }
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .with_context(|| format!("building the otlp metric exporter for {endpoint:?}"))?;
        builder = builder.with_periodic_exporter(exporter);
    }
    Ok(Metrics {
        provider: builder.build(),
        handle: MetricsHandle::new(registry),
    })
}
