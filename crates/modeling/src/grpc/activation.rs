//! Conversions of the activation calls: webhook destinations, their ledger, and triggers.

use touchline_proto::modeling::v1 as pb;

use super::journeys::timestamp;
use super::segments::segment_name;
use crate::error::ModelingError;
use crate::journeys::query::Violations;
use crate::service::{DestinationView, NewDestination, Replay};
use crate::store::activation::{self as store, Attempt, StoredTrigger, TriggerFilter};

/// The id in `tenants/{tenant}/webhookDestinations/{id}`, with the tenant part.
pub(super) fn destination_name(name: &str) -> Option<(&str, &str)> {
    crate::domain::child_name(name, "webhookDestinations")
}

/// The id in `tenants/{tenant}/triggerDefinitions/{id}`, with the tenant part.
pub(super) fn definition_name(name: &str) -> Option<(&str, &str)> {
    crate::domain::child_name(name, "triggerDefinitions")
}

/// The ids of definition names of the caller's tenant; each other name is a violation under
/// `field`.
pub(super) fn definition_ids(
    tenant: &str,
    names: &[String],
    field: &str,
    problems: &mut Violations,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(names.len());
    if names.len() > MAX_DEFINITIONS_NAMED {
        problems.add(field, "TOO_MANY", "at most 20 trigger definitions");
    }
    for (index, name) in names.iter().enumerate() {
        match definition_name(name) {
            Some((parent, id)) if parent == format!("tenants/{tenant}") => ids.push(id.to_owned()),
            _ => problems.add(
                format!("{field}[{index}]"),
                "INVALID_NAME",
                "a trigger definition of the same tenant, as tenants/{tenant}/triggerDefinitions/{id}",
            ),
        }
    }
    ids
}

/// Most definitions a subscription or destination names.
const MAX_DEFINITIONS_NAMED: usize = 20;

/// A new destination as the service takes it.
pub(super) fn new_destination(
    tenant: &str,
    request: &pb::CreateWebhookDestinationRequest,
) -> NewDestination {
    let mut problems = Violations::default();
    let d = request.webhook_destination.clone().unwrap_or_default();
    if request.webhook_destination.is_none() {
        problems.add(
            "webhook_destination",
            "REQUIRED",
            "a destination is required",
        );
    }
    let mut segments = Vec::new();
    for (index, name) in d.segments.iter().enumerate() {
        match segment_name(name) {
            Some((parent, id)) if parent == format!("tenants/{tenant}") => {
                segments.push(id.to_owned())
            }
            _ => problems.add(
                format!("webhook_destination.segments[{index}]"),
                "INVALID_NAME",
                "a segment of the same tenant, as tenants/{tenant}/segments/{segment}",
            ),
        }
    }
    let definitions = definition_ids(
        tenant,
        &d.trigger_definitions,
        "webhook_destination.trigger_definitions",
        &mut problems,
    );
    NewDestination {
        id: request.webhook_destination_id.clone(),
        definitions,
        display_name: d.display_name,
        url: d.url,
        types: d.types,
        segments,
        signing_secret: d.signing_secret,
        max_batch_size: d.max_batch_size,
        start_after_sequence: d.start_after_sequence,
        deliver_retained: request.deliver_retained,
        max_deliveries_per_second: d.max_deliveries_per_second,
        identifier_types: d.identifier_types,
        ordering: d.ordering,
        max_concurrency: d.max_concurrency,
        request_id: request.request_id.clone(),
        problems,
    }
}

/// Where a resume delivers from: a sequence or a time, not both.
pub(super) fn replay(
    request: &pb::ResumeWebhookDestinationRequest,
) -> Result<Replay, ModelingError> {
    let after = super::segments::changes_after("", request.after_sequence)?;
    match (after, request.replay_from_time.as_ref()) {
        (0, None) => Ok(Replay::Stopped),
        (after, None) => Ok(Replay::AfterSequence(after)),
        (0, Some(time)) => super::journeys::datetime(time)
            .map(Replay::FromTime)
            .ok_or_else(|| {
                ModelingError::invalid("replay_from_time", "OUT_OF_RANGE", "not a valid time")
            }),
        (_, Some(_)) => Err(ModelingError::invalid(
            "replay_from_time",
            "CONFLICTING_START",
            "replay from a sequence or from a time, not both",
        )),
    }
}

