//! The gRPC adapter: decode, authorise, call the service layer, encode.
//! One module per group of operations; this one only wires them to the
//! generated trait.

mod counts;
mod imports;
mod ingest;
mod sources;
mod tail;

use std::pin::Pin;
use std::sync::Arc;

use sqlx::PgPool;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use touchline_db::LogNotifier;
use touchline_proto::collection::v1 as pb;
use touchline_proto::collection::v1::collection_service_server::CollectionService;
use touchline_runtime::Shutdown;

use crate::committer::GroupCommitter;
use crate::config::CollectionConfig;
use crate::imports::Importer;
use crate::ingest::Ingestor;

/// Default most events per IngestEvents call.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 1_000;

/// A boxed response stream.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The collection service's gRPC face.
#[derive(Debug, Clone)]
pub struct CollectionApi {
    pool: PgPool,
    notifier: LogNotifier,
    shutdown: Shutdown,
    config: Arc<CollectionConfig>,
    ingestor: Ingestor,
    importer: Importer,
}

impl CollectionApi {
    /// A service over `pool`; `notifier` must listen on
    /// [`crate::RAW_LOG_CHANNEL`]. Starts the group committer tasks, so it
    /// must be called inside a tokio runtime.
    pub fn new(
        pool: PgPool,
        notifier: LogNotifier,
        shutdown: Shutdown,
        config: CollectionConfig,
    ) -> Self {
        let config = Arc::new(config);
        let committer = GroupCommitter::start(pool.clone(), &config);
        let ingestor = Ingestor::new(committer, Arc::clone(&config));
        let importer = Importer::new(pool.clone(), Arc::clone(&config));
        Self {
            pool,
            notifier,
            shutdown,
            config,
            ingestor,
            importer,
        }
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
        ingest::ingest_events(self, request).await
    }

    #[tracing::instrument(
        name = "collection.stream_events",
        skip_all,
        fields(service = "collection", tenant)
    )]
    async fn stream_events(
        &self,
        request: Request<Streaming<pb::StreamEventsRequest>>,
    ) -> Result<Response<BoxStream<pb::StreamEventsResponse>>, Status> {
        ingest::stream_events(self, request).await
    }

    #[tracing::instrument(
        name = "collection.import_file",
        skip_all,
        fields(service = "collection")
    )]
    async fn import_file(
        &self,
        request: Request<Streaming<pb::ImportFileRequest>>,
    ) -> Result<Response<BoxStream<pb::ImportFileResponse>>, Status> {
        imports::import_file(self, request).await
    }

    async fn get_import(
        &self,
        request: Request<pb::GetImportRequest>,
    ) -> Result<Response<pb::GetImportResponse>, Status> {
        imports::get_import(self, request).await
    }

    async fn list_imports(
        &self,
        request: Request<pb::ListImportsRequest>,
    ) -> Result<Response<pb::ListImportsResponse>, Status> {
        imports::list_imports(self, request).await
    }

    async fn list_import_row_results(
        &self,
        request: Request<pb::ListImportRowResultsRequest>,
    ) -> Result<Response<pb::ListImportRowResultsResponse>, Status> {
        imports::list_import_row_results(self, request).await
    }

    async fn cancel_import(
        &self,
        request: Request<pb::CancelImportRequest>,
    ) -> Result<Response<pb::CancelImportResponse>, Status> {
        imports::cancel_import(self, request).await
    }

    #[tracing::instrument(
        name = "collection.create_source",
        skip_all,
        fields(service = "collection")
    )]
    async fn create_source(
        &self,
        request: Request<pb::CreateSourceRequest>,
    ) -> Result<Response<pb::CreateSourceResponse>, Status> {
        sources::create_source(self, request).await
    }

    async fn get_source(
        &self,
        request: Request<pb::GetSourceRequest>,
    ) -> Result<Response<pb::GetSourceResponse>, Status> {
        sources::get_source(self, request).await
    }

    async fn list_sources(
        &self,
        request: Request<pb::ListSourcesRequest>,
    ) -> Result<Response<pb::ListSourcesResponse>, Status> {
        sources::list_sources(self, request).await
    }

    #[tracing::instrument(
        name = "collection.update_source",
        skip_all,
        fields(service = "collection")
    )]
    async fn update_source(
        &self,
        request: Request<pb::UpdateSourceRequest>,
    ) -> Result<Response<pb::UpdateSourceResponse>, Status> {
        sources::update_source(self, request).await
    }

    async fn get_ingest_counts(
        &self,
        request: Request<pb::GetIngestCountsRequest>,
    ) -> Result<Response<pb::GetIngestCountsResponse>, Status> {
        counts::get_ingest_counts(self, request).await
    }

    async fn tail_raw_events(
        &self,
        request: Request<pb::TailRawEventsRequest>,
    ) -> Result<Response<BoxStream<pb::TailRawEventsResponse>>, Status> {
        tail::tail_raw_events(self, request).await
    }
}

/// The tenant a `tenants/{tenant}/{collection}/{id}` name belongs to, checked
/// against the caller, and the id.
fn tenant_and_id(
    principal: &touchline_auth::Principal,
    name: &str,
    collection: &str,
    field: &str,
) -> Result<(String, String), Status> {
    let (tenant, id) = crate::domain::names::parse(name, collection).ok_or_else(|| {
        touchline_error::to_status(&crate::error::CollectionError::invalid(
            field,
            "BAD_NAME",
            format!("must look like tenants/{{tenant}}/{collection}/{{id}}"),
        ))
    })?;
    let tenant = principal.tenant_for(&format!("tenants/{tenant}"))?;
    Ok((tenant, id.to_owned()))
}

fn timestamp(instant: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: instant.timestamp(),
        nanos: i32::try_from(instant.timestamp_subsec_nanos()).unwrap_or(0),
    }
}
