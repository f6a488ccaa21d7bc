//! Identity graph build from the reference data set: starts the identity service alone on a
//! fresh database, streams a run of the generator through it as BatchResolve calls (each event's
//! identifiers as governance would hand them on: normalised, placeholders dropped, phones and
//! emails pseudonymised) and prints how long the graph took to build, how big it ended up in
//! PostgreSQL and the process's peak memory.
//!
//! `cargo run --release -p touchline-e2e --bin graph-build -- [PERSONS] [SEED]`
//! (PERSONS defaults to the `large` preset, 1,000,000; SEED to 42).
//!
//! Events are generated lazily person by person on a thread of their own and handed over a
//! bounded queue, so neither the run nor the calls waiting for the service pile up in memory:
//! the peak reported is the service's working set plus a constant for the generator.
#![allow(
    clippy::too_many_lines,
    reason = "a benchmark's script reads top to bottom"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::Connection as _;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use touchline::ServiceName;
use touchline_governance::domain::pii::{self, PrivacySettings, TenantKey};
use touchline_proto::common::v1::Identifier;
use touchline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use touchline_proto::identity::v1::{BatchResolveRequest, ResolveItem};
use touchline_runtime::client::CallCredentials;
use touchline_sim::{EventStream, SimConfig, TemplateKind, TruthEvent};
use touchline_testkit::{TestApp, TestDatabase, token};

const TENANT: &str = "graph";
/// The contract's limit is on identifiers per call, not items; events carry a few each.
const MAX_IDENTIFIERS_PER_CALL: usize = 1_000;
const MAX_ITEMS_PER_CALL: usize = 1_000;
const IN_FLIGHT: usize = 8;
/// Calls generated but not yet sent; enough to keep every slot busy while the generator
/// catches up, little enough that memory stays flat when the service is the bottleneck.
const QUEUED_CALLS: usize = 2 * IN_FLIGHT;
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Contention between concurrent merges answers ABORTED; the service asks for a retry.
const MAX_ATTEMPTS: u32 = 8;

type Client = IdentityServiceClient<InterceptedService<Channel, CallCredentials>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let persons: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()
        .context("PERSONS must be a whole number")?
        .unwrap_or(1_000_000);
    let seed: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()
        .context("SEED must be a whole number")?
        .unwrap_or(42);
    // Warnings of the service go to stderr (RUST_LOG raises verbosity).
    let telemetry = touchline_telemetry::init(&touchline_telemetry::TelemetryConfig {
        filter: "warn".to_owned(),
        ..Default::default()
    })?;
    let app = TestApp::spawn_with(TestDatabase::create().await?, |config| {
        config.services = vec![ServiceName::Identity];
    })
    .await?;
    let outcome = run(&app, persons, seed).await;
    // Stopping also drops the database, which is why everything is read from it inside `run`.
    app.stop().await;
    outcome?;
    telemetry.shutdown()?;
    Ok(())
}

/// Everything counted while the graph is built; shared with the sender tasks and the progress
/// line.
#[derive(Default)]
struct Counters {
    events: AtomicU64,
    skipped: AtomicU64,
    invalid: AtomicU64,
    blocked: AtomicU64,
    generated_persons: AtomicU64,
    resolved_events: AtomicU64,
    resolved_identifiers: AtomicU64,
    calls: AtomicU64,
    retries: AtomicU64,
    created: AtomicU64,
    refused: AtomicU64,
    unresolved: AtomicU64,
}

impl Counters {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn progress(&self, started: Instant, persons_total: u64) {
        let secs = started.elapsed().as_secs_f64();
        let resolved = Self::get(&self.resolved_events);
        eprintln!(
            "graph-build: {secs:.0}s, generator persons {}/{persons_total}, events generated {}, resolved {resolved} ({} identifiers), {:.0} events/s",
            Self::get(&self.generated_persons),
            Self::get(&self.events),
            Self::get(&self.resolved_identifiers),
            resolved as f64 / secs.max(f64::EPSILON),
        );
    }
}

