//! The cross-stage fuzz run, shared by the end-to-end test and the long run: a seeded generator
//! of arbitrary events (valid ones mixed with every kind of hostile field), the ingestion of
//! them through the real services, and the checks that every acknowledged event ends clean in
//! the event store, quarantined with a reason, set aside as a dead letter, or a counted
//! duplicate, and that governance's quality report balances.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::collection::v1::stream_events_response::Response as Answer;
use touchline_proto::collection::v1::{
    IngestEventsRequest, IngestResult, IngestStatus, StreamEventsRequest,
};
use touchline_proto::common::v1::{Event, EventType, Identifier};
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::governance::v1::{
    CanonicalEvent, CreateCanonicalEventRequest, GetQualityReportRequest, ListQuarantinedRequest,
    PublishDictionaryVersionRequest, QualityReportRow, QuarantineReason,
};
use touchline_proto::modeling::v1::ListEventsRequest;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::prost::Message as _;
use touchline_proto::prost_types::{ListValue, Struct, Value, value::Kind};
use touchline_proto::tonic::{self, Code};
use touchline_runtime::client::CallCredentials;
use touchline_testkit::{TestApp, eventually, token};

/// Longest message id collection accepts, bytes.
const MAX_MESSAGE_ID_BYTES: usize = 128;
/// Longest event name collection accepts, bytes.
const MAX_EVENT_NAME_BYTES: usize = 256;
/// Largest properties, traits and context together that governance cleans, bytes.
const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Deepest nesting governance cleans.
const MAX_DEPTH: usize = 8;
/// The deepest property nesting a request still decodes with: prost stops at 100 nested
/// messages, and each level of a Struct is three (the struct, its map entry, the value).
const DECODABLE_DEPTH: usize = 30;
/// Deeper than any request the server decodes.
const ABYSS_DEPTH: usize = 200;
/// Batches stay well below collection's 1,000 events and 4 MiB.
const BATCH_EVENTS: usize = 400;
const BATCH_BYTES: usize = 3 * 1024 * 1024;
/// Every this many events, one nested past what decodes is sent alone.
const ABYSS_EVERY: usize = 1_000;
/// A page of the event store can be large: events carry up to 64 KiB of properties.
const MAX_REPLY_BYTES: usize = 256 * 1024 * 1024;

/// Pieces no well-behaved client sends: NUL and other controls, invisible and direction
/// marks, lone combining marks, non-characters, emoji sequences, quoting and markup.
const ODD: &[&str] = &[
    "\0",
    "\u{1}",
    "\u{7}",
    "\t",
    "\n",
    "\r",
    "\u{1b}",
    "\u{7f}",
    "\u{85}",
    "\u{9f}",
    "\u{ad}",
    "\u{200b}",
    "\u{200d}",
    "\u{202e}",
    "\u{2066}",
    "\u{2028}",
    "\u{feff}",
    "\u{fffd}",
    "\u{fffe}",
    "\u{ffff}",
    "\u{10ffff}",
    "\u{301}",
    "\u{20dd}",
    "\u{e000}",
    "😀",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "中文",
    "مرحبا",
    "עברית",
    "ß",
    "İ",
    "ǅ",
    "\\",
    "\"",
    "'",
    "%s",
    "%00",
    "{}",
    "${x}",
    "'; DROP TABLE t; --",
    "<script>",
    "../",
    "null",
    "NaN",
    " ",
    "\u{3000}",
    "a",
];
/// Printable characters of every UTF-8 width, for texts of an exact byte length.
const WIDE: &[&str] = &["a", "é", "中", "😀", "Z", "ك"];
/// Event names; `phone_reassigned` takes modeling's other way to identity (its numbers are
/// recorded as reassigned, not resolved), with whatever identifiers the event carries.
const NAMES: &[&str] = &[
    "view",
    "add_to_cart",
    "purchase",
    "page_view",
    "submit_order",
    "phone_reassigned",
];
const SOURCES: &[&str] = &["sdk-app", "pos", "crm", "web-shop"];
const CHANNELS: &[&str] = &["app", "mini_program", "web", "pos", "wechat_oa", "crm"];
const ID_TYPES: &[&str] = &[
    "phone",
    "email",
    "wechat_openid",
    "wechat_unionid",
    "member_card",
    "crm_id",
    "device_id",
    "anonymous_id",
    "user_id",
    "loyalty_no",
];

/// A seeded source of arbitrary events: the same seed gives the same events (timestamps are
/// relative to `now_ms`).
pub struct Generator {
    rng: ChaCha8Rng,
    next: u64,
    now_ms: i64,
    recent: Vec<Event>,
}

