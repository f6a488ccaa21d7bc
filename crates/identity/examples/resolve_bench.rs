//! Measures the identity service in process against real PostgreSQL and
//! Redis: BatchResolve identifiers per second on a large graph (creating,
//! cold cache, warm cache) and Resolve latency at a fixed call rate.
//!
//! `cargo run --release -p touchline-identity --example resolve_bench`
//! Settings (environment): `BENCH_PERSONS` (default 100000; 1666667 makes
//! the 5 million identifier graph), `BENCH_CONCURRENCY` (8), `BENCH_RATE`
//! (1000 calls/s), `BENCH_SECONDS` (10), `BENCH_LOCAL_CAPACITY` (entries of
//! the in-process layer, the service's default when unset), `DATABASE_URL`,
//! `REDIS_URL`.
//!
//! Warm figures come in two kinds: a sweep over the whole graph (most keys
//! answered by Redis, as many as fit by the in-process layer) and a sweep
//! over a hot set that fits the in-process layer (half its capacity), the
//! shape of real traffic where a minority of identifiers carries most
//! lookups.
#![allow(
    clippy::too_many_lines,
    reason = "a benchmark's script reads top to bottom"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, PgConnection};
use tonic::Request;
use touchline_auth::Principal;
use touchline_identity::{IdentityApi, IdentityCache, IdentityConfig};
use touchline_proto::common::v1::Identifier;
use touchline_proto::identity::v1 as pb;
use touchline_proto::identity::v1::identity_service_server::IdentityService as _;

/// The allocator the `touchline` binary runs the service with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TENANT: &str = "bench";
/// Identifiers per person, and per BatchResolve call (the contract's limit).
const PER_PERSON: usize = 3;
const PER_CALL: usize = 999;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn principal() -> Principal {
    Principal {
        subject: "bench".to_owned(),
        tenant: TENANT.to_owned(),
        roles: Vec::new(),
        scopes: ["identity:resolve".to_owned()].into(),
    }
}

fn identifiers(person: u64) -> Vec<Identifier> {
    let id = |t: &str, v: String| Identifier {
        r#type: t.to_owned(),
        value: v,
        scope: String::new(),
    };
    vec![
        id("user_id", format!("u-{person}")),
        id("phone", format!("k1:{person:032x}")),
        id("anonymous_id", format!("a-{person}")),
    ]
}

async fn batch(api: &IdentityApi, persons: std::ops::Range<u64>) -> anyhow::Result<usize> {
    let items: Vec<pb::ResolveItem> = persons
        .map(|p| pb::ResolveItem {
            identifiers: identifiers(p),
            ..Default::default()
        })
        .collect();
    let count = items.len() * PER_PERSON;
    let mut request = Request::new(pb::BatchResolveRequest {
        parent: String::new(),
        items,
    });
    request.extensions_mut().insert(principal());
    let reply = api.batch_resolve(request).await?.into_inner();
    anyhow::ensure!(reply.results.iter().all(|r| !r.person_id.is_empty()));
    Ok(count)
}

