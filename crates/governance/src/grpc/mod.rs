//! The gRPC adapter of the governance service: authorise, convert, call the service layer,
//! convert back. `dictionary`, `update`, `privacy`, `quarantine`, `reprocess` and `quality`
//! hold the per-area conversions; errors become statuses in one place (the `From` below,
//! through [`touchline_error::to_status`]).

mod convert;
mod dictionary;
mod privacy;
mod quality;
mod quarantine;
mod reprocess;
mod update;

use std::pin::Pin;

use prost::Message as _;
use sqlx::PgPool;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use touchline_db::LogNotifier;
use touchline_error::to_status;
use touchline_pipeline::LogError;
use touchline_pipeline::tail::{PartitionCursors, PartitionedLog, spawn_tail};
use touchline_proto::governance::v1 as pb;
use touchline_proto::governance::v1::governance_service_server::GovernanceService;
use touchline_runtime::Shutdown;

use crate::domain::names;
use crate::error::GovernanceError;
use crate::service::{Governance, WriteKey};
use crate::store::StoredCleanEvent;
use crate::upstream::Collection;
use crate::worker::GovernanceSettings;

/// The governance service's gRPC face.
#[derive(Debug, Clone)]
pub struct GovernanceApi {
    governance: Governance,
    notifier: LogNotifier,
    shutdown: Shutdown,
}

impl GovernanceApi {
    /// A service over `pool`; `notifier` must listen on
    /// [`crate::CLEAN_LOG_CHANNEL`]; `collection` (carrying the pipeline
    /// token) serves the source registry and the ingest counters.
    pub fn new(
        pool: PgPool,
        notifier: LogNotifier,
        shutdown: Shutdown,
        collection: Collection,
        settings: GovernanceSettings,
    ) -> Self {
        Self {
            governance: Governance::new(pool, collection, settings),
            notifier,
            shutdown,
        }
    }

    /// The service layer behind the adapter.
    pub fn governance(&self) -> &Governance {
        &self.governance
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
        let source = PartitionCursors::new(
            CleanLog(self.governance.clone()),
            &principal.tenant,
            selector,
        )?;
        let stream = spawn_tail(
            source,
            self.notifier.subscribe(crate::CLEAN_LOG_CHANNEL),
            self.shutdown.clone(),
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_privacy_settings(
        &self,
        request: Request<pb::GetPrivacySettingsRequest>,
    ) -> Result<Response<pb::GetPrivacySettingsResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let tenant = principal.tenant_for(names::privacy_parent(&request.get_ref().name)?)?;
        Ok(Response::new(
            privacy::get(&self.governance, &tenant).await?,
        ))
    }

    async fn update_privacy_settings(
        &self,
        request: Request<pb::UpdatePrivacySettingsRequest>,
    ) -> Result<Response<pb::UpdatePrivacySettingsResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let wanted = request
            .get_ref()
            .privacy_settings
            .clone()
            .unwrap_or_default();
        let tenant = principal.tenant_for(names::privacy_parent(&wanted.name)?)?;
        Ok(Response::new(
            privacy::update(&self.governance, &tenant, &wanted).await?,
        ))
    }

    async fn list_industry_templates(
        &self,
        request: Request<pb::ListIndustryTemplatesRequest>,
    ) -> Result<Response<pb::ListIndustryTemplatesResponse>, Status> {
        touchline_auth::principal(&request)?;
        Ok(Response::new(dictionary::list_templates(request.get_ref())))
    }

