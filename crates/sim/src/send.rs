//! Streaming a run to a collection service (`--send`): every record of every person, in each
//! person's time order, then the ad platforms' daily report rows, as [`Event`]s. Generation runs
//! on its own thread and hands batches over a bounded queue, so memory stays flat however far
//! the service falls behind.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tonic::Code;
use touchline_proto::collection::v1 as collection;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1 as common;
use touchline_runtime::client::{CallCredentials, lazy_channel};

use crate::SimError;
use crate::ads::{ReportRow, daily_report_rows};
use crate::config::{DefectKind, SimConfig};
use crate::engine::{Ctx, PersonOut, Stats, generate_person};
use crate::record::Event;
use crate::wire::{event_to_proto, report_row_event, source_spec};

/// An event with what the generator knows about it.
#[derive(Debug, Clone)]
pub struct TruthEvent {
    /// The event as sent.
    pub event: Event,
    /// The record's own key as the truth files cite it: the message id of an SDK event, the
    /// business key (order id, ticket id, `date|campaign`, …) of a row. Two records with the
    /// same key and the same true instant describe the same thing.
    pub key: String,
    /// The true person behind it (`None` for aggregate rows such as ad daily reports).
    pub person: Option<String>,
    /// The true instant, UTC epoch milliseconds.
    pub true_ms: i64,
    /// The defects planted on it.
    pub defects: Vec<DefectKind>,
    /// The true event name when an alias was planted.
    pub true_name: Option<String>,
    /// For SDK events, when a live collector would have received it, UTC epoch ms.
    pub received_ms: Option<i64>,
}

/// An iterator over all events of a run, generated lazily person by person (flat memory),
/// followed by the ad daily report rows (their number depends on campaigns and days only).
#[derive(Debug)]
pub struct EventStream {
    ctx: Ctx,
    next_person: u64,
    stats: Stats,
    out: PersonOut,
    pending: VecDeque<TruthEvent>,
    reports: Option<std::vec::IntoIter<ReportRow>>,
}

impl EventStream {
    /// Persons generated so far.
    pub fn persons_done(&self) -> u64 {
        self.next_person
    }

    /// Persons in the run.
    pub fn persons_total(&self) -> u64 {
        self.ctx.cfg.persons
    }

    /// The next event with its truth.
    pub fn next_with_truth(&mut self) -> Option<TruthEvent> {
        while self.pending.is_empty() {
            if self.next_person >= self.ctx.cfg.persons {
                let ctx = &self.ctx;
                let stats = &mut self.stats;
                let reports = self
                    .reports
                    .get_or_insert_with(|| daily_report_rows(ctx, stats).into_iter());
                let row = reports.next()?;
                return Some(TruthEvent {
                    event: report_row_event(&ctx.layout.files[row.file], &row),
                    key: row.key.clone(),
                    person: None,
                    true_ms: row.day_start_ms,
                    defects: if row.resent {
                        vec![DefectKind::AdReportResent]
                    } else {
                        Vec::new()
                    },
                    true_name: None,
                    received_ms: None,
                });
            }
            let person =
                generate_person(&self.ctx, self.next_person, &mut self.stats, &mut self.out);
            self.next_person += 1;
            for rec in &self.out.records {
                self.pending.push_back(TruthEvent {
                    event: rec.to_event(&self.ctx.layout.files[rec.file]),
                    key: rec.key.clone(),
                    person: Some(person.id.clone()),
                    true_ms: rec.true_ms,
                    defects: rec.defects.iter().map(|d| d.kind).collect(),
                    true_name: rec
                        .defects
                        .iter()
                        .find_map(|d| d.alias_of().map(str::to_owned)),
                    received_ms: rec.received_ms,
                });
            }
        }
        self.pending.pop_front()
    }
}

impl Iterator for EventStream {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.next_with_truth().map(|t| t.event)
    }
}

/// The events of the run `cfg`, as `--send` streams them.
pub fn events(cfg: SimConfig) -> Result<EventStream, SimError> {
    Ok(EventStream {
        ctx: Ctx::new(cfg)?,
        next_person: 0,
        stats: Stats::default(),
        out: PersonOut::default(),
        pending: VecDeque::new(),
        reports: None,
    })
}

/// How to stream a run.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// The collection service, `host:port` or a URL.
    pub addr: String,
    /// Bearer token (scope `events:write`, plus `sources:write` to register the sources).
    pub token: String,
    /// Events per second; 0 sends as fast as the service accepts.
    pub rate: u64,
    /// Events per IngestEvents call.
    pub batch: usize,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Print a progress line every this often (None: quiet).
    pub progress_every: Option<Duration>,
}

