//! Adapters of the explicit operations: splits, erasure, consent, rules,
//! audit and reviews.

use super::IdentityApi;
use super::convert::{
    self, actor, erasure_to_pb, invalid, key_of, merge_name, parse_name, parse_person, parse_uuid,
};
use crate::domain::ResolveItem;
use crate::graph::Options;
use crate::service::{Decision, DecisionFilter};
use chrono::Utc;
use tonic::{Request, Response, Status};
use touchline_error::to_status;

use crate::IdentityError;
use touchline_proto::identity::v1 as pb;

/// Most audit records per page, and the default.
const MERGES_PAGE: (i32, i32) = (1_000, 100);
/// Most review items per page, and the default.
const REVIEW_PAGE: (i32, i32) = (500, 50);

fn page_size(requested: i32, (max, default): (i32, i32)) -> Result<i64, Status> {
    match requested {
        0 => Ok(i64::from(default)),
        n if (1..=max).contains(&n) => Ok(i64::from(n)),
        _ => Err(invalid(
            "page_size",
            "OUT_OF_RANGE",
            &format!("must be within 1..={max}"),
        )),
    }
}

fn required(value: &str, field: &str) -> Result<(), Status> {
    if value.trim().is_empty() {
        Err(invalid(field, "REQUIRED", "is required"))
    } else {
        Ok(())
    }
}

pub(super) async fn split_person(
    api: &IdentityApi,
    request: Request<pb::SplitPersonRequest>,
) -> Result<Response<pb::SplitPersonResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let req = request.get_ref();
    let actor = actor(&request, &principal, "", &req.reason);
    let (tenant, person) = parse_person(&principal, &req.name)?;
    required(&req.reason, "reason")?;
    if req.identifiers.is_empty() {
        return Err(invalid(
            "identifiers",
            "EMPTY",
            "name at least one identifier",
        ));
    }
    let keys = req
        .identifiers
        .iter()
        .enumerate()
        .map(|(i, id)| key_of(Some(id), &format!("identifiers[{i}]")))
        .collect::<Result<Vec<_>, Status>>()?;
    let done = api
        .identity
        .split_person(&tenant, person, &keys, &actor)
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(pb::SplitPersonResponse {
        person_id: person.to_string(),
        new_person_id: done.new_person.to_string(),
        merge: merge_name(&tenant, done.decision),
    }))
}

pub(super) async fn forget_person(
    api: &IdentityApi,
    request: Request<pb::ForgetPersonRequest>,
) -> Result<Response<pb::ForgetPersonResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let req = request.get_ref();
    let actor = actor(&request, &principal, "", &req.reason);
    let (tenant, person) = parse_person(&principal, &req.name)?;
    required(&req.reason, "reason")?;
    let erasure = api
        .identity
        .forget_person(&tenant, person, &actor)
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(pb::ForgetPersonResponse {
        erasure: Some(erasure_to_pb(&tenant, erasure)),
    }))
}

pub(super) async fn get_erasure(
    api: &IdentityApi,
    request: Request<pb::GetErasureRequest>,
) -> Result<Response<pb::GetErasureResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let (tenant, erasure) = parse_name(&principal, &request.get_ref().name, "erasures", "name")?;
    let stored = api
        .identity
        .erasure(&tenant, erasure)
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(pb::GetErasureResponse {
        erasure: Some(erasure_to_pb(&tenant, stored)),
    }))
}

pub(super) async fn confirm_erasure(
    api: &IdentityApi,
    request: Request<pb::ConfirmErasureRequest>,
) -> Result<Response<pb::ConfirmErasureResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let req = request.get_ref();
    let (tenant, erasure) = parse_name(&principal, &req.name, "erasures", "name")?;
    if !crate::store::admin::ERASURE_SERVICES.contains(&req.service.as_str()) {
        return Err(invalid(
            "service",
            "UNKNOWN_SERVICE",
            "is not a touchline service",
        ));
    }
    let stored = api
        .identity
        .confirm_erasure(&tenant, erasure, &req.service, req.removed_records.max(0))
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(pb::ConfirmErasureResponse {
        erasure: Some(erasure_to_pb(&tenant, stored)),
    }))
}

