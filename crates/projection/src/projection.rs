//! The projection of one tenant: dictionaries, the touch table, and persons spread over
//! partitions by a hash of their key.
//!
//! Partitioning by person hash is what lets one query use every core (partitions are
//! independent and hold whole persons, which every journey model needs) and what would let a
//! partition live on another replica later: [`partition_of`] is a fixed function of the key
//! and the partition count, so another process computes the same placement.

use crate::dictionary::Dictionary;
use crate::error::{ProjectionError, invalid};
use crate::event::{Event, MAX_PROPERTIES, NewEvent, Touch, pack_seq, pack_time};
use crate::parallel::fold_parts;
use crate::partition::{CompactionPolicy, Partition};
use crate::row::Row;
use crate::timeline::PersonEvents;
use crate::touch::TouchTable;

/// The most partitions a projection may have.
pub const MAX_PARTITIONS: usize = 4_096;

/// Most canonical events (the event column is 16 bits wide).
pub const MAX_EVENT_CODES: usize = 1 << 16;

/// The partition of `person` among `partitions`: a 64-bit mix of the key (MurmurHash3's
/// finalizer) scaled onto the partition count. Stable across processes and releases; changing
/// it means rebuilding every replica.
pub fn partition_of(person: u64, partitions: usize) -> usize {
    let mut mixed = person;
    mixed ^= mixed >> 33;
    mixed = mixed.wrapping_mul(0xff51_afd7_ed55_8ccd);
    mixed ^= mixed >> 33;
    mixed = mixed.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    mixed ^= mixed >> 33;
    ((u128::from(mixed) * partitions as u128) >> 64) as usize
}

/// How a projection is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProjectionConfig {
    /// Partitions (1 to [`MAX_PARTITIONS`]); a few per core keeps compactions short and the
    /// threads of a query balanced.
    pub partitions: usize,
    /// How many analysable property slots events carry (0 to [`MAX_PROPERTIES`]); slots past
    /// this are not stored and must be 0 on appended events.
    pub property_slots: usize,
    /// When deltas and removals are folded into new segments.
    pub compaction: CompactionPolicy,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self {
            partitions: 16,
            property_slots: MAX_PROPERTIES,
            compaction: CompactionPolicy {
                fraction: 64,
                min_rows: 4_096,
            },
        }
    }
}

/// The dictionaries of a projection's text columns.
#[derive(Clone, Debug)]
pub struct Dictionaries {
    /// Canonical event names.
    pub events: Dictionary,
    /// Channels.
    pub channels: Dictionary,
    /// Touchpoints within their channel.
    pub touchpoints: Dictionary,
    /// Registered sources.
    pub sources: Dictionary,
    /// Values of each analysable property, by slot.
    pub properties: Vec<Dictionary>,
}

impl Dictionaries {
    fn new(slots: usize) -> Self {
        Self {
            events: Dictionary::new("event_name", MAX_EVENT_CODES),
            channels: Dictionary::new("channel", u32::MAX as usize),
            touchpoints: Dictionary::new("touchpoint", u32::MAX as usize),
            sources: Dictionary::new("source", u32::MAX as usize),
            properties: (0..slots)
                .map(|_| Dictionary::new("property", u32::MAX as usize))
                .collect(),
        }
    }

    pub(crate) fn heap_bytes_total(&self) -> usize {
        [
            &self.events,
            &self.channels,
            &self.touchpoints,
            &self.sources,
        ]
        .into_iter()
        .chain(&self.properties)
        .map(Dictionary::heap_bytes)
        .sum()
    }
}

/// A tenant's events, person-clustered, time-ordered and dictionary-encoded.
#[derive(Clone, Debug)]
pub struct Projection {
    pub(crate) config: ProjectionConfig,
    pub(crate) dictionaries: Dictionaries,
    pub(crate) touches: TouchTable,
    pub(crate) partitions: Vec<Partition>,
    /// Per-partition buffers rows are routed into, reused across batches.
    pub(crate) routed: Vec<Vec<Row>>,
    /// Partition compactions triggered by appends and identity changes so far.
    compactions: u64,
}

impl Projection {
    /// An empty projection.
    pub fn new(config: ProjectionConfig) -> Result<Self, ProjectionError> {
        if !(1..=MAX_PARTITIONS).contains(&config.partitions) {
            return Err(invalid("partitions", "from 1 to 4096"));
        }
        if config.property_slots > MAX_PROPERTIES {
            return Err(invalid("property_slots", "at most MAX_PROPERTIES"));
        }
        Ok(Self {
            config,
            dictionaries: Dictionaries::new(config.property_slots),
            touches: TouchTable::default(),
            partitions: vec![Partition::default(); config.partitions],
            routed: vec![Vec::new(); config.partitions],
            compactions: 0,
        })
    }