impl SendOptions {
    /// Options with the defaults: batches of 500, 4 calls in flight, progress every 2 s.
    pub fn new(addr: impl Into<String>, token: impl Into<String>) -> Self {
        SendOptions {
            addr: addr.into(),
            token: token.into(),
            rate: 0,
            batch: 500,
            concurrency: 4,
            progress_every: Some(Duration::from_secs(2)),
        }
    }
}

/// What a send achieved.
#[derive(Debug, Clone, Default)]
pub struct SendSummary {
    /// Events sent.
    pub sent: u64,
    /// Events the service stored.
    pub accepted: u64,
    /// Events the service had already (same message id).
    pub duplicates: u64,
    /// Events the service rejected, by violation reason.
    pub rejected: BTreeMap<String, u64>,
    /// Sources registered by this run (already registered ones are not counted).
    pub sources_registered: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl SendSummary {
    /// All rejected events.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Errors of a send.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The address or token cannot be used.
    #[error("invalid send option: {0}")]
    Invalid(String),
    /// Generating the run failed.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The service refused a call for a reason retrying cannot fix.
    #[error("{call} failed: {status}")]
    Call {
        /// The RPC.
        call: &'static str,
        /// The final status.
        status: Box<tonic::Status>,
    },
}

/// Attempts per IngestEvents call before giving up on a retryable failure.
const MAX_ATTEMPTS: u32 = 8;

type Client = CollectionServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, CallCredentials>,
>;

/// Registers the run's sources, then streams its events to `opts.addr`.
#[expect(
    clippy::too_many_lines,
    reason = "the send loop: generate, batch, send with backoff, tally; its counters are local to the loop"
)]
pub async fn send(cfg: SimConfig, opts: &SendOptions) -> Result<SendSummary, SendError> {
    let started = Instant::now();
    let url = if opts.addr.contains("://") {
        opts.addr.clone()
    } else {
        format!("http://{}", opts.addr)
    };
    let channel = lazy_channel(&url).map_err(|e| SendError::Invalid(format!("{url}: {e}")))?;
    let credentials = CallCredentials::bearer(&opts.token)
        .map_err(|e| SendError::Invalid(format!("token: {e}")))?;
    let client = CollectionServiceClient::with_interceptor(channel, credentials)
        .max_decoding_message_size(16 << 20);

    let stream = events(cfg)?;
    let sources_registered = register_sources(&client, &stream.ctx).await?;

    let counters = Arc::new(Counters::default());
    let batch = opts.batch.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<common::Event>>(opts.concurrency.max(1) * 2);
    let producer = {
        let counters = counters.clone();
        let rate = opts.rate;
        std::thread::spawn(move || produce(stream, batch, rate, &counters, &tx))
    };
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..opts.concurrency.max(1) {
        let (rx, client, counters) = (rx.clone(), client.clone(), counters.clone());
        workers.spawn(async move {
            let mut rejected = BTreeMap::new();
            loop {
                let next = rx.lock().await.recv().await;
                let Some(events) = next else { break };
                ingest(&client, events, &counters, &mut rejected).await?;
            }
            Ok::<_, SendError>(rejected)
        });
    }
    let progress = opts.progress_every.map(|every| {
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                counters.print(started);
            }
        })
    });

    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    let mut failure = None;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(Ok(by_reason)) => {
                for (reason, n) in by_reason {
                    *rejected.entry(reason).or_default() += n;
                }
            }
            Ok(Err(err)) => {
                // Stop the others: the run cannot complete.
                workers.abort_all();
                failure.get_or_insert(err);
            }
            Err(join) if join.is_cancelled() => {}
            Err(join) => {
                failure.get_or_insert(SendError::Invalid(format!("sender task failed: {join}")));
            }
        }
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    // The producer stops once the queue is closed; its result only matters on success.
    let produced = producer.join();
    if let Some(err) = failure {
        return Err(err);
    }
    if produced.is_err() {
        return Err(SendError::Invalid(
            "the generator thread panicked".to_owned(),
        ));
    }
    Ok(SendSummary {
        sent: counters.sent.load(Ordering::Relaxed),
        accepted: counters.accepted.load(Ordering::Relaxed),
        duplicates: counters.duplicates.load(Ordering::Relaxed),
        rejected,
        sources_registered,
        elapsed: started.elapsed(),
    })
}

