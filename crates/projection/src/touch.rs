//! The touch table: one 16-bit code per distinct combination of channel, touchpoint,
//! touchpoint type, department and source.
//!
//! These five columns move together (a touchpoint sits in one channel, under one department,
//! fed by one or a few sources), so a tenant has hundreds of combinations, not millions.
//! Storing the combination's code costs 2 bytes an event instead of 2 per column, and a
//! query turns it into the column it needs with one lookup in a table that fits in the L1
//! cache. The table also numbers the (channel, touchpoint) pairs, the items of touchpoint
//! paths.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::ProjectionError;
use crate::event::Touch;

/// A multiply-mix hasher for the touch index: every appended event looks its touch up, and
/// SipHash's protection against chosen keys buys nothing for a tenant's own few hundred
/// combinations, while costing more than the rest of the append.
#[derive(Debug, Default, Clone, Copy)]
struct MixHasher {
    hash: u64,
}

impl Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    #[inline]
    fn write_u64(&mut self, word: u64) {
        let mixed = (self.hash ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.hash = mixed ^ (mixed >> 29);
    }

    #[inline]
    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    #[inline]
    fn write_u8(&mut self, word: u8) {
        self.write_u64(u64::from(word));
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

type Mix = BuildHasherDefault<MixHasher>;

/// The most distinct touches (the column is 16 bits wide).
pub const MAX_TOUCHES: usize = 1 << 16;

/// The distinct touches seen so far.
#[derive(Clone, Debug)]
pub(crate) struct TouchTable {
    touches: Vec<Touch>,
    index: HashMap<Touch, u16, Mix>,
    /// Per touch code, its (channel, touchpoint) pair code.
    pair_of: Vec<u32>,
    pairs: Vec<(u32, u32)>,
    pair_index: HashMap<(u32, u32), u32, Mix>,
}

impl Default for TouchTable {
    fn default() -> Self {
        Self {
            touches: vec![Touch::default()],
            index: HashMap::from_iter([(Touch::default(), 0)]),
            pair_of: vec![0],
            pairs: vec![(0, 0)],
            pair_index: HashMap::from_iter([((0, 0), 0)]),
        }
    }
}

impl TouchTable {
    /// The code of `touch`, handing out the next one when it is new.
    pub(crate) fn intern(&mut self, touch: Touch) -> Result<u16, ProjectionError> {
        if let Some(&code) = self.index.get(&touch) {
            return Ok(code);
        }
        if self.touches.len() >= MAX_TOUCHES {
            return Err(ProjectionError::DictionaryFull {
                column: "touch",
                limit: MAX_TOUCHES,
            });
        }
        let code = self.touches.len() as u16;
        let pair = (touch.channel, touch.touchpoint);
        let next_pair = self.pairs.len() as u32;
        let pair_code = *self.pair_index.entry(pair).or_insert(next_pair);
        if pair_code == next_pair {
            self.pairs.push(pair);
        }
        self.touches.push(touch);
        self.pair_of.push(pair_code);
        self.index.insert(touch, code);
        Ok(code)
    }

    /// The touch of `code` (the default touch for an unknown code, which cannot be stored).
    pub(crate) fn touch(&self, code: u16) -> Touch {
        self.touches
            .get(usize::from(code))
            .copied()
            .unwrap_or_default()
    }

    /// Every touch, by code.
    pub(crate) fn touches(&self) -> &[Touch] {
        &self.touches
    }

    /// The (channel, touchpoint) pair code of touch `code`.
    pub(crate) fn pair_of(&self, code: u16) -> u32 {
        self.pair_of.get(usize::from(code)).copied().unwrap_or(0)
    }

    /// The (channel, touchpoint) codes of pair `pair`.
    pub(crate) fn pair(&self, pair: u32) -> Option<(u32, u32)> {
        self.pairs.get(pair as usize).copied()
    }

    /// Number of distinct pairs; pair codes run from 0 (no channel, no touchpoint).
    pub(crate) fn pair_count(&self) -> usize {
        self.pairs.len()
    }

    /// Heap bytes of the table (capacities × element sizes, hash slots included).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.touches.capacity() * size_of::<Touch>()
            + self.index.capacity() * (size_of::<(Touch, u16)>() + 1)
            + self.pair_of.capacity() * 4
            + self.pairs.capacity() * 8
            + self.pair_index.capacity() * (size_of::<((u32, u32), u32)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touches_and_pairs_get_stable_codes() {
        let mut table = TouchTable::default();
        let app = Touch {
            channel: 1,
            touchpoint: 2,
            touchpoint_type: 1,
            department: 3,
            source: 1,
        };
        let app_other_source = Touch { source: 2, ..app };
        assert_eq!(table.intern(Touch::default()), Ok(0));
        assert_eq!(table.intern(app), Ok(1));
        assert_eq!(table.intern(app_other_source), Ok(2));
        assert_eq!(table.intern(app), Ok(1));
        assert_eq!(table.touch(2), app_other_source);
        assert_eq!(table.pair_of(1), table.pair_of(2));
        assert_eq!(table.pair(table.pair_of(1)), Some((1, 2)));
        assert_eq!(table.pair_count(), 2);
    }
}