async fn run(app: &TestApp, persons: u64, seed: u64) -> anyhow::Result<()> {
    let client = IdentityServiceClient::new(app.channel(&token(TENANT, &["identity:resolve"]))?);
    let stream = touchline_sim::events(SimConfig::new(TemplateKind::Retail, persons, seed))
        .context("configuring the generator")?;
    let counters = Arc::new(Counters::default());
    let started = Instant::now();

    let (tx, rx) = tokio::sync::mpsc::channel(QUEUED_CALLS);
    let producer = {
        let counters = counters.clone();
        std::thread::spawn(move || produce(stream, &counters, &tx))
    };
    let progress = {
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                counters.progress(started, persons);
            }
        })
    };
    // The queue's receiver goes with `dispatch`, so a failed call also stops the generator.
    let dispatched = dispatch(&client, rx, &counters).await;
    progress.abort();
    let produced = tokio::task::spawn_blocking(move || producer.join())
        .await
        .context("waiting for the generator")?;
    dispatched?;
    match produced {
        Ok(result) => result?,
        Err(_) => anyhow::bail!("the generator thread panicked"),
    }
    let secs = started.elapsed().as_secs_f64();
    let peak_rss_kib = peak_rss_kib()?;

    let mut conn = sqlx::PgConnection::connect(&app.db.url)
        .await
        .context("connecting to the benchmark database")?;
    let (persons_total, persons_active): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE state = 'active')
           FROM identity.persons WHERE tenant_id = $1",
    )
    .bind(TENANT)
    .fetch_one(&mut conn)
    .await
    .context("counting persons")?;
    let identifiers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM identity.identifiers WHERE tenant_id = $1")
            .bind(TENANT)
            .fetch_one(&mut conn)
            .await
            .context("counting identifiers")?;
    let decisions: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, count(*) FROM identity.decisions WHERE tenant_id = $1
          GROUP BY kind ORDER BY kind",
    )
    .bind(TENANT)
    .fetch_all(&mut conn)
    .await
    .context("counting decisions")?;
    let database_bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut conn)
        .await
        .context("reading the database size")?;
    // Tables with their indexes and TOAST: what the graph itself occupies.
    let identity_bytes: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'identity' AND c.relkind = 'r'",
    )
    .fetch_one(&mut conn)
    .await
    .context("reading the identity schema size")?;
    // The database is dropped with the app; an open session would only delay that.
    conn.close().await.context("closing the connection")?;

    let get = Counters::get;
    let events = get(&counters.events);
    let resolved = get(&counters.resolved_events);
    let occurrences = get(&counters.resolved_identifiers);
    let mib = |bytes: i64| bytes as f64 / f64::from(1 << 20);
    let decisions = if decisions.is_empty() {
        "none".to_owned()
    } else {
        decisions
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "graph-build: retail template, {persons} persons, seed {seed}, tenant {TENANT}, identity service alone"
    );
    println!(
        "events: {events} generated, {resolved} resolved, {} without any identifier after governance rules (skipped)",
        get(&counters.skipped)
    );
    println!(
        "identifier occurrences: {occurrences} sent ({} invalid and {} placeholder values dropped as governance would)",
        get(&counters.invalid),
        get(&counters.blocked)
    );
    println!(
        "calls: {} BatchResolve (at most {MAX_IDENTIFIERS_PER_CALL} identifiers each, {IN_FLIGHT} in flight), {} retried; results: {} on a person created in the same call, {} with a link refused, {} unresolved",
        get(&counters.calls),
        get(&counters.retries),
        get(&counters.created),
        get(&counters.refused),
        get(&counters.unresolved)
    );
    println!(
        "time: {secs:.1} s = {:.0} events/s, {:.0} identifier occurrences/s (generation included)",
        resolved as f64 / secs,
        occurrences as f64 / secs
    );
    println!(
        "graph: {persons_total} persons ({persons_active} active, {} merged away), {identifiers} identifiers; decisions: {decisions}",
        persons_total - persons_active
    );
    println!(
        "database: {:.1} MiB (pg_database_size), identity tables with indexes {:.1} MiB",
        mib(database_bytes),
        mib(identity_bytes)
    );
    println!(
        "peak RSS: {:.1} MiB (VmHWM of this one process: the identity service, the generator and the gRPC client together; PostgreSQL and Redis not included)",
        peak_rss_kib as f64 / 1024.0
    );
    Ok(())
}

