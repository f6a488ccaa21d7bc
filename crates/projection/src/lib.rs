//! The in-memory projection of a tenant's event store that the journey models read.
//!
//! What belongs here: keeping every clean event of a tenant in memory as a person-clustered,
//! time-ordered, dictionary-encoded columnar store — kept current by appends (in any arrival
//! order) and by identity's merges, splits and erasures without rebuilding — and the
//! adapters that feed it to the models of `touchline-analytics` without copying it.
//!
//! What does not: I/O of any kind. PostgreSQL (`modeling.events`) stays the system of record;
//! the modeling service rebuilds a projection from it on start with a [`Loader`], then applies
//! each committed clean batch ([`Projection::append`]) and identity change
//! ([`Projection::merge`], [`Projection::split`], [`Projection::erase`],
//! [`Projection::remove_events`]) in the order the store committed them. No tonic, sqlx or
//! tokio here, for the same reason as in the analytics crate: a pure store can be checked
//! against a naive reference on thousands of random histories.
//!
//! # Layout
//!
//! Persons are spread over partitions by a fixed hash of their key ([`partition_of`]), so a
//! query runs its partitions on every core and a partition could later live on another
//! replica. A partition is a compacted segment — persons by ascending key, each person's
//! events contiguous and sorted by `(time, seq)` — plus a small sorted delta of recent rows
//! folded in when it reaches a fraction of the segment (see the `partition` module).
//!
//! # Memory
//!
//! Per event, in the segment: time and clean-log sequence in 48 bits each (12 bytes), the
//! canonical event code (2) and the touch code (2: one code per distinct combination of
//! channel, touchpoint, type, department and source) — 16 bytes. The value and each
//! analysable property live in sparse columns: 0.19 bytes an event for presence bits and
//! ranks (nothing for a column no event fills) plus the value where present (8 bytes for a
//! value, 4 for a property code). Per person: 12 bytes (key and end offset). Between
//! compactions the delta holds up to 1/64 of a partition's events at 56 bytes a row, and
//! removals cost a bit an event until compacted away. [`Projection::memory`] counts all of it
//! from the vectors' capacities. On the `projection_bench` data (10 M events, 1 M persons, a
//! value on 5 % of events, one property on a third and another on 29 %) that is 20.7 bytes an
//! event after a load (19.7 MiB per million events: 16 dense, 1.3 per person, 3.4 sparse)
//! and about 22 with a delta and removals pending. Without values and properties it is about
//! 17.3. The process's resident set follows the count within about 1.5 bytes an event when
//! the allocator hands freed pages back promptly (mimalloc with `MIMALLOC_PURGE_DELAY=0`);
//! with mimalloc's default delay the pages the load and compactions free stay resident a
//! while, about 9 bytes an event more in the benchmark.

mod dictionary;
mod error;
mod event;
mod fields;
mod identity;
mod load;
mod memory;
mod parallel;
mod partition;
mod projection;
pub mod query;
mod row;
mod segment;
mod sparse;
mod timeline;
mod touch;

pub use dictionary::{CodeSet, Dictionary, MISSING};
pub use error::ProjectionError;
pub use event::{Event, MAX_PROPERTIES, MAX_SEQ, MAX_TIME_MS, MIN_TIME_MS, NewEvent, Touch};
pub use load::Loader;
pub use memory::MemoryReport;
pub use partition::CompactionPolicy;
pub use projection::{
    Dictionaries, MAX_EVENT_CODES, MAX_PARTITIONS, Projection, ProjectionConfig, partition_of,
};
pub use timeline::{EventRef, Events, PersonEvents};
pub use touch::MAX_TOUCHES;
