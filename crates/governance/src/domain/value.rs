//! Conversions between protobuf `Struct`/`Value` and `serde_json` values,
//! so the cleaning code works on one familiar representation.

use prost_types::value::Kind;
use serde_json::{Map, Number, Value};

/// A protobuf struct as a JSON object.
pub fn from_struct(s: Option<&prost_types::Struct>) -> Map<String, Value> {
    s.map(|s| {
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), from_value(v)))
            .collect()
    })
    .unwrap_or_default()
}

/// A protobuf value as JSON (non-finite numbers become null).
pub fn from_value(v: &prost_types::Value) -> Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::StructValue(s)) => Value::Object(from_struct(Some(s))),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(from_value).collect()),
    }
}

/// A JSON object as a protobuf struct.
pub fn to_struct(m: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
    }
}

/// JSON as a protobuf value.
pub fn to_value(v: &Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(to_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(to_struct(m)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Reads a dot path (`order.total`) inside an object.
pub fn get_path<'a>(root: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = root.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut current = root.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// Writes a dot path, creating intermediate objects (replacing non-objects).
pub fn set_path(root: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else {
        return;
    };
    let mut current = root;
    for part in parts {
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else {
            return;
        };
        current = next;
    }
    current.insert(last.to_owned(), value);
}

/// Removes a dot path; returns what was there.
pub fn remove_path(root: &mut Map<String, Value>, path: &str) -> Option<Value> {
    if let Some(v) = root.remove(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    match root.get_mut(head)? {
        Value::Object(inner) => remove_path(inner, rest),
        _ => None,
    }
}

/// Nesting depth of a value (a scalar is 0, `{"a": 1}` is 1).
pub fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// True for null, missing-like empty strings and empty containers.
pub fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_paths() {
        let v = json!({"a": {"b": [1.5, "x", true, null]}, "c": "d"});
        let Value::Object(m) = v.clone() else {
            panic!("object")
        };
        assert_eq!(Value::Object(from_struct(Some(&to_struct(&m)))), v);
        let mut m = m;
        assert_eq!(get_path(&m, "a.b"), Some(&json!([1.5, "x", true, null])));
        set_path(&mut m, "e.f", json!(1));
        assert_eq!(get_path(&m, "e.f"), Some(&json!(1)));
        assert_eq!(remove_path(&mut m, "e.f"), Some(json!(1)));
        assert_eq!(depth(&v), 3);
    }
}
