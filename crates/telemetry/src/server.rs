//! Server-side tracing for tonic: one `grpc.server` span per RPC, continuing the caller's trace.
//!
//! The span's parent is the context the caller sent in `traceparent`/`tracestate`, so the
//! server span and the caller's span share one trace. The gRPC status is taken from the
//! response headers, which is where tonic puts it for every error a handler returns
//! ("trailers-only" responses); a successful unary response carries its status in trailers,
//! which the span never sees, so a missing header means OK.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use opentelemetry::trace::TraceContextExt;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation::extract_context;

/// A tower layer for tonic servers that wraps every request in a `grpc.server` span.
///
/// Span fields: `rpc.system = "grpc"`, `rpc.service`, `rpc.method`, `otel.kind = "server"`,
/// `otel.name = "<service>/<method>"` (the name exporters show), and `grpc.status_code`,
/// recorded when the response is ready. Codes that OpenTelemetry's gRPC conventions count as
/// server faults also set the span status to error.
///
/// The span ends as soon as the handler has produced the response head, before the response
/// body is streamed, so exporters see it even if the client disconnects mid-stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcServerTraceLayer;

impl GrpcServerTraceLayer {
    /// Creates the layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> tower::Layer<S> for GrpcServerTraceLayer {
    type Service = GrpcServerTraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerTraceService { inner }
    }
}

/// The service produced by [`GrpcServerTraceLayer`].
#[derive(Debug, Clone)]
pub struct GrpcServerTraceService<S> {
    inner: S,
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for GrpcServerTraceService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = GrpcServerTraceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let span = request_span(&request);
        // Calling the inner service inside the span lets handlers that do work eagerly in
        // `call` (before the first poll) log under the right span too.
        let inner = span.in_scope(|| self.inner.call(request));
        GrpcServerTraceFuture {
            inner,
            span: Some(span),
        }
    }
}

/// Builds the span for one request, parented on the caller's propagated context.
fn request_span<B>(request: &http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    // gRPC paths are `/<package.Service>/<Method>`; anything else keeps the raw path so the
    // span is still recognisable.
    let (service, method) = path
        .strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .unwrap_or(("", path));
    let span = tracing::info_span!(
        "grpc.server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        otel.kind = "server",
        otel.name = format_args!("{service}/{method}"),
        grpc.status_code = Empty,
        otel.status_code = Empty,
    );
    let parent = extract_context(request.headers());
    if parent.span().span_context().is_valid() {
        // Fails only when the span is filtered out or has no OpenTelemetry layer, in which case
        // there is nothing to parent.
        let _ = span.set_parent(parent);
    }
    span
}

pin_project_lite::pin_project! {
    /// Response future of [`GrpcServerTraceService`]: polls the handler inside the request
    /// span and closes the span when the response is ready.
    #[derive(Debug)]
    pub struct GrpcServerTraceFuture<F> {
        #[pin]
        inner: F,
        span: Option<tracing::Span>,
    }
}

impl<F, ResBody, E> Future for GrpcServerTraceFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(span) = this.span.as_ref() else {
            // Polled again after completion: the span is already closed, so just forward.
            return this.inner.poll(cx);
        };
        let result = {
            let _entered = span.enter();
            match this.inner.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => result,
            }
        };
        let code = match &result {
            Ok(response) => grpc_status_code(response.headers()),
            // The transport failed the call before any gRPC status existed: UNKNOWN.
            Err(_) => 2,
        };
        span.record("grpc.status_code", code);
        if is_server_fault(code) {
            span.record("otel.status_code", "error");
        }
        // Dropping our handle ends the span now, before the body streams (see the layer docs).
        *this.span = None;
        Poll::Ready(result)
    }
}

/// The `grpc-status` response header as a number; absent (or unreadable) means OK, because
/// tonic only sends the status in headers for trailers-only responses.
fn grpc_status_code(headers: &http::HeaderMap) -> i64 {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i64>().ok())
        .unwrap_or(0)
}

/// Whether a gRPC status code marks a server span as failed, per OpenTelemetry's gRPC semantic
/// conventions: client mistakes such as NOT_FOUND or INVALID_ARGUMENT are not server errors.
fn is_server_fault(code: i64) -> bool {
    // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_header_is_read_and_defaults_to_ok() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_status_code(&headers), 0);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(grpc_status_code(&headers), 5);
        headers.insert("grpc-status", http::HeaderValue::from_static("garbage"));
        assert_eq!(grpc_status_code(&headers), 0);
    }

    #[test]
    fn only_server_faults_mark_the_span_failed() {
        assert!(!is_server_fault(0));
        assert!(!is_server_fault(3)); // INVALID_ARGUMENT
        assert!(!is_server_fault(5)); // NOT_FOUND
        assert!(!is_server_fault(16)); // UNAUTHENTICATED
        assert!(is_server_fault(2));
        assert!(is_server_fault(13));
        assert!(is_server_fault(14));
    }
}
