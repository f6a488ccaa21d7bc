//! Activation benchmark: the real application in-process against local PostgreSQL and Redis,
//! with webhook receivers in this process on loopback (plain HTTP, as the test configuration
//! allows).
//!
//! 1. latency: purchases, each from a new person, at a steady rate (default 2,000 events/s for
//!    30 s, a call of 100 events every 50 ms); a segment "at least one purchase within the last
//!    day" and a webhook destination for it. Per person, the time from the IngestEvents
//!    acknowledgement of their purchase to the arrival of their entry at the receiver.
//! 2. delivery throughput: a backlog of segment entries (a second segment whose first build
//!    enters every person, after a bulk load of older purchases), delivered to 10 receivers
//!    one trigger per delivery and again 100 per delivery, each run timed until every
//!    destination's `delivered_sequence` reaches the head (GetWebhookDestination); then the
//!    one-per-delivery run again with an 11th endpoint that accepts connections and never
//!    answers, and once more without it, comparing the 10 healthy endpoints' delivery times
//!    with it against the two runs without it. Then endpoints that each take 20 ms to answer,
//!    one trigger per delivery to 10 of them: in sequence order (one delivery in flight each)
//!    and in per-person order with 16 in flight each.
//! 3. the change feed: the whole segment change log read from the start with
//!    ListSegmentChanges (pages of 5,000) and with StreamSegmentChanges.
//!
//! Every receiver checks every delivery's Standard Webhooks signature and that triggers come
//! in sequence order (per person, for a per-person destination). The latency run also reads each stage's own timestamps from the database
//! (received, clean, stored, the segment round's trigger time) to show where the time goes. A
//! throughput run's delivery time is from the later of the trigger's creation and the run's
//! start, since the backlog is written before its destinations exist. The application gets
//! the connection pool a deployment gets by default. The figures are printed next to the
//! issue's targets and the machine's ceilings (`LIMITS.md`), with the load average, since
//! other work on the 2 cores moves every figure; nothing here passes or fails on a figure.
//!
//! `cargo run --release -p touchline-e2e --bin activation-bench [-- OPTIONS]`
//!
//! - `--quick`: a smoke run (5 s of steady load, 5,000 backlog persons, 500 triggers per
//!   endpoint in the one-per-delivery runs);
//! - `--seconds=N`, `--rate=N` (events/s, a multiple of 20), `--bulk=N` (backlog persons),
//!   `--per-endpoint=N` (triggers each endpoint is sent one per delivery); later options
//!   override `--quick`;
//! - `--latency-only`: the latency run alone;
//! - `--timeline=FILE`: the latency run's stage times per person, as CSV (milliseconds since
//!   the epoch), to see when slow entries happen and at which stage.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use touchline_e2e::{Collection, Modeling, sample_event};
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    CountEventsRequest, CreateSegmentRequest, CreateWebhookDestinationRequest,
    DeleteWebhookDestinationRequest, GetSegmentRequest, GetWebhookDestinationRequest,
    ListSegmentChangesRequest, Segment, SegmentState, StreamSegmentChangesRequest,
    SubscribeTriggersRequest, TriggerType, WebhookDestination, WebhookOrdering,
};
use touchline_testkit::{TestApp, TestDatabase, token};
use touchline_webhooks::SigningSecret;
use touchline_webhooks::signature::{DEFAULT_TOLERANCE, verify};

const TENANT: &str = "activation";
const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "dictionary:read",
    "dictionary:write",
    "segments:read",
    "segments:write",
    "activation:read",
    "activation:write",
];
const DAY_MS: i64 = 86_400_000;
/// The latency run's segment and the backlog's.
const LIVE_SEGMENT: &str = "bought-today";
const BACKLOG_SEGMENT: &str = "bought-this-month";
/// Triggers per delivery to the latency run's receiver (the contract's default).
const LIVE_BATCH: i32 = 100;
/// Healthy endpoints in the throughput runs.
const ENDPOINTS: usize = 10;
/// Person numbers of the steady run and of the backlog (disjoint).
const LIVE_PERSONS: u64 = 1_000_000;
const BACKLOG_PERSONS: u64 = 10_000_000;
/// Events per IngestEvents call and calls in flight while loading the backlog.
const LOAD_BATCH: usize = 500;
const LOAD_PRODUCERS: usize = 4;
/// Changes per ListSegmentChanges page and per streamed response (the contract's maximum).
const FEED_PAGE: i32 = 5_000;
/// How long any one wait may take before the run gives up.
const PATIENCE: Duration = Duration::from_secs(900);
/// How long a slow endpoint takes to answer.
const SLOW_ANSWER: Duration = Duration::from_millis(20);
/// Deliveries in flight per slow endpoint with per-person order.
const SLOW_LANES: i32 = 16;

/// How long and how hard the run is.
#[derive(Debug, Clone, Copy)]
struct Options {
    quick: bool,
    seconds: u64,
    rate: u64,
    bulk: usize,
    per_endpoint: i64,
    latency_only: bool,
    /// Where the latency run's per-person stage times go (leaked: the options live as long as
    /// the run).
    timeline: Option<&'static str>,
}

