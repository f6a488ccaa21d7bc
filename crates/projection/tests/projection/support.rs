//! The deliberately naive reference, random histories, and a small projection that compacts
//! often, so every test crosses delta, segment and removal paths.

use std::collections::BTreeMap;

use proptest::prelude::*;
use touchline_projection::{
    CompactionPolicy, Event, MAX_PROPERTIES, NewEvent, Projection, ProjectionConfig, Touch,
};

/// 2026-01-05T00:00:00Z, a Monday.
pub const BASE_MS: i64 = 1_767_571_200_000;
pub const HOUR_MS: i64 = 3_600_000;
/// Generated times are multiples of this after [`BASE_MS`].
pub const STEP_MS: i64 = 2 * HOUR_MS;
/// Canonical events e0..e4 get codes 1..=5.
pub const EVENTS: u32 = 5;
/// Channels c0..c2 get codes 1..=3; touchpoints t0..t1 codes 1..=2.
pub const CHANNELS: u32 = 3;
pub const PROPERTY_VALUES: u32 = 3;
pub const PERSONS: u64 = 12;

/// Every person's events, in whatever order they were added; sorted only when read.
#[derive(Clone, Debug, Default)]
pub struct Reference {
    pub persons: BTreeMap<u64, Vec<Event>>,
}

impl Reference {
    pub fn append(&mut self, batch: &[NewEvent]) {
        for new in batch {
            self.persons.entry(new.person).or_default().push(new.event);
        }
    }

    pub fn merge(&mut self, survivor: u64, absorbed: u64) {
        if survivor == absorbed {
            return;
        }
        let moved = self.persons.remove(&absorbed).unwrap_or_default();
        self.persons.entry(survivor).or_default().extend(moved);
    }

    pub fn split(&mut self, from: u64, to: u64, seqs: &[u64]) {
        if from == to {
            return;
        }
        let events = self.persons.remove(&from).unwrap_or_default();
        let (moved, kept): (Vec<Event>, Vec<Event>) =
            events.into_iter().partition(|e| seqs.contains(&e.seq));
        self.persons.insert(from, kept);
        self.persons.entry(to).or_default().extend(moved);
    }

    pub fn erase(&mut self, person: u64) {
        self.persons.remove(&person);
    }

    pub fn remove_events(&mut self, person: u64, seqs: &[u64]) {
        if let Some(events) = self.persons.get_mut(&person) {
            events.retain(|e| !seqs.contains(&e.seq));
        }
    }

    /// A person's events sorted by `(time, seq)`.
    pub fn timeline(&self, person: u64) -> Vec<Event> {
        let mut events = self.persons.get(&person).cloned().unwrap_or_default();
        events.sort_by_key(|e| (e.time_ms, e.seq));
        events
    }

    /// Persons with at least one event, ascending.
    pub fn persons(&self) -> Vec<u64> {
        self.persons
            .iter()
            .filter(|(_, events)| !events.is_empty())
            .map(|(&person, _)| person)
            .collect()
    }

    /// The `(time, seq)`-sorted events of `person` picked by `mask` (bit i picks the i-th).
    pub fn pick(&self, person: u64, mask: u64) -> Vec<u64> {
        self.timeline(person)
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << (i % 64)) != 0)
            .map(|(_, e)| e.seq)
            .collect()
    }
}

/// A projection with every test code interned, 3 partitions and compaction after a few rows.
pub fn projection() -> Projection {
    let config = ProjectionConfig {
        partitions: 3,
        property_slots: 2,
        compaction: CompactionPolicy {
            fraction: 2,
            min_rows: 6,
        },
    };
    let mut projection = Projection::new(config).expect("valid config");
    let dictionaries = projection.dictionaries_mut();
    for i in 0..EVENTS {
        dictionaries.events.intern(&format!("e{i}")).expect("room");
    }
    for i in 0..CHANNELS {
        dictionaries
            .channels
            .intern(&format!("c{i}"))
            .expect("room");
    }
    for i in 0..2 {
        dictionaries
            .touchpoints
            .intern(&format!("t{i}"))
            .expect("room");
        dictionaries.sources.intern(&format!("s{i}")).expect("room");
    }
    for slot in &mut dictionaries.properties {
        for i in 0..PROPERTY_VALUES {
            slot.intern(&format!("v{i}")).expect("room");
        }
    }
    projection
}

