//! Field mapping and type coercion.
//!
//! A source's field mappings move input fields to canonical fields, apply a
//! transform, coerce to a declared type and scale numbers. Dictionary
//! property specs coerce again under canonical names. Whatever a coercion
//! changed is remembered as delivered, so nothing the source said is lost.

use chrono::SecondsFormat;
use chrono_tz::Tz;
use serde_json::{Map, Number, Value};

use super::dictionary::ValueKind;
use super::source::{SourceSpec, Transform};
use super::timestamp;
use super::value::{get_path, remove_path, set_path};

/// An event being cleaned, in a shape mapping can rewrite.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Working {
    /// Event name as sent (or mapped).
    pub name: String,
    /// `EventType` number.
    pub event_type: i32,
    /// Anonymous id.
    pub anonymous_id: String,
    /// User id.
    pub user_id: String,
    /// Previous id (alias calls).
    pub previous_id: String,
    /// Timestamp text.
    pub original_timestamp: String,
    /// Sent-at text.
    pub sent_at: String,
    /// Channel.
    pub channel: String,
    /// Properties.
    pub properties: Map<String, Value>,
    /// Traits.
    pub traits: Map<String, Value>,
    /// Context.
    pub context: Map<String, Value>,
    /// (type, value, scope) identifiers, as delivered.
    pub identifiers: Vec<(String, String, String)>,
    /// Canonical path → value as delivered, for values that were changed.
    pub originals: Map<String, Value>,
    /// (property path, identifier type) of the identifier fields the source declares: their
    /// values stay in the properties, so they are pseudonymised there too.
    pub personal_paths: Vec<(String, String)>,
}

/// A mapping or coercion failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    /// True for a type problem (INVALID_PROPERTY_TYPE), false for a mapping
    /// problem (FIELD_MAPPING_FAILED).
    pub type_error: bool,
    /// The canonical field concerned.
    pub field: String,
    /// What went wrong.
    pub detail: String,
}

/// Applies the source's mappings, identifier fields and event-name rules.
#[expect(
    clippy::too_many_lines,
    reason = "applies a source's field mappings one kind after another over the same working event"
)]
pub fn apply_source(w: &mut Working, spec: &SourceSpec) -> Result<(), MappingError> {
    let input = std::mem::take(&mut w.properties);
    let mut output = if spec.drop_unmapped {
        Map::new()
    } else {
        let mut kept = input.clone();
        for m in &spec.field_mappings {
            if !m.source_field.is_empty()
                && format!("properties.{}", m.source_field) != m.target_field
            {
                remove_path(&mut kept, &m.source_field);
            }
        }
        kept
    };
    for m in &spec.field_mappings {
        let delivered = if !m.constant.is_empty() {
            Value::String(m.constant.clone())
        } else {
            match get_path(&input, &m.source_field) {
                Some(v) => v.clone(),
                None => {
                    return Err(MappingError {
                        type_error: false,
                        field: m.target_field.clone(),
                        detail: format!("the mapped input field {:?} is missing", m.source_field),
                    });
                }
            }
        };
        if delivered.is_null() {
            continue;
        }
        let transformed = transform(&delivered, m.transform);
        let formats: Vec<String> = if m.timestamp_format.is_empty() {
            spec.timestamp_formats.clone()
        } else {
            vec![m.timestamp_format.clone()]
        };
        let mut value =
            coerce(&transformed, m.value_type, spec.time_zone, &formats).map_err(|detail| {
                MappingError {
                    type_error: true,
                    field: m.target_field.clone(),
                    detail,
                }
            })?;
        if m.scale != 1.0
            && let Some(n) = value.as_f64()
        {
            value = number(n * m.scale, m.value_type == ValueKind::Integer).ok_or_else(|| {
                MappingError {
                    type_error: false,
                    field: m.target_field.clone(),
                    detail: "the scaled value is not a finite number".to_owned(),
                }
            })?;
        }
        if value != delivered {
            w.originals
                .insert(m.target_field.clone(), delivered.clone());
        }
        write_target(w, &mut output, &m.target_field, value)?;
    }
    for f in &spec.identifier_fields {
        let Some(value) = get_path(&input, &f.source_field).and_then(scalar_text) else {
            continue;
        };
        let scope = if f.scope_field.is_empty() {
            None
        } else {
            get_path(&input, &f.scope_field).and_then(scalar_text)
        }
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| f.scope.clone());
        w.identifiers
            .push((f.identifier_type.clone(), value, scope));
        w.personal_paths
            .push((f.source_field.clone(), f.identifier_type.clone()));
    }
    if !spec.event_name_field.is_empty()
        && let Some(name) = get_path(&input, &spec.event_name_field).and_then(scalar_text)
    {
        w.name = name;
    }
    if w.name.trim().is_empty() && !spec.default_event_name.is_empty() {
        w.name.clone_from(&spec.default_event_name);
    }
    if w.event_type == 0 {
        w.event_type = spec.default_event_type;
    }
    if w.channel.trim().is_empty() {
        w.channel.clone_from(&spec.channel);
    }
    w.properties = output;
    Ok(())
}

