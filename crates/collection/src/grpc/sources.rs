//! CreateSource, GetSource, ListSources, UpdateSource.

use tonic::{Request, Response, Status};
use touchline_error::to_status;
use touchline_proto::collection::v1 as pb;

use super::{CollectionApi, tenant_and_id};
use crate::error::CollectionError;
use crate::sources::{self, Update};

fn status(err: CollectionError) -> Status {
    to_status(&err)
}

pub(super) async fn create_source(
    api: &CollectionApi,
    request: Request<pb::CreateSourceRequest>,
) -> Result<Response<pb::CreateSourceResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let pb::CreateSourceRequest {
        parent,
        source_id,
        source,
        request_id,
        validate_only,
    } = request.into_inner();
    let tenant = principal.tenant_for(&parent)?;
    let source =
        source.ok_or_else(|| status(CollectionError::invalid("source", "REQUIRED", "required")))?;
    let source = sources::create(
        &api.pool,
        &tenant,
        &source_id,
        source,
        &request_id,
        validate_only,
    )
    .await
    .map_err(status)?;
    Ok(Response::new(pb::CreateSourceResponse {
        source: Some(source),
    }))
}

pub(super) async fn get_source(
    api: &CollectionApi,
    request: Request<pb::GetSourceRequest>,
) -> Result<Response<pb::GetSourceResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let pb::GetSourceRequest { name, revision } = request.into_inner();
    let (tenant, id) = tenant_and_id(&principal, &name, "sources", "name")?;
    let source = sources::get(&api.pool, &tenant, &id, revision)
        .await
        .map_err(status)?;
    Ok(Response::new(pb::GetSourceResponse {
        source: Some(source),
    }))
}

pub(super) async fn list_sources(
    api: &CollectionApi,
    request: Request<pb::ListSourcesRequest>,
) -> Result<Response<pb::ListSourcesResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let pb::ListSourcesRequest {
        parent,
        page_size,
        page_token,
        kind,
        show_disabled,
    } = request.into_inner();
    let tenant = principal.tenant_for(&parent)?;
    let (sources, next_page_token) = sources::list(
        &api.pool,
        &tenant,
        page_size,
        &page_token,
        kind,
        show_disabled,
    )
    .await
    .map_err(status)?;
    Ok(Response::new(pb::ListSourcesResponse {
        sources,
        next_page_token,
    }))
}

pub(super) async fn update_source(
    api: &CollectionApi,
    request: Request<pb::UpdateSourceRequest>,
) -> Result<Response<pb::UpdateSourceResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let pb::UpdateSourceRequest {
        source,
        update_mask,
        validate_only,
        request_id,
    } = request.into_inner();
    let patch =
        source.ok_or_else(|| status(CollectionError::invalid("source", "REQUIRED", "required")))?;
    let (tenant, id) = tenant_and_id(&principal, &patch.name, "sources", "source.name")?;
    let paths = update_mask.map(|mask| mask.paths).unwrap_or_default();
    let source = sources::update(
        &api.pool,
        &tenant,
        Update {
            source_id: &id,
            patch,
            paths,
            validate_only,
            request_id: &request_id,
        },
    )
    .await
    .map_err(status)?;
    Ok(Response::new(pb::UpdateSourceResponse {
        source: Some(source),
    }))
}
