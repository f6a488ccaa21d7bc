//! Folding persons into cohort sizes and retained counts, per breakdown value.

use std::collections::HashMap;

use super::{CohortType, RETURN, RetentionEvent, RetentionModel, ReturnMode, START};
use crate::calendar::{Location, set_bits};

/// Where an event falls: before the grid, or in grid interval `slot − 1`.
const BEFORE_GRID: u32 = 0;

/// One event reduced to what the fold needs, sortable by breakdown value then interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Bucketed {
    breakdown: u32,
    slot: u32,
    flags: u8,
}

/// The counts of one breakdown value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TableCounts {
    pub(super) breakdown: u32,
    /// Persons per cohort interval.
    pub(super) sizes: Vec<u64>,
    /// Retained persons, `cohorts × periods`, row-major; period 0 is filled at the end.
    pub(super) retained: Vec<u64>,
}

/// Retention counts of one partition of persons; partitions merge by addition.
#[derive(Debug, Clone)]
pub struct RetentionAccumulator<'m> {
    pub(super) model: &'m RetentionModel,
    pub(super) tables: Vec<TableCounts>,
    table_of: HashMap<u32, usize>,
    persons_considered: u64,
    /// Reused per-person buffer (breakdown path).
    scratch: Vec<Bucketed>,
    /// Reused per-person bitsets of start and return intervals (path without breakdown).
    start_bits: Vec<u64>,
    return_bits: Vec<u64>,
}

impl<'m> RetentionAccumulator<'m> {
    pub(super) fn new(model: &'m RetentionModel) -> Self {
        let mut accumulator = Self {
            model,
            tables: Vec::new(),
            table_of: HashMap::new(),
            persons_considered: 0,
            scratch: Vec::new(),
            start_bits: Vec::new(),
            return_bits: Vec::new(),
        };
        if !model.options.breakdown {
            // Without a breakdown there is always exactly one table, even with no persons.
            accumulator.table_index(0);
        }
        accumulator
    }

    /// Persons added so far.
    pub fn persons_considered(&self) -> u64 {
        self.persons_considered
    }

    /// Adds one person's timeline (any order).
    pub fn add_person(&mut self, events: &[RetentionEvent]) {
        self.persons_considered += 1;
        if self.model.options.breakdown {
            self.add_split_person(events);
        } else {
            self.add_unsplit_person(events);
        }
    }

    /// Without a breakdown: one bitset of start intervals and one of return intervals, no
    /// sorting (the common, fast case).
    fn add_unsplit_person(&mut self, events: &[RetentionEvent]) {
        let grid = &self.model.grid;
        let words = grid.len().div_ceil(64);
        let mut starts = std::mem::take(&mut self.start_bits);
        let mut returns = std::mem::take(&mut self.return_bits);
        starts.clear();
        starts.resize(words, 0);
        returns.clear();
        returns.resize(words, 0);
        let mut started_before = false;
        for event in events {
            match grid.locate(event.time_ms) {
                Location::Before => started_before |= event.flags & START != 0,
                Location::Inside(index) => {
                    let bit = 1u64 << (index % 64);
                    if event.flags & START != 0 {
                        starts[index / 64] |= bit;
                    }
                    if event.flags & RETURN != 0 {
                        returns[index / 64] |= bit;
                    }
                }
                Location::After => {}
            }
        }
        let cohorts = self.model.cohorts;
        {
            let mut cohort_starts = set_bits(&starts).take_while(|&index| index < cohorts);
            match self.model.options.cohort_type {
                CohortType::FirstTime => {
                    if let Some(cohort) = cohort_starts.next().filter(|_| !started_before) {
                        self.add_bit_cohort(cohort, &returns);
                    }
                }
                CohortType::Recurring => {
                    for cohort in cohort_starts {
                        self.add_bit_cohort(cohort, &returns);
                    }
                }
            }
        }
        self.start_bits = starts;
        self.return_bits = returns;
    }

    /// Counts one person in cohort `cohort` of the single table, given their return bitset.
    fn add_bit_cohort(&mut self, cohort: usize, returns: &[u64]) {
        let periods = self.model.options.periods;
        let counts = &mut self.tables[0];
        counts.sizes[cohort] += 1;
        let row = &mut counts.retained[cohort * periods..(cohort + 1) * periods];
        let later = set_bits(returns).skip_while(|&interval| interval <= cohort);
        match self.model.options.return_mode {
            ReturnMode::On => {
                for interval in later.take_while(|&interval| interval < cohort + periods) {
                    row[interval - cohort] += 1;
                }
            }
            ReturnMode::OnOrAfter => {
                if let Some(last) = later.last() {
                    let reached = (last - cohort).min(periods - 1);
                    for cell in &mut row[1..=reached] {
                        *cell += 1;
                    }
                }
            }
        }
    }