/// An event as generated: person, hour offset, event, channel, touchpoint, value, property.
pub type Raw = (u64, i64, u32, u32, u32, Option<u32>, u32);

pub fn raw_event() -> impl Strategy<Value = Raw> {
    (
        0..PERSONS,
        0i64..72,
        1..=EVENTS,
        0..=CHANNELS,
        0u32..=2,
        proptest::option::of(0u32..1_000),
        0..=PROPERTY_VALUES,
    )
}

/// Turns generated events into new events with fresh sequences (in generation order, so
/// times and sequences disagree and many events arrive late).
pub fn to_new(raw: &[Raw], next_seq: &mut u64) -> Vec<NewEvent> {
    raw.iter()
        .map(
            |&(person, hour, event, channel, touchpoint, value, property)| {
                *next_seq += 1;
                let mut properties = [0; MAX_PROPERTIES];
                properties[0] = property;
                properties[1] = (property + event) % (PROPERTY_VALUES + 1);
                NewEvent {
                    person,
                    event: Event {
                        // 72 instants two hours apart: six days, with many equal times.
                        time_ms: BASE_MS + hour * STEP_MS,
                        seq: *next_seq,
                        event,
                        touch: Touch {
                            channel,
                            touchpoint,
                            touchpoint_type: (channel % 3) as u8,
                            department: (touchpoint % 2) as u8,
                            source: touchpoint.min(1) + 1,
                        },
                        value: value.map(|v| f64::from(v) / 4.0),
                        properties,
                    },
                }
            },
        )
        .collect()
}

/// One change to a history.
#[derive(Clone, Debug)]
pub enum Op {
    Append(Vec<Raw>),
    Merge(u64, u64),
    /// Moves the events of the first person picked by the mask to the second.
    Split(u64, u64, u64),
    Erase(u64),
    Remove(u64, u64),
    Compact,
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(raw_event(), 1..40).prop_map(Op::Append),
        2 => (0..PERSONS, 0..PERSONS).prop_map(|(a, b)| Op::Merge(a, b)),
        2 => (0..PERSONS, 0..PERSONS + 3, any::<u64>()).prop_map(|(a, b, m)| Op::Split(a, b, m)),
        1 => (0..PERSONS).prop_map(Op::Erase),
        1 => (0..PERSONS, any::<u64>()).prop_map(|(p, m)| Op::Remove(p, m)),
        1 => Just(Op::Compact),
    ]
}

/// Applies `ops` to both the projection and the reference.
pub fn apply(ops: &[Op], projection: &mut Projection, reference: &mut Reference) {
    let mut next_seq = 0;
    for op in ops {
        match op {
            Op::Append(raw) => {
                let batch = to_new(raw, &mut next_seq);
                projection.append(&batch).expect("valid events");
                reference.append(&batch);
            }
            Op::Merge(survivor, absorbed) => {
                projection.merge(*survivor, *absorbed);
                reference.merge(*survivor, *absorbed);
            }
            Op::Split(from, to, mask) => {
                let mut seqs = reference.pick(*from, *mask);
                seqs.push(u64::MAX >> 20);
                let moved = projection.split(*from, *to, &seqs);
                reference.split(*from, *to, &seqs);
                let expected = if from == to { 0 } else { seqs.len() - 1 };
                assert_eq!(moved, expected, "split moves the picked events");
            }
            Op::Erase(person) => {
                projection.erase(*person);
                reference.erase(*person);
            }
            Op::Remove(person, mask) => {
                let seqs = reference.pick(*person, *mask);
                projection.remove_events(*person, &seqs);
                reference.remove_events(*person, &seqs);
            }
            Op::Compact => projection.compact_all(2),
        }
    }
}