    /// The layout.
    pub fn config(&self) -> &ProjectionConfig {
        &self.config
    }

    /// The dictionaries codes come from.
    pub fn dictionaries(&self) -> &Dictionaries {
        &self.dictionaries
    }

    /// The dictionaries, to intern the texts of new events.
    pub fn dictionaries_mut(&mut self) -> &mut Dictionaries {
        &mut self.dictionaries
    }

    /// The touch of a touch code (as [`crate::EventRef::touch_code`] gives).
    pub fn touch(&self, code: u16) -> Touch {
        self.touches.touch(code)
    }

    /// How many touch codes are handed out (codes run from 0, the empty touch, to this − 1).
    pub fn touch_count(&self) -> usize {
        self.touches.touches().len()
    }

    /// Gives `touch` its code now (the code it already has, if any), so that a caller can set
    /// aside the one event whose touch no longer fits (the table holds [`crate::MAX_TOUCHES`])
    /// before appending a batch, which would otherwise be refused whole.
    pub fn intern_touch(&mut self, touch: Touch) -> Result<u16, ProjectionError> {
        let dictionaries = &self.dictionaries;
        dictionaries.channels.check(touch.channel)?;
        dictionaries.touchpoints.check(touch.touchpoint)?;
        dictionaries.sources.check(touch.source)?;
        self.touches.intern(touch)
    }

    /// The partition that holds `person`.
    pub fn partition_of(&self, person: u64) -> usize {
        partition_of(person, self.partitions.len())
    }

    /// Events held.
    pub fn events(&self) -> usize {
        self.partitions.iter().map(Partition::live_events).sum()
    }

    /// Checks an event's codes and ranges and turns it into a row.
    pub(crate) fn encode(&mut self, new: &NewEvent) -> Result<Row, ProjectionError> {
        let event = &new.event;
        pack_time(event.time_ms)?;
        pack_seq(event.seq)?;
        let dictionaries = &self.dictionaries;
        dictionaries.events.check(event.event)?;
        // The column is 16 bits wide whatever a replaced dictionary's limit says.
        if event.event as usize >= MAX_EVENT_CODES {
            return Err(ProjectionError::DictionaryFull {
                column: "event_name",
                limit: MAX_EVENT_CODES,
            });
        }
        dictionaries.channels.check(event.touch.channel)?;
        dictionaries.touchpoints.check(event.touch.touchpoint)?;
        dictionaries.sources.check(event.touch.source)?;
        for (slot, &code) in event.properties.iter().enumerate() {
            if slot < self.config.property_slots {
                let dictionary = dictionaries.properties.get(slot);
                dictionary.map_or(Ok(()), |d| d.check(code))?;
            } else if code != 0 {
                return Err(invalid("properties", "a slot the projection does not keep"));
            }
        }
        if event.value.is_some_and(|value| !value.is_finite()) {
            return Err(invalid("value", "a value is a finite number"));
        }
        let touch = self.touches.intern(event.touch)?;
        Ok(Row::new(new.person, event, touch))
    }

    /// Adds events of any persons, in any order (late events included). The whole batch is
    /// checked first: on an error nothing is added. Each event's sequence must be new to
    /// the projection; feeding a clean-log position twice stores the event twice.
    ///
    /// Cost: one pass over the delta of each partition the batch touches, plus, when a delta
    /// outgrows the compaction policy, one rewrite of that partition's segment. Larger batches
    /// amortise the pass.
    pub fn append(&mut self, batch: &[NewEvent]) -> Result<(), ProjectionError> {
        let mut rows = Vec::with_capacity(batch.len());
        for new in batch {
            rows.push(self.encode(new)?);
        }
        self.insert_rows(rows);
        Ok(())
    }

    /// Routes checked rows to their partitions and compacts the partitions that need it.
    pub(crate) fn insert_rows(&mut self, rows: Vec<Row>) {
        let count = self.partitions.len();
        for row in rows {
            self.routed[partition_of(row.person, count)].push(row);
        }
        for index in 0..count {
            if self.routed[index].is_empty() {
                continue;
            }
            let mut routed = std::mem::take(&mut self.routed[index]);
            self.partitions[index].insert(&mut routed, &self.config.compaction);
            routed.clear();
            self.routed[index] = routed;
            self.compact_if_needed(index);
        }
    }

