//! The ids callers choose for the resources they create (segments, webhook destinations):
//! the rule they must meet, and the one generated when they leave it empty.

use crate::journeys::query::Violations;

/// Adds a violation of `field` unless `id` is 1–63 lower-case letters, digits and hyphens,
/// starting with a letter (so it fits a resource name and a URL path unescaped).
pub(super) fn check(field: &str, id: &str, problems: &mut Violations) {
    let ok = (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        problems.add(
            field,
            "INVALID_ID",
            "1–63 lower-case letters, digits and hyphens, starting with a letter",
        );
    }
}

/// `given`, or a fresh `{kind}-…` id when it is empty.
pub(super) fn or_generated(given: String, kind: &str) -> String {
    if given.is_empty() {
        format!(
            "{kind}-{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        )
    } else {
        given
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_rule_and_generated_ones_meet_it() {
        for (id, ok) in [
            ("vip", true),
            ("a-1", true),
            ("", false),
            ("1a", false),
            ("A", false),
            ("a_b", false),
        ] {
            let mut problems = Violations::default();
            check("id", id, &mut problems);
            assert_eq!(problems.is_empty(), ok, "{id:?}");
        }
        let generated = or_generated(String::new(), "segment");
        let mut problems = Violations::default();
        check("id", &generated, &mut problems);
        assert!(problems.is_empty(), "{generated}");
        assert_ne!(generated, or_generated(String::new(), "segment"));
    }
}
