//! The in-process layer in front of Redis: a bounded map of the same
//! versioned entries, so a hot identifier is answered without a network
//! round trip.
//!
//! It follows Redis's rules: an entry is only replaced by something newer,
//! and an invalidation leaves a tombstone of the new version, so a lookup
//! that read Redis before a move cannot put the old owner back here either.
//! Other processes' moves arrive through the invalidation channel (see
//! `listener`); the layer is only consulted while that channel is known to
//! deliver, and is emptied whenever it may have missed something.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moka::ops::compute::Op;
use uuid::Uuid;

/// A cached answer: who owns the identifier, or that it moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Owned by `person` as of `version`.
    Live {
        /// The owner.
        person: Uuid,
        /// The identifier's version when the owner was read.
        version: i64,
    },
    /// Moved at `version`; PostgreSQL must answer.
    Tombstone {
        /// The identifier's version after the move.
        version: i64,
    },
}

impl Entry {
    fn version(self) -> i64 {
        match self {
            Entry::Live { version, .. } | Entry::Tombstone { version } => version,
        }
    }
}

/// Whether `new` may replace `held`: the same rule the Redis script
/// applies. A refill never overwrites a tombstone of a later version (the
/// move happened after the refill's read) and never an entry of its own
/// version or later; an invalidation replaces anything older.
pub fn replaces(held: Option<Entry>, new: Entry) -> bool {
    let Some(held) = held else { return true };
    match (held, new) {
        (Entry::Tombstone { version: old }, Entry::Live { version, .. }) => old <= version,
        _ => held.version() < new.version(),
    }
}

/// The bounded, versioned in-process map (key: the entry's Redis key).
pub struct LocalLayer {
    entries: moka::sync::Cache<String, Entry, foldhash::fast::RandomState>,
    /// Whether invalidations from other processes are known to arrive.
    trusted: AtomicBool,
}

impl std::fmt::Debug for LocalLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLayer")
            .field("entries", &self.entries.entry_count())
            .field("trusted", &self.trusted.load(Ordering::Relaxed))
            .finish()
    }
}

impl LocalLayer {
    /// A layer of at most `capacity` entries, each living at most `ttl`.
    /// It starts untrusted: nothing is served until the listener reports
    /// that invalidations flow.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                // Seeded per process, and several times cheaper than SipHash
                // on the warm path, where every identifier is hashed here.
                .build_with_hasher(foldhash::fast::RandomState::default()),
            trusted: AtomicBool::new(false),
        }
    }

    /// Whether the layer may answer.
    pub fn trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    /// Starts serving from an empty layer (whatever was held may have
    /// missed an invalidation).
    pub fn trust(&self) {
        if !self.trusted.load(Ordering::Acquire) {
            self.entries.invalidate_all();
            self.trusted.store(true, Ordering::Release);
        }
    }

    /// Stops serving and forgets everything: invalidations may be lost
    /// from now on.
    pub fn distrust(&self) {
        if self.trusted.swap(false, Ordering::AcqRel) {
            self.entries.invalidate_all();
        }
    }

    /// The entry held for `key`, when the layer is trusted.
    pub fn get(&self, key: &str) -> Option<Entry> {
        if !self.trusted() {
            return None;
        }
        self.entries.get(key)
    }

    /// Stores `entry` unless something at least as new is held. Tombstones
    /// are stored even while untrusted: they only ever make answers go to
    /// PostgreSQL.
    pub fn offer(&self, key: String, entry: Entry) {
        if matches!(entry, Entry::Live { .. }) && !self.trusted() {
            return;
        }
        self.entries.entry(key).and_compute_with(|held| {
            if replaces(held.map(|h| h.into_value()), entry) {
                Op::Put(entry)
            } else {
                Op::Nop
            }
        });
    }

    /// Entries held (approximate; for metrics and tests).
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(version: i64) -> Entry {
        Entry::Live {
            person: Uuid::from_u128(u128::try_from(version).unwrap_or_default()),
            version,
        }
    }

    #[test]
    fn only_newer_entries_replace_held_ones() {
        assert!(replaces(None, live(1)));
        assert!(replaces(Some(live(1)), live(2)));
        assert!(!replaces(Some(live(2)), live(2)));
        assert!(!replaces(Some(live(3)), live(2)));
        // A refill read before the move loses against its tombstone; one
        // read after the move (same version) wins.
        assert!(!replaces(Some(Entry::Tombstone { version: 3 }), live(2)));
        assert!(replaces(Some(Entry::Tombstone { version: 3 }), live(3)));
        assert!(replaces(Some(live(2)), Entry::Tombstone { version: 3 }));
        assert!(!replaces(Some(live(3)), Entry::Tombstone { version: 3 }));
    }

    #[test]
    fn an_untrusted_layer_answers_nothing_and_trust_starts_empty() {
        let layer = LocalLayer::new(100, Duration::from_secs(60));
        layer.offer("k".to_owned(), live(1));
        assert_eq!(layer.get("k"), None);
        layer.trust();
        layer.offer("k".to_owned(), live(1));
        assert_eq!(layer.get("k"), Some(live(1)));
        // A stale refill racing a move cannot put the old owner back.
        layer.offer("k".to_owned(), Entry::Tombstone { version: 2 });
        layer.offer("k".to_owned(), live(1));
        assert_eq!(layer.get("k"), Some(Entry::Tombstone { version: 2 }));
        layer.distrust();
        assert_eq!(layer.get("k"), None);
        layer.trust();
        assert_eq!(layer.get("k"), None, "trust starts from an empty layer");
    }
}
