//! Adapters from the projection to the journey models of `touchline-analytics`.
//!
//! Each adapter scans the partitions on scoped threads, builds one person's input for the
//! model in a buffer the worker reuses (so a query allocates per worker, not per event or
//! person), hands it to the model's accumulator, and merges the workers' accumulators in
//! worker order. The models' own `run` functions take every timeline materialised at once;
//! at 10 M events that is hundreds of megabytes written per query, which is exactly the cost
//! the projection exists to avoid, so the adapters drive the accumulators directly.
//!
//! What an event must be for a step, a start or a return is a [`Condition`]: its canonical
//! event (or any) and filters on its columns as sets of dictionary codes. The service turns
//! any predicate on text into such a set once per query ([`crate::Dictionary::matching`]);
//! the scan then tests bits, never strings.
//!
//! Two loops fill a person's input. Most queries name canonical events only, scope by time
//! only, and break down by the event or a touch column; they compile to lookup tables
//! (`Plain`), and for a person whose timeline is one untouched segment range — nearly every
//! person right after a compaction — the fill is a table lookup and a store per event.
//! Everything else (property or column filters, persons with recent or removed events) goes
//! through the general per-event path. The property tests run both against the models on
//! naive timelines.

mod funnel;
mod lifecycle;
mod paths;
mod retention;

pub use funnel::{FunnelBreakdown, FunnelColumns, FunnelExclusion, FunnelSpec};
pub use lifecycle::{FirstSeen, LifecycleSpec};
pub use paths::PathSpec;
pub use retention::RetentionSpec;

use crate::dictionary::CodeSet;
use crate::error::{ProjectionError, invalid};
use crate::event::{unpack_seq, unpack_time};
use crate::fields::{EventFields, Slices};
use crate::projection::Projection;
use crate::timeline::PersonEvents;

/// A column of events, as a breakdown, a path item or a filter reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    /// The canonical event.
    Event,
    /// The channel.
    Channel,
    /// The touchpoint (its own dictionary code).
    Touchpoint,
    /// The (channel, touchpoint) pair: the touchpoint as paths name it.
    ChannelTouchpoint,
    /// The touchpoint type's enum number.
    TouchpointType,
    /// The owning department's enum number.
    Department,
    /// The source.
    Source,
    /// An analysable property, by slot.
    Property(usize),
}

/// Events within `[from_ms, to_ms)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    /// First included instant, ms since the Unix epoch.
    pub from_ms: i64,
    /// First excluded instant.
    pub to_ms: i64,
}

/// Which events and persons an analysis looks at (the contract's `AnalysisScope`): events
/// outside it are not passed to the model at all, and a person counts as considered when at
/// least one of their events is inside it.
#[derive(Clone, Copy, Default)]
pub struct Scope<'a> {
    /// Only events in this range.
    pub time_range: Option<TimeRange>,
    /// Only events matching this (the scope's event filters).
    pub events: Option<&'a Condition>,
    /// Only persons this accepts (a segment's members, resolved by the service).
    pub persons: Option<&'a (dyn Fn(u64) -> bool + Sync)>,
}

impl std::fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("time_range", &self.time_range)
            .field("events", &self.events)
            .field("persons", &self.persons.map(|_| ".."))
            .finish()
    }
}

/// A scope ready for the scan.
pub(crate) struct CompiledScope<'a> {
    range: Option<TimeRange>,
    events: Option<Matcher>,
    persons: Option<&'a (dyn Fn(u64) -> bool + Sync)>,
}

impl<'a> CompiledScope<'a> {
    pub(crate) fn new(projection: &Projection, scope: &Scope<'a>) -> Result<Self, ProjectionError> {
        let events = match scope.events {
            Some(condition) => Some(Matcher::new(projection, &[condition])?),
            None => None,
        };
        Ok(Self {
            range: scope.time_range,
            events,
            persons: scope.persons,
        })
    }

    /// The scope's time range, when it has no event filter (so a plain loop can apply it).
    pub(crate) fn plain(&self) -> Option<Option<TimeRange>> {
        self.events.is_none().then_some(self.range)
    }

