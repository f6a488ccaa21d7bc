//! Pipeline benchmark, the real application in-process against local PostgreSQL and Redis:
//!
//! 1. durable ingest: IngestEvents acknowledged per second (batches of 500, 4 concurrent
//!    producers) with collection served alone, by COPY (new message ids) and by the
//!    conflict-tolerant INSERT a tenant falls back to after a duplicate;
//! 2. collection and governance: the same backlog cleaned (clean events/s sustained), then the
//!    lag from acknowledgement to clean at a steady rate (default 10,000 events/s);
//! 3. the whole pipeline: the backlog into the event store, then the lag from acknowledgement
//!    to modeling at a fifth of that rate;
//!
//! and the process's memory after each phase.
//!
//! `cargo run --release -p touchline-e2e --bin pipeline-bench [STEADY_RATE]`
//! (`BENCH_COPY_APPENDS=false`: phases 2 and 3 append with INSERT instead of COPY;
//! `BENCH_INGEST_ONLY=true`: phase 1 alone)
#![allow(
    clippy::too_many_lines,
    reason = "a benchmark's script reads top to bottom"
)]

use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::Connection as _;
use touchline::ServiceName;
use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_testkit::{TestApp, TestDatabase, token};

/// The tenant the benchmark writes as.
const TENANT: &str = "bench";
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
    let token = token(TENANT, &["events:write", "models:read"]);

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

    // 1b. The same through the conflict-tolerant INSERT path that a tenant
    // takes after sending a duplicate message id.
    let inserting = TestApp::spawn_with(TestDatabase::create().await?, |config| {
        config.services = vec![ServiceName::Collection];
        config.collection.copy_appends = false;
    })
    .await?;
    let (total, secs) = ingest(&inserting, &token, "i").await?;
    println!(
        "durable ingest, collection alone, INSERT path (after a duplicate): {total} events in {secs:.2}s = {:.0} events/s",
        total as f64 / secs
    );
    inserting.stop().await;
    if std::env::var("BENCH_INGEST_ONLY").is_ok_and(|v| v == "true") {
        return Ok(());
    }

    // 2. Collection and governance: the backlog drained, then the lag to clean at a steady rate.
    // Later phases append the way a deployment does; `BENCH_COPY_APPENDS=false` makes them
    // insert instead, to see what the append path costs the stages that read the raw log.
    let copy_appends = std::env::var("BENCH_COPY_APPENDS").map_or(true, |v| v != "false");
    let stages = TestApp::spawn_with(TestDatabase::create().await?, |config| {
        config.services = vec![ServiceName::Collection, ServiceName::Governance];
        config.collection.copy_appends = copy_appends;
    })
    .await?;
    let mut conn = sqlx::PgConnection::connect(&stages.db.url).await?;
    let started = Instant::now();
    let (total, secs) = ingest(&stages, &token, "g").await?;
    println!(
        "durable ingest, governance cleaning behind it: {total} events in {secs:.2}s = {:.0} events/s",
        total as f64 / secs
    );
    wait_for(
        &mut conn,
        &[GOVERNANCE],
        "governance.clean_events",
        total as i64,
    )
    .await?;
    let clean_secs = started.elapsed().as_secs_f64();
    println!(
        "governance: all {total} events clean after {clean_secs:.2}s = {:.0} clean events/s sustained",
        total as f64 / clean_secs
    );
    let sent = steady(&stages, &token, steady_rate).await?;
    wait_for(
        &mut conn,
        &[GOVERNANCE],
        "governance.clean_events",
        (total + sent) as i64,
    )
    .await?;
    let (p50, p99, max) = lag(&mut conn, "governance.clean_events", "cleaned_at").await?;
    println!("  ack → clean p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms");
    stages.stop().await;
    memory("after collection + governance")?;

    // 3. The whole pipeline: the backlog into the event store, then the lag to modeling.
    let app = TestApp::spawn_with(TestDatabase::create().await?, |config| {
        config.collection.copy_appends = copy_appends;
    })
    .await?;
    let mut conn = sqlx::PgConnection::connect(&app.db.url).await?;
    let started = Instant::now();
    let (total, secs) = ingest(&app, &token, "t").await?;
    println!(
        "durable ingest, whole pipeline running: {total} events in {secs:.2}s = {:.0} events/s",
        total as f64 / secs
    );
    wait_for(
        &mut conn,
        &[GOVERNANCE, MODELING],
        "modeling.events",
        total as i64,
    )
    .await?;
    let store_secs = started.elapsed().as_secs_f64();
    println!(
        "modeling: all {total} events stored after {store_secs:.2}s = {:.0} events/s end to end (clean + resolve + store)",
        total as f64 / store_secs
    );
    let rate = (steady_rate / 5).max(1_000);
    let sent = steady(&app, &token, rate).await?;
    wait_for(
        &mut conn,
        &[GOVERNANCE, MODELING],
        "modeling.events",
        (total + sent) as i64,
    )
    .await?;
    let (p50, p99, max) = lag(&mut conn, "modeling.events", "stored_at").await?;
    println!("  ack → modeling p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms");
    memory("after the whole pipeline")?;
    app.stop().await;
    Ok(())
}