pub(super) async fn set_consent(
    api: &IdentityApi,
    request: Request<pb::SetConsentRequest>,
) -> Result<Response<pb::SetConsentResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let req = request.get_ref();
    let actor = actor(&request, &principal, &req.source, "");
    let tenant = principal.tenant_for(&req.parent)?;
    let effective = match &req.effective_time {
        Some(ts) => convert::instant(ts, "effective_time")?,
        None => Utc::now(),
    };
    let person = match &req.person_ref {
        Some(pb::set_consent_request::PersonRef::Person(name)) => {
            let (named, person) = parse_person(&principal, name)?;
            if named != tenant {
                return Err(touchline_auth::AuthError::ForeignTenant.into());
            }
            person
        }
        Some(pb::set_consent_request::PersonRef::Identifier(identifier)) => {
            // An unknown identifier gets its person now, so the opt-out
            // travels with it into whatever it joins later (an opt-out wins
            // on merge).
            let key = key_of(Some(identifier), "identifier")?;
            let items = [ResolveItem {
                keys: vec![key],
                observed_at: None,
                evidence_message_id: String::new(),
            }];
            let resolved = api
                .identity
                .batch_resolve(&tenant, &items, Options::default(), &actor)
                .await
                .map_err(|err| to_status(&err))?;
            resolved
                .outcomes
                .first()
                .and_then(|o| o.person_id)
                .ok_or_else(|| {
                    to_status(&IdentityError::NotFound(
                        "a living person for the identifier".to_owned(),
                    ))
                })?
        }
        None => {
            return Err(invalid(
                "person_ref",
                "REQUIRED",
                "name a person or an identifier",
            ));
        }
    };
    let (person, consent) = api
        .identity
        .set_consent(&tenant, person, req.marketing_opt_out, effective, &actor)
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(pb::SetConsentResponse {
        person_id: person.to_string(),
        consent: Some(pb::Consent {
            marketing_opt_out: consent.marketing_opt_out,
            update_time: consent.time.map(convert::timestamp),
            source: consent.source,
            actor: consent.actor,
        }),
    }))
}

pub(super) fn rules_tenant(
    principal: &touchline_auth::Principal,
    name: &str,
) -> Result<String, Status> {
    match name.strip_suffix("/identityRules") {
        Some(parent) => principal.tenant_for(parent),
        None if name.is_empty() => principal.tenant_for(""),
        None => Err(invalid(
            "name",
            "INVALID_NAME",
            "must look like tenants/{tenant}/identityRules",
        )),
    }
}

pub(super) async fn get_identity_rules(
    api: &IdentityApi,
    request: Request<pb::GetIdentityRulesRequest>,
) -> Result<Response<pb::GetIdentityRulesResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let tenant = rules_tenant(&principal, &request.get_ref().name)?;
    let rules = api
        .identity
        .rules(&tenant)
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(pb::GetIdentityRulesResponse {
        identity_rules: Some(convert::rules_to_pb(&tenant, &rules)),
    }))
}

pub(super) async fn update_identity_rules(
    api: &IdentityApi,
    request: Request<pb::UpdateIdentityRulesRequest>,
) -> Result<Response<pb::UpdateIdentityRulesResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let req = request.into_inner();
    let update = req
        .identity_rules
        .ok_or_else(|| invalid("identity_rules", "REQUIRED", "is required"))?;
    let tenant = rules_tenant(&principal, &update.name)?;
    let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
    let current = api
        .identity
        .rules(&tenant)
        .await
        .map_err(|err| to_status(&err))?;
    let rules = convert::apply_rules_update(&current, &update, &paths)?;
    let expected = match update.etag.as_str() {
        "" => None,
        etag => Some(
            etag.parse::<i64>()
                .map_err(|_| invalid("identity_rules.etag", "INVALID_ETAG", "is not an etag"))?,
        ),
    };
    let stored = api
        .identity
        .update_rules(&tenant, rules, expected, req.validate_only)
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(pb::UpdateIdentityRulesResponse {
        identity_rules: Some(convert::rules_to_pb(&tenant, &stored)),
    }))
}

