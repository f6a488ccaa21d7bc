//! Identifiers, their normalisation and validation, decided without gRPC,
//! SQL or Redis.
//!
//! Values arrive pseudonymised by governance (a keyed HMAC such as
//! `k1:<hex>`) and are treated as opaque: trimmed, never parsed. A value
//! that is a phone number or an email address in clear is refused (see
//! `clear`), whatever its type. The type is
//! lower-cased, and email values lower-cased (harmless for digests, useful
//! for the rare clear value). The resolution rule itself lives in `graph`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use touchline_error::FieldViolation;
use uuid::Uuid;

/// Most identifiers, summed over all items, one call may carry.
pub const MAX_IDENTIFIERS_PER_CALL: usize = 1_000;
/// Longest accepted identifier type, bytes.
pub const MAX_TYPE_BYTES: usize = 64;
/// Longest accepted identifier scope, bytes.
pub const MAX_SCOPE_BYTES: usize = 256;
/// Longest accepted identifier value, bytes.
pub const MAX_VALUE_BYTES: usize = 512;
/// Longest accepted evidence message id, bytes (the collection service's limit).
pub const MAX_EVIDENCE_BYTES: usize = 128;

/// Identifiers per item below which duplicates are found by a scan.
const LINEAR_DEDUP_LIMIT: usize = 16;

/// The identifier type whose values are compared case-insensitively.
pub const EMAIL: &str = "email";

/// A normalised identifier: the key of the identity graph within a tenant.
///
/// Ordered by (type, scope, value) so writers can always insert in the same
/// order, which keeps concurrent writers from deadlocking.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct IdentifierKey {
    /// Lower-cased type, e.g. `email`, `wechat_openid`.
    pub id_type: String,
    /// Where the value is unique; empty for globally unique types.
    pub scope: String,
    /// The normalised value.
    pub value: String,
}

impl IdentifierKey {
    /// Normalises an identifier as a source sent it: every part trimmed, the
    /// type lower-cased (types are a vocabulary, not data), clear email
    /// addresses lower-cased. Everything else keeps its case: OpenIDs, app
    /// ids and member cards are case-sensitive, and so may be a pseudonym
    /// (an email pseudonymised upstream has no `@` and is left alone).
    pub fn normalise(id_type: &str, scope: &str, value: &str) -> Self {
        let id_type = id_type.trim();
        // Types are nearly always lower-case already; skip the copy-and-map.
        let id_type = if id_type
            .bytes()
            .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
        {
            id_type.to_lowercase()
        } else {
            id_type.to_owned()
        };
        let value = if id_type == EMAIL && value.contains('@') {
            value.trim().to_lowercase()
        } else {
            value.trim().to_owned()
        };
        Self {
            id_type,
            scope: scope.trim().to_owned(),
            value,
        }
    }
}

/// One identifier as the request carries it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawIdentifier<'a> {
    /// Identifier type.
    pub id_type: &'a str,
    /// Scope; may be empty.
    pub scope: &'a str,
    /// Value.
    pub value: &'a str,
}

/// One item of a resolve request, borrowed from the request.
#[derive(Debug, Clone, Default)]
pub struct RawItem<'a> {
    /// Identifiers seen together.
    pub identifiers: Vec<RawIdentifier<'a>>,
    /// When they were seen, as (seconds, nanos) since the Unix epoch.
    pub observed_at: Option<(i64, i32)>,
    /// The event that showed them together; may be empty.
    pub evidence_message_id: &'a str,
}

/// A validated item: distinct normalised identifiers plus evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveItem {
    /// Distinct keys, in the order they were first given; never empty.
    pub keys: Vec<IdentifierKey>,
    /// When they were seen together.
    pub observed_at: Option<DateTime<Utc>>,
    /// The event that showed them together; may be empty.
    pub evidence_message_id: String,
}

/// Why a resolve request was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The call carries more identifiers than allowed.
    #[error("a call may carry at most {limit} identifiers; this one has {actual}")]
    TooManyIdentifiers {
        /// The limit.
        limit: usize,
        /// What was sent.
        actual: usize,
    },
    /// Some fields are invalid; every problem is listed.
    #[error("the request has {} invalid field(s)", .0.len())]
    Invalid(Vec<FieldViolation>),
}