/// Runs BatchResolve over every person with `concurrency` callers; returns
/// identifiers per second.
async fn sweep(api: &IdentityApi, persons: u64, concurrency: u64) -> anyhow::Result<f64> {
    let per_call = (PER_CALL / PER_PERSON) as u64;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (api, next) = (api.clone(), Arc::clone(&next));
        tasks.spawn(async move {
            let mut done = 0usize;
            loop {
                let from = next.fetch_add(per_call, std::sync::atomic::Ordering::Relaxed);
                if from >= persons {
                    return anyhow::Ok(done);
                }
                done += batch(&api, from..(from + per_call).min(persons)).await?;
            }
        });
    }
    let mut total = 0;
    while let Some(joined) = tasks.join_next().await {
        total += joined??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Peak resident memory of this process, MiB (0 where /proc is missing).
fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let persons = env_or("BENCH_PERSONS", 100_000);
    let concurrency = env_or("BENCH_CONCURRENCY", 8);
    let rate = env_or("BENCH_RATE", 1_000);
    let seconds = env_or("BENCH_SECONDS", 10);
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());

    let name = format!("identity_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&server).await.context("postgres")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect(&format!("{base}/{name}"))
        .await?;
    touchline_db::migrate(
        &pool,
        touchline_identity::SCHEMA,
        &touchline_identity::MIGRATOR,
    )
    .await?;
    let defaults = IdentityConfig::default();
    let local_capacity = env_or("BENCH_LOCAL_CAPACITY", defaults.local_capacity);
    let cache = |prefix: String| {
        let config = IdentityConfig {
            redis_url: Some(redis_url.clone()),
            key_prefix: prefix,
            local_capacity,
            ..IdentityConfig::default()
        };
        async move { IdentityCache::connect(&config).await }
    };
    let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());

    // Creating the graph (writes, no cache).
    let uncached = IdentityApi::new(pool.clone(), None);
    let started = Instant::now();
    let create = sweep(&uncached, persons, concurrency).await?;
    let size: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&pool)
        .await?;
    println!(
        "batch_resolve create: {create:.0} identifiers/s ({persons} persons, {} identifiers, {:.0} s, database {} MiB)",
        persons * PER_PERSON as u64,
        started.elapsed().as_secs_f64(),
        size / (1 << 20)
    );
    // Cold: every identifier known, nothing cached.
    let redis = cache(prefix.clone()).await?;
    let stats = || redis.as_ref().map(IdentityCache::stats).unwrap_or_default();
    // The in-process layer serves once its invalidation channel is up.
    for _ in 0..200 {
        if redis
            .as_ref()
            .and_then(IdentityCache::local)
            .is_some_and(|l| l.trusted())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let api = IdentityApi::new(pool.clone(), redis.clone());
    let before = stats();
    let cold = sweep(&api, persons, concurrency).await?;
    let after = stats();
    println!(
        "batch_resolve cold cache: {cold:.0} identifiers/s (cache hits {}, misses {}, fallbacks {})",
        after.hits - before.hits,
        after.misses - before.misses,
        after.fallbacks - before.fallbacks
    );
    let before = stats();
    let warm = sweep(&api, persons, concurrency).await?;
    let after = stats();
    println!(
        "batch_resolve warm cache, whole graph: {warm:.0} identifiers/s (in-process hits {}, redis hits {}, misses {}, fallbacks {})",
        after.local_hits - before.local_hits,
        after.hits - before.hits,
        after.misses - before.misses,
        after.fallbacks - before.fallbacks
    );
    let hot = (local_capacity / 2 / PER_PERSON as u64).clamp(1, persons);
    sweep(&api, hot, concurrency).await?;
    let before = stats();
    let warm_hot = sweep(&api, hot, concurrency).await?;
    let after = stats();
    println!(
        "batch_resolve warm cache, hot set of {} identifiers: {warm_hot:.0} identifiers/s (in-process hits {}, redis hits {}, misses {}, fallbacks {})",
        hot * PER_PERSON as u64,
        after.local_hits - before.local_hits,
        after.hits - before.hits,
        after.misses - before.misses,
        after.fallbacks - before.fallbacks
    );
    let peak = peak_rss_mib();
    println!("peak RSS of the bench process (service in process): {peak} MiB");

    // Resolve at a fixed rate (warm cache), one call per tick.
    let mut histogram = hdrhistogram::Histogram::<u64>::new(3)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<u64, String>>(4_096);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let calls = rate * seconds;
    let started = Instant::now();
    for i in 0..calls {
        ticker.tick().await;
        let (api, tx) = (api.clone(), tx.clone());
        let person = (i * 7_919) % persons;
        tokio::spawn(async move {
            let begun = Instant::now();
            let mut request = Request::new(pb::ResolveRequest {
                identifier: identifiers(person).into_iter().next(),
                ..Default::default()
            });
            request.extensions_mut().insert(principal());
            let result = match api.resolve(request).await {
                Ok(_) => Ok(u64::try_from(begun.elapsed().as_micros()).unwrap_or(u64::MAX)),
                Err(status) => Err(status.message().to_owned()),
            };
            let _ = tx.send(result).await;
        });
    }
    drop(tx);
    let mut errors = 0;
    while let Some(result) = rx.recv().await {
        match result {
            Ok(micros) => histogram.record(micros.max(1))?,
            Err(_) => errors += 1,
        }
    }
    let achieved = calls as f64 / started.elapsed().as_secs_f64();
    println!(
        "resolve at {rate}/s (achieved {achieved:.0}/s, {calls} calls, {errors} errors): \
         p50 {} us, p99 {} us, max {} us",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.max()
    );

    // Leave the shared Redis as it was.
    let mut conn = redis::Client::open(redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<i64>(&mut conn)
                .await?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    Ok(())
}
