//! Pipeline benchmark, the real application in-process against local PostgreSQL and Redis:
//!
//! 1. durable ingest: IngestEvents acknowledged per second (batches of 500, 4 concurrent
//!    producers) with collection served alone, then with the whole pipeline consuming behind it;
//! 2. how fast governance and modeling drain that backlog;
//! 3. the lag from acknowledgement to clean (governance) and to the event store (modeling) at
//!    a steady rate, and the process's memory after each phase.
//!
//! `cargo run --release -p touchline-e2e --bin pipeline-bench [STEADY_RATE]` (default 10,000/s)

use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::Connection as _;
use touchline::ServiceName;
use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_testkit::{TestApp, TestDatabase, token};

const PRODUCERS: usize = 4;
const BATCH: usize = 500;
const BATCHES_PER_PRODUCER: usize = 100;
const STEADY_SECONDS: u64 = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let steady_rate: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let token = token("bench", &["events:write", "models:read"]);

    // 1a. Collection alone: the acknowledgement path and nothing else on the 2 cores.
    let alone = TestApp::spawn_with(TestDatabase::create().await?, |config| {
        config.services = vec![ServiceName::Collection];
    })
    .await?;
    let (total, secs) = ingest(&alone, &token, "a").await?;
    println!(
        "durable ingest, collection alone: {total} events acknowledged in {secs:.2}s = {:.0} events/s (batches of {BATCH}, {PRODUCERS} producers)",
        total as f64 / secs
    );
    alone.stop().await;
    memory("after ingest alone")?;

    // 1b. The same with governance, identity and modeling consuming behind it.
    let app = TestApp::spawn().await?;
    let mut conn = sqlx::PgConnection::connect(&app.db.url).await?;
    let started = Instant::now();
    let (total, secs) = ingest(&app, &token, "t").await?;
    println!(
        "durable ingest, whole pipeline running: {total} events in {secs:.2}s = {:.0} events/s",
        total as f64 / secs
    );

    // 2. Draining the backlog.
    wait_for(&mut conn, "governance.clean_events", total as i64).await?;
    let clean_secs = started.elapsed().as_secs_f64();
    println!(
        "governance: all {total} events clean after {clean_secs:.2}s = {:.0} clean events/s sustained",
        total as f64 / clean_secs
    );
    wait_for(&mut conn, "modeling.events", total as i64).await?;
    let store_secs = started.elapsed().as_secs_f64();
    println!(
        "modeling: all {total} events stored after {store_secs:.2}s = {:.0} events/s end to end (clean + resolve + store)",
        total as f64 / store_secs
    );
    memory("after the backlog")?;

    // 3. Lag at a steady rate.
    let mut client = CollectionServiceClient::new(app.channel(&token)?);
    let per_tick = steady_rate / 20;
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
    let achieved = sent as f64 / steady_start.elapsed().as_secs_f64();
    wait_for(&mut conn, "modeling.events", total as i64 + sent as i64).await?;
    let clean: (f64, f64, f64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
                max(lag)
           FROM (SELECT (extract(epoch FROM c.cleaned_at - r.received_at) * 1000)::float8 AS lag
                   FROM governance.clean_events c
                   JOIN collection.raw_events r USING (tenant_id, message_id)
                  WHERE c.message_id LIKE 's-%') l",
    )
    .fetch_one(&mut conn)
    .await?;
    let stored: (f64, f64, f64) = sqlx::query_as(
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
        "steady {steady_rate} events/s asked, {achieved:.0} sent for {STEADY_SECONDS}s ({sent} events):\n  ack → clean p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n  ack → modeling p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        clean.0, clean.1, clean.2, stored.0, stored.1, stored.2
    );
    memory("after the steady phase")?;
    app.stop().await;
    Ok(())
}

/// Sends `PRODUCERS × BATCHES_PER_PRODUCER` batches concurrently; returns events and seconds.
async fn ingest(app: &TestApp, token: &str, prefix: &'static str) -> anyhow::Result<(usize, f64)> {
    let started = Instant::now();
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let mut client = CollectionServiceClient::new(app.channel(token)?);
        producers.push(tokio::spawn(async move {
            for b in 0..BATCHES_PER_PRODUCER {
                let events = (0..BATCH)
                    .map(|i| {
                        let n = (p * BATCHES_PER_PRODUCER + b) * BATCH + i;
                        sample_event(
                            &format!("{prefix}-{n}"),
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
    Ok((
        PRODUCERS * BATCHES_PER_PRODUCER * BATCH,
        started.elapsed().as_secs_f64(),
    ))
}

async fn wait_for(
    conn: &mut sqlx::PgConnection,
    table: &str,
    expected: i64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *conn)
            .await?;
        if n >= expected {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{table} did not drain: {n} of {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prints the process's resident memory now and at its peak (servers and load generator).
fn memory(when: &str) -> anyhow::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .context("field not found in /proc/self/status")
    };
    println!(
        "memory {when}: RSS {} MiB, peak {} MiB",
        field("VmRSS:")? / 1024,
        field("VmHWM:")? / 1024
    );
    Ok(())
}
