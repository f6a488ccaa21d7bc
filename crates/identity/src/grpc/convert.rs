//! Conversions between protobuf messages and domain or stored types.

use chrono::{DateTime, Utc};
use tonic::{Request, Status};
use touchline_auth::Principal;
use touchline_error::to_status;
use touchline_proto::common::v1::Identifier;
use touchline_proto::identity::v1 as pb;
use uuid::Uuid;

use crate::domain::{self, IdentifierKey, RawIdentifier, RawItem};
use crate::error::IdentityError;
use crate::graph::{Outcome, RefusalReason, Unresolved};
use crate::rules::{BlockedValue, Rules, TypeRule};
use crate::service::Actor;
use crate::store::admin::{StoredErasure, StoredPerson};
use crate::store::log::{StoredChange, StoredDecision, StoredReviewItem};

/// The caller as the audit records it.
pub fn actor<T>(request: &Request<T>, principal: &Principal, source: &str, reason: &str) -> Actor {
    Actor {
        subject: principal.subject.clone(),
        source: source.trim().to_owned(),
        reason: reason.trim().to_owned(),
        traceparent: request
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    }
}

/// A request item borrowed as the domain validates it.
pub fn raw_item(item: &pb::ResolveItem) -> RawItem<'_> {
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

/// One identifier borrowed as the domain validates it.
pub fn raw_identifier(identifier: &Identifier) -> RawIdentifier<'_> {
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

/// Validates and normalises one identifier named `field`.
pub fn key_of(identifier: Option<&Identifier>, field: &str) -> Result<IdentifierKey, Status> {
    let Some(identifier) = identifier else {
        return Err(invalid(field, "REQUIRED", "an identifier is required"));
    };
    let raw = [RawItem {
        identifiers: vec![raw_identifier(identifier)],
        observed_at: None,
        evidence_message_id: "",
    }];
    match domain::validate(&raw) {
        Ok(mut items) => items
            .pop()
            .and_then(|mut item| item.keys.pop())
            .ok_or_else(|| invalid(field, "REQUIRED", "an identifier is required")),
        Err(domain::Rejection::Invalid(violations)) => Err(to_status(&IdentityError::Rejected(
            domain::Rejection::Invalid(
                violations
                    .into_iter()
                    .map(|mut v| {
                        v.field = v.field.replace("items[0].identifiers[0]", field);
                        v
                    })
                    .collect(),
            ),
        ))),
        Err(other) => Err(to_status(&IdentityError::from(other))),
    }
}

/// An INVALID_ARGUMENT status with one field violation.
pub fn invalid(field: &str, reason: &'static str, description: &str) -> Status {
    to_status(&IdentityError::Rejected(domain::Rejection::Invalid(vec![
        touchline_error::FieldViolation::new(field, reason, description),
    ])))
}

/// Most persons and types one identifier export reads.
pub const MAX_EXPORT_PERSONS: usize = 1_000;
/// Most identifier types one export names.
pub const MAX_EXPORT_TYPES: usize = 10;

/// The persons of an identifier export, every problem of the request named at once.
pub fn identifier_request(req: &pb::BatchGetIdentifiersRequest) -> Result<Vec<Uuid>, Status> {
    let mut problems = Vec::new();
    if req.person_ids.is_empty() || req.person_ids.len() > MAX_EXPORT_PERSONS {
        problems.push(touchline_error::FieldViolation::new(
            "person_ids",
            "OUT_OF_RANGE",
            format!("1 to {MAX_EXPORT_PERSONS} person ids"),
        ));
    }
    if req.types.is_empty() || req.types.len() > MAX_EXPORT_TYPES {
        problems.push(touchline_error::FieldViolation::new(
            "types",
            "OUT_OF_RANGE",
            format!("1 to {MAX_EXPORT_TYPES} identifier types"),
        ));
    }
    for (index, kind) in req.types.iter().enumerate() {
        if kind.trim().is_empty() || kind.len() > 64 {
            problems.push(touchline_error::FieldViolation::new(
                format!("types[{index}]"),
                "INVALID_TYPE",
                "an identifier type such as crm_id, at most 64 bytes",
            ));
        }
    }
    let mut persons = Vec::with_capacity(req.person_ids.len());
    for (index, id) in req.person_ids.iter().enumerate() {
        match Uuid::parse_str(id) {
            Ok(person) => persons.push(person),
            Err(_) => problems.push(touchline_error::FieldViolation::new(
                format!("person_ids[{index}]"),
                "INVALID_ID",
                "a person id is a UUID",
            )),
        }
    }
    if problems.is_empty() {
        Ok(persons)
    } else {
        Err(to_status(&IdentityError::Rejected(
            domain::Rejection::Invalid(problems),
        )))
    }
}

