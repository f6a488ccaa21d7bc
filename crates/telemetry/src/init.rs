//! Process-wide telemetry start-up and the guard that flushes it on exit.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogFormat, TelemetryConfig};
use crate::metrics::{self, Metrics, MetricsHandle};

/// Set once [`init`] has installed the global subscriber, so a second call is refused up front
/// instead of building (and leaking) a second exporter.
static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Instrumentation scope reported with every span.
const SCOPE: &str = env!("CARGO_PKG_NAME");

/// Keeps the tracer and meter providers alive; flushes and shuts them down on
/// [`TelemetryGuard::shutdown`] or drop. Hold it in `main` until the server has drained.
#[must_use = "dropping the guard shuts telemetry down immediately"]
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    metrics: Option<Metrics>,
    metrics_handle: MetricsHandle,
}

impl TelemetryGuard {
    /// What the Prometheus scrape endpoint serves: pass it to
    /// [`crate::metrics::serve_metrics`]. The same as [`crate::metrics::handle`].
    pub fn metrics_handle(&self) -> MetricsHandle {
        self.metrics_handle.clone()
    }

    /// Flushes buffered spans and metrics to their exporters and shuts both providers down.
    ///
    /// This blocks while the exporters drain. On a multi-threaded Tokio runtime it moves off
    /// the worker first; on a current-thread runtime call it from `spawn_blocking`, because the
    /// OTLP client needs the runtime to make progress while this waits.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown_providers()
    }

    /// Shuts both providers down, the tracer's first; both are attempted even if one fails.
    fn shutdown_providers(&mut self) -> anyhow::Result<()> {
        let traces = self.shutdown_provider();
        let metrics = self.metrics.take().map_or(Ok(()), Metrics::shutdown);
        traces.and(metrics)
    }

    fn shutdown_provider(&mut self) -> anyhow::Result<()> {
        let Some(provider) = self.provider.take() else {
            return Ok(());
        };
        let on_multi_thread_runtime = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        let result = if on_multi_thread_runtime {
            tokio::task::block_in_place(|| provider.shutdown())
        } else {
            provider.shutdown()
        };
        result.context("shutting down the tracer provider")
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown_providers() {
            tracing::warn!(error = format!("{error:#}"), "telemetry shutdown failed");
        }
    }
}

/// Installs the global `tracing` subscriber and OpenTelemetry pipeline for this process.
///
/// - Logs go to stderr in the configured [`LogFormat`], filtered by `cfg.filter` or a
///   non-empty `RUST_LOG`.
/// - Every span gets an OpenTelemetry span context, so trace context propagates over gRPC even
///   when nothing is exported; with `cfg.otlp_endpoint` set, spans are exported over OTLP/gRPC
///   through a batch processor. Exporting needs a Tokio runtime: call this from inside one.
/// - The global propagator becomes W3C TraceContext (`traceparent`/`tracestate`).
/// - The global meter provider reports to a Prometheus registry (serve it with
///   [`crate::metrics::serve_metrics`] and [`TelemetryGuard::metrics_handle`]) and, with
///   `cfg.otlp_endpoint` set, exports over OTLP/gRPC every 60 s.
///
/// Errors when the filter does not parse, when exporting is asked for outside a Tokio
/// runtime, when an exporter cannot be built, and when a global subscriber or meter provider
/// is already set (a second call, or [`crate::testing::install_in_memory`] or
/// [`crate::metrics::install`] ran first).
pub fn init(cfg: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    let filter = build_filter(&cfg.filter, std::env::var("RUST_LOG").ok())?;
    let provider = build_provider(cfg)?;
    let meters = match metrics::build(cfg) {
        Ok(meters) => meters,
        Err(error) => {
            shutdown_unused(&provider);
            return Err(error);
        }
    };

    if INITIALISED.swap(true, Ordering::SeqCst) || metrics::is_installed() {
        shutdown_unused(&provider);
        let _ = meters.shutdown();
        bail!("telemetry is already initialised in this process");
    }

    // A log file, when configured, takes the lines instead of stderr (the demo keeps its
    // screen for its own output that way); its lines are JSON, as for any non-terminal.
    let file = match &cfg.log_file {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the log file {}", path.display()))?,
        ),
        None => None,
    };
    let use_json = match cfg.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => file.is_some() || !std::io::stderr().is_terminal(),
    };
    let to_terminal = file.is_none() && std::io::stderr().is_terminal();
    let writer = || match &file {
        Some(file) => match file.try_clone() {
            Ok(file) => {
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::sync::Mutex::new(file))
            }
            Err(_) => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
        },
        None => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    // Both formats are built as optional layers so the subscriber has one concrete type.
    let json_layer = use_json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer())
    });
    let pretty_layer = (!use_json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(to_terminal)
            .with_writer(writer())
    });
    let otel_layer = tracing_opentelemetry::layer().with_tracer(provider.tracer(SCOPE));

    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(json_layer)
        .with(pretty_layer)
        .with(otel_layer)
        .try_init();
    if let Err(error) = installed {
        shutdown_unused(&provider);
        let _ = meters.shutdown();
        return Err(error).context("installing the global tracing subscriber");
    }
    metrics::install_built(&meters)?;

    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    // Code that uses the OpenTelemetry API directly gets the same pipeline.
    opentelemetry::global::set_tracer_provider(provider.clone());

    tracing::debug!(
        service_name = %cfg.service_name,
        otlp_endpoint = cfg.otlp_endpoint.as_deref(),
        "telemetry initialised"
    );
    Ok(TelemetryGuard {
        provider: Some(provider),
        metrics_handle: meters.handle(),
        metrics: Some(meters),
    })
}

