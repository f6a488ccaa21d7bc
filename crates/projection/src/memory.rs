//! What the projection holds in memory, counted from its own vectors (capacity × element
//! size), so the figure is the heap the projection asked for, not an estimate.
//!
//! Not counted: the allocator's own per-block overhead (a few dozen bytes per vector, and
//! the projection has a few dozen vectors per partition) and the hash tables' control bytes
//! beyond one per slot. Both are negligible next to tens of millions of events.

use crate::partition::Partition;
use crate::projection::Projection;
use crate::row::Row;

/// Heap bytes by part, and the events and persons they hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// Live events.
    pub events: usize,
    /// Of `events`, those waiting in deltas for the next compaction.
    pub delta_events: usize,
    /// Dense per-event columns of the segments: time, sequence, event and touch codes.
    pub dense_bytes: usize,
    /// Person directories of the segments: keys and end offsets.
    pub person_bytes: usize,
    /// Sparse columns (value and properties): presence bits, ranks and values.
    pub sparse_bytes: usize,
    /// Of `sparse_bytes`, the values themselves.
    pub sparse_value_bytes: usize,
    /// Removal bitmaps of segments with removed rows.
    pub removed_bytes: usize,
    /// Deltas (recent rows waiting for compaction) and routing buffers.
    pub delta_bytes: usize,
    /// Dictionaries and the touch table.
    pub dictionary_bytes: usize,
}

impl MemoryReport {
    /// Every part added up.
    pub fn total_bytes(&self) -> usize {
        self.dense_bytes
            + self.person_bytes
            + self.sparse_bytes
            + self.removed_bytes
            + self.delta_bytes
            + self.dictionary_bytes
    }

    /// Total bytes per live event (0 when empty).
    pub fn bytes_per_event(&self) -> f64 {
        if self.events == 0 {
            0.0
        } else {
            self.total_bytes() as f64 / self.events as f64
        }
    }

    /// Total bytes per million live events, in MiB.
    pub fn mib_per_million_events(&self) -> f64 {
        self.bytes_per_event() * 1e6 / (1024.0 * 1024.0)
    }
}

impl Projection {
    /// The heap the projection holds now, by part.
    pub fn memory(&self) -> MemoryReport {
        let mut report = MemoryReport {
            events: self.events(),
            dictionary_bytes: self.dictionaries.heap_bytes_total() + self.touches.heap_bytes(),
            ..MemoryReport::default()
        };
        for partition in &self.partitions {
            add_partition(&mut report, partition);
        }
        report.delta_bytes += self
            .routed
            .iter()
            .map(|routed| routed.capacity() * size_of::<Row>())
            .sum::<usize>();
        report.person_bytes += self.partitions.capacity() * size_of::<Partition>()
            + self.routed.capacity() * size_of::<Vec<Row>>();
        report
    }
}

fn add_partition(report: &mut MemoryReport, partition: &Partition) {
    let (segment, sparse_values, delta) = partition.heap_bytes();
    report.dense_bytes += segment.dense;
    report.person_bytes += segment.persons;
    report.sparse_bytes += segment.sparse;
    report.sparse_value_bytes += sparse_values;
    report.removed_bytes += segment.removed;
    report.delta_bytes += delta;
    report.delta_events += partition.delta_rows();
}
