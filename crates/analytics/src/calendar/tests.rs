#![allow(clippy::unwrap_used, reason = "tests")]

use super::test_inputs::any_interval;
use super::*;
use chrono::Utc;
use proptest::prelude::*;

fn ms(text: &str) -> i64 {
    text.parse::<DateTime<Utc>>().unwrap().timestamp_millis()
}

fn calendar(interval: Interval, zone: &str) -> Calendar {
    Calendar::from_zone_name(interval, zone, Weekday::Mon).unwrap()
}

const HOUR: i64 = 3_600_000;

#[test]
fn interval_starts_in_utc() {
    let cases = [
        (
            Interval::Hour,
            "2024-05-15T10:42:13Z",
            "2024-05-15T10:00:00Z",
        ),
        (
            Interval::Day,
            "2024-05-15T10:42:13Z",
            "2024-05-15T00:00:00Z",
        ),
        // 2024-05-15 is a Wednesday; Monday weeks start on the 13th.
        (
            Interval::Week,
            "2024-05-15T10:42:13Z",
            "2024-05-13T00:00:00Z",
        ),
        (
            Interval::Month,
            "2024-05-15T10:42:13Z",
            "2024-05-01T00:00:00Z",
        ),
        (
            Interval::Day,
            "2024-05-15T00:00:00Z",
            "2024-05-15T00:00:00Z",
        ),
        (
            Interval::Month,
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
        ),
    ];
    for (interval, instant, expected) in cases {
        let start = calendar(interval, "UTC")
            .interval_start(ms(instant))
            .unwrap();
        assert_eq!(start, ms(expected), "{interval:?} {instant}");
    }
}

#[test]
fn day_lengths_across_daylight_saving() {
    // (zone, a local day's noon in UTC, its start, its length in hours)
    let cases = [
        (
            "Europe/Berlin",
            "2024-03-31T10:00:00Z",
            "2024-03-30T23:00:00Z",
            23,
        ),
        (
            "Europe/Berlin",
            "2024-10-27T11:00:00Z",
            "2024-10-26T22:00:00Z",
            25,
        ),
        (
            "Europe/Berlin",
            "2024-07-01T10:00:00Z",
            "2024-06-30T22:00:00Z",
            24,
        ),
        (
            "America/New_York",
            "2024-03-10T16:00:00Z",
            "2024-03-10T05:00:00Z",
            23,
        ),
        (
            "America/New_York",
            "2024-11-03T17:00:00Z",
            "2024-11-03T04:00:00Z",
            25,
        ),
        (
            "Asia/Shanghai",
            "2024-03-31T04:00:00Z",
            "2024-03-30T16:00:00Z",
            24,
        ),
        (
            "Asia/Shanghai",
            "2024-10-27T04:00:00Z",
            "2024-10-26T16:00:00Z",
            24,
        ),
        // Sao Paulo's clocks jumped from 00:00 to 01:00: the day starts at the jump.
        (
            "America/Sao_Paulo",
            "2018-11-04T15:00:00Z",
            "2018-11-04T03:00:00Z",
            23,
        ),
    ];
    for (zone, noon, start, hours) in cases {
        let day = calendar(Interval::Day, zone);
        assert_eq!(
            day.interval_start(ms(noon)).unwrap(),
            ms(start),
            "{zone} {noon}"
        );
        let next = day.next_start(ms(noon)).unwrap();
        assert_eq!(next - ms(start), hours * HOUR, "{zone} {noon}");
        assert_eq!(
            day.previous_start(next).unwrap(),
            ms(start),
            "{zone} {noon}"
        );
    }
}

#[test]
fn repeated_autumn_hour_is_two_hours() {
    let hour = calendar(Interval::Hour, "Europe/Berlin");
    // 02:30 CEST and 02:30 CET on 2024-10-27.
    let first = hour.interval_start(ms("2024-10-27T00:30:00Z")).unwrap();
    let second = hour.interval_start(ms("2024-10-27T01:30:00Z")).unwrap();
    assert_eq!(first, ms("2024-10-27T00:00:00Z"));
    assert_eq!(second, ms("2024-10-27T01:00:00Z"));
    assert_eq!(hour.next_start(first).unwrap(), second);
    // The spring gap: 01:xx CET is followed directly by 03:00 CEST.
    let before_gap = hour.interval_start(ms("2024-03-31T00:30:00Z")).unwrap();
    assert_eq!(
        hour.next_start(before_gap).unwrap(),
        ms("2024-03-31T01:00:00Z")
    );
    // Lord Howe Island moves its clocks by half an hour (02:00 +10:30 becomes 02:30 +11):
    // the hour holding the change is cut at it.
    let lord_howe = calendar(Interval::Hour, "Australia/Lord_Howe");
    let cut = lord_howe
        .interval_start(ms("2021-10-02T15:45:00Z"))
        .unwrap();
    assert_eq!(cut, ms("2021-10-02T15:30:00Z"));
    assert_eq!(
        lord_howe.previous_start(cut).unwrap(),
        ms("2021-10-02T14:30:00Z")
    );
    assert_eq!(
        lord_howe.next_start(cut).unwrap(),
        ms("2021-10-02T16:00:00Z")
    );
    // Half-hour zones bucket on their local hour, not the UTC hour.
    let kolkata = calendar(Interval::Hour, "Asia/Kolkata");
    let start = kolkata.interval_start(ms("2024-05-15T10:42:00Z")).unwrap();
    assert_eq!(start, ms("2024-05-15T10:30:00Z"));
}