fn write_target(
    w: &mut Working,
    output: &mut Map<String, Value>,
    target: &str,
    value: Value,
) -> Result<(), MappingError> {
    let text = || scalar_text(&value).unwrap_or_default();
    match target {
        "event" => w.name = text(),
        "original_timestamp" => w.original_timestamp = text(),
        "sent_at" => w.sent_at = text(),
        "user_id" => w.user_id = text(),
        "anonymous_id" => w.anonymous_id = text(),
        "channel" => w.channel = text().to_lowercase(),
        _ => {
            if let Some(path) = target.strip_prefix("properties.") {
                set_path(output, path, value);
            } else if let Some(path) = target.strip_prefix("traits.") {
                set_path(&mut w.traits, path, value);
            } else if let Some(path) = target.strip_prefix("context.") {
                set_path(&mut w.context, path, value);
            } else {
                return Err(MappingError {
                    type_error: false,
                    field: target.to_owned(),
                    detail: "not a canonical field".to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// A scalar as text (numbers without a trailing `.0`); `None` for others.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => i.to_string(),
            None => n.to_string(),
        }),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Applies a transform to text values.
pub fn transform(v: &Value, t: Transform) -> Value {
    let Value::String(s) = v else {
        return v.clone();
    };
    Value::String(match t {
        Transform::None => s.clone(),
        Transform::Trim => s.trim().to_owned(),
        Transform::Lowercase => s.trim().to_lowercase(),
        Transform::Uppercase => s.trim().to_uppercase(),
        Transform::DigitsOnly => s.chars().filter(char::is_ascii_digit).collect(),
    })
}

fn number(n: f64, integer: bool) -> Option<Value> {
    if !n.is_finite() {
        return None;
    }
    if integer {
        if n.fract() != 0.0 || n.abs() > 9.0e15 {
            return None;
        }
        // In range and whole: the conversion is exact.
        #[allow(
            clippy::cast_possible_truncation,
            reason = "checked whole and in range above"
        )]
        return Some(Value::from(n as i64));
    }
    Number::from_f64(n).map(Value::Number)
}

/// Text of a number with currency symbols, thousands separators and white
/// space removed (`"¥1,299.00"` → `"1299.00"`).
fn numeric_text(s: &str) -> String {
    let mut t = s.trim().to_owned();
    for unit in ["RMB", "CNY", "USD", "AUD", "元", "¥", "￥", "$", "€", "£"] {
        t = t.replace(unit, "");
    }
    t.chars()
        .filter(|c| !matches!(c, ',' | ' ' | '_'))
        .collect()
}

/// Coerces `v` to `kind`; the error says why it cannot be.
pub fn coerce(v: &Value, kind: ValueKind, zone: Tz, formats: &[String]) -> Result<Value, String> {
    let fail = |what: &str| Err(format!("{} cannot be read as {what}", describe(v)));
    match kind {
        ValueKind::Any => Ok(v.clone()),
        ValueKind::String => match v {
            Value::Array(_) | Value::Object(_) => fail("text"),
            Value::Null => Ok(Value::Null),
            other => Ok(Value::String(scalar_text(other).unwrap_or_default())),
        },
        ValueKind::Decimal => match v {
            Value::Number(_) => Ok(v.clone()),
            Value::String(s) => match numeric_text(s).parse::<f64>() {
                Ok(n) => number(n, false).map_or_else(|| fail("a decimal"), Ok),
                Err(_) => fail("a decimal"),
            },
            _ => fail("a decimal"),
        },
        ValueKind::Integer => {
            let n = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => numeric_text(s).parse::<f64>().ok(),
                _ => None,
            };
            n.and_then(|n| number(n, true))
                .map_or_else(|| fail("an integer"), Ok)
        }
        ValueKind::Boolean => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::Number(n) if n.as_f64() == Some(1.0) => Ok(Value::Bool(true)),
            Value::Number(n) if n.as_f64() == Some(0.0) => Ok(Value::Bool(false)),
            Value::String(s) => match s.trim().to_lowercase().as_str() {
                "true" | "t" | "y" | "yes" | "1" | "是" => Ok(Value::Bool(true)),
                "false" | "f" | "n" | "no" | "0" | "否" => Ok(Value::Bool(false)),
                _ => fail("true or false"),
            },
            _ => fail("true or false"),
        },
        ValueKind::Timestamp => {
            let Some(text) = scalar_text(v) else {
                return fail("a timestamp");
            };
            match timestamp::parse(&text, zone, formats) {
                Ok((t, _)) => Ok(Value::String(
                    t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                )),
                Err(_) => fail("a timestamp"),
            }
        }
        ValueKind::List => match v {
            Value::Array(_) => Ok(v.clone()),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(list @ Value::Array(_)) => Ok(list),
                _ => fail("a list"),
            },
            _ => fail("a list"),
        },
        ValueKind::Object => match v {
            Value::Object(_) => Ok(v.clone()),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(obj @ Value::Object(_)) => Ok(obj),
                _ => fail("an object"),
            },
            _ => fail("an object"),
        },
    }
}

