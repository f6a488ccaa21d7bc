//! A partition's main segment: its persons' events in columns, clustered by person (persons by
//! ascending key), each person's events sorted by `(time, seq)`.
//!
//! A segment is written once, by [`SegmentWriter`] in partition order, and then only read,
//! except that rows can be marked removed. Clustering by person means a query reads each
//! person's timeline as one contiguous range of every column it needs and never sorts;
//! keeping columns separate means a funnel reads time, sequence, event and touch (16 bytes
//! an event) and never touches values or properties unless a filter asks for them.
//!
//! Per event: time and sequence 6 bytes each (see [`crate::event`]), event and touch codes 2
//! bytes each, plus the sparse value and property columns; per person: an 8-byte key and a
//! 4-byte end offset.

use std::ops::Range;

use crate::event::{MAX_PROPERTIES, pack_seq, pack_time, unpack_seq, unpack_time};
use crate::row::Row;
use crate::sparse::{Removed, Sparse};

/// Columns of one partition's compacted events.
#[derive(Clone, Debug, Default)]
pub(crate) struct Segment {
    /// Person keys, ascending.
    keys: Vec<u64>,
    /// `ends[p]` is one past person `p`'s last row; person `p` starts at `ends[p − 1]` (or 0).
    ends: Vec<u32>,
    time_low: Vec<u32>,
    time_high: Vec<i16>,
    seq_low: Vec<u32>,
    seq_high: Vec<u16>,
    event: Vec<u16>,
    touch: Vec<u16>,
    value: Sparse<f64>,
    /// One column per property slot the projection keeps.
    properties: Vec<Sparse<u32>>,
    removed: Removed,
}

/// Heap bytes of a segment, by part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SegmentBytes {
    pub(crate) dense: usize,
    pub(crate) persons: usize,
    pub(crate) sparse: usize,
    pub(crate) removed: usize,
}

impl Segment {
    /// Rows written, removed ones included.
    pub(crate) fn rows(&self) -> usize {
        self.event.len()
    }

    /// Rows not removed.
    pub(crate) fn live_rows(&self) -> usize {
        self.rows() - self.removed.count()
    }

    /// Rows marked removed.
    pub(crate) fn removed_rows(&self) -> usize {
        self.removed.count()
    }

    /// Persons written (some may have every row removed).
    pub(crate) fn persons(&self) -> usize {
        self.keys.len()
    }

    /// Person `index`'s key.
    #[inline]
    pub(crate) fn key(&self, index: usize) -> u64 {
        self.keys[index]
    }

    /// Person `index`'s rows.
    #[inline]
    pub(crate) fn range(&self, index: usize) -> Range<usize> {
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        start as usize..self.ends[index] as usize
    }

    /// The index of `person`, when the segment holds them.
    pub(crate) fn find(&self, person: u64) -> Option<usize> {
        self.keys.binary_search(&person).ok()
    }

    #[inline(always)]
    pub(crate) fn time(&self, row: usize) -> i64 {
        unpack_time(self.time_low[row], self.time_high[row])
    }

    #[inline(always)]
    pub(crate) fn seq(&self, row: usize) -> u64 {
        unpack_seq(self.seq_low[row], self.seq_high[row])
    }

    #[inline(always)]
    pub(crate) fn event(&self, row: usize) -> u16 {
        self.event[row]
    }

    #[inline(always)]
    pub(crate) fn touch(&self, row: usize) -> u16 {
        self.touch[row]
    }

    #[inline]
    pub(crate) fn value(&self, row: usize) -> Option<f64> {
        self.value.get(row)
    }

    /// Property `slot` of `row`; 0 (missing) for a slot the projection does not keep.
    #[inline]
    pub(crate) fn property(&self, row: usize, slot: usize) -> u32 {
        self.properties
            .get(slot)
            .and_then(|column| column.get(row))
            .unwrap_or(0)
    }

    #[inline]
    pub(crate) fn is_removed(&self, row: usize) -> bool {
        self.removed.contains(row)
    }

    /// Whether any row of `range` was removed.
    pub(crate) fn any_removed(&self, range: &Range<usize>) -> bool {
        self.removed.any_in(range.start, range.end)
    }

