//! The gRPC adapter: authorise, convert, call the service layer, convert back.

use sqlx::PgPool;
use tonic::{Request, Response, Status};
use touchline_error::to_status;
use touchline_proto::common::v1::Identifier;
use touchline_proto::identity::v1 as pb;
use touchline_proto::identity::v1::identity_service_server::IdentityService;

use crate::cache::IdentityCache;
use crate::domain::{self, RawIdentifier, RawItem};
use crate::error::IdentityError;
use crate::service;

/// The identity service's gRPC face.
#[derive(Debug, Clone)]
pub struct IdentityApi {
    pool: PgPool,
    cache: Option<IdentityCache>,
}

impl IdentityApi {
    /// A service over `pool` (migrated with [`crate::MIGRATOR`] in schema
    /// [`crate::SCHEMA`]), with Redis in front when `cache` is given.
    pub fn new(pool: PgPool, cache: Option<IdentityCache>) -> Self {
        Self { pool, cache }
    }
}

#[tonic::async_trait]
impl IdentityService for IdentityApi {
    #[tracing::instrument(
        name = "identity.batch_resolve",
        skip_all,
        fields(service = "identity", tenant, items, identifiers, cache_hits)
    )]
    async fn batch_resolve(
        &self,
        request: Request<pb::BatchResolveRequest>,
    ) -> Result<Response<pb::BatchResolveResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let pb::BatchResolveRequest { parent, items } = request.into_inner();
        let tenant = principal.tenant_for(&parent)?;
        let span = tracing::Span::current();
        span.record("tenant", tenant.as_str());
        span.record("items", items.len());
        span.record(
            "identifiers",
            items
                .iter()
                .map(|item| item.identifiers.len())
                .sum::<usize>(),
        );

        let raw: Vec<RawItem<'_>> = items.iter().map(raw_item).collect();
        let valid = domain::validate(&raw)
            .map_err(|rejection| to_status(&IdentityError::from(rejection)))?;
        let resolutions = service::batch_resolve(&self.pool, self.cache.as_ref(), &tenant, &valid)
            .await
            .map_err(|err| to_status(&err))?;
        Ok(Response::new(pb::BatchResolveResponse {
            results: resolutions
                .into_iter()
                .map(|resolution| pb::ResolveResult {
                    person_id: resolution.person_id.to_string(),
                    created: resolution.created,
                    // No rules yet, so nothing is ever refused.
                    refused: false,
                })
                .collect(),
        }))
    }
}

fn raw_item(item: &pb::ResolveItem) -> RawItem<'_> {
    let pb::ResolveItem {
        identifiers,
        observed_at,
        evidence_message_id,
    } = item;
    RawItem {
        identifiers: identifiers.iter().map(raw_identifier).collect(),
        observed_at: observed_at.as_ref().map(|t| (t.seconds, t.nanos)),
        evidence_message_id,
    }
}

fn raw_identifier(identifier: &Identifier) -> RawIdentifier<'_> {
    let Identifier {
        r#type,
        value,
        scope,
    } = identifier;
    RawIdentifier {
        id_type: r#type,
        scope,
        value,
    }
}