impl Generator {
    /// A generator for `seed`, with valid times shortly before `now_ms`.
    pub fn new(seed: u64, now_ms: i64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            next: 0,
            now_ms,
            recent: Vec::new(),
        }
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.random_range(0..100) < percent
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.rng.random_range(0..from.len())]
    }

    /// Any text a hostile client might send.
    fn hostile(&mut self) -> String {
        match self.rng.random_range(0..8) {
            0 => String::new(),
            1 => " \t\u{3000}".to_owned(),
            2 | 3 => (0..self.rng.random_range(1..7))
                .map(|_| self.pick(ODD))
                .collect(),
            4 => (0..self.rng.random_range(1..24))
                .map(|_| char::from_u32(self.rng.random_range(0..=0x10_FFFF)).unwrap_or('\u{fffd}'))
                .collect(),
            5 => format!("\u{301}{}", self.pick(ODD)),
            6 => {
                let piece = self.pick(ODD);
                piece.repeat(self.rng.random_range(100..2_000))
            }
            _ => format!("w{}", self.rng.random_range(0..1_000)),
        }
    }

    /// Printable text of exactly `bytes` bytes starting with `prefix` (or longer, when the
    /// prefix is), mixing characters of every UTF-8 width.
    fn sized(&mut self, prefix: &str, bytes: usize) -> String {
        let mut text = prefix.to_owned();
        while text.len() < bytes {
            let piece = self.pick(WIDE);
            if text.len() + piece.len() <= bytes {
                text.push_str(piece);
            } else {
                text.push('a');
            }
        }
        text
    }

    /// `normal` most of the time; otherwise hostile, or exactly at `limit` bytes, or one past.
    fn text(&mut self, normal: String, hostile_percent: u32, limit: usize) -> String {
        if !self.chance(hostile_percent) {
            return normal;
        }
        match self.rng.random_range(0..4) {
            0 => self.sized("", limit),
            1 => self.sized("", limit + 1),
            _ => self.hostile(),
        }
    }

    fn message_id(&mut self) -> String {
        self.next += 1;
        let base = format!("f{:07}", self.next);
        match self.rng.random_range(0..100) {
            0..=84 => base,
            85..=89 => format!("{base}-{}", self.hostile()),
            90..=93 => self.sized(&base, MAX_MESSAGE_ID_BYTES),
            94..=97 => self.sized(&base, MAX_MESSAGE_ID_BYTES + 1),
            _ => self.hostile(),
        }
    }

    fn event_type(&mut self) -> i32 {
        match self.rng.random_range(0..100) {
            0..=79 => EventType::Track as i32,
            80..=94 => self.rng.random_range(0..=5),
            _ => [6, 99, -1, i32::MAX][self.rng.random_range(0..4)],
        }
    }

    /// Epoch seconds, milliseconds or microseconds, RFC 3339, garbage, far future or past.
    fn timestamp(&mut self) -> String {
        let at_ms = self.now_ms - self.rng.random_range(0..30 * 86_400_000);
        match self.rng.random_range(0..100) {
            0..=29 => at_ms.to_string(),
            30..=39 => (at_ms / 1_000).to_string(),
            40..=49 => (at_ms * 1_000).to_string(),
            50..=64 => {
                let offset = [0, 480, -300, 345, -720][self.rng.random_range(0..5)];
                rfc3339(at_ms, offset)
            }
            65..=69 => {
                let soon = (self.now_ms + 3_600_000).to_string();
                self.pick(&[
                    "9999-12-31T23:59:59Z",
                    "99999999999999999999",
                    "253402300800000",
                    &soon,
                ])
                .to_owned()
            }
            70..=74 => self
                .pick(&[
                    "0",
                    "-1",
                    "1969-12-31T23:59:59Z",
                    "946684799",
                    "0001-01-01T00:00:00Z",
                ])
                .to_owned(),
            75..=84 => self
                .pick(&[
                    " 1795507200000 ",
                    "2025-13-45T25:61:61Z",
                    "2025-01-01",
                    "1.7e12",
                    "0x1F",
                    "",
                    "NaN",
                    "+1795507200000",
                ])
                .to_owned(),
            _ => self.hostile(),
        }
    }

    fn identifier(&mut self) -> Identifier {
        let kind = self.pick(ID_TYPES);
        let n = self.rng.random_range(0..300);
        let value = match kind {
            "phone" => self
                .pick(&["+86 138 0013 {n}", "1380013{n}", "0"])
                .replace("{n}", &format!("{n:04}")),
            "email" => format!("Person.{n}@Example.com"),
            _ => format!("{kind}-{n}"),
        };
        let scope = if kind.starts_with("wechat") {
            "wx-app-1".to_owned()
        } else {
            String::new()
        };
        Identifier {
            r#type: self.text(
                kind.to_owned(),
                10,
                touchline_bounds::MAX_IDENTIFIER_TYPE_BYTES,
            ),
            value: self.text(value, 10, touchline_bounds::MAX_IDENTIFIER_VALUE_BYTES),
            scope: self.text(scope, 10, touchline_bounds::MAX_IDENTIFIER_SCOPE_BYTES),
        }
    }

    fn identifiers(&mut self) -> Vec<Identifier> {
        let per_event = touchline_bounds::MAX_IDENTIFIERS_PER_EVENT;
        let count = match self.rng.random_range(0..100) {
            0..=34 => 0,
            35..=79 => self.rng.random_range(1..=3),
            80..=87 => self.rng.random_range(4..=20),
            88..=91 => per_event,
            92..=95 => per_event + 1,
            96..=97 => self.rng.random_range(999..=1_001),
            _ => 1_500,
        };
        (0..count).map(|_| self.identifier()).collect()
    }

    fn number(&mut self) -> f64 {
        match self.rng.random_range(0..12) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => -0.0,
            4 => f64::MAX,
            5 => f64::MIN_POSITIVE,
            6 => 5e-324,
            7 => 9_007_199_254_740_993.0,
            _ => self.rng.random_range(-1e6..1e6),
        }
    }

    /// A value nested at most `depth` more levels.
    fn value(&mut self, depth: usize) -> Value {
        let kind = match self.rng.random_range(0..if depth == 0 { 4 } else { 6 }) {
            0 => Kind::NullValue(0),
            1 => Kind::BoolValue(self.chance(50)),
            2 => Kind::NumberValue(self.number()),
            3 => Kind::StringValue(self.text("plain".to_owned(), 40, MAX_EVENT_NAME_BYTES)),
            4 => Kind::ListValue(ListValue {
                values: (0..self.rng.random_range(0..4))
                    .map(|_| self.value(depth - 1))
                    .collect(),
            }),
            _ => Kind::StructValue(self.small_struct(depth - 1)),
        };
        Value { kind: Some(kind) }
    }

    fn key(&mut self) -> String {
        let n = self.rng.random_range(0..20);
        self.text(format!("prop_{n}"), 15, touchline_bounds::MAX_KEY_BYTES)
    }

    fn small_struct(&mut self, depth: usize) -> Struct {
        Struct {
            fields: (0..self.rng.random_range(0..6))
                .map(|_| (self.key(), self.value(depth)))
                .collect(),
        }
    }

    /// `levels` structs, each inside the one before.
    fn nested(&mut self, levels: usize) -> Struct {
        let mut inner = Struct::default();
        for level in (0..levels).rev() {
            let mut fields: BTreeMap<String, Value> = BTreeMap::new();
            fields.insert(format!("l{level}"), Value::from(level as f64));
            fields.insert(
                "deeper".to_owned(),
                Value {
                    kind: Some(Kind::StructValue(inner)),
                },
            );
            inner = Struct { fields };
        }
        inner
    }

    /// About `bytes` of string values, in a few keys: a mixed-width chunk repeated, then
    /// topped up to the exact length.
    fn large(&mut self, bytes: usize) -> Struct {
        let keys = self.rng.random_range(1..5);
        let each = bytes / keys;
        let chunk = self.sized("", 4_096.min(each));
        Struct {
            fields: (0..keys)
                .map(|k| {
                    let text = chunk.repeat(each / chunk.len().max(1));
                    (format!("blob_{k}"), Value::from(self.sized(&text, each)))
                })
                .collect(),
        }
    }

    fn properties(&mut self) -> Option<Struct> {
        match self.rng.random_range(0..100) {
            0..=19 => None,
            20..=74 => Some(self.small_struct(3)),
            75..=86 => {
                let levels = [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 20, DECODABLE_DEPTH];
                let levels = levels[self.rng.random_range(0..levels.len())];
                Some(self.nested(levels))
            }
            _ => {
                let sizes = [
                    MAX_PAYLOAD_BYTES - 1_024,
                    MAX_PAYLOAD_BYTES - 64,
                    MAX_PAYLOAD_BYTES,
                    MAX_PAYLOAD_BYTES + 1,
                    MAX_PAYLOAD_BYTES + 4_096,
                    1024 * 1024,
                ];
                let size = sizes[self.rng.random_range(0..sizes.len())];
                Some(self.large(size))
            }
        }
    }

    /// A purchase with an order id from a small pool, so the same record arrives again, from
    /// the same source or another, with the same content or changed.
    fn order(&mut self, event: &mut Event) {
        let order = self.rng.random_range(0..150);
        let mut fields = event
            .properties
            .take()
            .filter(|_| self.chance(30))
            .unwrap_or_default()
            .fields;
        fields.insert("order_id".to_owned(), Value::from(format!("O-{order}")));
        fields.insert("amount".to_owned(), Value::from(f64::from(order) * 10.0));
        event.properties = Some(Struct { fields });
        event.original_timestamp = (self.now_ms - i64::from(order) * 60_000).to_string();
    }

    /// One arbitrary event; some resend an earlier one, as it was or with new content.
    pub fn event(&mut self) -> Event {
        if !self.recent.is_empty() && self.chance(5) {
            let earlier = self.recent[self.rng.random_range(0..self.recent.len())].clone();
            if self.chance(60) {
                return earlier;
            }
            let mut changed = self.fresh();
            changed.message_id = earlier.message_id;
            return changed;
        }
        let event = self.fresh();
        if self.recent.len() < 512 {
            self.recent.push(event.clone());
        } else {
            let slot = self.rng.random_range(0..self.recent.len());
            self.recent[slot] = event.clone();
        }
        event
    }

    fn fresh(&mut self) -> Event {
        let person = self.rng.random_range(0..400);
        let name = self.pick(NAMES).to_owned();
        let mut event = Event {
            message_id: self.message_id(),
            r#type: self.event_type(),
            event: self.text(name, 25, MAX_EVENT_NAME_BYTES),
            anonymous_id: match self.rng.random_range(0..100) {
                0..=59 => format!("anon-{person}"),
                60..=74 => String::new(),
                _ => self.text(
                    String::new(),
                    100,
                    touchline_bounds::MAX_IDENTIFIER_VALUE_BYTES,
                ),
            },
            user_id: match self.rng.random_range(0..100) {
                0..=69 => String::new(),
                70..=79 => format!("u-{person}"),
                80..=84 => format!("Person.{person}@Example.com"),
                85..=89 => format!("+86 138 0013 {person:04}"),
                _ => self.text(
                    String::new(),
                    100,
                    touchline_bounds::MAX_IDENTIFIER_VALUE_BYTES,
                ),
            },
            previous_id: self.text(
                String::new(),
                10,
                touchline_bounds::MAX_IDENTIFIER_VALUE_BYTES,
            ),
            properties: self.properties(),
            traits: self.chance(10).then(|| self.small_struct(2)),
            context: self.chance(20).then(|| self.small_struct(2)),
            original_timestamp: self.timestamp(),
            sent_at: if self.chance(20) {
                self.timestamp()
            } else {
                String::new()
            },
            identifiers: self.identifiers(),
            source: {
                let source = self.pick(SOURCES).to_owned();
                self.text(source, 15, 128)
            },
            channel: {
                let channel = self.pick(CHANNELS).to_owned();
                self.text(channel, 15, 64)
            },
            received_at: if self.chance(10) {
                self.timestamp()
            } else {
                String::new()
            },
        };
        if event.event == "purchase" && self.chance(70) {
            self.order(&mut event);
        }
        event
    }

    /// An otherwise valid event nested deeper than any request the server decodes.
    pub fn abyss(&mut self) -> Event {
        self.next += 1;
        Event {
            message_id: format!("abyss-{}", self.next),
            r#type: EventType::Track as i32,
            event: "view".to_owned(),
            anonymous_id: "anon-abyss".to_owned(),
            original_timestamp: self.now_ms.to_string(),
            properties: Some(self.nested(ABYSS_DEPTH)),
            ..Default::default()
        }
    }

    /// Up to `BATCH_EVENTS` events of at most `BATCH_BYTES` encoded, and not more than `left`.
    pub fn batch(&mut self, left: usize) -> Vec<Event> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < BATCH_EVENTS.min(left) {
            let event = self.event();
            let len = event.encoded_len() + 8;
            if !batch.is_empty() && bytes + len > BATCH_BYTES {
                break;
            }
            bytes += len;
            batch.push(event);
        }
        batch
    }
}