/// Generates the run and packs its events into calls; returns when the run is done or the
/// senders are gone.
fn produce(
    mut stream: EventStream,
    counters: &Counters,
    tx: &tokio::sync::mpsc::Sender<BatchResolveRequest>,
) -> anyhow::Result<()> {
    let privacy = PrivacySettings::default();
    // A fixed key: pseudonyms only have to be stable within the run and as long as real ones.
    let key = TenantKey {
        version: 1,
        secret: vec![0x5a; 32],
    };
    let mut items = Vec::new();
    let mut identifiers_in_call = 0;
    let mut dropped = Dropped::default();
    loop {
        let next = stream.next_with_truth();
        let done = next.is_none();
        if let Some(truth) = next {
            counters.events.fetch_add(1, Ordering::Relaxed);
            let item = resolve_item(&truth, &privacy, &key, &mut dropped);
            if item.identifiers.is_empty() {
                counters.skipped.fetch_add(1, Ordering::Relaxed);
            } else {
                if identifiers_in_call + item.identifiers.len() > MAX_IDENTIFIERS_PER_CALL
                    || items.len() == MAX_ITEMS_PER_CALL
                {
                    if !send(tx, std::mem::take(&mut items)) {
                        return Ok(());
                    }
                    identifiers_in_call = 0;
                }
                anyhow::ensure!(
                    item.identifiers.len() <= MAX_IDENTIFIERS_PER_CALL,
                    "event {} carries more identifiers than one call may",
                    item.evidence_message_id
                );
                identifiers_in_call += item.identifiers.len();
                items.push(item);
            }
        }
        counters
            .generated_persons
            .store(stream.persons_done(), Ordering::Relaxed);
        counters.invalid.store(dropped.invalid, Ordering::Relaxed);
        counters.blocked.store(dropped.blocked, Ordering::Relaxed);
        if done {
            if !items.is_empty() {
                send(tx, items);
            }
            return Ok(());
        }
    }
}

/// False when the senders have stopped (a call failed), which ends generation.
fn send(tx: &tokio::sync::mpsc::Sender<BatchResolveRequest>, items: Vec<ResolveItem>) -> bool {
    tx.blocking_send(BatchResolveRequest {
        parent: String::new(),
        items,
    })
    .is_ok()
}

#[derive(Default)]
struct Dropped {
    invalid: u64,
    blocked: u64,
}

/// The item governance's clean event would give identity: the top-level ids and the
/// identifier list, normalised, placeholders dropped, direct identifiers pseudonymised, each
/// identifier once (the rules of the governance crate's `domain::ids`).
fn resolve_item(
    truth: &TruthEvent,
    privacy: &PrivacySettings,
    key: &TenantKey,
    dropped: &mut Dropped,
) -> ResolveItem {
    let event = &truth.event;
    // A top-level id the identifier list repeats is one identifier, not two.
    let repeated = |kind: &str, value: &str| {
        event
            .identifiers
            .iter()
            .any(|i| i.kind.trim().eq_ignore_ascii_case(kind) && i.value.trim() == value.trim())
    };
    let top = [
        ("anonymous_id", event.anonymous_id.as_deref()),
        ("user_id", event.user_id.as_deref()),
    ];
    let candidates = top
        .into_iter()
        .filter_map(|(kind, value)| Some((kind.to_owned(), value?, "")))
        .filter(|(kind, value, _)| !value.trim().is_empty() && !repeated(kind, value))
        .chain(event.identifiers.iter().map(|i| {
            (
                i.kind.trim().to_lowercase(),
                i.value.as_str(),
                i.scope.unwrap_or_default().trim(),
            )
        }));
    let mut identifiers: Vec<Identifier> = Vec::new();
    for (kind, value, scope) in candidates {
        if kind.is_empty() || value.trim().is_empty() {
            continue;
        }
        let direct = privacy.direct_types.contains(&kind);
        let stored = if direct && pii::is_pseudonym(value.trim()) {
            value.trim().to_owned()
        } else {
            let Ok(normalised) = pii::normalise(&kind, value, &privacy.default_country_code) else {
                dropped.invalid += 1;
                continue;
            };
            if pii::is_blocked(&kind, &normalised, privacy) {
                dropped.blocked += 1;
                continue;
            }
            if direct {
                pii::pseudonymise(key, &kind, &normalised)
            } else {
                normalised
            }
        };
        let id = Identifier {
            r#type: kind,
            value: stored,
            scope: scope.to_owned(),
        };
        if !identifiers.contains(&id) {
            identifiers.push(id);
        }
    }
    // Governance's corrected event time is the true instant when the correction works; the
    // generator knows the true one.
    let observed_at = prost_types::Timestamp {
        seconds: truth.true_ms.div_euclid(1_000),
        nanos: i32::try_from(truth.true_ms.rem_euclid(1_000) * 1_000_000).unwrap_or(0),
    };
    ResolveItem {
        identifiers,
        observed_at: Some(observed_at),
        evidence_message_id: event.message_id.clone(),
    }
}