/// `tenants/{tenant}/persons/{person}`.
pub fn person_name(tenant: &str, person: Uuid) -> String {
    format!("tenants/{tenant}/persons/{person}")
}

/// `tenants/{tenant}/merges/{merge}`.
pub fn merge_name(tenant: &str, merge: Uuid) -> String {
    format!("tenants/{tenant}/merges/{merge}")
}

/// `tenants/{tenant}/reviewItems/{item}`.
pub fn review_name(tenant: &str, item: Uuid) -> String {
    format!("tenants/{tenant}/reviewItems/{item}")
}

/// `tenants/{tenant}/erasures/{erasure}`.
pub fn erasure_name(tenant: &str, erasure: Uuid) -> String {
    format!("tenants/{tenant}/erasures/{erasure}")
}

/// Parses `tenants/{tenant}/{collection}/{id}` for the caller.
pub fn parse_name(
    principal: &Principal,
    name: &str,
    collection: &str,
    field: &str,
) -> Result<(String, Uuid), Status> {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["tenants", tenant, c, id] if *c == collection => {
            let tenant = principal.tenant_for(&format!("tenants/{tenant}"))?;
            let id = parse_uuid(id, field)?;
            Ok((tenant, id))
        }
        _ => Err(invalid(
            field,
            "INVALID_NAME",
            &format!("must look like tenants/{{tenant}}/{collection}/{{id}}"),
        )),
    }
}

/// Parses a person resource name.
pub fn parse_person(principal: &Principal, name: &str) -> Result<(String, Uuid), Status> {
    parse_name(principal, name, "persons", "name")
}

/// Parses a UUID field.
pub fn parse_uuid(value: &str, field: &str) -> Result<Uuid, Status> {
    Uuid::parse_str(value).map_err(|_| invalid(field, "INVALID_ID", "is not a valid id"))
}

/// A protobuf timestamp as an instant.
pub fn instant(ts: &prost_types::Timestamp, field: &str) -> Result<DateTime<Utc>, Status> {
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
        .ok_or_else(|| invalid(field, "TIMESTAMP_OUT_OF_RANGE", "is not a valid instant"))
}