/// RFC 3339 text of `epoch_ms` at a UTC offset of `offset_min` minutes.
fn rfc3339(epoch_ms: i64, offset_min: i64) -> String {
    let local = epoch_ms.div_euclid(1_000) + offset_min * 60;
    let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let zone = if offset_min == 0 {
        "Z".to_owned()
    } else {
        let sign = if offset_min < 0 { '-' } else { '+' };
        format!(
            "{sign}{:02}:{:02}",
            offset_min.abs() / 60,
            offset_min.abs() % 60
        )
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}{zone}",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60,
        epoch_ms.rem_euclid(1_000)
    )
}

type Channel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, CallCredentials>;

/// The event name of the events sent last, whose arrival shows no consumer is stuck.
const SENTINEL: &str = "fuzz_sentinel";
const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "quarantine:read",
    "quality:read",
    "dictionary:read",
    "dictionary:write",
];
/// How long the last event may take to reach the event store.
const ARRIVAL: Duration = Duration::from_secs(120);
/// Failures listed in full per kind, each cut to a length; the rest are counted.
const SHOWN_PER_KIND: usize = 3;
const SHOWN_CHARS: usize = 600;

/// What a run sends.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Seeds the generator.
    pub seed: u64,
    /// Events for tenant `fuzz`, which has no dictionary: any name that collection accepts
    /// travels on to identity and modeling.
    pub events: usize,
    /// Events for tenant `fuzznk`, whose dictionary knows a few events and dedups purchases by
    /// order id.
    pub dictionary_events: usize,
}

