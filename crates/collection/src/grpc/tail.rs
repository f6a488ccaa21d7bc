//! TailRawEvents: the raw log as a partitioned log for the shared tail
//! driver. The adapter below is the only glue between this crate's store
//! and `touchline_pipeline::tail`; keep it here, in one place.

use prost::Message as _;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use touchline_pipeline::LogError;
use touchline_pipeline::tail::{PartitionCursors, PartitionedLog, spawn_tail};
use touchline_proto::collection::v1 as pb;
use touchline_proto::common::v1::Event;

use super::{BoxStream, CollectionApi, timestamp};
use crate::domain::names;
use crate::store::{self, StoredRawEvent};

pub(super) async fn tail_raw_events(
    api: &CollectionApi,
    request: Request<pb::TailRawEventsRequest>,
) -> Result<Response<BoxStream<pb::TailRawEventsResponse>>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let selector = request.into_inner().selector;
    let source = PartitionCursors::new(RawLog(api.pool.clone()), &principal.tenant, selector)?;
    let stream = spawn_tail(
        source,
        api.notifier.subscribe(crate::RAW_LOG_CHANNEL),
        api.shutdown.clone(),
    );
    Ok(Response::new(Box::pin(stream)))
}

/// The raw log as a partitioned log for the tail driver.
struct RawLog(PgPool);

/// How this log is named in errors.
const LOG: &str = "raw log";

impl PartitionedLog for RawLog {
    type Record = StoredRawEvent;
    type Batch = pb::TailRawEventsResponse;

    async fn heads(&self, tenants: Option<&[String]>) -> Result<Vec<(String, i64)>, LogError> {
        store::heads(&self.0, tenants)
            .await
            .map_err(|err| LogError::store(LOG, err))
    }

    async fn read_after(
        &self,
        tenant: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredRawEvent>, LogError> {
        store::read_after(&self.0, tenant, after, limit)
            .await
            .map_err(|err| LogError::store(LOG, err))
    }

    fn sequence(record: &StoredRawEvent) -> i64 {
        record.sequence
    }

    fn batch(
        tenant: &str,
        head: i64,
        records: Vec<StoredRawEvent>,
    ) -> Result<pb::TailRawEventsResponse, LogError> {
        let events = records
            .into_iter()
            .map(|record| {
                let event = Event::decode(record.payload.as_slice())
                    .map_err(|err| LogError::unreadable(LOG, record.sequence, err))?;
                Ok(pb::RawEvent {
                    sequence: record.sequence,
                    event: Some(event),
                    received_at: Some(timestamp(record.received_at)),
                    traceparent: record.traceparent.unwrap_or_default(),
                    file_import: record
                        .file_import
                        .map(|id| names::import(tenant, &id))
                        .unwrap_or_default(),
                    import_row: record.import_row.unwrap_or_default(),
                    source_revision: record.source_revision,
                })
            })
            .collect::<Result<Vec<_>, LogError>>()?;
        Ok(pb::TailRawEventsResponse {
            tenant: tenant.to_owned(),
            events,
            head_sequence: head,
        })
    }
}
