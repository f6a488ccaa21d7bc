//! Listings of persons that page over one computation: the first page computes and keeps
//! the whole list for an hour; later pages read it, so a listing is consistent across its
//! pages however the data moves meanwhile (activation exports depend on that).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::funnel::Computation;

/// How long a listing's pages can be read.
pub const LISTING_TTL: Duration = Duration::from_secs(3_600);
/// Most listings kept at once; the oldest goes first.
const MAX_LISTINGS: usize = 64;

/// A person who dropped at a funnel step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropOff {
    /// The person.
    pub person: Uuid,
    /// Their furthest step (the step asked for, minus one).
    pub furthest_step: usize,
    /// When their counted attempt started.
    pub start_ms: i64,
    /// When they did their furthest step.
    pub furthest_ms: i64,
}

/// One computation's persons, opted-out persons left out, by person id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropOffListing {
    /// The persons.
    pub persons: Vec<DropOff>,
    /// Persons who dropped, opted-out ones included.
    pub total: u64,
    /// Of them, persons left out because they opted out of marketing.
    pub opted_out: u64,
    /// What it was computed from.
    pub computation: Computation,
}

/// Why a page cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingError {
    /// The listing expired (or this replica never computed it): start again.
    Expired,
    /// The token belongs to a listing of another request.
    OtherRequest,
}

/// The key of a listing request: the same request gives the same key in this process.
pub fn request_key(request: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    request.hash(&mut hasher);
    hasher.finish()
}

#[derive(Debug)]
struct Entry {
    created: Instant,
    request: u64,
    listing: Arc<DropOffListing>,
}

/// The listings computed lately.
#[derive(Debug, Default, Clone)]
pub struct Listings {
    entries: Arc<Mutex<HashMap<u64, Entry>>>,
}

impl Listings {
    /// Keeps `listing` of `request`; returns its id.
    pub fn put(&self, request: u64, listing: DropOffListing) -> (u64, Arc<DropOffListing>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, entry| entry.created.elapsed() < LISTING_TTL);
        while entries.len() >= MAX_LISTINGS {
            let oldest = entries
                .iter()
                .min_by_key(|(_, entry)| entry.created)
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => entries.remove(&id),
                None => break,
            };
        }
        let id = rand::random::<u64>();
        let listing = Arc::new(listing);
        entries.insert(
            id,
            Entry {
                created: Instant::now(),
                request,
                listing: listing.clone(),
            },
        );
        (id, listing)
    }

    /// The listing `id` of `request`.
    pub fn get(&self, id: u64, request: u64) -> Result<Arc<DropOffListing>, ListingError> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries
            .get(&id)
            .filter(|entry| entry.created.elapsed() < LISTING_TTL)
            .ok_or(ListingError::Expired)?;
        if entry.request != request {
            return Err(ListingError::OtherRequest);
        }
        Ok(entry.listing.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(total: u64) -> DropOffListing {
        DropOffListing {
            persons: Vec::new(),
            total,
            opted_out: 0,
            computation: Computation {
                positions: Default::default(),
                range: (0, 1),
                persons_considered: 0,
            },
        }
    }

    #[test]
    fn a_listing_is_read_back_only_by_its_own_request_and_the_oldest_goes_first() {
        let listings = Listings::default();
        let (id, _) = listings.put(request_key(&"a"), listing(7));
        assert_eq!(listings.get(id, request_key(&"a")).map(|l| l.total), Ok(7));
        assert_eq!(
            listings.get(id, request_key(&"b")).err(),
            Some(ListingError::OtherRequest)
        );
        assert_eq!(
            listings.get(id.wrapping_add(1), request_key(&"a")).err(),
            Some(ListingError::Expired)
        );
        for n in 0..MAX_LISTINGS as u64 {
            listings.put(n, listing(n));
        }
        assert_eq!(
            listings.get(id, request_key(&"a")).err(),
            Some(ListingError::Expired),
            "the oldest listing made room"
        );
    }
}
