//! The gRPC adapter of the governance service.

use std::pin::Pin;

use prost::Message as _;
use sqlx::PgPool;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use touchline_db::LogNotifier;
use touchline_proto::governance::v1 as pb;
use touchline_proto::governance::v1::governance_service_server::GovernanceService;
use touchline_runtime::Shutdown;
use touchline_runtime::tail::{PartitionCursors, PartitionedLog, spawn_tail};

use crate::store::{self, StoredCleanEvent};

/// The governance service's gRPC face.
#[derive(Debug, Clone)]
pub struct GovernanceApi {
    pool: PgPool,
    notifier: LogNotifier,
    shutdown: Shutdown,
}

impl GovernanceApi {
    /// A service over `pool`; `notifier` must listen on [`crate::CLEAN_LOG_CHANNEL`].
    pub fn new(pool: PgPool, notifier: LogNotifier, shutdown: Shutdown) -> Self {
        Self {
            pool,
            notifier,
            shutdown,
        }
    }
}

#[tonic::async_trait]
impl GovernanceService for GovernanceApi {
    async fn tail_clean_events(
        &self,
        request: Request<pb::TailCleanEventsRequest>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<pb::TailCleanEventsResponse, Status>> + Send>>>,
        Status,
    > {
        let principal = touchline_auth::principal(&request)?;
        let selector = request.into_inner().selector;
        let source =
            PartitionCursors::new(CleanLog(self.pool.clone()), &principal.tenant, selector)?;
        let stream = spawn_tail(
            source,
            self.notifier.subscribe(crate::CLEAN_LOG_CHANNEL),
            self.shutdown.clone(),
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

struct CleanLog(PgPool);

fn store_status(err: sqlx::Error) -> Status {
    tracing::error!(error = %touchline_error::cause_chain(&err), "reading the clean log failed");
    if touchline_db::classify(&err).is_transient() {
        Status::unavailable("the clean log is temporarily unavailable")
    } else {
        Status::internal("reading the clean log failed")
    }
}

impl PartitionedLog for CleanLog {
    type Record = StoredCleanEvent;
    type Batch = pb::TailCleanEventsResponse;

    async fn heads(&self, tenants: Option<&[String]>) -> Result<Vec<(String, i64)>, Status> {
        store::heads(&self.0, tenants).await.map_err(store_status)
    }

    async fn read_after(
        &self,
        tenant: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredCleanEvent>, Status> {
        store::read_after(&self.0, tenant, after, limit)
            .await
            .map_err(store_status)
    }

    fn sequence(record: &StoredCleanEvent) -> i64 {
        record.sequence
    }

    fn batch(
        tenant: &str,
        head: i64,
        records: Vec<StoredCleanEvent>,
    ) -> Result<pb::TailCleanEventsResponse, Status> {
        let events = records
            .into_iter()
            .map(|record| {
                let mut event =
                    pb::CleanEvent::decode(record.payload.as_slice()).map_err(|err| {
                        Status::internal(format!(
                            "clean record {} is unreadable: {err}",
                            record.sequence
                        ))
                    })?;
                event.sequence = record.sequence;
                event.traceparent = record.traceparent.unwrap_or_default();
                Ok(event)
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(pb::TailCleanEventsResponse {
            tenant: tenant.to_owned(),
            events,
            head_sequence: head,
        })
    }
}
