//! The records the generator emits. An SDK event is kept in its wire shape ([`Event`]); every
//! business record (POS order, CRM row, ticket, …) is a [`Row`] of typed fields written in its
//! file's column order, and converts into an [`Event`] when streamed to a collection service.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::DefectKind;
use crate::layout::{FileFormat, FileSpec};
use crate::rng::{hash_str, uuid_from};

/// One identifier carried by an event: `{type, value, scope}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identifier {
    /// Identifier type: phone, email, wechat_openid, wechat_unionid, member_card, crm_id,
    /// device_id, anonymous_id, user_id, marketplace_buyer or click_id.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The value as the source delivered it (not normalised).
    pub value: String,
    /// Namespace of the value (app id, open platform, brand, system); absent when global.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'static str>,
}

impl Identifier {
    /// An identifier with a scope.
    pub fn scoped(kind: &'static str, value: impl Into<String>, scope: &'static str) -> Self {
        Identifier {
            kind,
            value: value.into(),
            scope: Some(scope),
        }
    }

    /// An identifier without a scope (phone, email).
    pub fn global(kind: &'static str, value: impl Into<String>) -> Self {
        Identifier {
            kind,
            value: value.into(),
            scope: None,
        }
    }
}

/// An event in the Segment-like SDK shape; also what `--send` streams for every record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Client-generated unique id; retries repeat it.
    pub message_id: String,
    /// `track`, `identify`, `page` or `screen`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Event name (track) or page/screen name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Device- or cookie-scoped anonymous id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    /// The brand's user id, present after login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Event properties.
    pub properties: Map<String, Value>,
    /// Device, app, WeChat and library context.
    pub context: Value,
    /// Device-clock epoch milliseconds (skewed); a string for business records in local time,
    /// and anything at all when the timestamp was spoiled.
    pub original_timestamp: Value,
    /// Device-clock epoch milliseconds when the batch was sent.
    pub sent_at: i64,
    /// `app`, `mini_program`, `web`, or the business source's channel.
    pub channel: &'static str,
    /// Source id as registered with the collection service.
    pub source: String,
    /// Identifiers seen on this event.
    pub identifiers: Vec<Identifier>,
}

/// A typed cell of a business record.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// Text.
    Str(String),
    /// An integer.
    Int(i64),
    /// Money in minor units, written with two decimals.
    Money(i64),
    /// A flag, written `Y`/`N` in CSV and as a boolean in JSON.
    Bool(bool),
    /// An empty cell / JSON null.
    Null,
}

impl Field {
    /// The field as a JSON value.
    pub fn to_json(&self) -> Value {
        match self {
            Field::Str(s) => Value::String(s.clone()),
            Field::Int(i) => Value::from(*i),
            Field::Money(m) => serde_json::Number::from_f64(*m as f64 / 100.0)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Field::Bool(b) => Value::Bool(*b),
            Field::Null => Value::Null,
        }
    }

    /// Appends the field as a CSV cell, quoting when needed.
    pub fn write_csv(&self, out: &mut String) {
        use std::fmt::Write as _;
        match self {
            Field::Str(s) => {
                if s.contains([',', '"', '\n', '\r']) {
                    out.push('"');
                    out.push_str(&s.replace('"', "\"\""));
                    out.push('"');
                } else {
                    out.push_str(s);
                }
            }
            Field::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Field::Money(m) => {
                let sign = if *m < 0 { "-" } else { "" };
                let _ = write!(out, "{sign}{}.{:02}", m.abs() / 100, m.abs() % 100);
            }
            Field::Bool(b) => out.push(if *b { 'Y' } else { 'N' }),
            Field::Null => {}
        }
    }

