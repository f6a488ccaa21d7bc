//! The gRPC adapter: authorise, convert, call the service layer, convert back.
//!
//! `mod.rs` holds resolution, links, profiles and the change feed;
//! `admin` splits, erasure, consent, rules, audit and reviews; `reassign`
//! numbers the carrier gave out again; `convert` the conversions they
//! share.

mod admin;
mod convert;
mod reassign;

use std::pin::Pin;

use futures::Stream;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use touchline_db::LogNotifier;
use touchline_error::to_status;
use touchline_pipeline::LogError;
use touchline_pipeline::tail::{PartitionCursors, PartitionedLog, spawn_tail};
use touchline_proto::identity::v1 as pb;
use touchline_proto::identity::v1::identity_service_server::IdentityService;
use touchline_runtime::Shutdown;

use crate::cache::IdentityCache;
use crate::domain::{self, RawItem};
use crate::error::IdentityError;
use crate::graph::Options;
use crate::service::{Identity, OutboxRelay};
use crate::store::log::{CHANGES_CHANNEL, StoredChange};
use convert::{actor, key_of, merge_name, person_name, raw_item, refusal_to_pb, review_name};

/// The identity service's gRPC face.
#[derive(Debug, Clone)]
pub struct IdentityApi {
    identity: Identity,
    notifier: Option<LogNotifier>,
    shutdown: Shutdown,
}

impl IdentityApi {
    /// A service over `pool` (migrated with [`crate::MIGRATOR`] in schema
    /// [`crate::SCHEMA`]), with Redis in front when `cache` is given.
    /// Change-feed tailers poll slowly until [`IdentityApi::with_notifier`]
    /// wires prompt wake-ups.
    pub fn new(pool: PgPool, cache: Option<IdentityCache>) -> Self {
        Self {
            identity: Identity::new(pool, cache),
            notifier: None,
            shutdown: Shutdown::new(),
        }
    }

    /// Wakes change-feed tailers through `notifier` (which must listen on
    /// [`crate::CHANGES_CHANNEL`]) and ends their streams on `shutdown`.
    pub fn with_notifier(mut self, notifier: LogNotifier, shutdown: Shutdown) -> Self {
        self.notifier = Some(notifier);
        self.shutdown = shutdown;
        self
    }

    /// The service layer behind the adapter.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The outbox relay to run in the background (see [`OutboxRelay::run`]).
    pub fn relay(&self) -> OutboxRelay {
        self.identity.relay()
    }

    #[expect(
        clippy::too_many_lines,
        reason = "the adapter of LinkIdentifiers: authorise, convert every identifier with its field path, call, convert the outcome"
    )]
    async fn link(
        &self,
        request: Request<pb::LinkIdentifiersRequest>,
    ) -> Result<Response<pb::LinkIdentifiersResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let req = request.get_ref();
        let actor = actor(&request, &principal, &req.source, &req.reason);
        let pb::LinkIdentifiersRequest {
            parent,
            identifiers,
            reason,
            source: _,
            override_split,
            request_id: _,
        } = request.into_inner();
        let tenant = principal.tenant_for(&parent)?;
        let mut violations = Vec::new();
        if !(2..=50).contains(&identifiers.len()) {
            violations.push(touchline_error::FieldViolation::new(
                "identifiers",
                "COUNT_OUT_OF_RANGE",
                "between 2 and 50 identifiers",
            ));
        }
        if reason.trim().is_empty() || reason.chars().count() > 1_000 {
            violations.push(touchline_error::FieldViolation::new(
                "reason",
                "REQUIRED",
                "a reason of at most 1,000 characters is required",
            ));
        }
        let raw = [RawItem {
            identifiers: identifiers.iter().map(convert::raw_identifier).collect(),
            observed_at: None,
            evidence_message_id: "",
        }];
        let valid = match domain::validate(&raw) {
            Ok(valid) if violations.is_empty() => valid,
            Ok(_) => Vec::new(),
            Err(domain::Rejection::Invalid(more)) => {
                violations.extend(more);
                Vec::new()
            }
            Err(other) => return Err(to_status(&IdentityError::from(other))),
        };
        if !violations.is_empty() {
            return Err(to_status(&IdentityError::Rejected(
                domain::Rejection::Invalid(violations),
            )));
        }
        let options = Options {
            explicit: true,
            override_split,
            ..Options::default()
        };
        let resolved = self
            .identity
            .batch_resolve(&tenant, &valid, options, &actor)
            .await
            .map_err(|err| to_status(&err))?;
        let plan = &resolved.plan;
        let person = resolved.outcomes.first().and_then(|o| o.person_id);
        let merged: Vec<String> = plan
            .merges
            .iter()
            .flat_map(|m| m.absorbed.iter().map(ToString::to_string))
            .collect();
        let refusal = plan.refusals.first();
        let outcome = if refusal.is_some() {
            pb::LinkOutcome::Refused
        } else if !plan.merges.is_empty() {
            pb::LinkOutcome::Merged
        } else if !plan.new_links.is_empty() {
            pb::LinkOutcome::Linked
        } else {
            pb::LinkOutcome::AlreadyLinked
        };
        let decision = resolved.decisions.first().copied();
        Ok(Response::new(pb::LinkIdentifiersResponse {
            outcome: outcome as i32,
            person_id: match (refusal, person) {
                (None, Some(p)) => p.to_string(),
                _ => String::new(),
            },
            merged_person_ids: merged,
            refusal_reason: refusal.map_or(0, |r| refusal_to_pb(r.reason) as i32),
            review_item: resolved
                .review_items
                .iter()
                .flatten()
                .next()
                .map(|id| review_name(&tenant, *id))
                .unwrap_or_default(),
            merge: decision.map(|d| merge_name(&tenant, d)).unwrap_or_default(),
        }))
    }
}