/// The contract's destination (never its secret).
pub(super) fn destination(view: &DestinationView) -> pb::WebhookDestination {
    let d = &view.destination;
    pb::WebhookDestination {
        name: format!(
            "tenants/{}/webhookDestinations/{}",
            d.tenant_id, d.destination_id
        ),
        display_name: d.display_name.clone(),
        url: d.url.clone(),
        types: d.trigger_types.iter().map(|t| i32::from(*t)).collect(),
        segments: d
            .segment_ids
            .iter()
            .map(|s| format!("tenants/{}/segments/{s}", d.tenant_id))
            .collect(),
        identifier_types: d.identifier_types.clone(),
        trigger_definitions: d
            .definition_ids
            .iter()
            .map(|id| format!("tenants/{}/triggerDefinitions/{id}", d.tenant_id))
            .collect(),
        signing_secret: String::new(),
        max_batch_size: d.max_batch_size,
        start_after_sequence: 0,
        state: i32::from(d.state),
        delivered_sequence: d.delivered_sequence,
        last_success_time: d.last_success_at.map(timestamp),
        last_failure_time: d.last_failure_at.map(timestamp),
        last_error: d.last_error.clone(),
        consecutive_failures: d.consecutive_failures,
        create_time: Some(timestamp(d.created_at)),
        head_sequence: view.head_sequence,
        next_attempt_time: view.next_attempt_at.map(timestamp),
        max_deliveries_per_second: d.max_deliveries_per_second,
        ordering: i32::from(d.ordering),
        max_concurrency: d.max_concurrency,
    }
}

/// One ledger row.
pub(super) fn attempt(a: &Attempt) -> pb::WebhookDeliveryAttempt {
    pb::WebhookDeliveryAttempt {
        webhook_id: a.webhook_id.clone(),
        first_sequence: a.first_sequence,
        last_sequence: a.last_sequence,
        attempt: a.attempt,
        attempt_time: Some(timestamp(a.attempted_at)),
        outcome: i32::from(a.outcome),
        http_status: a.http_status,
        error: a.error.clone(),
        duration_ms: a.duration_ms,
    }
}

/// One trigger as the contract has it.
pub(super) fn trigger(tenant: &str, t: &StoredTrigger) -> pb::Trigger {
    pb::Trigger {
        sequence: t.sequence,
        r#type: i32::from(t.trigger_type),
        person: format!("tenants/{tenant}/persons/{}", t.person_id),
        person_id: t.person_id.to_string(),
        trigger_time: Some(timestamp(t.triggered_at)),
        segment: if t.segment_id.is_empty() {
            String::new()
        } else {
            format!("tenants/{tenant}/segments/{}", t.segment_id)
        },
        segment_change_reason: i32::from(t.reason),
        tenant: format!("tenants/{tenant}"),
        cause_message_id: t.cause_message_id.clone(),
        trigger_definition: if t.definition_id.is_empty() {
            String::new()
        } else {
            format!("tenants/{tenant}/triggerDefinitions/{}", t.definition_id)
        },
        ..model_outputs(t)
    }
}

/// The fields a model-output trigger fills.
fn model_outputs(t: &StoredTrigger) -> pb::Trigger {
    let (before, now) = (i32::from(t.previous_value), i32::from(t.current_value));
    match t.trigger_type {
        store::LIFECYCLE_STAGE_CHANGED => pb::Trigger {
            previous_lifecycle_stage: before,
            lifecycle_stage: now,
            ..pb::Trigger::default()
        },
        store::RFM_SEGMENT_CHANGED => pb::Trigger {
            previous_rfm_segment: before,
            rfm_segment: now,
            ..pb::Trigger::default()
        },
        store::CHURN_FLAG_RAISED | store::CHURN_FLAG_CLEARED => pb::Trigger {
            churn_score: t.churn_score,
            ..pb::Trigger::default()
        },
        _ => pb::Trigger::default(),
    }
}

/// A ledger token: the attempt id the next page continues before.
pub(super) fn ledger_before(token: &str) -> Result<i64, ModelingError> {
    if token.is_empty() {
        return Ok(0);
    }
    crate::domain::decode_token(token)
}

/// What a SubscribeTriggers call asks for, checked: known trigger types, segments of the
/// caller's tenant, a sequence of 0 or more.
pub(super) fn trigger_filter(
    tenant: &str,
    types: &[i32],
    segments: &[String],
    definitions: &[String],
    after_sequence: i64,
) -> Result<TriggerFilter, ModelingError> {
    let mut problems = Violations::default();
    let mut filter = TriggerFilter {
        definitions: definition_ids(tenant, definitions, "trigger_definitions", &mut problems),
        ..TriggerFilter::default()
    };
    for (index, number) in types.iter().enumerate() {
        match pb::TriggerType::try_from(*number) {
            Ok(t) if *number != 0 => filter.types.push(t as i16),
            _ => problems.add(
                format!("types[{index}]"),
                "UNKNOWN_VALUE",
                "an unknown trigger type",
            ),
        }
    }
    for (index, name) in segments.iter().enumerate() {
        match segment_name(name) {
            Some((parent, id)) if parent == format!("tenants/{tenant}") => {
                filter.segments.push(id.to_owned());
            }
            _ => problems.add(
                format!("segments[{index}]"),
                "INVALID_NAME",
                "a segment of the same tenant, as tenants/{tenant}/segments/{segment}",
            ),
        }
    }
    if after_sequence < 0 {
        problems.add("after_sequence", "OUT_OF_RANGE", "a sequence is 0 or more");
    }
    if problems.is_empty() {
        Ok(filter)
    } else {
        Err(ModelingError::Invalid(problems.0))
    }
}
