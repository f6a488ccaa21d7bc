//! The cleaning step for one raw event, free of gRPC and SQL.
//!
//! For the walking skeleton the canonical name is the received name (or the
//! call type for unnamed identify/page/screen calls); the event dictionary,
//! field mapping and PII pseudonymisation replace this in later work.

use chrono::{DateTime, Utc};
use touchline_proto::common::v1::{Event, EventType, Identifier};
use touchline_proto::governance::v1::CleanEvent;
use touchline_time::{correct_clock_skew, parse_client_timestamp};

/// Why a raw event could not be cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Stable reason code.
    pub reason: &'static str,
    /// The offending field.
    pub field: &'static str,
    /// Details for people.
    pub detail: String,
}

/// Cleans one event received at `received_at`.
pub fn clean(
    event: &Event,
    received_at: DateTime<Utc>,
) -> Result<(CleanEvent, DateTime<Utc>), Quarantined> {
    let original =
        parse_client_timestamp(&event.original_timestamp).map_err(|err| Quarantined {
            reason: "UNPARSEABLE_TIMESTAMP",
            field: "original_timestamp",
            detail: err.to_string(),
        })?;
    let sent_at = match event.sent_at.trim() {
        "" => None,
        text => parse_client_timestamp(text).ok(),
    };
    let event_time = correct_clock_skew(original, sent_at, received_at);
    let event_name = match (event.event.trim(), event.r#type()) {
        ("", EventType::Identify) => "identify".to_owned(),
        ("", EventType::Alias) => "alias".to_owned(),
        ("", EventType::Page) => "page_view".to_owned(),
        ("", EventType::Screen) => "screen_view".to_owned(),
        ("", EventType::Track | EventType::Unspecified) => {
            return Err(Quarantined {
                reason: "MISSING_EVENT_NAME",
                field: "event",
                detail: "track events must be named".to_owned(),
            });
        }
        (name, _) => name.to_owned(),
    };
    let mut identifiers = Vec::with_capacity(event.identifiers.len() + 3);
    for (kind, value) in [
        ("anonymous_id", &event.anonymous_id),
        ("user_id", &event.user_id),
        ("user_id", &event.previous_id),
    ] {
        let value = value.trim();
        if !value.is_empty() {
            identifiers.push(Identifier {
                r#type: kind.to_owned(),
                value: value.to_owned(),
                scope: String::new(),
            });
        }
    }
    for identifier in &event.identifiers {
        let value = identifier.value.trim();
        if !value.is_empty() && !identifier.r#type.trim().is_empty() {
            identifiers.push(Identifier {
                r#type: identifier.r#type.trim().to_lowercase(),
                value: value.to_owned(),
                scope: identifier.scope.trim().to_owned(),
            });
        }
    }
    if identifiers.is_empty() {
        return Err(Quarantined {
            reason: "NO_IDENTIFIER",
            field: "identifiers",
            detail: "the event carries no identifier of a person".to_owned(),
        });
    }
    let clean = CleanEvent {
        message_id: event.message_id.clone(),
        event_name,
        source_event_name: event.event.clone(),
        channel: event.channel.trim().to_lowercase(),
        source: event.source.clone(),
        event_time: Some(timestamp(event_time)),
        received_at: Some(timestamp(received_at)),
        identifiers,
        properties: event.properties.clone(),
        ..Default::default()
    };
    Ok((clean, event_time))
}

/// Converts to the protobuf timestamp.
pub fn timestamp(instant: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: instant.timestamp(),
        nanos: i32::try_from(instant.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Converts from the protobuf timestamp (`None` when out of range).
pub fn from_timestamp(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            message_id: "m1".into(),
            event: "submit_order".into(),
            anonymous_id: " anon-1 ".into(),
            original_timestamp: "1795507200000".into(),
            channel: "App".into(),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_name_and_collects_identifiers() {
        let received = parse_client_timestamp("1795507260000").expect("valid");
        let (clean, at) = clean(&event(), received).expect("clean");
        assert_eq!(clean.event_name, "submit_order");
        assert_eq!(clean.channel, "app");
        assert_eq!(clean.identifiers.len(), 1);
        assert_eq!(clean.identifiers[0].value, "anon-1");
        assert_eq!(at, parse_client_timestamp("1795507200000").expect("valid"));
    }

    #[test]
    fn corrects_skew_when_sent_at_is_known() {
        let mut e = event();
        e.sent_at = "1795507205000".into(); // 5 s after the event, device clock
        let received = parse_client_timestamp("1795510800000").expect("valid"); // an hour later
        let (_, at) = clean(&e, received).expect("clean");
        assert_eq!(at, parse_client_timestamp("1795510795000").expect("valid"));
    }

    #[test]
    fn quarantines_what_cannot_be_cleaned() {
        let mut e = event();
        e.anonymous_id.clear();
        let received = parse_client_timestamp("1795507260000").expect("valid");
        assert_eq!(
            clean(&e, received).map_err(|q| q.reason),
            Err("NO_IDENTIFIER")
        );
    }
}
