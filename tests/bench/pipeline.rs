//! Pipeline benchmark: durable ingest throughput through IngestEvents
//! (batches of 500, 4 concurrent producers) and the lag from
//! acknowledgement to visibility in modeling at a steady 2,000 events/s.
//! Runs the real application in-process against local PostgreSQL and Redis.
//!
//! `cargo run --release -p touchline-e2e --bin pipeline-bench`

use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::Connection as _;
use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_testkit::{TestApp, token};

const PRODUCERS: usize = 4;
const BATCH: usize = 500;
const BATCHES_PER_PRODUCER: usize = 100;
const STEADY_RATE: u64 = 2_000;
const STEADY_SECONDS: u64 = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let app = TestApp::spawn().await?;
    let token = token("bench", &["events:write", "models:read"]);
    let db_url = app.db.url.clone();

    // 1. Durable ingest throughput.
    let started = Instant::now();
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let mut client = CollectionServiceClient::new(app.channel(&token)?);
        producers.push(tokio::spawn(async move {
            for b in 0..BATCHES_PER_PRODUCER {
                let events = (0..BATCH)
                    .map(|i| {
                        let n = (p * BATCHES_PER_PRODUCER + b) * BATCH + i;
                        sample_event(
                            &format!("t-{n}"),
                            (n % 50_000) as u64,
                            "view",
                            1_795_507_200_000 + n as i64,
                        )
                    })
                    .collect();
                let response = client
                    .ingest_events(IngestEventsRequest { events })
                    .await?
                    .into_inner();
                anyhow::ensure!(
                    response.accepted_count as usize == BATCH,
                    "batch not fully accepted"
                );
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for producer in producers {
        producer.await??;
    }
    let total = PRODUCERS * BATCHES_PER_PRODUCER * BATCH;
    let ingest_secs = started.elapsed().as_secs_f64();
    println!(
        "ingest: {total} events acknowledged in {ingest_secs:.2}s = {:.0} events/s (batches of {BATCH}, {PRODUCERS} producers)",
        total as f64 / ingest_secs
    );
    let mut conn = sqlx::PgConnection::connect(&db_url).await?;
    wait_for(&mut conn, total as i64).await?;
    let drain_secs = started.elapsed().as_secs_f64();
    println!(
        "pipeline: all {total} events in modeling after {drain_secs:.2}s = {:.0} events/s end to end (clean + resolve + store)",
        total as f64 / drain_secs
    );

    // 2. Lag at a steady rate.
    let mut client = CollectionServiceClient::new(app.channel(&token)?);
    let per_tick = STEADY_RATE / 20;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut sent = 0u64;
    let steady_start = Instant::now();
    while steady_start.elapsed() < Duration::from_secs(STEADY_SECONDS) {
        tick.tick().await;
        let events = (0..per_tick)
            .map(|i| {
                let n = sent + i;
                sample_event(
                    &format!("s-{n}"),
                    n % 5_000,
                    "view",
                    1_795_507_200_000 + n as i64,
                )
            })
            .collect();
        client.ingest_events(IngestEventsRequest { events }).await?;
        sent += per_tick;
    }
    wait_for(&mut conn, total as i64 + sent as i64).await?;
    let row: (f64, f64, f64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
                max(lag)
           FROM (SELECT (extract(epoch FROM m.stored_at - r.received_at) * 1000)::float8 AS lag
                   FROM modeling.events m
                   JOIN collection.raw_events r USING (tenant_id, message_id)
                  WHERE m.message_id LIKE 's-%') l",
    )
    .fetch_one(&mut conn)
    .await?;
    println!(
        "lag at {STEADY_RATE} events/s for {STEADY_SECONDS}s ({sent} events): ack → modeling p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        row.0, row.1, row.2
    );
    println!(
        "peak RSS of the process (servers + load generator): {} MiB",
        peak_rss_kib()? / 1024
    );
    app.stop().await;
    Ok(())
}

async fn wait_for(conn: &mut sqlx::PgConnection, expected: i64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM modeling.events")
            .fetch_one(&mut *conn)
            .await?;
        if n >= expected {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "pipeline did not drain: {n} of {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn peak_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmHWM not found")
}