/// Parses the log filter; a non-empty `RUST_LOG` wins over the configured directives.
fn build_filter(configured: &str, rust_log: Option<String>) -> anyhow::Result<EnvFilter> {
    match rust_log.filter(|value| !value.trim().is_empty()) {
        Some(directives) => EnvFilter::try_new(&directives)
            .with_context(|| format!("parsing RUST_LOG filter {directives:?}")),
        None => EnvFilter::try_new(configured)
            .with_context(|| format!("parsing telemetry filter {configured:?}")),
    }
}

/// A tracer provider for the service, exporting over OTLP/gRPC when an endpoint is set.
fn build_provider(cfg: &TelemetryConfig) -> anyhow::Result<SdkTracerProvider> {
    let resource = Resource::builder()
        .with_service_name(cfg.service_name.clone())
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let Some(endpoint) = cfg.otlp_endpoint.as_deref() else {
        return Ok(builder.build());
    };
    // The tonic client behind the exporter spawns its connection onto the ambient runtime.
    if tokio::runtime::Handle::try_current().is_err() {
        bail!("exporting spans to {endpoint:?} needs a tokio runtime; call init from inside one");
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("building the otlp span exporter for {endpoint:?}"))?;
    Ok(builder.with_batch_exporter(exporter).build())
}

