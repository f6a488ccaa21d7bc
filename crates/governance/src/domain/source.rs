//! The settings of a registered source that cleaning needs, as a validated
//! domain type built from collection's `Source`.

use chrono_tz::Tz;

use super::dictionary::ValueKind;

/// How a mapped value is rewritten before coercion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transform {
    /// As delivered.
    #[default]
    None,
    /// Trim white space.
    Trim,
    /// Trim and lower-case.
    Lowercase,
    /// Trim and upper-case.
    Uppercase,
    /// Keep only digits.
    DigitsOnly,
}

/// One input field mapped to one canonical field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldMap {
    /// Input field (dot path in the properties); empty with a constant.
    pub source_field: String,
    /// Canonical field: `event`, `original_timestamp`, `sent_at`, `user_id`,
    /// `anonymous_id`, `channel`, or under `properties.`/`traits.`/`context.`.
    pub target_field: String,
    /// Type to coerce to.
    pub value_type: ValueKind,
    /// Rewrite before coercion.
    pub transform: Transform,
    /// Multiplier for numbers (1 when unset).
    pub scale: f64,
    /// Fixed value instead of reading the input.
    pub constant: String,
    /// Timestamp format for this field.
    pub timestamp_format: String,
}

/// An input field holding an identifier.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentifierFieldSpec {
    /// Input field.
    pub source_field: String,
    /// Identifier type.
    pub identifier_type: String,
    /// Fixed scope.
    pub scope: String,
    /// Input field holding the scope.
    pub scope_field: String,
}

/// Everything cleaning needs to know about a source at one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
    /// Source id.
    pub id: String,
    /// Revision.
    pub revision: i64,
    /// True for SDK sources (app, mini-program, web): device clocks, so
    /// timestamps are corrected for skew with `sent_at`.
    pub sdk: bool,
    /// Default channel.
    pub channel: String,
    /// Zone of timestamps without an offset.
    pub time_zone: Tz,
    /// Declared timestamp formats, tried in order.
    pub timestamp_formats: Vec<String>,
    /// Field mappings.
    pub field_mappings: Vec<FieldMap>,
    /// Identifier fields.
    pub identifier_fields: Vec<IdentifierFieldSpec>,
    /// Fields identifying a record at this source.
    pub natural_key_fields: Vec<String>,
    /// Field holding the event name.
    pub event_name_field: String,
    /// Name of records without one.
    pub default_event_name: String,
    /// `EventType` number of records.
    pub default_event_type: i32,
    /// Drop fields no mapping names.
    pub drop_unmapped: bool,
}

impl SourceSpec {
    /// The spec of an unregistered source (revision 0): a generic SDK event
    /// stream in UTC with no mapping.
    pub fn generic(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            revision: 0,
            sdk: true,
            channel: String::new(),
            time_zone: Tz::UTC,
            timestamp_formats: Vec::new(),
            field_mappings: Vec::new(),
            identifier_fields: Vec::new(),
            natural_key_fields: Vec::new(),
            event_name_field: String::new(),
            default_event_name: String::new(),
            default_event_type: 0,
            drop_unmapped: false,
        }
    }
}

/// Builds the spec from collection's `Source`; an unknown time zone is an
/// error (the source registry validates it, so this only guards drift).
pub fn from_proto(
    source: &touchline_proto::collection::v1::Source,
    revision: i64,
) -> Result<SourceSpec, String> {
    let id = source
        .name
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let time_zone = match source.time_zone.trim() {
        "" => Tz::UTC,
        zone => zone
            .parse::<Tz>()
            .map_err(|_| format!("source {id} has an unknown time zone {zone:?}"))?,
    };
    // App, mini-program and web SDKs (1, 2, 3) run on device clocks.
    let sdk = matches!(source.kind, 1..=3);
    Ok(SourceSpec {
        id,
        revision: if source.revision > 0 {
            source.revision
        } else {
            revision
        },
        sdk,
        channel: source.channel.trim().to_lowercase(),
        time_zone,
        timestamp_formats: source.timestamp_formats.clone(),
        field_mappings: source
            .field_mappings
            .iter()
            .map(|m| FieldMap {
                source_field: m.source_field.clone(),
                target_field: m.target_field.clone(),
                value_type: ValueKind::from_proto(m.r#type),
                transform: match m.transform {
                    1 => Transform::Trim,
                    2 => Transform::Lowercase,
                    3 => Transform::Uppercase,
                    4 => Transform::DigitsOnly,
                    _ => Transform::None,
                },
                scale: if m.scale == 0.0 { 1.0 } else { m.scale },
                constant: m.constant.clone(),
                timestamp_format: m.timestamp_format.clone(),
            })
            .collect(),
        identifier_fields: source
            .identifier_fields
            .iter()
            .map(|f| IdentifierFieldSpec {
                source_field: f.source_field.clone(),
                identifier_type: f.identifier_type.trim().to_lowercase(),
                scope: f.scope.clone(),
                scope_field: f.scope_field.clone(),
            })
            .collect(),
        natural_key_fields: source.natural_key_fields.clone(),
        event_name_field: source.event_name_field.clone(),
        default_event_name: source.default_event_name.clone(),
        default_event_type: source.default_event_type,
        drop_unmapped: source.unmapped_fields == 2,
    })
}
