//! Building a projection from a full read of the event store (the rebuild on start).
//!
//! Appending millions of events batch by batch would merge each batch into a delta and
//! compact over and over. The loader instead collects routed rows per partition and, every
//! chunk, sorts each partition's rows and writes them with its segment into a new segment —
//! all partitions side by side on the given threads. Chunks grow with what is loaded (a
//! quarter of it, at least a million rows), so each event is rewritten a handful of times
//! at most, and the rows waiting in a chunk stay a bounded fraction of the projection.
//! Events may come in any order; reading the store by person and time makes the sorts cheap.

use crate::error::ProjectionError;
use crate::event::NewEvent;
use crate::parallel::each_mut;
use crate::projection::{Dictionaries, Projection};

/// The smallest chunk of rows the loader writes at once.
const MIN_CHUNK_ROWS: usize = 1 << 20;

/// Loads events into a projection in bulk; [`Loader::finish`] hands the projection back.
#[derive(Debug)]
pub struct Loader {
    projection: Projection,
    threads: usize,
    pending: usize,
    loaded: usize,
}

impl Projection {
    /// A loader filling this projection on up to `threads` threads.
    pub fn loader(self, threads: usize) -> Loader {
        Loader {
            projection: self,
            threads: threads.max(1),
            pending: 0,
            loaded: 0,
        }
    }
}

impl Loader {
    /// The dictionaries, to intern the texts of the events about to be pushed.
    pub fn dictionaries_mut(&mut self) -> &mut Dictionaries {
        self.projection.dictionaries_mut()
    }

    /// Gives `touch` its code now; see [`Projection::intern_touch`].
    pub fn intern_touch(&mut self, touch: crate::Touch) -> Result<u16, crate::ProjectionError> {
        self.projection.intern_touch(touch)
    }

    /// Adds events in any order. The batch is checked first: on an error nothing of it is
    /// added.
    pub fn push(&mut self, batch: &[NewEvent]) -> Result<(), ProjectionError> {
        let mut rows = Vec::with_capacity(batch.len());
        for new in batch {
            rows.push(self.projection.encode(new)?);
        }
        let count = self.projection.partitions.len();
        for row in rows {
            self.projection.routed[crate::partition_of(row.person, count)].push(row);
        }
        self.pending += batch.len();
        if self.pending >= MIN_CHUNK_ROWS.max(self.loaded / 4) {
            self.flush();
        }
        Ok(())
    }

    /// Writes the pending rows into the partitions' segments.
    fn flush(&mut self) {
        let projection = &mut self.projection;
        let slots = projection.config.property_slots;
        let policy = projection.config.compaction;
        let mut pairs: Vec<_> = projection
            .partitions
            .iter_mut()
            .zip(projection.routed.iter_mut())
            .collect();
        each_mut(&mut pairs, self.threads, |(partition, rows)| {
            partition.absorb(rows, slots, &policy);
            rows.clear();
        });
        self.loaded += self.pending;
        self.pending = 0;
    }

    /// The loaded projection, every partition compacted and the chunk buffers freed.
    pub fn finish(mut self) -> Projection {
        self.flush();
        self.projection.compact_all(self.threads);
        for routed in &mut self.projection.routed {
            *routed = Vec::new();
        }
        self.projection
    }
}
