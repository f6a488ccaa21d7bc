//! Personal data wherever it sits in an event's properties and traits: the identifier fields a
//! source declares at any path (`contact.mobile_no`), and any value that is a whole phone
//! number or email address, whatever its key. Both leave cleaning pseudonymised, like the
//! identifiers themselves, so no clear value reaches the clean log, the event store or a reply.

use serde_json::{Map, Value};

use super::mapping::scalar_text;
use super::pii::{self, PrivacySettings, TenantKey};
use super::value::{get_path, remove_path, set_path};

/// True for a display form a source masked itself (`135****8305`): with its asterisks removed
/// it is no longer a whole phone number or email address, so it reveals too little to hide.
/// A value that still is one once its asterisks are dropped (`13812345678*`) is not masked.
pub fn looks_masked(text: &str) -> bool {
    text.contains('*') && pii::detect_direct(&text.replace('*', "")).is_none()
}

/// Pseudonymises the declared identifier fields where the properties still hold them: direct
/// types (and any phone or email) become their pseudonym, a direct value that cannot be
/// normalised is removed, other ids (member cards, device ids) stay as delivered.
pub fn pseudonymise_declared_paths(
    map: &mut Map<String, Value>,
    paths: &[(String, String)],
    privacy: &PrivacySettings,
    key: &TenantKey,
) {
    for (path, kind) in paths {
        let Some(text) = get_path(map, path).and_then(scalar_text) else {
            continue;
        };
        let text = text.trim();
        if text.is_empty() || pii::is_pseudonym(text) || looks_masked(text) {
            continue;
        }
        let replacement = if privacy.direct_types.contains(kind) {
            pii::normalise(kind, text, &privacy.default_country_code)
                .ok()
                .map(|n| pii::pseudonymise(key, kind, &n))
        } else if let Some((detected, n)) = pii::detect_direct(text) {
            Some(pii::pseudonymise(key, detected, &n))
        } else {
            continue;
        };
        // A literal dotted key is read before a nested path, so it is written back the same way.
        let literal = map.contains_key(path);
        match (replacement, literal) {
            (Some(p), true) => {
                map.insert(path.clone(), Value::String(p));
            }
            (Some(p), false) => set_path(map, path, Value::String(p)),
            (None, true) => {
                map.remove(path);
            }
            (None, false) => {
                remove_path(map, path);
            }
        }
    }
}

/// Replaces every string value, at any depth, that is a whole phone number or email address
/// by its pseudonym. Pseudonyms and masked display forms stay as they are.
pub fn pseudonymise_contact_values(map: &mut Map<String, Value>, key: &TenantKey) {
    for value in map.values_mut() {
        pseudonymise_value(value, key);
    }
}

fn pseudonymise_value(value: &mut Value, key: &TenantKey) {
    match value {
        Value::String(s) => {
            let text = s.trim();
            if text.is_empty() || pii::is_pseudonym(text) || text.contains('*') {
                return;
            }
            if let Some((kind, n)) = pii::detect_direct(text) {
                *s = pii::pseudonymise(key, kind, &n);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| pseudonymise_value(v, key)),
        Value::Object(m) => m.values_mut().for_each(|v| pseudonymise_value(v, key)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key() -> TenantKey {
        TenantKey {
            version: 1,
            secret: vec![3; 32],
        }
    }

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn masked_forms_are_told_from_values_with_a_stray_asterisk() {
        assert!(looks_masked("135****8305"));
        assert!(!looks_masked("13812345678*"));
        assert!(!looks_masked("13812345678"));
    }

    #[test]
    fn declared_nested_paths_are_pseudonymised_or_removed() {
        let mut m = object(json!({
            "contact": {"mobile_no": "138 1234 5678", "mail": "Someone@Example.cn", "card": "M-1"},
            "contact.fax": "not a phone"
        }));
        let paths = vec![
            ("contact.mobile_no".to_owned(), "phone".to_owned()),
            ("contact.mail".to_owned(), "email".to_owned()),
            ("contact.card".to_owned(), "member_card".to_owned()),
            ("contact.fax".to_owned(), "phone".to_owned()),
        ];
        pseudonymise_declared_paths(&mut m, &paths, &PrivacySettings::default(), &key());
        let text = serde_json::to_string(&m).unwrap_or_default();
        assert!(!text.contains("1234"), "{text}");
        assert!(!text.to_lowercase().contains("someone"), "{text}");
        assert_eq!(m["contact"]["card"], json!("M-1"));
        assert!(pii::is_pseudonym(
            m["contact"]["mobile_no"].as_str().unwrap_or("")
        ));
        assert!(
            !m.contains_key("contact.fax"),
            "a clear value that is no phone is removed"
        );
    }

    #[test]
    fn contact_values_under_any_key_are_pseudonymised() {
        let mut m = object(json!({
            "note": {"who": ["+86 138-1234-5678", "a@b.cn"]},
            "order_id": "O-1",
            "masked": "135****8305",
            "amount": 12
        }));
        pseudonymise_contact_values(&mut m, &key());
        let text = serde_json::to_string(&m).unwrap_or_default();
        assert!(!text.contains("5678\""), "{text}");
        assert!(!text.contains("a@b.cn"), "{text}");
        assert_eq!(m["order_id"], json!("O-1"));
        assert_eq!(m["masked"], json!("135****8305"));
        // The same phone hashes alike wherever it sits.
        let p = pii::pseudonymise(&key(), "phone", "+8613812345678");
        assert_eq!(m["note"]["who"][0], json!(p));
    }
}
