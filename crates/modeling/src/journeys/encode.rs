//! A stored event turned into the projection's dictionary-encoded row.
//!
//! The store keeps the touchpoint, its type, its department, the source and the value only
//! inside the encoded `CleanEvent`, so they are decoded here once per event as it enters the
//! projection, never per query.

use prost::Message as _;
use touchline_projection::{Dictionaries, Event, NewEvent, ProjectionError, Touch};
use touchline_proto::governance::v1::CleanEvent;

use super::persons::PersonKeys;
use crate::store::journal::JournalEvent;

/// Why a stored event cannot enter the projection.
#[derive(Debug, thiserror::Error)]
pub enum Unprojectable {
    /// Its payload is not a `CleanEvent`.
    #[error("its payload does not decode")]
    Payload(#[from] prost::DecodeError),
    /// A field is outside what the projection stores (a time beyond ±4,400 years, a full
    /// dictionary).
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// A negative clean-log sequence, or one past 48 bits.
    #[error("sequence {0} is outside what the projection stores")]
    Sequence(i64),
    /// A time past ±4,400 years of 1970.
    #[error("event time {0} ms is outside what the projection stores")]
    Time(i64),
}

impl Unprojectable {
    /// A stable label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Unprojectable::Payload(_) => "payload",
            Unprojectable::Projection(ProjectionError::DictionaryFull { .. }) => "dictionary_full",
            Unprojectable::Projection(_) => "out_of_range",
            Unprojectable::Sequence(_) => "sequence",
            Unprojectable::Time(_) => "time",
        }
    }
}

/// Encodes `stored` for the person `keys` gives its person, interning its texts.
pub fn encode(
    dictionaries: &mut Dictionaries,
    keys: &mut PersonKeys,
    stored: &JournalEvent,
) -> Result<NewEvent, Unprojectable> {
    // Ranges first: the projection refuses a whole batch for one bad row, and a catch-up
    // must set the row aside, not stop.
    let seq = u64::try_from(stored.sequence)
        .ok()
        .filter(|seq| *seq <= touchline_projection::MAX_SEQ)
        .ok_or(Unprojectable::Sequence(stored.sequence))?;
    let time_ms = stored.event_time.timestamp_millis();
    if !(touchline_projection::MIN_TIME_MS..=touchline_projection::MAX_TIME_MS).contains(&time_ms) {
        return Err(Unprojectable::Time(time_ms));
    }
    let clean = CleanEvent::decode(stored.payload.as_slice())?;
    let touch = Touch {
        channel: dictionaries.channels.intern(&stored.channel)?,
        touchpoint: dictionaries.touchpoints.intern(&clean.touchpoint)?,
        touchpoint_type: u8::try_from(clean.touchpoint_type).unwrap_or(0),
        department: u8::try_from(clean.owning_department).unwrap_or(0),
        source: dictionaries.sources.intern(&clean.source)?,
    };
    let event = Event {
        time_ms,
        seq,
        event: dictionaries.events.intern(&stored.event_name)?,
        touch,
        value: (clean.value != 0.0 && clean.value.is_finite()).then_some(clean.value),
        properties: [0; touchline_projection::MAX_PROPERTIES],
    };
    Ok(NewEvent {
        person: keys.key(stored.person_id),
        event,
    })
}