    async fn apply_industry_template(
        &self,
        request: Request<pb::ApplyIndustryTemplateRequest>,
    ) -> Result<Response<pb::ApplyIndustryTemplateResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let req = request.get_ref();
        let key = WriteKey {
            request_id: &req.request_id,
            validate_only: req.validate_only,
            method: "ApplyIndustryTemplate",
        };
        let call = dictionary::apply(&self.governance, &tenant, req);
        Ok(Response::new(
            self.governance.once(&tenant, key, call).await?,
        ))
    }

    async fn create_canonical_event(
        &self,
        request: Request<pb::CreateCanonicalEventRequest>,
    ) -> Result<Response<pb::CreateCanonicalEventResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let req = request.get_ref();
        let key = WriteKey {
            request_id: &req.request_id,
            validate_only: req.validate_only,
            method: "CreateCanonicalEvent",
        };
        let call = dictionary::create(&self.governance, &tenant, req);
        Ok(Response::new(
            self.governance.once(&tenant, key, call).await?,
        ))
    }

    async fn get_canonical_event(
        &self,
        request: Request<pb::GetCanonicalEventRequest>,
    ) -> Result<Response<pb::GetCanonicalEventResponse>, Status> {
        let parent = names::parent_before(&request.get_ref().name, "canonicalEvents");
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        Ok(Response::new(
            dictionary::get(&self.governance, &tenant, request.get_ref()).await?,
        ))
    }

    async fn list_canonical_events(
        &self,
        request: Request<pb::ListCanonicalEventsRequest>,
    ) -> Result<Response<pb::ListCanonicalEventsResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        Ok(Response::new(
            dictionary::list(&self.governance, &tenant, request.get_ref()).await?,
        ))
    }

    async fn update_canonical_event(
        &self,
        request: Request<pb::UpdateCanonicalEventRequest>,
    ) -> Result<Response<pb::UpdateCanonicalEventResponse>, Status> {
        let parent = request
            .get_ref()
            .canonical_event
            .as_ref()
            .map(|e| names::parent_before(&e.name, "canonicalEvents"))
            .unwrap_or_default();
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let req = request.get_ref();
        let key = WriteKey {
            request_id: &req.request_id,
            validate_only: req.validate_only,
            method: "UpdateCanonicalEvent",
        };
        let call = update::update(&self.governance, &tenant, req);
        Ok(Response::new(
            self.governance.once(&tenant, key, call).await?,
        ))
    }

    async fn publish_dictionary_version(
        &self,
        request: Request<pb::PublishDictionaryVersionRequest>,
    ) -> Result<Response<pb::PublishDictionaryVersionResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let tenant = principal.tenant_for(&request.get_ref().parent)?;
        let req = request.get_ref();
        let key = WriteKey {
            request_id: &req.request_id,
            validate_only: req.validate_only,
            method: "PublishDictionaryVersion",
        };
        let call = dictionary::publish(&self.governance, &tenant, &principal.subject, req);
        Ok(Response::new(
            self.governance.once(&tenant, key, call).await?,
        ))
    }

    async fn list_dictionary_versions(
        &self,
        request: Request<pb::ListDictionaryVersionsRequest>,
    ) -> Result<Response<pb::ListDictionaryVersionsResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        Ok(Response::new(
            dictionary::versions(&self.governance, &tenant, request.get_ref()).await?,
        ))
    }

    async fn list_quarantined(
        &self,
        request: Request<pb::ListQuarantinedRequest>,
    ) -> Result<Response<pb::ListQuarantinedResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        Ok(Response::new(
            quarantine::list(&self.governance, &tenant, request.get_ref()).await?,
        ))
    }

    async fn replay_quarantined(
        &self,
        request: Request<pb::ReplayQuarantinedRequest>,
    ) -> Result<Response<pb::ReplayQuarantinedResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        Ok(Response::new(
            quarantine::replay(&self.governance, &tenant, request.get_ref()).await?,
        ))
    }

    async fn reprocess_range(
        &self,
        request: Request<pb::ReprocessRangeRequest>,
    ) -> Result<Response<pb::ReprocessRangeResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let tenant = principal.tenant_for(&request.get_ref().parent)?;
        Ok(Response::new(
            reprocess::start(
                &self.governance,
                &tenant,
                &principal.subject,
                request.get_ref(),
            )
            .await?,
        ))
    }

    async fn get_reprocess_job(
        &self,
        request: Request<pb::GetReprocessJobRequest>,
    ) -> Result<Response<pb::GetReprocessJobResponse>, Status> {
        let parent = names::parent_before(&request.get_ref().name, "reprocessJobs");
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        Ok(Response::new(
            reprocess::get(&self.governance, &tenant, request.get_ref()).await?,
        ))
    }

    async fn get_clean_position(
        &self,
        request: Request<pb::GetCleanPositionRequest>,
    ) -> Result<Response<pb::GetCleanPositionResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let position = self
            .governance
            .clean_position(&tenant, request.get_ref().raw_sequence)
            .await?;
        Ok(Response::new(pb::GetCleanPositionResponse {
            cleaned: position.cleaned,
            raw_cursor: position.raw_cursor,
            clean_head: position.clean_head,
        }))
    }

    async fn get_quality_report(
        &self,
        request: Request<pb::GetQualityReportRequest>,
    ) -> Result<Response<pb::GetQualityReportResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        Ok(Response::new(
            quality::report(&self.governance, &tenant, request.get_ref()).await?,
        ))
    }
}

/// Where the service's failures become statuses (the enum's [`touchline_error::ApiError`]
/// mapping decides the code; internal text stays in the log).
impl From<GovernanceError> for Status {
    fn from(e: GovernanceError) -> Self {
        to_status(&e)
    }
}

/// The clean log as a partitioned log, read through the service.
struct CleanLog(Governance);

/// How this log is named in errors.
const LOG: &str = "clean log";

impl PartitionedLog for CleanLog {
    type Record = StoredCleanEvent;
    type Batch = pb::TailCleanEventsResponse;

    async fn heads(&self, tenants: Option<&[String]>) -> Result<Vec<(String, i64)>, LogError> {
        self.0
            .clean_heads(tenants)
            .await
            .map_err(|err| LogError::store(LOG, err))
    }

    async fn read_after(
        &self,
        tenant: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredCleanEvent>, LogError> {
        self.0
            .clean_after(tenant, after, limit)
            .await
            .map_err(|err| LogError::store(LOG, err))
    }

    fn sequence(record: &StoredCleanEvent) -> i64 {
        record.sequence
    }

    fn batch(
        tenant: &str,
        head: i64,
        records: Vec<StoredCleanEvent>,
    ) -> Result<pb::TailCleanEventsResponse, LogError> {
        let events = records
            .into_iter()
            .map(|record| {
                let mut event = pb::CleanEvent::decode(record.payload.as_slice())
                    .map_err(|err| LogError::unreadable(LOG, record.sequence, err))?;
                event.sequence = record.sequence;
                event.traceparent = record.traceparent.unwrap_or_default();
                Ok(event)
            })
            .collect::<Result<Vec<_>, LogError>>()?;
        Ok(pb::TailCleanEventsResponse {
            tenant: tenant.to_owned(),
            events,
            head_sequence: head,
        })
    }
}