/// Validates and normalises a request's items. The size limit is checked
/// first, so an oversized call costs nothing more; otherwise every problem of
/// every item is reported, not only the first. A phone or email in clear is
/// one of those problems.
pub fn validate(items: &[RawItem<'_>]) -> Result<Vec<ResolveItem>, Rejection> {
    let checked = validate_each(items)?;
    let mut violations = Vec::new();
    let mut valid = Vec::with_capacity(checked.len());
    for item in checked {
        match item {
            Checked::Valid(item) => valid.push(item),
            Checked::NotPseudonymised(clear) => violations.extend(clear),
        }
    }
    if violations.is_empty() {
        Ok(valid)
    } else {
        Err(Rejection::Invalid(violations))
    }
}

/// A request item after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Valid and normalised.
    Valid(ResolveItem),
    /// Valid but for values in clear (phones or emails, see `clear`): the
    /// violations naming them. Nothing of the item may be looked up or
    /// stored.
    NotPseudonymised(Vec<FieldViolation>),
}

/// Validates and normalises a request's items like [`validate`], except that
/// an item whose only problem is a value in clear is returned as
/// [`Checked::NotPseudonymised`] rather than refusing the request: one event
/// carrying a clear phone is the data's problem, not the call's. Any other
/// problem still refuses the request, listing every violation.
pub fn validate_each(items: &[RawItem<'_>]) -> Result<Vec<Checked>, Rejection> {
    let total: usize = items.iter().map(|item| item.identifiers.len()).sum();
    if total > MAX_IDENTIFIERS_PER_CALL {
        return Err(Rejection::TooManyIdentifiers {
            limit: MAX_IDENTIFIERS_PER_CALL,
            actual: total,
        });
    }
    let mut violations = Vec::new();
    let mut checked = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut clear = Vec::new();
        let before = violations.len();
        let valid = validate_item(i, item, &mut violations, &mut clear);
        match valid {
            Some(item) if clear.is_empty() => checked.push(Checked::Valid(item)),
            _ if violations.len() == before => checked.push(Checked::NotPseudonymised(clear)),
            _ => violations.extend(clear),
        }
    }
    if violations.is_empty() {
        Ok(checked)
    } else {
        Err(Rejection::Invalid(violations))
    }
}

/// Checks one item: its problems go to `out`, its values in clear to
/// `clear`; the item when `out` gained nothing.
fn validate_item(
    i: usize,
    item: &RawItem<'_>,
    out: &mut Vec<FieldViolation>,
    clear: &mut Vec<FieldViolation>,
) -> Option<ResolveItem> {
    let before = out.len();
    if item.identifiers.is_empty() {
        out.push(FieldViolation::new(
            format!("items[{i}].identifiers"),
            "EMPTY",
            "an item needs at least one identifier",
        ));
    }
    let mut keys: Vec<IdentifierKey> = Vec::with_capacity(item.identifiers.len());
    // Items hold a handful of identifiers, where a scan beats hashing; a
    // set takes over for the rare item of hundreds.
    let mut seen: Option<HashSet<IdentifierKey>> = None;
    for (j, raw) in item.identifiers.iter().enumerate() {
        let path = |part: &str| format!("items[{i}].identifiers[{j}].{part}");
        check_text(|| path("type"), raw.id_type, true, MAX_TYPE_BYTES, out);
        check_text(|| path("scope"), raw.scope, false, MAX_SCOPE_BYTES, out);
        check_text(|| path("value"), raw.value, true, MAX_VALUE_BYTES, out);
        // Refused per identifier and before anything is looked up, so a
        // clear value never reaches a table, a Redis key name or a log.
        if crate::clear::looks_clear(raw.value).is_some() {
            clear.push(crate::clear::violation(path("value")));
        }
        let key = IdentifierKey::normalise(raw.id_type, raw.scope, raw.value);
        // The same identifier twice in one event says nothing new.
        let repeated = if keys.len() < LINEAR_DEDUP_LIMIT {
            keys.contains(&key)
        } else {
            !seen
                .get_or_insert_with(|| keys.iter().cloned().collect())
                .insert(key.clone())
        };
        if !repeated {
            keys.push(key);
        }
    }
    check_text(
        || format!("items[{i}].evidence_message_id"),
        item.evidence_message_id,
        false,
        MAX_EVIDENCE_BYTES,
        out,
    );
    let observed_at = match item.observed_at {
        None => None,
        Some((seconds, nanos)) => {
            let instant = u32::try_from(nanos)
                .ok()
                .and_then(|nanos| DateTime::from_timestamp(seconds, nanos))
                .filter(|_| nanos < 1_000_000_000);
            if instant.is_none() {
                out.push(FieldViolation::new(
                    format!("items[{i}].observed_at"),
                    "TIMESTAMP_OUT_OF_RANGE",
                    "is not a valid instant",
                ));
            }
            instant
        }
    };
    (out.len() == before).then(|| ResolveItem {
        keys,
        observed_at,
        evidence_message_id: item.evidence_message_id.trim().to_owned(),
    })
}