impl Options {
    fn parse() -> anyhow::Result<Self> {
        const USAGE: &str = "usage: activation-bench [--quick] [--seconds=N] [--rate=N] [--bulk=N] [--per-endpoint=N] [--latency-only] [--timeline=FILE]";
        let mut options = Self {
            quick: false,
            seconds: 30,
            rate: 2_000,
            bulk: 50_000,
            per_endpoint: 5_000,
            latency_only: false,
            timeline: None,
        };
        for arg in std::env::args().skip(1) {
            let number = |v: &str| v.parse::<u64>().context(USAGE);
            match arg.split_once('=') {
                None if arg == "--quick" => {
                    options = Self {
                        quick: true,
                        seconds: 5,
                        bulk: 5_000,
                        per_endpoint: 500,
                        ..options
                    };
                }
                None if arg == "--latency-only" => options.latency_only = true,
                Some(("--timeline", v)) => options.timeline = Some(String::leak(v.to_owned())),
                Some(("--seconds", v)) => options.seconds = number(v)?,
                Some(("--rate", v)) => options.rate = number(v)?,
                Some(("--bulk", v)) => options.bulk = usize::try_from(number(v)?)?,
                Some(("--per-endpoint", v)) => options.per_endpoint = i64::try_from(number(v)?)?,
                _ => anyhow::bail!("{USAGE}"),
            }
        }
        anyhow::ensure!(
            options.rate >= 20 && options.rate.is_multiple_of(20),
            "--rate is a multiple of 20 (one call every 50 ms)"
        );
        anyhow::ensure!(options.seconds > 0 && options.bulk > 0 && options.per_endpoint > 0);
        Ok(options)
    }
}

/// Milliseconds since the Unix epoch, from the wall clock (trigger times are wall-clock).
fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1_000.0
}

// ---------------------------------------------------------------------------------------------
// Receivers

/// One trigger as a receiver saw it.
#[derive(Debug, Clone)]
struct Arrival {
    /// When its delivery's request head arrived.
    at_ms: f64,
    sequence: i64,
    /// Its `triggerTime`.
    trigger_ms: f64,
    person: String,
}

/// What one receiver has seen.
#[derive(Debug, Default)]
struct Seen {
    /// HTTP requests.
    deliveries: u64,
    /// Requests whose signature did not verify under the destination's secret.
    unverified: u64,
    /// Requests whose body was not the contract's JSON.
    unreadable: u64,
    /// Triggers that came at or below a sequence already received (out of order or again).
    out_of_order: u64,
    /// Triggers that came at or below a sequence already received for the same person.
    person_out_of_order: u64,
    /// Each person's highest trigger sequence received.
    last_of_person: HashMap<String, i64>,
    /// The highest trigger sequence received.
    max_sequence: i64,
    arrivals: Vec<Arrival>,
}

/// A webhook endpoint on loopback answering 204 to every delivery (after `delay`, a receiver
/// that does work of its own before it answers), after checking its signature and noting each
/// trigger's arrival. Dropping it closes the listener and every connection.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(secret: &SigningSecret, delay: Duration) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hooks", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = (Arc::clone(&seen), Arc::new(secret.clone()));
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(serve(
                    stream,
                    Arc::clone(&state.0),
                    Arc::clone(&state.1),
                    delay,
                ));
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self { url, seen, task })
    }

    fn read<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

