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

/// The analysable property a request names in `field` (its referrer or its conversion key;
/// `None`: none named), or an `UNKNOWN_FIELD` violation of `at`.
pub(super) fn property_field(field: &str, at: &str, problems: &mut Violations) -> Option<String> {
    if field.is_empty() {
        return None;
    }
    let name = crate::journeys::properties::name_of(field);
    if name.is_none() {
        problems.add(
            at,
            "UNKNOWN_FIELD",
            "properties.{name} (an analysable property, e.g. properties.utm_source), or empty",
        );
    }
    name.map(str::to_owned)
}

/// Channel names by code, each name once: the table a request's channels are numbered by.
#[derive(Debug, Default)]
pub(super) struct ChannelNames {
    names: Vec<String>,
    codes: HashMap<String, u32>,
}

impl ChannelNames {
    /// The code of `name`, numbering it next when it is new.
    fn code(&mut self, name: &str) -> u32 {
        if let Some(code) = self.codes.get(name) {
            return *code;
        }
        let code = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.codes.insert(name.to_owned(), code);
        code
    }

    /// The names, by code.
    pub(super) fn into_names(self) -> Vec<String> {
        self.names
    }
}

/// Channel codes by property code, for a property's values as channels: each non-empty
/// value is its own channel.
pub(super) fn property_channels(projection: &Projection, slot: usize) -> (Vec<u32>, ChannelNames) {
    let mut names = ChannelNames::default();
    let Some(values) = projection.dictionaries().properties.get(slot) else {
        return (Vec::new(), names);
    };
    let channel_of = (0..values.len() as u32)
        .map(|code| match values.text(code) {
            Some(text) if !text.is_empty() => names.code(text),
            _ => NO_CHANNEL,
        })
        .collect();
    (channel_of, names)
}

/// Channel codes by touch code, for the touch column `field` names; a touch with an empty
/// name has none.
pub(super) fn channel_table(
    projection: &Projection,
    field: &ChannelField,
) -> (Vec<u32>, ChannelNames) {
    let dictionaries = projection.dictionaries();
    let text = |code: u32, dictionary: &touchline_projection::Dictionary| {
        dictionary.text(code).unwrap_or_default().to_owned()
    };
    let mut names = ChannelNames::default();
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
                NO_CHANNEL
            } else {
                names.code(&name)
            }
        })
        .collect();
    (channel_of, names)
}

/// Channel codes by the code of a referrer property's values: a value names a channel, one
/// of `names` or a new one added to them; an empty value names none.
pub(super) fn referrer_channels(
    projection: &Projection,
    slot: usize,
    names: &mut ChannelNames,
) -> Vec<u32> {
    let Some(values) = projection.dictionaries().properties.get(slot) else {
        return Vec::new();
    };
    (0..values.len() as u32)
        .map(|code| match values.text(code) {
            Some(text) if !text.is_empty() => names.code(text),
            _ => NO_CHANNEL,
        })
        .collect()
}