/// Checks one text field; `field` names it, and is only built for a
/// violation (the valid path allocates nothing here).
fn check_text(
    field: impl Fn() -> String,
    value: &str,
    required: bool,
    max: usize,
    out: &mut Vec<FieldViolation>,
) {
    if value.trim().is_empty() {
        if required {
            out.push(FieldViolation::new(field(), "EMPTY", "must not be empty"));
        }
        return;
    }
    if value.len() > max {
        out.push(FieldViolation::new(
            field(),
            "TOO_LONG",
            format!("is longer than {max} bytes"),
        ));
    }
    // PostgreSQL text cannot hold NUL, and a control character in a key is
    // always a source bug rather than an identifier.
    if value.chars().any(char::is_control) {
        out.push(FieldViolation::new(
            field(),
            "CONTROL_CHARACTER",
            "contains a control character",
        ));
    }
}

/// A map keyed by borrowed identifiers, hashed with a fast seeded hasher
/// (the warm lookup path hashes every identifier several times).
pub type KeyMap<'a, V> = HashMap<&'a IdentifierKey, V, foldhash::fast::RandomState>;

/// The distinct keys of `items`, in order of first appearance.
pub fn distinct_keys<'a>(
    items: impl IntoIterator<Item = &'a ResolveItem>,
) -> Vec<&'a IdentifierKey> {
    let mut seen = HashSet::with_hasher(foldhash::fast::RandomState::default());
    let mut keys = Vec::new();
    for item in items {
        for key in &item.keys {
            if seen.insert(key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// The key id and digest of a value in pseudonym form (`k1:<hex>`).
fn pseudonym_parts(value: &str) -> Option<(&str, &str)> {
    let (key_id, digest) = value.split_once(':')?;
    (!key_id.is_empty()
        && key_id.len() <= 8
        && key_id.chars().all(|c| c.is_ascii_alphanumeric())
        && digest.len() >= 16
        && digest.chars().all(|c| c.is_ascii_hexdigit()))
    .then_some((key_id, digest))
}

/// Whether `value` is in the pseudonym form governance gives direct
/// identifiers.
pub fn is_pseudonym(value: &str) -> bool {
    pseudonym_parts(value).is_some()
}

/// How an identifier value is shown: masked, never in full.
///
/// Pseudonymised values (`k1:<hex>`, a keyed HMAC from governance) show
/// their key id and the first hex digits; emails keep the first letter and
/// the domain; other values keep their first three and last four characters
/// when long enough to hide the middle. Returns (masked, pseudonymised).
pub fn mask(value: &str) -> (String, bool) {
    if let Some((key_id, digest)) = pseudonym_parts(value) {
        let head: String = digest.chars().take(6).collect();
        return (format!("{key_id}:{head}****"), true);
    }
    let chars: Vec<char> = value.chars().collect();
    if let Some(at) = value.find('@') {
        let first: String = chars.iter().take(1).collect();
        return (format!("{first}***{}", &value[at..]), false);
    }
    if chars.len() >= 10 {
        let head: String = chars[..3].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        (format!("{head}****{tail}"), false)
    } else {
        let first: String = chars.iter().take(1).collect();
        (format!("{first}****"), false)
    }
}

/// The answer the cache alone gives for an item: its person when every key
/// is cached and all agree, `None` when PostgreSQL must decide (a missing key
/// may have to be linked; disagreeing keys need the oldest-person rule over
/// authoritative data).
pub fn cached_answer(item: &ResolveItem, cached: &KeyMap<'_, Uuid>) -> Option<Uuid> {
    let mut person = None;
    for key in &item.keys {
        let owner = cached.get(key)?;
        match person {
            None => person = Some(*owner),
            Some(p) if p == *owner => {}
            Some(_) => return None,
        }
    }
    person
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(id_type: &'a str, value: &'a str) -> RawIdentifier<'a> {
        RawIdentifier {
            id_type,
            scope: "",
            value,
        }
    }

    fn item(keys: &[(&str, &str)]) -> ResolveItem {
        ResolveItem {
            keys: keys
                .iter()
                .map(|(t, v)| IdentifierKey::normalise(t, "", v))
                .collect(),
            observed_at: None,
            evidence_message_id: String::new(),
        }
    }

    fn key(t: &str, v: &str) -> IdentifierKey {
        IdentifierKey::normalise(t, "", v)
    }

    #[test]
    fn masks_hide_the_middle_and_recognise_pseudonyms() {
        assert_eq!(mask("13812345678"), ("138****5678".to_owned(), false));
        assert_eq!(
            mask("zoe@example.com"),
            ("z***@example.com".to_owned(), false)
        );
        assert_eq!(
            mask("k1:0123456789abcdef0123"),
            ("k1:012345****".to_owned(), true)
        );
        assert_eq!(mask("m-7"), ("m****".to_owned(), false));
    }

    fn fields(rejection: Rejection) -> Vec<(String, &'static str)> {
        match rejection {
            Rejection::Invalid(violations) => violations
                .into_iter()
                .map(|v| (v.field, v.reason))
                .collect(),
            Rejection::TooManyIdentifiers { .. } => Vec::new(),
        }
    }

    #[test]
    fn normalisation_trims_and_lowercases_emails_only() {
        let email = IdentifierKey::normalise(" Email ", " ", "  Ann@Example.COM ");
        assert_eq!(
            email,
            IdentifierKey::normalise("email", "", "ann@example.com")
        );
        let pseudonym = IdentifierKey::normalise("email", "", " k1:AbCd ");
        assert_eq!(pseudonym.value, "k1:AbCd", "pseudonyms are opaque");
        let openid = IdentifierKey::normalise("wechat_openid", " wxApp ", " oAbC ");
        assert_eq!(openid.value, "oAbC");
        assert_eq!(openid.scope, "wxApp");
    }

    #[test]
    fn empty_items_and_fields_are_named() {
        let items = [
            RawItem::default(),
            RawItem {
                identifiers: vec![raw("phone", " "), raw("", "x"), raw("crm_id", "a\0b")],
                ..RawItem::default()
            },
        ];
        let got = fields(validate(&items).expect_err("invalid"));
        assert_eq!(
            got,
            vec![
                ("items[0].identifiers".to_owned(), "EMPTY"),
                ("items[1].identifiers[0].value".to_owned(), "EMPTY"),
                ("items[1].identifiers[1].type".to_owned(), "EMPTY"),
                (
                    "items[1].identifiers[2].value".to_owned(),
                    "CONTROL_CHARACTER"
                ),
            ]
        );
    }

    #[test]
    fn the_identifier_limit_counts_across_items() {
        let ids = vec![raw("device_id", "d"); 600];
        let items = [
            RawItem {
                identifiers: ids.clone(),
                ..RawItem::default()
            },
            RawItem {
                identifiers: ids,
                ..RawItem::default()
            },
        ];
        assert_eq!(
            validate(&items),
            Err(Rejection::TooManyIdentifiers {
                limit: MAX_IDENTIFIERS_PER_CALL,
                actual: 1_200
            })
        );
        assert!(validate(&items[..1]).is_ok());
    }

    #[test]
    fn repeated_identifiers_in_an_item_collapse() {
        let items = [RawItem {
            // Not an address (one label after `@`), so not refused as clear.
            identifiers: vec![raw("email", "A@x"), raw("email", "a@x ")],
            observed_at: Some((1_795_507_200, 0)),
            evidence_message_id: "m-1",
        }];
        let valid = validate(&items).expect("valid");
        assert_eq!(valid[0].keys, vec![key("email", "a@x")]);
        assert_eq!(
            valid[0].observed_at.map(|t| t.timestamp()),
            Some(1_795_507_200)
        );
    }

    #[test]
    fn repeats_collapse_in_large_items_too() {
        // Past the scan limit a set finds repeats: of keys seen before it
        // took over, and of keys seen after.
        let values: Vec<String> = (0..40).map(|n| format!("d-{n}")).collect();
        let mut identifiers: Vec<RawIdentifier<'_>> =
            values.iter().map(|v| raw("device_id", v)).collect();
        identifiers.push(raw("device_id", "d-3"));
        identifiers.push(raw("Device_ID", " d-39 "));
        identifiers.push(raw("device_id", "d-40"));
        let items = [RawItem {
            identifiers,
            ..RawItem::default()
        }];
        let valid = validate(&items).expect("valid");
        let mut expected: Vec<IdentifierKey> = values.iter().map(|v| key("device_id", v)).collect();
        expected.push(key("device_id", "d-40"));
        assert_eq!(valid[0].keys, expected);
    }

    #[test]
    fn an_item_whose_only_problem_is_a_clear_value_is_set_apart() {
        let item = |ids: Vec<RawIdentifier<'static>>| RawItem {
            identifiers: ids,
            ..RawItem::default()
        };
        let items = [
            item(vec![raw("crm_id", "c-1")]),
            item(vec![raw("user_id", "ann@example.cn"), raw("crm_id", "c-2")]),
        ];
        let checked = validate_each(&items).expect("one valid, one clear");
        assert!(matches!(&checked[0], Checked::Valid(v) if v.keys.len() == 1));
        assert!(matches!(
            &checked[1],
            Checked::NotPseudonymised(v) if v.len() == 1
                && v[0].field == "items[1].identifiers[0].value"
        ));
        // The strict form refuses the same request.
        assert_eq!(
            fields(validate(&items).expect_err("clear")),
            vec![(
                "items[1].identifiers[0].value".to_owned(),
                crate::clear::NOT_PSEUDONYMISED
            )]
        );
        // Beside another problem, the call is refused as a whole.
        let items = [item(vec![raw("phone", "13912345678"), raw("", "x")])];
        assert_eq!(
            fields(validate_each(&items).expect_err("empty type")),
            vec![
                ("items[0].identifiers[1].type".to_owned(), "EMPTY"),
                (
                    "items[0].identifiers[0].value".to_owned(),
                    crate::clear::NOT_PSEUDONYMISED
                ),
            ]
        );
    }

    #[test]
    fn bad_timestamps_are_named() {
        let items = [RawItem {
            identifiers: vec![raw("phone", "1")],
            observed_at: Some((0, -1)),
            ..RawItem::default()
        }];
        assert_eq!(
            fields(validate(&items).expect_err("invalid")),
            vec![("items[0].observed_at".to_owned(), "TIMESTAMP_OUT_OF_RANGE")]
        );
    }

    #[test]
    fn the_cache_answers_only_when_every_key_agrees() {
        let p = Uuid::from_u128(7);
        let q = Uuid::from_u128(8);
        let (phone, email, crm) = (key("phone", "1"), key("email", "a@x"), key("crm_id", "c"));
        let cached: KeyMap<'_, Uuid> = [(&phone, p), (&email, p), (&crm, q)].into_iter().collect();
        assert_eq!(
            cached_answer(&item(&[("phone", "1"), ("email", "a@x")]), &cached),
            Some(p)
        );
        assert_eq!(
            cached_answer(&item(&[("phone", "1"), ("crm_id", "c")]), &cached),
            None
        );
        assert_eq!(
            cached_answer(&item(&[("phone", "1"), ("phone", "2")]), &cached),
            None
        );
    }
}
