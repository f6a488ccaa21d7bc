//! The gRPC adapter of the modeling service: authorise, convert, call the service layer,
//! convert back. Errors become statuses in one place ([`touchline_error::to_status`]).
//!
//! Kept whole: tonic takes a service's methods as one trait impl, so this block holds a method
//! per RPC (about forty; beside its tracing attribute and signature, each authorises,
//! converts, calls and converts back). Conversions and request rules live in the sibling
//! modules.

mod activation;
mod attribution;
mod churn;
mod cohorts;
mod convert;
mod definitions;
mod journeys;
mod paths;
mod segments;

use sqlx::PgPool;
use tonic::{Request, Response, Status};
use touchline_error::to_status;
use touchline_proto::modeling::v1 as pb;
use touchline_proto::modeling::v1::modeling_service_server::ModelingService;

use crate::domain;
use crate::error::ModelingError;
use crate::journeys::dropoffs::DropOffQuery;
use crate::service::{Freshness, Modeling, NewSegment, SegmentUpdate, check_export_types};
use crate::upstream::{Governance, Identity};

/// The modeling service's gRPC face.
#[derive(Debug, Clone)]
pub struct ModelingApi {
    modeling: Modeling,
}

impl ModelingApi {
    /// A service over `pool`; see [`ModelingApi::with_upstreams`].
    pub fn new(pool: PgPool) -> Self {
        Self {
            modeling: Modeling::new(pool),
        }
    }

    /// Calls webhook endpoints as `options` allow (the operator's address policy).
    pub fn with_webhooks(mut self, options: crate::service::WebhookOptions) -> Self {
        self.modeling = self.modeling.with_webhooks(options);
        self
    }

    /// The worker that delivers this API's webhooks.
    pub fn delivery_worker(&self) -> crate::service::DeliveryWorker {
        self.modeling.delivery_worker()
    }

    /// The worker that keeps this API's segments current (it shares the API's views and
    /// wakes its change streams).
    pub fn segment_worker(&self) -> crate::service::SegmentWorker {
        self.modeling.segment_worker()
    }

    /// Reads clean-log positions from `governance` (reads that wait for their writes) and
    /// resolves replayed dead letters through `identity`.
    pub fn with_upstreams(mut self, governance: Governance, identity: Identity) -> Self {
        self.modeling = self.modeling.with_upstreams(governance, identity);
        self
    }
}

fn status(err: ModelingError) -> Status {
    to_status(&err)
}

/// The position a read waits for, and what is left of the caller's deadline (`grpc-timeout`).
fn freshness<T>(request: &Request<T>, min_raw_sequence: i64) -> Result<Freshness, Status> {
    Ok(Freshness {
        min_raw: domain::min_raw_sequence(min_raw_sequence).map_err(status)?,
        deadline: request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| touchline_telemetry::metrics::parse_grpc_timeout(v.as_bytes())),
    })
}

