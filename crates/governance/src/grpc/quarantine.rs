//! Quarantine RPCs: listing quarantined events and replaying them.

use std::collections::HashMap;

use prost::Message as _;
use touchline_proto::common::v1::Event;
use touchline_proto::governance::v1 as pb;

use crate::domain::clean::{from_timestamp_pb, timestamp_pb};
use crate::domain::{names, pages};
use crate::error::GovernanceError;
use crate::replay::{Outcome, ReplayPlan, ReplayRun, Selection};
use crate::service::{Governance, WriteKey, continues_after};
use crate::store::quarantine::{Filter, QuarantinedRow};

/// Most names or corrections in one replay.
const MAX_NAMED: usize = 1_000;
/// The method name idempotency keys are recorded under.
const REPLAY_METHOD: &str = "ReplayQuarantined";

/// A filter of the request, validated.
fn filter_from(
    f: Option<&pb::QuarantineFilter>,
    states: &[i32],
    field: &str,
) -> Result<Filter, GovernanceError> {
    let f = f.cloned().unwrap_or_default();
    for r in &f.reasons {
        if *r <= 0 || pb::QuarantineReason::try_from(*r).is_err() {
            return Err(GovernanceError::invalid(
                &format!("{field}.reasons"),
                "INVALID_REASON",
                "not a quarantine reason",
            ));
        }
    }
    let range = f.received_time.unwrap_or_default();
    let from = match range.start_time.as_ref() {
        None => None,
        Some(t) => Some(from_timestamp_pb(t).ok_or_else(|| {
            GovernanceError::invalid(
                &format!("{field}.received_time.start_time"),
                "INVALID_TIME",
                "out of range",
            )
        })?),
    };
    let to = match range.end_time.as_ref() {
        None => None,
        Some(t) => Some(from_timestamp_pb(t).ok_or_else(|| {
            GovernanceError::invalid(
                &format!("{field}.received_time.end_time"),
                "INVALID_TIME",
                "out of range",
            )
        })?),
    };
    if let (Some(a), Some(b)) = (from, to)
        && a > b
    {
        return Err(GovernanceError::invalid(
            &format!("{field}.received_time"),
            "INVALID_RANGE",
            "start_time is after end_time",
        ));
    }
    let mut state_numbers = Vec::with_capacity(states.len());
    for s in states {
        match pb::QuarantineState::try_from(*s) {
            Ok(pb::QuarantineState::Unspecified) => state_numbers.push(1),
            Ok(state) => state_numbers.push(i16::try_from(state as i32).unwrap_or(1)),
            Err(_) => {
                return Err(GovernanceError::invalid(
                    "states",
                    "INVALID_STATE",
                    "not a quarantine state",
                ));
            }
        }
    }
    state_numbers.sort_unstable();
    state_numbers.dedup();
    Ok(Filter {
        source: f.source.trim().to_owned(),
        reasons: f.reasons,
        from,
        to,
        source_event_name: f.source_event_name.trim().to_owned(),
        states: state_numbers,
        sequences: Vec::new(),
    })
}

/// A stored row as the contract's message.
fn to_pb(tenant: &str, row: &QuarantinedRow) -> pb::QuarantinedEvent {
    let violations = row
        .violations
        .as_array()
        .map(|list| {
            list.iter()
                .map(|v| pb::QuarantineViolation {
                    reason: v
                        .get("reason")
                        .and_then(serde_json::Value::as_i64)
                        .and_then(|n| i32::try_from(n).ok())
                        .unwrap_or(row.reason),
                    field: text(v, "field"),
                    description: text(v, "detail"),
                    validation_rule: text(v, "validation_rule"),
                    rule_reason_code: text(v, "rule_reason_code"),
                })
                .collect()
        })
        .unwrap_or_default();
    pb::QuarantinedEvent {
        name: format!("tenants/{tenant}/quarantinedEvents/{}", row.sequence),
        raw_sequence: row.sequence,
        event: row.raw_event.as_deref().and_then(|b| Event::decode(b).ok()),
        received_at: row.received_at.map(timestamp_pb),
        reason: row.reason,
        violations,
        dictionary_version: row.dictionary_version,
        quarantine_time: Some(timestamp_pb(row.quarantined_at)),
        state: i32::from(row.state),
        replay_count: row.replay_count,
        last_replay_time: row.last_replay_at.map(timestamp_pb),
        corrected: row.corrected,
    }
}