    /// With a breakdown: events sorted by value then interval, one group per value.
    fn add_split_person(&mut self, events: &[RetentionEvent]) {
        let grid = &self.model.grid;
        let with_breakdown = self.model.options.breakdown;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        for event in events
            .iter()
            .filter(|event| event.flags & (START | RETURN) != 0)
        {
            let slot = match grid.locate(event.time_ms) {
                Location::Before => BEFORE_GRID,
                Location::Inside(index) => index as u32 + 1,
                Location::After => continue,
            };
            let breakdown = if with_breakdown { event.breakdown } else { 0 };
            scratch.push(Bucketed {
                breakdown,
                slot,
                flags: event.flags,
            });
        }
        scratch.sort_unstable();
        for group in scratch.chunk_by(|a, b| a.breakdown == b.breakdown) {
            self.add_group(group);
        }
        self.scratch = scratch;
    }

    /// Adds the events of one breakdown value (sorted by slot).
    fn add_group(&mut self, group: &[Bucketed]) {
        let cohorts = self.model.cohorts;
        let in_cohorts = |slot: u32| slot != BEFORE_GRID && (slot as usize) <= cohorts;
        let is_start = |event: &&Bucketed| event.flags & START != 0;
        let table = if self.model.options.breakdown {
            self.table_index(group[0].breakdown)
        } else {
            0
        };
        match self.model.options.cohort_type {
            CohortType::FirstTime => {
                if let Some(first) = group.iter().find(is_start).filter(|e| in_cohorts(e.slot)) {
                    self.add_cohort(table, first.slot as usize - 1, group);
                }
            }
            CohortType::Recurring => {
                let mut previous = None;
                for start in group.iter().filter(is_start).filter(|e| in_cohorts(e.slot)) {
                    if previous != Some(start.slot) {
                        self.add_cohort(table, start.slot as usize - 1, group);
                        previous = Some(start.slot);
                    }
                }
            }
        }
    }

    /// Counts one person in cohort `cohort` and in the periods they returned.
    fn add_cohort(&mut self, table: usize, cohort: usize, group: &[Bucketed]) {
        let periods = self.model.options.periods;
        let counts = &mut self.tables[table];
        counts.sizes[cohort] += 1;
        let row = &mut counts.retained[cohort * periods..(cohort + 1) * periods];
        let returns = group
            .iter()
            .filter(|event| event.flags & RETURN != 0 && event.slot != BEFORE_GRID)
            .map(|event| event.slot as usize - 1);
        match self.model.options.return_mode {
            ReturnMode::On => {
                let mut previous = None;
                for interval in returns.filter(|&interval| interval > cohort) {
                    let period = interval - cohort;
                    if period < periods && previous != Some(interval) {
                        row[period] += 1;
                    }
                    previous = Some(interval);
                }
            }
            ReturnMode::OnOrAfter => {
                if let Some(last) = returns.max().filter(|&last| last > cohort) {
                    let reached = (last - cohort).min(periods - 1);
                    for cell in &mut row[1..=reached] {
                        *cell += 1;
                    }
                }
            }
        }
    }

    fn table_index(&mut self, breakdown: u32) -> usize {
        if let Some(&index) = self.table_of.get(&breakdown) {
            return index;
        }
        let cohorts = self.model.cohorts;
        let periods = self.model.options.periods;
        self.tables.push(TableCounts {
            breakdown,
            sizes: vec![0; cohorts],
            retained: vec![0; cohorts * periods],
        });
        let index = self.tables.len() - 1;
        self.table_of.insert(breakdown, index);
        index
    }

    /// Adds another partition's counts (persons must not appear in both).
    pub fn merge(&mut self, other: &Self) {
        for theirs in &other.tables {
            let index = self.table_index(theirs.breakdown);
            let mine = &mut self.tables[index];
            for (a, b) in mine.sizes.iter_mut().zip(&theirs.sizes) {
                *a += b;
            }
            for (a, b) in mine.retained.iter_mut().zip(&theirs.retained) {
                *a += b;
            }
        }
        self.persons_considered += other.persons_considered;
    }
}
