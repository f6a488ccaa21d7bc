//! Analysable properties: the event properties a tenant marks in its model settings, how
//! their values become the text the projection keeps, and how a filter compares that text.
//!
//! The projection stores one dictionary code per slot and event, so a value is kept as text
//! once, when the event enters; filters and breakdowns then work on codes. Text loses the
//! value's JSON type, so comparisons read both sides as numbers when both parse as numbers
//! and compare text otherwise (RFC 3339 timestamps in UTC order correctly as text).

use prost_types::value::Kind;

use super::query::{Operator, Violations};

/// The most properties a tenant can mark (one projection slot each).
pub const MAX_ANALYSABLE: usize = touchline_projection::MAX_PROPERTIES;
/// The longest path, in bytes.
pub const MAX_PATH_BYTES: usize = 256;
/// Where an event property path starts.
pub const PROPERTIES_PREFIX: &str = "properties.";
/// Where a person trait path starts (traits arrive on identify events).
pub const TRAITS_PREFIX: &str = "traits.";

/// The slot a view keeping the analysable paths `kept` gives `name` under `prefix`
/// (`properties.` or `traits.`).
pub fn slot(kept: &[String], prefix: &str, name: &str) -> Option<usize> {
    kept.iter()
        .position(|path| path.strip_prefix(prefix) == Some(name))
}

/// Whether `path` is an analysable path: `properties.{name}` or `traits.{name}`.
pub fn is_analysable_path(path: &str) -> bool {
    name_of(path).is_some() || trait_name_of(path).is_some()
}

/// Checks the analysable paths of the settings, each problem under `field`.
pub fn check_analysable(paths: &[String], field: &str, problems: &mut Violations) {
    if paths.len() > MAX_ANALYSABLE {
        problems.add(
            field,
            "TOO_MANY_PROPERTIES",
            format!(
                "at most {MAX_ANALYSABLE} analysable properties / 最多 {MAX_ANALYSABLE} 个可分析属性"
            ),
        );
    }
    for (index, path) in paths.iter().enumerate() {
        let at = format!("{field}[{index}]");
        if path.len() > MAX_PATH_BYTES {
            problems.add(at, "TOO_LONG", format!("at most {MAX_PATH_BYTES} bytes"));
            continue;
        }
        if !is_analysable_path(path) {
            problems.add(
                at,
                "INVALID_PATH",
                format!(
                    "{path:?} is not a path such as properties.utm_campaign or traits.member_level (names separated by dots, none empty)"
                ),
            );
            continue;
        }
        if paths[..index].contains(path) {
            problems.add(at, "DUPLICATE", format!("{path:?} is listed twice"));
        }
    }
}

/// The name under `properties.` of a well-formed path: dot-separated, no part empty, no
/// control character.
pub fn name_of(path: &str) -> Option<&str> {
    well_formed(path.strip_prefix(PROPERTIES_PREFIX)?)
}

/// The name under `traits.` of a well-formed path.
pub fn trait_name_of(path: &str) -> Option<&str> {
    well_formed(path.strip_prefix(TRAITS_PREFIX)?)
}

fn well_formed(name: &str) -> Option<&str> {
    let well_formed = !name.is_empty()
        && name.split('.').all(|part| !part.is_empty())
        && !name.chars().any(char::is_control);
    well_formed.then_some(name)
}

/// The value at `name` (dot-separated) of `properties`.
pub fn lookup<'a>(properties: &'a prost_types::Struct, name: &str) -> Option<&'a Kind> {
    let mut parts = name.split('.');
    let mut kind = properties.fields.get(parts.next()?)?.kind.as_ref()?;
    for part in parts {
        let Kind::StructValue(inner) = kind else {
            return None;
        };
        kind = inner.fields.get(part)?.kind.as_ref()?;
    }
    Some(kind)
}

/// A number as text: without a needless fraction (`3`, not `3.0`, as the leading product
/// analytics tools print breakdown values), otherwise Rust's shortest round-trip form.
pub fn number_text(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        number.to_string()
    }
}

/// The text a property value is kept as; `None` (the missing value) for null, an object or
/// a list, and for a number that is not finite.
pub fn value_text(kind: &Kind) -> Option<String> {
    match kind {
        Kind::StringValue(text) => Some(text.clone()),
        Kind::NumberValue(number) if number.is_finite() => Some(number_text(*number)),
        Kind::BoolValue(flag) => Some(flag.to_string()),
        Kind::NumberValue(_) | Kind::NullValue(_) | Kind::StructValue(_) | Kind::ListValue(_) => {
            None
        }
    }
}

