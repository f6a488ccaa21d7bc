#![allow(clippy::unwrap_used, reason = "tests")]

//! Retention checked against a deliberately naive reference: every cell recomputed from the
//! definitions, person by person, asking the time-zone database for every event.

use super::*;
use crate::calendar::Interval;
use crate::calendar::test_inputs::{BASE_MS, ZONES, any_interval};
use chrono::Weekday;
use proptest::prelude::*;
use std::collections::BTreeSet;

const HOUR_MS: i64 = 3_600_000;

/// (breakdown, cohorts as (start, size, cells as (retained, partial)), average as (retained, partial))
type Projection = (u32, Vec<(i64, u64, Vec<(u64, bool)>)>, Vec<(u64, bool)>);

fn advance(calendar: &Calendar, start: i64, steps: usize) -> i64 {
    (0..steps).fold(start, |at, _| calendar.next_start(at).unwrap())
}

struct Naive<'a> {
    calendar: &'a Calendar,
    options: RetentionOptions,
    cohort_starts: Vec<i64>,
    data_end_ms: i64,
}

impl Naive<'_> {
    fn member(&self, events: &[RetentionEvent], cohort_start: i64) -> bool {
        let starts = events.iter().filter(|e| e.flags & START != 0);
        match self.options.cohort_type {
            CohortType::FirstTime => starts
                .map(|e| e.time_ms)
                .min()
                .is_some_and(|first| self.calendar.interval_start(first).unwrap() == cohort_start),
            CohortType::Recurring => starts
                .into_iter()
                .any(|e| self.calendar.interval_start(e.time_ms).unwrap() == cohort_start),
        }
    }

    fn returned(&self, events: &[RetentionEvent], period_start: i64, grid_end: i64) -> bool {
        events
            .iter()
            .filter(|e| e.flags & RETURN != 0 && e.time_ms < grid_end)
            .any(|e| {
                let interval = self.calendar.interval_start(e.time_ms).unwrap();
                match self.options.return_mode {
                    ReturnMode::On => interval == period_start,
                    ReturnMode::OnOrAfter => interval >= period_start,
                }
            })
    }

    fn table(&self, timelines: &[Vec<RetentionEvent>]) -> Projection {
        let periods = self.options.periods;
        let last = *self.cohort_starts.last().unwrap();
        let grid_end = advance(self.calendar, last, periods);
        let mut cohorts = Vec::new();
        let mut sums = vec![(0u64, 0u64, false, false); periods];
        for &start in &self.cohort_starts {
            let members: Vec<&Vec<RetentionEvent>> =
                timelines.iter().filter(|t| self.member(t, start)).collect();
            let size = members.len() as u64;
            let mut cells = Vec::new();
            for (period, sum) in sums.iter_mut().enumerate() {
                let period_start = advance(self.calendar, start, period);
                if period_start >= self.data_end_ms {
                    break;
                }
                let retained = if period == 0 {
                    size
                } else {
                    members
                        .iter()
                        .filter(|t| self.returned(t, period_start, grid_end))
                        .count() as u64
                };
                let partial = self.calendar.next_start(period_start).unwrap() > self.data_end_ms;
                cells.push((retained, partial));
                *sum = (sum.0 + retained, sum.1 + size, sum.2 || partial, true);
            }
            cohorts.push((start, size, cells));
        }
        let average = sums
            .iter()
            .take_while(|s| s.3)
            .map(|s| (s.0, s.2))
            .collect();
        (0, cohorts, average)
    }

    fn tables(&self, persons: &[Vec<RetentionEvent>]) -> Vec<Projection> {
        if !self.options.breakdown {
            return vec![self.table(persons)];
        }
        let values: BTreeSet<u32> = persons.iter().flatten().map(|e| e.breakdown).collect();
        let mut tables: Vec<Projection> = values
            .into_iter()
            .map(|value| {
                let only: Vec<Vec<RetentionEvent>> = persons
                    .iter()
                    .map(|p| p.iter().copied().filter(|e| e.breakdown == value).collect())
                    .collect();
                let mut table = self.table(&only);
                table.0 = value;
                table
            })
            .filter(|table| table.1.iter().any(|c| c.1 > 0))
            .collect();
        tables.sort_by_key(|t| (std::cmp::Reverse(t.1.iter().map(|c| c.1).sum::<u64>()), t.0));
        tables
    }
}