/// What collection answered for one tenant.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Accepted message ids with their raw-log positions.
    accepted: BTreeMap<String, i64>,
    duplicates: u64,
    /// Rejections per first violation (`field:REASON`).
    rejected: BTreeMap<String, u64>,
    /// Requests refused as a whole (nested past what decodes).
    refused: u64,
    /// Time spent generating the events.
    generating: Duration,
    failures: Vec<String>,
    /// Ids answered DUPLICATE before any event with that id was accepted.
    unfounded: Vec<String>,
}

impl Ledger {
    fn record(&mut self, sent: &[Event], results: &[IngestResult]) {
        if results.len() != sent.len() {
            self.failures.push(format!(
                "{} results for a batch of {} events",
                results.len(),
                sent.len()
            ));
        }
        for result in results {
            let Some(event) = usize::try_from(result.index).ok().and_then(|i| sent.get(i)) else {
                self.failures.push(format!(
                    "a result for index {} of {}",
                    result.index,
                    sent.len()
                ));
                continue;
            };
            let id = &event.message_id;
            if &result.message_id != id {
                self.failures.push(format!(
                    "result {} names {:?}, the event was {id:?}",
                    result.index, result.message_id
                ));
            }
            match result.status() {
                IngestStatus::Accepted => {
                    if self.accepted.insert(id.clone(), result.sequence).is_some() {
                        self.failures.push(format!("{id:?} was accepted twice"));
                    }
                }
                IngestStatus::Duplicate => {
                    self.duplicates += 1;
                    if !self.accepted.contains_key(id) {
                        self.unfounded.push(id.clone());
                    }
                }
                IngestStatus::Rejected => {
                    let reason = result.violations.first().map_or_else(
                        || "no violation named".to_owned(),
                        |v| format!("{}:{}", v.field, v.reason),
                    );
                    *self.rejected.entry(reason).or_default() += 1;
                }
                IngestStatus::Unspecified => {
                    self.failures.push(format!("{id:?} has no status"));
                }
            }
        }
    }
}

async fn ingest_batch(
    client: &mut CollectionServiceClient<Channel>,
    batch: Vec<Event>,
    ledger: &mut Ledger,
) -> anyhow::Result<()> {
    let events = batch.len();
    let reply = client
        .ingest_events(IngestEventsRequest {
            events: batch.clone(),
        })
        .await
        .map_err(|status| anyhow::anyhow!("a batch of {events} events was refused: {status:?}"))?
        .into_inner();
    ledger.record(&batch, &reply.results);
    let counted = reply.accepted_count + reply.duplicate_count + reply.rejected_count;
    if usize::try_from(counted).ok() != Some(events) {
        ledger.failures.push(format!(
            "counts of a batch sum to {counted}, it had {events} events"
        ));
    }
    Ok(())
}

