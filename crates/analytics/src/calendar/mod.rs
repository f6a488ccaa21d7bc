//! Calendar intervals in a tenant's time zone: the interval arithmetic lifecycle and retention
//! share.
//!
//! An interval is a clock hour, a calendar day from local midnight, a week from local midnight
//! of the tenant's week start day, or a calendar month, always cut in the tenant's IANA time
//! zone and expressed as UTC instants in milliseconds. Days are therefore not 24 hours long
//! across daylight-saving changes (23 or 25 hours), which is exactly what analysts expect when
//! they read "Tuesday" in their own zone.
//!
//! Rules where local time is irregular:
//! - a local midnight (or month/week start) that falls in a daylight-saving gap starts at the
//!   first local minute that exists after it (the transition instant);
//! - a local midnight that happens twice (clocks set back over midnight) starts at the earlier
//!   of the two instants;
//! - an hour is the local clock hour of the instant under the instant's own UTC offset, so the
//!   repeated hour of an autumn change is two distinct intervals of 60 minutes each; where the
//!   offset changes by a fraction of an hour (Lord Howe Island), the hour holding the change
//!   is cut at it into two shorter intervals.
//!
//! Chrono is only used to build interval boundaries; models bucket events with an
//! [`IntervalGrid`], computed once per query, by binary search over its boundaries. The
//! [`run_partitioned`] helper lives here too because every journey model that buckets by
//! interval also folds persons in partitions and merges the accumulators.

mod bits;
mod grid;
mod partition;
#[cfg(test)]
pub(crate) mod test_inputs;

pub(crate) use bits::set_bits;
pub use grid::{IntervalGrid, Location};
pub(crate) use partition::run_partitioned_infallible;
pub use partition::{on_threads, on_threads_in_order, run_partitioned};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Weekday};
use chrono_tz::Tz;

/// Milliseconds in one hour.
const HOUR_MS: i64 = 3_600_000;

/// The longest daylight-saving gap searched for the first existing local minute (a day, far
/// more than any real gap, which keeps the search bounded).
const MAX_GAP_MINUTES: i64 = 24 * 60;

/// A calendar unit for bucketing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    /// Clock hours in the time zone.
    Hour,
    /// Calendar days from local midnight.
    Day,
    /// Weeks from local midnight of the week start day.
    Week,
    /// Calendar months from local midnight of the first day.
    Month,
}

/// Why a calendar computation could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// An input field is not acceptable (unknown time zone, too many intervals, ...).
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field, as the service names it.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An instant lies outside the range the calendar can represent.
    #[error("instant out of range in {field}: {value_ms} ms")]
    OutOfRange {
        /// The field that carried the instant.
        field: &'static str,
        /// The instant, in milliseconds since the Unix epoch.
        value_ms: i64,
    },
}

/// An interval unit cut in a time zone with a week start day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    interval: Interval,
    time_zone: Tz,
    week_start: Weekday,
}

impl Calendar {
    /// A calendar for an interval unit in a time zone; `week_start` only matters for weeks.
    pub fn new(interval: Interval, time_zone: Tz, week_start: Weekday) -> Self {
        Self {
            interval,
            time_zone,
            week_start,
        }
    }

    /// A calendar from an IANA zone name such as `Asia/Shanghai`.
    pub fn from_zone_name(
        interval: Interval,
        zone_name: &str,
        week_start: Weekday,
    ) -> Result<Self, CalendarError> {
        let time_zone = zone_name
            .parse::<Tz>()
            .map_err(|_| CalendarError::InvalidInput {
                field: "time_zone",
                reason: format!("unknown IANA time zone {zone_name:?}"),
            })?;
        Ok(Self::new(interval, time_zone, week_start))
    }

    /// The interval unit.
    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// The time zone intervals are cut in.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// The first day of a week.
    pub fn week_start(&self) -> Weekday {
        self.week_start
    }

    /// The start (UTC ms) of the interval containing `instant_ms`; never later than it.
    pub fn interval_start(&self, instant_ms: i64) -> Result<i64, CalendarError> {
        let local = self.local(instant_ms)?;
        let start = match self.interval {
            Interval::Hour => self.hour_start(instant_ms, offset_ms(&local))?,
            Interval::Day => self.local_midnight(local.date_naive())?,
            Interval::Week => self.local_midnight(self.week_first_day(local.date_naive()))?,
            Interval::Month => self.local_midnight(month_first_day(local.date_naive()))?,
        };
        // The gap rule can only move a start later than the nominal one, never past an
        // instant that exists; the clamp keeps the promise even for odd historical offsets.
        Ok(start.min(instant_ms))
    }