fn text(v: &serde_json::Value, key: &str) -> String {
    v.get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `ListQuarantined`.
pub async fn list(
    governance: &Governance,
    tenant: &str,
    req: &pb::ListQuarantinedRequest,
) -> Result<pb::ListQuarantinedResponse, GovernanceError> {
    let size = pages::quarantine_page(req.page_size)?;
    let filter = filter_from(req.filter.as_ref(), &req.states, "filter")?;
    let page = governance
        .list_quarantined(tenant, &filter, &req.page_token, size)
        .await?;
    Ok(pb::ListQuarantinedResponse {
        quarantined_events: page.rows.iter().map(|r| to_pb(tenant, r)).collect(),
        next_page_token: page.next_page_token,
        total_size: page.total,
    })
}

/// `ReplayQuarantined`, once per request id.
pub async fn replay(
    governance: &Governance,
    tenant: &str,
    req: &pb::ReplayQuarantinedRequest,
) -> Result<pb::ReplayQuarantinedResponse, GovernanceError> {
    let key = WriteKey {
        request_id: &req.request_id,
        validate_only: req.validate_only,
        method: REPLAY_METHOD,
    };
    governance
        .once(tenant, key, replay_unkeyed(governance, tenant, req))
        .await
}

/// `ReplayQuarantined` itself, without regard to its idempotency key.
async fn replay_unkeyed(
    governance: &Governance,
    tenant: &str,
    req: &pb::ReplayQuarantinedRequest,
) -> Result<pb::ReplayQuarantinedResponse, GovernanceError> {
    let plan = plan(tenant, req)?;
    let by_name = matches!(plan.selection, Selection::Names(_));
    let (run, next_page_token) = governance.replay_quarantined(tenant, &plan).await?;
    Ok(replay_to_pb(tenant, &run, next_page_token, by_name))
}

/// A replay's outcomes as the contract counts them; per-event results only when the events
/// were named.
fn replay_to_pb(
    tenant: &str,
    run: &ReplayRun,
    next_page_token: String,
    by_name: bool,
) -> pb::ReplayQuarantinedResponse {
    let mut response = pb::ReplayQuarantinedResponse {
        examined_count: i64::try_from(run.outcomes.len()).unwrap_or(i64::MAX),
        next_page_token,
        ..Default::default()
    };
    let mut reasons: HashMap<i32, i64> = HashMap::new();
    for (sequence, outcome) in &run.outcomes {
        let result = replay_result(tenant, *sequence, outcome, &mut response, &mut reasons);
        if by_name {
            response.results.push(result);
        }
    }
    let mut by_reason: Vec<pb::ReasonCount> = reasons
        .into_iter()
        .map(|(reason, count)| pb::ReasonCount { reason, count })
        .collect();
    by_reason.sort_by_key(|r| r.reason);
    response.still_quarantined_by_reason = by_reason;
    response
}

/// One event's outcome, counted into `response` and `reasons`.
fn replay_result(
    tenant: &str,
    sequence: i64,
    outcome: &Outcome,
    response: &mut pb::ReplayQuarantinedResponse,
    reasons: &mut HashMap<i32, i64>,
) -> pb::ReplayResult {
    let mut result = pb::ReplayResult {
        name: format!("tenants/{tenant}/quarantinedEvents/{sequence}"),
        ..Default::default()
    };
    match outcome {
        Outcome::Released(clean) => {
            response.released_count += 1;
            result.outcome = pb::ReplayOutcome::Released as i32;
            result.clean_sequence = *clean;
        }
        Outcome::StillQuarantined(q) => {
            response.still_quarantined_count += 1;
            *reasons.entry(q.reason() as i32).or_default() += 1;
            result.outcome = pb::ReplayOutcome::StillQuarantined as i32;
            result.reason = q.reason() as i32;
            result.violations = q
                .violations
                .iter()
                .map(|v| pb::QuarantineViolation {
                    reason: v.reason as i32,
                    field: v.field.clone(),
                    description: v.detail.clone(),
                    ..Default::default()
                })
                .collect();
        }
        Outcome::Duplicate => {
            response.duplicate_count += 1;
            result.outcome = pb::ReplayOutcome::Duplicate as i32;
        }
        Outcome::NotFound => {
            result.outcome = pb::ReplayOutcome::NotFound as i32;
        }
    }
    result
}

/// The request as a plan, validated.
fn plan(tenant: &str, req: &pb::ReplayQuarantinedRequest) -> Result<ReplayPlan, GovernanceError> {
    if req.corrections.len() > MAX_NAMED {
        return Err(GovernanceError::invalid(
            "corrections",
            "TOO_MANY",
            "at most 1,000 corrections",
        ));
    }
    if req.dictionary_version < 0 {
        return Err(GovernanceError::invalid(
            "dictionary_version",
            "INVALID_VERSION",
            "must not be negative",
        ));
    }
    let selection = selection(tenant, req)?;
    let corrections = corrections(tenant, req, &selection)?;
    Ok(ReplayPlan {
        selection,
        corrections,
        dictionary_version: req.dictionary_version,
        validate_only: req.validate_only,
    })
}

/// Which events the request replays: named ones, or a page of those a filter matches.
fn selection(
    tenant: &str,
    req: &pb::ReplayQuarantinedRequest,
) -> Result<Selection, GovernanceError> {
    use pb::replay_quarantined_request::Selection as Sel;
    match &req.selection {
        None => Err(GovernanceError::invalid(
            "selection",
            "REQUIRED",
            "name the events or give a filter",
        )),
        Some(Sel::Names(names)) => named(tenant, &names.names),
        Some(Sel::Filter(f)) => {
            let filter = filter_from(Some(f), &[], "filter")?;
            let max = pages::replay_max_events(req.max_events)?;
            let after = continues_after(&req.page_token, &filter)?;
            Ok(Selection::Filter { filter, after, max })
        }
    }
}

/// The named events, each once, in the order first named.
fn named(tenant: &str, names: &[String]) -> Result<Selection, GovernanceError> {
    if names.is_empty() {
        return Err(GovernanceError::invalid(
            "names.names",
            "REQUIRED",
            "name at least one event",
        ));
    }
    if names.len() > MAX_NAMED {
        return Err(GovernanceError::invalid(
            "names.names",
            "TOO_MANY",
            "at most 1,000 names",
        ));
    }
    let mut sequences = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let s = names::quarantined_sequence(tenant, name, &format!("names.names[{i}]"))?;
        if !sequences.contains(&s) {
            sequences.push(s);
        }
    }
    Ok(Selection::Names(sequences))
}

