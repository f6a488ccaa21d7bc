#![allow(clippy::unwrap_used, reason = "tests")]

//! Table-driven scenarios, most from PostHog's retention query tests (their `_date(day)` is
//! 2020-06-(10 + day) at 05:00 UTC; their default cohort type is recurring). PostHog pads rows
//! with zeros to a square; our rows stop at the last period that has begun.

use super::*;
use crate::calendar::Interval;
use chrono::{NaiveDate, Weekday};
use chrono_tz::Tz;

const HOUR: i64 = 3_600_000;
const BOTH: u8 = START | RETURN;

/// PostHog's `_date(day, hour)`.
fn date(day: i64, hour: i64) -> i64 {
    let base = NaiveDate::from_ymd_opt(2020, 6, 10)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    base.and_utc().timestamp_millis() + day * 24 * HOUR + hour * HOUR
}

/// PostHog's `_date(day=0, month=m)`: the 10th of month 6 + m of 2020 at 05:00.
fn month_date(month: i64) -> i64 {
    let month0 = 5 + month; // zero-based month of 2020
    let (year, month) = (2020 + month0.div_euclid(12), month0.rem_euclid(12) + 1);
    let day = NaiveDate::from_ymd_opt(year as i32, month as u32, 10).unwrap();
    day.and_hms_opt(5, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis()
}

fn event(time_ms: i64, flags: u8) -> RetentionEvent {
    RetentionEvent {
        time_ms,
        flags,
        breakdown: 0,
    }
}

struct Setup {
    calendar: Calendar,
    first_ms: i64,
    cohorts: usize,
    options: RetentionOptions,
    data_end_ms: i64,
}

fn run(setup: &Setup, persons: &[Vec<RetentionEvent>]) -> RetentionResult {
    let cohort_grid =
        IntervalGrid::from_instant(&setup.calendar, setup.first_ms, setup.cohorts).unwrap();
    let model = RetentionModel::new(&setup.calendar, &cohort_grid, setup.options).unwrap();
    let timelines: Vec<&[RetentionEvent]> = persons.iter().map(Vec::as_slice).collect();
    let result = model.run(&timelines, 1).result(setup.data_end_ms, 100);
    assert_eq!(
        result,
        model.run(&timelines, 3).result(setup.data_end_ms, 100)
    );
    result
}

fn counts(table: &RetentionTable) -> Vec<Vec<u64>> {
    table
        .cohorts
        .iter()
        .map(|c| c.cells.iter().map(|cell| cell.retained).collect())
        .collect()
}

/// Drops PostHog's padding: row c of n keeps n − c cells.
fn triangle(rows: &[&[u64]]) -> Vec<Vec<u64>> {
    let n = rows.len();
    rows.iter()
        .enumerate()
        .map(|(c, row)| row[..n - c].to_vec())
        .collect()
}

fn daily(cohorts: usize, options: RetentionOptions) -> Setup {
    let calendar = Calendar::new(Interval::Day, Tz::UTC, Weekday::Sun);
    Setup {
        calendar,
        first_ms: date(0, 0),
        cohorts,
        options,
        data_end_ms: date(cohorts as i64, 0),
    }
}

fn recurring(periods: usize) -> RetentionOptions {
    RetentionOptions {
        cohort_type: CohortType::Recurring,
        periods,
        ..RetentionOptions::default()
    }
}

/// PostHog's two pageview persons (test_day_interval and friends).
fn pageview_persons() -> Vec<Vec<RetentionEvent>> {
    let p1 = [
        date(0, 5),
        date(1, 5),
        date(2, 5),
        date(5, 5),
        date(5, 9),
        date(6, 5),
    ];
    let p2 = [date(1, 5), date(2, 5), date(3, 5), date(6, 5)];
    vec![
        p1.iter().map(|&t| event(t, BOTH)).collect(),
        p2.iter().map(|&t| event(t, BOTH)).collect(),
    ]
}

#[test]
fn posthog_day_interval_recurring() {
    let result = run(&daily(11, recurring(11)), &pageview_persons());
    assert_eq!(result.tables.len(), 1);
    let expected = triangle(&[
        &[1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0],
        &[2, 2, 1, 0, 1, 2, 0, 0, 0, 0, 0],
        &[2, 1, 0, 1, 2, 0, 0, 0, 0, 0, 0],
        &[1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0; 11],
        &[0; 11],
        &[0; 11],
        &[0; 11],
    ]);
    let table = &result.tables[0];
    assert_eq!(counts(table), expected);
    // Averages weighted by cohort size: period 0 is 100 %, period 1 is 5 of 9.
    assert_eq!(table.average[0].rate, 1.0);
    assert_eq!(
        (table.average[1].retained, table.average[1].rate),
        (5, 5.0 / 9.0)
    );
    assert_eq!(table.average.len(), 11);
    assert_eq!(
        table.cohorts[4].cells[0].rate, 0.0,
        "an empty cohort's rate is 0, not NaN"
    );
    assert!(
        table
            .cohorts
            .iter()
            .flat_map(|c| &c.cells)
            .all(|cell| !cell.partial)
    );
}

#[test]
fn on_or_after_counts_any_later_return() {
    // Ours, on PostHog's day-interval persons.
    let options = RetentionOptions {
        return_mode: ReturnMode::OnOrAfter,
        ..recurring(11)
    };
    let result = run(&daily(11, options), &pageview_persons());
    let rows = counts(&result.tables[0]);
    assert_eq!(rows[0], [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
    assert_eq!(rows[1], [2, 2, 2, 2, 2, 2, 0, 0, 0, 0]);
    assert_eq!(rows[3], [1, 1, 1, 1, 0, 0, 0, 0]);
}

#[test]
fn posthog_month_interval_recurring() {
    let months = [
        (0, -5),
        (1, -5),
        (0, -4),
        (1, -4),
        (0, -3),
        (1, -3),
        (0, -1),
        (0, 0),
        (1, 0),
        (1, 1),
        (0, 3),
        (1, 5),
    ];
    let mut persons = vec![Vec::new(), Vec::new()];
    for (person, month) in months {
        persons[person].push(event(month_date(month), BOTH));
    }
    let calendar = Calendar::new(Interval::Month, Tz::UTC, Weekday::Mon);
    let setup = Setup {
        calendar,
        first_ms: month_date(-5),
        cohorts: 11,
        options: recurring(11),
        data_end_ms: month_date(6) - 9 * 24 * HOUR - 5 * HOUR,
    };
    let result = run(&setup, &persons);
    let expected = triangle(&[
        &[2, 2, 2, 0, 1, 2, 1, 0, 1, 0, 1],
        &[2, 2, 0, 1, 2, 1, 0, 1, 0, 1, 0],
        &[2, 0, 1, 2, 1, 0, 1, 0, 1, 0, 0],
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        &[2, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0],
        &[1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        &[0; 11],
        &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0; 11],
        &[1; 11],
    ]);
    assert_eq!(counts(&result.tables[0]), expected);
    assert_eq!(
        result.tables[0].cohorts[0].start_ms,
        NaiveDate::from_ymd_opt(2020, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis()
    );
}

/// PostHog's first-time persons: sign-ups are start events, pageviews return events.
fn first_time_persons() -> Vec<Vec<RetentionEvent>> {
    let signups: [&[i64]; 5] = [&[-1, 1, 2, 3, 4], &[-1], &[0], &[2], &[-5, -1]];
    let pageviews: [&[(i64, i64)]; 5] = [
        &[(0, 5), (1, 5), (2, 5), (5, 5), (5, 9), (6, 5)],
        &[(1, 5), (2, 5), (3, 5), (6, 5)],
        &[(1, 5), (3, 5), (4, 5), (5, 5)],
        &[(3, 5), (5, 5)],
        &[],
    ];
    signups
        .iter()
        .zip(pageviews)
        .map(|(days, views)| {
            let mut events: Vec<RetentionEvent> =
                days.iter().map(|&d| event(date(d, 5), START)).collect();
            events.extend(views.iter().map(|&(d, h)| event(date(d, h), RETURN)));
            events
        })
        .collect()
}

#[test]
fn posthog_first_time_retention() {
    let options = RetentionOptions {
        periods: 7,
        ..RetentionOptions::default()
    };
    let setup = Setup {
        first_ms: date(-1, 0),
        data_end_ms: date(6, 0),
        ..daily(7, options)
    };
    let result = run(&setup, &first_time_persons());
    let expected = triangle(&[
        &[2, 1, 2, 2, 1, 0, 1],
        &[1, 1, 0, 1, 1, 1, 0],
        &[0; 7],
        &[1, 1, 0, 1, 0, 0, 0],
        &[0; 7],
        &[0; 7],
        &[0; 7],
    ]);
    assert_eq!(counts(&result.tables[0]), expected);
}

#[test]
fn posthog_first_time_retention_weeks() {
    // PostHog's default week starts on Sunday; the last cohort is the week of June 14.
    let calendar = Calendar::new(Interval::Week, Tz::UTC, Weekday::Sun);
    let options = RetentionOptions {
        periods: 7,
        ..RetentionOptions::default()
    };
    let setup = Setup {
        calendar,
        first_ms: date(-35, 0),
        cohorts: 7,
        options,
        data_end_ms: date(5, 6),
    };
    let result = run(&setup, &first_time_persons());
    let expected = triangle(&[
        &[0; 7],
        &[0; 7],
        &[0; 7],
        &[0; 7],
        &[1, 0, 0, 0, 0, 0, 0],
        &[4, 4, 0, 0, 0, 0, 0],
        &[0; 7],
    ]);
    let table = &result.tables[0];
    assert_eq!(counts(table), expected);
    // The last week and the second cohort's second week are still running.
    assert!(table.cohorts[6].cells[0].partial && table.cohorts[5].cells[1].partial);
    assert!(!table.cohorts[5].cells[0].partial);
    assert!(table.average[0].partial && !table.cohorts[0].cells[5].partial);
}

#[test]
fn posthog_first_time_with_filtered_start_or_return() {
    // test_retention_with_properties_on_start_event_for_first_time: only p1's pageviews of
    // days 2 and 5 are start events; every pageview returns.
    let mut persons = pageview_persons();
    for person in &mut persons {
        for event in person.iter_mut() {
            event.flags = RETURN;
        }
    }
    persons[0][2].flags = BOTH;
    persons[0][3].flags = BOTH;
    let result = run(&daily(11, RetentionOptions::default()), &persons);
    let rows = counts(&result.tables[0]);
    assert_eq!(rows[2], [1, 0, 0, 1, 1, 0, 0, 0, 0]);
    assert_eq!(rows.iter().map(|row| row[0]).sum::<u64>(), 1);

    // test_retention_with_properties_on_return_event_with_first_time: every pageview starts,
    // only p1's pageview of day 5 returns.
    let mut persons = pageview_persons();
    for person in &mut persons {
        for event in person.iter_mut() {
            event.flags = START;
        }
    }
    persons[0][3].flags = BOTH;
    let result = run(&daily(11, RetentionOptions::default()), &persons);
    let rows = counts(&result.tables[0]);
    assert_eq!(rows[0], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(rows[1], [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert!(rows[2..].iter().all(|row| row.iter().all(|&c| c == 0)));
}

#[test]
fn posthog_breakdown_tables() {
    // test_retention_with_breakdown_with_person_properties: US = 1, UK = 2, Germany = 3.
    let persons: Vec<Vec<RetentionEvent>> = [
        (1, &[0, 1, 3][..]),
        (2, &[0, 1, 4]),
        (1, &[0, 2]),
        (3, &[0, 5]),
    ]
    .iter()
    .map(|&(country, days)| {
        days.iter()
            .map(|&d| RetentionEvent {
                time_ms: date(d, 5),
                flags: BOTH,
                breakdown: country,
            })
            .collect()
    })
    .collect();
    let options = RetentionOptions {
        breakdown: true,
        ..recurring(6)
    };
    let result = run(&daily(6, options), &persons);
    let tables: Vec<(u32, Vec<Vec<u64>>)> = result
        .tables
        .iter()
        .map(|t| (t.breakdown, counts(t)))
        .collect();
    let us = triangle(&[
        &[2, 1, 1, 1, 0, 0],
        &[1, 0, 1, 0, 0, 0],
        &[1, 0, 0, 0, 0, 0],
        &[1, 0, 0, 0, 0, 0],
        &[0; 6],
        &[0; 6],
    ]);
    let uk = triangle(&[
        &[1, 1, 0, 0, 1, 0],
        &[1, 0, 0, 1, 0, 0],
        &[0; 6],
        &[0; 6],
        &[1, 0, 0, 0, 0, 0],
        &[0; 6],
    ]);
    let germany = triangle(&[
        &[1, 0, 0, 0, 0, 1],
        &[0; 6],
        &[0; 6],
        &[0; 6],
        &[0; 6],
        &[1, 0, 0, 0, 0, 0],
    ]);
    assert_eq!(tables, vec![(1, us), (2, uk), (3, germany)]);
    let limited = {
        let calendar = Calendar::new(Interval::Day, Tz::UTC, Weekday::Sun);
        let grid = IntervalGrid::from_instant(&calendar, date(0, 0), 6).unwrap();
        let model = RetentionModel::new(&calendar, &grid, options).unwrap();
        let timelines: Vec<&[RetentionEvent]> = persons.iter().map(Vec::as_slice).collect();
        model.run(&timelines, 2).result(date(6, 0), 2)
    };
    assert_eq!(limited.omitted_breakdown_values, 1);
    assert_eq!(
        limited
            .tables
            .iter()
            .map(|t| t.breakdown)
            .collect::<Vec<_>>(),
        [1, 2]
    );
}

#[test]
fn breakdown_needs_the_same_value_on_start_and_return() {
    // Ours: a start carrying "a" and a return carrying "b" retain nobody.
    let person = vec![
        RetentionEvent {
            time_ms: date(0, 5),
            flags: START,
            breakdown: 1,
        },
        RetentionEvent {
            time_ms: date(1, 5),
            flags: RETURN,
            breakdown: 2,
        },
    ];
    let options = RetentionOptions {
        breakdown: true,
        ..RetentionOptions::default()
    };
    let result = run(&daily(3, options), std::slice::from_ref(&person));
    assert_eq!(result.tables.len(), 1);
    assert_eq!(
        counts(&result.tables[0]),
        [vec![1, 0, 0], vec![0, 0], vec![0]]
    );
    // Without a breakdown the values are ignored and the return counts.
    let result = run(&daily(3, RetentionOptions::default()), &[person]);
    assert_eq!(
        counts(&result.tables[0]),
        [vec![1, 1, 0], vec![0, 0], vec![0]]
    );
}

#[test]
fn posthog_timezones() {
    let p1 = [date(-1, 1), date(0, 1), date(1, 1)];
    let p2 = [date(6, 1), date(6, 9)];
    let persons = vec![
        p1.iter().map(|&t| event(t, BOTH)).collect(),
        p2.iter().map(|&t| event(t, BOTH)).collect(),
    ];
    let utc = run(&daily(11, recurring(11)), &persons);
    let rows = counts(&utc.tables[0]);
    assert_eq!(
        (rows[0][..2].to_vec(), rows[1][0], rows[6][0]),
        (vec![1, 1], 1, 1)
    );
    assert_eq!(rows.iter().flatten().sum::<u64>(), 4);

    let calendar = Calendar::from_zone_name(Interval::Day, "US/Pacific", Weekday::Sun).unwrap();
    let first_ms = date(0, 7); // 2020-06-10T00:00 in Pacific daylight time
    let setup = Setup {
        calendar,
        first_ms,
        cohorts: 11,
        options: recurring(11),
        data_end_ms: date(11, 7),
    };
    let pacific = run(&setup, &persons);
    let table = &pacific.tables[0];
    assert_eq!(table.cohorts[0].start_ms, first_ms);
    let rows = counts(table);
    assert_eq!(
        (rows[0][..2].to_vec(), rows[5][..2].to_vec(), rows[6][0]),
        (vec![1, 0], vec![1, 1], 1)
    );
    assert_eq!(rows.iter().flatten().sum::<u64>(), 4);
}

#[test]
fn edges_and_errors() {
    let calendar = Calendar::new(Interval::Day, Tz::UTC, Weekday::Sun);
    let grid = IntervalGrid::from_instant(&calendar, date(0, 0), 3).unwrap();
    let field = |options| match RetentionModel::new(&calendar, &grid, options) {
        Err(RetentionError::InvalidInput { field, .. }) => field,
        other => panic!("expected invalid input, got {other:?}"),
    };
    assert_eq!(
        field(RetentionOptions {
            periods: 0,
            ..RetentionOptions::default()
        }),
        "periods"
    );
    assert_eq!(
        field(RetentionOptions {
            periods: 101,
            ..RetentionOptions::default()
        }),
        "periods"
    );
    let empty = IntervalGrid::starting_in(&calendar, 0, 0, 5).unwrap();
    assert!(RetentionModel::new(&calendar, &empty, RetentionOptions::default()).is_err());

    // No persons still gives one table without a breakdown; data end before the grid gives
    // cohorts without cells; extreme instants and flagless events are ignored.
    let model = RetentionModel::new(&calendar, &grid, RetentionOptions::default()).unwrap();
    let nothing = model.run(&[], 2).result(date(3, 0), 10);
    assert_eq!(nothing.tables.len(), 1);
    assert_eq!(nothing.tables[0].average[0].rate, 0.0);
    let odd = [
        event(i64::MIN, BOTH),
        event(i64::MAX, BOTH),
        event(date(0, 1), 0),
        event(date(0, 2), BOTH),
        event(date(0, 2), BOTH),
    ];
    let result = model.run(&[&odd[..]], 1).result(date(0, 0), 10);
    assert!(result.tables[0].cohorts.iter().all(|c| c.cells.is_empty()));
    assert!(result.tables[0].average.is_empty());
    // i64::MIN is a start before the grid: the person's first start is not in a cohort.
    assert_eq!(result.tables[0].cohorts[0].size, 0);
    assert_eq!(result.persons_considered, 1);
}
