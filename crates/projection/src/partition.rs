//! One partition of persons: a compacted [`Segment`] plus a small sorted delta of recent
//! rows, in the manner of a log-structured merge tree with two levels.
//!
//! Why two levels: inserting a late event into the middle of a person-clustered column costs
//! a shift of everything after it; appending to a per-person vector costs a heap block per
//! person (more than the event data itself at ten events a person). Instead, new rows are
//! merged into the delta, a vector kept sorted by `(person, time, seq)` — a batch costs one
//! pass over the delta, whatever order its events arrive in, late ones included — and the
//! delta is merged into a fresh segment once it holds a set fraction of the segment's rows,
//! so each event is rewritten a bounded number of times on average. Removals (erasures,
//! events moved away by merges and splits, retractions) mark segment rows in a bitmap and
//! take delta rows out at once; compaction drops the marked rows for good.

use std::ops::Range;

use crate::row::{Row, merge_into, sort_rows};
use crate::segment::{Segment, SegmentBytes};
use crate::timeline::PersonEvents;
use crate::touch::TouchTable;

/// When a partition's delta and removals are folded into a new segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Compact when the delta (or the removed rows) reach the segment's rows divided by this.
    pub fraction: usize,
    /// ... but never for fewer rows than this.
    pub min_rows: usize,
}

impl CompactionPolicy {
    fn threshold(&self, segment_rows: usize) -> usize {
        (segment_rows / self.fraction.max(1)).max(self.min_rows.max(1))
    }
}

/// A partition's storage.
#[derive(Clone, Debug, Default)]
pub(crate) struct Partition {
    main: Segment,
    /// Recent rows, sorted by `(person, time, seq)`.
    delta: Vec<Row>,
}

impl Partition {
    /// Events the partition holds (removed ones excluded).
    pub(crate) fn live_events(&self) -> usize {
        self.main.live_rows() + self.delta.len()
    }

    /// Rows waiting in the delta.
    pub(crate) fn delta_rows(&self) -> usize {
        self.delta.len()
    }

    /// Adds rows of this partition's persons, in any order.
    pub(crate) fn insert(&mut self, rows: &mut [Row], policy: &CompactionPolicy) {
        sort_rows(rows);
        // Room for the whole delta the policy allows, reserved once and exactly: growing by
        // doubling would leave up to twice the delta's bytes allocated.
        let needed = self.delta.len() + rows.len();
        if needed > self.delta.capacity() {
            let room = needed.max(policy.threshold(self.main.rows()) + 1);
            self.delta.reserve_exact(room - self.delta.len());
        }
        merge_into(&mut self.delta, rows);
    }

    /// Writes a large batch of rows (a load's chunk) straight into a new segment, without
    /// passing through the delta.
    pub(crate) fn absorb(&mut self, rows: &mut [Row], slots: usize, policy: &CompactionPolicy) {
        if rows.is_empty() {
            return;
        }
        if !self.delta.is_empty() {
            self.insert(rows, policy);
            self.compact(slots, policy);
            return;
        }
        sort_rows(rows);
        self.main = self.main.merged_with(rows, slots);
    }

    /// Whether the delta or the removals have outgrown the policy.
    pub(crate) fn should_compact(&self, policy: &CompactionPolicy) -> bool {
        let threshold = policy.threshold(self.main.rows());
        self.delta.len() >= threshold || self.main.removed_rows() >= threshold
    }

    /// Folds the delta and the removals into a new segment.
    pub(crate) fn compact(&mut self, slots: usize, policy: &CompactionPolicy) {
        if self.delta.is_empty() && self.main.removed_rows() == 0 {
            return;
        }
        self.main = self.main.merged_with(&self.delta, slots);
        self.delta.clear();
        // A bulk load leaves a delta far larger than steady ingestion needs; keep only the
        // room the policy will use again.
        let keep = policy.threshold(self.main.rows()) + 1;
        if self.delta.capacity() > 2 * keep {
            self.delta.shrink_to(keep);
        }
    }