#[test]
fn weeks_follow_the_week_start() {
    // 2020-02-05 is a Wednesday (scenario dates from PostHog's weekly lifecycle tests).
    let instant = ms("2020-02-05T12:00:00Z");
    let cases = [
        (Weekday::Mon, "2020-02-03T00:00:00Z"),
        (Weekday::Sun, "2020-02-02T00:00:00Z"),
        (Weekday::Wed, "2020-02-05T00:00:00Z"),
        (Weekday::Thu, "2020-01-30T00:00:00Z"),
    ];
    for (week_start, expected) in cases {
        let week = Calendar::new(Interval::Week, Tz::UTC, week_start);
        assert_eq!(
            week.interval_start(instant).unwrap(),
            ms(expected),
            "{week_start}"
        );
        let next = week.next_start(instant).unwrap();
        assert_eq!(next - ms(expected), 7 * 24 * HOUR);
    }
    // A Berlin week holding the spring change is an hour short.
    let berlin = Calendar::from_zone_name(Interval::Week, "Europe/Berlin", Weekday::Mon).unwrap();
    let start = berlin.interval_start(ms("2024-03-28T12:00:00Z")).unwrap();
    assert_eq!(start, ms("2024-03-24T23:00:00Z"));
    assert_eq!(
        berlin.next_start(start).unwrap() - start,
        7 * 24 * HOUR - HOUR
    );
}

#[test]
fn months_in_a_zone() {
    let month = calendar(Interval::Month, "Europe/Berlin");
    let start = month.interval_start(ms("2024-03-15T12:00:00Z")).unwrap();
    assert_eq!(start, ms("2024-02-29T23:00:00Z"));
    assert_eq!(month.next_start(start).unwrap(), ms("2024-03-31T22:00:00Z"));
    let december = month.interval_start(ms("2024-12-31T22:59:59Z")).unwrap();
    assert_eq!(december, ms("2024-11-30T23:00:00Z"));
    assert_eq!(
        month.next_start(december).unwrap(),
        ms("2024-12-31T23:00:00Z")
    );
}

#[test]
fn bad_inputs_are_errors() {
    let unknown = Calendar::from_zone_name(Interval::Day, "Mars/Olympus", Weekday::Mon);
    assert!(matches!(
        unknown,
        Err(CalendarError::InvalidInput {
            field: "time_zone",
            ..
        })
    ));
    let day = calendar(Interval::Day, "UTC");
    assert!(matches!(
        day.interval_start(i64::MAX),
        Err(CalendarError::OutOfRange { .. })
    ));
    assert!(day.interval_start(i64::MIN).is_err());
    let backwards = IntervalGrid::starting_in(&day, 10, 5, 10);
    assert!(matches!(backwards, Err(CalendarError::InvalidInput { .. })));
    let too_many = IntervalGrid::starting_in(&day, 0, 100 * 24 * HOUR, 10);
    assert!(matches!(too_many, Err(CalendarError::InvalidInput { .. })));
}

#[test]
fn grid_starting_in_a_range() {
    let day = calendar(Interval::Day, "UTC");
    let grid = IntervalGrid::starting_in(
        &day,
        ms("2024-05-01T06:00:00Z"),
        ms("2024-05-04T00:00:01Z"),
        10,
    )
    .unwrap();
    // Days starting inside the range: the 2nd, 3rd and 4th.
    assert_eq!(grid.len(), 3);
    assert_eq!(grid.start(0), ms("2024-05-02T00:00:00Z"));
    assert_eq!(grid.end(2), ms("2024-05-05T00:00:00Z"));
    let wider = grid.extended(&day, 2, 1).unwrap();
    assert_eq!(wider.len(), 6);
    assert_eq!(wider.start(0), ms("2024-04-30T00:00:00Z"));
    assert_eq!(wider.locate(ms("2024-04-29T23:59:59Z")), Location::Before);
    assert_eq!(
        wider.locate(ms("2024-05-02T10:00:00Z")),
        Location::Inside(2)
    );
    assert_eq!(wider.locate(ms("2024-05-06T00:00:00Z")), Location::After);
    let empty = IntervalGrid::starting_in(&day, 5, 5, 10).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.index_of(5), None);
}

const ZONES: [&str; 9] = [
    "Australia/Lord_Howe",
    "America/Havana",
    "America/Santiago",
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Shanghai",
    "Asia/Kolkata",
    "America/Sao_Paulo",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The grid's binary search agrees with the time-zone database on every instant, and
    /// interval arithmetic round-trips.
    #[test]
    fn grid_agrees_with_calendar(
        zone in 0..ZONES.len(),
        interval in any_interval(),
        week_start in 0u8..7,
        first in ms("2015-01-01T00:00:00Z")..ms("2025-01-01T00:00:00Z"),
        offsets in proptest::collection::vec(0i64..(400 * 24 * HOUR), 1..20),
    ) {
        let week_start = Weekday::try_from(week_start).unwrap();
        let calendar = Calendar::from_zone_name(interval, ZONES[zone], week_start).unwrap();
        let count = match interval { Interval::Hour => 24 * 20, _ => 60 };
        let grid = IntervalGrid::from_instant(&calendar, first, count).unwrap();
        for pair in grid.bounds().windows(2) {
            prop_assert!(pair[0] < pair[1]);
            prop_assert_eq!(calendar.previous_start(pair[1]).unwrap(), pair[0]);
        }
        for offset in offsets {
            let instant = first + offset % (grid.end(grid.len() - 1) - first);
            let start = calendar.interval_start(instant).unwrap();
            prop_assert!(start <= instant);
            prop_assert!(instant < calendar.next_start(instant).unwrap());
            let index = grid.index_of(instant).unwrap();
            prop_assert_eq!(grid.start(index), start);
        }
    }
}
