//! Page sizes and page tokens of the governance listings: what a request may ask for, and
//! which tokens continue which listing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::GovernanceError;

/// Replay page size with a filter: default and maximum.
const REPLAY_DEFAULT: i64 = 1_000;
const REPLAY_MAX: i64 = 10_000;

/// Canonical events per page: 0 or less means 100, at most 1,000.
pub fn canonical_events_page(asked: i32) -> usize {
    usize::try_from(match asked {
        n if n <= 0 => 100,
        n => n.min(1000),
    })
    .unwrap_or(100)
}

/// Dictionary versions per page: 0 or less means 50, at most 500.
pub fn versions_page(asked: i32) -> i64 {
    i64::from(if asked <= 0 { 50 } else { asked.min(500) })
}

/// The version a versions listing continues before; an empty token starts at the newest.
pub fn versions_before(token: &str) -> Result<i64, GovernanceError> {
    if token.is_empty() {
        return Ok(i64::MAX);
    }
    token.parse::<i64>().map_err(|_| {
        GovernanceError::invalid(
            "page_token",
            "INVALID_PAGE_TOKEN",
            "not a token this call returned",
        )
    })
}

/// Quarantined events per page: 0 means 100, at most 1,000, never negative.
pub fn quarantine_page(asked: i32) -> Result<i64, GovernanceError> {
    Ok(i64::from(match asked {
        n if n < 0 => {
            return Err(GovernanceError::invalid(
                "page_size",
                "INVALID_PAGE_SIZE",
                "must not be negative",
            ));
        }
        0 => 100,
        n => n.min(1_000),
    }))
}

/// Events one filtered replay examines: 0 means 1,000, at most 10,000, never negative.
pub fn replay_max_events(asked: i32) -> Result<i64, GovernanceError> {
    match i64::from(asked) {
        n if n < 0 => Err(GovernanceError::invalid(
            "max_events",
            "INVALID_MAX_EVENTS",
            "must not be negative",
        )),
        0 => Ok(REPLAY_DEFAULT),
        n => Ok(n.min(REPLAY_MAX)),
    }
}

/// A token continuing after `after`, tied to the listing's filter through its `fingerprint`
/// so that it is only accepted with the filter it was issued for.
pub fn filtered_token(after: i64, fingerprint: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{after}.{fingerprint}"))
}

/// The position a filtered token continues after; an empty token starts at the beginning.
pub fn parse_filtered_token(token: &str, fingerprint: &str) -> Result<i64, GovernanceError> {
    if token.is_empty() {
        return Ok(0);
    }
    let bad = || {
        GovernanceError::invalid(
            "page_token",
            "INVALID_PAGE_TOKEN",
            "not a token this call returned for the same filter",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (after, print) = text.split_once('.').ok_or_else(bad)?;
    if print != fingerprint {
        return Err(bad());
    }
    after.parse::<i64>().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filtered_tokens_only_continue_their_own_filter() {
        let token = filtered_token(42, "abc");
        assert_eq!(parse_filtered_token(&token, "abc").ok(), Some(42));
        assert_eq!(parse_filtered_token("", "abc").ok(), Some(0));
        assert!(parse_filtered_token(&token, "abd").is_err());
        assert!(parse_filtered_token("not-a-token", "abc").is_err());
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(canonical_events_page(0), 100);
        assert_eq!(canonical_events_page(5_000), 1_000);
        assert_eq!(versions_page(-1), 50);
        assert_eq!(versions_page(900), 500);
        assert!(quarantine_page(-1).is_err());
        assert_eq!(quarantine_page(0).ok(), Some(100));
        assert_eq!(replay_max_events(0).ok(), Some(1_000));
        assert_eq!(replay_max_events(50_000).ok(), Some(10_000));
        assert!(versions_before("x").is_err());
    }
}