/// Registers one source per output file. A source that exists already is left as it is; a
/// service without the source registry accepts events of unregistered sources, so that is
/// reported and not fatal.
async fn register_sources(client: &Client, ctx: &Ctx) -> Result<usize, SendError> {
    let mut created = 0;
    for spec in &ctx.layout.files {
        let request = collection::CreateSourceRequest {
            parent: String::new(),
            source_id: spec.source.clone(),
            source: Some(source_spec(spec, ctx.t)),
            // No idempotency key: a source that exists answers ALREADY_EXISTS, which is
            // how a second run knows it registered nothing.
            request_id: String::new(),
            validate_only: false,
        };
        match client.clone().create_source(request).await {
            Ok(_) => created += 1,
            Err(status) if status.code() == Code::AlreadyExists => {}
            Err(status) if status.code() == Code::Unimplemented => {
                eprintln!(
                    "sim: the service has no source registry; sending to unregistered sources | 服务端未提供数据源注册"
                );
                return Ok(created);
            }
            Err(status) => {
                return Err(SendError::Call {
                    call: "CreateSource",
                    status: Box::new(status),
                });
            }
        }
    }
    Ok(created)
}

/// Generates batches and hands them to the senders, pacing to `rate` events/s when set.
fn produce(
    stream: EventStream,
    batch: usize,
    rate: u64,
    counters: &Counters,
    tx: &tokio::sync::mpsc::Sender<Vec<common::Event>>,
) {
    let started = Instant::now();
    let mut produced = 0u64;
    let mut events = Vec::with_capacity(batch);
    let mut stream = stream;
    loop {
        let next = stream.next_with_truth();
        let done = next.is_none();
        if let Some(t) = next {
            events.push(event_to_proto(t.event, t.received_ms));
        }
        if events.len() == batch || (done && !events.is_empty()) {
            produced += events.len() as u64;
            if rate > 0 {
                let due = Duration::from_secs_f64(produced as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            counters
                .persons_done
                .store(stream.persons_done(), Ordering::Relaxed);
            counters
                .persons_total
                .store(stream.persons_total(), Ordering::Relaxed);
            let full = std::mem::replace(&mut events, Vec::with_capacity(batch));
            if tx.blocking_send(full).is_err() {
                return;
            }
        }
        if done {
            return;
        }
    }
}

/// Sends one batch, retrying what the service says may succeed later.
async fn ingest(
    client: &Client,
    events: Vec<common::Event>,
    counters: &Counters,
    rejected: &mut BTreeMap<String, u64>,
) -> Result<(), SendError> {
    let count = events.len() as u64;
    let request = collection::IngestEventsRequest { events };
    let mut attempt = 0;
    let response = loop {
        attempt += 1;
        match client.clone().ingest_events(request.clone()).await {
            Ok(response) => break response.into_inner(),
            Err(status) if attempt < MAX_ATTEMPTS && retryable(status.code()) => {
                tokio::time::sleep(retry_delay(&status, attempt)).await;
            }
            Err(status) => {
                return Err(SendError::Call {
                    call: "IngestEvents",
                    status: Box::new(status),
                });
            }
        }
    };
    counters.sent.fetch_add(count, Ordering::Relaxed);
    counters.accepted.fetch_add(
        u64::try_from(response.accepted_count).unwrap_or(0),
        Ordering::Relaxed,
    );
    counters.duplicates.fetch_add(
        u64::try_from(response.duplicate_count).unwrap_or(0),
        Ordering::Relaxed,
    );
    for result in &response.results {
        if result.status == collection::IngestStatus::Rejected as i32 {
            let reason = result
                .violations
                .first()
                .map(|v| v.reason.clone())
                .unwrap_or_else(|| "UNSPECIFIED".to_owned());
            *rejected.entry(reason).or_default() += 1;
        }
    }
    Ok(())
}

fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded | Code::Aborted
    )
}

/// The service's retry hint when it gives one, otherwise exponential backoff from 100 ms.
fn retry_delay(status: &tonic::Status, attempt: u32) -> Duration {
    use tonic_types::StatusExt as _;
    status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .unwrap_or_else(|| Duration::from_millis(100u64 << attempt.min(6)))
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    persons_done: AtomicU64,
    persons_total: AtomicU64,
}

impl Counters {
    fn print(&self, started: Instant) {
        let sent = self.sent.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let (done, total) = (
            self.persons_done.load(Ordering::Relaxed),
            self.persons_total.load(Ordering::Relaxed),
        );
        eprintln!(
            "sim: sent {sent} events ({:.0}/s), {} accepted, {} duplicates, persons {done}/{total} | 已发送 {sent} 条事件",
            sent as f64 / secs,
            self.accepted.load(Ordering::Relaxed),
            self.duplicates.load(Ordering::Relaxed),
        );
    }
}