/// A short description of a value's shape for details (never its content,
/// which may be personal data).
fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a text value",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::source::FieldMap;
    use serde_json::json;

    fn c(v: Value, k: ValueKind) -> Result<Value, String> {
        coerce(&v, k, Tz::UTC, &[])
    }

    #[test]
    fn coerces_money_text_and_friends() {
        assert_eq!(c(json!("¥129.00"), ValueKind::Decimal), Ok(json!(129.0)));
        assert_eq!(c(json!("1,299.50"), ValueKind::Decimal), Ok(json!(1299.5)));
        assert_eq!(c(json!("3"), ValueKind::Integer), Ok(json!(3)));
        assert_eq!(c(json!(3.0), ValueKind::Integer), Ok(json!(3)));
        assert!(c(json!(3.5), ValueKind::Integer).is_err());
        assert_eq!(c(json!("Y"), ValueKind::Boolean), Ok(json!(true)));
        assert_eq!(c(json!(12), ValueKind::String), Ok(json!("12")));
        assert_eq!(
            c(json!("2026-11-24T16:00:00+08:00"), ValueKind::Timestamp),
            Ok(json!("2026-11-24T08:00:00Z"))
        );
        assert!(c(json!("abc"), ValueKind::Decimal).is_err());
        assert!(c(json!({"a": 1}), ValueKind::String).is_err());
    }

    #[test]
    fn maps_fields_keeping_what_it_changed() {
        let mut spec = SourceSpec::generic("pos");
        spec.sdk = false;
        spec.channel = "pos".into();
        spec.event_name_field = String::new();
        spec.default_event_name = "pos_order".into();
        spec.field_mappings = vec![
            FieldMap {
                source_field: "amount_fen".into(),
                target_field: "properties.amount".into(),
                value_type: ValueKind::Decimal,
                scale: 0.01,
                ..Default::default()
            },
            FieldMap {
                source_field: "paid_at".into(),
                target_field: "original_timestamp".into(),
                scale: 1.0,
                ..Default::default()
            },
        ];
        spec.identifier_fields = vec![crate::domain::source::IdentifierFieldSpec {
            source_field: "card".into(),
            identifier_type: "member_card".into(),
            scope: "brand".into(),
            scope_field: String::new(),
        }];
        let mut w = Working::default();
        let Value::Object(props) = json!({"amount_fen": "12900", "paid_at": "2026-11-24 16:00:00", "card": "MC1", "store": "SH001"})
        else {
            panic!("object")
        };
        w.properties = props;
        apply_source(&mut w, &spec)
            .map_err(|e| e.detail)
            .expect("mapped");
        assert_eq!(w.name, "pos_order");
        assert_eq!(w.channel, "pos");
        assert_eq!(w.original_timestamp, "2026-11-24 16:00:00");
        assert_eq!(w.properties.get("amount"), Some(&json!(129.0)));
        assert_eq!(w.properties.get("store"), Some(&json!("SH001")));
        assert!(!w.properties.contains_key("amount_fen"));
        assert_eq!(w.originals.get("properties.amount"), Some(&json!("12900")));
        assert_eq!(
            w.identifiers,
            vec![("member_card".into(), "MC1".into(), "brand".into())]
        );
    }

    #[test]
    fn a_missing_mapped_field_fails_the_mapping() {
        let mut spec = SourceSpec::generic("pos");
        spec.field_mappings = vec![FieldMap {
            source_field: "nope".into(),
            target_field: "properties.x".into(),
            scale: 1.0,
            ..Default::default()
        }];
        let mut w = Working::default();
        let err = apply_source(&mut w, &spec).err();
        assert_eq!(
            err.map(|e| (e.type_error, e.field)),
            Some((false, "properties.x".to_owned()))
        );
    }
}
