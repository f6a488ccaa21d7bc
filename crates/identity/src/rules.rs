//! Resolution rules: per-tenant data deciding which identifiers may join
//! persons, and how far. Plain Rust: stored as JSON by `store`, converted
//! from and to protobuf by `grpc`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use touchline_error::FieldViolation;

use crate::clear;
use crate::domain::{self, IdentifierKey};

/// Identifier types governance always pseudonymises before they reach
/// identity (a tenant may add more there; those it cannot know here).
const PSEUDONYMISED_TYPES: [&str; 2] = ["phone", "email"];

/// Highest accepted `max_persons_per_value`.
pub const MAX_PERSONS_LIMIT: u32 = 1_000;
/// Highest accepted `max_values_per_person`.
pub const MAX_VALUES_LIMIT: u32 = 10_000;
/// Most blocked values a tenant may list.
pub const MAX_BLOCKED_VALUES: usize = 10_000;

/// How one identifier type takes part in resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeRule {
    /// The (lower-case) identifier type.
    pub id_type: String,
    /// 1 is the strongest; 0 is never stored (validated away).
    pub priority: u32,
    /// Most persons one value may be seen with; 0 means the default.
    pub max_persons_per_value: u32,
    /// Most values of this type per person; 0 means the default.
    pub max_values_per_person: u32,
    /// A person holds at most one value of this type.
    pub unique: bool,
    /// The type attaches to persons but never merges two of them.
    pub never_merge: bool,
}

/// A value that never links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedValue {
    /// The value, normalised like any identifier.
    pub key: IdentifierKey,
    /// Why, for people.
    pub reason: String,
}

/// A tenant's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// Per-type rules; unlisted types use the defaults.
    pub types: Vec<TypeRule>,
    /// Most persons one value may be seen with, for unlisted types.
    pub default_max_persons_per_value: u32,
    /// Most values of one type per person, for unlisted types.
    pub default_max_values_per_person: u32,
    /// Values that never link.
    pub blocked: Vec<BlockedValue>,
    /// Incremented on every change (0 = defaults, never stored).
    #[serde(default)]
    pub revision: i64,
    /// When the rules last changed.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
}

fn rule(id_type: &str, priority: u32, max_values: u32, unique: bool) -> TypeRule {
    TypeRule {
        id_type: id_type.to_owned(),
        priority,
        max_persons_per_value: 0,
        max_values_per_person: max_values,
        unique,
        never_merge: false,
    }
}

impl Default for Rules {
    /// Strong account ids first and unique; contact points next with small
    /// limits; device and anonymous ids last. Every value may be seen with
    /// one person only before it stops linking: a store iPad or a shared
    /// browser is refused once (a second account on it) and is then inert.
    fn default() -> Self {
        Self {
            types: vec![
                rule("wechat_unionid", 1, 1, true),
                rule("crm_id", 2, 1, true),
                rule("user_id", 3, 1, true),
                rule("member_card", 4, 1, true),
                rule("marketplace_buyer", 5, 5, false),
                rule("phone", 6, 3, false),
                rule("email", 7, 5, false),
                rule("wechat_openid", 8, 10, false),
                rule("anonymous_id", 9, 100, false),
                rule("cookie", 10, 100, false),
                rule("device_id", 11, 20, false),
                // One per ad click: many per person, never evidence of more.
                rule("click_id", 12, 10_000, false),
            ],
            default_max_persons_per_value: 1,
            default_max_values_per_person: 10,
            blocked: Vec::new(),
            revision: 0,
            updated_at: None,
        }
    }
}

/// The effective limits of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sort rank: lower is stronger. Unlisted types rank after listed ones.
    pub rank: u32,
    /// Most persons a value may be seen with.
    pub max_persons_per_value: u32,
    /// Most values per person.
    pub max_values_per_person: u32,
    /// At most one value per person.
    pub unique: bool,
    /// Never merges persons.
    pub never_merge: bool,
}

/// Rules prepared for fast lookups during resolution.
#[derive(Debug, Clone)]
pub struct CompiledRules {
    by_type: HashMap<String, Limits>,
    unlisted: Limits,
    blocked: HashSet<IdentifierKey>,
}

impl CompiledRules {
    /// Prepares `rules`.
    pub fn new(rules: &Rules) -> Self {
        let by_type = rules
            .types
            .iter()
            .map(|t| {
                let max_values = if t.unique {
                    1
                } else if t.max_values_per_person == 0 {
                    rules.default_max_values_per_person
                } else {
                    t.max_values_per_person
                };
                let limits = Limits {
                    rank: t.priority,
                    max_persons_per_value: if t.max_persons_per_value == 0 {
                        rules.default_max_persons_per_value
                    } else {
                        t.max_persons_per_value
                    },
                    max_values_per_person: max_values,
                    unique: t.unique,
                    never_merge: t.never_merge,
                };
                (t.id_type.clone(), limits)
            })
            .collect();
        Self {
            by_type,
            unlisted: Limits {
                rank: u32::MAX,
                max_persons_per_value: rules.default_max_persons_per_value,
                max_values_per_person: rules.default_max_values_per_person,
                unique: false,
                never_merge: false,
            },
            blocked: rules.blocked.iter().map(|b| b.key.clone()).collect(),
        }
    }

    /// The limits of `id_type`.
    pub fn limits(&self, id_type: &str) -> Limits {
        self.by_type.get(id_type).copied().unwrap_or(self.unlisted)
    }

