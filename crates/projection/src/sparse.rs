//! Sparse columns and the removal bitmap of a segment.
//!
//! Most events carry no value and only some of the tenant's analysable properties (a
//! `category` belongs to purchases, not to page views). A dense column would spend its full
//! width on every event; a sparse one spends one presence bit per event, a 32-bit rank per
//! 64 events (so the value of event i is found in O(1) without scanning), and the value
//! only where there is one. At 10 % presence an 8-byte value costs about 1 byte an event
//! instead of 8.

/// A column where most rows have no value; written once, in row order, then read.
#[derive(Clone, Debug)]
pub(crate) struct Sparse<T> {
    /// Bit `i % 64` of word `i / 64` is set when row `i` has a value.
    bits: Vec<u64>,
    /// Per word, how many values the words before it hold.
    ranks: Vec<u32>,
    values: Vec<T>,
    rows: usize,
}

impl<T> Default for Sparse<T> {
    fn default() -> Self {
        Self {
            bits: Vec::new(),
            ranks: Vec::new(),
            values: Vec::new(),
            rows: 0,
        }
    }
}

impl<T: Copy> Sparse<T> {
    /// An empty column with room for `rows` rows and `values` values, exactly.
    pub(crate) fn with_capacity(rows: usize, values: usize) -> Self {
        let words = rows.div_ceil(64);
        Self {
            bits: Vec::with_capacity(words),
            ranks: Vec::with_capacity(words),
            values: Vec::with_capacity(values),
            rows: 0,
        }
    }

    /// Appends the next row's value.
    #[inline]
    pub(crate) fn push(&mut self, value: Option<T>) {
        let bit = self.rows % 64;
        if bit == 0 {
            self.bits.push(0);
            self.ranks.push(self.values.len() as u32);
        }
        if let (Some(value), Some(word)) = (value, self.bits.last_mut()) {
            *word |= 1 << bit;
            self.values.push(value);
        }
        self.rows += 1;
    }

    /// Appends rows `rows` of `source`; a run without values only advances the bits.
    pub(crate) fn extend_from(&mut self, source: &Sparse<T>, rows: std::ops::Range<usize>) {
        if source.values.is_empty() {
            self.push_missing(rows.len());
            return;
        }
        for row in rows {
            self.push(source.get(row));
        }
    }

    /// Appends `count` rows without a value.
    fn push_missing(&mut self, count: usize) {
        let mut left = count;
        while left > 0 {
            if self.rows.is_multiple_of(64) && left >= 64 {
                let whole = left / 64;
                self.bits.resize(self.bits.len() + whole, 0);
                let rank = self.values.len() as u32;
                self.ranks.resize(self.ranks.len() + whole, rank);
                self.rows += whole * 64;
                left -= whole * 64;
            } else {
                self.push(None);
                left -= 1;
            }
        }
    }

    /// Row `row`'s value.
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<T> {
        let word = *self.bits.get(row / 64)?;
        let bit = row % 64;
        if word & (1 << bit) == 0 {
            return None;
        }
        let before = (word & ((1u64 << bit) - 1)).count_ones() as usize;
        let rank = self.ranks[row / 64] as usize;
        self.values.get(rank + before).copied()
    }

    /// Drops the presence bits of a column that ended up without values: a slot the tenant
    /// keeps but few events fill should cost nothing until one does.
    pub(crate) fn release_if_empty(&mut self) {
        if self.values.is_empty() {
            *self = Self::default();
        }
    }

    /// Number of values held.
    pub(crate) fn value_count(&self) -> usize {
        self.values.len()
    }

    /// Heap bytes: capacities × element sizes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bits.capacity() * 8
            + self.ranks.capacity() * 4
            + self.values.capacity() * size_of::<T>()
    }

    /// Heap bytes of the values alone (the rest is the per-row presence overhead).
    pub(crate) fn value_bytes(&self) -> usize {
        self.values.capacity() * size_of::<T>()
    }
}

/// Which rows of a segment were removed since it was written (erasures, merges and splits
/// that moved them, retractions). Empty until the first removal.
#[derive(Clone, Debug, Default)]
pub(crate) struct Removed {
    words: Vec<u64>,
    count: usize,
}

impl Removed {
    /// Marks `row` (of a segment of `rows` rows) removed; false when it already was.
    pub(crate) fn remove(&mut self, row: usize, rows: usize) -> bool {
        if self.words.is_empty() {
            self.words = vec![0; rows.div_ceil(64)];
        }
        let mask = 1 << (row % 64);
        let word = &mut self.words[row / 64];
        if *word & mask != 0 {
            return false;
        }
        *word |= mask;
        self.count += 1;
        true
    }

    /// Whether `row` was removed.
    #[inline]
    pub(crate) fn contains(&self, row: usize) -> bool {
        self.words
            .get(row / 64)
            .is_some_and(|word| word & (1 << (row % 64)) != 0)
    }

    /// Whether any row in `start..end` was removed: a word at a time, since every person's
    /// range is tested on every scan once anything was removed.
    pub(crate) fn any_in(&self, start: usize, end: usize) -> bool {
        if self.count == 0 || start >= end {
            return false;
        }
        let (first, last) = (start / 64, (end - 1) / 64);
        (first..=last).any(|index| {
            let mut word = self.words.get(index).copied().unwrap_or(0);
            if index == first {
                word &= u64::MAX << (start % 64);
            }
            if index == last {
                word &= u64::MAX >> (63 - (end - 1) % 64);
            }
            word != 0
        })
    }

    /// How many rows were removed.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Heap bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_column_returns_what_was_pushed() {
        let expected: Vec<Option<u32>> = (0..300u32)
            .map(|i| (i % 7 == 0 || i % 64 == 63).then_some(i * 3))
            .collect();
        let mut column = Sparse::with_capacity(expected.len(), 60);
        for value in &expected {
            column.push(*value);
        }
        for (row, value) in expected.iter().enumerate() {
            assert_eq!(column.get(row), *value, "row {row}");
        }
        assert_eq!(column.get(300), None);
        let mut copied = Sparse::with_capacity(0, 0);
        copied.push(Some(7));
        copied.extend_from(&column, 10..290);
        copied.extend_from(&Sparse::default(), 0..130);
        copied.extend_from(&column, 290..300);
        assert_eq!(copied.get(0), Some(7));
        for row in 0..280 {
            assert_eq!(copied.get(1 + row), expected[10 + row], "copied row {row}");
        }
        assert!((281..411).all(|row| copied.get(row).is_none()));
        for row in 0..10 {
            assert_eq!(copied.get(411 + row), expected[290 + row]);
        }
        assert_eq!(
            column.value_count(),
            expected.iter().filter(|v| v.is_some()).count()
        );
    }

    #[test]
    fn removal_is_counted_once() {
        let mut removed = Removed::default();
        assert!(!removed.contains(5));
        assert!(removed.remove(5, 100));
        assert!(!removed.remove(5, 100));
        assert!(removed.contains(5) && !removed.contains(4));
        assert!(removed.any_in(0, 6) && !removed.any_in(6, 100));
        assert!(removed.any_in(5, 6) && !removed.any_in(0, 5) && !removed.any_in(5, 5));
        removed.remove(70, 100);
        assert!(removed.any_in(64, 71) && removed.any_in(6, 100) && !removed.any_in(71, 100));
        assert_eq!(removed.count(), 2);
    }
}
