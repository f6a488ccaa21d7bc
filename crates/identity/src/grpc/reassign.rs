//! RecordReassignedNumbers: check every number with its field path, record
//! them in one call of the service layer, answer per number.

use std::collections::HashSet;

use chrono::{DateTime, TimeDelta, Utc};
use tonic::{Request, Response, Status};
use touchline_error::{FieldViolation, to_status};
use touchline_proto::common::v1::Identifier;
use touchline_proto::identity::v1 as pb;

use super::IdentityApi;
use super::convert::{actor, raw_identifier};
use crate::domain::{self, IdentifierKey, RawItem, ResolveItem};
use crate::error::IdentityError;
use crate::graph::Reassigned;
use crate::timeline::RECYCLED_TYPES;

/// Most numbers one call records.
pub const MAX_NUMBERS: usize = 1_000;

/// How far past the server's clock a `holder_since` may be (the carrier's
/// clock, or the caller's, runs ahead).
const CLOCK_SKEW: TimeDelta = TimeDelta::days(1);

pub(super) async fn record_reassigned_numbers(
    api: &IdentityApi,
    request: Request<pb::RecordReassignedNumbersRequest>,
) -> Result<Response<pb::RecordReassignedNumbersResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let actor = actor(&request, &principal, "", "");
    let req = request.get_ref();
    let tenant = principal.tenant_for(&req.parent)?;
    let items = checked(&req.numbers, Utc::now()).map_err(|violations| {
        to_status(&IdentityError::Rejected(domain::Rejection::Invalid(
            violations,
        )))
    })?;
    let recorded = api
        .identity
        .record_reassigned_numbers(&tenant, &items, &actor)
        .await
        .map_err(|err| to_status(&err))?;
    let results = recorded
        .into_iter()
        .map(|(outcome, what)| pb::ReassignedNumberResult {
            outcome: outcome_to_pb(what) as i32,
            person_id: outcome.person_id.map(|p| p.to_string()).unwrap_or_default(),
        })
        .collect();
    Ok(Response::new(pb::RecordReassignedNumbersResponse {
        results,
    }))
}

fn outcome_to_pb(what: Reassigned) -> pb::ReassignmentOutcome {
    match what {
        Reassigned::HandedOver => pb::ReassignmentOutcome::HandedOver,
        Reassigned::RecordedUnseen => pb::ReassignmentOutcome::RecordedUnseen,
        Reassigned::AlreadyRecorded => pb::ReassignmentOutcome::AlreadyRecorded,
        Reassigned::UsedSince => pb::ReassignmentOutcome::UsedSince,
        Reassigned::Ignored => pb::ReassignmentOutcome::Ignored,
    }
}

/// The numbers as items (one phone key observed at `holder_since`), or
/// every violation of the request, each named by its field path.
fn checked(
    numbers: &[pb::ReassignedNumber],
    now: DateTime<Utc>,
) -> Result<Vec<ResolveItem>, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    if numbers.is_empty() || numbers.len() > MAX_NUMBERS {
        return Err(vec![FieldViolation::new(
            "numbers",
            "COUNT_OUT_OF_RANGE",
            format!("between 1 and {MAX_NUMBERS} numbers"),
        )]);
    }
    let mut items = Vec::with_capacity(numbers.len());
    let mut seen: HashSet<IdentifierKey> = HashSet::with_capacity(numbers.len());
    for (i, number) in numbers.iter().enumerate() {
        let field = |part: &str| format!("numbers[{i}].{part}");
        let Some(identifier) = &number.identifier else {
            violations.push(FieldViolation::new(
                field("identifier"),
                "REQUIRED",
                "a phone number is required",
            ));
            continue;
        };
        if !RECYCLED_TYPES.contains(&identifier.r#type.trim().to_lowercase().as_str()) {
            violations.push(FieldViolation::new(
                field("identifier.type"),
                "NOT_REASSIGNABLE",
                "only phone numbers are given out again",
            ));
        }
        let since = match holder_since(number.holder_since.as_ref(), now) {
            Ok(at) => Some(at),
            Err(problem) => {
                violations.push(problem.at(field("holder_since")));
                None
            }
        };
        let key = checked_key(identifier, &field("identifier"), &mut violations);
        if let Some(key) = &key
            && !seen.insert(key.clone())
        {
            violations.push(FieldViolation::new(
                field("identifier"),
                "DUPLICATE",
                "the number is already in this call",
            ));
        }
        if let (Some(key), Some(at)) = (key, since) {
            items.push(ResolveItem {
                keys: vec![key],
                observed_at: Some(at),
                evidence_message_id: String::new(),
            });
        }
    }
    if violations.is_empty() {
        Ok(items)
    } else {
        Err(violations)
    }
}

