//! Server-side RPC metrics for tonic: the duration and final status of every call.
//!
//! One histogram, `rpc.server.call.duration` in seconds, with `rpc.system = "grpc"`,
//! `rpc.service`, `rpc.method` and `rpc.grpc.status_code`. Its `_count` is the call rate and
//! the share of non-zero codes the error rate, so no separate counter is kept.
//!
//! A call ends when its status is known: at the response head for trailers-only answers (every
//! error tonic or a handler returns before streaming), otherwise at the trailers that close the
//! response body. A body that ends without trailers counts as the HTTP status implies (200 →
//! OK); one dropped before its end, or a call dropped before its response, counts as CANCELLED,
//! or DEADLINE_EXCEEDED once its deadline has passed. tonic applies its own timeout (and
//! concurrency limit) outside every layer, so a call it cuts short is only seen being dropped;
//! tell the layer the server's timeout with [`RpcMetricsLayer::with_server_timeout`] so those
//! count as DEADLINE_EXCEEDED, as the caller sees them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http_body::{Body, Frame, SizeHint};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;

/// The value used for service and method names that are not real routes of the server.
const OTHER: &str = "_OTHER";
/// gRPC status codes this module reasons about.
const OK: i64 = 0;
const CANCELLED: i64 = 1;
const UNKNOWN: i64 = 2;
const DEADLINE_EXCEEDED: i64 = 4;
const UNIMPLEMENTED: i64 = 12;

/// Bucket bounds in seconds, as OpenTelemetry's RPC conventions advise for call durations.
const BOUNDARIES: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// A tower layer for tonic servers that records [`rpc.server.call.duration`](self) per call:
/// `Server::builder().layer(RpcMetricsLayer::new())`.
///
/// Instruments come from the global meter provider when the layer is created, so create it
/// after [`crate::init`] (or [`crate::metrics::install`]). UNIMPLEMENTED answers are recorded
/// with service and method `_OTHER`: a caller can send any path, and unknown ones must not
/// become new series.
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    duration: Histogram<f64>,
    server_timeout: Option<Duration>,
}

impl Default for RpcMetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RpcMetricsLayer {
    /// Creates the layer and its histogram.
    pub fn new() -> Self {
        let duration = super::meter()
            .f64_histogram("rpc.server.call.duration")
            .with_unit("s")
            .with_description("Duration of gRPC calls served, until their status is sent")
            .with_boundaries(BOUNDARIES.to_vec())
            .build();
        Self {
            duration,
            server_timeout: None,
        }
    }

    /// The timeout the server applies to every call (`Server::builder().timeout(..)`), so calls
    /// it cuts short count as DEADLINE_EXCEEDED rather than CANCELLED. A shorter `grpc-timeout`
    /// sent by the caller is taken into account without this.
    pub fn with_server_timeout(mut self, timeout: Duration) -> Self {
        self.server_timeout = Some(timeout);
        self
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService {
            inner,
            duration: self.duration.clone(),
            server_timeout: self.server_timeout,
        }
    }
}

/// The service produced by [`RpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RpcMetricsService<S> {
    inner: S,
    duration: Histogram<f64>,
    server_timeout: Option<Duration>,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for RpcMetricsService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Body,
{
    type Response = http::Response<RpcMetricsBody<ResBody>>;
    type Error = S::Error;
    type Future = RpcMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let client_timeout = request
            .headers()
            .get("grpc-timeout")
            .and_then(|value| parse_grpc_timeout(value.as_bytes()));
        let deadline = match (self.server_timeout, client_timeout) {
            (Some(server), Some(client)) => Some(server.min(client)),
            (server, client) => server.or(client),
        };
        let mut call = Call::start(self.duration.clone(), request.uri().path());
        call.deadline = deadline;
        RpcMetricsFuture {
            inner: self.inner.call(request),
            call: Some(call),
        }
    }
}

