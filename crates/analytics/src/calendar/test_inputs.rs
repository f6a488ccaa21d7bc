//! Inputs the randomized tests of the interval-based models share: a start instant, zones
//! with irregular local time, and an interval strategy. Only generated inputs live here; each
//! model's naive reference stays in its own tests, independent of the fast code.

use proptest::prelude::*;

use super::Interval;

/// 2024-01-01T00:00:00Z, where the references' random timelines start.
pub(crate) const BASE_MS: i64 = 1_704_067_200_000;

/// Zones the references are checked in: UTC, ordinary DST, no DST, a half-hour DST shift
/// (Lord Howe) and a DST change at midnight (Havana).
pub(crate) const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Shanghai",
    "Australia/Lord_Howe",
    "America/Havana",
];

/// Any interval unit.
pub(crate) fn any_interval() -> impl Strategy<Value = Interval> {
    prop_oneof![
        Just(Interval::Hour),
        Just(Interval::Day),
        Just(Interval::Week),
        Just(Interval::Month)
    ]
}