/// An instant as a protobuf timestamp.
pub fn timestamp(instant: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: instant.timestamp(),
        nanos: i32::try_from(instant.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// The contract's refusal reason.
pub fn refusal_to_pb(reason: RefusalReason) -> pb::RefusalReason {
    match reason {
        RefusalReason::MaxPersonsPerValue => pb::RefusalReason::MaxPersonsPerValue,
        RefusalReason::MaxValuesPerPerson => pb::RefusalReason::MaxValuesPerPerson,
        RefusalReason::UniqueTypeConflict => pb::RefusalReason::UniqueTypeConflict,
        RefusalReason::BlockedValue => pb::RefusalReason::BlockedValue,
        RefusalReason::PreviouslySplit => pb::RefusalReason::PreviouslySplit,
        RefusalReason::TypeCannotMerge => pb::RefusalReason::TypeCannotMerge,
    }
}

/// The contract's reason for an item without a person.
pub fn unresolved_reason(reason: Option<Unresolved>) -> pb::UnresolvedReason {
    match reason {
        None => pb::UnresolvedReason::Unspecified,
        Some(Unresolved::Suppressed) => pb::UnresolvedReason::Suppressed,
        Some(Unresolved::Blocked) => pb::UnresolvedReason::Blocked,
        Some(Unresolved::Shared) => pb::UnresolvedReason::Shared,
    }
}

/// The results of a BatchResolve call in request order: the outcomes of the
/// valid items (the service answers each, in order) where the item was
/// valid, unresolved with NOT_PSEUDONYMISED where it carried a value in
/// clear.
pub fn resolve_results(
    checked: &[domain::Checked],
    outcomes: Vec<Outcome>,
) -> Vec<pb::ResolveResult> {
    let mut outcomes = outcomes.into_iter();
    checked
        .iter()
        .map(|item| match item {
            domain::Checked::Valid(_) => {
                outcomes
                    .next()
                    .map_or_else(pb::ResolveResult::default, |o| pb::ResolveResult {
                        person_id: o.person_id.map(|p| p.to_string()).unwrap_or_default(),
                        created: o.created,
                        refused: o.refused,
                        unresolved: o.person_id.is_none(),
                        unresolved_reason: unresolved_reason(o.unresolved) as i32,
                    })
            }
            domain::Checked::NotPseudonymised(_) => pb::ResolveResult {
                unresolved: true,
                unresolved_reason: pb::UnresolvedReason::NotPseudonymised as i32,
                ..pb::ResolveResult::default()
            },
        })
        .collect()
}

/// The domain refusal reason of a contract value (`None` for UNSPECIFIED).
pub fn refusal_from_pb(value: i32) -> Option<RefusalReason> {
    match pb::RefusalReason::try_from(value).ok()? {
        pb::RefusalReason::Unspecified => None,
        pb::RefusalReason::MaxPersonsPerValue => Some(RefusalReason::MaxPersonsPerValue),
        pb::RefusalReason::MaxValuesPerPerson => Some(RefusalReason::MaxValuesPerPerson),
        pb::RefusalReason::UniqueTypeConflict => Some(RefusalReason::UniqueTypeConflict),
        pb::RefusalReason::BlockedValue => Some(RefusalReason::BlockedValue),
        pb::RefusalReason::PreviouslySplit => Some(RefusalReason::PreviouslySplit),
        pb::RefusalReason::TypeCannotMerge => Some(RefusalReason::TypeCannotMerge),
    }
}

fn stored_refusal(name: &str) -> i32 {
    RefusalReason::parse(name).map_or(0, |r| refusal_to_pb(r) as i32)
}

fn masked_pb(identifiers: &[(String, String, String)]) -> Vec<pb::MaskedIdentifier> {
    identifiers
        .iter()
        .map(|(t, s, m)| pb::MaskedIdentifier {
            r#type: t.clone(),
            masked_value: m.clone(),
            scope: s.clone(),
            pseudonymized: m.contains(':'),
            ..Default::default()
        })
        .collect()
}

/// A profile.
pub fn person_to_pb(tenant: &str, p: StoredPerson) -> pb::Person {
    let first_seen = p.identifiers.iter().map(|(_, at, _)| *at).min();
    let last_seen = p.identifiers.iter().filter_map(|(_, _, at)| *at).max();
    pb::Person {
        name: person_name(tenant, p.person_id),
        person_id: p.person_id.to_string(),
        state: pb::PersonState::Active as i32,
        merged_into: String::new(),
        identifiers: p
            .identifiers
            .iter()
            .map(|(k, linked, seen)| {
                let (masked_value, pseudonymized) = domain::mask(&k.value);
                pb::MaskedIdentifier {
                    r#type: k.id_type.clone(),
                    masked_value,
                    scope: k.scope.clone(),
                    first_seen_time: Some(timestamp(*linked)),
                    last_seen_time: seen.map(timestamp),
                    first_source: String::new(),
                    pseudonymized,
                }
            })
            .collect(),
        first_seen_time: first_seen.map(timestamp),
        last_seen_time: last_seen.map(timestamp),
        attributes: None,
        consent: Some(pb::Consent {
            marketing_opt_out: p.consent.marketing_opt_out,
            update_time: p.consent.time.map(timestamp),
            source: p.consent.source,
            actor: p.consent.actor,
        }),
        merged_person_ids: p.merged.iter().map(ToString::to_string).collect(),
        create_time: Some(timestamp(p.created_at)),
        update_time: Some(timestamp(p.updated_at)),
    }
}

/// A change-log record as the feed carries it.
pub fn change_to_pb(tenant: &str, c: StoredChange) -> pb::IdentityChange {
    let kind = match c.kind.as_str() {
        "merge" => pb::IdentityChangeKind::Merge,
        "split" => pb::IdentityChangeKind::Split,
        "detach" => pb::IdentityChangeKind::Detach,
        "erasure" => pb::IdentityChangeKind::Erasure,
        "consent" => pb::IdentityChangeKind::Consent,
        "link" => pb::IdentityChangeKind::Link,
        _ => pb::IdentityChangeKind::Unspecified,
    };
    pb::IdentityChange {
        sequence: c.sequence,
        kind: kind as i32,
        person_id: c.person_id.to_string(),
        other_person_ids: c.others.iter().map(ToString::to_string).collect(),
        moved_identifiers: c
            .moved
            .into_iter()
            .map(|k| Identifier {
                r#type: k.id_type,
                value: k.value,
                scope: k.scope,
            })
            .collect(),
        erasure: c
            .erasure_id
            .map(|e| erasure_name(tenant, e))
            .unwrap_or_default(),
        marketing_opt_out: c.marketing_opt_out,
        change_time: Some(timestamp(c.change_time)),
        traceparent: c.traceparent,
    }
}

/// An erasure record.
pub fn erasure_to_pb(tenant: &str, e: StoredErasure) -> pb::Erasure {
    pb::Erasure {
        name: erasure_name(tenant, e.erasure_id),
        person_ids: e.person_ids.iter().map(ToString::to_string).collect(),
        state: if e.completed_at.is_some() {
            pb::ErasureState::Completed as i32
        } else {
            pb::ErasureState::Propagating as i32
        },
        reason: e.reason,
        actor: e.actor,
        request_time: Some(timestamp(e.requested_at)),
        complete_time: e.completed_at.map(timestamp),
        services: e
            .services
            .into_iter()
            .map(|(service, removed, done)| pb::ErasureServiceStatus {
                service,
                done: done.is_some(),
                done_time: done.map(timestamp),
                removed_records: removed,
            })
            .collect(),
    }
}

/// An audit record.
pub fn decision_to_pb(tenant: &str, d: StoredDecision) -> pb::MergeRecord {
    let x = d.decision;
    let kind = match x.kind.as_str() {
        "merge" => pb::MergeKind::Merge,
        "refusal" => pb::MergeKind::Refusal,
        "split" => pb::MergeKind::Split,
        "handover" => pb::MergeKind::Handover,
        _ => pb::MergeKind::Unspecified,
    };
    let rule = match x.rule.as_str() {
        "shared_event" => pb::MergeRule::SharedEvent,
        "explicit_link" => pb::MergeRule::ExplicitLink,
        "review_approval" => pb::MergeRule::ReviewApproval,
        "explicit_split" => pb::MergeRule::ExplicitSplit,
        "resolution_rule" => pb::MergeRule::ResolutionRule,
        "carrier_record" => pb::MergeRule::CarrierRecord,
        _ => pb::MergeRule::Unspecified,
    };
    pb::MergeRecord {
        name: merge_name(tenant, d.decision_id),
        kind: kind as i32,
        rule: rule as i32,
        refusal_reason: stored_refusal(&x.refusal_reason),
        person_id: x.person_id.to_string(),
        other_person_ids: x.others.iter().map(ToString::to_string).collect(),
        identifiers: masked_pb(&x.identifiers),
        evidence_message_id: x.evidence_message_id,
        source: x.source,
        actor: if x.actor.is_empty() {
            "pipeline".to_owned()
        } else {
            x.actor
        },
        reason: x.reason,
        review_item: x
            .review_item_id
            .map(|r| review_name(tenant, r))
            .unwrap_or_default(),
        create_time: Some(timestamp(d.created_at)),
        change_sequence: x.change_sequence,
    }
}

/// A review item.
pub fn review_to_pb(tenant: &str, r: StoredReviewItem) -> pb::ReviewItem {
    let state = match r.state.as_str() {
        "open" => pb::ReviewItemState::Open,
        "approved" => pb::ReviewItemState::Approved,
        "rejected" => pb::ReviewItemState::Rejected,
        _ => pb::ReviewItemState::Unspecified,
    };
    pb::ReviewItem {
        name: review_name(tenant, r.item_id),
        state: state as i32,
        refusal_reason: stored_refusal(&r.refusal_reason),
        person_ids: vec![r.persons.0.to_string(), r.persons.1.to_string()],
        identifiers: masked_pb(&r.identifiers),
        evidence_message_ids: r.evidence_message_ids,
        evidence_count: r.evidence_count,
        create_time: Some(timestamp(r.created_at)),
        resolve_time: r.resolved_at.map(timestamp),
        resolver: r.resolver,
        note: r.note,
        etag: r.version.to_string(),
    }
}

/// Rules as the contract shows them; blocked values are masked.
pub fn rules_to_pb(tenant: &str, rules: &Rules) -> pb::IdentityRules {
    pb::IdentityRules {
        name: format!("tenants/{tenant}/identityRules"),
        identifier_types: rules
            .types
            .iter()
            .map(|t| pb::IdentifierTypeRule {
                r#type: t.id_type.clone(),
                priority: i32::try_from(t.priority).unwrap_or(i32::MAX),
                max_persons_per_value: i32::try_from(t.max_persons_per_value).unwrap_or(i32::MAX),
                max_values_per_person: i32::try_from(t.max_values_per_person).unwrap_or(i32::MAX),
                unique: t.unique,
                never_merge: t.never_merge,
            })
            .collect(),
        default_max_persons_per_value: i32::try_from(rules.default_max_persons_per_value)
            .unwrap_or(i32::MAX),
        default_max_values_per_person: i32::try_from(rules.default_max_values_per_person)
            .unwrap_or(i32::MAX),
        blocked_values: rules
            .blocked
            .iter()
            .map(|b| pb::BlockedValue {
                r#type: b.key.id_type.clone(),
                value: domain::mask(&b.key.value).0,
                scope: b.key.scope.clone(),
                reason: b.reason.clone(),
            })
            .collect(),
        revision: rules.revision,
        update_time: rules.updated_at.map(timestamp),
        etag: rules.revision.to_string(),
    }
}

/// Applies the fields of `update` named by `paths` to `current`.
pub fn apply_rules_update(
    current: &Rules,
    update: &pb::IdentityRules,
    paths: &[String],
) -> Result<Rules, Status> {
    let mut rules = current.clone();
    let all = paths.iter().any(|p| p == "*");
    let wants = |field: &str| all || paths.iter().any(|p| p == field);
    let mut known = 0;
    if wants("identifier_types") {
        known += 1;
        rules.types = update
            .identifier_types
            .iter()
            .map(|t| TypeRule {
                id_type: t.r#type.trim().to_lowercase(),
                priority: u32::try_from(t.priority).unwrap_or(0),
                max_persons_per_value: u32::try_from(t.max_persons_per_value).unwrap_or(u32::MAX),
                max_values_per_person: u32::try_from(t.max_values_per_person).unwrap_or(u32::MAX),
                unique: t.unique,
                never_merge: t.never_merge,
            })
            .collect();
    }
    if wants("default_max_persons_per_value") {
        known += 1;
        rules.default_max_persons_per_value =
            u32::try_from(update.default_max_persons_per_value).unwrap_or(0);
    }
    if wants("default_max_values_per_person") {
        known += 1;
        rules.default_max_values_per_person =
            u32::try_from(update.default_max_values_per_person).unwrap_or(0);
    }
    if wants("blocked_values") {
        known += 1;
        rules.blocked = update
            .blocked_values
            .iter()
            .map(|b| BlockedValue {
                key: IdentifierKey::normalise(&b.r#type, &b.scope, &b.value),
                reason: b.reason.trim().to_owned(),
            })
            .collect();
    }
    if paths.is_empty() || (!all && known != paths.len()) {
        return Err(invalid(
            "update_mask",
            "INVALID_MASK",
            "name identifier_types, default_max_persons_per_value, \
             default_max_values_per_person, blocked_values or *",
        ));
    }
    Ok(rules)
}
