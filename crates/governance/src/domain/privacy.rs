//! A tenant's privacy settings as a caller writes them, checked and
//! normalised into the form cleaning compares against.

use std::collections::BTreeSet;

use touchline_error::FieldViolation;

use super::pii::{self, DEFAULT_DIRECT_TYPES, PrivacySettings};

/// Most extra direct identifier types.
pub const MAX_DIRECT_TYPES: usize = 32;
/// Most blocked values.
pub const MAX_BLOCKED: usize = 10_000;
/// Longest identifier type name, bytes.
const MAX_TYPE_BYTES: usize = 64;

/// Settings as a request carries them.
#[derive(Debug, Clone, Default)]
pub struct RawSettings<'a> {
    /// Country calling code; empty means the service's default.
    pub default_country_code: &'a str,
    /// Extra direct types (phone and email always are).
    pub direct_types: Vec<&'a str>,
    /// (type or empty for every type, value in clear).
    pub blocked: Vec<(&'a str, &'a str)>,
}

/// Checks `raw`, naming every problem, and returns the settings in the form
/// cleaning compares against: blocked values normalised for their type and
/// lower-cased.
#[expect(
    clippy::too_many_lines,
    reason = "a flat list of per-setting checks that reports every problem, not only the first"
)]
pub fn validate(
    raw: &RawSettings<'_>,
    service_default_code: &str,
) -> Result<PrivacySettings, Vec<FieldViolation>> {
    let mut out = Vec::new();
    let code = match raw.default_country_code.trim() {
        "" => service_default_code,
        code => code,
    };
    if !(1..=3).contains(&code.len())
        || !code.bytes().all(|b| b.is_ascii_digit())
        || code.starts_with('0')
    {
        out.push(FieldViolation::new(
            "privacy_settings.default_country_code",
            "INVALID_COUNTRY_CODE",
            "a country calling code is 1 to 3 digits, without + or a leading 0",
        ));
    }
    let mut direct_types: BTreeSet<String> = DEFAULT_DIRECT_TYPES
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    if raw.direct_types.len() > MAX_DIRECT_TYPES {
        out.push(FieldViolation::new(
            "privacy_settings.direct_types",
            "TOO_MANY",
            format!("at most {MAX_DIRECT_TYPES} direct types"),
        ));
    }
    let mut listed = BTreeSet::new();
    for (i, kind) in raw.direct_types.iter().enumerate() {
        let kind = kind.trim().to_lowercase();
        let field = || format!("privacy_settings.direct_types[{i}]");
        if !is_type_name(&kind) {
            out.push(FieldViolation::new(
                field(),
                "INVALID_TYPE",
                format!("lower-case letters, digits and _, at most {MAX_TYPE_BYTES} bytes"),
            ));
        } else if !listed.insert(kind.clone()) {
            out.push(FieldViolation::new(
                field(),
                "DUPLICATE_TYPE",
                "each type may be listed once",
            ));
        }
        direct_types.insert(kind);
    }
    if raw.blocked.len() > MAX_BLOCKED {
        out.push(FieldViolation::new(
            "privacy_settings.blocked_identifiers",
            "TOO_MANY",
            format!("at most {MAX_BLOCKED} blocked values"),
        ));
    }
    let mut blocked = BTreeSet::new();
    for (i, (kind, value)) in raw.blocked.iter().enumerate() {
        let kind = kind.trim().to_lowercase();
        let field = |part: &str| format!("privacy_settings.blocked_identifiers[{i}].{part}");
        if !kind.is_empty() && !is_type_name(&kind) {
            out.push(FieldViolation::new(
                field("type"),
                "INVALID_TYPE",
                "lower-case letters, digits and _, or empty for every type",
            ));
            continue;
        }
        // Stored as cleaning will meet it: normalised for its type (a phone
        // in E.164), then lower-cased as the comparison is.
        let normalised = if kind.is_empty() {
            let trimmed = value.trim();
            if trimmed.is_empty() {
                Err("empty".to_owned())
            } else {
                Ok(trimmed.to_owned())
            }
        } else {
            pii::normalise(&kind, value, code)
        };
        match normalised {
            Ok(normalised) => {
                blocked.insert((kind, normalised.to_lowercase()));
            }
            Err(why) => out.push(FieldViolation::new(
                field("value"),
                "UNNORMALISABLE",
                format!("cannot be normalised for its type: {why}"),
            )),
        }
    }
    if out.is_empty() {
        Ok(PrivacySettings {
            default_country_code: code.to_owned(),
            direct_types,
            blocked,
        })
    } else {
        Err(out)
    }
}

fn is_type_name(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= MAX_TYPE_BYTES
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_values_are_stored_as_cleaning_meets_them() {
        let settings = validate(
            &RawSettings {
                default_country_code: "",
                direct_types: vec![" ID_Card "],
                blocked: vec![
                    ("phone", "139 1234 5678"),
                    ("email", " Front.Desk@Shop.CN "),
                    ("", " N/A-STORE "),
                ],
            },
            "86",
        )
        .expect("valid");
        assert_eq!(settings.default_country_code, "86");
        assert!(settings.direct_types.contains("id_card"));
        assert!(settings.direct_types.contains("phone"));
        let blocked: Vec<(&str, &str)> = settings
            .blocked
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            blocked,
            vec![
                ("", "n/a-store"),
                ("email", "front.desk@shop.cn"),
                ("phone", "+8613912345678"),
            ]
        );
        // And cleaning then recognises the number however it is written.
        let normalised = pii::normalise("phone", "+86 139-1234-5678", "86").expect("phone");
        assert!(pii::is_blocked("phone", &normalised, &settings));
    }

    #[test]
    fn every_problem_is_named() {
        let violations = validate(
            &RawSettings {
                default_country_code: "+86",
                direct_types: vec!["id card", "passport", "passport"],
                blocked: vec![("phone", "12"), ("", "  "), ("Bad Type", "x")],
            },
            "86",
        )
        .expect_err("invalid");
        let named = FieldViolation::field_reasons(&violations);
        assert_eq!(
            named,
            vec![
                (
                    "privacy_settings.default_country_code",
                    "INVALID_COUNTRY_CODE"
                ),
                ("privacy_settings.direct_types[0]", "INVALID_TYPE"),
                ("privacy_settings.direct_types[2]", "DUPLICATE_TYPE"),
                (
                    "privacy_settings.blocked_identifiers[0].value",
                    "UNNORMALISABLE"
                ),
                (
                    "privacy_settings.blocked_identifiers[1].value",
                    "UNNORMALISABLE"
                ),
                (
                    "privacy_settings.blocked_identifiers[2].type",
                    "INVALID_TYPE"
                ),
            ]
        );
    }
}
