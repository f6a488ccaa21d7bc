//! Observability for every touchline service: logs, traces and trace-context propagation.
//!
//! What belongs here:
//! - [`init`]: the one call a binary makes at start. It installs the global `tracing`
//!   subscriber (formatted logs on stderr, an `EnvFilter`, and an OpenTelemetry layer), sets the
//!   W3C TraceContext propagator, optionally exports spans over OTLP/gRPC, and returns a
//!   [`TelemetryGuard`] that flushes the exporter on shutdown.
//! - Trace-context propagation across gRPC hops ([`TraceInterceptor`] for clients,
//!   [`GrpcServerTraceLayer`] for servers) and across pipeline stages that store a
//!   `traceparent` beside their records ([`current_traceparent`],
//!   [`set_parent_from_traceparent`]).
//! - [`metrics`]: the meter provider (Prometheus and OTLP), the `/metrics` scrape endpoint,
//!   the gRPC server layer [`RpcMetricsLayer`], and typed pipeline instruments.
//! - [`testing`]: an in-memory span exporter so tests can assert on finished spans.
//!
//! What does not: business rules about what to measure, log shipping, or anything
//! service-specific.

mod config;
mod init;
pub mod metrics;
mod propagation;
mod server;
pub mod testing;

pub use config::{LogFormat, TelemetryConfig};
pub use init::{TelemetryGuard, init};
pub use metrics::RpcMetricsLayer;
pub use propagation::{
    TraceInterceptor, current_traceparent, extract_context, inject_context,
    set_parent_from_traceparent,
};
pub use server::{GrpcServerTraceFuture, GrpcServerTraceLayer, GrpcServerTraceService};