fn project(result: &RetentionResult) -> Vec<Projection> {
    result
        .tables
        .iter()
        .map(|table| {
            let cohorts = table
                .cohorts
                .iter()
                .map(|c| {
                    (
                        c.start_ms,
                        c.size,
                        c.cells
                            .iter()
                            .map(|cell| (cell.retained, cell.partial))
                            .collect(),
                    )
                })
                .collect();
            let average = table
                .average
                .iter()
                .map(|cell| (cell.retained, cell.partial))
                .collect();
            (table.breakdown, cohorts, average)
        })
        .collect()
}

fn any_options() -> impl Strategy<Value = RetentionOptions> {
    let cohort_type = prop_oneof![Just(CohortType::FirstTime), Just(CohortType::Recurring)];
    let return_mode = prop_oneof![Just(ReturnMode::On), Just(ReturnMode::OnOrAfter)];
    (cohort_type, return_mode, 1usize..7, any::<bool>()).prop_map(
        |(cohort_type, return_mode, periods, breakdown)| RetentionOptions {
            cohort_type,
            return_mode,
            periods,
            breakdown,
        },
    )
}

fn unit_ms(interval: Interval) -> i64 {
    match interval {
        Interval::Hour => HOUR_MS,
        Interval::Day => 24 * HOUR_MS,
        Interval::Week => 7 * 24 * HOUR_MS,
        Interval::Month => 30 * 24 * HOUR_MS,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn fast_retention_matches_naive_reference(
        zone in 0..ZONES.len(),
        interval in any_interval(),
        options in any_options(),
        cohorts in 1usize..7,
        first in 0i64..1000,
        data_end in 0i64..1000,
        persons in proptest::collection::vec(
            proptest::collection::vec((-300i64..1500, 0u8..4, 0u32..3), 0..10),
            0..8,
        ),
    ) {
        let calendar = Calendar::from_zone_name(interval, ZONES[zone], Weekday::Mon).unwrap();
        let unit = unit_ms(interval);
        // Event and data-end times in hundredths of an interval around the grid.
        let at = |hundredths: i64| BASE_MS + first * unit / 100 + hundredths * unit / 100;
        let cohort_grid = IntervalGrid::from_instant(&calendar, at(0), cohorts).unwrap();
        let model = RetentionModel::new(&calendar, &cohort_grid, options).unwrap();
        let timelines: Vec<Vec<RetentionEvent>> = persons
            .iter()
            .map(|events| {
                events
                    .iter()
                    .map(|&(t, flags, breakdown)| RetentionEvent { time_ms: at(t), flags, breakdown })
                    .collect()
            })
            .collect();
        let data_end_ms = at(data_end * (cohorts + options.periods) as i64 / 10);
        let slices: Vec<&[RetentionEvent]> = timelines.iter().map(Vec::as_slice).collect();
        let fast = model.run(&slices, 2).result(data_end_ms, usize::MAX);
        let naive = Naive {
            calendar: &calendar,
            options,
            cohort_starts: (0..cohort_grid.len()).map(|i| cohort_grid.start(i)).collect(),
            data_end_ms,
        };
        prop_assert_eq!(project(&fast), naive.tables(&timelines));
        for table in &fast.tables {
            for cohort in &table.cohorts {
                for cell in &cohort.cells {
                    prop_assert!(cell.rate.is_finite() && (0.0..=1.0).contains(&cell.rate));
                }
            }
        }
    }
}
