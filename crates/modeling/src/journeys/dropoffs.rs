//! ListFunnelDropOffs: the persons who dropped at a step, as activation pulls them — ids in
//! order, opted-out persons left out (and counted), pages over one computation.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use touchline_analytics::funnel::ListedPerson;
use uuid::Uuid;

use super::funnel::Computation;
use super::listings::{DropOff, DropOffListing};
use super::query::FunnelQuery;
use super::view::TenantView;
use crate::error::ModelingError;

/// A drop-off listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropOffQuery {
    /// The funnel, exactly as run.
    pub funnel: FunnelQuery,
    /// The step dropped at (2 to the last), or reached (1 to the last) when `reached`.
    pub step: i32,
    /// List the persons who reached `step` instead of those who dropped at it.
    pub reached: bool,
    /// With a breakdown, only persons with this value (empty: every person).
    pub breakdown_value: String,
    /// Persons per page (already checked).
    pub page_size: i64,
    /// The token of the page to read; empty for the first.
    pub page_token: String,
}

/// One page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropOffPage {
    /// The persons of the page, by id.
    pub persons: Vec<DropOff>,
    /// The next page's token; empty on the last page.
    pub next_page_token: String,
    /// Persons who dropped, opted-out ones included.
    pub total: u64,
    /// Of them, persons left out because they opted out.
    pub opted_out: u64,
    /// What the listing was computed from.
    pub computation: Computation,
}

const TOKEN_PREFIX: &str = "dropoffs:";

fn token(id: u64, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{id}:{offset}"))
}

/// The listing and offset a token continues; `None` for the empty token.
pub fn decode_token(token: &str) -> Result<Option<(u64, usize)>, ModelingError> {
    if token.is_empty() {
        return Ok(None);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let (id, offset) = text.strip_prefix(TOKEN_PREFIX)?.split_once(':')?;
            Some((id.parse().ok()?, offset.parse().ok()?))
        })
        .map(Some)
        .ok_or_else(|| {
            ModelingError::invalid(
                "page_token",
                "INVALID_PAGE_TOKEN",
                "page_token is not one this service issued",
            )
        })
}

/// The listed persons with their ids.
pub fn with_ids(view: &TenantView, persons: &[ListedPerson]) -> Vec<DropOff> {
    persons
        .iter()
        .filter_map(|listed| {
            Some(DropOff {
                person: view.persons.id(listed.person)?,
                furthest_step: listed.furthest_step,
                start_ms: listed.start_time,
                furthest_ms: listed.furthest_step_time,
            })
        })
        .collect()
}

/// The listing: opted-out persons left out and counted, the rest by id.
pub fn listing(
    mut dropped: Vec<DropOff>,
    opted_out: &HashSet<Uuid>,
    computation: Computation,
) -> DropOffListing {
    let total = dropped.len() as u64;
    dropped.retain(|d| !opted_out.contains(&d.person));
    dropped.sort_by_key(|d| d.person);
    DropOffListing {
        opted_out: total - dropped.len() as u64,
        total,
        persons: dropped,
        computation,
    }
}

/// The page of `listing` at `offset`.
pub fn page(id: u64, listing: &Arc<DropOffListing>, offset: usize, size: i64) -> DropOffPage {
    let size = usize::try_from(size).unwrap_or(0);
    let persons: Vec<DropOff> = listing
        .persons
        .iter()
        .skip(offset)
        .take(size)
        .copied()
        .collect();
    let next = offset + persons.len();
    DropOffPage {
        next_page_token: if next < listing.persons.len() {
            token(id, next)
        } else {
            String::new()
        },
        persons,
        total: listing.total,
        opted_out: listing.opted_out,
        computation: listing.computation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn computation() -> Computation {
        Computation {
            positions: Default::default(),
            range: (0, 1),
            persons_considered: 3,
        }
    }

    fn dropped(person: Uuid) -> DropOff {
        DropOff {
            person,
            furthest_step: 1,
            start_ms: 0,
            furthest_ms: 0,
        }
    }

    #[test]
    fn opted_out_persons_are_counted_not_listed_and_pages_follow_ids() {
        let ids: Vec<Uuid> = (1..=5u128).map(Uuid::from_u128).collect();
        let all = vec![
            dropped(ids[4]),
            dropped(ids[0]),
            dropped(ids[2]),
            dropped(ids[1]),
            dropped(ids[3]),
        ];
        let listing = Arc::new(listing(all, &HashSet::from([ids[2]]), computation()));
        assert_eq!((listing.total, listing.opted_out), (5, 1));
        let first = page(9, &listing, 0, 3);
        assert_eq!(
            first.persons.iter().map(|d| d.person).collect::<Vec<_>>(),
            [ids[0], ids[1], ids[3]]
        );
        let next = decode_token(&first.next_page_token).ok().flatten();
        assert_eq!(next, Some((9, 3)));
        let second = page(9, &listing, 3, 3);
        assert_eq!(
            second.persons.iter().map(|d| d.person).collect::<Vec<_>>(),
            [ids[4]]
        );
        assert_eq!(second.next_page_token, "");
        assert!(decode_token("bm9wZQ").is_err());
        assert_eq!(decode_token("").ok(), Some(None));
    }
}
