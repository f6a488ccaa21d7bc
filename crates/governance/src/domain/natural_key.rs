//! The natural key of business records, for dedup across sources and
//! restatements within one.
//!
//! Key: the canonical event name plus the values of the key properties
//! (the dictionary's `natural_key_properties`, else the source's
//! `natural_key_fields`). The source is deliberately not part of the key:
//! the same order from the POS export and the CRM order export is one
//! order.
//!
//! A second record with a known key is
//! - a natural-key duplicate when it comes from another source (the first
//!   source to deliver the record owns it), or from the same source with
//!   the same content (a re-import);
//! - a restatement when it comes from the same source with changed content
//!   (an ad platform re-sending yesterday's corrected report row): it is
//!   published as a clean event under the first record's message id with
//!   `restatement = true`, so consumers replace the earlier record.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::mapping::scalar_text;

/// The natural key, or `None` when there are no key fields or one is blank.
pub fn natural_key(
    event_name: &str,
    fields: &[String],
    properties: &Map<String, Value>,
) -> Option<String> {
    if fields.is_empty() {
        return None;
    }
    let mut key = event_name.to_owned();
    for field in fields {
        let value = super::value::get_path(properties, field).and_then(scalar_text)?;
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        key.push('|');
        key.push_str(field);
        key.push('=');
        key.push_str(value);
    }
    Some(key)
}

/// A hash of what a record says (name, time, properties, identifiers),
/// independent of how it was delivered.
pub fn content_hash(
    event_name: &str,
    event_time_micros: i64,
    properties: &Map<String, Value>,
    identifiers: &[(String, String, String)],
) -> Vec<u8> {
    let mut ids = identifiers.to_vec();
    ids.sort();
    let canonical = serde_json::json!([event_name, event_time_micros, properties, ids]);
    Sha256::digest(canonical.to_string().as_bytes()).to_vec()
}

/// What is known about a key already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownKey {
    /// Source that first delivered the record.
    pub source: String,
    /// Hash of the content last published.
    pub content_hash: Vec<u8>,
    /// Message id of the first clean record.
    pub message_id: String,
}

/// What to do with a record whose key may be known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDecision {
    /// First time: publish.
    New,
    /// Same record again: count, publish nothing.
    Duplicate,
    /// Changed by its own source: publish as a restatement of `message_id`.
    Restatement {
        /// The message id of the record it replaces.
        message_id: String,
    },
}

/// Decides between new, duplicate and restatement.
pub fn decide(known: Option<&KnownKey>, source: &str, hash: &[u8]) -> KeyDecision {
    match known {
        None => KeyDecision::New,
        Some(k) if k.source != source || k.content_hash == hash => KeyDecision::Duplicate,
        Some(k) => KeyDecision::Restatement {
            message_id: k.message_id.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn keys_ignore_the_source_and_need_every_field() {
        let p = props(json!({"order_id": "O-1", "amount": 5}));
        assert_eq!(
            natural_key("purchase", &["order_id".into()], &p).as_deref(),
            Some("purchase|order_id=O-1")
        );
        assert_eq!(
            natural_key("purchase", &["order_id".into(), "x".into()], &p),
            None
        );
        assert_eq!(natural_key("purchase", &[], &p), None);
    }

    #[test]
    fn decisions() {
        let known = KnownKey {
            source: "pos".into(),
            content_hash: vec![1],
            message_id: "m1".into(),
        };
        assert_eq!(decide(None, "pos", &[1]), KeyDecision::New);
        assert_eq!(decide(Some(&known), "crm", &[2]), KeyDecision::Duplicate);
        assert_eq!(decide(Some(&known), "pos", &[1]), KeyDecision::Duplicate);
        assert_eq!(
            decide(Some(&known), "pos", &[2]),
            KeyDecision::Restatement {
                message_id: "m1".into()
            }
        );
    }
}
