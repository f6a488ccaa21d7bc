//! A real tonic server behind `GrpcServerTraceLayer`, called through `TraceInterceptor`.

use std::net::SocketAddr;

use opentelemetry::Value;
use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceContextExt};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use touchline_telemetry::testing::install_in_memory;
use touchline_telemetry::{GrpcServerTraceLayer, TraceInterceptor};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::support::{attribute, spans_in_trace};

/// Starts the standard health service behind the trace layer on an ephemeral port. The server
/// task lives as long as the test's runtime.
async fn start_health_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind test server");
    let addr = listener.local_addr().expect("test server address");
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        Server::builder()
            .layer(GrpcServerTraceLayer::new())
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

async fn connect(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid endpoint")
        .connect()
        .await
        .expect("connect to test server")
}

/// Starts `span`'s OpenTelemetry span and returns its identity.
fn span_context(span: &tracing::Span) -> SpanContext {
    span.context().span().span_context().clone()
}

fn check_request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

#[tokio::test]
async fn server_span_continues_the_client_trace() {
    let exporter = install_in_memory();
    let addr = start_health_server().await;
    let mut client = HealthClient::with_interceptor(connect(addr).await, TraceInterceptor);

    let client_span = tracing::info_span!("test.client.check");
    let client_cx = span_context(&client_span);
    client
        .check(check_request(""))
        .instrument(client_span.clone())
        .await
        .expect("overall server status is serving");
    drop(client_span);

    let trace = spans_in_trace(&exporter, client_cx.trace_id());
    let server = trace
        .iter()
        .find(|span| span.span_kind == SpanKind::Server)
        .expect("a server span in the client's trace");
    assert_eq!(server.parent_span_id, client_cx.span_id());
    assert!(server.parent_span_is_remote, "parent came over the wire");
    // Exporters show `otel.name`; the tracing span itself is named `grpc.server`.
    assert_eq!(server.name, "grpc.health.v1.Health/Check");
    assert_eq!(attribute(server, "rpc.system"), Some(Value::from("grpc")));
    assert_eq!(
        attribute(server, "rpc.service"),
        Some(Value::from("grpc.health.v1.Health"))
    );
    assert_eq!(attribute(server, "rpc.method"), Some(Value::from("Check")));
    assert_eq!(attribute(server, "grpc.status_code"), Some(Value::I64(0)));
    assert_eq!(server.status, Status::Unset);

    let client = trace
        .iter()
        .find(|span| span.span_context.span_id() == client_cx.span_id())
        .expect("the client span is exported when it closes");
    assert_eq!(client.name, "test.client.check");
}

#[tokio::test]
async fn error_status_is_recorded_without_failing_the_span_for_client_mistakes() {
    let exporter = install_in_memory();
    let addr = start_health_server().await;
    let mut client = HealthClient::with_interceptor(connect(addr).await, TraceInterceptor);

    let client_span = tracing::info_span!("test.client.check_unknown");
    let client_cx = span_context(&client_span);
    let status = client
        .check(check_request("touchline.nosuch.v1.NoSuchService"))
        .instrument(client_span.clone())
        .await
        .expect_err("unknown service is NOT_FOUND");
    assert_eq!(status.code(), tonic::Code::NotFound);
    drop(client_span);

    let trace = spans_in_trace(&exporter, client_cx.trace_id());
    let server = trace
        .iter()
        .find(|span| span.span_kind == SpanKind::Server)
        .expect("a server span in the client's trace");
    assert_eq!(
        attribute(server, "grpc.status_code"),
        Some(Value::I64(tonic::Code::NotFound as i64))
    );
    assert_eq!(server.status, Status::Unset);
}

#[tokio::test]
async fn unimplemented_method_marks_the_server_span_failed() {
    let exporter = install_in_memory();
    let addr = start_health_server().await;
    let channel =
        tonic::service::interceptor::InterceptedService::new(connect(addr).await, TraceInterceptor);
    let mut grpc = tonic::client::Grpc::new(channel);

    let client_span = tracing::info_span!("test.client.unimplemented");
    let client_cx = span_context(&client_span);
    let status = async {
        grpc.ready().await.expect("channel ready");
        grpc.unary::<_, tonic_health::pb::HealthCheckResponse, _>(
            tonic::Request::new(check_request("")),
            http::uri::PathAndQuery::from_static("/touchline.nosuch.v1.NoSuchService/Nope"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("no such method")
    }
    .instrument(client_span.clone())
    .await;
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    drop(client_span);

    let trace = spans_in_trace(&exporter, client_cx.trace_id());
    let server = trace
        .iter()
        .find(|span| span.span_kind == SpanKind::Server)
        .expect("a server span in the client's trace");
    assert_eq!(server.name, "touchline.nosuch.v1.NoSuchService/Nope");
    assert_eq!(attribute(server, "rpc.method"), Some(Value::from("Nope")));
    assert_eq!(
        attribute(server, "grpc.status_code"),
        Some(Value::I64(tonic::Code::Unimplemented as i64))
    );
    assert!(
        matches!(server.status, Status::Error { .. }),
        "UNIMPLEMENTED is a server fault: {:?}",
        server.status
    );
}

#[tokio::test]
async fn without_the_interceptor_the_server_starts_its_own_trace() {
    let exporter = install_in_memory();
    let addr = start_health_server().await;
    let mut client = HealthClient::new(connect(addr).await);

    let client_span = tracing::info_span!("test.client.untraced");
    let client_cx = span_context(&client_span);
    client
        .check(check_request(""))
        .instrument(client_span.clone())
        .await
        .expect("overall server status is serving");
    drop(client_span);

    // The server span is closed before the response is sent, so its absence here is final.
    let trace = spans_in_trace(&exporter, client_cx.trace_id());
    assert_eq!(trace.len(), 1, "only the client span: {trace:?}");
    assert_eq!(trace[0].span_context.span_id(), client_cx.span_id());
}
