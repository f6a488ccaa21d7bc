//! The cleaning function: one raw event, its source, the dictionary and the
//! tenant's privacy settings in; one clean event or one quarantine verdict
//! out. Pure and total: it never panics, whatever the input.
//!
//! Tenants without a published dictionary get pass-through naming (the
//! canonical name is the received one). Every other step applies to all.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};
use touchline_proto::common::v1::{Event, EventType};
use touchline_proto::governance::v1::{CleanEvent, QuarantineReason};

use super::dictionary::{Dictionary, EventDef};
use super::ids::identifiers;
use super::mapping::{Working, apply_source, coerce};
use super::natural_key::{content_hash, natural_key};
use super::pii::{self, PrivacySettings, TenantKey};
use super::pii_scan;
use super::source::SourceSpec;
use super::timestamp::{self, TimeContext, TimeProblem};
use super::value::{from_struct, is_blank, to_struct, to_value};
use payload::{has_nul, key_has_nul, non_finite_path, payload_problem, printable};

mod payload;

/// Properties, traits and context together may not exceed this.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Nor be nested deeper than this.
pub const MAX_DEPTH: usize = 8;
/// Events received this long after they happened are late.
pub const LATE_AFTER: TimeDelta = TimeDelta::hours(24);

/// Everything the cleaning of one event depends on.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The event as received.
    pub event: &'a Event,
    /// When collection accepted it.
    pub received_at: DateTime<Utc>,
    /// Its source's settings at the revision it was received under.
    pub source: &'a SourceSpec,
    /// The active dictionary; `None` for pass-through naming.
    pub dictionary: Option<&'a Dictionary>,
    /// The tenant's privacy settings.
    pub privacy: &'a PrivacySettings,
    /// The tenant's current pseudonymisation key.
    pub key: &'a TenantKey,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Reason code.
    pub reason: QuarantineReason,
    /// Field path.
    pub field: String,
    /// For people; never contains personal data.
    pub detail: String,
}

/// Why an event was quarantined: every problem, the first by reason order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantine {
    /// All problems, sorted by reason order.
    pub violations: Vec<Violation>,
}

impl Quarantine {
    /// The first problem.
    pub fn first(&self) -> Option<&Violation> {
        self.violations.first()
    }

    /// The first reason (UNSPECIFIED only for an empty verdict, which
    /// [`clean`] never returns).
    pub fn reason(&self) -> QuarantineReason {
        self.first()
            .map_or(QuarantineReason::Unspecified, |v| v.reason)
    }

    fn single(reason: QuarantineReason, field: &str, detail: impl Into<String>) -> Self {
        Self {
            violations: vec![Violation {
                reason,
                field: field.to_owned(),
                detail: detail.into(),
            }],
        }
    }
}

/// A clean event with what the worker needs besides it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cleaned {
    /// The event (sequence fields left for the store to set).
    pub event: CleanEvent,
    /// Its normalised time.
    pub event_time: DateTime<Utc>,
    /// Natural key of a business record, if it has one.
    pub natural_key: Option<String>,
    /// Content hash for restatement detection.
    pub content_hash: Vec<u8>,
    /// Received more than a day after it happened.
    pub late: bool,
    /// Has an identifier besides the anonymous id.
    pub identified: bool,
}

