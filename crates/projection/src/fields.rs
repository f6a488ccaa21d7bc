//! The scan's hot loop: what an adapter reads from an event, whichever storage it lives in.
//!
//! Most persons, most of the time, are one contiguous, removal-free segment range. For them
//! [`PersonEvents::visit`] hands the adapter events that index the range's column slices
//! directly — no variant to match, bounds known to the loop — and only persons with recent
//! or removed events go through the general merging [`EventRef`]. Adapters write their
//! per-event logic once, generic over [`EventFields`], and get both loops (queries of the
//! plain kind go further, with lookup tables; see the `query` module).

use crate::event::{unpack_seq, unpack_time};
use crate::segment::Segment;
use crate::timeline::{EventRef, PersonEvents};

/// The fields adapters read.
pub(crate) trait EventFields {
    fn time_ms(&self) -> i64;
    fn seq(&self) -> u64;
    fn event_code(&self) -> u16;
    fn touch_code(&self) -> u16;
    fn property(&self, slot: usize) -> u32;
}

/// Per-event logic of an adapter.
pub(crate) trait EventVisitor {
    fn visit<E: EventFields>(&mut self, event: &E);
}

impl EventFields for EventRef<'_> {
    #[inline(always)]
    fn time_ms(&self) -> i64 {
        EventRef::time_ms(self)
    }

    #[inline(always)]
    fn seq(&self) -> u64 {
        EventRef::seq(self)
    }

    #[inline(always)]
    fn event_code(&self) -> u16 {
        EventRef::event_code(self)
    }

    #[inline(always)]
    fn touch_code(&self) -> u16 {
        EventRef::touch_code(self)
    }

    #[inline(always)]
    fn property(&self, slot: usize) -> u32 {
        EventRef::property(self, slot)
    }
}

/// The dense columns of one segment range.
pub(crate) struct Slices<'a> {
    pub(crate) time_low: &'a [u32],
    pub(crate) time_high: &'a [i16],
    pub(crate) seq_low: &'a [u32],
    pub(crate) seq_high: &'a [u16],
    pub(crate) event: &'a [u16],
    pub(crate) touch: &'a [u16],
}

/// One row of a [`Slices`] range, its dense fields already loaded: the loop reads every
/// column once, in step, and a visitor that ignores a field lets the compiler drop its load.
pub(crate) struct SliceEvent<'a> {
    time_ms: i64,
    seq: u64,
    event: u16,
    touch: u16,
    segment: &'a Segment,
    row: usize,
}

impl EventFields for SliceEvent<'_> {
    #[inline(always)]
    fn time_ms(&self) -> i64 {
        self.time_ms
    }

    #[inline(always)]
    fn seq(&self) -> u64 {
        self.seq
    }

    #[inline(always)]
    fn event_code(&self) -> u16 {
        self.event
    }

    #[inline(always)]
    fn touch_code(&self) -> u16 {
        self.touch
    }

    #[inline(always)]
    fn property(&self, slot: usize) -> u32 {
        self.segment.property(self.row, slot)
    }
}

impl PersonEvents<'_> {
    /// Hands every event, in `(time, seq)` order, to `visitor`.
    #[inline]
    pub(crate) fn visit<V: EventVisitor>(&self, visitor: &mut V) {
        match self.plain_range() {
            Some((segment, start, end)) => {
                let slices = segment.slices(start, end);
                // Every column cut to one length, so the loop's indexing needs no checks.
                let rows = slices.event.len();
                let time_low = &slices.time_low[..rows];
                let time_high = &slices.time_high[..rows];
                let seq_low = &slices.seq_low[..rows];
                let seq_high = &slices.seq_high[..rows];
                let touch = &slices.touch[..rows];
                for (index, &event) in slices.event.iter().enumerate() {
                    visitor.visit(&SliceEvent {
                        time_ms: unpack_time(time_low[index], time_high[index]),
                        seq: unpack_seq(seq_low[index], seq_high[index]),
                        event,
                        touch: touch[index],
                        segment,
                        row: start + index,
                    });
                }
            }
            None => {
                for event in self.iter() {
                    visitor.visit(&event);
                }
            }
        }
    }
}