/// The corrected events by raw sequence; with named events, each must correct one of them.
fn corrections(
    tenant: &str,
    req: &pb::ReplayQuarantinedRequest,
    selection: &Selection,
) -> Result<HashMap<i64, Event>, GovernanceError> {
    let mut corrections = HashMap::new();
    for (i, c) in req.corrections.iter().enumerate() {
        let field = format!("corrections[{i}]");
        let s = names::quarantined_sequence(
            tenant,
            &c.quarantined_event,
            &format!("{field}.quarantined_event"),
        )?;
        let Some(event) = c.event.clone() else {
            return Err(GovernanceError::invalid(
                &format!("{field}.event"),
                "REQUIRED",
                "the corrected event is required",
            ));
        };
        if let Selection::Names(names) = selection
            && !names.contains(&s)
        {
            return Err(GovernanceError::invalid(
                &format!("{field}.quarantined_event"),
                "NOT_SELECTED",
                "corrects an event that is not among the named ones",
            ));
        }
        corrections.insert(s, event);
    }
    Ok(corrections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_needs_exactly_one_bounded_selection() {
        let none = pb::ReplayQuarantinedRequest::default();
        assert!(plan("t1", &none).is_err());
        let too_many = pb::ReplayQuarantinedRequest {
            selection: Some(pb::replay_quarantined_request::Selection::Names(
                pb::QuarantinedEventNames {
                    names: (1..=1_001)
                        .map(|i| format!("tenants/t1/quarantinedEvents/{i}"))
                        .collect(),
                },
            )),
            ..Default::default()
        };
        assert!(plan("t1", &too_many).is_err());
        let unselected_correction = pb::ReplayQuarantinedRequest {
            selection: Some(pb::replay_quarantined_request::Selection::Names(
                pb::QuarantinedEventNames {
                    names: vec!["tenants/t1/quarantinedEvents/1".into()],
                },
            )),
            corrections: vec![pb::EventCorrection {
                quarantined_event: "tenants/t1/quarantinedEvents/2".into(),
                event: Some(Event::default()),
            }],
            ..Default::default()
        };
        assert!(plan("t1", &unselected_correction).is_err());
    }
}