    /// The dense columns of rows `start..end`.
    #[inline(always)]
    pub(crate) fn slices(&self, start: usize, end: usize) -> crate::fields::Slices<'_> {
        crate::fields::Slices {
            time_low: &self.time_low[start..end],
            time_high: &self.time_high[start..end],
            seq_low: &self.seq_low[start..end],
            seq_high: &self.seq_high[start..end],
            event: &self.event[start..end],
            touch: &self.touch[start..end],
        }
    }

    /// Marks `row` removed; false when it already was.
    pub(crate) fn remove(&mut self, row: usize) -> bool {
        let rows = self.rows();
        self.removed.remove(row, rows)
    }

    /// Row `row` of person `person` in row form.
    pub(crate) fn row(&self, row: usize, person: u64) -> Row {
        let mut properties = [0; MAX_PROPERTIES];
        for (slot, property) in properties.iter_mut().enumerate() {
            *property = self.property(row, slot);
        }
        let value = self.value(row);
        Row {
            person,
            time: self.time(row),
            seq: self.seq(row),
            value: value.unwrap_or(0.0),
            properties,
            event: self.event(row),
            touch: self.touch(row),
            has_value: value.is_some(),
        }
    }

    /// Heap bytes by part: capacities × element sizes.
    pub(crate) fn heap_bytes(&self) -> SegmentBytes {
        let dense = self.time_low.capacity() * 4
            + self.time_high.capacity() * 2
            + self.seq_low.capacity() * 4
            + self.seq_high.capacity() * 2
            + self.event.capacity() * 2
            + self.touch.capacity() * 2;
        let sparse = self.value.heap_bytes()
            + self
                .properties
                .iter()
                .map(Sparse::heap_bytes)
                .sum::<usize>();
        SegmentBytes {
            dense,
            persons: self.keys.capacity() * 8 + self.ends.capacity() * 4,
            sparse,
            removed: self.removed.heap_bytes(),
        }
    }

    /// Heap bytes of the sparse columns' values alone.
    pub(crate) fn sparse_value_bytes(&self) -> usize {
        self.value.value_bytes()
            + self
                .properties
                .iter()
                .map(Sparse::value_bytes)
                .sum::<usize>()
    }

    /// This segment's live rows merged with the sorted `delta` rows into a new segment
    /// (compaction): removed rows and persons left without rows disappear.
    ///
    /// Runs of persons with neither delta rows nor removed rows — nearly all of them — are
    /// copied column by column in bulk; only the others are merged row by row.
    pub(crate) fn merged_with(&self, delta: &[Row], slots: usize) -> Segment {
        let rows = self.live_rows() + delta.len();
        let delta_values = delta.iter().filter(|row| row.has_value).count();
        let mut writer = SegmentWriter::new(rows, self.value.value_count() + delta_values, slots);
        for slot in 0..slots {
            let kept = self.properties.get(slot).map_or(0, Sparse::value_count);
            let added = delta.iter().filter(|row| row.properties[slot] != 0).count();
            writer.reserve_property(slot, kept + added);
        }
        let mut next = 0;
        let mut run = 0..0;
        for index in 0..self.persons() {
            let person = self.key(index);
            while let Some(row) = delta.get(next).filter(|row| row.person < person) {
                writer.copy_persons(self, std::mem::replace(&mut run, index..index));
                writer.push(row);
                next += 1;
            }
            let own = delta[next..].partition_point(|row| row.person == person);
            let range = self.range(index);
            if own == 0 && !self.any_removed(&range) {
                run.end = index + 1;
                continue;
            }
            writer.copy_persons(self, std::mem::replace(&mut run, index + 1..index + 1));
            self.merge_person(index, &delta[next..next + own], &mut writer);
            next += own;
        }
        writer.copy_persons(self, run);
        for row in &delta[next..] {
            writer.push(row);
        }
        writer.finish()
    }

    /// Person `index`'s live rows merged with their delta rows `own`.
    fn merge_person(&self, index: usize, own: &[Row], writer: &mut SegmentWriter) {
        let person = self.key(index);
        let mut incoming = own.iter().peekable();
        for row in self.range(index) {
            if self.is_removed(row) {
                continue;
            }
            let key = (person, self.time(row), self.seq(row));
            while let Some(next) = incoming.next_if(|next| next.key() < key) {
                writer.push(next);
            }
            writer.push(&self.row(row, person));
        }
        for next in incoming {
            writer.push(next);
        }
    }
}

/// Writes a segment row by row in partition order.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    segment: Segment,
    rows_expected: usize,
}

impl SegmentWriter {
    /// A writer for `rows` rows of which `values` carry a value, keeping `slots` properties;
    /// columns are sized exactly, so a segment never holds doubling slack.
    pub(crate) fn new(rows: usize, values: usize, slots: usize) -> Self {
        let segment = Segment {
            keys: Vec::new(),
            ends: Vec::new(),
            time_low: Vec::with_capacity(rows),
            time_high: Vec::with_capacity(rows),
            seq_low: Vec::with_capacity(rows),
            seq_high: Vec::with_capacity(rows),
            event: Vec::with_capacity(rows),
            touch: Vec::with_capacity(rows),
            value: Sparse::with_capacity(rows, values),
            properties: (0..slots).map(|_| Sparse::default()).collect(),
            removed: Removed::default(),
        };
        Self {
            segment,
            rows_expected: rows,
        }
    }

