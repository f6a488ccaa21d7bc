//! The mapping of one row to a `touchline.common.v1.Event` by the source's
//! field mappings, identifier fields and natural key.

use std::collections::HashSet;

use prost_types::value::Kind;
use sha2::{Digest as _, Sha256};
use touchline_error::FieldViolation;
use touchline_proto::collection::v1::{FieldTransform, Source, UnmappedFieldPolicy};
use touchline_proto::common::v1::{Event, Identifier};

use super::cut::RowValues;

/// Reads fields of one row by the names a source uses.
#[derive(Debug)]
pub struct Row<'a> {
    values: &'a RowValues,
    header: &'a [String],
    nulls: &'a [String],
}

impl<'a> Row<'a> {
    /// A row with the file's header and null markers.
    pub fn new(values: &'a RowValues, header: &'a [String], nulls: &'a [String]) -> Self {
        Self {
            values,
            header,
            nulls,
        }
    }

    /// The value of `field` (a column name, `$n`, or a JSON dot path);
    /// `None` when absent, empty or a null marker.
    pub fn get(&self, field: &str) -> Option<prost_types::Value> {
        let value = match self.values {
            RowValues::Csv(cells) => {
                let index = match field
                    .strip_prefix('$')
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    Some(n) => n.checked_sub(1)?,
                    None => self.header.iter().position(|h| h == field)?,
                };
                string(cells.get(index)?.clone())
            }
            RowValues::Json(map) => {
                let mut parts = field.split('.');
                let mut current = map.get(parts.next()?)?;
                for part in parts {
                    current = current.as_object()?.get(part)?;
                }
                json(current)
            }
        };
        match &value.kind {
            Some(Kind::NullValue(_)) | None => None,
            Some(Kind::StringValue(s)) if s.is_empty() || self.nulls.contains(s) => None,
            _ => Some(value),
        }
    }

    /// Every top-level field name of the row.
    pub fn names(&self) -> Vec<String> {
        match self.values {
            RowValues::Csv(cells) => (0..cells.len())
                .map(|i| {
                    self.header
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("${}", i + 1))
                })
                .collect(),
            RowValues::Json(map) => map.keys().cloned().collect(),
        }
    }
}

fn string(value: String) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StringValue(value)),
    }
}

