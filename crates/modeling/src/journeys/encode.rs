//! A stored event turned into the projection's dictionary-encoded row.
//!
//! The store keeps the touchpoint, its type, its department, the source and the value only
//! inside the encoded `CleanEvent`, so they are decoded here once per event as it enters the
//! projection, never per query.

use prost::Message as _;
use touchline_projection::{Dictionaries, Event, NewEvent, ProjectionError, Touch};

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

/// The fields of a stored `CleanEvent` the projection keeps, with `CleanEvent`'s tags.
/// Decoding only these skips the identifiers and the properties (a `Struct` of boxed
/// values), which made up most of the work of reading a payload: a rebuild decodes every
/// stored event once.
#[derive(Clone, PartialEq, prost::Message)]
struct TouchFields {
    #[prost(string, tag = "6")]
    source: String,
    #[prost(string, tag = "14")]
    touchpoint: String,
    #[prost(int32, tag = "15")]
    touchpoint_type: i32,
    #[prost(int32, tag = "16")]
    owning_department: i32,
    #[prost(double, tag = "20")]
    value: f64,
}

/// The properties and traits of a stored `CleanEvent`, decoded only for tenants that mark
/// some analysable: the `Struct`s are most of a payload's decoding cost.
#[derive(Clone, PartialEq, prost::Message)]
struct PropertyFields {
    #[prost(message, optional, tag = "10")]
    properties: Option<prost_types::Struct>,
    #[prost(message, optional, tag = "22")]
    traits: Option<prost_types::Struct>,
}

/// The codes of the analysable `paths` (`properties.…` or `traits.…`, by slot) of a
/// payload.
fn property_codes(
    dictionaries: &mut Dictionaries,
    paths: &[String],
    payload: &[u8],
) -> Result<[u32; touchline_projection::MAX_PROPERTIES], Unprojectable> {
    use super::properties::{PROPERTIES_PREFIX, TRAITS_PREFIX, lookup, value_text};
    let mut codes = [0; touchline_projection::MAX_PROPERTIES];
    if paths.is_empty() {
        return Ok(codes);
    }
    let fields = PropertyFields::decode(payload)?;
    for ((slot, path), code) in paths.iter().enumerate().zip(codes.iter_mut()) {
        let found = match (
            path.strip_prefix(PROPERTIES_PREFIX),
            path.strip_prefix(TRAITS_PREFIX),
        ) {
            (Some(name), _) => fields.properties.as_ref().and_then(|s| lookup(s, name)),
            (None, Some(name)) => fields.traits.as_ref().and_then(|s| lookup(s, name)),
            (None, None) => None,
        };
        if let (Some(text), Some(dictionary)) = (
            found.and_then(value_text),
            dictionaries.properties.get_mut(slot),
        ) {
            *code = dictionary.intern(&text)?;
        }
    }
    Ok(codes)
}

/// The text of the event property `name` (`properties.{name}`) of a stored payload, as the
/// projection codes it; `None` when it has none or the payload does not decode.
pub(crate) fn property_text(payload: &[u8], name: &str) -> Option<String> {
    use super::properties::{lookup, value_text};
    let fields = PropertyFields::decode(payload).ok()?;
    fields
        .properties
        .as_ref()
        .and_then(|s| lookup(s, name))
        .and_then(value_text)
}

/// Encodes `stored` for the person `keys` gives its person, interning its texts and the
/// values of the analysable `properties` (names, by slot).
pub fn encode(
    dictionaries: &mut Dictionaries,
    keys: &mut PersonKeys,
    properties: &[String],
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
    let clean = TouchFields::decode(stored.payload.as_slice())?;
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
        properties: property_codes(dictionaries, properties, &stored.payload)?,
    };
    Ok(NewEvent {
        person: keys.key(stored.person_id),
        event,
    })
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use touchline_proto::common::v1::Identifier;
    use touchline_proto::governance::v1::CleanEvent;

    use super::*;

    #[test]
    fn the_kept_fields_decode_as_the_whole_clean_event_has_them() {
        let mut properties = prost_types::Struct::default();
        properties.fields.insert(
            "amount".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(99.5)),
            },
        );
        for (i, touchpoint) in ["", "home", "小程序/商品页"].iter().enumerate() {
            let clean = CleanEvent {
                sequence: 7,
                message_id: format!("m{i}"),
                event_name: "pay_order".to_owned(),
                channel: "mini_program".to_owned(),
                source: format!("sdk-{i}"),
                touchpoint: (*touchpoint).to_owned(),
                touchpoint_type: i as i32,
                owning_department: 3 - i as i32,
                value: 12.5 * i as f64,
                identifiers: vec![Identifier {
                    r#type: "device_id".to_owned(),
                    value: "d-1".to_owned(),
                    scope: String::new(),
                }],
                properties: Some(properties.clone()),
                ..CleanEvent::default()
            };
            let kept = TouchFields::decode(clean.encode_to_vec().as_slice())
                .unwrap_or_else(|err| panic!("{err}"));
            assert_eq!(kept.source, clean.source);
            assert_eq!(kept.touchpoint, clean.touchpoint);
            assert_eq!(kept.touchpoint_type, clean.touchpoint_type);
            assert_eq!(kept.owning_department, clean.owning_department);
            assert_eq!(kept.value.to_bits(), clean.value.to_bits());
        }
    }
}