pub(super) async fn list_merges(
    api: &IdentityApi,
    request: Request<pb::ListMergesRequest>,
) -> Result<Response<pb::ListMergesResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let req = request.into_inner();
    let tenant = principal.tenant_for(&req.parent)?;
    let limit = page_size(req.page_size, MERGES_PAGE)?;
    let before = match req.page_token.as_str() {
        "" => None,
        token => Some(parse_uuid(token, "page_token")?),
    };
    let kind = match pb::MergeKind::try_from(req.kind).unwrap_or(pb::MergeKind::Unspecified) {
        pb::MergeKind::Unspecified => None,
        pb::MergeKind::Merge => Some("merge"),
        pb::MergeKind::Refusal => Some("refusal"),
        pb::MergeKind::Split => Some("split"),
        pb::MergeKind::Handover => Some("handover"),
    };
    let range = req.create_time.unwrap_or_default();
    let filter = DecisionFilter {
        person: match req.person_id.as_str() {
            "" => None,
            id => Some(parse_uuid(id, "person_id")?),
        },
        kind,
        from: range
            .start_time
            .as_ref()
            .map(|t| convert::instant(t, "create_time.start_time"))
            .transpose()?,
        to: range
            .end_time
            .as_ref()
            .map(|t| convert::instant(t, "create_time.end_time"))
            .transpose()?,
    };
    let records = api
        .identity
        .list_decisions(&tenant, filter, before, limit)
        .await
        .map_err(|err| to_status(&err))?;
    let next = if i64::try_from(records.len()).unwrap_or(0) == limit {
        records
            .last()
            .map(|r| r.decision_id.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(Response::new(pb::ListMergesResponse {
        merges: records
            .into_iter()
            .map(|d| convert::decision_to_pb(&tenant, d))
            .collect(),
        next_page_token: next,
    }))
}

pub(super) async fn list_review_items(
    api: &IdentityApi,
    request: Request<pb::ListReviewItemsRequest>,
) -> Result<Response<pb::ListReviewItemsResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let req = request.into_inner();
    let tenant = principal.tenant_for(&req.parent)?;
    let limit = page_size(req.page_size, REVIEW_PAGE)?;
    let state = match pb::ReviewItemState::try_from(req.state)
        .unwrap_or(pb::ReviewItemState::Unspecified)
    {
        pb::ReviewItemState::Unspecified | pb::ReviewItemState::Open => "open",
        pb::ReviewItemState::Approved => "approved",
        pb::ReviewItemState::Rejected => "rejected",
    };
    let after = match req.page_token.split_once('/') {
        None if req.page_token.is_empty() => None,
        Some((count, id)) => Some((
            count
                .parse::<i64>()
                .map_err(|_| invalid("page_token", "INVALID_TOKEN", "is not a page token"))?,
            parse_uuid(id, "page_token")?,
        )),
        None => {
            return Err(invalid(
                "page_token",
                "INVALID_TOKEN",
                "is not a page token",
            ));
        }
    };
    let reason = convert::refusal_from_pb(req.refusal_reason).map(|r| r.as_str());
    let items = api
        .identity
        .list_review_items(&tenant, state, reason, after, limit)
        .await
        .map_err(|err| to_status(&err))?;
    let next = match items.last() {
        Some(last) if i64::try_from(items.len()).unwrap_or(0) == limit => {
            format!("{}/{}", last.evidence_count, last.item_id)
        }
        _ => String::new(),
    };
    Ok(Response::new(pb::ListReviewItemsResponse {
        review_items: items
            .into_iter()
            .map(|r| convert::review_to_pb(&tenant, r))
            .collect(),
        next_page_token: next,
    }))
}

pub(super) async fn resolve_review_item(
    api: &IdentityApi,
    request: Request<pb::ResolveReviewItemRequest>,
) -> Result<Response<pb::ResolveReviewItemResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let req = request.get_ref();
    let actor = actor(&request, &principal, "", &req.note);
    let (tenant, item) = parse_name(&principal, &req.name, "reviewItems", "name")?;
    let decision = match pb::ReviewDecision::try_from(req.decision)
        .unwrap_or(pb::ReviewDecision::Unspecified)
    {
        pb::ReviewDecision::Approve => Decision::Approve,
        pb::ReviewDecision::Reject | pb::ReviewDecision::Unspecified => Decision::Reject,
    };
    let expected = match req.etag.as_str() {
        "" => None,
        etag => Some(
            etag.parse::<i64>()
                .map_err(|_| invalid("etag", "INVALID_ETAG", "is not an etag"))?,
        ),
    };
    let (stored, survivor) = api
        .identity
        .resolve_review_item(&tenant, item, decision, expected, &actor)
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(pb::ResolveReviewItemResponse {
        review_item: Some(convert::review_to_pb(&tenant, stored)),
        person_id: survivor.map(|p| p.to_string()).unwrap_or_default(),
    }))
}