/// A violation of a field whose path the caller knows.
struct Problem {
    reason: &'static str,
    description: &'static str,
}

impl Problem {
    fn at(self, field: String) -> FieldViolation {
        FieldViolation::new(field, self.reason, self.description)
    }
}

/// The instant the current subscriber got the number: given, valid, and not after `now`
/// (give or take the clock skew).
fn holder_since(
    given: Option<&prost_types::Timestamp>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, Problem> {
    let Some(ts) = given else {
        return Err(Problem {
            reason: "REQUIRED",
            description: "the instant the current subscriber got the number is required",
        });
    };
    let instant = u32::try_from(ts.nanos)
        .ok()
        .filter(|nanos| *nanos < 1_000_000_000)
        .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
        .ok_or(Problem {
            reason: "TIMESTAMP_OUT_OF_RANGE",
            description: "is not a valid instant",
        })?;
    if instant > now + CLOCK_SKEW {
        return Err(Problem {
            reason: "IN_THE_FUTURE",
            description: "is after the call",
        });
    }
    Ok(instant)
}

/// The identifier's key after the checks every identifier gets (lengths, control
/// characters, values in clear), their violations renamed from a resolve item's paths to
/// `field`.
fn checked_key(
    identifier: &Identifier,
    field: &str,
    violations: &mut Vec<FieldViolation>,
) -> Option<IdentifierKey> {
    let raw = [RawItem {
        identifiers: vec![raw_identifier(identifier)],
        observed_at: None,
        evidence_message_id: "",
    }];
    match domain::validate(&raw) {
        Ok(mut valid) => valid.pop().and_then(|item| item.keys.into_iter().next()),
        Err(domain::Rejection::Invalid(found)) => {
            violations.extend(found.into_iter().map(|v| {
                let path = v.field.replacen("items[0].identifiers[0]", field, 1);
                FieldViolation { field: path, ..v }
            }));
            None
        }
        Err(other) => {
            violations.push(FieldViolation::new(field, "INVALID", other.to_string()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(id_type: &str, value: &str, seconds: Option<i64>) -> pb::ReassignedNumber {
        pb::ReassignedNumber {
            identifier: Some(Identifier {
                r#type: id_type.to_owned(),
                value: value.to_owned(),
                scope: String::new(),
            }),
            holder_since: seconds.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
        }
    }

    #[test]
    fn every_bad_number_is_named_by_its_field() {
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default();
        let past = Some(1_770_000_000);
        let numbers = [
            number("phone", "k1:aa", past),
            number("device_id", "k1:bb", past),
            number("phone", "+8613912345678", past),
            number("phone", "k1:cc", None),
            number("phone", "k1:dd", Some(1_790_000_000)),
            number("phone", "k1:aa", past),
            number("phone", "k1:ee\u{0}", past),
        ];
        let violations = checked(&numbers, now).err().unwrap_or_default();
        let named: Vec<(&str, &str)> = violations
            .iter()
            .map(|v| (v.field.as_str(), v.reason))
            .collect();
        assert_eq!(
            named,
            [
                ("numbers[1].identifier.type", "NOT_REASSIGNABLE"),
                ("numbers[2].identifier.value", "NOT_PSEUDONYMISED"),
                ("numbers[3].holder_since", "REQUIRED"),
                ("numbers[4].holder_since", "IN_THE_FUTURE"),
                ("numbers[5].identifier", "DUPLICATE"),
                ("numbers[6].identifier.value", "CONTROL_CHARACTER"),
            ]
        );
        let fine = checked(&numbers[..1], now).unwrap_or_default();
        assert_eq!(fine.len(), 1);
        assert_eq!(
            fine[0].observed_at,
            DateTime::from_timestamp(1_770_000_000, 0)
        );
        assert!(checked(&[], now).is_err());
    }
}