/// Sends the queued calls, `IN_FLIGHT` at a time, until the generator is done.
async fn dispatch(
    client: &Client,
    mut rx: tokio::sync::mpsc::Receiver<BatchResolveRequest>,
    counters: &Arc<Counters>,
) -> anyhow::Result<()> {
    let mut calls = tokio::task::JoinSet::new();
    while let Some(request) = rx.recv().await {
        while calls.len() >= IN_FLIGHT {
            join_one(&mut calls).await?;
        }
        let (client, counters) = (client.clone(), counters.clone());
        calls.spawn(async move { resolve(client, request, &counters).await });
    }
    while !calls.is_empty() {
        join_one(&mut calls).await?;
    }
    Ok(())
}

async fn join_one(calls: &mut tokio::task::JoinSet<anyhow::Result<()>>) -> anyhow::Result<()> {
    match calls.join_next().await {
        Some(joined) => joined.context("a BatchResolve task failed")?,
        None => Ok(()),
    }
}

async fn resolve(
    mut client: Client,
    request: BatchResolveRequest,
    counters: &Counters,
) -> anyhow::Result<()> {
    let items = request.items.len() as u64;
    let identifiers: u64 = request
        .items
        .iter()
        .map(|i| i.identifiers.len() as u64)
        .sum();
    let mut attempt = 0;
    let response = loop {
        attempt += 1;
        match client.batch_resolve(request.clone()).await {
            Ok(response) => break response.into_inner(),
            Err(status)
                if attempt < MAX_ATTEMPTS
                    && matches!(status.code(), Code::Aborted | Code::Unavailable) =>
            {
                counters.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
            }
            Err(status) => {
                anyhow::bail!("BatchResolve failed after {attempt} attempts: {status}")
            }
        }
    };
    anyhow::ensure!(
        response.results.len() as u64 == items,
        "BatchResolve answered {} results for {items} items",
        response.results.len()
    );
    let count = |f: fn(&touchline_proto::identity::v1::ResolveResult) -> bool| {
        response.results.iter().filter(|r| f(r)).count() as u64
    };
    counters
        .created
        .fetch_add(count(|r| r.created), Ordering::Relaxed);
    counters
        .refused
        .fetch_add(count(|r| r.refused), Ordering::Relaxed);
    counters
        .unresolved
        .fetch_add(count(|r| r.unresolved), Ordering::Relaxed);
    counters.calls.fetch_add(1, Ordering::Relaxed);
    counters.resolved_events.fetch_add(items, Ordering::Relaxed);
    counters
        .resolved_identifiers
        .fetch_add(identifiers, Ordering::Relaxed);
    Ok(())
}

/// The process's peak resident memory in KiB.
fn peak_rss_kib() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmHWM not found in /proc/self/status")
}