    /// The start of the interval after the one that starts at (or contains) `instant_ms`.
    pub fn next_start(&self, instant_ms: i64) -> Result<i64, CalendarError> {
        let start = self.interval_start(instant_ms)?;
        let next = match self.interval {
            Interval::Hour => {
                let candidate = self.interval_start(start.saturating_add(HOUR_MS))?;
                if candidate > start {
                    candidate
                } else {
                    start + HOUR_MS
                }
            }
            Interval::Day => self.local_midnight(add_days(self.local_date(start)?, 1)?)?,
            Interval::Week => {
                let first = self.week_first_day(self.local_date(start)?);
                self.local_midnight(add_days(first, 7)?)?
            }
            Interval::Month => {
                let first = month_first_day(self.local_date(start)?);
                self.local_midnight(next_month_first_day(first)?)?
            }
        };
        Ok(next)
    }

    /// The start of the interval before the one containing `instant_ms`.
    pub fn previous_start(&self, instant_ms: i64) -> Result<i64, CalendarError> {
        let start = self.interval_start(instant_ms)?;
        self.interval_start(start.saturating_sub(1))
    }

    /// The local clock hour under the instant's own offset; when that hour began under
    /// another offset (a change by a fraction of an hour, as on Lord Howe Island), the hour
    /// starts at the change instead.
    fn hour_start(&self, instant_ms: i64, offset: i64) -> Result<i64, CalendarError> {
        let local_ms = instant_ms.saturating_add(offset);
        let candidate = local_ms - local_ms.rem_euclid(HOUR_MS) - offset;
        if offset_ms(&self.local(candidate)?) == offset {
            return Ok(candidate);
        }
        // The offset changed in (candidate, instant]: find the change to the millisecond.
        let (mut before, mut after) = (candidate, instant_ms);
        while after - before > 1 {
            let middle = before + (after - before) / 2;
            if offset_ms(&self.local(middle)?) == offset {
                after = middle;
            } else {
                before = middle;
            }
        }
        Ok(after)
    }

    fn local(&self, instant_ms: i64) -> Result<DateTime<Tz>, CalendarError> {
        let utc = DateTime::from_timestamp_millis(instant_ms).ok_or(CalendarError::OutOfRange {
            field: "time",
            value_ms: instant_ms,
        })?;
        Ok(utc.with_timezone(&self.time_zone))
    }

    fn local_date(&self, instant_ms: i64) -> Result<NaiveDate, CalendarError> {
        Ok(self.local(instant_ms)?.date_naive())
    }

    fn week_first_day(&self, date: NaiveDate) -> NaiveDate {
        let back = (7 + date.weekday().num_days_from_monday()
            - self.week_start.num_days_from_monday())
            % 7;
        date - Duration::days(i64::from(back))
    }

    /// The UTC instant of local midnight starting `date`, under the gap and repeat rules.
    fn local_midnight(&self, date: NaiveDate) -> Result<i64, CalendarError> {
        let midnight = date
            .and_hms_opt(0, 0, 0)
            .ok_or_else(|| out_of_range(date))?;
        self.resolve_local(midnight)
    }

    fn resolve_local(&self, naive: NaiveDateTime) -> Result<i64, CalendarError> {
        for minute in 0..=MAX_GAP_MINUTES {
            let candidate = naive + Duration::minutes(minute);
            if let Some(instant) = self.time_zone.from_local_datetime(&candidate).earliest() {
                return Ok(instant.timestamp_millis());
            }
        }
        Err(out_of_range(naive.date()))
    }
}

/// The UTC offset of a local time, in milliseconds.
fn offset_ms(local: &DateTime<Tz>) -> i64 {
    i64::from(local.offset().fix().local_minus_utc()) * 1000
}

fn out_of_range(date: NaiveDate) -> CalendarError {
    CalendarError::OutOfRange {
        field: "time",
        value_ms: date
            .and_hms_opt(0, 0, 0)
            .map_or(i64::MAX, |naive| naive.and_utc().timestamp_millis()),
    }
}

fn month_first_day(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.day0()))
}

fn next_month_first_day(first: NaiveDate) -> Result<NaiveDate, CalendarError> {
    let (year, month) = if first.month() == 12 {
        (first.year() + 1, 1)
    } else {
        (first.year(), first.month() + 1)
    };
    NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(|| out_of_range(first))
}

fn add_days(date: NaiveDate, days: u64) -> Result<NaiveDate, CalendarError> {
    date.checked_add_days(chrono::Days::new(days))
        .ok_or_else(|| out_of_range(date))
}

#[cfg(test)]
mod tests;