#[tonic::async_trait]
impl ModelingService for ModelingApi {
    #[tracing::instrument(name = "modeling.count_events", skip_all, fields(service = "modeling"))]
    async fn count_events(
        &self,
        request: Request<pb::CountEventsRequest>,
    ) -> Result<Response<pb::CountEventsResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let fresh = freshness(&request, request.get_ref().min_raw_sequence)?;
        let counts = self
            .modeling
            .count_events(&tenant, fresh)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::counts(counts)))
    }

    #[tracing::instrument(name = "modeling.list_events", skip_all, fields(service = "modeling"))]
    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let fresh = freshness(&request, request.get_ref().min_raw_sequence)?;
        let req = request.into_inner();
        let limit = domain::page_size(req.page_size).map_err(status)?;
        let after = domain::decode_token(&req.page_token).map_err(status)?;
        let page = self
            .modeling
            .list_events(&tenant, after, limit, fresh)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::events(page, limit)))
    }

    #[tracing::instrument(
        name = "modeling.list_dead_letters",
        skip_all,
        fields(service = "modeling")
    )]
    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let req = request.into_inner();
        let limit = domain::page_size(req.page_size).map_err(status)?;
        let after = domain::decode_token(&req.page_token).map_err(status)?;
        let letters = self
            .modeling
            .list_dead_letters(&tenant, after, limit)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::dead_letters(letters, limit)))
    }

    #[tracing::instrument(
        name = "modeling.replay_dead_letters",
        skip_all,
        fields(service = "modeling")
    )]
    async fn replay_dead_letters(
        &self,
        request: Request<pb::ReplayDeadLettersRequest>,
    ) -> Result<Response<pb::ReplayDeadLettersResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let results = self
            .modeling
            .replay_dead_letters(&tenant, &request.get_ref().sequences)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::replay(results)))
    }

    #[tracing::instrument(name = "modeling.run_funnel", skip_all, fields(service = "modeling"))]
    async fn run_funnel(
        &self,
        request: Request<pb::RunFunnelRequest>,
    ) -> Result<Response<pb::RunFunnelResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let query = journeys::funnel_query(request.get_ref().funnel.as_ref()).ok_or_else(|| {
            status(ModelingError::invalid(
                "funnel",
                "REQUIRED",
                "a funnel is required",
            ))
        })?;
        let figures = self
            .modeling
            .run_funnel(&tenant, &query)
            .await
            .map_err(status)?;
        Ok(Response::new(journeys::funnel_reply(figures)))
    }

    #[tracing::instrument(
        name = "modeling.run_retention",
        skip_all,
        fields(service = "modeling")
    )]
    async fn run_retention(
        &self,
        request: Request<pb::RunRetentionRequest>,
    ) -> Result<Response<pb::RunRetentionResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let query = cohorts::retention_query(request.get_ref());
        let figures = self
            .modeling
            .run_retention(&tenant, &query)
            .await
            .map_err(status)?;
        Ok(Response::new(cohorts::retention_reply(figures)))
    }

    #[tracing::instrument(
        name = "modeling.run_lifecycle",
        skip_all,
        fields(service = "modeling")
    )]
    async fn run_lifecycle(
        &self,
        request: Request<pb::RunLifecycleRequest>,
    ) -> Result<Response<pb::RunLifecycleResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let query = cohorts::lifecycle_query(request.get_ref());
        let figures = self
            .modeling
            .run_lifecycle(&tenant, &query)
            .await
            .map_err(status)?;
        Ok(Response::new(cohorts::lifecycle_reply(figures)))
    }

    #[tracing::instrument(
        name = "modeling.get_person_lifecycle",
        skip_all,
        fields(service = "modeling")
    )]
    async fn get_person_lifecycle(
        &self,
        request: Request<pb::GetPersonLifecycleRequest>,
    ) -> Result<Response<pb::GetPersonLifecycleResponse>, Status> {
        let (parent, person) = cohorts::person_name(&request.get_ref().name).ok_or_else(|| {
            status(ModelingError::invalid(
                "name",
                "INVALID_NAME",
                "name is tenants/{tenant}/persons/{person id}",
            ))
        })?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let query = cohorts::person_query(request.get_ref(), person);
        let figures = self
            .modeling
            .person_lifecycle(&tenant, query)
            .await
            .map_err(status)?;
        Ok(Response::new(cohorts::person_reply(figures)))
    }

    #[tracing::instrument(name = "modeling.run_paths", skip_all, fields(service = "modeling"))]
    async fn run_paths(
        &self,
        request: Request<pb::RunPathsRequest>,
    ) -> Result<Response<pb::RunPathsResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let query = paths::paths_query(request.get_ref());
        let figures = self
            .modeling
            .run_paths(&tenant, &query)
            .await
            .map_err(status)?;
        Ok(Response::new(paths::paths_reply(figures)))
    }

    #[tracing::instrument(
        name = "modeling.list_funnel_drop_offs",
        skip_all,
        fields(service = "modeling")
    )]
    async fn list_funnel_drop_offs(
        &self,
        request: Request<pb::ListFunnelDropOffsRequest>,
    ) -> Result<Response<pb::ListFunnelDropOffsResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let req = request.get_ref();
        let funnel = journeys::funnel_query(req.funnel.as_ref()).ok_or_else(|| {
            status(ModelingError::invalid(
                "funnel",
                "REQUIRED",
                "a funnel is required",
            ))
        })?;
        let query = DropOffQuery {
            funnel,
            step: req.step,
            reached: req.selection == pb::FunnelPersonSelection::Reached as i32,
            breakdown_value: req.breakdown_value.clone(),
            page_size: domain::page_size(req.page_size).map_err(status)?,
            page_token: req.page_token.clone(),
        };
        let page = self
            .modeling
            .list_funnel_drop_offs(&tenant, &query)
            .await
            .map_err(status)?;
        Ok(Response::new(journeys::drop_offs_reply(&tenant, page)))
    }

    #[tracing::instrument(
        name = "modeling.run_attribution",
        skip_all,
        fields(service = "modeling")
    )]
    async fn run_attribution(
        &self,
        request: Request<pb::RunAttributionRequest>,
    ) -> Result<Response<pb::RunAttributionResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let query = attribution::attribution_query(request.get_ref());
        let figures = self
            .modeling
            .run_attribution(&tenant, &query)
            .await
            .map_err(status)?;
        Ok(Response::new(attribution::attribution_reply(figures)))
    }

    #[tracing::instrument(
        name = "modeling.run_attribution_on_paths",
        skip_all,
        fields(service = "modeling")
    )]
    async fn run_attribution_on_paths(
        &self,
        request: Request<pb::RunAttributionOnPathsRequest>,
    ) -> Result<Response<pb::RunAttributionOnPathsResponse>, Status> {
        touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let query = attribution::on_paths_query(request.into_inner());
        let figures = self
            .modeling
            .run_attribution_on_paths(query)
            .await
            .map_err(status)?;
        Ok(Response::new(attribution::on_paths_reply(figures)))
    }

    #[tracing::instrument(
        name = "modeling.get_model_settings",
        skip_all,
        fields(service = "modeling")
    )]
    async fn get_model_settings(
        &self,
        request: Request<pb::GetModelSettingsRequest>,
    ) -> Result<Response<pb::GetModelSettingsResponse>, Status> {
        let parent = churn::settings_parent(&request.get_ref().name).ok_or_else(|| {
            status(ModelingError::invalid(
                "name",
                "INVALID_NAME",
                "name is tenants/{tenant}/modelSettings",
            ))
        })?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let (settings, table) = self
            .modeling
            .model_settings_with_outputs(&tenant)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetModelSettingsResponse {
            model_settings: Some(churn::settings_reply(&tenant, &settings, Some(&table))),
        }))
    }

    #[tracing::instrument(
        name = "modeling.update_model_settings",
        skip_all,
        fields(service = "modeling")
    )]
    async fn update_model_settings(
        &self,
        request: Request<pb::UpdateModelSettingsRequest>,
    ) -> Result<Response<pb::UpdateModelSettingsResponse>, Status> {
        let name = request
            .get_ref()
            .model_settings
            .as_ref()
            .map(|s| s.name.as_str())
            .unwrap_or_default();
        let parent = churn::settings_parent(name).ok_or_else(|| {
            status(ModelingError::invalid(
                "model_settings.name",
                "INVALID_NAME",
                "name is tenants/{tenant}/modelSettings",
            ))
        })?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let update = churn::update(request.get_ref());
        let settings = self
            .modeling
            .update_model_settings(&tenant, &update)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::UpdateModelSettingsResponse {
            model_settings: Some(churn::settings_reply(&tenant, &settings, None)),
        }))
    }

    #[tracing::instrument(name = "modeling.run_rfm", skip_all, fields(service = "modeling"))]
    async fn run_rfm(
        &self,
        request: Request<pb::RunRfmRequest>,
    ) -> Result<Response<pb::RunRfmResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let query = churn::rfm_query(request.get_ref());
        let page = self
            .modeling
            .run_rfm(&tenant, &query)
            .await
            .map_err(status)?;
        Ok(Response::new(churn::rfm_reply(&tenant, page)))
    }

    #[tracing::instrument(
        name = "modeling.get_churn_scores",
        skip_all,
        fields(service = "modeling")
    )]
    async fn get_churn_scores(
        &self,
        request: Request<pb::GetChurnScoresRequest>,
    ) -> Result<Response<pb::GetChurnScoresResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let tenant = principal.tenant_for(&request.get_ref().parent)?;
        for name in &request.get_ref().persons {
            if let Some((parent, _)) = cohorts::person_name(name) {
                principal.tenant_for(parent)?;
            }
        }
        let scores = self
            .modeling
            .churn_scores(&tenant, &request.get_ref().persons)
            .await
            .map_err(status)?;
        Ok(Response::new(churn::scores_reply(&tenant, scores)))
    }

    #[tracing::instrument(
        name = "modeling.list_churn_scores",
        skip_all,
        fields(service = "modeling")
    )]
    async fn list_churn_scores(
        &self,
        request: Request<pb::ListChurnScoresRequest>,
    ) -> Result<Response<pb::ListChurnScoresResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let query = churn::list_query(request.get_ref());
        let page = self
            .modeling
            .list_churn_scores(&tenant, &query)
            .await
            .map_err(status)?;
        Ok(Response::new(churn::list_reply(&tenant, page)))
    }

    #[tracing::instrument(
        name = "modeling.create_segment",
        skip_all,
        fields(service = "modeling")
    )]
    async fn create_segment(
        &self,
        request: Request<pb::CreateSegmentRequest>,
    ) -> Result<Response<pb::CreateSegmentResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let req = request.into_inner();
        let asked = NewSegment {
            id: req.segment_id.clone(),
            input: segments::input(&tenant, req.segment.as_ref()),
            request_id: req.request_id.clone(),
            validate_only: req.validate_only,
        };
        let reply = self
            .modeling
            .create_segment(&tenant, asked)
            .await
            .map_err(status)?;
        Ok(Response::new(segments::created(&tenant, reply)))
    }

    #[tracing::instrument(name = "modeling.get_segment", skip_all, fields(service = "modeling"))]
    async fn get_segment(
        &self,
        request: Request<pb::GetSegmentRequest>,
    ) -> Result<Response<pb::GetSegmentResponse>, Status> {
        let (parent, id) = named_segment(&request.get_ref().name, "name")?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let row = self
            .modeling
            .get_segment(&tenant, id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetSegmentResponse {
            segment: Some(segments::segment(&tenant, &row)),
        }))
    }

    #[tracing::instrument(
        name = "modeling.list_segments",
        skip_all,
        fields(service = "modeling")
    )]
    async fn list_segments(
        &self,
        request: Request<pb::ListSegmentsRequest>,
    ) -> Result<Response<pb::ListSegmentsResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let req = request.get_ref();
        let size = segments::size(req.page_size, 50, 500).map_err(status)?;
        let after = segments::segments_after(&req.page_token).map_err(status)?;
        let (rows, more) = self
            .modeling
            .list_segments(&tenant, &after, size)
            .await
            .map_err(status)?;
        let next_page_token = match rows.last() {
            Some(last) if more => segments::segments_token(&last.id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListSegmentsResponse {
            segments: rows.iter().map(|r| segments::segment(&tenant, r)).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(
        name = "modeling.update_segment",
        skip_all,
        fields(service = "modeling")
    )]
    async fn update_segment(
        &self,
        request: Request<pb::UpdateSegmentRequest>,
    ) -> Result<Response<pb::UpdateSegmentResponse>, Status> {
        let name = request
            .get_ref()
            .segment
            .as_ref()
            .map(|s| s.name.as_str())
            .unwrap_or_default();
        let (parent, id) = named_segment(name, "segment.name")?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let req = request.get_ref();
        let update = SegmentUpdate {
            id: id.to_owned(),
            input: segments::input(&tenant, req.segment.as_ref()),
            etag: req
                .segment
                .as_ref()
                .map(|s| s.etag.clone())
                .unwrap_or_default(),
            paths: req
                .update_mask
                .as_ref()
                .map(|m| m.paths.clone())
                .unwrap_or_default(),
            request_id: req.request_id.clone(),
            validate_only: req.validate_only,
        };
        let reply = self
            .modeling
            .update_segment(&tenant, update)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::UpdateSegmentResponse {
            segment: Some(segments::segment(&tenant, &reply.segment)),
            preview: segments::preview(&tenant, reply.preview),
        }))
    }

    #[tracing::instrument(
        name = "modeling.delete_segment",
        skip_all,
        fields(service = "modeling")
    )]
    async fn delete_segment(
        &self,
        request: Request<pb::DeleteSegmentRequest>,
    ) -> Result<Response<pb::DeleteSegmentResponse>, Status> {
        let (parent, id) = named_segment(&request.get_ref().name, "name")?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let req = request.get_ref();
        self.modeling
            .delete_segment(&tenant, id, &req.etag, req.allow_missing, &req.request_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeleteSegmentResponse {}))
    }

    #[tracing::instrument(
        name = "modeling.list_segment_members",
        skip_all,
        fields(service = "modeling")
    )]
    async fn list_segment_members(
        &self,
        request: Request<pb::ListSegmentMembersRequest>,
    ) -> Result<Response<pb::ListSegmentMembersResponse>, Status> {
        let (parent, id) = named_segment(&request.get_ref().parent, "parent")?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let req = request.get_ref();
        check_export_types(&req.identifier_types, "identifier_types").map_err(status)?;
        let size = segments::size(req.page_size, 500, 5_000).map_err(status)?;
        let after = segments::members_after(&req.page_token).map_err(status)?;
        let page = self
            .modeling
            .list_segment_members(
                &tenant,
                id,
                after.map(|(sequence, _)| sequence),
                after.map_or(uuid::Uuid::nil(), |(_, person)| person),
                size,
            )
            .await
            .map_err(status)?;
        let persons: Vec<uuid::Uuid> = page.members.iter().map(|m| m.person_id).collect();
        let exported = self
            .modeling
            .exported_identifiers(&tenant, &persons, &req.identifier_types)
            .await
            .map_err(status)?;
        Ok(Response::new(segments::members_reply(
            &tenant, page, &exported,
        )))
    }

    #[tracing::instrument(
        name = "modeling.list_segment_changes",
        skip_all,
        fields(service = "modeling")
    )]
    async fn list_segment_changes(
        &self,
        request: Request<pb::ListSegmentChangesRequest>,
    ) -> Result<Response<pb::ListSegmentChangesResponse>, Status> {
        let (parent, id) = named_segment(&request.get_ref().parent, "parent")?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let req = request.get_ref();
        check_export_types(&req.identifier_types, "identifier_types").map_err(status)?;
        let size = segments::size(req.page_size, 500, 5_000).map_err(status)?;
        let after = segments::changes_after(&req.page_token, req.after_sequence).map_err(status)?;
        let segment = (id != "-").then_some(id);
        let page = self
            .modeling
            .list_segment_changes(&tenant, segment, after, size)
            .await
            .map_err(status)?;
        let persons: Vec<uuid::Uuid> = page.changes.iter().map(|c| c.person_id).collect();
        let exported = self
            .modeling
            .exported_identifiers(&tenant, &persons, &req.identifier_types)
            .await
            .map_err(status)?;
        Ok(Response::new(segments::changes_reply(
            &tenant, after, page, &exported,
        )))
    }

    #[tracing::instrument(
        name = "modeling.stream_segment_changes",
        skip_all,
        fields(service = "modeling")
    )]
    async fn stream_segment_changes(
        &self,
        request: Request<pb::StreamSegmentChangesRequest>,
    ) -> Result<Response<ChangeStream>, Status> {
        use futures::StreamExt as _;
        let (parent, id) = named_segment(&request.get_ref().parent, "parent")?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let req = request.get_ref();
        check_export_types(&req.identifier_types, "identifier_types").map_err(status)?;
        let types = req.identifier_types.clone();
        let batch = segments::size(req.max_batch_size, 500, 5_000).map_err(status)?;
        let after = segments::changes_after("", req.after_sequence).map_err(status)?;
        let segment = (id != "-").then(|| id.to_owned());
        // Refuse an unknown segment or an expired cursor before the stream starts.
        self.modeling
            .list_segment_changes(&tenant, segment.as_deref(), after, 1)
            .await
            .map_err(status)?;
        let named = tenant.clone();
        let modeling = self.modeling.clone();
        let stream = self
            .modeling
            .follow_segment_changes(tenant, segment, after, batch)
            .then(move |page| {
                let (modeling, named, types) = (modeling.clone(), named.clone(), types.clone());
                async move {
                    let page = page.map_err(status)?;
                    let persons: Vec<uuid::Uuid> =
                        page.changes.iter().map(|c| c.person_id).collect();
                    let exported = modeling
                        .exported_identifiers(&named, &persons, &types)
                        .await
                        .map_err(status)?;
                    Ok(pb::StreamSegmentChangesResponse {
                        changes: page
                            .changes
                            .iter()
                            .map(|c| segments::change(&named, c, &exported))
                            .collect(),
                        head_sequence: page.head_sequence,
                    })
                }
            });
        Ok(Response::new(Box::pin(stream)))
    }

    #[tracing::instrument(
        name = "modeling.create_webhook_destination",
        skip_all,
        fields(service = "modeling")
    )]
    async fn create_webhook_destination(
        &self,
        request: Request<pb::CreateWebhookDestinationRequest>,
    ) -> Result<Response<pb::CreateWebhookDestinationResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let new = activation::new_destination(&tenant, request.get_ref());
        let (view, secret) = self
            .modeling
            .create_webhook_destination(&tenant, new)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateWebhookDestinationResponse {
            webhook_destination: Some(activation::destination(&view)),
            signing_secret: secret.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(
        name = "modeling.get_webhook_destination",
        skip_all,
        fields(service = "modeling")
    )]
    async fn get_webhook_destination(
        &self,
        request: Request<pb::GetWebhookDestinationRequest>,
    ) -> Result<Response<pb::GetWebhookDestinationResponse>, Status> {
        let (parent, id) = named_destination(&request.get_ref().name, "name")?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let view = self
            .modeling
            .webhook_destination(&tenant, id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetWebhookDestinationResponse {
            webhook_destination: Some(activation::destination(&view)),
        }))
    }

    #[tracing::instrument(
        name = "modeling.list_webhook_destinations",
        skip_all,
        fields(service = "modeling")
    )]
    async fn list_webhook_destinations(
        &self,
        request: Request<pb::ListWebhookDestinationsRequest>,
    ) -> Result<Response<pb::ListWebhookDestinationsResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let req = request.get_ref();
        let size = segments::size(req.page_size, 50, 500).map_err(status)?;
        let after = segments::segments_after(&req.page_token).map_err(status)?;
        let (rows, more) = self
            .modeling
            .list_webhook_destinations(&tenant, &after, size)
            .await
            .map_err(status)?;
        let next_page_token = match rows.last() {
            Some(last) if more => segments::segments_token(&last.destination.destination_id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListWebhookDestinationsResponse {
            webhook_destinations: rows.iter().map(activation::destination).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(
        name = "modeling.delete_webhook_destination",
        skip_all,
        fields(service = "modeling")
    )]
    async fn delete_webhook_destination(
        &self,
        request: Request<pb::DeleteWebhookDestinationRequest>,
    ) -> Result<Response<pb::DeleteWebhookDestinationResponse>, Status> {
        let (parent, id) = named_destination(&request.get_ref().name, "name")?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        self.modeling
            .delete_webhook_destination(&tenant, id, request.get_ref().allow_missing)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeleteWebhookDestinationResponse {}))
    }

    #[tracing::instrument(
        name = "modeling.resume_webhook_destination",
        skip_all,
        fields(service = "modeling")
    )]
    async fn resume_webhook_destination(
        &self,
        request: Request<pb::ResumeWebhookDestinationRequest>,
    ) -> Result<Response<pb::ResumeWebhookDestinationResponse>, Status> {
        let (parent, id) = named_destination(&request.get_ref().name, "name")?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let replay = activation::replay(request.get_ref()).map_err(status)?;
        let view = self
            .modeling
            .resume_webhook_destination(&tenant, id, replay)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ResumeWebhookDestinationResponse {
            webhook_destination: Some(activation::destination(&view)),
        }))
    }

    #[tracing::instrument(
        name = "modeling.test_webhook_destination",
        skip_all,
        fields(service = "modeling")
    )]
    async fn test_webhook_destination(
        &self,
        request: Request<pb::TestWebhookDestinationRequest>,
    ) -> Result<Response<pb::TestWebhookDestinationResponse>, Status> {
        let (parent, id) = named_destination(&request.get_ref().name, "name")?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let sent = self
            .modeling
            .test_webhook_destination(&tenant, id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::TestWebhookDestinationResponse {
            webhook_id: sent.webhook_id,
            delivered: sent.delivered,
            http_status: sent.http_status,
            error: sent.error,
            duration_ms: sent.duration_ms,
        }))
    }

    #[tracing::instrument(
        name = "modeling.rotate_webhook_secret",
        skip_all,
        fields(service = "modeling")
    )]
    async fn rotate_webhook_secret(
        &self,
        request: Request<pb::RotateWebhookSecretRequest>,
    ) -> Result<Response<pb::RotateWebhookSecretResponse>, Status> {
        let (parent, id) = named_destination(&request.get_ref().name, "name")?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let req = request.get_ref();
        let (view, secret, until) = self
            .modeling
            .rotate_webhook_secret(
                &tenant,
                id,
                &req.signing_secret,
                req.overlap.map(|d| d.seconds),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RotateWebhookSecretResponse {
            webhook_destination: Some(activation::destination(&view)),
            signing_secret: secret.unwrap_or_default(),
            previous_secret_expire_time: Some(journeys::timestamp_ms(until.timestamp_millis())),
        }))
    }

    #[tracing::instrument(
        name = "modeling.create_trigger_definition",
        skip_all,
        fields(service = "modeling")
    )]
    async fn create_trigger_definition(
        &self,
        request: Request<pb::CreateTriggerDefinitionRequest>,
    ) -> Result<Response<pb::CreateTriggerDefinitionResponse>, Status> {
        definitions::create(&self.modeling, request).await
    }

    #[tracing::instrument(
        name = "modeling.get_trigger_definition",
        skip_all,
        fields(service = "modeling")
    )]
    async fn get_trigger_definition(
        &self,
        request: Request<pb::GetTriggerDefinitionRequest>,
    ) -> Result<Response<pb::GetTriggerDefinitionResponse>, Status> {
        definitions::get(&self.modeling, request).await
    }

    #[tracing::instrument(
        name = "modeling.list_trigger_definitions",
        skip_all,
        fields(service = "modeling")
    )]
    async fn list_trigger_definitions(
        &self,
        request: Request<pb::ListTriggerDefinitionsRequest>,
    ) -> Result<Response<pb::ListTriggerDefinitionsResponse>, Status> {
        definitions::list(&self.modeling, request).await
    }

    #[tracing::instrument(
        name = "modeling.update_trigger_definition",
        skip_all,
        fields(service = "modeling")
    )]
    async fn update_trigger_definition(
        &self,
        request: Request<pb::UpdateTriggerDefinitionRequest>,
    ) -> Result<Response<pb::UpdateTriggerDefinitionResponse>, Status> {
        definitions::update(&self.modeling, request).await
    }

    #[tracing::instrument(
        name = "modeling.delete_trigger_definition",
        skip_all,
        fields(service = "modeling")
    )]
    async fn delete_trigger_definition(
        &self,
        request: Request<pb::DeleteTriggerDefinitionRequest>,
    ) -> Result<Response<pb::DeleteTriggerDefinitionResponse>, Status> {
        definitions::delete(&self.modeling, request).await
    }

    #[tracing::instrument(
        name = "modeling.list_webhook_deliveries",
        skip_all,
        fields(service = "modeling")
    )]
    async fn list_webhook_deliveries(
        &self,
        request: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<pb::ListWebhookDeliveriesResponse>, Status> {
        let (parent, id) = named_destination(&request.get_ref().parent, "parent")?;
        let tenant = touchline_auth::principal(&request)?.tenant_for(parent)?;
        let req = request.get_ref();
        let size = segments::size(req.page_size, 100, 1_000).map_err(status)?;
        let before = activation::ledger_before(&req.page_token).map_err(status)?;
        let (rows, more) = self
            .modeling
            .list_webhook_deliveries(&tenant, id, before, size)
            .await
            .map_err(status)?;
        let next_page_token = match rows.last() {
            Some((attempt_id, _)) if more => domain::encode_token(*attempt_id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListWebhookDeliveriesResponse {
            attempts: rows.iter().map(|(_, a)| activation::attempt(a)).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(
        name = "modeling.subscribe_triggers",
        skip_all,
        fields(service = "modeling")
    )]
    async fn subscribe_triggers(
        &self,
        request: Request<pb::SubscribeTriggersRequest>,
    ) -> Result<Response<TriggerStream>, Status> {
        use futures::StreamExt as _;
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let req = request.into_inner();
        check_export_types(&req.identifier_types, "identifier_types").map_err(status)?;
        let types = req.identifier_types.clone();
        let batch = segments::size(req.max_batch_size, 100, 1_000).map_err(status)?;
        let filter = activation::trigger_filter(
            &tenant,
            &req.types,
            &req.segments,
            &req.trigger_definitions,
            req.after_sequence,
        )
        .map_err(status)?;
        let after = (!req.start_at_head).then_some(req.after_sequence);
        let named = tenant.clone();
        let mut triggers = self
            .modeling
            .follow_triggers(tenant, filter, after, batch)
            .boxed();
        // An expired cursor fails the call itself rather than the first message.
        let first = triggers.next().await.transpose().map_err(status)?;
        let head = futures::stream::iter(first.map(Ok));
        let modeling = self.modeling.clone();
        let stream = head.chain(triggers).then(move |batch| {
            let (modeling, named, types) = (modeling.clone(), named.clone(), types.clone());
            async move {
                let (list, head_sequence) = batch.map_err(status)?;
                let persons: Vec<uuid::Uuid> = list.iter().map(|t| t.person_id).collect();
                let exported = modeling
                    .exported_identifiers(&named, &persons, &types)
                    .await
                    .map_err(status)?;
                Ok(pb::SubscribeTriggersResponse {
                    triggers: list
                        .iter()
                        .map(|t| pb::Trigger {
                            identifiers: exported.get(&t.person_id).cloned().unwrap_or_default(),
                            ..activation::trigger(&named, t)
                        })
                        .collect(),
                    head_sequence,
                })
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// The tenant and id of a segment name, or INVALID_ARGUMENT naming `field`.
fn named_segment<'a>(name: &'a str, field: &str) -> Result<(&'a str, &'a str), Status> {
    segments::segment_name(name).ok_or_else(|| {
        status(ModelingError::invalid(
            field,
            "INVALID_NAME",
            "a segment is named tenants/{tenant}/segments/{segment}",
        ))
    })
}

/// The stream StreamSegmentChanges answers with.
type ChangeStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<pb::StreamSegmentChangesResponse, Status>> + Send>,
>;

/// The stream SubscribeTriggers answers with.
type TriggerStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<pb::SubscribeTriggersResponse, Status>> + Send>,
>;

/// The tenant and id of a webhook destination name, or INVALID_ARGUMENT naming `field`.
fn named_destination<'a>(name: &'a str, field: &str) -> Result<(&'a str, &'a str), Status> {
    activation::destination_name(name).ok_or_else(|| {
        status(ModelingError::invalid(
            field,
            "INVALID_NAME",
            "a destination is named tenants/{tenant}/webhookDestinations/{id}",
        ))
    })
}