/// Sends at `rate` events/s for `STEADY_SECONDS` (message ids `s-…`); returns events sent.
async fn steady(app: &TestApp, token: &str, rate: u64) -> anyhow::Result<usize> {
    let mut client = CollectionServiceClient::new(app.channel(token)?);
    let per_tick = rate / 20;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut sent = 0u64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(STEADY_SECONDS) {
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
    println!(
        "steady {rate} events/s asked, {:.0} sent for {STEADY_SECONDS}s ({sent} events):",
        sent as f64 / started.elapsed().as_secs_f64()
    );
    Ok(usize::try_from(sent)?)
}

/// p50, p99 and max milliseconds from acknowledgement to `column` of `table`, steady phase.
async fn lag(
    conn: &mut sqlx::PgConnection,
    table: &str,
    column: &str,
) -> anyhow::Result<(f64, f64, f64)> {
    Ok(sqlx::query_as(&format!(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
                max(lag)
           FROM (SELECT (extract(epoch FROM x.{column} - r.received_at) * 1000)::float8 AS lag
                   FROM {table} x
                   JOIN collection.raw_events r USING (tenant_id, message_id)
                  WHERE x.message_id LIKE 's-%') l"
    ))
    .fetch_one(conn)
    .await?)
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

/// A stage reading a log: its consumer cursors and the log's heads.
struct Stage {
    consumer: &'static str,
    cursors: &'static str,
    heads: &'static str,
}

const GOVERNANCE: Stage = Stage {
    consumer: "governance.clean",
    cursors: "governance.consumer_cursors",
    heads: "collection.log_heads",
};
const MODELING: Stage = Stage {
    consumer: "modeling.events",
    cursors: "modeling.consumer_cursors",
    heads: "governance.clean_heads",
};

/// Waits until each of `stages`, in order, has consumed its log up to the head, then checks
/// that `table` holds `expected` rows. Progress is polled with single-row reads: a `count(*)`
/// of a table of 200,000 rows every 20 ms would itself take most of a core from the stages
/// being measured.
async fn wait_for(
    conn: &mut sqlx::PgConnection,
    stages: &[Stage],
    table: &str,
    expected: i64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    for stage in stages {
        loop {
            let (cursor, head): (Option<i64>, Option<i64>) = sqlx::query_as(&format!(
                "SELECT (SELECT last_sequence FROM {} WHERE consumer = $1 AND tenant_id = $2),
                        (SELECT last_sequence FROM {} WHERE tenant_id = $2)",
                stage.cursors, stage.heads
            ))
            .bind(stage.consumer)
            .bind(TENANT)
            .fetch_one(&mut *conn)
            .await?;
            if let (Some(cursor), Some(head)) = (cursor, head)
                && cursor >= head
            {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} did not drain: at {cursor:?} of {head:?}",
                stage.consumer
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut *conn)
        .await?;
    anyhow::ensure!(n >= expected, "{table} holds {n} rows of {expected}");
    Ok(())
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