    /// Whether the person is in scope at all.
    #[inline]
    pub(crate) fn admits_person(&self, person: u64) -> bool {
        self.persons.is_none_or(|accepts| accepts(person))
    }

    /// Whether the event is in scope.
    #[inline(always)]
    pub(crate) fn admits<E: EventFields>(&self, event: &E) -> bool {
        self.range.is_none_or(|range| {
            let time_ms = event.time_ms();
            range.from_ms <= time_ms && time_ms < range.to_ms
        }) && self
            .events
            .as_ref()
            .is_none_or(|matcher| matcher.mask(event) != 0)
    }
}

/// A filter on one column: the event's code must be in `codes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// The column.
    pub dimension: Dimension,
    /// Accepted codes (0 is the missing value).
    pub codes: CodeSet,
}

/// What an event must be to match: its canonical event, and every filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Condition {
    /// The canonical event's code; `None` matches every event.
    pub event: Option<u32>,
    /// Filters that must all hold.
    pub filters: Vec<Filter>,
}

impl Condition {
    /// Events of one canonical event, without filters.
    pub fn event(code: u32) -> Self {
        Self {
            event: Some(code),
            filters: Vec::new(),
        }
    }

    /// Every event.
    pub fn any() -> Self {
        Self::default()
    }
}

/// How a dimension's code is read from an event.
#[derive(Clone, Debug)]
pub(crate) enum Reader {
    Event,
    /// A lookup by touch code.
    ByTouch(Vec<u32>),
    Property(usize),
}

impl Reader {
    /// The lookup table by touch code, for a column read from the touch.
    pub(crate) fn touch_table(&self) -> Option<&[u32]> {
        match self {
            Reader::ByTouch(table) => Some(table),
            Reader::Event | Reader::Property(_) => None,
        }
    }

    #[inline(always)]
    pub(crate) fn read<E: EventFields>(&self, event: &E) -> u32 {
        match self {
            Reader::Event => u32::from(event.event_code()),
            Reader::ByTouch(table) => table
                .get(usize::from(event.touch_code()))
                .copied()
                .unwrap_or(0),
            Reader::Property(slot) => event.property(*slot),
        }
    }
}

impl Projection {
    /// How many codes `dimension` has (codes run from 0, the missing value, to this − 1).
    pub fn dimension_size(&self, dimension: Dimension) -> Result<usize, ProjectionError> {
        let dictionaries = &self.dictionaries;
        Ok(match dimension {
            Dimension::Event => dictionaries.events.len(),
            Dimension::Channel => dictionaries.channels.len(),
            Dimension::Touchpoint => dictionaries.touchpoints.len(),
            Dimension::ChannelTouchpoint => self.touches.pair_count(),
            Dimension::TouchpointType | Dimension::Department => 256,
            Dimension::Source => dictionaries.sources.len(),
            Dimension::Property(slot) => dictionaries
                .properties
                .get(slot)
                .ok_or_else(|| invalid("dimension", "a property slot the projection keeps"))?
                .len(),
        })
    }

    /// The (channel, touchpoint) codes of a [`Dimension::ChannelTouchpoint`] code.
    pub fn channel_touchpoint(&self, code: u32) -> Option<(u32, u32)> {
        self.touches.pair(code)
    }

    pub(crate) fn reader(&self, dimension: Dimension) -> Result<Reader, ProjectionError> {
        self.dimension_size(dimension)?;
        let touches = self.touches.touches();
        let by_touch = |read: &dyn Fn(usize) -> u32| -> Reader {
            Reader::ByTouch((0..touches.len()).map(read).collect())
        };
        Ok(match dimension {
            Dimension::Event => Reader::Event,
            Dimension::Property(slot) => Reader::Property(slot),
            Dimension::Channel => by_touch(&|code| touches[code].channel),
            Dimension::Touchpoint => by_touch(&|code| touches[code].touchpoint),
            Dimension::Source => by_touch(&|code| touches[code].source),
            Dimension::TouchpointType => by_touch(&|code| u32::from(touches[code].touchpoint_type)),
            Dimension::Department => by_touch(&|code| u32::from(touches[code].department)),
            Dimension::ChannelTouchpoint => by_touch(&|code| self.touches.pair_of(code as u16)),
        })
    }
}

