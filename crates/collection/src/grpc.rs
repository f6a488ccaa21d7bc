//! The gRPC adapter: decode, authorise, call the domain and store, encode.

use std::pin::Pin;

use chrono::Utc;
use prost::Message as _;
use sqlx::PgPool;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use touchline_db::LogNotifier;
use touchline_error::{ApiError, ErrorCode, FieldViolation, to_status};
use touchline_proto::collection::v1 as pb;
use touchline_proto::collection::v1::collection_service_server::CollectionService;
use touchline_proto::common::v1::{Event, EventType};
use touchline_runtime::Shutdown;
use touchline_runtime::tail::{PartitionCursors, PartitionedLog, spawn_tail};

use crate::domain::{EventCheck, repeated_in_batch, validate};
use crate::store::{self, NewRawEvent, StoredRawEvent};

/// Default most events per IngestEvents call.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 1_000;

/// The collection service's gRPC face.
#[derive(Debug, Clone)]
pub struct CollectionApi {
    pool: PgPool,
    notifier: LogNotifier,
    shutdown: Shutdown,
    max_batch_events: usize,
}

impl CollectionApi {
    /// A service over `pool`; `notifier` must listen on [`crate::RAW_LOG_CHANNEL`].
    pub fn new(
        pool: PgPool,
        notifier: LogNotifier,
        shutdown: Shutdown,
        max_batch_events: usize,
    ) -> Self {
        Self {
            pool,
            notifier,
            shutdown,
            max_batch_events,
        }
    }
}

/// Failures of the collection service.
#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    /// The batch holds more events than allowed.
    #[error("a batch may hold at most {limit} events; this one has {actual}")]
    BatchTooLarge {
        /// The limit.
        limit: usize,
        /// What was sent.
        actual: usize,
    },
    /// PostgreSQL failed.
    #[error("storing the batch failed")]
    Store(#[source] sqlx::Error),
}

