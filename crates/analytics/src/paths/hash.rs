//! A small multiplicative hasher for the paths' integer keys.
//!
//! The graph's maps are updated once per distinct edge and node of every person, millions of
//! times per query, and their keys are a few small integers chosen by the caller, not by an
//! adversary; SipHash's flooding protection buys nothing here and costs several times more.
//! Iteration order never reaches a result: the graph is sorted before it is returned.

use std::hash::{BuildHasherDefault, Hasher};

/// The multiplier of the Fx hash (from Firefox, also used by rustc).
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// Hashes integer fields by rotate, xor and multiply.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct IntHasher(u64);

impl IntHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for IntHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.add(u64::from(byte));
        }
    }

    #[inline]
    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    #[inline]
    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`IntHasher`]s for the graph's maps.
pub(super) type BuildIntHasher = BuildHasherDefault<IntHasher>;