/// A query whose conditions name canonical events only, whose scope filters by time only and
/// whose column (breakdown or path item, if any) is the event or a touch column, compiled
/// to lookup tables. Most queries are of this kind, and on a plain timeline (see
/// [`PersonEvents::visit`](crate::PersonEvents)) they run a loop that keeps everything in
/// registers: through the general per-event path, filling a model's input cost about half
/// as much as the model itself.
#[derive(Clone, Debug)]
pub(crate) struct Plain {
    /// Per event code, the conditions it satisfies.
    masks: Vec<u32>,
    /// Per touch code, the column's code (all 0 without a column).
    by_touch: Vec<u32>,
    /// The column is the event code itself.
    by_event: bool,
    range: Option<TimeRange>,
}

/// One row of a plain timeline, as a [`Plain`] query reads it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlainRow {
    pub(crate) time_ms: i64,
    pub(crate) seq: u64,
    /// The conditions the event satisfies.
    pub(crate) mask: u32,
    /// The column's code.
    pub(crate) column: u32,
    /// Whether the event is in the scope's time range.
    pub(crate) in_scope: bool,
}

impl Plain {
    /// The tables, when the query is of the plain kind.
    pub(crate) fn new(
        projection: &Projection,
        matcher: &Matcher,
        scope: &CompiledScope<'_>,
        column: Option<&Reader>,
    ) -> Option<Self> {
        let touches = projection.touches.touches().len();
        let (by_touch, by_event) = match column {
            None => (vec![0; touches], false),
            Some(Reader::Event) => (Vec::new(), true),
            Some(reader) => (reader.touch_table()?.to_vec(), false),
        };
        Some(Self {
            masks: matcher.plain_masks()?,
            by_touch,
            by_event,
            range: scope.plain()?,
        })
    }

    /// Calls `visit` with every row of a plain timeline, in order.
    #[inline(always)]
    pub(crate) fn for_each_row(&self, slices: &Slices<'_>, mut visit: impl FnMut(PlainRow)) {
        let rows = slices.event.len();
        let time_low = &slices.time_low[..rows];
        let time_high = &slices.time_high[..rows];
        let seq_low = &slices.seq_low[..rows];
        let seq_high = &slices.seq_high[..rows];
        let touch = &slices.touch[..rows];
        for (index, &code) in slices.event.iter().enumerate() {
            let time_ms = unpack_time(time_low[index], time_high[index]);
            let column = if self.by_event {
                u32::from(code)
            } else {
                let found = self.by_touch.get(usize::from(touch[index]));
                found.copied().unwrap_or(0)
            };
            visit(PlainRow {
                time_ms,
                seq: unpack_seq(seq_low[index], seq_high[index]),
                mask: self.masks.get(usize::from(code)).copied().unwrap_or(0),
                column,
                in_scope: self
                    .range
                    .is_none_or(|r| r.from_ms <= time_ms && time_ms < r.to_ms),
            });
        }
    }
}

/// Writes one person's model input to the front of `out` and returns how many entries;
/// `None` when the person has no event in scope (and so is not considered).
///
/// A plain timeline of a [`Plain`] query goes through `row`, which turns a row into an entry
/// and says whether to keep it: every entry is written and the length only advances past
/// kept ones, because whether an event matches is data, and a branch on it mispredicts often
/// enough to cost as much as the rest of the loop. Other timelines go through `general`.
/// `out` only grows, so its length is not the entries'.
pub(crate) fn fill_person<T: Copy>(
    person: &PersonEvents<'_>,
    plain: Option<&Plain>,
    out: &mut Vec<T>,
    blank: T,
    mut row: impl FnMut(&PlainRow) -> (T, bool),
    general: impl FnOnce(&mut Vec<T>) -> Option<usize>,
) -> Option<usize> {
    let (Some(plain), Some((segment, start, end))) = (plain, person.plain_range()) else {
        return general(out);
    };
    if out.len() < end - start {
        out.resize(end - start, blank);
    }
    let (mut len, mut considered) = (0, false);
    plain.for_each_row(&segment.slices(start, end), |plain_row| {
        considered |= plain_row.in_scope;
        let (entry, keep) = row(&plain_row);
        if let Some(slot) = out.get_mut(len) {
            *slot = entry;
            len += usize::from(plain_row.in_scope && keep);
        }
    });
    considered.then_some(len)
}

