//! Turning retention counts into tables of cells with rates, partial flags and averages.

use super::RetentionAccumulator;
use super::accumulate::TableCounts;
use crate::calendar::IntervalGrid;

/// One period of a cohort (or of the average).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetentionCell {
    /// The period k, 0-based.
    pub period: usize,
    /// Persons retained.
    pub retained: u64,
    /// `retained / size`, 0 to 1; 0 for an empty cohort.
    pub rate: f64,
    /// Whether the period's interval has not ended by the data end.
    pub partial: bool,
}

/// One cohort's row.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionCohort {
    /// The cohort interval's start (UTC ms).
    pub start_ms: i64,
    /// Persons in the cohort.
    pub size: u64,
    /// Period 0 to the last period that has begun.
    pub cells: Vec<RetentionCell>,
}

/// The cohorts of one breakdown value.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionTable {
    /// The breakdown value's code (0 without a breakdown).
    pub breakdown: u32,
    /// The cohorts, oldest first.
    pub cohorts: Vec<RetentionCohort>,
    /// Per period, over the cohorts that reached it, weighted by cohort size.
    pub average: Vec<RetentionCell>,
}

/// The retention tables.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionResult {
    /// Largest total cohort size first, then by breakdown code.
    pub tables: Vec<RetentionTable>,
    /// Breakdown values left out by the limit.
    pub omitted_breakdown_values: usize,
    /// Persons considered.
    pub persons_considered: u64,
}

impl RetentionAccumulator<'_> {
    /// The tables as of `data_end_ms` (periods starting at or after it are left out), at most
    /// `limit` of them.
    pub fn result(&self, data_end_ms: i64, limit: usize) -> RetentionResult {
        // With a breakdown, a value nobody was cohorted with (returns only) is no table.
        let with_breakdown = self.model.options.breakdown;
        let mut order: Vec<&TableCounts> = self
            .tables
            .iter()
            .filter(|table| !with_breakdown || table.sizes.iter().any(|&size| size > 0))
            .collect();
        order.sort_by_key(|table| {
            let total: u64 = table.sizes.iter().sum();
            (std::cmp::Reverse(total), table.breakdown)
        });
        let omitted_breakdown_values = order.len().saturating_sub(limit);
        let tables = order
            .into_iter()
            .take(limit)
            .map(|counts| self.table(counts, data_end_ms))
            .collect();
        RetentionResult {
            tables,
            omitted_breakdown_values,
            persons_considered: self.persons_considered(),
        }
    }

    fn table(&self, counts: &TableCounts, data_end_ms: i64) -> RetentionTable {
        let grid = &self.model.grid;
        let periods = self.model.options.periods;
        let cohorts: Vec<RetentionCohort> = counts
            .sizes
            .iter()
            .enumerate()
            .map(|(cohort, &size)| {
                let row = &counts.retained[cohort * periods..(cohort + 1) * periods];
                let cells = (0..periods)
                    .take_while(|&period| grid.start(cohort + period) < data_end_ms)
                    .map(|period| {
                        let retained = if period == 0 { size } else { row[period] };
                        cell(grid, cohort, period, retained, size, data_end_ms)
                    })
                    .collect();
                RetentionCohort {
                    start_ms: grid.start(cohort),
                    size,
                    cells,
                }
            })
            .collect();
        let average = average(&cohorts, periods);
        RetentionTable {
            breakdown: counts.breakdown,
            cohorts,
            average,
        }
    }
}

fn cell(
    grid: &IntervalGrid,
    cohort: usize,
    period: usize,
    retained: u64,
    size: u64,
    data_end_ms: i64,
) -> RetentionCell {
    RetentionCell {
        period,
        retained,
        rate: rate(retained, size),
        partial: grid.end(cohort + period) > data_end_ms,
    }
}

fn rate(retained: u64, size: u64) -> f64 {
    if size == 0 {
        0.0
    } else {
        retained as f64 / size as f64
    }
}

/// Per period: Σ retained / Σ size over the cohorts that have the period.
fn average(cohorts: &[RetentionCohort], periods: usize) -> Vec<RetentionCell> {
    (0..periods)
        .map_while(|period| {
            let reached: Vec<(&RetentionCohort, &RetentionCell)> = cohorts
                .iter()
                .filter_map(|cohort| cohort.cells.get(period).map(|cell| (cohort, cell)))
                .collect();
            if reached.is_empty() {
                return None;
            }
            let retained: u64 = reached.iter().map(|(_, cell)| cell.retained).sum();
            let size: u64 = reached.iter().map(|(cohort, _)| cohort.size).sum();
            Some(RetentionCell {
                period,
                retained,
                rate: rate(retained, size),
                partial: reached.iter().any(|(_, cell)| cell.partial),
            })
        })
        .collect()
}