/// Sends an event nested past what decodes, alone: refused as a whole with INVALID_ARGUMENT,
/// or judged like any other.
async fn ingest_abyss(
    client: &mut CollectionServiceClient<Channel>,
    event: Event,
    ledger: &mut Ledger,
) -> anyhow::Result<()> {
    let sent = vec![event];
    match client
        .ingest_events(IngestEventsRequest {
            events: sent.clone(),
        })
        .await
    {
        Ok(reply) => ledger.record(&sent, &reply.into_inner().results),
        Err(status) if status.code() == Code::InvalidArgument => ledger.refused += 1,
        Err(status) => anyhow::bail!("a deeply nested event got {status:?}"),
    }
    Ok(())
}

async fn stream_batches(
    client: &mut CollectionServiceClient<Channel>,
    batches: Vec<Vec<Event>>,
    ledger: &mut Ledger,
) -> anyhow::Result<()> {
    let requests: Vec<StreamEventsRequest> = batches
        .iter()
        .enumerate()
        .map(|(i, events)| StreamEventsRequest {
            batch_id: format!("b{i}"),
            events: events.clone(),
            return_all_results: true,
        })
        .collect();
    let mut answers = client
        .stream_events(futures::stream::iter(requests))
        .await
        .context("StreamEvents")?
        .into_inner();
    let mut acked = 0;
    while let Some(answer) = answers.message().await.context("StreamEvents answer")? {
        match answer.response {
            Some(Answer::Ack(ack)) => {
                let Some(batch) = batches.get(acked) else {
                    anyhow::bail!("more acknowledgements than batches");
                };
                anyhow::ensure!(ack.batch_id == format!("b{acked}"), "{ack:?} out of order");
                ledger.record(batch, &ack.results);
                acked += 1;
            }
            Some(Answer::Summary(_)) => {}
            None => anyhow::bail!("an empty answer on the stream"),
        }
    }
    anyhow::ensure!(
        acked == batches.len(),
        "{acked} of {} batches acknowledged",
        batches.len()
    );
    Ok(())
}

/// Sends `total` generated events as `tenant`: three of every four rounds one IngestEvents
/// call, the fourth a StreamEvents call of up to three batches; now and then an event nested
/// past what decodes, alone.
async fn ingest(
    app: &TestApp,
    tenant: &str,
    generator: &mut Generator,
    total: usize,
) -> anyhow::Result<Ledger> {
    let mut client = CollectionServiceClient::new(app.channel(&token(tenant, SCOPES))?);
    let mut ledger = Ledger::default();
    let (mut sent, mut round, mut next_abyss) = (0, 0, ABYSS_EVERY);
    while sent < total {
        round += 1;
        if round % 4 == 0 {
            let mut batches = Vec::new();
            while batches.len() < 3 && sent < total {
                let started = Instant::now();
                let batch = generator.batch(total - sent);
                ledger.generating += started.elapsed();
                sent += batch.len();
                batches.push(batch);
            }
            stream_batches(&mut client, batches, &mut ledger).await?;
        } else {
            let started = Instant::now();
            let batch = generator.batch(total - sent);
            ledger.generating += started.elapsed();
            sent += batch.len();
            ingest_batch(&mut client, batch, &mut ledger).await?;
        }
        if sent >= next_abyss {
            next_abyss += ABYSS_EVERY;
            ingest_abyss(&mut client, generator.abyss(), &mut ledger).await?;
        }
    }
    let sentinel = Event {
        message_id: format!("{tenant}-sentinel"),
        r#type: EventType::Track as i32,
        event: SENTINEL.to_owned(),
        anonymous_id: format!("{tenant}-sentinel-person"),
        original_timestamp: generator.now_ms.to_string(),
        channel: "app".to_owned(),
        source: "sdk-app".to_owned(),
        ..Default::default()
    };
    ingest_batch(&mut client, vec![sentinel], &mut ledger).await?;
    Ok(ledger)
}