async fn serve(
    stream: TcpStream,
    seen: Arc<Mutex<Seen>>,
    secret: Arc<SigningSecret>,
    delay: Duration,
) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let seen = Arc::clone(&seen);
        let secret = Arc::clone(&secret);
        async move {
            let response = receive(request, &seen, &secret).await;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, Infallible>(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn receive(
    request: Request<Incoming>,
    seen: &Mutex<Seen>,
    secret: &SigningSecret,
) -> Response<Empty<Bytes>> {
    let at_ms = now_ms();
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let verified = verify(
        secret,
        &parts.headers,
        &body,
        SystemTime::now(),
        DEFAULT_TOLERANCE,
    )
    .is_ok();
    let arrivals = triggers_of(&body, at_ms);
    let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
    seen.deliveries += 1;
    seen.unverified += u64::from(!verified);
    match arrivals {
        Some(arrivals) => {
            for arrival in arrivals {
                if arrival.sequence <= seen.max_sequence {
                    seen.out_of_order += 1;
                }
                let last = seen
                    .last_of_person
                    .entry(arrival.person.clone())
                    .or_insert(0);
                let again = arrival.sequence <= *last;
                *last = (*last).max(arrival.sequence);
                seen.person_out_of_order += u64::from(again);
                seen.max_sequence = seen.max_sequence.max(arrival.sequence);
                seen.arrivals.push(arrival);
            }
        }
        None => seen.unreadable += 1,
    }
    let mut response = Response::new(Empty::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// The triggers of a delivery body, `{"triggers": [...]}` in the contract's JSON mapping.
fn triggers_of(body: &[u8], at_ms: f64) -> Option<Vec<Arrival>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value["triggers"]
        .as_array()?
        .iter()
        .map(|t| {
            let time = chrono::DateTime::parse_from_rfc3339(t["triggerTime"].as_str()?).ok()?;
            Some(Arrival {
                at_ms,
                sequence: t["sequence"].as_str()?.parse().ok()?,
                trigger_ms: time.timestamp_millis() as f64,
                person: t["personId"].as_str()?.to_owned(),
            })
        })
        .collect()
}

/// An endpoint that accepts connections and never answers: every attempt waits for the
/// sender's timeout.
struct Silent {
    url: String,
    task: JoinHandle<()>,
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Silent {
    async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hooks", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Ok(Self { url, task })
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// At least one purchase within the last `days` days.
fn bought_within(id: &str, days: i64) -> CreateSegmentRequest {
    let rule = touchline_e2e::did_within("purchase", days);
    CreateSegmentRequest {
        segment_id: id.to_owned(),
        segment: Some(Segment {
            rule: Some(rule),
            ..Segment::default()
        }),
        ..CreateSegmentRequest::default()
    }
}

/// How a destination orders its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lanes {
    /// One in flight, in sequence order.
    Sequence,
    /// This many in flight, first in first out per person.
    PerPerson(i32),
}

/// A destination for the entries of `segment` after `start_after` (0: from the head), ordered
/// by `lanes`.
fn destination(
    id: &str,
    url: &str,
    secret: &SigningSecret,
    batch: i32,
    segment: &str,
    start_after: i64,
    lanes: Lanes,
) -> CreateWebhookDestinationRequest {
    let (ordering, max_concurrency) = match lanes {
        Lanes::Sequence => (WebhookOrdering::Sequence, 1),
        Lanes::PerPerson(n) => (WebhookOrdering::PerPerson, n),
    };
    CreateWebhookDestinationRequest {
        webhook_destination_id: id.to_owned(),
        webhook_destination: Some(WebhookDestination {
            url: url.to_owned(),
            signing_secret: secret.to_string(),
            max_batch_size: batch,
            types: vec![TriggerType::SegmentEntered as i32],
            segments: vec![format!("tenants/{TENANT}/segments/{segment}")],
            start_after_sequence: start_after,
            ordering: ordering as i32,
            max_concurrency,
            ..WebhookDestination::default()
        }),
        ..CreateWebhookDestinationRequest::default()
    }
}

fn destination_name(id: &str) -> String {
    format!("tenants/{TENANT}/webhookDestinations/{id}")
}

/// Waits until segment `id` is active with `count` members; returns how long that took.
async fn settled(modeling: &mut Modeling, id: &str, count: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let segment = modeling
            .get_segment(GetSegmentRequest {
                name: format!("tenants/{TENANT}/segments/{id}"),
            })
            .await?
            .into_inner()
            .segment
            .unwrap_or_default();
        if segment.state == SegmentState::Active as i32
            && usize::try_from(segment.member_count)? >= count
        {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < PATIENCE,
            "{id} did not reach {count} members: {} after {PATIENCE:?}",
            segment.member_count
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The tenant's newest trigger sequence, from the first response of a trigger stream.
async fn trigger_head(modeling: &mut Modeling) -> anyhow::Result<i64> {
    let mut stream = modeling
        .subscribe_triggers(SubscribeTriggersRequest {
            max_batch_size: 1,
            ..SubscribeTriggersRequest::default()
        })
        .await?
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(40), stream.message())
        .await
        .context("no trigger stream response")??;
    Ok(first.map_or(0, |r| r.head_sequence))
}

/// Waits until the event store reflects the raw log up to `position`.
async fn stored_through(modeling: &mut Modeling, position: i64) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let request = CountEventsRequest {
            min_raw_sequence: position,
            ..CountEventsRequest::default()
        };
        match modeling.count_events(request).await {
            Ok(_) => return Ok(()),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                anyhow::ensure!(started.elapsed() < PATIENCE, "not stored: {status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => return Err(status.into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Figures

/// Sorted samples.
struct Sorted(Vec<f64>);

impl Sorted {
    fn new(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Self(samples)
    }

    /// The `q` quantile (nearest rank); 0 without samples.
    fn at(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let rank = ((self.0.len() - 1) as f64 * q).round() as usize;
        self.0[rank.min(self.0.len() - 1)]
    }

    fn max(&self) -> f64 {
        self.0.last().copied().unwrap_or(0.0)
    }
}

/// `12345.6` as `12,346`.
fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The 1-minute load average, as the kernel reports it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

// ---------------------------------------------------------------------------------------------
// 1. Latency

/// What the steady run measured.
struct Latency {
    sent: usize,
    sent_rate: f64,
    arrived: usize,
    millis: Sorted,
    /// p50 / p99 of each stage.
    stages: Vec<(&'static str, Sorted)>,
    deliveries: u64,
    unverified: u64,
    out_of_order: u64,
}

/// Sends purchases of new persons at the steady rate; returns each call's acknowledgement
/// time (call `i` carries messages `l-{i × per call}`…), events sent and the rate achieved.
async fn steady(collection: &Collection, options: Options) -> anyhow::Result<(Vec<f64>, f64)> {
    let per_call = usize::try_from(options.rate / 20)?;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut calls = Vec::new();
    let started = Instant::now();
    for call in 0..usize::try_from(options.seconds * 20)? {
        tick.tick().await;
        let at = chrono::Utc::now().timestamp_millis();
        let events = (0..per_call)
            .map(|i| {
                let n = call * per_call + i;
                sample_event(&format!("l-{n}"), LIVE_PERSONS + n as u64, "purchase", at)
            })
            .collect();
        let mut client = collection.clone();
        calls.push(tokio::spawn(async move {
            let reply = client
                .ingest_events(IngestEventsRequest { events })
                .await?
                .into_inner();
            anyhow::ensure!(
                usize::try_from(reply.accepted_count)? == per_call,
                "a call was not fully accepted"
            );
            Ok(now_ms())
        }));
    }
    let sent = (calls.len() * per_call) as f64;
    let rate = sent / started.elapsed().as_secs_f64();
    let mut acks = Vec::with_capacity(calls.len());
    for call in calls {
        acks.push(call.await??);
    }
    Ok((acks, rate))
}

/// Waits until the receiver has an entry for `persons` persons, or nothing new came for 30 s.
async fn arrivals_settle(receiver: &Receiver, persons: usize) {
    let mut last = (0, Instant::now());
    loop {
        let n = receiver.read(|s| s.arrivals.len());
        if n >= persons || last.1.elapsed() > Duration::from_secs(30) {
            return;
        }
        if n > last.0 {
            last = (n, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The earliest arrival of each person's trigger, by person id.
fn first_arrivals(receiver: &Receiver) -> HashMap<String, f64> {
    let mut first: HashMap<String, f64> = HashMap::new();
    receiver.read(|seen| {
        for a in &seen.arrivals {
            let at = first.entry(a.person.clone()).or_insert(a.at_ms);
            *at = at.min(a.at_ms);
        }
    });
    first
}

/// Where each person's time went, from the stages' own timestamps (each the start of the
/// transaction that wrote the row): received by collection → clean → stored → the segment
/// round that found the entry (its trigger time) → received by the endpoint.
async fn stages(
    db: &sqlx::PgPool,
    first: &HashMap<String, f64>,
    timeline: Option<&str>,
) -> anyhow::Result<Vec<(&'static str, Sorted)>> {
    let rows: Vec<(String, f64, f64, f64, f64)> = sqlx::query_as(
        "SELECT e.person_id::text,
                (extract(epoch FROM r.received_at) * 1000)::float8,
                (extract(epoch FROM c.cleaned_at) * 1000)::float8,
                (extract(epoch FROM e.stored_at) * 1000)::float8,
                (extract(epoch FROM t.triggered_at) * 1000)::float8
           FROM modeling.events e
           JOIN collection.raw_events r USING (tenant_id, message_id)
           JOIN governance.clean_events c USING (tenant_id, message_id)
           JOIN modeling.triggers t
             ON t.tenant_id = e.tenant_id AND t.person_id = e.person_id AND t.segment_id = $2
          WHERE e.tenant_id = $1 AND e.message_id LIKE 'l-%'",
    )
    .bind(TENANT)
    .bind(LIVE_SEGMENT)
    .fetch_all(db)
    .await?;
    let mut spans: [Vec<f64>; 5] = Default::default();
    let mut csv = String::from("person,received,clean,stored,triggered,arrived\n");
    for (person, received, clean, stored, triggered) in rows {
        let Some(arrived) = first.get(&person) else {
            continue;
        };
        csv.push_str(&format!(
            "{person},{received:.1},{clean:.1},{stored:.1},{triggered:.1},{arrived:.1}\n"
        ));
        for (span, ms) in spans.iter_mut().zip([
            clean - received,
            stored - clean,
            triggered - stored,
            arrived - triggered,
            arrived - stored,
        ]) {
            span.push(ms);
        }
    }
    if let Some(file) = timeline {
        std::fs::write(file, csv).with_context(|| format!("writing {file}"))?;
    }
    let names = [
        "received → clean",
        "clean → stored",
        "stored → segment round",
        "segment round → endpoint",
        "stored → endpoint (segments, delivery)",
    ];
    Ok(names.into_iter().zip(spans.map(Sorted::new)).collect())
}

async fn latency_run(
    collection: &Collection,
    modeling: &mut Modeling,
    db: &sqlx::PgPool,
    options: Options,
) -> anyhow::Result<Latency> {
    modeling
        .create_segment(bought_within(LIVE_SEGMENT, 1))
        .await?;
    let secret = SigningSecret::generate();
    let receiver = Receiver::start(&secret, Duration::ZERO).await?;
    let live = destination(
        "live",
        &receiver.url,
        &secret,
        LIVE_BATCH,
        LIVE_SEGMENT,
        0,
        Lanes::Sequence,
    );
    modeling.create_webhook_destination(live).await?;
    let (acks, sent_rate) = steady(collection, options).await?;
    let per_call = usize::try_from(options.rate / 20)?;
    let sent = acks.len() * per_call;
    arrivals_settle(&receiver, sent).await;
    modeling
        .delete_webhook_destination(DeleteWebhookDestinationRequest {
            name: destination_name("live"),
            ..DeleteWebhookDestinationRequest::default()
        })
        .await?;
    // Which person each message made: the event store knows after identity resolution.
    let message_of: HashMap<String, String> = touchline_e2e::stored_events(modeling)
        .await?
        .into_iter()
        .map(|e| (e.person_id, e.message_id))
        .collect();
    let first = first_arrivals(&receiver);
    let millis: Vec<f64> = first
        .iter()
        .filter_map(|(person, at)| {
            let n: usize = message_of.get(person)?.strip_prefix("l-")?.parse().ok()?;
            Some(at - acks.get(n / per_call)?)
        })
        .collect();
    let (deliveries, unverified, out_of_order) =
        receiver.read(|s| (s.deliveries, s.unverified + s.unreadable, s.out_of_order));
    Ok(Latency {
        sent,
        sent_rate,
        arrived: millis.len(),
        millis: Sorted::new(millis),
        stages: stages(db, &first, options.timeline).await?,
        deliveries,
        unverified,
        out_of_order,
    })
}

// ---------------------------------------------------------------------------------------------
// 2. Delivery throughput

/// The backlog: persons loaded and the triggers their segment's first build wrote.
struct Backlog {
    persons: usize,
    load_secs: f64,
    build_secs: f64,
    /// The trigger head before and after the build.
    before: i64,
    head: i64,
}

/// Loads `options.bulk` persons with a purchase three days ago, waits until they are stored,
/// then creates the backlog segment (everyone with a purchase this month) and waits for its
/// first build.
async fn load_backlog(
    collection: &Collection,
    modeling: &mut Modeling,
    options: Options,
    earlier: usize,
) -> anyhow::Result<Backlog> {
    let started = Instant::now();
    let at = chrono::Utc::now().timestamp_millis() - 3 * DAY_MS;
    let mut producers = JoinSet::new();
    for p in 0..LOAD_PRODUCERS {
        let mut client = collection.clone();
        producers.spawn(async move {
            let mut position = 0;
            let calls = options.bulk.div_ceil(LOAD_BATCH);
            for call in (p..calls).step_by(LOAD_PRODUCERS) {
                let events = (call * LOAD_BATCH..((call + 1) * LOAD_BATCH).min(options.bulk))
                    .map(|n| {
                        sample_event(
                            &format!("b-{n}"),
                            BACKLOG_PERSONS + n as u64,
                            "purchase",
                            at,
                        )
                    })
                    .collect();
                let reply = client
                    .ingest_events(IngestEventsRequest { events })
                    .await?
                    .into_inner();
                position = reply
                    .results
                    .iter()
                    .map(|r| r.sequence)
                    .fold(position, i64::max);
            }
            Ok::<i64, anyhow::Error>(position)
        });
    }
    let mut position = 0;
    while let Some(done) = producers.join_next().await {
        position = position.max(done??);
    }
    stored_through(modeling, position).await?;
    let load_secs = started.elapsed().as_secs_f64();
    let before = trigger_head(modeling).await?;
    modeling
        .create_segment(bought_within(BACKLOG_SEGMENT, 30))
        .await?;
    let persons = earlier + options.bulk;
    let build_secs = settled(modeling, BACKLOG_SEGMENT, persons)
        .await?
        .as_secs_f64();
    Ok(Backlog {
        persons,
        load_secs,
        build_secs,
        before,
        head: trigger_head(modeling).await?,
    })
}

/// One throughput run.
#[derive(Debug, Clone, Copy)]
struct RunSpec {
    name: &'static str,
    batch: i32,
    start_after: i64,
    head: i64,
    silent: bool,
    /// How long each endpoint takes to answer.
    answer_after: Duration,
    lanes: Lanes,
}

/// What a run measured over its healthy endpoints.
struct Run {
    spec: RunSpec,
    deliveries: u64,
    triggers: usize,
    secs: f64,
    /// Per trigger: receipt − the later of its creation and the run's start (the backlog was
    /// written before the destinations existed), in ms.
    millis: Sorted,
    unverified: u64,
    out_of_order: u64,
    person_out_of_order: u64,
}

impl Run {
    fn deliveries_per_sec(&self) -> f64 {
        self.deliveries as f64 / self.secs
    }

    fn triggers_per_sec(&self) -> f64 {
        self.triggers as f64 / self.secs
    }
}

/// Waits until every receiver has the head, then until GetWebhookDestination says every
/// destination acknowledged it.
async fn drained(
    modeling: &mut Modeling,
    spec: RunSpec,
    receivers: &[Receiver],
) -> anyhow::Result<()> {
    let started = Instant::now();
    let all_seen = || {
        receivers
            .iter()
            .all(|r| r.read(|s| s.max_sequence) >= spec.head)
    };
    while !all_seen() {
        anyhow::ensure!(started.elapsed() < PATIENCE, "{}: not delivered", spec.name);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..receivers.len() {
        loop {
            let d = modeling
                .get_webhook_destination(GetWebhookDestinationRequest {
                    name: destination_name(&format!("{}-{i}", spec.name)),
                })
                .await?
                .into_inner()
                .webhook_destination
                .unwrap_or_default();
            if d.delivered_sequence >= spec.head {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < PATIENCE,
                "{}: not acknowledged",
                spec.name
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

async fn delivery_run(modeling: &mut Modeling, spec: RunSpec) -> anyhow::Result<Run> {
    let secret = SigningSecret::generate();
    let mut receivers = Vec::new();
    for _ in 0..ENDPOINTS {
        receivers.push(Receiver::start(&secret, spec.answer_after).await?);
    }
    let silent = if spec.silent {
        Some(Silent::start().await?)
    } else {
        None
    };
    let mut ids = Vec::new();
    let t0 = now_ms();
    let started = Instant::now();
    let urls = receivers.iter().map(|r| r.url.as_str());
    for (i, url) in urls
        .chain(silent.as_ref().map(|s| s.url.as_str()))
        .enumerate()
    {
        let id = if i < ENDPOINTS {
            format!("{}-{i}", spec.name)
        } else {
            format!("{}-silent", spec.name)
        };
        let request = destination(
            &id,
            url,
            &secret,
            spec.batch,
            BACKLOG_SEGMENT,
            spec.start_after,
            spec.lanes,
        );
        modeling.create_webhook_destination(request).await?;
        ids.push(id);
    }
    drained(modeling, spec, &receivers).await?;
    let secs = started.elapsed().as_secs_f64();
    for id in ids {
        modeling
            .delete_webhook_destination(DeleteWebhookDestinationRequest {
                name: destination_name(&id),
                ..DeleteWebhookDestinationRequest::default()
            })
            .await?;
    }
    let (mut deliveries, mut unverified, mut millis) = (0, 0, Vec::new());
    let (mut out_of_order, mut person_out_of_order) = (0, 0);
    for receiver in &receivers {
        receiver.read(|seen| {
            deliveries += seen.deliveries;
            unverified += seen.unverified + seen.unreadable;
            out_of_order += seen.out_of_order;
            person_out_of_order += seen.person_out_of_order;
            millis.extend(seen.arrivals.iter().map(|a| a.at_ms - a.trigger_ms.max(t0)));
        });
    }
    Ok(Run {
        spec,
        deliveries,
        triggers: millis.len(),
        secs,
        millis: Sorted::new(millis),
        unverified,
        out_of_order,
        person_out_of_order,
    })
}

// ---------------------------------------------------------------------------------------------
// 3. The change feed

/// Changes read and seconds, by page and by stream.
struct Feed {
    head: i64,
    listed: usize,
    list_secs: f64,
    streamed: usize,
    stream_secs: f64,
}

async fn read_feed(modeling: &mut Modeling) -> anyhow::Result<Feed> {
    let parent = format!("tenants/{TENANT}/segments/-");
    let started = Instant::now();
    let (mut listed, mut head, mut page_token) = (0, 0, String::new());
    loop {
        let page = modeling
            .list_segment_changes(ListSegmentChangesRequest {
                parent: parent.clone(),
                after_sequence: 0,
                page_size: FEED_PAGE,
                page_token,
                ..ListSegmentChangesRequest::default()
            })
            .await?
            .into_inner();
        listed += page.changes.len();
        head = head.max(page.head_sequence);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let list_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut stream = modeling
        .stream_segment_changes(StreamSegmentChangesRequest {
            parent,
            after_sequence: 0,
            max_batch_size: FEED_PAGE,
            ..StreamSegmentChangesRequest::default()
        })
        .await?
        .into_inner();
    let mut streamed = 0;
    while let Some(batch) = stream.message().await? {
        streamed += batch.changes.len();
        if batch.changes.last().is_some_and(|c| c.sequence >= head) {
            break;
        }
    }
    Ok(Feed {
        head,
        listed,
        list_secs,
        streamed,
        stream_secs: started.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------------------------------------------------------
// The run and its table

/// Everything measured.
struct Figures {
    options: Options,
    /// The 1-minute load average at the start and at the end.
    load: (String, String),
    pool: u32,
    latency: Latency,
    backlog: Backlog,
    runs: Vec<Run>,
    feed: Feed,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    let load_at_start = load_average();
    // The connection pool a deployment gets by default, not the tests' smaller one.
    let pool = touchline::Config::default().database.max_connections;
    let app = TestApp::spawn_with(TestDatabase::create().await?, |config| {
        config.database.max_connections = pool;
    })
    .await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let collection: Collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling =
        ModelingServiceClient::new(app.channel(&token)?).max_decoding_message_size(64 << 20);

    eprintln!(
        "1. latency: {} events/s for {} s",
        options.rate, options.seconds
    );
    let db = sqlx::PgPool::connect(&app.db.url).await?;
    let latency = latency_run(&collection, &mut modeling, &db, options).await?;
    db.close().await;
    if options.latency_only {
        app.stop().await;
        println!();
        row("measure", "figure", "target", "");
        println!("{}", "-".repeat(140));
        print_latency(&latency, options);
        println!(
            "load average (1 min) at the start / end: {} / {}",
            load_at_start,
            load_average()
        );
        return Ok(());
    }
    eprintln!("2. backlog: loading {} persons", options.bulk);
    let backlog = load_backlog(&collection, &mut modeling, options, latency.sent).await?;
    let runs = throughput_runs(&mut modeling, &backlog, options).await?;
    eprintln!("3. change feed");
    let feed = read_feed(&mut modeling).await?;
    app.stop().await;
    print_figures(&Figures {
        options,
        load: (load_at_start, load_average()),
        pool,
        latency,
        backlog,
        runs,
        feed,
    });
    Ok(())
}

/// One trigger per delivery, 100 per delivery over the whole backlog, and one per delivery
/// with a silent 11th endpoint.
async fn throughput_runs(
    modeling: &mut Modeling,
    backlog: &Backlog,
    options: Options,
) -> anyhow::Result<Vec<Run>> {
    let last = |n: i64| (backlog.head - n).max(backlog.before);
    let specs = [
        RunSpec {
            name: "single",
            batch: 1,
            start_after: last(options.per_endpoint),
            head: backlog.head,
            silent: false,
            answer_after: Duration::ZERO,
            lanes: Lanes::Sequence,
        },
        RunSpec {
            name: "hundred",
            batch: 100,
            start_after: backlog.before,
            head: backlog.head,
            silent: false,
            answer_after: Duration::ZERO,
            lanes: Lanes::Sequence,
        },
        RunSpec {
            name: "beside-silent",
            batch: 1,
            start_after: last(options.per_endpoint),
            head: backlog.head,
            silent: true,
            answer_after: Duration::ZERO,
            lanes: Lanes::Sequence,
        },
        // Once more without it: the silent run sits between two runs to compare with, so
        // that drift in what else the machine runs shows.
        RunSpec {
            name: "single-again",
            batch: 1,
            start_after: last(options.per_endpoint),
            head: backlog.head,
            silent: false,
            answer_after: Duration::ZERO,
            lanes: Lanes::Sequence,
        },
        // Endpoints that take a while to answer: one delivery in flight each, then as many
        // as the lanes of per-person order.
        RunSpec {
            name: "slow-sequence",
            batch: 1,
            start_after: last(options.per_endpoint / 5),
            head: backlog.head,
            silent: false,
            answer_after: SLOW_ANSWER,
            lanes: Lanes::Sequence,
        },
        RunSpec {
            name: "slow-per-person",
            batch: 1,
            start_after: last(options.per_endpoint / 5),
            head: backlog.head,
            silent: false,
            answer_after: SLOW_ANSWER,
            lanes: Lanes::PerPerson(SLOW_LANES),
        },
    ];
    let mut runs = Vec::new();
    for spec in specs {
        eprintln!(
            "2. deliveries: {} ({} per delivery{})",
            spec.name,
            spec.batch,
            match (spec.silent, spec.lanes) {
                (true, _) => ", 11th endpoint silent".to_owned(),
                (_, Lanes::PerPerson(n)) => format!(", {n} in flight per endpoint"),
                _ if !spec.answer_after.is_zero() => ", one in flight per endpoint".to_owned(),
                _ => String::new(),
            }
        );
        runs.push(delivery_run(modeling, spec).await?);
    }
    Ok(runs)
}

fn row(measure: &str, figure: &str, target: &str, verdict: &str) {
    println!("{measure:<58} {figure:<42} {target:<24} {verdict}");
}

fn print_figures(f: &Figures) {
    let o = f.options;
    println!(
        "\nactivation-bench{}: {} events/s for {} s; backlog of {} persons ({} triggers); {} connections in the pool; servers, PostgreSQL, Redis, receivers and load on the same 2 cores",
        if o.quick { " --quick" } else { "" },
        thousands(o.rate as f64),
        o.seconds,
        thousands(f.backlog.persons as f64),
        thousands((f.backlog.head - f.backlog.before) as f64),
        f.pool
    );
    println!();
    row("measure", "figure", "target", "");
    println!("{}", "-".repeat(140));
    print_latency(&f.latency, o);
    print_runs(&f.runs);
    print_feed(&f.feed);
    println!();
    println!(
        "reference: the leading tools deliver audiences every 5–15 minutes (300,000–900,000 ms)."
    );
    println!(
        "LIMITS.md: single-row INSERT per transaction 3.8k / 4.9k per s (1 / 2 connections); deliveries freeze up to 1,000 triggers ahead in one commit and record a round of attempts in one commit."
    );
    println!(
        "LIMITS.md: tonic unary with 100 events per call 1.0 M events/s; PostgreSQL single-key SELECT 9.8k–41.9k per s."
    );
    println!(
        "backlog: {} more persons ingested and stored in {:.1} s; the backlog segment's first build ({} entries) took {:.1} s",
        thousands(o.bulk as f64),
        f.backlog.load_secs,
        thousands(f.backlog.persons as f64),
        f.backlog.build_secs
    );
    println!(
        "load average (1 min) at the start / end: {} / {} — other work on the machine slows every figure",
        f.load.0, f.load.1
    );
}

fn print_latency(l: &Latency, o: Options) {
    let m = &l.millis;
    row(
        &format!(
            "1. ack → entry → webhook received, {} events/s",
            thousands(l.sent_rate)
        ),
        &format!(
            "p50 {:.0} p95 {:.0} p99 {:.0} max {:.0} ms",
            m.at(0.5),
            m.at(0.95),
            m.at(0.99),
            m.max()
        ),
        "p99 < 1,000 ms",
        verdict(m.at(0.99) < 1_000.0 && l.arrived == l.sent),
    );
    row(
        &format!(
            "   arrived / sent ({} s, batches of up to {LIVE_BATCH} triggers)",
            o.seconds
        ),
        &format!(
            "{} / {} in {} deliveries",
            thousands(l.arrived as f64),
            thousands(l.sent as f64),
            thousands(l.deliveries as f64)
        ),
        "all",
        verdict(l.arrived == l.sent),
    );
    row(
        "   deliveries",
        &format!(
            "unverified {}, out of order {}",
            l.unverified, l.out_of_order
        ),
        "0, 0",
        verdict(l.unverified == 0 && l.out_of_order == 0),
    );
    for (stage, m) in &l.stages {
        row(
            &format!("   time {stage}"),
            &format!("p50 {:.0} p99 {:.0} ms", m.at(0.5), m.at(0.99)),
            "",
            "",
        );
    }
}

fn print_runs(runs: &[Run]) {
    let (fast, slow): (Vec<&Run>, Vec<&Run>) =
        runs.iter().partition(|r| r.spec.answer_after.is_zero());
    print_fast_runs(&fast);
    print_slow_runs(&slow);
}

/// Slow endpoints: one delivery in flight each against per-person lanes.
fn print_slow_runs(runs: &[&Run]) {
    let Some(first) = runs.first() else {
        return;
    };
    row(
        &format!(
            "2b. endpoints answering after {} ms, 10 endpoints",
            first.spec.answer_after.as_millis()
        ),
        "",
        "",
        "",
    );
    let sequence = runs
        .iter()
        .find(|r| r.spec.lanes == Lanes::Sequence)
        .map_or(0.0, |r| r.deliveries_per_sec());
    for run in runs {
        let (label, speedup) = match run.spec.lanes {
            Lanes::Sequence => (
                "   sequence order, 1 in flight each".to_owned(),
                String::new(),
            ),
            Lanes::PerPerson(n) => (
                format!("   per-person order, {n} in flight each"),
                format!(
                    " (×{:.1})",
                    run.deliveries_per_sec() / sequence.max(f64::MIN_POSITIVE)
                ),
            ),
        };
        row(
            &label,
            &format!("{}/s{speedup}", thousands(run.deliveries_per_sec())),
            "",
            "",
        );
        let (what, count) = match run.spec.lanes {
            Lanes::Sequence => ("out of order", run.out_of_order),
            Lanes::PerPerson(_) => ("out of a person's order", run.person_out_of_order),
        };
        row(
            &format!(
                "     {} deliveries in {:.1} s",
                thousands(run.deliveries as f64),
                run.secs
            ),
            &format!("unverified {}, {what} {count}", run.unverified),
            "0, 0",
            verdict(run.unverified == 0 && count == 0),
        );
    }
}

fn print_fast_runs(runs: &[&Run]) {
    for run in runs {
        let label = match (run.spec.batch, run.spec.silent, run.spec.name) {
            (1, false, "single") => "2. deliveries/s, 1 trigger each, 10 endpoints".to_owned(),
            (1, false, _) => "   the same again, after the silent run".to_owned(),
            (1, true, _) => "   the same beside a silent 11th endpoint".to_owned(),
            (n, _, _) => format!("   requests/s, up to {n} triggers each, 10 endpoints"),
        };
        let target = if run.spec.batch == 1 {
            "≥ 5,000/s"
        } else {
            ""
        };
        row(
            &label,
            &format!(
                "{}/s ({} triggers/s)",
                thousands(run.deliveries_per_sec()),
                thousands(run.triggers_per_sec())
            ),
            target,
            if run.spec.batch == 1 {
                verdict(run.deliveries_per_sec() >= 5_000.0)
            } else {
                ""
            },
        );
        row(
            &format!(
                "     {} deliveries, {} triggers in {:.1} s",
                thousands(run.deliveries as f64),
                thousands(run.triggers as f64),
                run.secs
            ),
            &format!(
                "unverified {}, out of order {}",
                run.unverified, run.out_of_order
            ),
            "0, 0",
            verdict(run.unverified == 0 && run.out_of_order == 0),
        );
    }
    let p99s = |silent| -> Vec<f64> {
        runs.iter()
            .filter(|r| r.spec.batch == 1 && r.spec.silent == silent)
            .map(|r| r.millis.at(0.99))
            .collect()
    };
    let (without, with) = (p99s(false), p99s(true));
    let alone = without.iter().sum::<f64>() / without.len().max(1) as f64;
    let beside = with.first().copied().unwrap_or(0.0);
    row(
        "   healthy endpoints' p99 delivery time, without (2 runs)",
        &without
            .iter()
            .map(|ms| format!("{} ms", thousands(*ms)))
            .collect::<Vec<_>>()
            .join(", "),
        "",
        "",
    );
    row(
        "   … beside the silent endpoint, against their mean",
        &format!(
            "{} ms ({:+.0} %)",
            thousands(beside),
            (beside / alone - 1.0) * 100.0
        ),
        "≤ +20 %",
        verdict(beside <= alone * 1.2),
    );
}

fn print_feed(feed: &Feed) {
    for (label, n, secs) in [
        (
            "3. ListSegmentChanges, pages of 5,000, 0 → head",
            feed.listed,
            feed.list_secs,
        ),
        (
            "   StreamSegmentChanges from 0 to the head",
            feed.streamed,
            feed.stream_secs,
        ),
    ] {
        let rate = n as f64 / secs;
        row(
            label,
            &format!(
                "{}/s ({} in {:.2} s)",
                thousands(rate),
                thousands(n as f64),
                secs
            ),
            "≥ 100,000 changes/s",
            verdict(rate >= 100_000.0 && n as i64 >= feed.head),
        );
    }
}