/// Releases a provider that was never installed; it has no spans, so failure is irrelevant.
fn shutdown_unused(provider: &SdkTracerProvider) {
    let _ = provider.shutdown();
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
        MetricsService, MetricsServiceServer,
    };
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use tokio::sync::mpsc;

    #[test]
    fn rust_log_overrides_configured_filter() {
        let filter = build_filter("info", Some("debug,h2=warn".to_owned())).expect("valid");
        assert_eq!(filter.to_string(), "h2=warn,debug");
        let filter = build_filter("info", Some("  ".to_owned())).expect("valid");
        assert_eq!(filter.to_string(), "info");
        let filter = build_filter("touchline_identity=trace", None).expect("valid");
        assert_eq!(filter.to_string(), "touchline_identity=trace");
    }

    #[test]
    fn malformed_filter_is_an_error() {
        let error = build_filter("info,=[", None).expect_err("must not parse");
        assert!(
            format!("{error:#}").contains("telemetry filter"),
            "{error:#}"
        );
        let error = build_filter("info", Some("[{".to_owned())).expect_err("must not parse");
        assert!(format!("{error:#}").contains("RUST_LOG"), "{error:#}");
    }

    #[test]
    fn exporting_outside_a_runtime_is_an_error() {
        let cfg = TelemetryConfig {
            otlp_endpoint: Some("http://127.0.0.1:4317".to_owned()),
            ..TelemetryConfig::default()
        };
        let error = init(&cfg).expect_err("no runtime here");
        assert!(format!("{error:#}").contains("tokio runtime"), "{error:#}");
    }

    /// A minimal OTLP receiver that forwards every export request to the test.
    struct Receiver<T> {
        requests: mpsc::Sender<T>,
    }

    impl<T> Receiver<T> {
        async fn forward(&self, request: T) -> Result<(), tonic::Status> {
            self.requests
                .send(request)
                .await
                .map_err(|_| tonic::Status::unavailable("test receiver gone"))
        }
    }

    #[tonic::async_trait]
    impl TraceService for Receiver<ExportTraceServiceRequest> {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            self.forward(request.into_inner()).await?;
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    #[tonic::async_trait]
    impl MetricsService for Receiver<ExportMetricsServiceRequest> {
        async fn export(
            &self,
            request: tonic::Request<ExportMetricsServiceRequest>,
        ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
            self.forward(request.into_inner()).await?;
            Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
        }
    }

    /// Starts a trace and metrics receiver on an ephemeral port.
    async fn start_receiver() -> (
        std::net::SocketAddr,
        mpsc::Receiver<ExportTraceServiceRequest>,
        mpsc::Receiver<ExportMetricsServiceRequest>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let (traces, received_traces) = mpsc::channel(64);
        let (metrics, received_metrics) = mpsc::channel(64);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(Receiver { requests: traces }))
                .add_service(MetricsServiceServer::new(Receiver { requests: metrics }))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (addr, received_traces, received_metrics)
    }

    /// Waits for an export that carries the counter `name`, and returns its total.
    async fn exported_counter(
        received: &mut mpsc::Receiver<ExportMetricsServiceRequest>,
        name: &str,
    ) -> u64 {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Number;
        let wait = async {
            loop {
                let request = received.recv().await.expect("receiver alive");
                let metrics = request
                    .resource_metrics
                    .into_iter()
                    .flat_map(|resource| resource.scope_metrics)
                    .flat_map(|scope| scope.metrics);
                for metric in metrics.filter(|metric| metric.name == name) {
                    if let Some(Data::Sum(sum)) = metric.data {
                        return sum
                            .data_points
                            .iter()
                            .filter_map(|point| match point.value {
                                Some(Number::AsInt(n)) => u64::try_from(n).ok(),
                                _ => None,
                            })
                            .sum();
                    }
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), wait)
            .await
            .expect("metric exported before the deadline")
    }

    /// The only test in this binary that installs the global subscriber and meter provider, so
    /// it can assert both export paths and that a second `init` is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_and_metrics_reach_an_otlp_receiver_and_second_init_is_refused() {
        let (addr, mut received, mut received_metrics) = start_receiver().await;

        let cfg = TelemetryConfig {
            service_name: "telemetry-otlp-test".to_owned(),
            log_format: LogFormat::Json,
            otlp_endpoint: Some(format!("http://{addr}")),
            ..TelemetryConfig::default()
        };
        let guard = init(&cfg).expect("first init succeeds");
        let second = init(&cfg).expect_err("second init is refused");
        assert!(
            format!("{second:#}").contains("already initialised"),
            "{second:#}"
        );

        // ERROR level so that no RUST_LOG short of `off` filters the span out.
        let span = tracing::error_span!("otlp.export.probe");
        let traceparent = span
            .in_scope(crate::current_traceparent)
            .expect("span has a trace context");
        drop(span);
        crate::metrics::pipeline().count_quarantined("probe", "otlp_probe", 2);
        guard.shutdown().expect("flush and shut down");
        let quarantined = exported_counter(&mut received_metrics, "touchline.quarantine.events");
        assert_eq!(quarantined.await, 2);

        // The trace id is the second dash-separated field of a traceparent.
        let trace_id_hex = traceparent.split('-').nth(1).expect("traceparent trace id");
        let exported = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            loop {
                let request = received.recv().await.expect("receiver alive");
                for resource_spans in request.resource_spans {
                    let service_name = resource_spans
                        .resource
                        .iter()
                        .flat_map(|resource| resource.attributes.iter())
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| kv.value.as_ref())
                        .and_then(|value| value.value.clone());
                    for scope_spans in resource_spans.scope_spans {
                        for span in scope_spans.spans {
                            if span.name == "otlp.export.probe" {
                                return (service_name, span);
                            }
                        }
                    }
                }
            }
        })
        .await
        .expect("probe span exported before the deadline");

        let (service_name, span) = exported;
        assert_eq!(
            service_name,
            Some(Value::StringValue("telemetry-otlp-test".to_owned()))
        );
        let exported_trace_id: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(exported_trace_id, trace_id_hex);
    }
}