impl ApiError for CollectionError {
    fn code(&self) -> ErrorCode {
        match self {
            CollectionError::BatchTooLarge { .. } => ErrorCode::InvalidArgument,
            CollectionError::Store(err) => {
                if touchline_db::classify(err).is_transient() {
                    ErrorCode::Unavailable
                } else {
                    ErrorCode::Internal
                }
            }
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            CollectionError::BatchTooLarge { limit, .. } => vec![FieldViolation::new(
                "events",
                "BATCH_TOO_LARGE",
                format!("at most {limit} events per call"),
            )],
            CollectionError::Store(_) => Vec::new(),
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        (self.code() == ErrorCode::Unavailable).then_some(std::time::Duration::from_millis(200))
    }
}

#[tonic::async_trait]
impl CollectionService for CollectionApi {
    #[tracing::instrument(
        name = "collection.ingest_events",
        skip_all,
        fields(service = "collection", tenant, events)
    )]
    async fn ingest_events(
        &self,
        request: Request<pb::IngestEventsRequest>,
    ) -> Result<Response<pb::IngestEventsResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let events = request.into_inner().events;
        tracing::Span::current().record("tenant", principal.tenant.as_str());
        tracing::Span::current().record("events", events.len());
        if events.len() > self.max_batch_events {
            return Err(to_status(&CollectionError::BatchTooLarge {
                limit: self.max_batch_events,
                actual: events.len(),
            }));
        }
        let response = ingest(&self.pool, &principal.tenant, &events)
            .await
            .map_err(|err| to_status(&err))?;
        Ok(Response::new(response))
    }

    async fn tail_raw_events(
        &self,
        request: Request<pb::TailRawEventsRequest>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<pb::TailRawEventsResponse, Status>> + Send>>>,
        Status,
    > {
        let principal = touchline_auth::principal(&request)?;
        let selector = request.into_inner().selector;
        let source = PartitionCursors::new(RawLog(self.pool.clone()), &principal.tenant, selector)?;
        let stream = spawn_tail(
            source,
            self.notifier.subscribe(crate::RAW_LOG_CHANNEL),
            self.shutdown.clone(),
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Validates, stores and reports on one batch.
async fn ingest(
    pool: &PgPool,
    tenant: &str,
    events: &[Event],
) -> Result<pb::IngestEventsResponse, CollectionError> {
    let repeated = repeated_in_batch(events.iter().map(|e| e.message_id.as_str()));
    let mut results: Vec<pb::IngestResult> = Vec::with_capacity(events.len());
    let mut to_store = Vec::with_capacity(events.len());
    let mut stored_index = Vec::with_capacity(events.len());
    for (index, (event, repeated)) in events.iter().zip(repeated).enumerate() {
        let mut result = pb::IngestResult {
            index: i32::try_from(index).unwrap_or(i32::MAX),
            message_id: event.message_id.clone(),
            ..Default::default()
        };
        match validate(&check_of(event)) {
            Err(violations) => {
                result.set_status(pb::IngestStatus::Rejected);
                result.violations = violations
                    .into_iter()
                    .map(|v| pb::FieldViolation {
                        field: v.field,
                        description: v.description,
                        reason: v.reason.to_owned(),
                    })
                    .collect();
            }
            Ok(_) if repeated => result.set_status(pb::IngestStatus::Duplicate),
            Ok(_) => {
                stored_index.push(index);
                to_store.push(NewRawEvent {
                    message_id: event.message_id.clone(),
                    event_name: event.event.clone(),
                    source: event.source.clone(),
                    channel: event.channel.clone(),
                    payload: event.encode_to_vec(),
                });
            }
        }
        results.push(result);
    }
    let traceparent = touchline_telemetry::current_traceparent();
    let sequences = store::append(pool, tenant, &to_store, Utc::now(), traceparent.as_deref())
        .await
        .map_err(CollectionError::Store)?;
    for (index, sequence) in stored_index.into_iter().zip(sequences) {
        if let Some(result) = results.get_mut(index) {
            match sequence {
                Some(sequence) => {
                    result.set_status(pb::IngestStatus::Accepted);
                    result.sequence = sequence;
                }
                None => result.set_status(pb::IngestStatus::Duplicate),
            }
        }
    }
    let count = |status: pb::IngestStatus| {
        i32::try_from(results.iter().filter(|r| r.status() == status).count()).unwrap_or(i32::MAX)
    };
    Ok(pb::IngestEventsResponse {
        accepted_count: count(pb::IngestStatus::Accepted),
        duplicate_count: count(pb::IngestStatus::Duplicate),
        rejected_count: count(pb::IngestStatus::Rejected),
        results,
    })
}

fn check_of(event: &Event) -> EventCheck<'_> {
    let mut other_text: Vec<(String, &str)> = vec![
        ("anonymous_id".to_owned(), event.anonymous_id.as_str()),
        ("user_id".to_owned(), event.user_id.as_str()),
        ("previous_id".to_owned(), event.previous_id.as_str()),
        ("source".to_owned(), event.source.as_str()),
        ("channel".to_owned(), event.channel.as_str()),
    ];
    for (i, identifier) in event.identifiers.iter().enumerate() {
        other_text.push((format!("identifiers[{i}].type"), identifier.r#type.as_str()));
        other_text.push((format!("identifiers[{i}].value"), identifier.value.as_str()));
        other_text.push((format!("identifiers[{i}].scope"), identifier.scope.as_str()));
    }
    for (name, value) in [
        ("properties", &event.properties),
        ("traits", &event.traits),
        ("context", &event.context),
    ] {
        if let Some(value) = value {
            collect_struct_text(name, value, &mut other_text);
        }
    }
    let requires_name = matches!(event.r#type(), EventType::Unspecified | EventType::Track);
    EventCheck {
        message_id: &event.message_id,
        requires_name,
        event_name: &event.event,
        original_timestamp: &event.original_timestamp,
        sent_at: &event.sent_at,
        other_text,
    }
}

fn collect_struct_text<'a>(
    path: &str,
    value: &'a prost_types::Struct,
    out: &mut Vec<(String, &'a str)>,
) {
    for (key, field) in &value.fields {
        let path = format!("{path}.{key}");
        if key.contains('\0') {
            out.push((path.clone(), key.as_str()));
        }
        collect_value_text(&path, field, out);
    }
}

fn collect_value_text<'a>(
    path: &str,
    value: &'a prost_types::Value,
    out: &mut Vec<(String, &'a str)>,
) {
    use prost_types::value::Kind;
    match &value.kind {
        Some(Kind::StringValue(text)) => out.push((path.to_owned(), text.as_str())),
        Some(Kind::StructValue(inner)) => collect_struct_text(path, inner, out),
        Some(Kind::ListValue(list)) => {
            for (i, item) in list.values.iter().enumerate() {
                collect_value_text(&format!("{path}[{i}]"), item, out);
            }
        }
        Some(Kind::NullValue(_) | Kind::NumberValue(_) | Kind::BoolValue(_)) | None => {}
    }
}

/// The raw log as a partitioned log for the tail driver.
struct RawLog(PgPool);

fn store_status(err: sqlx::Error) -> Status {
    to_status(&CollectionError::Store(err))
}

impl PartitionedLog for RawLog {
    type Record = StoredRawEvent;
    type Batch = pb::TailRawEventsResponse;

    async fn heads(&self, tenants: Option<&[String]>) -> Result<Vec<(String, i64)>, Status> {
        store::heads(&self.0, tenants).await.map_err(store_status)
    }

    async fn read_after(
        &self,
        tenant: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredRawEvent>, Status> {
        store::read_after(&self.0, tenant, after, limit)
            .await
            .map_err(store_status)
    }

    fn sequence(record: &StoredRawEvent) -> i64 {
        record.sequence
    }

    fn batch(
        tenant: &str,
        head: i64,
        records: Vec<StoredRawEvent>,
    ) -> Result<pb::TailRawEventsResponse, Status> {
        let events = records
            .into_iter()
            .map(|record| {
                let event = Event::decode(record.payload.as_slice()).map_err(|err| {
                    Status::internal(format!(
                        "raw record {} is unreadable: {err}",
                        record.sequence
                    ))
                })?;
                Ok(pb::RawEvent {
                    sequence: record.sequence,
                    event: Some(event),
                    received_at: Some(timestamp(record.received_at)),
                    traceparent: record.traceparent.unwrap_or_default(),
                    ..Default::default()
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(pb::TailRawEventsResponse {
            tenant: tenant.to_owned(),
            events,
            head_sequence: head,
        })
    }
}

fn timestamp(instant: chrono::DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: instant.timestamp(),
        nanos: i32::try_from(instant.timestamp_subsec_nanos()).unwrap_or(0),
    }
}
