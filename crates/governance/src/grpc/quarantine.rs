//! Quarantine RPCs: listing quarantined events and replaying them.

use std::collections::HashMap;

use base64::Engine as _;
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use touchline_error::FieldViolation;
use touchline_proto::common::v1::Event;
use touchline_proto::governance::v1 as pb;

use crate::domain::clean::{from_timestamp_pb, timestamp_pb};
use crate::error::GovernanceError;
use crate::replay::{Outcome, ReplayPlan, Replayer, Selection};
use crate::store::quarantine::{self as store, Filter, QuarantinedRow};

/// Most names or corrections in one replay.
const MAX_NAMED: usize = 1_000;
/// Replay page size with a filter: default and maximum.
const REPLAY_DEFAULT: i64 = 1_000;
const REPLAY_MAX: i64 = 10_000;
/// The method name idempotency keys are recorded under.
const REPLAY_METHOD: &str = "ReplayQuarantined";

fn invalid(field: &str, reason: &'static str, description: &str) -> GovernanceError {
    GovernanceError::Invalid(vec![FieldViolation::new(field, reason, description)])
}

/// A filter of the request, validated.
fn filter_from(
    f: Option<&pb::QuarantineFilter>,
    states: &[i32],
    field: &str,
) -> Result<Filter, GovernanceError> {
    let f = f.cloned().unwrap_or_default();
    for r in &f.reasons {
        if *r <= 0 || pb::QuarantineReason::try_from(*r).is_err() {
            return Err(invalid(
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
            invalid(
                &format!("{field}.received_time.start_time"),
                "INVALID_TIME",
                "out of range",
            )
        })?),
    };
    let to = match range.end_time.as_ref() {
        None => None,
        Some(t) => Some(from_timestamp_pb(t).ok_or_else(|| {
            invalid(
                &format!("{field}.received_time.end_time"),
                "INVALID_TIME",
                "out of range",
            )
        })?),
    };
    if let (Some(a), Some(b)) = (from, to)
        && a > b
    {
        return Err(invalid(
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
                return Err(invalid("states", "INVALID_STATE", "not a quarantine state"));
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

/// A short fingerprint of a filter, so a page token is only accepted with
/// the filter it was issued for.
fn fingerprint(f: &Filter) -> String {
    let text = format!(
        "{}|{:?}|{:?}|{:?}|{}|{:?}",
        f.source, f.reasons, f.from, f.to, f.source_event_name, f.states
    );
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

fn page_token(after: i64, f: &Filter) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{after}.{}", fingerprint(f)))
}

fn parse_token(token: &str, f: &Filter) -> Result<i64, GovernanceError> {
    if token.is_empty() {
        return Ok(0);
    }
    let bad = || {
        invalid(
            "page_token",
            "INVALID_PAGE_TOKEN",
            "not a token this call returned for the same filter",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (after, print) = text.split_once('.').ok_or_else(bad)?;
    if print != fingerprint(f) {
        return Err(bad());
    }
    after.parse::<i64>().map_err(|_| bad())
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
    pool: &sqlx::PgPool,
    tenant: &str,
    req: &pb::ListQuarantinedRequest,
) -> Result<pb::ListQuarantinedResponse, GovernanceError> {
    let size = i64::from(match req.page_size {
        n if n < 0 => {
            return Err(invalid(
                "page_size",
                "INVALID_PAGE_SIZE",
                "must not be negative",
            ));
        }
        0 => 100,
        n => n.min(1_000),
    });
    let filter = filter_from(req.filter.as_ref(), &req.states, "filter")?;
    let after = parse_token(&req.page_token, &filter)?;
    let (rows, total) = store::list(pool, tenant, &filter, after, size + 1).await?;
    let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > size;
    let page: Vec<&QuarantinedRow> = rows
        .iter()
        .take(usize::try_from(size).unwrap_or(100))
        .collect();
    let next_page_token = match page.last() {
        Some(last) if more => page_token(last.sequence, &filter),
        _ => String::new(),
    };
    Ok(pb::ListQuarantinedResponse {
        quarantined_events: page.into_iter().map(|r| to_pb(tenant, r)).collect(),
        next_page_token,
        total_size: total,
    })
}

/// The raw sequence named by `tenants/{tenant}/quarantinedEvents/{sequence}`.
fn sequence_of(tenant: &str, name: &str, field: &str) -> Result<i64, GovernanceError> {
    name.strip_prefix(&format!("tenants/{tenant}/quarantinedEvents/"))
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| *s > 0)
        .ok_or_else(|| {
            invalid(
                field,
                "INVALID_NAME",
                "expected tenants/{tenant}/quarantinedEvents/{sequence} of the caller's tenant",
            )
        })
}

/// `ReplayQuarantined`.
pub async fn replay(
    pool: &sqlx::PgPool,
    replayer: &Replayer,
    tenant: &str,
    req: &pb::ReplayQuarantinedRequest,
) -> Result<pb::ReplayQuarantinedResponse, GovernanceError> {
    super::keyed::once(
        pool,
        tenant,
        &req.request_id,
        req.validate_only,
        REPLAY_METHOD,
        replay_unkeyed(replayer, tenant, req),
    )
    .await
}

/// `ReplayQuarantined` itself, without regard to its idempotency key.
async fn replay_unkeyed(
    replayer: &Replayer,
    tenant: &str,
    req: &pb::ReplayQuarantinedRequest,
) -> Result<pb::ReplayQuarantinedResponse, GovernanceError> {
    let plan = plan(tenant, req)?;
    let by_name = matches!(plan.selection, Selection::Names(_));
    let filter_for_token = match &req.selection {
        Some(pb::replay_quarantined_request::Selection::Filter(f)) => {
            Some(filter_from(Some(f), &[], "filter")?)
        }
        _ => None,
    };
    let run = replayer.replay(tenant, &plan).await?;
    let mut response = pb::ReplayQuarantinedResponse {
        examined_count: i64::try_from(run.outcomes.len()).unwrap_or(i64::MAX),
        next_page_token: match (run.continue_after, &filter_for_token) {
            (Some(after), Some(f)) => page_token(after, f),
            _ => String::new(),
        },
        ..Default::default()
    };
    let mut reasons: HashMap<i32, i64> = HashMap::new();
    for (sequence, outcome) in &run.outcomes {
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
    Ok(response)
}

/// The request as a plan, validated.
#[expect(
    clippy::too_many_lines,
    reason = "turns each filter and fix of a replay request into the plan and reports every invalid field"
)]
fn plan(tenant: &str, req: &pb::ReplayQuarantinedRequest) -> Result<ReplayPlan, GovernanceError> {
    use pb::replay_quarantined_request::Selection as Sel;
    if req.corrections.len() > MAX_NAMED {
        return Err(invalid(
            "corrections",
            "TOO_MANY",
            "at most 1,000 corrections",
        ));
    }
    if req.dictionary_version < 0 {
        return Err(invalid(
            "dictionary_version",
            "INVALID_VERSION",
            "must not be negative",
        ));
    }
    let selection = match &req.selection {
        None => {
            return Err(invalid(
                "selection",
                "REQUIRED",
                "name the events or give a filter",
            ));
        }
        Some(Sel::Names(names)) => {
            if names.names.is_empty() {
                return Err(invalid(
                    "names.names",
                    "REQUIRED",
                    "name at least one event",
                ));
            }
            if names.names.len() > MAX_NAMED {
                return Err(invalid("names.names", "TOO_MANY", "at most 1,000 names"));
            }
            let mut sequences = Vec::with_capacity(names.names.len());
            for (i, name) in names.names.iter().enumerate() {
                let s = sequence_of(tenant, name, &format!("names.names[{i}]"))?;
                if !sequences.contains(&s) {
                    sequences.push(s);
                }
            }
            Selection::Names(sequences)
        }
        Some(Sel::Filter(f)) => {
            let filter = filter_from(Some(f), &[], "filter")?;
            let max = match i64::from(req.max_events) {
                n if n < 0 => {
                    return Err(invalid(
                        "max_events",
                        "INVALID_MAX_EVENTS",
                        "must not be negative",
                    ));
                }
                0 => REPLAY_DEFAULT,
                n => n.min(REPLAY_MAX),
            };
            let after = parse_token(&req.page_token, &filter)?;
            Selection::Filter { filter, after, max }
        }
    };
    let mut corrections = HashMap::new();
    for (i, c) in req.corrections.iter().enumerate() {
        let field = format!("corrections[{i}]");
        let s = sequence_of(
            tenant,
            &c.quarantined_event,
            &format!("{field}.quarantined_event"),
        )?;
        let Some(event) = c.event.clone() else {
            return Err(invalid(
                &format!("{field}.event"),
                "REQUIRED",
                "the corrected event is required",
            ));
        };
        if let Selection::Names(names) = &selection
            && !names.contains(&s)
        {
            return Err(invalid(
                &format!("{field}.quarantined_event"),
                "NOT_SELECTED",
                "corrects an event that is not among the named ones",
            ));
        }
        corrections.insert(s, event);
    }
    Ok(ReplayPlan {
        selection,
        corrections,
        dictionary_version: req.dictionary_version,
        validate_only: req.validate_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_only_continue_the_filter_they_were_issued_for() {
        let filter = Filter {
            source: "pos".into(),
            states: vec![1],
            ..Filter::default()
        };
        let token = page_token(42, &filter);
        assert_eq!(parse_token(&token, &filter).ok(), Some(42));
        assert_eq!(parse_token("", &filter).ok(), Some(0));
        let other = Filter {
            source: "crm".into(),
            ..filter.clone()
        };
        assert!(matches!(
            parse_token(&token, &other),
            Err(GovernanceError::Invalid(_))
        ));
        assert!(matches!(
            parse_token("not-a-token", &filter),
            Err(GovernanceError::Invalid(_))
        ));
    }

    #[test]
    fn names_must_belong_to_the_callers_tenant() {
        assert_eq!(
            sequence_of("t1", "tenants/t1/quarantinedEvents/7", "names").ok(),
            Some(7)
        );
        for bad in [
            "tenants/t2/quarantinedEvents/7",
            "tenants/t1/quarantinedEvents/x",
            "tenants/t1/quarantinedEvents/0",
            "7",
        ] {
            assert!(sequence_of("t1", bad, "names").is_err(), "{bad}");
        }
    }

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
