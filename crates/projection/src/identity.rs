//! Identity's changes applied to the projection, each in time proportional to the events of
//! the persons involved (plus one pass over the receiving partition's delta), never a rebuild.
//!
//! - A **merge** moves the absorbed person's events to the survivor: their segment rows are
//!   marked removed and re-enter as delta rows under the survivor's key (possibly in another
//!   partition), where they merge into the survivor's timeline by `(time, seq)`.
//! - A **split** moves the named events (by clean-log sequence) the same way to the split-off
//!   person; which events move is identity's and the service's decision, not the projection's.
//! - An **erasure** removes every event of the person.
//! - **Removing events** (a retraction, the earlier record of a restatement, events left
//!   without a person by a detach) removes the named events of one person.
//!
//! Compaction folds the removed rows out once they reach the policy's fraction.

use crate::projection::Projection;
use crate::row::Row;

impl Projection {
    /// Moves every event of `absorbed` to `survivor`; returns how many moved.
    pub fn merge(&mut self, survivor: u64, absorbed: u64) -> usize {
        if survivor == absorbed {
            return 0;
        }
        let mut moved = Vec::new();
        let from = self.partition_of(absorbed);
        let count = self.partitions[from].take_person(absorbed, &mut moved);
        self.rehome(moved, survivor);
        self.compact_if_needed(from);
        count
    }

    /// Moves the events of `from` whose sequence is in `seqs` to `to`; returns how many moved
    /// (sequences `from` does not hold are ignored).
    pub fn split(&mut self, from: u64, to: u64, seqs: &[u64]) -> usize {
        if from == to {
            return 0;
        }
        let mut sorted = seqs.to_vec();
        sorted.sort_unstable();
        let mut moved = Vec::new();
        let index = self.partition_of(from);
        let count = self.partitions[index].take_events(from, &sorted, &mut moved);
        self.rehome(moved, to);
        self.compact_if_needed(index);
        count
    }

    /// Removes every event of `person`; returns how many.
    pub fn erase(&mut self, person: u64) -> usize {
        let mut removed = Vec::new();
        let index = self.partition_of(person);
        let count = self.partitions[index].take_person(person, &mut removed);
        self.compact_if_needed(index);
        count
    }

    /// Removes the events of `person` whose sequence is in `seqs`; returns how many.
    pub fn remove_events(&mut self, person: u64, seqs: &[u64]) -> usize {
        let mut sorted = seqs.to_vec();
        sorted.sort_unstable();
        let mut removed = Vec::new();
        let index = self.partition_of(person);
        let count = self.partitions[index].take_events(person, &sorted, &mut removed);
        self.compact_if_needed(index);
        count
    }

    /// Re-keys taken rows to `person` and inserts them into that person's partition.
    fn rehome(&mut self, mut rows: Vec<Row>, person: u64) {
        if rows.is_empty() {
            return;
        }
        for row in &mut rows {
            row.person = person;
        }
        self.insert_rows(rows);
    }
}