/// Up to 32 conditions compiled for the scan: one bit per condition.
#[derive(Clone, Debug)]
pub(crate) struct Matcher {
    /// Whether any condition has filters (most queries have none: one lookup an event).
    any_filtered: bool,
    /// Per event code, the conditions its code alone satisfies.
    by_event: Vec<u32>,
    /// Conditions every event satisfies.
    always: u32,
    /// Per event code, the filtered conditions worth testing on it.
    filtered_by_event: Vec<u32>,
    /// The filtered conditions: bit, readers and code sets.
    filtered: Vec<(u32, Vec<(Reader, CodeSet)>)>,
}

impl Matcher {
    pub(crate) fn new(
        projection: &Projection,
        conditions: &[&Condition],
    ) -> Result<Self, ProjectionError> {
        if conditions.len() > 32 {
            return Err(invalid("conditions", "at most 32 per query"));
        }
        let events = projection.dictionaries.events.len();
        let mut matcher = Matcher {
            any_filtered: conditions.iter().any(|c| !c.filters.is_empty()),
            by_event: vec![0; events],
            always: 0,
            filtered_by_event: vec![0; events],
            filtered: Vec::new(),
        };
        for (index, condition) in conditions.iter().enumerate() {
            let bit = 1u32 << index;
            if let Some(code) = condition.event {
                projection.dictionaries.events.check(code)?;
            }
            let targets = match (condition.event, condition.filters.is_empty()) {
                (Some(code), true) => &mut matcher.by_event[code as usize..=code as usize],
                (None, true) => {
                    matcher.always |= bit;
                    continue;
                }
                (Some(code), false) => {
                    &mut matcher.filtered_by_event[code as usize..=code as usize]
                }
                (None, false) => &mut matcher.filtered_by_event[..],
            };
            targets.iter_mut().for_each(|mask| *mask |= bit);
            if !condition.filters.is_empty() {
                let readers = condition
                    .filters
                    .iter()
                    .map(|f| Ok((projection.reader(f.dimension)?, f.codes.clone())))
                    .collect::<Result<_, ProjectionError>>()?;
                matcher.filtered.push((bit, readers));
            }
        }
        Ok(matcher)
    }

    /// The conditions each event code satisfies, when no condition has filters (then the
    /// code alone decides).
    pub(crate) fn plain_masks(&self) -> Option<Vec<u32>> {
        (!self.any_filtered).then(|| self.by_event.iter().map(|m| m | self.always).collect())
    }

    /// The conditions `event` satisfies, as bits.
    #[inline(always)]
    pub(crate) fn mask<E: EventFields>(&self, event: &E) -> u32 {
        let code = usize::from(event.event_code());
        let mask = self.always | self.by_event.get(code).copied().unwrap_or(0);
        if !self.any_filtered {
            return mask;
        }
        let candidates = self.filtered_by_event.get(code).copied().unwrap_or(0);
        if candidates == 0 {
            mask
        } else {
            mask | self.filtered_mask(candidates, event)
        }
    }

    /// The filtered conditions among `candidates` that `event` satisfies.
    fn filtered_mask<E: EventFields>(&self, candidates: u32, event: &E) -> u32 {
        let mut mask = 0;
        for (bit, filters) in &self.filtered {
            if candidates & bit != 0
                && filters
                    .iter()
                    .all(|(reader, codes)| codes.contains(reader.read(event)))
            {
                mask |= bit;
            }
        }
        mask
    }
}
