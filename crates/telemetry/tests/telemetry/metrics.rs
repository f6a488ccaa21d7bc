//! Metrics end to end: a tonic server behind `RpcMetricsLayer`, pipeline instruments, and a
//! scrape of the Prometheus endpoint over HTTP.
//!
//! The meter provider is process-wide, so this is the only test in the binary that installs
//! one, and every metric assertion lives in it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint, Server};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use touchline_telemetry::metrics::{self, serve_metrics};
use touchline_telemetry::{GrpcServerTraceLayer, RpcMetricsLayer, TelemetryConfig};

const HEALTH: &str = "grpc.health.v1.Health";
const DURATION: &str = "rpc_server_call_duration_seconds";

/// One HTTP/1.1 request; returns the status code, the content type and the body.
async fn http_get(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to metrics endpoint");
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response within 10 s")
        .expect("read response");
    let raw = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("response head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// The value of the sample `name` whose labels include every `labels` pair, if present.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, "}"));
            (series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| series_labels.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .next()
}

/// Starts the health service behind the metrics and trace layers on an ephemeral port.
async fn start_health_server() -> (SocketAddr, tonic_health::server::HealthReporter) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind test server");
    let addr = listener.local_addr().expect("test server address");
    let (reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        Server::builder()
            .layer(RpcMetricsLayer::new())
            .layer(GrpcServerTraceLayer::new())
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, reporter)
}

async fn connect(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid endpoint")
        .connect()
        .await
        .expect("connect to test server")
}

