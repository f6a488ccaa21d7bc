//! What makes an event acceptable, decided without gRPC or SQL.
//!
//! Collection refuses only what it cannot store or route: a missing or
//! oversized message id, a track event without a name, a source or channel
//! that is too long or holds a control character (both are text columns and
//! counter keys). Everything about content — timestamps,
//! property values, identifiers — is stored as received and judged by
//! governance, which knows the source's formats and time zone and quarantines
//! with a reason that can be fixed and replayed: refusing it here would lose
//! the event unless the client resent it. Rejections are per event and name
//! the field, so a bad row never fails its batch.

pub mod import;
pub mod names;
pub mod source;

use std::collections::HashSet;

use touchline_error::FieldViolation;

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
    /// The source id as sent; may be empty.
    pub source: &'a str,
    /// The channel as sent; may be empty.
    pub channel: &'a str,
}

/// Checks one event; every problem is reported, not only the first.
pub fn validate(check: &EventCheck<'_>) -> Result<(), Vec<FieldViolation>> {
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
    check_id(
        "source",
        check.source,
        false,
        touchline_bounds::MAX_SOURCE_BYTES,
        &mut violations,
    );
    check_id(
        "channel",
        check.channel,
        false,
        touchline_bounds::MAX_CHANNEL_BYTES,
        &mut violations,
    );
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
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
    fn empty_name_and_nul_in_text_columns_are_named() {
        let mut check = ok_event();
        check.event_name = " ";
        assert_eq!(reasons(&check), vec![("event".to_owned(), "EMPTY")]);

        let mut check = ok_event();
        check.source = "a\0b";
        assert_eq!(reasons(&check), vec![("source".to_owned(), "NUL_BYTE")]);

        let long = "c".repeat(touchline_bounds::MAX_CHANNEL_BYTES + 1);
        let mut check = ok_event();
        check.source = "pos\u{1b}";
        check.channel = &long;
        assert_eq!(
            reasons(&check),
            vec![
                ("source".to_owned(), "CONTROL_CHARACTER"),
                ("channel".to_owned(), "TOO_LONG")
            ]
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

    mod props {
        use proptest::prelude::*;

        use super::*;

        /// Text built from the characters validation cares about.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => "[a-z0-9_.:-]{0,20}",
                1 => "[ \t]{0,3}",
                1 => ".{0,300}",
                1 => "[a\u{0}\u{7}\n é]{0,8}",
            ]
        }

        proptest! {
            /// Validation never panics and refuses exactly what cannot be
            /// stored or routed, naming each field at fault.
            #[test]
            fn validation_refuses_exactly_what_cannot_be_stored(
                message_id in text(),
                event_name in text(),
                requires_name in any::<bool>(),
                source in text(),
            ) {
                let check = EventCheck {
                    message_id: &message_id,
                    requires_name,
                    event_name: &event_name,
                    source: &source,
                    channel: "",
                };
                let bad_id = |v: &str, required: bool, max: usize| {
                    if v.trim().is_empty() {
                        required
                    } else {
                        v.len() > max || v.chars().any(char::is_control)
                    }
                };
                let mut expected = Vec::new();
                if bad_id(&message_id, true, MAX_MESSAGE_ID_BYTES) {
                    expected.push("message_id");
                }
                if bad_id(&event_name, requires_name, MAX_EVENT_NAME_BYTES) {
                    expected.push("event");
                }
                if bad_id(&source, false, touchline_bounds::MAX_SOURCE_BYTES) {
                    expected.push("source");
                }
                let mut fields: Vec<String> = validate(&check)
                    .err()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| v.field)
                    .collect();
                fields.dedup();
                prop_assert_eq!(fields, expected);
            }

            /// Only repeats after the first occurrence are marked.
            #[test]
            fn repeats_match_a_set(ids in proptest::collection::vec("[a-c]{0,2}", 0..40)) {
                let marks = repeated_in_batch(ids.iter().map(String::as_str));
                for (i, (id, repeated)) in ids.iter().zip(marks).enumerate() {
                    prop_assert_eq!(repeated, ids[..i].contains(id));
                }
            }
        }
    }
}
