//! A run of consecutive intervals, computed once per query, that buckets instants by binary
//! search instead of calling the time-zone database per event.

use super::{Calendar, CalendarError};

/// Consecutive intervals of one calendar, as their boundaries in UTC milliseconds.
///
/// Interval `i` is `[bounds[i], bounds[i + 1])`; there are `bounds.len() - 1` intervals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalGrid {
    bounds: Vec<i64>,
}

impl IntervalGrid {
    /// `count` intervals, the first being the one containing `first_instant_ms`.
    pub fn from_instant(
        calendar: &Calendar,
        first_instant_ms: i64,
        count: usize,
    ) -> Result<Self, CalendarError> {
        let mut bounds = Vec::with_capacity(count + 1);
        let mut start = calendar.interval_start(first_instant_ms)?;
        bounds.push(start);
        for _ in 0..count {
            start = calendar.next_start(start)?;
            bounds.push(start);
        }
        Ok(Self { bounds })
    }

    /// The intervals whose start lies in `[from_ms, to_ms)`; at most `max_intervals` of them.
    pub fn starting_in(
        calendar: &Calendar,
        from_ms: i64,
        to_ms: i64,
        max_intervals: usize,
    ) -> Result<Self, CalendarError> {
        if to_ms < from_ms {
            return Err(CalendarError::InvalidInput {
                field: "time_range",
                reason: "the end is before the start".to_owned(),
            });
        }
        let mut start = calendar.interval_start(from_ms)?;
        if start < from_ms {
            start = calendar.next_start(start)?;
        }
        let mut bounds = vec![start];
        while start < to_ms {
            if bounds.len() > max_intervals {
                return Err(CalendarError::InvalidInput {
                    field: "time_range",
                    reason: format!("the range holds more than {max_intervals} intervals"),
                });
            }
            start = calendar.next_start(start)?;
            bounds.push(start);
        }
        Ok(Self { bounds })
    }

    /// This grid with `before` intervals added in front and `after` intervals at the end.
    pub fn extended(
        &self,
        calendar: &Calendar,
        before: usize,
        after: usize,
    ) -> Result<Self, CalendarError> {
        let mut first = self.bounds[0];
        for _ in 0..before {
            first = calendar.previous_start(first)?;
        }
        Self::from_instant(calendar, first, before + self.len() + after)
    }

    /// How many intervals the grid holds.
    pub fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    /// Whether the grid holds no interval.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The start of interval `index` (or the end of the grid for `index == len()`).
    pub fn start(&self, index: usize) -> i64 {
        self.bounds[index]
    }

    /// The end (next start) of interval `index`.
    pub fn end(&self, index: usize) -> i64 {
        self.bounds[index + 1]
    }

    /// All boundaries: the starts of every interval followed by the end of the last one.
    pub fn bounds(&self) -> &[i64] {
        &self.bounds
    }

    /// The interval containing `instant_ms`, if the grid covers it.
    #[inline]
    pub fn index_of(&self, instant_ms: i64) -> Option<usize> {
        let first = self.bounds[0];
        let last = self.bounds[self.bounds.len() - 1];
        if instant_ms < first || instant_ms >= last {
            return None;
        }
        Some(self.bounds.partition_point(|&bound| bound <= instant_ms) - 1)
    }

    /// Where `instant_ms` falls relative to the grid: before it, inside interval `i`, or after.
    #[inline]
    pub fn locate(&self, instant_ms: i64) -> Location {
        if instant_ms < self.bounds[0] {
            Location::Before
        } else {
            self.index_of(instant_ms)
                .map_or(Location::After, Location::Inside)
        }
    }
}

/// Where an instant falls relative to a grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Earlier than the first interval.
    Before,
    /// Inside interval `i`.
    Inside(usize),
    /// At or after the end of the last interval.
    After,
}
