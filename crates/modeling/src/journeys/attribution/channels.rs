//! Which channel a touch is credited to: the fields a request may name for it (checked),
//! and the tables that turn a view's codes into channel codes (the touch's own channel,
//! touchpoint or source, an analysable property's values, or what referred the event).

use std::collections::HashMap;

use touchline_projection::Projection;

use super::collect::NO_CHANNEL;
use crate::journeys::query::Violations;

/// The column of the projection that names a touch's channel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ChannelField {
    /// `channel`.
    #[default]
    Channel,
    /// `{channel}/{touchpoint}`.
    Touchpoint,
    /// `source`.
    Source,
    /// `properties.{name}` (the name): an analysable property, e.g. a campaign.
    Property(String),
}

/// The channel field a request names, or an `UNKNOWN_FIELD` violation.
pub(super) fn check_channel_field(field: &str, problems: &mut Violations) -> ChannelField {
    match field {
        "" | "channel" => ChannelField::Channel,
        "touchpoint" => ChannelField::Touchpoint,
        "source" => ChannelField::Source,
        other => {
            if let Some(name) = crate::journeys::properties::name_of(other) {
                return ChannelField::Property(name.to_owned());
            }
            problems.add(
                "channel_field",
                "UNKNOWN_FIELD",
                "channel, touchpoint, source or properties.{name} (an analysable property)",
            );
            ChannelField::Channel
        }
    }
}

/// The analysable property a request names as its referrer field (`None`: none named), or
/// an `UNKNOWN_FIELD` violation.
pub(super) fn check_referrer_field(field: &str, problems: &mut Violations) -> Option<String> {
    if field.is_empty() {
        return None;
    }
    let name = crate::journeys::properties::name_of(field);
    if name.is_none() {
        problems.add(
            "referrer_field",
            "UNKNOWN_FIELD",
            "properties.{name} (an analysable property, e.g. properties.utm_source), or empty",
        );
    }
    name.map(str::to_owned)
}

/// Channel codes by property code, for a property's values as channels: each non-empty
/// value is its own channel.
pub(super) fn property_channels(projection: &Projection, slot: usize) -> (Vec<u32>, Vec<String>) {
    let Some(values) = projection.dictionaries().properties.get(slot) else {
        return (Vec::new(), Vec::new());
    };
    let mut names = Vec::new();
    let channel_of = (0..values.len() as u32)
        .map(|code| match values.text(code) {
            Some(text) if !text.is_empty() => {
                names.push(text.to_owned());
                (names.len() - 1) as u32
            }
            _ => NO_CHANNEL,
        })
        .collect();
    (channel_of, names)
}

pub(super) fn channel_table(
    projection: &Projection,
    field: &ChannelField,
) -> (Vec<u32>, Vec<String>) {
    let dictionaries = projection.dictionaries();
    let text = |code: u32, dictionary: &touchline_projection::Dictionary| {
        dictionary.text(code).unwrap_or_default().to_owned()
    };
    let mut codes: HashMap<String, u32> = HashMap::new();
    let mut names = Vec::new();
    let channel_of = (0..projection.touch_count())
        .map(|code| {
            let touch = projection.touch(code as u16);
            let name = match field {
                ChannelField::Channel => text(touch.channel, &dictionaries.channels),
                ChannelField::Source => text(touch.source, &dictionaries.sources),
                ChannelField::Property(_) => String::new(),
                ChannelField::Touchpoint => {
                    let touchpoint = text(touch.touchpoint, &dictionaries.touchpoints);
                    if touchpoint.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "{}/{touchpoint}",
                            text(touch.channel, &dictionaries.channels)
                        )
                    }
                }
            };
            if name.is_empty() {
                return NO_CHANNEL;
            }
            *codes.entry(name).or_insert_with_key(|name| {
                names.push(name.clone());
                (names.len() - 1) as u32
            })
        })
        .collect();
    (channel_of, names)
}

/// Channel codes by the code of a referrer property's values: a value names a channel, one
/// of `names` or a new one added to them; an empty value names none.
pub(super) fn referrer_channels(
    projection: &Projection,
    slot: usize,
    names: &mut Vec<String>,
) -> Vec<u32> {
    let Some(values) = projection.dictionaries().properties.get(slot) else {
        return Vec::new();
    };
    let mut codes: HashMap<String, u32> = names
        .iter()
        .enumerate()
        .map(|(code, name)| (name.clone(), code as u32))
        .collect();
    (0..values.len() as u32)
        .map(|code| match values.text(code) {
            Some(text) if !text.is_empty() => {
                *codes.entry(text.to_owned()).or_insert_with_key(|name| {
                    names.push(name.clone());
                    (names.len() - 1) as u32
                })
            }
            _ => NO_CHANNEL,
        })
        .collect()
}