    /// The delta rows of `person`.
    fn delta_range(&self, person: u64) -> Range<usize> {
        let start = self.delta.partition_point(|row| row.person < person);
        let end = start + self.delta[start..].partition_point(|row| row.person == person);
        start..end
    }

    /// Moves every live event of `person` into `out`; returns how many.
    pub(crate) fn take_person(&mut self, person: u64, out: &mut Vec<Row>) -> usize {
        self.take_where(person, out, |_| true)
    }

    /// Moves the live events of `person` whose sequence is in `seqs` (sorted) into `out`.
    pub(crate) fn take_events(&mut self, person: u64, seqs: &[u64], out: &mut Vec<Row>) -> usize {
        self.take_where(person, out, |seq| seqs.binary_search(&seq).is_ok())
    }

    fn take_where(
        &mut self,
        person: u64,
        out: &mut Vec<Row>,
        wanted: impl Fn(u64) -> bool,
    ) -> usize {
        let before = out.len();
        if let Some(index) = self.main.find(person) {
            for row in self.main.range(index) {
                if !self.main.is_removed(row) && wanted(self.main.seq(row)) {
                    out.push(self.main.row(row, person));
                    self.main.remove(row);
                }
            }
        }
        let range = self.delta_range(person);
        let mut write = range.start;
        for read in range.clone() {
            let row = self.delta[read];
            if wanted(row.seq) {
                out.push(row);
            } else {
                self.delta[write] = row;
                write += 1;
            }
        }
        self.delta.drain(write..range.end);
        out.len() - before
    }

    /// `person`'s timeline, when the partition holds any row of theirs.
    pub(crate) fn person<'a>(
        &'a self,
        person: u64,
        touches: &'a TouchTable,
    ) -> Option<PersonEvents<'a>> {
        let main = self.main.find(person);
        let range = self.delta_range(person);
        if main.is_none() && range.is_empty() {
            return None;
        }
        let delta = &self.delta[range];
        Some(PersonEvents::new(person, &self.main, main, delta, touches))
    }

    /// Calls `visit` with every person's timeline, by ascending person key. A person whose
    /// every event was removed since the last compaction may come with an empty timeline.
    pub(crate) fn for_each_person<'a>(
        &'a self,
        touches: &'a TouchTable,
        mut visit: impl FnMut(PersonEvents<'a>),
    ) {
        let delta = &self.delta[..];
        let persons = self.main.persons();
        let (mut index, mut next) = (0, 0);
        // One call site for `visit`, so it is inlined here: through a call, the timeline's
        // fields were stored one by one and read back as a block, a stall per person.
        loop {
            // The next person is the smaller of the segment's next key and the delta's next
            // person; a person in both comes from the segment, with their delta rows.
            let key = (index < persons).then(|| self.main.key(index));
            let in_delta = delta.get(next).map(|row| row.person);
            let (person, main) = match (key, in_delta) {
                (Some(key), Some(person)) if person < key => (person, None),
                (Some(key), _) => (key, Some(index)),
                (None, Some(person)) => (person, None),
                (None, None) => break,
            };
            // A person's delta rows are few and next to each other: a scan reads them in
            // order, where a binary search over the rest of the delta missed the cache.
            let end = if in_delta == Some(person) {
                let rest = &delta[next..];
                next + rest
                    .iter()
                    .position(|row| row.person != person)
                    .unwrap_or(rest.len())
            } else {
                next
            };
            visit(PersonEvents::new(
                person,
                &self.main,
                main,
                &delta[next..end],
                touches,
            ));
            next = end;
            index += usize::from(main.is_some());
        }
    }

    /// Heap bytes of the segment by part, and of the delta.
    pub(crate) fn heap_bytes(&self) -> (SegmentBytes, usize, usize) {
        (
            self.main.heap_bytes(),
            self.main.sparse_value_bytes(),
            self.delta.capacity() * size_of::<Row>(),
        )
    }
}
