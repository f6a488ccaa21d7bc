//! What makes an event acceptable, decided without gRPC or SQL.
//!
//! Rejections are per event and name the field, so a bad row never fails
//! its batch and the caller knows exactly what to fix.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use touchline_error::FieldViolation;
use touchline_time::{TimestampError, parse_client_timestamp};

/// Longest accepted message id, bytes.
pub const MAX_MESSAGE_ID_BYTES: usize = 128;
/// Longest accepted event name, bytes.
pub const MAX_EVENT_NAME_BYTES: usize = 256;

/// The parts of an event validation looks at, borrowed from the request.
#[derive(Debug, Default)]
pub struct EventCheck<'a> {
    /// Client message id.
    pub message_id: &'a str,
    /// Whether the event is a track event (which must be named).
    pub requires_name: bool,
    /// The event name.
    pub event_name: &'a str,
    /// Client clock when it happened.
    pub original_timestamp: &'a str,
    /// Client clock when it was sent; may be empty.
    pub sent_at: &'a str,
    /// Every other text value of the event with its field path, for the
    /// checks that apply to all text (no NUL bytes: PostgreSQL text cannot
    /// hold them and downstream systems mishandle them).
    pub other_text: Vec<(String, &'a str)>,
}

/// The instants a valid event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidEvent {
    /// When it happened on the client's clock.
    pub original: DateTime<Utc>,
    /// When the client sent it, if it said.
    pub sent_at: Option<DateTime<Utc>>,
}

/// Checks one event; every problem is reported, not only the first.
pub fn validate(check: &EventCheck<'_>) -> Result<ValidEvent, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    check_id(
        "message_id",
        check.message_id,
        true,
        MAX_MESSAGE_ID_BYTES,
        &mut violations,
    );
    check_id(
        "event",
        check.event_name,
        check.requires_name,
        MAX_EVENT_NAME_BYTES,
        &mut violations,
    );
    for (field, value) in &check.other_text {
        if value.contains('\0') {
            violations.push(FieldViolation::new(
                field.clone(),
                "NUL_BYTE",
                "contains a NUL byte",
            ));
        }
    }
    let original = match parse_client_timestamp(check.original_timestamp) {
        Ok(instant) => Some(instant),
        Err(err) => {
            violations.push(timestamp_violation("original_timestamp", &err));
            None
        }
    };
    let sent_at = if check.sent_at.trim().is_empty() {
        None
    } else {
        match parse_client_timestamp(check.sent_at) {
            Ok(instant) => Some(instant),
            Err(err) => {
                violations.push(timestamp_violation("sent_at", &err));
                None
            }
        }
    };
    match original {
        Some(original) if violations.is_empty() => Ok(ValidEvent { original, sent_at }),
        _ => Err(violations),
    }
}

fn check_id(field: &str, value: &str, required: bool, max: usize, out: &mut Vec<FieldViolation>) {
    if value.trim().is_empty() {
        if required {
            out.push(FieldViolation::new(field, "EMPTY", "must not be empty"));
        }
        return;
    }
    if value.len() > max {
        out.push(FieldViolation::new(
            field,
            "TOO_LONG",
            format!("is longer than {max} bytes"),
        ));
    }
    if value.contains('\0') {
        out.push(FieldViolation::new(
            field,
            "NUL_BYTE",
            "contains a NUL byte",
        ));
    } else if value.chars().any(char::is_control) {
        out.push(FieldViolation::new(
            field,
            "CONTROL_CHARACTER",
            "contains a control character",
        ));
    }
}

fn timestamp_violation(field: &str, err: &TimestampError) -> FieldViolation {
    let reason = match err {
        TimestampError::Empty => "EMPTY",
        TimestampError::Unrecognised => "UNPARSEABLE_TIMESTAMP",
        TimestampError::OutOfRange => "TIMESTAMP_OUT_OF_RANGE",
    };
    FieldViolation::new(field, reason, err.to_string())
}

/// Marks the events of a batch whose message id already appeared earlier in
/// the same batch: only the first occurrence is stored.
pub fn repeated_in_batch<'a>(message_ids: impl IntoIterator<Item = &'a str>) -> Vec<bool> {
    let mut seen = HashSet::new();
    message_ids.into_iter().map(|id| !seen.insert(id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_event() -> EventCheck<'static> {
        EventCheck {
            message_id: "m-1",
            requires_name: true,
            event_name: "submit_order",
            original_timestamp: "1795507200000",
            ..EventCheck::default()
        }
    }

    fn reasons(check: &EventCheck<'_>) -> Vec<(String, &'static str)> {
        validate(check)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.field, v.reason))
            .collect()
    }

    #[test]
    fn a_good_event_passes() {
        assert!(validate(&ok_event()).is_ok());
    }

    #[test]
    fn empty_name_nul_and_bad_time_are_named() {
        let mut check = ok_event();
        check.event_name = " ";
        assert_eq!(reasons(&check), vec![("event".to_owned(), "EMPTY")]);

        let mut check = ok_event();
        check
            .other_text
            .push(("properties.note".to_owned(), "a\0b"));
        assert_eq!(
            reasons(&check),
            vec![("properties.note".to_owned(), "NUL_BYTE")]
        );

        let mut check = ok_event();
        check.original_timestamp = "24/11/2026";
        assert_eq!(
            reasons(&check),
            vec![("original_timestamp".to_owned(), "UNPARSEABLE_TIMESTAMP")]
        );
    }

    #[test]
    fn identify_events_need_no_name_but_need_an_id() {
        let mut check = ok_event();
        check.requires_name = false;
        check.event_name = "";
        check.message_id = "";
        assert_eq!(reasons(&check), vec![("message_id".to_owned(), "EMPTY")]);
    }

    #[test]
    fn repeats_within_a_batch_are_marked_after_the_first() {
        assert_eq!(
            repeated_in_batch(["a", "b", "a", "c", "b"]),
            vec![false, false, true, false, true]
        );
    }
}