/// One call being measured; recorded exactly once, as CANCELLED if dropped unfinished.
struct Call {
    duration: Histogram<f64>,
    start: Instant,
    service: String,
    method: String,
    /// After this long, a call dropped unfinished was cut by a timeout.
    deadline: Option<Duration>,
    done: bool,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("service", &self.service)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Call {
    fn start(duration: Histogram<f64>, path: &str) -> Self {
        // gRPC paths are `/<package.Service>/<Method>`.
        let (service, method) = path
            .strip_prefix('/')
            .and_then(|rest| rest.split_once('/'))
            .filter(|(service, method)| {
                !service.is_empty() && !method.is_empty() && !method.contains('/')
            })
            .unwrap_or((OTHER, OTHER));
        Self {
            duration,
            start: Instant::now(),
            service: service.to_owned(),
            method: method.to_owned(),
            deadline: None,
            done: false,
        }
    }

    fn finish(mut self, code: i64) {
        self.record(code);
    }

    fn record(&mut self, code: i64) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let (service, method) = if code == UNIMPLEMENTED {
            (OTHER.to_owned(), OTHER.to_owned())
        } else {
            (
                std::mem::take(&mut self.service),
                std::mem::take(&mut self.method),
            )
        };
        let attributes = [
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service),
            KeyValue::new("rpc.method", method),
            KeyValue::new("rpc.grpc.status_code", code),
        ];
        self.duration
            .record(self.start.elapsed().as_secs_f64(), &attributes);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let timed_out = self
            .deadline
            .is_some_and(|deadline| self.start.elapsed() >= deadline);
        self.record(if timed_out {
            DEADLINE_EXCEEDED
        } else {
            CANCELLED
        });
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`RpcMetricsService`].
    #[derive(Debug)]
    pub struct RpcMetricsFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, ResBody, E> Future for RpcMetricsFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    ResBody: Body,
{
    type Output = Result<http::Response<RpcMetricsBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let call = this.call.take();
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                // The service failed before any gRPC status existed.
                if let Some(call) = call {
                    call.finish(UNKNOWN);
                }
                return Poll::Ready(Err(error));
            }
        };
        let end_code = if response.status() == http::StatusCode::OK {
            OK
        } else {
            code_from_http(response.status())
        };
        let header_code = status_code(response.headers());
        let call = match (call, header_code) {
            (Some(call), Some(code)) => {
                call.finish(code);
                None
            }
            (Some(call), None) if response.body().is_end_stream() => {
                call.finish(end_code);
                None
            }
            (call, _) => call,
        };
        Poll::Ready(Ok(response.map(|inner| RpcMetricsBody {
            inner,
            call,
            end_code,
        })))
    }
}

pin_project_lite::pin_project! {
    /// Response body of [`RpcMetricsService`]: the inner body, watched for its trailers.
    #[derive(Debug)]
    pub struct RpcMetricsBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
        end_code: i64,
    }
}

impl<B: Default> Default for RpcMetricsBody<B> {
    /// An unmeasured body; lets layers inside this one build error responses of this type.
    fn default() -> Self {
        Self {
            inner: B::default(),
            call: None,
            end_code: OK,
        }
    }
}

impl<B: Body> Body for RpcMetricsBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let polled = ready!(this.inner.as_mut().poll_frame(cx));
        let code = match &polled {
            Some(Ok(frame)) => match frame.trailers_ref() {
                Some(trailers) => Some(status_code(trailers).unwrap_or(*this.end_code)),
                // hyper stops polling a body that reports its end, so look now.
                None if this.inner.is_end_stream() => Some(*this.end_code),
                None => None,
            },
            Some(Err(_)) => Some(UNKNOWN),
            None => Some(*this.end_code),
        };
        if let Some(code) = code
            && let Some(call) = this.call.take()
        {
            call.finish(code);
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `grpc-status` in `headers` (response headers or trailers), if there is a readable one.
fn status_code(headers: &http::HeaderMap) -> Option<i64> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<i64>().ok())
}

