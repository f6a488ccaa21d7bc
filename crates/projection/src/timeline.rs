//! Reading one person's timeline: their segment range (skipping removed rows) merged with
//! their delta rows by `(time, seq)`, without copying either.
//!
//! Right after a compaction every person is one contiguous, removal-free range, and
//! [`PersonEvents::for_each`] is a plain loop over it; the merge only runs for persons with
//! recent or removed events.

use crate::event::{Event, Touch};
use crate::row::Row;
use crate::segment::Segment;
use crate::touch::TouchTable;

/// One event of a timeline, read in place.
#[derive(Clone, Copy, Debug)]
pub struct EventRef<'a> {
    at: At<'a>,
    touches: &'a TouchTable,
}

#[derive(Clone, Copy, Debug)]
enum At<'a> {
    Segment(&'a Segment, usize),
    Delta(&'a Row),
}

impl<'a> EventRef<'a> {
    /// Milliseconds since the Unix epoch.
    #[inline(always)]
    pub fn time_ms(&self) -> i64 {
        match self.at {
            At::Segment(segment, row) => segment.time(row),
            At::Delta(row) => row.time,
        }
    }

    /// Clean-log sequence.
    #[inline(always)]
    pub fn seq(&self) -> u64 {
        match self.at {
            At::Segment(segment, row) => segment.seq(row),
            At::Delta(row) => row.seq,
        }
    }

    /// Canonical event code.
    #[inline(always)]
    pub fn event(&self) -> u32 {
        u32::from(self.event_code())
    }

    #[inline(always)]
    pub(crate) fn event_code(&self) -> u16 {
        match self.at {
            At::Segment(segment, row) => segment.event(row),
            At::Delta(row) => row.event,
        }
    }

    /// The touch table's code for the event's touch (see [`crate::Projection::touch`]).
    #[inline(always)]
    pub fn touch_code(&self) -> u16 {
        match self.at {
            At::Segment(segment, row) => segment.touch(row),
            At::Delta(row) => row.touch,
        }
    }

    /// Channel, touchpoint, type, department and source.
    pub fn touch(&self) -> Touch {
        self.touches.touch(self.touch_code())
    }

    /// The monetary value, when the event has one.
    #[inline]
    pub fn value(&self) -> Option<f64> {
        match self.at {
            At::Segment(segment, row) => segment.value(row),
            At::Delta(row) => row.value(),
        }
    }

    /// Property `slot`'s code; 0 when missing.
    #[inline]
    pub fn property(&self, slot: usize) -> u32 {
        match self.at {
            At::Segment(segment, row) => segment.property(row, slot),
            At::Delta(row) => row.properties.get(slot).copied().unwrap_or(0),
        }
    }

    /// The event as an owned value.
    pub fn to_event(&self) -> Event {
        let mut properties = [0; crate::event::MAX_PROPERTIES];
        for (slot, property) in properties.iter_mut().enumerate() {
            *property = self.property(slot);
        }
        Event {
            time_ms: self.time_ms(),
            seq: self.seq(),
            event: self.event(),
            touch: self.touch(),
            value: self.value(),
            properties,
        }
    }
}

/// One person's events, sorted by `(time, seq)`.
#[derive(Clone, Copy, Debug)]
pub struct PersonEvents<'a> {
    person: u64,
    segment: &'a Segment,
    start: usize,
    end: usize,
    check_removed: bool,
    delta: &'a [Row],
    touches: &'a TouchTable,
}

impl<'a> PersonEvents<'a> {
    pub(crate) fn new(
        person: u64,
        segment: &'a Segment,
        main: Option<usize>,
        delta: &'a [Row],
        touches: &'a TouchTable,
    ) -> Self {
        let range = main.map_or(0..0, |index| segment.range(index));
        Self {
            person,
            segment,
            start: range.start,
            end: range.end,
            check_removed: segment.any_removed(&range),
            delta,
            touches,
        }
    }

    /// The person key.
    pub fn person(&self) -> u64 {
        self.person
    }

    /// Whether the timeline is one contiguous segment range, with no recent or removed
    /// events to merge or skip.
    pub fn is_plain(&self) -> bool {
        self.delta.is_empty() && !self.check_removed
    }

    /// At least the number of events (removed rows may still be counted).
    #[inline]
    pub(crate) fn upper_bound(&self) -> usize {
        self.end - self.start + self.delta.len()
    }

    /// The segment range, when the timeline is exactly that.
    #[inline]
    pub(crate) fn plain_range(&self) -> Option<(&'a Segment, usize, usize)> {
        self.is_plain()
            .then_some((self.segment, self.start, self.end))
    }

    /// Calls `visit` with every event in `(time, seq)` order.
    #[inline]
    pub fn for_each(&self, mut visit: impl FnMut(EventRef<'a>)) {
        // One call site, so the visitor is inlined into the loop.
        for event in self.iter() {
            visit(event);
        }
    }

    /// The events in `(time, seq)` order.
    #[inline]
    pub fn iter(&self) -> Events<'a> {
        Events {
            segment: self.segment,
            touches: self.touches,
            row: self.start,
            end: self.end,
            plain: self.is_plain(),
            check_removed: self.check_removed,
            delta: self.delta,
            next_delta: 0,
        }
    }

    /// The events as owned values.
    pub fn to_events(&self) -> Vec<Event> {
        let mut events = Vec::with_capacity(self.end - self.start + self.delta.len());
        self.for_each(|event| events.push(event.to_event()));
        events
    }
}

/// The events of one person in `(time, seq)` order (see [`PersonEvents::iter`]).
#[derive(Clone, Debug)]
pub struct Events<'a> {
    segment: &'a Segment,
    touches: &'a TouchTable,
    row: usize,
    end: usize,
    plain: bool,
    check_removed: bool,
    delta: &'a [Row],
    next_delta: usize,
}

impl<'a> Iterator for Events<'a> {
    type Item = EventRef<'a>;

    #[inline(always)]
    fn next(&mut self) -> Option<EventRef<'a>> {
        if self.plain {
            if self.row >= self.end {
                return None;
            }
            self.row += 1;
            return Some(self.at(At::Segment(self.segment, self.row - 1)));
        }
        self.next_merged()
    }
}

impl<'a> Events<'a> {
    #[inline(always)]
    fn at(&self, at: At<'a>) -> EventRef<'a> {
        EventRef {
            at,
            touches: self.touches,
        }
    }

    /// The next event of the merge of segment rows (skipping removed ones) and delta rows.
    #[inline]
    fn next_merged(&mut self) -> Option<EventRef<'a>> {
        let segment = self.segment;
        while self.row < self.end && self.check_removed && segment.is_removed(self.row) {
            self.row += 1;
        }
        let delta = self.delta.get(self.next_delta);
        let take_delta = match delta {
            None if self.row >= self.end => return None,
            None => false,
            Some(_) if self.row >= self.end => true,
            Some(next) => (next.time, next.seq) < (segment.time(self.row), segment.seq(self.row)),
        };
        if let (true, Some(next)) = (take_delta, delta) {
            self.next_delta += 1;
            return Some(self.at(At::Delta(next)));
        }
        self.row += 1;
        Some(self.at(At::Segment(segment, self.row - 1)))
    }
}