    /// Whether `key` is on the blocked list.
    pub fn is_blocked(&self, key: &IdentifierKey) -> bool {
        self.blocked.contains(key)
    }
}

/// Checks rules a caller wants to store; every problem is listed.
pub fn validate(rules: &Rules) -> Result<(), Vec<FieldViolation>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, t) in rules.types.iter().enumerate() {
        let field = format!("identity_rules.identifier_types[{i}]");
        if t.id_type.is_empty() {
            out.push(FieldViolation::new(
                format!("{field}.type"),
                "EMPTY",
                "must not be empty",
            ));
        } else if !seen.insert(t.id_type.as_str()) {
            out.push(FieldViolation::new(
                format!("{field}.type"),
                "DUPLICATE_TYPE",
                "each type may be listed once",
            ));
        }
        if t.priority == 0 {
            out.push(FieldViolation::new(
                format!("{field}.priority"),
                "OUT_OF_RANGE",
                "must be 1 or more",
            ));
        }
        if t.max_persons_per_value > MAX_PERSONS_LIMIT {
            out.push(FieldViolation::new(
                format!("{field}.max_persons_per_value"),
                "OUT_OF_RANGE",
                format!("must be at most {MAX_PERSONS_LIMIT}"),
            ));
        }
        if t.max_values_per_person > MAX_VALUES_LIMIT {
            out.push(FieldViolation::new(
                format!("{field}.max_values_per_person"),
                "OUT_OF_RANGE",
                format!("must be at most {MAX_VALUES_LIMIT}"),
            ));
        }
    }
    if !(1..=MAX_PERSONS_LIMIT).contains(&rules.default_max_persons_per_value) {
        out.push(FieldViolation::new(
            "identity_rules.default_max_persons_per_value",
            "OUT_OF_RANGE",
            format!("must be within 1..={MAX_PERSONS_LIMIT}"),
        ));
    }
    if !(1..=MAX_VALUES_LIMIT).contains(&rules.default_max_values_per_person) {
        out.push(FieldViolation::new(
            "identity_rules.default_max_values_per_person",
            "OUT_OF_RANGE",
            format!("must be within 1..={MAX_VALUES_LIMIT}"),
        ));
    }
    if rules.blocked.len() > MAX_BLOCKED_VALUES {
        out.push(FieldViolation::new(
            "identity_rules.blocked_values",
            "TOO_MANY",
            format!("at most {MAX_BLOCKED_VALUES} blocked values"),
        ));
    }
    for (i, b) in rules.blocked.iter().enumerate() {
        if b.key.id_type.is_empty() || b.key.value.is_empty() {
            out.push(FieldViolation::new(
                format!("identity_rules.blocked_values[{i}]"),
                "EMPTY",
                "type and value are required",
            ));
        } else if (PSEUDONYMISED_TYPES.contains(&b.key.id_type.as_str())
            && !domain::is_pseudonym(&b.key.value))
            || clear::looks_clear(&b.key.value).is_some()
        {
            // Identity never sees these values in clear, so a clear value
            // here would be stored and silently never match. The check is
            // the one every identifier entering identity passes.
            out.push(clear::violation(format!(
                "identity_rules.blocked_values[{i}].value"
            )));
        }
    }
    if out.is_empty() { Ok(()) } else { Err(out) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_rank_strong_ids_first() {
        let rules = Rules::default();
        assert_eq!(validate(&rules), Ok(()));
        let compiled = CompiledRules::new(&rules);
        assert!(compiled.limits("wechat_unionid").rank < compiled.limits("phone").rank);
        assert!(compiled.limits("phone").rank < compiled.limits("device_id").rank);
        assert_eq!(compiled.limits("crm_id").max_values_per_person, 1);
        assert_eq!(compiled.limits("loyalty_x").rank, u32::MAX);
    }

    #[test]
    fn duplicate_types_and_bad_limits_are_named() {
        let mut rules = Rules::default();
        rules.types.push(rule("phone", 0, 3, false));
        rules.default_max_persons_per_value = 0;
        let violations = validate(&rules).expect_err("invalid");
        let reasons: Vec<&str> = violations.iter().map(|v| v.reason).collect();
        assert_eq!(
            reasons,
            vec!["DUPLICATE_TYPE", "OUT_OF_RANGE", "OUT_OF_RANGE"]
        );
    }

    #[test]
    fn clear_phones_and_emails_cannot_be_blocked() {
        let blocked = |id_type: &str, value: &str| BlockedValue {
            key: IdentifierKey::normalise(id_type, "", value),
            reason: String::new(),
        };
        let rules = Rules {
            blocked: vec![
                blocked("phone", "+8613912345678"),
                blocked("phone", &format!("k1:{}", "ab".repeat(32))),
                blocked("email", "Shop@Example.com"),
                blocked("device_id", "00000000-0000-0000-0000-000000000000"),
            ],
            ..Rules::default()
        };
        let violations = validate(&rules).expect_err("clear values");
        let named = FieldViolation::field_reasons(&violations);
        assert_eq!(
            named,
            vec![
                (
                    "identity_rules.blocked_values[0].value",
                    "NOT_PSEUDONYMISED"
                ),
                (
                    "identity_rules.blocked_values[2].value",
                    "NOT_PSEUDONYMISED"
                ),
            ]
        );
    }
}