    /// The text of a string field.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A business record: cells in its file's column order plus the identifiers it carries.
#[derive(Debug, Clone)]
pub struct Row {
    /// Event name when sent (`pos_order`, `order_create`, `member_export`, …).
    pub name: String,
    /// Cells, in the order of the file's header.
    pub fields: Vec<Field>,
    /// Identifiers present in the row (as written, after any planted defect).
    pub ids: Vec<Identifier>,
}

/// What a record carries.
#[derive(Debug, Clone)]
pub enum Body {
    /// An SDK event.
    Sdk(Box<Event>),
    /// A business record.
    Row(Row),
}

/// A planted defect on a record.
#[derive(Debug, Clone)]
pub struct Defect {
    /// Its kind.
    pub kind: DefectKind,
    /// A short human-readable description (which field, what original).
    pub detail: String,
}

impl Defect {
    /// For an [`DefectKind::EventAlias`] defect, the true name the alias stands for.
    pub fn alias_of(&self) -> Option<&str> {
        (self.kind == DefectKind::EventAlias)
            .then(|| {
                self.detail
                    .split_once(ALIAS_SEPARATOR)
                    .map(|(name, _)| name)
            })
            .flatten()
    }
}

/// Separates the true name from the alias in an event-alias defect's detail.
pub const ALIAS_SEPARATOR: &str = " sent as ";

/// One output line with its truth.
#[derive(Debug, Clone)]
pub struct Record {
    /// Index into the layout's files.
    pub file: usize,
    /// The record's own key (message id, order id, …) as the truth files cite it.
    pub key: String,
    /// True instant of what the record describes, UTC epoch milliseconds.
    pub true_ms: i64,
    /// For SDK events, when a live collector received the batch (true clock), UTC epoch ms.
    pub received_ms: Option<i64>,
    /// Content.
    pub body: Body,
    /// Planted defects.
    pub defects: Vec<Defect>,
}

impl Record {
    /// Serialises the record as one line (without the newline) in its file's format.
    pub fn write_line(&self, spec: &FileSpec, out: &mut String) -> Result<(), serde_json::Error> {
        match &self.body {
            Body::Sdk(event) => out.push_str(&serde_json::to_string(event)?),
            Body::Row(row) => match spec.format {
                FileFormat::Csv => {
                    for (i, f) in row.fields.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        f.write_csv(out);
                    }
                }
                FileFormat::Jsonl => {
                    let mut obj = Map::new();
                    for (name, f) in spec.header.iter().zip(&row.fields) {
                        obj.insert((*name).to_owned(), f.to_json());
                    }
                    out.push_str(&serde_json::to_string(&Value::Object(obj))?);
                }
            },
        }
        Ok(())
    }

    /// The record as an event for streaming: SDK events as they are, business records converted
    /// (columns become properties, the local time string stays a string with its zone in context).
    pub fn to_event(&self, spec: &FileSpec) -> Event {
        match &self.body {
            Body::Sdk(event) => (**event).clone(),
            Body::Row(row) => {
                let mut properties = Map::new();
                for (name, f) in spec.header.iter().zip(&row.fields) {
                    properties.insert((*name).to_owned(), f.to_json());
                }
                let raw_ts = spec
                    .time_column
                    .and_then(|c| row.fields.get(c))
                    .map(Field::to_json)
                    .unwrap_or(Value::Null);
                let key = format!("{}|{}", spec.path, self.key);
                Event {
                    message_id: uuid_from(hash_str(&key), hash_str(&self.key)),
                    kind: "track",
                    event: Some(row.name.clone()),
                    anonymous_id: None,
                    user_id: None,
                    properties,
                    context: serde_json::json!({
                        "timezone": spec.tz_name,
                        "file": spec.path,
                    }),
                    original_timestamp: raw_ts,
                    // Business sources deliver daily exports: sent after the day closes.
                    sent_at: (self.true_ms.div_euclid(crate::DAY_MS) + 1) * crate::DAY_MS,
                    channel: spec.channel,
                    source: spec.source.clone(),
                    identifiers: row.ids.clone(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_only_when_needed() {
        let mut s = String::new();
        Field::Str("a,\"b\"".into()).write_csv(&mut s);
        s.push('|');
        Field::Money(-12_345).write_csv(&mut s);
        s.push('|');
        Field::Bool(false).write_csv(&mut s);
        assert_eq!(s, "\"a,\"\"b\"\"\"|-123.45|N");
    }
}