type ChangeStream =
    Pin<Box<dyn Stream<Item = Result<pb::TailIdentityChangesResponse, Status>> + Send>>;

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
        let actor = actor(&request, &principal, "", "");
        let pb::BatchResolveRequest { parent, items } = request.into_inner();
        let tenant = principal.tenant_for(&parent)?;
        let span = tracing::Span::current();
        span.record("tenant", tenant.as_str());
        span.record("items", items.len());
        span.record(
            "identifiers",
            items.iter().map(|i| i.identifiers.len()).sum::<usize>(),
        );
        let raw: Vec<RawItem<'_>> = items.iter().map(raw_item).collect();
        let checked =
            domain::validate_each(&raw).map_err(|r| to_status(&IdentityError::from(r)))?;
        let valid: Vec<domain::ResolveItem> = checked
            .iter()
            .filter_map(|c| match c {
                domain::Checked::Valid(item) => Some(item.clone()),
                domain::Checked::NotPseudonymised(_) => None,
            })
            .collect();
        let resolved = self
            .identity
            .batch_resolve(&tenant, &valid, Options::default(), &actor)
            .await
            .map_err(|err| to_status(&err))?;
        Ok(Response::new(pb::BatchResolveResponse {
            results: convert::resolve_results(&checked, resolved.outcomes),
        }))
    }

    #[tracing::instrument(
        name = "identity.resolve",
        skip_all,
        fields(service = "identity", tenant)
    )]
    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let pb::ResolveRequest {
            parent,
            identifier,
            as_of,
        } = request.into_inner();
        let tenant = principal.tenant_for(&parent)?;
        tracing::Span::current().record("tenant", tenant.as_str());
        let key = key_of(identifier.as_ref(), "identifier")?;
        let (then, now) = match as_of {
            None => {
                let person = self
                    .identity
                    .resolve_one(&tenant, &key)
                    .await
                    .map_err(|err| to_status(&err))?;
                person.map(|p| (p, p))
            }
            Some(at) => {
                let at = convert::instant(&at, "as_of")?;
                self.identity
                    .resolve_as_of(&tenant, &key, at)
                    .await
                    .map_err(|err| to_status(&err))?
            }
        }
        .ok_or_else(|| to_status(&IdentityError::NotFound("identifier".to_owned())))?;
        Ok(Response::new(pb::ResolveResponse {
            person_id: now.to_string(),
            as_of_person_id: then.to_string(),
            person: person_name(&tenant, now),
            first_seen_time: None,
        }))
    }

    async fn batch_get_identifiers(
        &self,
        request: Request<pb::BatchGetIdentifiersRequest>,
    ) -> Result<Response<pb::BatchGetIdentifiersResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let req = request.get_ref();
        let tenant = principal.tenant_for(&req.parent)?;
        let persons = convert::identifier_request(req)?;
        let found = self
            .identity
            .identifiers_of(&tenant, &persons, &req.types)
            .await
            .map_err(|err| to_status(&err))?;
        Ok(Response::new(pb::BatchGetIdentifiersResponse {
            persons: found
                .into_iter()
                .map(|(person, keys)| pb::PersonIdentifiers {
                    person_id: person.to_string(),
                    identifiers: keys
                        .into_iter()
                        .map(|key| touchline_proto::common::v1::Identifier {
                            r#type: key.id_type,
                            value: key.value,
                            scope: key.scope,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let (tenant, person) = convert::parse_person(&principal, &request.get_ref().name)?;
        let stored = self
            .identity
            .profile(&tenant, person)
            .await
            .map_err(|err| to_status(&err))?;
        Ok(Response::new(pb::GetProfileResponse {
            person: Some(convert::person_to_pb(&tenant, stored)),
        }))
    }

    async fn record_reassigned_numbers(
        &self,
        request: Request<pb::RecordReassignedNumbersRequest>,
    ) -> Result<Response<pb::RecordReassignedNumbersResponse>, Status> {
        reassign::record_reassigned_numbers(self, request).await
    }

    async fn link_identifiers(
        &self,
        request: Request<pb::LinkIdentifiersRequest>,
    ) -> Result<Response<pb::LinkIdentifiersResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let tenant = principal.tenant_for(&request.get_ref().parent)?;
        let request_id = request.get_ref().request_id.clone();
        idempotent(
            self,
            &tenant,
            &request_id,
            "LinkIdentifiers",
            self.link(request),
        )
        .await
    }

    async fn split_person(
        &self,
        request: Request<pb::SplitPersonRequest>,
    ) -> Result<Response<pb::SplitPersonResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let (tenant, _) = convert::parse_person(&principal, &request.get_ref().name)?;
        let request_id = request.get_ref().request_id.clone();
        idempotent(
            self,
            &tenant,
            &request_id,
            "SplitPerson",
            admin::split_person(self, request),
        )
        .await
    }

    async fn forget_person(
        &self,
        request: Request<pb::ForgetPersonRequest>,
    ) -> Result<Response<pb::ForgetPersonResponse>, Status> {
        admin::forget_person(self, request).await
    }

    async fn get_erasure(
        &self,
        request: Request<pb::GetErasureRequest>,
    ) -> Result<Response<pb::GetErasureResponse>, Status> {
        admin::get_erasure(self, request).await
    }

    async fn confirm_erasure(
        &self,
        request: Request<pb::ConfirmErasureRequest>,
    ) -> Result<Response<pb::ConfirmErasureResponse>, Status> {
        admin::confirm_erasure(self, request).await
    }

    async fn set_consent(
        &self,
        request: Request<pb::SetConsentRequest>,
    ) -> Result<Response<pb::SetConsentResponse>, Status> {
        admin::set_consent(self, request).await
    }

    async fn get_identity_rules(
        &self,
        request: Request<pb::GetIdentityRulesRequest>,
    ) -> Result<Response<pb::GetIdentityRulesResponse>, Status> {
        admin::get_identity_rules(self, request).await
    }

    async fn update_identity_rules(
        &self,
        request: Request<pb::UpdateIdentityRulesRequest>,
    ) -> Result<Response<pb::UpdateIdentityRulesResponse>, Status> {
        let req = request.get_ref();
        let keyed = match &req.identity_rules {
            Some(rules) if !req.validate_only && !req.request_id.trim().is_empty() => {
                let principal = touchline_auth::principal(&request)?;
                Some((
                    admin::rules_tenant(&principal, &rules.name)?,
                    req.request_id.clone(),
                ))
            }
            _ => None,
        };
        match keyed {
            Some((tenant, request_id)) => {
                idempotent(
                    self,
                    &tenant,
                    &request_id,
                    "UpdateIdentityRules",
                    admin::update_identity_rules(self, request),
                )
                .await
            }
            None => admin::update_identity_rules(self, request).await,
        }
    }

    async fn list_merges(
        &self,
        request: Request<pb::ListMergesRequest>,
    ) -> Result<Response<pb::ListMergesResponse>, Status> {
        admin::list_merges(self, request).await
    }

    async fn list_review_items(
        &self,
        request: Request<pb::ListReviewItemsRequest>,
    ) -> Result<Response<pb::ListReviewItemsResponse>, Status> {
        admin::list_review_items(self, request).await
    }

    async fn resolve_review_item(
        &self,
        request: Request<pb::ResolveReviewItemRequest>,
    ) -> Result<Response<pb::ResolveReviewItemResponse>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let (tenant, _) =
            convert::parse_name(&principal, &request.get_ref().name, "reviewItems", "name")?;
        let request_id = request.get_ref().request_id.clone();
        idempotent(
            self,
            &tenant,
            &request_id,
            "ResolveReviewItem",
            admin::resolve_review_item(self, request),
        )
        .await
    }

    async fn tail_identity_changes(
        &self,
        request: Request<pb::TailIdentityChangesRequest>,
    ) -> Result<Response<ChangeStream>, Status> {
        let principal = touchline_auth::principal(&request)?;
        let selector = request.into_inner().selector;
        let source = PartitionCursors::new(
            ChangeLog(self.identity.pool().clone()),
            &principal.tenant,
            selector,
        )?;
        let wake = match &self.notifier {
            Some(notifier) => notifier.subscribe(CHANGES_CHANNEL),
            None => tokio::sync::watch::channel(0).1,
        };
        let stream = spawn_tail(source, wake, self.shutdown.clone());
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Runs `call` once per idempotency key: a retry with the same `request_id`
/// (within the retention) gets the first reply back, and a duplicate that
/// arrives while the first is still acting is told to retry (ABORTED)
/// instead of acting beside it. A crash between the call's commit and
/// storing its reply leaves a claim that goes stale after a minute; a retry
/// then acts again, which the operations keyed this way tolerate (they are
/// safe to repeat, or fail cleanly with FAILED_PRECONDITION).
pub(crate) async fn idempotent<T, F>(
    api: &IdentityApi,
    tenant: &str,
    request_id: &str,
    method: &'static str,
    call: F,
) -> Result<Response<T>, Status>
where
    T: touchline_proto::prost::Message + Default,
    F: std::future::Future<Output = Result<Response<T>, Status>>,
{
    use touchline_db::Run;
    let request_id = match request_id.trim() {
        "" => return call.await,
        id => convert::parse_uuid(id, "request_id")?.to_string(),
    };
    let key = touchline_db::RequestKey {
        tenant,
        request_id: &request_id,
        method,
    };
    let run = api
        .identity
        .run_keyed(&key, call, |reply: &Response<T>| {
            touchline_proto::prost::Message::encode_to_vec(reply.get_ref())
        })
        .await
        .map_err(|err| to_status(&err))?;
    match run {
        Run::Acted(result) => result,
        Run::Replayed(bytes) => T::decode(bytes.as_slice())
            .map(Response::new)
            .map_err(|err| to_status(&IdentityError::UnreadableReply(err))),
        Run::InFlight => Err(to_status(&IdentityError::Stale(
            touchline_error::REQUEST_IN_FLIGHT.to_owned(),
        ))),
    }
}

/// The identity change log as a partitioned log.
struct ChangeLog(PgPool);

/// How this log is named in errors.
const LOG: &str = "identity change log";

impl PartitionedLog for ChangeLog {
    type Record = StoredChange;
    type Batch = pb::TailIdentityChangesResponse;

    async fn heads(&self, tenants: Option<&[String]>) -> Result<Vec<(String, i64)>, LogError> {
        crate::store::log::heads(&self.0, tenants)
            .await
            .map_err(|err| LogError::store(LOG, err))
    }

    async fn read_after(
        &self,
        tenant: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredChange>, LogError> {
        crate::store::log::read_after(&self.0, tenant, after, limit)
            .await
            .map_err(|err| LogError::store(LOG, err))
    }

    fn sequence(record: &StoredChange) -> i64 {
        record.sequence
    }

    fn batch(
        tenant: &str,
        head: i64,
        records: Vec<StoredChange>,
    ) -> Result<pb::TailIdentityChangesResponse, LogError> {
        Ok(pb::TailIdentityChangesResponse {
            tenant: tenant.to_owned(),
            changes: records
                .into_iter()
                .map(|c| convert::change_to_pb(tenant, c))
                .collect(),
            head_sequence: head,
        })
    }
}
