//! Shared by the end-to-end suite and the benchmarks: building events the
//! way a client SDK would, and judging a run of the reference data set
//! against its ground truth.
#![allow(
    clippy::too_many_lines,
    reason = "the acceptance scenario and its helpers read top to bottom"
)]

pub mod acceptance;

use touchline_proto::common::v1::{Event, EventType, Identifier};

/// A valid track event with a unique id for `person` at `epoch_ms`.
pub fn sample_event(message_id: &str, person: u64, event: &str, epoch_ms: i64) -> Event {
    Event {
        message_id: message_id.to_owned(),
        r#type: EventType::Track as i32,
        event: event.to_owned(),
        anonymous_id: format!("anon-{person}"),
        original_timestamp: epoch_ms.to_string(),
        channel: ["app", "mini_program", "web", "pos"][usize::try_from(person % 4).unwrap_or(0)]
            .to_owned(),
        source: "sdk-app".to_owned(),
        identifiers: vec![Identifier {
            r#type: "device_id".to_owned(),
            value: format!("device-{person}"),
            scope: String::new(),
        }],
        ..Default::default()
    }
}
