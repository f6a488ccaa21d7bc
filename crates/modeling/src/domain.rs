//! Request rules of the modeling service, free of gRPC and SQL: page sizes and tokens, and the
//! raw-log position a read may wait for.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ModelingError;

/// The parent (`tenants/{tenant}`) and the id of a segment's name
/// `tenants/{tenant}/segments/{id}`; `None` when malformed.
pub fn segment_name(name: &str) -> Option<(&str, &str)> {
    child_name(name, "segments")
}

/// The id of a segment `name` names when it is one of `tenant`'s; `None` when malformed or
/// another tenant's.
pub fn tenant_segment_id<'a>(name: &'a str, tenant: &str) -> Option<&'a str> {
    segment_name(name)
        .filter(|(parent, _)| parent.strip_prefix("tenants/") == Some(tenant))
        .map(|(_, id)| id)
}

/// The parent (`tenants/{tenant}`) and the id of a name `tenants/{tenant}/{collection}/{id}`;
/// `None` when malformed.
pub fn child_name<'a>(name: &'a str, collection: &str) -> Option<(&'a str, &'a str)> {
    let rest = name.strip_prefix("tenants/")?;
    let (tenant, id) = rest.split_once(&format!("/{collection}/"))?;
    (!tenant.is_empty() && !id.is_empty() && !id.contains('/'))
        .then(|| (&name[..8 + tenant.len()], id))
}

/// Default page.
pub const DEFAULT_PAGE: i64 = 100;
/// Largest page.
pub const MAX_PAGE: i64 = 1_000;
/// Most dead letters one replay takes.
pub const MAX_REPLAY: usize = 1_000;

/// The page size a request asked for: 0 means the default.
pub fn page_size(asked: i32) -> Result<i64, ModelingError> {
    match i64::from(asked) {
        0 => Ok(DEFAULT_PAGE),
        n if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(ModelingError::invalid(
            "page_size",
            "OUT_OF_RANGE",
            format!("must be between 0 and {MAX_PAGE}"),
        )),
    }
}

/// An opaque token for the page after `sequence`.
pub fn encode_token(sequence: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("seq:{sequence}"))
}

/// The sequence a token continues after; an empty token starts at the beginning.
pub fn decode_token(token: &str) -> Result<i64, ModelingError> {
    if token.is_empty() {
        return Ok(0);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("seq:")?.parse().ok())
        .filter(|sequence: &i64| *sequence >= 0)
        .ok_or_else(|| {
            ModelingError::invalid(
                "page_token",
                "INVALID_PAGE_TOKEN",
                "page_token is not one this service issued",
            )
        })
}

/// The token of the next page, when the page came back full.
pub fn next_token(last_sequence: Option<i64>, returned: usize, limit: i64) -> String {
    match last_sequence {
        Some(last) if i64::try_from(returned).unwrap_or(i64::MAX) >= limit => encode_token(last),
        _ => String::new(),
    }
}

/// The raw-log position a read must reflect: `None` for 0 (no wait).
pub fn min_raw_sequence(asked: i64) -> Result<Option<i64>, ModelingError> {
    match asked {
        0 => Ok(None),
        n if n > 0 => Ok(Some(n)),
        _ => Err(ModelingError::invalid(
            "min_raw_sequence",
            "OUT_OF_RANGE",
            "must not be negative",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_forgeries() {
        assert_eq!(decode_token(&encode_token(42)).ok(), Some(42));
        assert_eq!(decode_token("").ok(), Some(0));
        assert!(decode_token("bm9wZQ").is_err());
        assert!(decode_token(&URL_SAFE_NO_PAD.encode("seq:-4")).is_err());
        assert!(decode_token("***").is_err());
    }

    #[test]
    fn page_sizes_and_positions_are_checked() {
        assert_eq!(page_size(0).ok(), Some(DEFAULT_PAGE));
        assert_eq!(page_size(7).ok(), Some(7));
        assert!(page_size(-1).is_err());
        assert!(page_size(1_001).is_err());
        assert_eq!(min_raw_sequence(0).ok(), Some(None));
        assert_eq!(min_raw_sequence(9).ok(), Some(Some(9)));
        assert!(min_raw_sequence(-9).is_err());
    }

    #[test]
    fn a_next_page_exists_only_after_a_full_one() {
        assert_eq!(next_token(Some(5), 2, 2), encode_token(5));
        assert_eq!(next_token(Some(5), 1, 2), "");
        assert_eq!(next_token(None, 0, 2), "");
    }
}