/// Cleans one event.
#[expect(
    clippy::too_many_lines,
    reason = "the cleaning of one event in the order the contract fixes (mapping, name, time, identifiers, PII, properties, rules); each step is a call and the length is the sequence"
)]
pub fn clean(inputs: Inputs<'_>) -> Result<Cleaned, Quarantine> {
    let event = inputs.event;
    let mut w = working(event);
    if let Some(v) = payload_problem(&w) {
        return Err(Quarantine {
            violations: vec![v],
        });
    }
    // JSON, and so the clean log, cannot hold NaN or ±Infinity: turning them into null would
    // change the data without a trace, so the event is quarantined naming the field.
    for (area, fields) in [
        ("properties", event.properties.as_ref()),
        ("traits", event.traits.as_ref()),
        ("context", event.context.as_ref()),
    ] {
        if let Some(path) = fields.and_then(|f| non_finite_path(f, area)) {
            return Err(Quarantine::single(
                QuarantineReason::InvalidPropertyValue,
                &path,
                "is not a finite number (NaN or an infinity)",
            ));
        }
    }
    apply_source(&mut w, inputs.source).map_err(|e| {
        let reason = if e.type_error {
            QuarantineReason::InvalidPropertyType
        } else {
            QuarantineReason::FieldMappingFailed
        };
        Quarantine::single(reason, &e.field, e.detail)
    })?;
    let mut violations = Vec::new();

    // Naming.
    let event_type = EventType::try_from(w.event_type).unwrap_or(EventType::Unspecified);
    let structural = match event_type {
        EventType::Identify => Some("identify"),
        EventType::Alias => Some("alias"),
        EventType::Page => Some("page_view"),
        EventType::Screen => Some("screen_view"),
        EventType::Track | EventType::Unspecified => None,
    };
    let source_event_name = w.name.trim().to_owned();
    if let Some(canonical) = structural
        && !source_event_name.is_empty()
        && matches!(event_type, EventType::Page | EventType::Screen)
    {
        w.properties
            .entry("name")
            .or_insert_with(|| Value::String(source_event_name.clone()));
        let _ = canonical;
    }
    let lookup_name = structural.map_or(source_event_name.clone(), str::to_owned);
    let mut def: Option<&EventDef> = None;
    let event_name = match inputs.dictionary {
        _ if lookup_name.is_empty() => {
            violations.push(violation(
                QuarantineReason::UnknownEvent,
                "event",
                "track events must be named",
            ));
            String::new()
        }
        None => lookup_name.clone(),
        Some(dictionary) => match dictionary.resolve(&inputs.source.id, &lookup_name) {
            Some(resolved) => {
                if resolved.event.deprecated {
                    violations.push(violation(
                        QuarantineReason::DeprecatedEvent,
                        "event",
                        format!("{} is deprecated", resolved.event.event_name),
                    ));
                }
                if let Some(alias) = resolved.alias {
                    for (from, to) in &alias.property_renames {
                        if let Some(v) = w.properties.remove(from) {
                            w.properties.insert(to.clone(), v);
                        }
                    }
                }
                def = Some(resolved.event);
                resolved.event.event_name.clone()
            }
            // Structural calls are always understood, even when the
            // dictionary does not classify them.
            None if structural.is_some() => lookup_name.clone(),
            None => {
                violations.push(violation(
                    QuarantineReason::UnknownEvent,
                    "event",
                    "neither a canonical event nor an alias of one",
                ));
                lookup_name.clone()
            }
        },
    };

    // Time.
    // An import of data collected elsewhere says when the collector got it;
    // live traffic leaves it empty and the ingest time stands.
    let collector_received = super::client_time::parse_client_timestamp(&event.received_at).ok();
    let reference = collector_received.unwrap_or(inputs.received_at);
    let ctx = TimeContext {
        zone: inputs.source.time_zone,
        formats: &inputs.source.timestamp_formats,
        skew_correct: inputs.source.sdk,
        collector_received,
    };
    let time =
        match timestamp::normalise(&w.original_timestamp, &w.sent_at, inputs.received_at, ctx) {
            Ok(n) => Some(n),
            Err(problem) => {
                let (reason, detail) = match problem {
                    TimeProblem::Invalid(d) | TimeProblem::Ambiguous(d) => {
                        (QuarantineReason::InvalidTimestamp, d)
                    }
                    TimeProblem::InFuture => (
                        QuarantineReason::TimestampInFuture,
                        "more than 10 minutes after its receipt".to_owned(),
                    ),
                    TimeProblem::TooOld => (
                        QuarantineReason::TimestampTooOld,
                        "before 2000-01-01".to_owned(),
                    ),
                };
                violations.push(violation(reason, "original_timestamp", detail));
                None
            }
        };

    // Identifiers.
    let ids = identifiers(&w, inputs.privacy, inputs.key);
    if let Some(count) = ids.too_many {
        violations.push(violation(
            QuarantineReason::InvalidIdentifier,
            "identifiers",
            format!(
                "the event carries {count} identifiers, over {}",
                touchline_bounds::MAX_IDENTIFIERS_PER_EVENT
            ),
        ));
    } else if ids.kept.is_empty() && !def.is_some_and(|d| d.anonymous_allowed) {
        let (reason, detail) = if ids.invalid > 0 {
            (
                QuarantineReason::InvalidIdentifier,
                format!(
                    "{} identifier(s) could not be normalised and no other identifies the person",
                    ids.invalid
                ),
            )
        } else {
            (
                QuarantineReason::NoIdentifier,
                "the event carries no usable identifier of a person".to_owned(),
            )
        };
        violations.push(violation(reason, &ids.first_invalid_field, detail));
    }

    // A visit's source from its landing URL's tags, else from an ad click id; read after the
    // alias renames, so a source's own name for a click id counts once mapped.
    super::ad_clicks::name_source(&mut w.properties, &w.context);

    // Property specs.
    if let Some(def) = def {
        check_properties(&mut w, def, inputs, &mut violations);
    }
    // A NUL character is never data: it marks a truncated or corrupted
    // value, which the event is quarantined for rather than silently
    // altered.
    for (area, map) in [("properties", &w.properties), ("traits", &w.traits)] {
        if let Some(key) = map.iter().find(|(_, v)| has_nul(v)).map(|(k, _)| k) {
            violations.push(violation(
                QuarantineReason::InvalidPropertyValue,
                &format!("{area}.{}", printable(key)),
                "contains a NUL character",
            ));
        } else if let Some(key) = map.iter().find(|(k, v)| key_has_nul(k, v)).map(|(k, _)| k) {
            violations.push(violation(
                QuarantineReason::InvalidPropertyValue,
                &format!("{area}.{}", printable(key)),
                "a key contains a NUL character",
            ));
        }
    }
    pseudonymise_direct_fields(&mut w.properties, inputs.privacy, inputs.key);
    pseudonymise_direct_fields(&mut w.traits, inputs.privacy, inputs.key);
    pii_scan::pseudonymise_declared_paths(
        &mut w.properties,
        &w.personal_paths,
        inputs.privacy,
        inputs.key,
    );
    pii_scan::pseudonymise_contact_values(&mut w.properties, inputs.key);
    pii_scan::pseudonymise_contact_values(&mut w.traits, inputs.key);

    let Some(time) = time.filter(|_| violations.is_empty()) else {
        violations.sort_by_key(|v| v.reason as i32);
        return Err(Quarantine { violations });
    };

    let channel = def
        .map(|d| d.touchpoint.channel.trim())
        .filter(|c| !c.is_empty())
        .map_or_else(|| w.channel.trim().to_lowercase(), str::to_owned);
    let value = def
        .filter(|d| !d.value_property.is_empty())
        .and_then(|d| w.properties.get(&d.value_property))
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
        .unwrap_or(0.0);
    let key_fields: &[String] = match def {
        Some(d) if !d.natural_key_properties.is_empty() => &d.natural_key_properties,
        _ => &inputs.source.natural_key_fields,
    };
    let natural_key = natural_key(&event_name, key_fields, &w.properties);
    let id_triples: Vec<(String, String, String)> = ids
        .kept
        .iter()
        .map(|i| (i.r#type.clone(), i.value.clone(), i.scope.clone()))
        .collect();
    let hash = content_hash(
        &event_name,
        time.instant.timestamp_micros(),
        &w.properties,
        &id_triples,
    );
    let identified = ids.kept.iter().any(|i| i.r#type != "anonymous_id");
    let clean = CleanEvent {
        message_id: event.message_id.clone(),
        event_name: event_name.clone(),
        source_event_name,
        channel,
        source: inputs.source.id.clone(),
        event_time: Some(timestamp_pb(time.instant)),
        received_at: Some(timestamp_pb(inputs.received_at)),
        identifiers: ids.kept,
        properties: Some(to_struct(&w.properties)),
        dictionary_version: inputs.dictionary.map_or(0, |d| d.version),
        touchpoint: def
            .map(|d| {
                if d.touchpoint.touchpoint.is_empty() {
                    d.event_name.clone()
                } else {
                    d.touchpoint.touchpoint.clone()
                }
            })
            .unwrap_or_default(),
        touchpoint_type: def.map_or(0, |d| d.touchpoint.touchpoint_type),
        owning_department: def.map_or(0, |d| d.touchpoint.owning_department),
        conversion: def.is_some_and(|d| d.conversion),
        value,
        timestamp_corrected: time.corrected,
        traits: (!w.traits.is_empty()).then(|| to_struct(&w.traits)),
        original_timestamp: w.original_timestamp.clone(),
        timestamp_rule: time.rule.clone(),
        original_values: (!w.originals.is_empty()).then(|| to_struct(&w.originals)),
        masked_identifiers: ids.masked,
        blocked_identifiers: ids.blocked,
        invalid_identifiers_dropped: ids.invalid,
        ..Default::default()
    };
    Ok(Cleaned {
        late: reference - time.instant > LATE_AFTER,
        event: clean,
        event_time: time.instant,
        natural_key,
        content_hash: hash,
        identified,
    })
}

fn violation(reason: QuarantineReason, field: &str, detail: impl Into<String>) -> Violation {
    Violation {
        reason,
        field: field.to_owned(),
        detail: detail.into(),
    }
}

fn working(event: &Event) -> Working {
    Working {
        name: event.event.clone(),
        event_type: event.r#type,
        anonymous_id: event.anonymous_id.clone(),
        user_id: event.user_id.clone(),
        previous_id: event.previous_id.clone(),
        original_timestamp: event.original_timestamp.clone(),
        sent_at: event.sent_at.clone(),
        channel: event.channel.clone(),
        properties: from_struct(event.properties.as_ref()),
        traits: from_struct(event.traits.as_ref()),
        context: from_struct(event.context.as_ref()),
        identifiers: event
            .identifiers
            .iter()
            .map(|i| (i.r#type.clone(), i.value.clone(), i.scope.clone()))
            .collect(),
        originals: Map::new(),
        personal_paths: Vec::new(),
    }
}

fn check_properties(
    w: &mut Working,
    def: &EventDef,
    inputs: Inputs<'_>,
    violations: &mut Vec<Violation>,
) {
    for spec in &def.properties {
        let field = format!("properties.{}", spec.name);
        let present = w
            .properties
            .get(&spec.name)
            .filter(|v| !is_blank(v))
            .cloned();
        let Some(delivered) = present else {
            if spec.required {
                violations.push(violation(
                    QuarantineReason::MissingRequiredProperty,
                    &field,
                    "required, but missing, null or empty",
                ));
            }
            continue;
        };
        let coerced = match coerce(
            &delivered,
            spec.value_type,
            inputs.source.time_zone,
            &inputs.source.timestamp_formats,
        ) {
            Ok(v) => v,
            Err(detail) => {
                violations.push(violation(
                    QuarantineReason::InvalidPropertyType,
                    &field,
                    detail,
                ));
                continue;
            }
        };
        if !spec.allowed_values.is_empty() && !spec.allowed_values.contains(&coerced) {
            violations.push(violation(
                QuarantineReason::InvalidPropertyValue,
                &field,
                "not one of the allowed values",
            ));
            continue;
        }
        let stored = match spec.pii {
            2 => None,
            1 => Some(match super::mapping::scalar_text(&coerced) {
                Some(text) => Value::String(pii::pseudonymise(inputs.key, &spec.name, text.trim())),
                None => Value::Null,
            }),
            _ => Some(coerced),
        };
        if stored.as_ref() != Some(&delivered) && !w.originals.contains_key(&field) && spec.pii == 0
        {
            w.originals.insert(field.clone(), delivered);
        }
        match stored {
            Some(v) => w.properties.insert(spec.name.clone(), v),
            None => w.properties.remove(&spec.name),
        };
    }
}

/// Replaces top-level values named like a direct identifier type (`phone`,
/// `email`) by their pseudonym, or removes them when they cannot be
/// normalised: personal data never reaches the clean log in clear. Nulls
/// and values the source masked stay as delivered.
fn pseudonymise_direct_fields(
    map: &mut Map<String, Value>,
    privacy: &PrivacySettings,
    key: &TenantKey,
) {
    let names: Vec<String> = map
        .keys()
        .filter(|k| privacy.direct_types.contains(k.as_str()) || k.as_str() == "mobile")
        .cloned()
        .collect();
    for name in names {
        let kind = if name == "mobile" {
            "phone".to_owned()
        } else {
            name.clone()
        };
        let kind = kind.as_str();
        // A null or empty value holds nothing personal, and a value the
        // source already masked (`135****8305`, as marketplaces deliver
        // buyers' phones) is a display form: both are kept as delivered.
        if map.get(&name).is_none_or(|v| {
            v.is_null()
                || v.as_str()
                    .is_some_and(|s| s.trim().is_empty() || pii_scan::looks_masked(s))
        }) {
            continue;
        }
        let text = map.get(&name).and_then(super::mapping::scalar_text);
        match text {
            Some(t) if pii::is_pseudonym(t.trim()) => {}
            Some(t) => match pii::normalise(kind, &t, &privacy.default_country_code) {
                Ok(n) => {
                    map.insert(name, Value::String(pii::pseudonymise(key, kind, &n)));
                }
                _ => {
                    map.remove(&name);
                }
            },
            None => {
                map.remove(&name);
            }
        }
    }
}

/// To the protobuf timestamp.
pub fn timestamp_pb(instant: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: instant.timestamp(),
        nanos: i32::try_from(instant.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// From the protobuf timestamp (`None` when out of range).
pub fn from_timestamp_pb(ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

/// A JSON value as protobuf, re-exported for the adapter.
pub fn json_to_pb(v: &Value) -> prost_types::Value {
    to_value(v)
}

#[cfg(test)]
#[path = "clean_tests.rs"]
mod tests;