fn json(value: &serde_json::Value) -> prost_types::Value {
    use serde_json::Value as J;
    let kind = match value {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => match n.as_f64() {
            Some(f) => Kind::NumberValue(f),
            None => Kind::StringValue(n.to_string()),
        },
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json).collect(),
        }),
        J::Object(map) => Kind::StructValue(prost_types::Struct {
            fields: map.iter().map(|(k, v)| (k.clone(), json(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

fn as_text(value: &prost_types::Value) -> String {
    match &value.kind {
        Some(Kind::StringValue(s)) => s.clone(),
        Some(Kind::NumberValue(n)) => n.to_string(),
        Some(Kind::BoolValue(b)) => b.to_string(),
        Some(Kind::NullValue(_)) | None => String::new(),
        Some(Kind::ListValue(_) | Kind::StructValue(_)) => String::new(),
    }
}

fn transform(value: prost_types::Value, how: i32) -> prost_types::Value {
    let Some(Kind::StringValue(s)) = &value.kind else {
        return value;
    };
    let out = match FieldTransform::try_from(how).unwrap_or(FieldTransform::Unspecified) {
        FieldTransform::Unspecified => return value,
        FieldTransform::Trim => s.trim().to_owned(),
        FieldTransform::Lowercase => s.trim().to_lowercase(),
        FieldTransform::Uppercase => s.trim().to_uppercase(),
        FieldTransform::DigitsOnly => s.chars().filter(char::is_ascii_digit).collect(),
    };
    string(out)
}

fn set_path(root: &mut Option<prost_types::Struct>, path: &str, value: prost_types::Value) {
    let mut current = root.get_or_insert_with(Default::default);
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.fields.insert(part.to_owned(), value);
            return;
        }
        let entry = current
            .fields
            .entry(part.to_owned())
            .or_insert_with(|| prost_types::Value {
                kind: Some(Kind::StructValue(Default::default())),
            });
        if !matches!(entry.kind, Some(Kind::StructValue(_))) {
            entry.kind = Some(Kind::StructValue(Default::default()));
        }
        let Some(Kind::StructValue(inner)) = &mut entry.kind else {
            return;
        };
        current = inner;
    }
}

/// The message id of a row: derived from the source and its natural key so
/// a re-import is recognised, or from the import and row number when the
/// source has no natural key.
pub fn message_id(source_id: &str, import_id: &str, row: i64, key: Option<&[String]>) -> String {
    match key {
        Some(values) => {
            let mut hasher = Sha256::new();
            hasher.update(source_id.as_bytes());
            for value in values {
                hasher.update([0x1f]);
                hasher.update(value.as_bytes());
            }
            let digest = hex::encode(hasher.finalize());
            format!("{source_id}:{}", &digest[..32])
        }
        None => format!("{source_id}:{import_id}:{row}"),
    }
}

/// Builds the event of one row by the source's settings; the values stay
/// as delivered (governance coerces types and times by the same revision).
#[expect(
    clippy::too_many_lines,
    reason = "maps every column of one row onto the event in one pass; each mapping is a few lines and all read the same cells"
)]
pub fn row_event(
    source_id: &str,
    source: &Source,
    import_id: &str,
    row_number: i64,
    row: &Row<'_>,
) -> Result<Event, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let mut event = Event {
        r#type: source.default_event_type,
        source: source_id.to_owned(),
        channel: source.channel.clone(),
        ..Default::default()
    };
    let mut mapped: HashSet<&str> = HashSet::new();
    for mapping in &source.field_mappings {
        mapped.insert(mapping.source_field.as_str());
        let value = if mapping.constant.is_empty() {
            let value = row.get(&mapping.source_field);
            // The column is kept as delivered as well: governance applies the same mapping,
            // with the revision's coercions, to the event's properties, and must find it
            // there (it removes it from the clean event when the mapping moves it).
            if let Some(delivered) = &value {
                event
                    .properties
                    .get_or_insert_with(Default::default)
                    .fields
                    .insert(mapping.source_field.clone(), delivered.clone());
            }
            value
        } else {
            Some(string(mapping.constant.clone()))
        };
        let Some(value) = value.map(|v| transform(v, mapping.transform)) else {
            continue;
        };
        let target = mapping.target_field.as_str();
        match target {
            "event" => event.event = as_text(&value),
            "original_timestamp" => event.original_timestamp = as_text(&value),
            "sent_at" => event.sent_at = as_text(&value),
            "user_id" => event.user_id = as_text(&value),
            "anonymous_id" => event.anonymous_id = as_text(&value),
            "channel" => event.channel = as_text(&value),
            _ => {
                if let Some(path) = target.strip_prefix("properties.") {
                    set_path(&mut event.properties, path, value);
                } else if let Some(path) = target.strip_prefix("traits.") {
                    set_path(&mut event.traits, path, value);
                } else if let Some(path) = target.strip_prefix("context.") {
                    set_path(&mut event.context, path, value);
                }
            }
        }
    }
    if source.unmapped_fields != UnmappedFieldPolicy::Drop as i32 {
        for name in row.names() {
            if mapped.contains(name.as_str()) {
                continue;
            }
            if let Some(value) = row.get(&name) {
                event
                    .properties
                    .get_or_insert_with(Default::default)
                    .fields
                    .insert(name, value);
            }
        }
    }
    if !source.event_name_field.is_empty()
        && let Some(name) = row.get(&source.event_name_field)
    {
        event.event = as_text(&name);
    }
    if event.event.is_empty() {
        event.event.clone_from(&source.default_event_name);
    }
    for field in &source.identifier_fields {
        let Some(value) = row.get(&field.source_field) else {
            continue;
        };
        let value = as_text(&value).trim().to_owned();
        if value.is_empty() {
            continue;
        }
        let scope = (!field.scope_field.is_empty())
            .then(|| row.get(&field.scope_field))
            .flatten()
            .map(|v| as_text(&v))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| field.scope.clone());
        event.identifiers.push(Identifier {
            r#type: field.identifier_type.clone(),
            value,
            scope,
        });
    }
    if event.original_timestamp.trim().is_empty() {
        violations.push(FieldViolation::new(
            "original_timestamp",
            "MISSING_TIMESTAMP",
            "no mapped field gave the time of the record",
        ));
    }
    let key = if source.natural_key_fields.is_empty() {
        None
    } else {
        let mut values = Vec::with_capacity(source.natural_key_fields.len());
        for field in &source.natural_key_fields {
            match row.get(field).map(|v| as_text(&v)) {
                Some(value) if !value.trim().is_empty() => values.push(value),
                _ => violations.push(FieldViolation::new(
                    field.clone(),
                    "MISSING_NATURAL_KEY",
                    "a natural key field is empty",
                )),
            }
        }
        Some(values)
    };
    if !violations.is_empty() {
        return Err(violations);
    }
    event.message_id = message_id(source_id, import_id, row_number, key.as_deref());
    Ok(event)
}

#[cfg(test)]
mod tests {
    use touchline_proto::collection::v1::{FieldMapping, IdentifierField};

    use super::*;

    #[test]
    fn rows_become_events_with_stable_ids() {
        let source = Source {
            channel: "pos".into(),
            default_event_name: "purchase".into(),
            natural_key_fields: vec!["receipt".into()],
            field_mappings: vec![FieldMapping {
                source_field: "time".into(),
                target_field: "original_timestamp".into(),
                ..Default::default()
            }],
            identifier_fields: vec![IdentifierField {
                source_field: "phone".into(),
                identifier_type: "phone".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let header: Vec<String> = ["receipt", "time", "phone", "total"]
            .map(String::from)
            .to_vec();
        let values = RowValues::Csv(
            ["r-1", "2026-11-24 10:00:00", " 13800000000 ", "12.5"]
                .map(String::from)
                .to_vec(),
        );
        let row = Row::new(&values, &header, &[]);
        let event = row_event("pos-sh", &source, "imp1", 1, &row).map_err(|v| format!("{v:?}"));
        let event = event.unwrap_or_default();
        assert_eq!(event.event, "purchase");
        assert_eq!(event.original_timestamp, "2026-11-24 10:00:00");
        assert_eq!(event.identifiers[0].value, "13800000000");
        assert!(
            event
                .properties
                .unwrap_or_default()
                .fields
                .contains_key("total")
        );
        let again = row_event("pos-sh", &source, "imp2", 9, &row).unwrap_or_default();
        assert_eq!(event.message_id, again.message_id, "same key, same id");

        let missing = RowValues::Csv(["", "2026-11-24 10:00:00"].map(String::from).to_vec());
        let row = Row::new(&missing, &header, &[]);
        let reasons: Vec<_> = row_event("pos-sh", &source, "imp1", 2, &row)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.reason)
            .collect();
        assert_eq!(reasons, vec!["MISSING_NATURAL_KEY"]);
    }
}