/// A `grpc-timeout` header value: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The gRPC code a client infers from an HTTP status without `grpc-status`, per gRPC's
/// "HTTP to gRPC status code mapping".
fn code_from_http(status: http::StatusCode) -> i64 {
    match status.as_u16() {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => UNIMPLEMENTED,  // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;

    use super::*;

    fn parts(path: &str) -> (String, String) {
        let call = Call::start(
            opentelemetry::global::meter("t").f64_histogram("x").build(),
            path,
        );
        let out = (call.service.clone(), call.method.clone());
        drop(call);
        out
    }

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            parts("/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health".to_owned(), "Check".to_owned())
        );
        for odd in ["/", "", "/a", "/a/", "//m", "/a/b/c"] {
            assert_eq!(parts(odd), (OTHER.to_owned(), OTHER.to_owned()), "{odd:?}");
        }
    }

    /// Serves one call whose response body yields `frames`, reads `read` frames of it, drops
    /// the rest, and returns the `(status code, count)` pairs the histogram recorded.
    async fn serve_one(frames: Vec<Frame<Bytes>>, read: usize) -> Vec<(i64, u64)> {
        use http_body_util::BodyExt as _;
        use opentelemetry::metrics::MeterProvider as _;
        use tower::ServiceExt as _;

        let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_periodic_exporter(exporter.clone())
            .build();
        let layer = RpcMetricsLayer {
            duration: provider.meter("test").f64_histogram("d").build(),
            server_timeout: None,
        };
        let mut stream = Some(tokio_stream::iter(
            frames.into_iter().map(Ok::<_, Infallible>),
        ));
        let service = tower::Layer::layer(
            &layer,
            tower::service_fn(move |_: http::Request<()>| {
                let body = http_body_util::StreamBody::new(stream.take().expect("called once"));
                async move { Ok::<_, Infallible>(http::Response::new(body)) }
            }),
        );
        let request = http::Request::builder()
            .uri("/pkg.Svc/Stream")
            .body(())
            .expect("valid request");
        let mut body = service
            .oneshot(request)
            .await
            .expect("response")
            .into_body();
        for _ in 0..read {
            let _ = body.frame().await;
        }
        drop(body);
        provider.force_flush().expect("flush");
        recorded(&exporter)
    }

    fn recorded(exporter: &opentelemetry_sdk::metrics::InMemoryMetricExporter) -> Vec<(i64, u64)> {
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
        let mut out = Vec::new();
        let exported = exporter.get_finished_metrics().expect("exported");
        let metrics = exported
            .iter()
            .flat_map(|resource| resource.scope_metrics())
            .flat_map(|scope| scope.metrics());
        for metric in metrics {
            let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = metric.data() else {
                continue;
            };
            for point in histogram.data_points() {
                let code = point
                    .attributes()
                    .find(|kv| kv.key.as_str() == "rpc.grpc.status_code")
                    .and_then(|kv| match kv.value {
                        opentelemetry::Value::I64(code) => Some(code),
                        _ => None,
                    })
                    .expect("status code attribute");
                out.push((code, point.count()));
            }
        }
        out
    }

    /// A call whose handler never answers, abandoned after 30 ms like tonic's own timeout does.
    async fn abandon_one(
        layer_timeout: Option<Duration>,
        header: Option<&'static str>,
    ) -> Vec<(i64, u64)> {
        use opentelemetry::metrics::MeterProvider as _;
        use tower::ServiceExt as _;

        let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_periodic_exporter(exporter.clone())
            .build();
        let layer = RpcMetricsLayer {
            duration: provider.meter("test").f64_histogram("d").build(),
            server_timeout: layer_timeout,
        };
        let service = tower::Layer::layer(
            &layer,
            tower::service_fn(|_: http::Request<()>| {
                std::future::pending::<
                    Result<http::Response<http_body_util::Empty<Bytes>>, Infallible>,
                >()
            }),
        );
        let mut request = http::Request::builder().uri("/pkg.Svc/Slow");
        if let Some(header) = header {
            request = request.header("grpc-timeout", header);
        }
        let call = service.oneshot(request.body(()).expect("valid request"));
        let abandoned = tokio::time::timeout(Duration::from_millis(30), call).await;
        assert!(abandoned.is_err(), "the handler never answers");
        provider.force_flush().expect("flush");
        recorded(&exporter)
    }

    #[tokio::test]
    async fn abandoned_calls_count_as_cancelled_or_deadline_exceeded() {
        assert_eq!(abandon_one(None, None).await, [(CANCELLED, 1)]);
        assert_eq!(
            abandon_one(Some(Duration::from_millis(10)), None).await,
            [(DEADLINE_EXCEEDED, 1)]
        );
        assert_eq!(
            abandon_one(None, Some("10m")).await,
            [(DEADLINE_EXCEEDED, 1)]
        );
        assert_eq!(
            abandon_one(Some(Duration::from_secs(60)), None).await,
            [(CANCELLED, 1)]
        );
    }

    fn trailers(code: &'static str) -> Frame<Bytes> {
        let mut map = http::HeaderMap::new();
        map.insert("grpc-status", http::HeaderValue::from_static(code));
        Frame::trailers(map)
    }

    #[tokio::test]
    async fn status_comes_from_trailers_end_or_drop() {
        let data = || Frame::data(Bytes::from_static(b"message"));
        // A streamed answer that fails after a message: the code is in the trailers.
        assert_eq!(serve_one(vec![data(), trailers("13")], 5).await, [(13, 1)]);
        assert_eq!(serve_one(vec![data(), trailers("0")], 5).await, [(0, 1)]);
        // A 200 body that ends without trailers counts as OK.
        assert_eq!(serve_one(vec![data()], 5).await, [(0, 1)]);
        // A body dropped before its end: the caller went away.
        assert_eq!(
            serve_one(vec![data(), data(), trailers("0")], 1).await,
            [(1, 1)]
        );
    }

    #[test]
    fn status_is_read_from_headers_and_http_status() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_code(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(status_code(&headers), Some(5));
        headers.insert("grpc-status", http::HeaderValue::from_static("x"));
        assert_eq!(status_code(&headers), None);
        assert_eq!(code_from_http(http::StatusCode::NOT_FOUND), 12);
        assert_eq!(code_from_http(http::StatusCode::SERVICE_UNAVAILABLE), 14);
        assert_eq!(code_from_http(http::StatusCode::IM_A_TEAPOT), 2);
        assert_eq!(
            parse_grpc_timeout(b"250m"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_grpc_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        for bad in [&b""[..], b"m", b"123456789m", b"12x", b"-1m", b"1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
