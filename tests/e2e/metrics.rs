//! The Prometheus scrape endpoint after real traffic: RPC calls per method and code, the
//! consumers' lag, quarantined events by reason.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::modeling::v1::CountEventsRequest;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_testkit::{TestApp, TestDatabase, eventually, token};

async fn scrape(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text)
}

/// The value of the first series whose line holds every one of `parts`.
fn value(text: &str, parts: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| parts.iter().all(|p| line.contains(p)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrape_endpoint_shows_rpc_lag_and_quarantine_series() -> anyhow::Result<()> {
    crate::init();
    let _metrics = touchline_telemetry::metrics::install(&Default::default())?;
    let db = TestDatabase::create().await?;
    let app = TestApp::spawn_with(db, |config| {
        config.telemetry.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    })
    .await?;
    let addr = app
        .app
        .metrics_addr()
        .ok_or_else(|| anyhow::anyhow!("no metrics endpoint"))?;
    // A tenant of its own: the meter provider is the process's, shared with every other test
    // running in this binary.
    let acme = token("metrics-acme", &["events:write", "models:read"]);
    let mut unnamed = sample_event("m-bad", 2, "view", 1_795_507_200_000);
    unnamed.original_timestamp = "not a time".to_owned();
    for events in [
        vec![sample_event("m-1", 1, "view", 1_795_507_200_000)],
        vec![unnamed],
    ] {
        CollectionServiceClient::new(app.channel(&acme)?)
            .ingest_events(IngestEventsRequest { events })
            .await?;
    }
    let modeling = ModelingServiceClient::new(app.channel(&acme)?);
    eventually(Duration::from_secs(30), || {
        let mut modeling = modeling.clone();
        async move {
            let n = modeling
                .count_events(CountEventsRequest::default())
                .await?
                .into_inner()
                .total_events;
            Ok((n == 1).then_some(()))
        }
    })
    .await?;
    let text = eventually(Duration::from_secs(10), || async move {
        let text = scrape(addr).await?;
        let lag = value(
            &text,
            &[
                "touchline_consumer_lag{",
                "modeling.events",
                "tenant=\"metrics-acme\"",
            ],
        );
        let quarantined = value(
            &text,
            &[
                "touchline_quarantine_events_total",
                "QUARANTINE_REASON_INVALID_TIMESTAMP",
                "tenant=\"metrics-acme\"",
            ],
        );
        Ok((lag.is_some() && quarantined.is_some()).then_some(text))
    })
    .await?;
    let ingests = value(
        &text,
        &[
            "rpc_server_call_duration_seconds_count",
            "rpc_method=\"IngestEvents\"",
            "rpc_grpc_status_code=\"0\"",
        ],
    );
    assert_eq!(ingests, Some(2.0), "two IngestEvents calls answered OK");
    assert_eq!(
        value(
            &text,
            &[
                "touchline_consumer_lag{",
                "modeling.events",
                "tenant=\"metrics-acme\""
            ]
        ),
        Some(0.0),
        "caught up"
    );
    assert_eq!(
        value(
            &text,
            &[
                "touchline_quarantine_events_total",
                "QUARANTINE_REASON_INVALID_TIMESTAMP",
                "tenant=\"metrics-acme\""
            ]
        ),
        Some(1.0)
    );
    app.stop().await;
    Ok(())
}
