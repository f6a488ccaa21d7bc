//! The one rule set of what every pipeline stage can hold.
//!
//! What belongs here: the limits on names, keys, values, identifier types, scopes and counts
//! that some stage after the first cannot take (PostgreSQL text refuses NUL, identity refuses
//! oversized identifiers and calls), and the check of one text against them. Collection refuses
//! and governance quarantines exactly what these rules say identity and modeling could not take,
//! so a record a stage accepted never stops a stage after it. Nothing else: no I/O, no gRPC.

/// Most identifiers, summed over all items, one identity resolve call may carry.
pub const MAX_IDENTIFIERS_PER_CALL: usize = 1_000;
/// Most identifiers one event may carry. An event with more is a source bug (a list of every
/// device a household ever used), and it must fit one resolve call with room to spare.
pub const MAX_IDENTIFIERS_PER_EVENT: usize = 100;
/// Longest identifier type, bytes.
pub const MAX_IDENTIFIER_TYPE_BYTES: usize = 64;
/// Longest identifier scope, bytes.
pub const MAX_IDENTIFIER_SCOPE_BYTES: usize = 256;
/// Longest identifier value, bytes.
pub const MAX_IDENTIFIER_VALUE_BYTES: usize = 512;
/// Longest property, trait or context key, bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest source id an event may carry, bytes. Sources are counted per id in the ingest
/// counters and the quality report, so an unbounded id would grow every report that names it.
pub const MAX_SOURCE_BYTES: usize = 128;
/// Longest channel an event may carry, bytes; governance maps it onto the dictionary's channels.
pub const MAX_CHANNEL_BYTES: usize = 128;

/// Why a text cannot be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextProblem {
    /// Required, but empty or only white space.
    Empty,
    /// Longer than its limit.
    TooLong {
        /// The limit, bytes.
        max: usize,
    },
    /// Holds a NUL byte, which PostgreSQL text and jsonb cannot store.
    Nul,
    /// Holds another control character, never part of a name or an id.
    Control,
}

impl TextProblem {
    /// The reason code callers and quarantine records carry.
    pub fn code(self) -> &'static str {
        match self {
            TextProblem::Empty => "EMPTY",
            TextProblem::TooLong { .. } => "TOO_LONG",
            TextProblem::Nul => "NUL_BYTE",
            TextProblem::Control => "CONTROL_CHARACTER",
        }
    }

    /// A sentence for people, free of the value itself (it may be personal data).
    pub fn describe(self) -> String {
        match self {
            TextProblem::Empty => "must not be empty".to_owned(),
            TextProblem::TooLong { max } => format!("is longer than {max} bytes"),
            TextProblem::Nul => "contains a NUL byte".to_owned(),
            TextProblem::Control => "contains a control character".to_owned(),
        }
    }
}

/// Checks a name or an id: required or not, at most `max` bytes, no control character.
/// The first problem found is returned (a NUL before any other control character).
pub fn check_name(value: &str, required: bool, max: usize) -> Option<TextProblem> {
    if value.trim().is_empty() {
        return required.then_some(TextProblem::Empty);
    }
    if value.contains('\0') {
        return Some(TextProblem::Nul);
    }
    if value.chars().any(char::is_control) {
        return Some(TextProblem::Control);
    }
    (value.len() > max).then_some(TextProblem::TooLong { max })
}

/// Checks one identifier as every stage after governance will see it.
pub fn check_identifier(
    id_type: &str,
    scope: &str,
    value: &str,
) -> Option<(&'static str, TextProblem)> {
    if let Some(p) = check_name(id_type, true, MAX_IDENTIFIER_TYPE_BYTES) {
        return Some(("type", p));
    }
    if let Some(p) = check_name(scope, false, MAX_IDENTIFIER_SCOPE_BYTES) {
        return Some(("scope", p));
    }
    check_name(value, true, MAX_IDENTIFIER_VALUE_BYTES).map(|p| ("value", p))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_are_checked_for_emptiness_nul_control_and_length() {
        assert_eq!(check_name(" ", true, 8), Some(TextProblem::Empty));
        assert_eq!(check_name("", false, 8), None);
        assert_eq!(check_name("a\0\u{7}", true, 8), Some(TextProblem::Nul));
        assert_eq!(check_name("a\u{7}", true, 8), Some(TextProblem::Control));
        assert_eq!(
            check_name("abcdefghi", true, 8),
            Some(TextProblem::TooLong { max: 8 })
        );
        assert_eq!(check_name("abcdefgh", true, 8), None);
    }

    #[test]
    fn identifiers_name_the_part_at_fault() {
        assert_eq!(check_identifier("phone", "", "k1:ab"), None);
        assert_eq!(
            check_identifier("pho\0ne", "", "x").map(|(f, _)| f),
            Some("type")
        );
        assert_eq!(
            check_identifier("wechat_openid", "wx\0", "x").map(|(f, _)| f),
            Some("scope")
        );
        let long = "a".repeat(MAX_IDENTIFIER_VALUE_BYTES + 1);
        assert_eq!(
            check_identifier("anonymous_id", "", &long),
            Some((
                "value",
                TextProblem::TooLong {
                    max: MAX_IDENTIFIER_VALUE_BYTES
                }
            ))
        );
    }

    proptest! {
        /// Whatever passes can be stored as PostgreSQL text and fits its limit.
        #[test]
        fn what_passes_fits_everywhere(value in ".{0,40}", max in 1usize..30) {
            if check_name(&value, true, max).is_none() {
                prop_assert!(!value.contains('\0'));
                prop_assert!(value.len() <= max);
                prop_assert!(!value.trim().is_empty());
            }
        }
    }
}