fn number(text: &str) -> Option<f64> {
    // `inf` and `nan` parse as f64 but are never kept as numbers (see `value_text`).
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// How `text` (a kept value; empty when missing) orders against `operand`: numerically when
/// both read as numbers, otherwise as text. A missing value orders against nothing.
fn order(text: &str, operand: &str) -> Option<std::cmp::Ordering> {
    if text.is_empty() {
        return None;
    }
    match (number(text), number(operand)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        _ => Some(text.cmp(operand)),
    }
}

/// Whether a comparison operator accepts `text` against `operands`; `None` for operators
/// that are not comparisons.
pub fn compares(operator: Operator, text: &str, operands: &[String]) -> Option<bool> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let first = operands.first().map(String::as_str).unwrap_or_default();
    let against = order(text, first);
    Some(match operator {
        Operator::GreaterThan => against == Some(Greater),
        Operator::GreaterOrEqual => matches!(against, Some(Greater | Equal)),
        Operator::LessThan => against == Some(Less),
        Operator::LessOrEqual => matches!(against, Some(Less | Equal)),
        Operator::Between => {
            let last = operands.get(1).map(String::as_str).unwrap_or_default();
            matches!(against, Some(Greater | Equal))
                && matches!(order(text, last), Some(Less | Equal))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(paths: &[&str]) -> Vec<(String, &'static str)> {
        let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
        let mut problems = Violations::default();
        check_analysable(&paths, "analysable_properties", &mut problems);
        problems
            .0
            .into_iter()
            .map(|v| (v.field, v.reason))
            .collect()
    }

    #[test]
    fn analysable_paths_are_checked_one_by_one() {
        assert!(
            problems_of(&[
                "properties.utm_campaign",
                "properties.utm.source",
                "traits.level"
            ])
            .is_empty()
        );
        let long = format!("properties.{}", "x".repeat(MAX_PATH_BYTES));
        let found = problems_of(&[
            "utm_campaign",
            "properties.",
            "properties.a..b",
            "properties.a",
            "properties.a",
            "traits.",
        ]);
        assert_eq!(
            found,
            vec![
                ("analysable_properties".to_owned(), "TOO_MANY_PROPERTIES"),
                ("analysable_properties[0]".to_owned(), "INVALID_PATH"),
                ("analysable_properties[1]".to_owned(), "INVALID_PATH"),
                ("analysable_properties[2]".to_owned(), "INVALID_PATH"),
                ("analysable_properties[4]".to_owned(), "DUPLICATE"),
                ("analysable_properties[5]".to_owned(), "INVALID_PATH"),
            ]
        );
        assert_eq!(
            problems_of(&[long.as_str()]),
            vec![("analysable_properties[0]".to_owned(), "TOO_LONG")]
        );
    }

    #[test]
    fn values_become_text_as_analysts_read_them() {
        assert_eq!(value_text(&Kind::NumberValue(0.0)).as_deref(), Some("0"));
        assert_eq!(value_text(&Kind::NumberValue(-3.0)).as_deref(), Some("-3"));
        assert_eq!(value_text(&Kind::NumberValue(2.5)).as_deref(), Some("2.5"));
        assert_eq!(value_text(&Kind::NumberValue(f64::NAN)), None);
        assert_eq!(value_text(&Kind::BoolValue(true)).as_deref(), Some("true"));
        assert_eq!(
            value_text(&Kind::StringValue("双十一".to_owned())).as_deref(),
            Some("双十一")
        );
        assert_eq!(value_text(&Kind::NullValue(0)), None);
    }

    #[test]
    fn nested_paths_are_looked_up_through_objects_only() {
        let inner = prost_types::Struct {
            fields: [(
                "campaign".to_owned(),
                prost_types::Value {
                    kind: Some(Kind::StringValue("618".to_owned())),
                },
            )]
            .into(),
        };
        let outer = prost_types::Struct {
            fields: [
                (
                    "utm".to_owned(),
                    prost_types::Value {
                        kind: Some(Kind::StructValue(inner)),
                    },
                ),
                (
                    "flat".to_owned(),
                    prost_types::Value {
                        kind: Some(Kind::StringValue("x".to_owned())),
                    },
                ),
            ]
            .into(),
        };
        assert_eq!(
            lookup(&outer, "utm.campaign"),
            Some(&Kind::StringValue("618".to_owned()))
        );
        assert_eq!(lookup(&outer, "flat.campaign"), None);
        assert_eq!(lookup(&outer, "utm.medium"), None);
    }

    #[test]
    fn comparisons_are_numeric_when_both_sides_are_numbers() {
        let one = |operand: &str| vec![operand.to_owned()];
        assert_eq!(compares(Operator::GreaterThan, "10", &one("9")), Some(true));
        // As text "10" < "9"; numerically it is not.
        assert_eq!(compares(Operator::LessThan, "10", &one("9")), Some(false));
        assert_eq!(
            compares(Operator::LessOrEqual, "9", &one("9.0")),
            Some(true)
        );
        assert_eq!(
            compares(
                Operator::GreaterOrEqual,
                "2026-11-11T00:00:00Z",
                &one("2026-06-18")
            ),
            Some(true)
        );
        assert_eq!(compares(Operator::GreaterThan, "", &one("0")), Some(false));
        assert_eq!(compares(Operator::LessThan, "", &one("0")), Some(false));
        let range = vec!["5".to_owned(), "10".to_owned()];
        assert_eq!(compares(Operator::Between, "5", &range), Some(true));
        assert_eq!(compares(Operator::Between, "10", &range), Some(true));
        assert_eq!(compares(Operator::Between, "10.5", &range), Some(false));
        assert_eq!(compares(Operator::Equals, "5", &range), None);
    }
}