/// The dictionary of tenant `fuzznk`: the valid names the generator uses, and purchases
/// deduplicated by order id.
async fn define_dictionary(app: &TestApp, tenant: &str) -> anyhow::Result<()> {
    let mut governance = GovernanceServiceClient::new(app.channel(&token(tenant, SCOPES))?);
    for name in [
        "view",
        "add_to_cart",
        "purchase",
        "phone_reassigned",
        SENTINEL,
    ] {
        let natural_key_properties = if name == "purchase" {
            vec!["order_id".to_owned()]
        } else {
            Vec::new()
        };
        governance
            .create_canonical_event(CreateCanonicalEventRequest {
                canonical_event_id: name.to_owned(),
                canonical_event: Some(CanonicalEvent {
                    natural_key_properties,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await?;
    }
    governance
        .publish_dictionary_version(PublishDictionaryVersionRequest::default())
        .await?;
    Ok(())
}

fn modeling(app: &TestApp, tenant: &str) -> anyhow::Result<ModelingServiceClient<Channel>> {
    Ok(
        ModelingServiceClient::new(app.channel(&token(tenant, SCOPES))?)
            .max_decoding_message_size(MAX_REPLY_BYTES),
    )
}

/// Waits until `tenant`'s sentinel is in the event store: every consumer before it moved on.
async fn await_sentinel(app: &TestApp, tenant: &str) -> anyhow::Result<()> {
    let client = modeling(app, tenant)?;
    eventually(ARRIVAL, || {
        let mut client = client.clone();
        async move {
            let counts = client
                .count_events(touchline_proto::modeling::v1::CountEventsRequest::default())
                .await?
                .into_inner();
            Ok(counts
                .by_event
                .iter()
                .any(|row| row.key == SENTINEL && row.events > 0)
                .then_some(()))
        }
    })
    .await
    .map_err(|err| err.context(format!("the sentinel of {tenant} never reached modeling")))
}

/// How long after its sentinel a tenant's accepted events may still be on their way.
const SETTLE: Duration = Duration::from_secs(30);
/// Governance's outcome ledger codes (governance.raw_outcomes.outcome).
const CLEAN: i16 = 1;
const QUARANTINED: i16 = 2;
const NATURAL_KEY_DUPLICATE: i16 = 3;
const RESTATEMENT: i16 = 4;
const MESSAGE_ID_DUPLICATE: i16 = 5;

/// What the stages after collection hold for one tenant.
#[derive(Debug, Default)]
struct Downstream {
    /// Message ids in the event store, with how often each is listed.
    stored: HashMap<String, usize>,
    /// The store's own count of its events.
    store_count: i64,
    /// Quarantined events by raw-log position: message id and first reason.
    quarantined: HashMap<i64, (String, i32)>,
    /// Modeling's dead letters: message id and reason.
    dead_letters: HashMap<String, String>,
    /// Governance's outcome per raw-log position.
    outcomes: HashMap<i64, i16>,
}

async fn read_store(app: &TestApp, tenant: &str, down: &mut Downstream) -> anyhow::Result<()> {
    let mut client = modeling(app, tenant)?;
    let mut page_token = String::new();
    loop {
        let page = client
            .list_events(ListEventsRequest {
                page_size: 200,
                page_token,
                ..Default::default()
            })
            .await
            .context("ListEvents")?
            .into_inner();
        for event in page.events {
            *down.stored.entry(event.message_id).or_default() += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    down.store_count = client
        .count_events(touchline_proto::modeling::v1::CountEventsRequest::default())
        .await?
        .into_inner()
        .total_events;
    Ok(())
}

async fn read_quarantine(app: &TestApp, tenant: &str, down: &mut Downstream) -> anyhow::Result<()> {
    let mut client = GovernanceServiceClient::new(app.channel(&token(tenant, SCOPES))?)
        .max_decoding_message_size(MAX_REPLY_BYTES);
    let mut page_token = String::new();
    loop {
        let page = client
            .list_quarantined(ListQuarantinedRequest {
                page_size: 200,
                page_token,
                ..Default::default()
            })
            .await
            .context("ListQuarantined")?
            .into_inner();
        for q in page.quarantined_events {
            let id = q.event.map(|e| e.message_id).unwrap_or_default();
            down.quarantined.insert(q.raw_sequence, (id, q.reason));
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}

async fn read_tables(app: &TestApp, tenant: &str, down: &mut Downstream) -> anyhow::Result<()> {
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db.url).await?;
    let dead: Vec<(String, String)> =
        sqlx::query_as("SELECT message_id, reason FROM modeling.dead_letters WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_all(&mut db)
            .await?;
    down.dead_letters = dead.into_iter().collect();
    let outcomes: Vec<(i64, i16)> = sqlx::query_as(
        "SELECT raw_sequence, outcome FROM governance.raw_outcomes WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(&mut db)
    .await?;
    down.outcomes = outcomes.into_iter().collect();
    Ok(())
}

fn reason_name(reason: i32) -> &'static str {
    QuarantineReason::try_from(reason).map_or("UNKNOWN_REASON_NUMBER", |r| r.as_str_name())
}

/// The fate of one accepted event, or why it has none.
fn fate(id: &str, sequence: i64, down: &Downstream) -> Result<String, String> {
    let stored = down.stored.get(id).copied().unwrap_or(0);
    let dead = down.dead_letters.get(id);
    let quarantined = down.quarantined.get(&sequence);
    let code = down.outcomes.get(&sequence).copied();
    let fate = match (code, stored, dead, quarantined) {
        (None, ..) => return Err("governance recorded no outcome (not processed)".to_owned()),
        (Some(CLEAN), 1, None, None) => "clean, in the event store".to_owned(),
        (Some(CLEAN), 0, Some(reason), None) => format!("dead letter: {reason}"),
        (Some(CLEAN), 0, None, None) => {
            return Err("clean in governance, neither in the event store nor a dead letter".into());
        }
        (Some(QUARANTINED), 0, None, Some((qid, reason))) if qid == id && *reason != 0 => {
            format!("quarantined: {}", reason_name(*reason))
        }
        (Some(NATURAL_KEY_DUPLICATE), 0, None, None) => "duplicate by natural key".to_owned(),
        (Some(RESTATEMENT), 0, None, None) => "restatement".to_owned(),
        (Some(MESSAGE_ID_DUPLICATE), 0, None, None) => "duplicate by message id".to_owned(),
        (code, stored, dead, quarantined) => {
            return Err(format!(
                "outcome {code:?}, stored {stored} times, dead letter {dead:?}, quarantined as {quarantined:?}"
            ));
        }
    };
    Ok(fate)
}

/// Counts per fate of every accepted event, and the failures found.
fn account(ledger: &Ledger, down: &Downstream) -> (BTreeMap<String, u64>, Vec<String>) {
    let mut fates: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    for (id, sequence) in &ledger.accepted {
        match fate(id, *sequence, down) {
            Ok(fate) => *fates.entry(fate).or_default() += 1,
            Err(why) => {
                *fates.entry("MISSING".to_owned()).or_default() += 1;
                failures.push(format!("accepted {id:?} (raw {sequence}): {why}"));
            }
        }
    }
    for id in down.stored.keys() {
        if !ledger.accepted.contains_key(id) {
            failures.push(format!(
                "{id:?} is in the event store but was never accepted"
            ));
        }
    }
    let listed: usize = down.stored.values().sum();
    if i64::try_from(listed).ok() != Some(down.store_count) {
        failures.push(format!(
            "the event store lists {listed} events and counts {}",
            down.store_count
        ));
    }
    let accepted: std::collections::HashSet<i64> = ledger.accepted.values().copied().collect();
    for sequence in down.quarantined.keys() {
        if !accepted.contains(sequence) {
            failures.push(format!(
                "raw {sequence} is quarantined but was never accepted"
            ));
        }
    }
    (fates, failures)
}

async fn observe(app: &TestApp, tenant: &str) -> anyhow::Result<Downstream> {
    let mut down = Downstream::default();
    read_store(app, tenant, &mut down).await?;
    read_quarantine(app, tenant, &mut down).await?;
    read_tables(app, tenant, &mut down).await?;
    Ok(down)
}

fn balanced(row: &QualityReportRow) -> bool {
    row.received == row.clean + row.quarantined + row.duplicates
        && row.duplicates
            == row.duplicates_message_id + row.duplicates_natural_key + row.restatements
        && row.quarantined
            == row
                .quarantined_by_reason
                .iter()
                .map(|r| r.count)
                .sum::<i64>()
}

/// The quality report balances, row by row, and agrees with what collection answered and
/// what the later stages hold.
fn check_report(
    rows: &[QualityReportRow],
    total: &QualityReportRow,
    ledger: &Ledger,
    down: &Downstream,
) -> Vec<String> {
    let mut failures = Vec::new();
    for row in rows.iter().chain([total]) {
        if !balanced(row) || !row.includes_ingest_duplicates {
            failures.push(format!("quality report row does not balance: {row:?}"));
        }
    }
    let mut codes: HashMap<i16, i64> = HashMap::new();
    let mut reasons: BTreeMap<i32, i64> = BTreeMap::new();
    for sequence in ledger.accepted.values() {
        let code = down.outcomes.get(sequence).copied().unwrap_or(0);
        *codes.entry(code).or_default() += 1;
        if let (QUARANTINED, Some((_, reason))) = (code, down.quarantined.get(sequence)) {
            *reasons.entry(*reason).or_default() += 1;
        }
    }
    let code = |c: i16| codes.get(&c).copied().unwrap_or(0);
    let accepted = i64::try_from(ledger.accepted.len()).unwrap_or(i64::MAX);
    let duplicates = i64::try_from(ledger.duplicates).unwrap_or(i64::MAX);
    let expected = [
        ("received", total.received, accepted + duplicates),
        (
            "duplicates_message_id",
            total.duplicates_message_id,
            duplicates,
        ),
        ("clean", total.clean, code(CLEAN)),
        ("quarantined", total.quarantined, code(QUARANTINED)),
        (
            "duplicates_natural_key",
            total.duplicates_natural_key,
            code(NATURAL_KEY_DUPLICATE),
        ),
        ("restatements", total.restatements, code(RESTATEMENT)),
    ];
    for (field, reported, counted) in expected {
        if reported != counted {
            failures.push(format!(
                "quality report {field} = {reported}, counted {counted}"
            ));
        }
    }
    let by_reason: BTreeMap<i32, i64> = total
        .quarantined_by_reason
        .iter()
        .map(|r| (r.reason, r.count))
        .collect();
    if by_reason != reasons {
        failures.push(format!(
            "quarantined per reason: report {by_reason:?}, quarantine list {reasons:?}"
        ));
    }
    failures
}

/// What became of one tenant's events.
#[derive(Debug)]
pub struct Tally {
    /// The tenant.
    pub tenant: String,
    /// What collection answered.
    pub ledger: Ledger,
    /// Accepted events per fate.
    pub fates: BTreeMap<String, u64>,
    /// The quality report's total.
    pub total: QualityReportRow,
    /// Every invariant that failed.
    pub failures: Vec<String>,
}

/// Accounts for every event `tenant` had accepted, once its sentinel arrived.
async fn judge(app: &TestApp, tenant: &str, ledger: Ledger) -> anyhow::Result<Tally> {
    let ledger_ref = &ledger;
    let settled = eventually(SETTLE, || async move {
        let down = observe(app, tenant).await?;
        let (fates, failures) = account(ledger_ref, &down);
        Ok(failures.is_empty().then_some((down, fates)))
    })
    .await;
    let (down, fates, mut failures) = match settled {
        Ok((down, fates)) => (down, fates, Vec::new()),
        Err(_) => {
            let down = observe(app, tenant).await?;
            let (fates, failures) = account(&ledger, &down);
            (down, fates, failures)
        }
    };
    // Rows are per source and hour: with thousands of distinct (valid, hostile) source ids the
    // report outgrows the default 4 MiB reply limit.
    let report = GovernanceServiceClient::new(app.channel(&token(tenant, SCOPES))?)
        .max_decoding_message_size(MAX_REPLY_BYTES)
        .get_quality_report(GetQualityReportRequest::default())
        .await
        .context("GetQualityReport")?
        .into_inner();
    let total = report.total.unwrap_or_default();
    let rows: Vec<QualityReportRow> = report
        .rows
        .into_iter()
        .chain(report.source_totals)
        .collect();
    failures.extend(check_report(&rows, &total, &ledger, &down));
    failures.extend(ledger.failures.iter().cloned());
    for id in &ledger.unfounded {
        let later = if ledger.accepted.contains_key(id) {
            "accepted only in a later answer"
        } else {
            "never accepted"
        };
        failures.push(format!("{id:?} is called a duplicate but was {later}"));
    }
    Ok(Tally {
        tenant: tenant.to_owned(),
        ledger,
        fates,
        total,
        failures,
    })
}

/// A whole run: what each tenant's events became and how long it took.
#[derive(Debug)]
pub struct RunReport {
    /// The generator's seed.
    pub seed: u64,
    /// Per tenant: `fuzz`, `fuzznk` and the canary.
    pub tallies: Vec<Tally>,
    /// Until the last event was acknowledged.
    pub ingest_time: Duration,
    /// Until every check was done.
    pub total_time: Duration,
}

/// Sends the plan's events through the running `app` and accounts for every one.
pub async fn run(app: &TestApp, plan: &Plan) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    define_dictionary(app, "fuzznk").await?;
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let mut generator = Generator::new(plan.seed, i64::try_from(now_ms.as_millis())?);
    let fuzz = ingest(app, "fuzz", &mut generator, plan.events).await?;
    let nk = ingest(app, "fuzznk", &mut generator, plan.dictionary_events).await?;
    // Another tenant's event sent after all of them must not wait for them.
    let canary = ingest(app, "canary", &mut generator, 0).await?;
    let ingest_time = started.elapsed();
    let mut tallies = Vec::new();
    for (tenant, ledger) in [("canary", canary), ("fuzz", fuzz), ("fuzznk", nk)] {
        await_sentinel(app, tenant).await?;
        tallies.push(judge(app, tenant, ledger).await?);
    }
    Ok(RunReport {
        seed: plan.seed,
        tallies,
        ingest_time,
        total_time: started.elapsed(),
    })
}

impl RunReport {
    /// Every invariant that failed: how many of each kind, then the first ones in full.
    pub fn failures(&self) -> Vec<String> {
        let all: Vec<String> = self
            .tallies
            .iter()
            .flat_map(|t| t.failures.iter().map(move |f| format!("{}: {f}", t.tenant)))
            .collect();
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for failure in &all {
            *kinds.entry(kind(failure)).or_default() += 1;
        }
        let mut shown: Vec<String> = kinds
            .iter()
            .map(|(kind, n)| format!("{n} x {kind}..."))
            .collect();
        let mut examples: HashMap<String, usize> = HashMap::new();
        for failure in &all {
            let seen = examples.entry(kind(failure)).or_default();
            *seen += 1;
            if *seen <= SHOWN_PER_KIND {
                shown.push(failure.chars().take(SHOWN_CHARS).collect());
            }
        }
        shown
    }

    /// Paths a run of this size must have taken: otherwise the generator, not the services,
    /// is at fault, and a green run would prove nothing.
    pub fn coverage_gaps(&self) -> Vec<String> {
        let mut gaps = Vec::new();
        for tally in &self.tallies {
            let fates = &tally.fates;
            let ledger = &tally.ledger;
            let quarantine_reasons = fates
                .keys()
                .filter(|k| k.starts_with("quarantined"))
                .count();
            let clean = fates.get("clean, in the event store").copied().unwrap_or(0);
            let missing = match tally.tenant.as_str() {
                "canary" => (ledger.accepted.len() != 1 || clean != 1)
                    .then_some("exactly the canary, clean"),
                "fuzz" if ledger.duplicates == 0 => Some("message-id duplicates"),
                "fuzz" if ledger.rejected.len() < 3 => Some("three kinds of rejection"),
                "fuzz" if ledger.refused == 0 => Some("a request refused as a whole"),
                "fuzz" if quarantine_reasons < 4 => Some("four quarantine reasons"),
                "fuzz" if clean < 100 => Some("a hundred clean events"),
                "fuzznk"
                    if !fates.contains_key("duplicate by natural key")
                        && !fates.contains_key("restatement") =>
                {
                    Some("natural-key duplicates")
                }
                _ => None,
            };
            if let Some(what) = missing {
                gaps.push(format!("{}: the run produced no {what}", tally.tenant));
            }
        }
        gaps
    }

    /// Counts per outcome at every stage, and the times.
    pub fn summary(&self) -> String {
        let mut out = format!("fuzz run, seed {:#x}\n", self.seed);
        for t in &self.tallies {
            let l = &t.ledger;
            let _ = writeln!(
                out,
                "tenant {}: collection accepted {}, duplicate {}, rejected {}, refused whole {} (generated in {:.1}s)",
                t.tenant,
                l.accepted.len(),
                l.duplicates,
                l.rejected.values().sum::<u64>(),
                l.refused,
                l.generating.as_secs_f64()
            );
            for (reason, n) in &l.rejected {
                let _ = writeln!(out, "  rejected {reason}: {n}");
            }
            for (fate, n) in &t.fates {
                let _ = writeln!(out, "  {fate}: {n}");
            }
            let r = &t.total;
            let _ = writeln!(
                out,
                "  quality report: received {} = clean {} + quarantined {} + duplicates {} (message id {}, natural key {}, restatements {})",
                r.received,
                r.clean,
                r.quarantined,
                r.duplicates,
                r.duplicates_message_id,
                r.duplicates_natural_key,
                r.restatements
            );
        }
        let _ = writeln!(
            out,
            "ingested in {:.1}s, checked after {:.1}s",
            self.ingest_time.as_secs_f64(),
            self.total_time.as_secs_f64()
        );
        out
    }
}

/// A failure without its quoted values and numbers, to count failures of one kind.
fn kind(failure: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in failure.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ if quoted || c.is_ascii_digit() => {}
            _ => out.push(c),
        }
        if out.len() >= 60 {
            break;
        }
    }
    out
}
