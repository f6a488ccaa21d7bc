//! The index from a channel sequence (or a channel name) to its row in a path table: open addressing over row
//! numbers, the sequences themselves staying in the table's flat code array. Looking a path up
//! never allocates, and adding one allocates nothing per path (the slot array grows by
//! doubling), which matters when a million journeys fold into a hundred thousand paths.

use std::hash::Hasher;

use super::fxhash::FxHasher;

const EMPTY: u64 = u64::MAX;
const ROW_BITS: u64 = 0xffff_ffff;

/// Row numbers by sequence hash; the caller supplies sequence equality. A slot holds the row
/// in its low 32 bits and the hash's high 32 bits above, so a probe rejects other paths
/// without touching anything but the slot array.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathIndex {
    slots: Vec<u64>,
    hashes: Vec<u64>,
}

/// The hash of a channel sequence.
pub(crate) fn sequence_hash(codes: &[u32]) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write_usize(codes.len());
    for &code in codes {
        hasher.write_u32(code);
    }
    hasher.finish()
}

/// A cheap hash of a channel name: its length and its first and last eight bytes, enough to
/// tell channel names apart (equality is still checked on the whole name).
pub(crate) fn name_hash(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let word = |part: &[u8]| {
        let mut word = [0u8; 8];
        word[..part.len()].copy_from_slice(part);
        u64::from_le_bytes(word)
    };
    let head = &bytes[..bytes.len().min(8)];
    let tail = &bytes[bytes.len().saturating_sub(8)..];
    let mut hasher = FxHasher::default();
    hasher.write_usize(bytes.len());
    hasher.write_u64(word(head));
    hasher.write_u64(word(tail));
    hasher.finish()
}

impl PathIndex {
    /// The row whose sequence has `hash` and satisfies `same`.
    #[inline]
    pub(crate) fn find(&self, hash: u64, same: impl Fn(usize) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        loop {
            match self.slots[slot] {
                EMPTY => return None,
                entry
                    if entry & !ROW_BITS == hash & !ROW_BITS
                        && same((entry & ROW_BITS) as usize) =>
                {
                    return Some((entry & ROW_BITS) as usize);
                }
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Reads the first slot of each hash so the lookups that follow find them in cache. On a
    /// large index every lookup of a new path is a cache miss; a lookup waits for its miss,
    /// while this loop has them all in flight at once.
    pub(crate) fn touch(&self, hashes: &[u64]) {
        let mask = self.slots.len().wrapping_sub(1);
        let seen = hashes
            .iter()
            .filter_map(|&hash| self.slots.get(hash as usize & mask))
            .fold(0, |seen, &slot| seen ^ slot);
        // Keeps the reads from being optimised away as unused.
        std::hint::black_box(seen);
    }

    /// Records that the next row (number `hashes.len()`) has `hash`.
    pub(crate) fn insert_next(&mut self, hash: u64) {
        if (self.hashes.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let row = self.hashes.len() as u32;
        self.hashes.push(hash);
        self.place(row, hash);
    }

    /// Makes room for `additional` more rows without regrowing.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let wanted = ((self.hashes.len() + additional) * 2).next_power_of_two();
        if wanted > self.slots.len() {
            self.rebuild(wanted);
        }
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(16);
        self.rebuild(capacity);
    }

    fn rebuild(&mut self, capacity: usize) {
        self.slots.clear();
        self.slots.resize(capacity, EMPTY);
        for row in 0..self.hashes.len() {
            self.place(row as u32, self.hashes[row]);
        }
    }

    fn place(&mut self, row: u32, hash: u64) {
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        while self.slots[slot] != EMPTY {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = (hash & !ROW_BITS) | u64::from(row);
    }
}
