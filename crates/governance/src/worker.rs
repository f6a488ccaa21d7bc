//! The cleaning worker: tails collection's raw log from the cursors stored
//! here, cleans each batch, and commits clean records, quarantined records
//! and the cursor together.

use prost::Message as _;
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::collection::v1::{TailRawEventsRequest, TailRawEventsResponse};
use touchline_proto::common::v1::{PartitionCursor, TailSelector};
use touchline_runtime::Shutdown;
use touchline_runtime::client::CallCredentials;

use crate::clean::{clean, from_timestamp};
use crate::store::{self, NewCleanEvent, NewQuarantined};

/// A collection client carrying the worker's credentials.
pub type CollectionClient = CollectionServiceClient<InterceptedService<Channel, CallCredentials>>;

/// Why a worker session ended.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The raw log stream failed.
    #[error("raw log stream: {0}")]
    Upstream(#[from] tonic::Status),
    /// Committing failed.
    #[error("committing clean events: {0}")]
    Store(#[from] sqlx::Error),
}

/// Cleans the raw log into the clean log, for every tenant.
#[derive(Debug, Clone)]
pub struct CleaningWorker {
    pool: PgPool,
    collection: CollectionClient,
    batch_size: i32,
}

impl CleaningWorker {
    /// A worker writing to `pool` and reading from `collection`.
    pub fn new(pool: PgPool, collection: CollectionClient) -> Self {
        Self {
            pool,
            collection,
            batch_size: 500,
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        touchline_runtime::consumer::run(crate::RAW_LOG_CONSUMER, shutdown, || self.session())
            .await;
    }

    async fn session(&self) -> Result<(), WorkerError> {
        let cursors = store::load_cursors(&self.pool, crate::RAW_LOG_CONSUMER)
            .await?
            .into_iter()
            .map(|(tenant, after_sequence)| PartitionCursor {
                tenant,
                after_sequence,
            })
            .collect();
        let request = TailRawEventsRequest {
            selector: Some(TailSelector {
                cursors,
                all_tenants: true,
                max_batch_size: self.batch_size,
            }),
        };
        let mut stream = self
            .collection
            .clone()
            .tail_raw_events(request)
            .await?
            .into_inner();
        while let Some(batch) = stream.message().await? {
            self.process(batch).await?;
        }
        Ok(())
    }

    #[tracing::instrument(name = "governance.clean_batch", skip_all, fields(service = "governance", tenant = %batch.tenant, events = batch.events.len(), lag))]
    async fn process(&self, batch: TailRawEventsResponse) -> Result<(), WorkerError> {
        let Some(last) = batch.events.last().map(|e| e.sequence) else {
            return Ok(());
        };
        tracing::Span::current().record("lag", batch.head_sequence - last);
        let mut clean_rows = Vec::with_capacity(batch.events.len());
        let mut quarantined = Vec::new();
        for raw in &batch.events {
            let span = tracing::info_span!(
                "governance.clean_event",
                service = "governance",
                message_id = tracing::field::Empty
            );
            if !raw.traceparent.is_empty() {
                touchline_telemetry::set_parent_from_traceparent(&span, &raw.traceparent);
            }
            let _entered = span.enter();
            let message_id = raw
                .event
                .as_ref()
                .map(|e| e.message_id.clone())
                .unwrap_or_default();
            span.record("message_id", message_id.as_str());
            let received_at = raw.received_at.as_ref().and_then(from_timestamp);
            let outcome = match (&raw.event, received_at) {
                (Some(event), Some(received_at)) => clean(event, received_at),
                _ => Err(crate::clean::Quarantined {
                    reason: "MALFORMED_RAW_RECORD",
                    field: "event",
                    detail: "the raw record lacks its event or receive time".to_owned(),
                }),
            };
            match outcome {
                Ok((mut event, event_time)) => {
                    event.sequence = raw.sequence;
                    clean_rows.push(NewCleanEvent {
                        sequence: raw.sequence,
                        message_id: event.message_id.clone(),
                        event_name: event.event_name.clone(),
                        channel: event.channel.clone(),
                        event_time,
                        payload: event.encode_to_vec(),
                        traceparent: touchline_telemetry::current_traceparent(),
                    });
                }
                Err(q) => quarantined.push(NewQuarantined {
                    sequence: raw.sequence,
                    message_id,
                    reason: q.reason.to_owned(),
                    field: q.field.to_owned(),
                    detail: q.detail,
                }),
            }
        }
        store::commit_batch(
            &self.pool,
            &batch.tenant,
            &clean_rows,
            &quarantined,
            crate::RAW_LOG_CONSUMER,
            last,
        )
        .await?;
        Ok(())
    }
}