    pub(crate) fn compact_if_needed(&mut self, index: usize) {
        let policy = self.config.compaction;
        let partition = &mut self.partitions[index];
        if partition.should_compact(&policy) {
            partition.compact(self.config.property_slots, &policy);
            self.compactions += 1;
        }
    }

    /// Partition compactions that appends and identity changes triggered so far (a gauge
    /// of how much ingestion rewrites).
    pub fn compactions(&self) -> u64 {
        self.compactions
    }

    /// Folds every delta and removal into the segments now (after a load, or to measure
    /// memory at rest), on up to `threads` threads.
    pub fn compact_all(&mut self, threads: usize) {
        let slots = self.config.property_slots;
        let policy = self.config.compaction;
        crate::parallel::each_mut(&mut self.partitions, threads, |partition| {
            partition.compact(slots, &policy);
        });
    }

    /// One person's timeline in place; `None` for a person the projection has never held
    /// (a person whose events were all removed may come back empty until compaction).
    pub fn person(&self, person: u64) -> Option<PersonEvents<'_>> {
        self.partitions[self.partition_of(person)].person(person, &self.touches)
    }

    /// One person's events, sorted by `(time, seq)`; empty for an unknown person.
    pub fn timeline(&self, person: u64) -> Vec<Event> {
        self.person(person)
            .map_or_else(Vec::new, |events| events.to_events())
    }

    /// Calls `visit` with every person's timeline, partition by partition, persons by
    /// ascending key within a partition. A person whose events were all removed since the
    /// last compaction may come with an empty timeline.
    pub fn for_each_person<'a>(&'a self, mut visit: impl FnMut(PersonEvents<'a>)) {
        for partition in &self.partitions {
            partition.for_each_person(&self.touches, &mut visit);
        }
    }

    /// Folds every person into per-worker states on up to `threads` scoped threads, each
    /// worker taking whole partitions; states come back in worker order (merge them in that
    /// order for results that never depend on thread timing). This is how the model adapters
    /// run, and how a model without an adapter can read the projection without copying it.
    pub fn scan<A, E>(
        &self,
        threads: usize,
        make: impl Fn() -> A + Sync,
        visit: impl Fn(&mut A, PersonEvents<'_>) -> Result<(), E> + Sync,
    ) -> Result<Vec<A>, E>
    where
        A: Send,
        E: Send,
    {
        fold_parts(self.partitions.len(), threads, make, |state, index| {
            let mut outcome = Ok(());
            self.partitions[index].for_each_person(&self.touches, |person| {
                if outcome.is_ok() {
                    outcome = visit(state, person);
                }
            });
            outcome
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_touch_table_refuses_a_new_touch_and_keeps_the_old_ones() -> Result<(), ProjectionError>
    {
        let mut projection = Projection::new(ProjectionConfig::default())?;
        let channel = projection.dictionaries_mut().channels.intern("pos")?;
        let touch = |source| Touch {
            channel,
            source,
            ..Touch::default()
        };
        // Code 0 is the empty touch, there from the start.
        for i in 1..crate::MAX_TOUCHES {
            let source = projection
                .dictionaries_mut()
                .sources
                .intern(&format!("s{i}"))?;
            projection.intern_touch(touch(source))?;
        }
        let one_more = projection.dictionaries_mut().sources.intern("one more")?;
        assert_eq!(
            projection.intern_touch(touch(one_more)),
            Err(ProjectionError::DictionaryFull {
                column: "touch",
                limit: crate::MAX_TOUCHES
            })
        );
        let first = projection.dictionaries().sources.code("s1").unwrap_or(0);
        assert_eq!(
            projection.intern_touch(touch(first)),
            Ok(1),
            "known touches keep their code"
        );
        assert!(
            projection.intern_touch(touch(u32::MAX)).is_err(),
            "codes are checked"
        );
        Ok(())
    }

    #[test]
    fn partitions_are_balanced_and_stable() {
        let mut counts = [0usize; 16];
        for person in 0..160_000u64 {
            counts[partition_of(person, 16)] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "{counts:?}");
        }
        // Placement is part of the replica contract: these values must never change.
        assert_eq!(
            [0u64, 1, 2, 3, 1 << 40, 42].map(|p| partition_of(p, 16)),
            [0, 11, 3, 0, 14, 8]
        );
        assert_eq!([1u64, 2, 1 << 40].map(|p| partition_of(p, 1)), [0, 0, 0]);
    }
}