/// Calls the server: successes, a NOT_FOUND, an unknown method, and an abandoned stream.
async fn make_traffic(channel: Channel) {
    let mut client = HealthClient::new(channel.clone());
    for _ in 0..3 {
        client
            .check(HealthCheckRequest::default())
            .await
            .expect("overall health is SERVING");
    }
    let missing = client
        .check(HealthCheckRequest {
            service: "no.such.Service".to_owned(),
        })
        .await
        .expect_err("unknown service is NOT_FOUND");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("channel ready");
    let unknown = grpc
        .unary::<HealthCheckRequest, HealthCheckRequest, _>(
            tonic::Request::new(HealthCheckRequest::default()),
            http::uri::PathAndQuery::from_static("/no.such.Service/Random123"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("unknown path is UNIMPLEMENTED");
    assert_eq!(unknown.code(), tonic::Code::Unimplemented);

    // A server stream the client abandons after its first message: CANCELLED.
    let mut watch = client
        .watch(HealthCheckRequest {
            service: "touchline.Test".to_owned(),
        })
        .await
        .expect("watch starts")
        .into_inner();
    watch
        .next()
        .await
        .expect("first watch message")
        .expect("watch message ok");
    drop(watch);
}

/// Records one value of each pipeline instrument.
fn record_pipeline() {
    let pipeline = metrics::pipeline();
    pipeline.record_lag("events", "governance", "tenant-a", 42, 1.5);
    pipeline.count_quarantined("t1", "schema_violation", 3);
    pipeline.count_quarantined("t1", "schema_violation", 1);
    pipeline.count_dead_letters("poison", 2);
    pipeline.cache_lookup(true, 5);
    pipeline.cache_lookup(false, 1);
    pipeline.import_progress(10, 2048);
    pipeline.import_progress(5, 1024);
}

/// Scrapes until `ready` holds for the body (the abandoned stream is counted asynchronously).
async fn scrape_until(addr: SocketAddr, ready: impl Fn(&str) -> bool) -> String {
    for _ in 0..100 {
        let (status, content_type, body) = http_get(addr, "GET", "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(content_type, "text/plain; version=0.0.4");
        if ready(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("scrape never showed the expected series");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_shows_rpc_and_pipeline_series() {
    let cfg = TelemetryConfig {
        service_name: "telemetry-metrics-test".to_owned(),
        ..TelemetryConfig::default()
    };
    let installed = metrics::install(&cfg).expect("install meter provider");
    assert!(metrics::install(&cfg).is_err(), "second install is refused");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind metrics endpoint");
    let metrics_addr = listener.local_addr().expect("metrics address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let endpoint = tokio::spawn(serve_metrics(listener, metrics::handle(), async {
        let _ = stopped.await;
    }));

    let (addr, reporter) = start_health_server().await;
    reporter
        .set_service_status("touchline.Test", ServingStatus::Serving)
        .await;
    make_traffic(connect(addr).await).await;
    record_pipeline();

    let cancelled = [("rpc_method", "Watch"), ("rpc_grpc_status_code", "1")];
    let body = scrape_until(metrics_addr, |body| {
        sample(body, &format!("{DURATION}_count"), &cancelled).is_some()
    })
    .await;
    assert_rpc_series(&body);
    assert_pipeline_series(&body);

    let (status, _, _) = http_get(metrics_addr, "GET", "/other").await;
    assert_eq!(status, 404);
    let (status, _, _) = http_get(metrics_addr, "POST", "/metrics").await;
    assert_eq!(status, 405);

    stop.send(()).expect("endpoint still running");
    tokio::time::timeout(Duration::from_secs(5), endpoint)
        .await
        .expect("endpoint stops on shutdown")
        .expect("endpoint task ends cleanly");
    assert!(tokio::net::TcpStream::connect(metrics_addr).await.is_err());
    installed.shutdown().expect("meter provider shuts down");
}

fn assert_rpc_series(body: &str) {
    let count = format!("{DURATION}_count");
    let check = |code: &str| {
        let labels = [
            ("rpc_system", "grpc"),
            ("rpc_service", HEALTH),
            ("rpc_method", "Check"),
            ("rpc_grpc_status_code", code),
        ];
        sample(body, &count, &labels)
    };
    assert_eq!(check("0"), Some(3.0), "{body}");
    assert_eq!(check("5"), Some(1.0), "{body}");
    let other = [
        ("rpc_service", "_OTHER"),
        ("rpc_method", "_OTHER"),
        ("rpc_grpc_status_code", "12"),
    ];
    assert_eq!(sample(body, &count, &other), Some(1.0), "{body}");
    assert!(
        !body.contains("Random123"),
        "unknown paths must not become labels"
    );
    let watch = [("rpc_method", "Watch"), ("rpc_grpc_status_code", "1")];
    assert_eq!(sample(body, &count, &watch), Some(1.0), "{body}");

    let ok = [("rpc_method", "Check"), ("rpc_grpc_status_code", "0")];
    let sum = sample(body, &format!("{DURATION}_sum"), &ok).expect("duration sum");
    assert!(
        sum > 0.0 && sum < 30.0,
        "{sum} seconds for three local calls"
    );
    let bucket = [
        ("rpc_method", "Check"),
        ("rpc_grpc_status_code", "0"),
        ("le", "+Inf"),
    ];
    assert_eq!(
        sample(body, &format!("{DURATION}_bucket"), &bucket),
        Some(3.0)
    );
    assert!(
        body.contains(r#"le="0.005""#),
        "buckets are in seconds: {body}"
    );
    assert!(
        body.contains(r#"service_name="telemetry-metrics-test""#),
        "target_info carries the service name: {body}"
    );
}

fn assert_pipeline_series(body: &str) {
    let lag = [
        ("log", "events"),
        ("consumer", "governance"),
        ("tenant", "tenant-a"),
    ];
    assert_eq!(
        sample(body, "touchline_consumer_lag", &lag),
        Some(42.0),
        "{body}"
    );
    assert_eq!(
        sample(body, "touchline_consumer_lag_age_seconds", &lag),
        Some(1.5)
    );
    let reason = [("reason", "schema_violation")];
    assert_eq!(
        sample(body, "touchline_quarantine_events_total", &reason),
        Some(4.0)
    );
    let poison = [("reason", "poison")];
    assert_eq!(
        sample(body, "touchline_dead_letter_events_total", &poison),
        Some(2.0)
    );
    let lookups = "touchline_identity_cache_lookups_total";
    assert_eq!(sample(body, lookups, &[("result", "hit")]), Some(5.0));
    assert_eq!(sample(body, lookups, &[("result", "miss")]), Some(1.0));
    assert_eq!(sample(body, "touchline_import_rows_total", &[]), Some(15.0));
    assert_eq!(
        sample(body, "touchline_import_read_bytes_total", &[]),
        Some(3072.0)
    );
}
