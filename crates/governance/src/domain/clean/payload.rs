//! What a payload may hold: its size and depth, numbers that are numbers, and no NUL that
//! PostgreSQL's text and jsonb could not store.

use prost::Message as _;
use serde_json::Value;
use touchline_proto::governance::v1::QuarantineReason;

use super::{MAX_DEPTH, MAX_PAYLOAD_BYTES, Violation, violation};
use crate::domain::mapping::Working;
use crate::domain::value::{depth, to_struct};

pub(super) fn payload_problem(w: &Working) -> Option<Violation> {
    let size = to_struct(&w.properties).encoded_len()
        + to_struct(&w.traits).encoded_len()
        + to_struct(&w.context).encoded_len();
    if size > MAX_PAYLOAD_BYTES {
        return Some(violation(
            QuarantineReason::MalformedPayload,
            "properties",
            format!("properties, traits and context hold {size} bytes, over {MAX_PAYLOAD_BYTES}"),
        ));
    }
    for (field, map) in [
        ("properties", &w.properties),
        ("traits", &w.traits),
        ("context", &w.context),
    ] {
        let d = map.values().map(depth).max().unwrap_or(0) + 1;
        if d > MAX_DEPTH {
            return Some(violation(
                QuarantineReason::MalformedPayload,
                field,
                format!("nested {d} levels deep, over {MAX_DEPTH}"),
            ));
        }
    }
    None
}

/// The path of the first NaN or infinite number in `fields`, if any.
pub(super) fn non_finite_path(fields: &prost_types::Struct, prefix: &str) -> Option<String> {
    use prost_types::value::Kind;
    fn walk(v: &prost_types::Value, path: String) -> Option<String> {
        match &v.kind {
            Some(Kind::NumberValue(n)) if !n.is_finite() => Some(path),
            Some(Kind::StructValue(s)) => non_finite_path(s, &path),
            Some(Kind::ListValue(l)) => l
                .values
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, format!("{path}[{i}]"))),
            _ => None,
        }
    }
    let mut keys: Vec<&String> = fields.fields.keys().collect();
    keys.sort();
    keys.into_iter().find_map(|k| {
        fields
            .fields
            .get(k)
            .and_then(|v| walk(v, format!("{prefix}.{}", printable(k))))
    })
}

/// True when a key at or below this entry holds a NUL, which jsonb cannot store either.
pub(super) fn key_has_nul(key: &str, v: &Value) -> bool {
    key.contains('\0')
        || match v {
            Value::Array(a) => a.iter().any(|v| key_has_nul("", v)),
            Value::Object(m) => m.iter().any(|(k, v)| key_has_nul(k, v)),
            _ => false,
        }
}

/// A key as a field path can show it: the quarantine record is stored as text, which cannot
/// hold the NUL that made the key unusable.
pub(super) fn printable(key: &str) -> String {
    key.replace('\0', "\u{FFFD}")
}

pub(super) fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(m) => m.values().any(has_nul),
        _ => false,
    }
}