    /// Copies persons `persons` of `source` (none of their rows removed) as they are.
    fn copy_persons(&mut self, source: &Segment, persons: Range<usize>) {
        let (Some(first), Some(last)) = (persons.clone().next(), persons.clone().last()) else {
            return;
        };
        let rows = source.range(first).start..source.range(last).end;
        let target = &mut self.segment;
        let shift = target.event.len() as i64 - rows.start as i64;
        for person in persons {
            target.keys.push(source.keys[person]);
            target
                .ends
                .push((i64::from(source.ends[person]) + shift) as u32);
        }
        target
            .time_low
            .extend_from_slice(&source.time_low[rows.clone()]);
        target
            .time_high
            .extend_from_slice(&source.time_high[rows.clone()]);
        target
            .seq_low
            .extend_from_slice(&source.seq_low[rows.clone()]);
        target
            .seq_high
            .extend_from_slice(&source.seq_high[rows.clone()]);
        target.event.extend_from_slice(&source.event[rows.clone()]);
        target.touch.extend_from_slice(&source.touch[rows.clone()]);
        target.value.extend_from(&source.value, rows.clone());
        for (slot, column) in target.properties.iter_mut().enumerate() {
            match source.properties.get(slot) {
                Some(from) => column.extend_from(from, rows.clone()),
                None => column.extend_from(&Sparse::default(), rows.clone()),
            }
        }
    }

    /// Makes room for exactly `values` values of property `slot`.
    pub(crate) fn reserve_property(&mut self, slot: usize, values: usize) {
        if let Some(column) = self.segment.properties.get_mut(slot) {
            *column = Sparse::with_capacity(self.rows_expected, values);
        }
    }

    /// Appends a row; rows must come in partition order. Times and sequences were checked
    /// when the row was appended, so packing cannot fail here; a row that would not pack is
    /// a bug and is stored at the nearest representable value rather than lost.
    pub(crate) fn push(&mut self, row: &Row) {
        let segment = &mut self.segment;
        if segment.keys.last() != Some(&row.person) {
            segment.keys.push(row.person);
            segment.ends.push(segment.event.len() as u32);
        }
        let (time_low, time_high) = pack_time(row.time).unwrap_or((u32::MAX, i16::MAX));
        let (seq_low, seq_high) = pack_seq(row.seq).unwrap_or((u32::MAX, u16::MAX));
        segment.time_low.push(time_low);
        segment.time_high.push(time_high);
        segment.seq_low.push(seq_low);
        segment.seq_high.push(seq_high);
        segment.event.push(row.event);
        segment.touch.push(row.touch);
        segment.value.push(row.value());
        for (slot, column) in segment.properties.iter_mut().enumerate() {
            let code = row.properties[slot];
            column.push((code != 0).then_some(code));
        }
        if let Some(end) = segment.ends.last_mut() {
            *end += 1;
        }
    }

    /// The written segment; the person directory is trimmed to its length and sparse
    /// columns without values are freed.
    pub(crate) fn finish(mut self) -> Segment {
        self.segment.keys.shrink_to_fit();
        self.segment.ends.shrink_to_fit();
        self.segment.value.release_if_empty();
        for column in &mut self.segment.properties {
            column.release_if_empty();
        }
        self.segment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(person: u64, time: i64, seq: u64, event: u16) -> Row {
        Row {
            person,
            time,
            seq,
            event,
            ..Row::default()
        }
    }

    fn written(rows: &[Row]) -> Segment {
        let mut writer = SegmentWriter::new(rows.len(), 0, 1);
        for row in rows {
            writer.push(row);
        }
        writer.finish()
    }

    #[test]
    fn persons_get_contiguous_ranges() {
        let segment = written(&[row(2, 1, 1, 0), row(2, 5, 2, 1), row(7, -3, 3, 2)]);
        assert_eq!(segment.persons(), 2);
        assert_eq!(segment.find(7), Some(1));
        assert_eq!(segment.find(3), None);
        assert_eq!(segment.range(0), 0..2);
        assert_eq!(segment.range(1), 2..3);
        assert_eq!(segment.time(2), -3);
        assert_eq!(segment.event(1), 1);
    }

    #[test]
    fn compaction_drops_removed_rows_and_empty_persons() {
        let mut segment = written(&[row(2, 1, 1, 0), row(5, 2, 2, 0), row(5, 9, 3, 0)]);
        segment.remove(0);
        segment.remove(2);
        let delta = [row(1, 0, 8, 4), row(5, 3, 9, 5)];
        let merged = segment.merged_with(&delta, 1);
        let keys: Vec<_> = (0..merged.persons()).map(|p| merged.key(p)).collect();
        assert_eq!(keys, [1, 5]);
        assert_eq!(merged.rows(), 3);
        let events: Vec<_> = (0..3).map(|r| merged.event(r)).collect();
        assert_eq!(events, [4, 0, 5]);
    }
}
