//! The real binary killed with SIGKILL while a producer is mid-stream, then
//! restarted: every acknowledged event ends in modeling exactly once.
#![allow(clippy::too_many_lines, reason = "a crash scenario told step by step")]

mod webhooks;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::process::{Child, Command};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::{Event, EventType};
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{CountEventsRequest, ListEventsRequest};
use touchline_runtime::client::lazy_channel;
use touchline_testkit::{TEST_SECRET, TestDatabase, eventually, redis_url, token};

fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

fn start(addr: SocketAddr, db: &TestDatabase, prefix: &str) -> anyhow::Result<Child> {
    Command::new(env!("CARGO_BIN_EXE_touchline"))
        .arg("serve")
        .env("TOUCHLINE_LISTEN", addr.to_string())
        .env("TOUCHLINE_DATABASE__URL", &db.url)
        .env("TOUCHLINE_AUTH__HS256_SECRET", TEST_SECRET)
        .env("TOUCHLINE_AUTH__ALLOW_HS256", "true")
        .env("TOUCHLINE_IDENTITY__REDIS_URL", redis_url())
        .env("TOUCHLINE_IDENTITY__KEY_PREFIX", prefix)
        .env("TOUCHLINE_TELEMETRY__FILTER", "warn")
        // The webhook receivers of these tests listen on loopback over plain HTTP.
        .env("TOUCHLINE_WEBHOOKS__ALLOW_PLAIN_HTTP", "true")
        .env("TOUCHLINE_WEBHOOKS__ALLOW_LOOPBACK", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the touchline binary")
}

async fn wait_serving(addr: SocketAddr) -> anyhow::Result<()> {
    let mut health = HealthClient::new(lazy_channel(&format!("http://{addr}"))?);
    eventually(Duration::from_secs(60), || {
        let mut health = health.clone();
        async move {
            Ok(match health.check(HealthCheckRequest::default()).await {
                Ok(r) if r.get_ref().status() == ServingStatus::Serving => Some(()),
                _ => None,
            })
        }
    })
    .await?;
    let _ = &mut health;
    Ok(())
}

fn event(i: u64) -> Event {
    Event {
        message_id: format!("crash-{i:06}"),
        r#type: EventType::Track as i32,
        event: "view".into(),
        anonymous_id: format!("anon-{}", i % 97),
        original_timestamp: (1_795_507_200_000 + i).to_string(),
        channel: "app".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_event() -> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let prefix = format!("touchline-test-{}", uuid::Uuid::new_v4().simple());
    let addr = free_port()?;
    let mut child = start(addr, &db, &prefix)?;
    wait_serving(addr).await?;

    let token = token("acme", &["events:write", "models:read"]);
    let credentials = touchline_runtime::client::CallCredentials::bearer(&token)?;
    let channel = lazy_channel(&format!("http://{addr}"))?;
    let mut collection =
        CollectionServiceClient::with_interceptor(channel.clone(), credentials.clone());

    // Produce until the process dies under us; remember what was acknowledged.
    let producer = tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        for batch in 0u64.. {
            let events: Vec<Event> = (batch * 100..batch * 100 + 100).map(event).collect();
            match collection
                .ingest_events(IngestEventsRequest {
                    events: events.clone(),
                })
                .await
            {
                Ok(_) => acknowledged.extend(events.into_iter().map(|e| e.message_id)),
                Err(_) => break,
            }
        }
        acknowledged
    });
    // Kill once a few thousand events are in, while batches are still flowing.
    eventually(Duration::from_secs(60), || {
        let db_url = db.url.clone();
        async move {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db_url).await?;
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM collection.raw_events")
                .fetch_one(&mut conn)
                .await
                .unwrap_or(0);
            Ok((n >= 3_000).then_some(()))
        }
    })
    .await?;
    child.start_kill()?;
    child.wait().await?;
    let acknowledged = producer.await?;
    // The producer has one batch in flight: the kill may land after its
    // commit and before its acknowledgement, so one batch of the 3,000
    // stored may be unacknowledged.
    assert!(
        acknowledged.len() >= 3_000 - 100,
        "the producer was cut off mid-stream: {} acknowledged",
        acknowledged.len()
    );

    let mut restarted = start(addr, &db, &prefix)?;
    wait_serving(addr).await?;
    let mut modeling = ModelingServiceClient::with_interceptor(channel, credentials);
    let expected: BTreeSet<String> = acknowledged.iter().cloned().collect();
    let stored = eventually(Duration::from_secs(90), || {
        let mut modeling = modeling.clone();
        let expected = expected.clone();
        async move {
            let mut ids = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = modeling
                    .list_events(ListEventsRequest {
                        parent: String::new(),
                        page_size: 1_000,
                        page_token,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                ids.extend(page.events.into_iter().map(|e| e.message_id));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            let set: BTreeSet<String> = ids.iter().cloned().collect();
            Ok(expected.is_subset(&set).then_some(ids))
        }
    })
    .await?;
    let distinct: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(distinct.len(), stored.len(), "an event was stored twice");
    let total = modeling
        .count_events(CountEventsRequest::default())
        .await?
        .into_inner()
        .total_events;
    assert_eq!(usize::try_from(total)?, stored.len());
    // At most the one batch in flight at the kill is stored beyond what was acknowledged.
    assert!(stored.len() - acknowledged.len() <= 100);
    restarted.start_kill()?;
    restarted.wait().await?;
    Ok(())
}
