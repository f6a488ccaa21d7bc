//! The lifecycle report: per reported interval, how many persons had each status.

use super::{LifecycleModel, LifecyclePerson, mark_activity};
use crate::calendar::set_bits;

/// Persons per status in one interval (all positive; see the module docs for the sign).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifecycleCounts {
    /// New persons.
    pub new: u64,
    /// Returning persons.
    pub returning: u64,
    /// Resurrecting persons.
    pub resurrecting: u64,
    /// Dormant persons.
    pub dormant: u64,
    /// Churned persons.
    pub churned: u64,
}

impl LifecycleCounts {
    fn add(&mut self, other: &Self) {
        self.new += other.new;
        self.returning += other.returning;
        self.resurrecting += other.resurrecting;
        self.dormant += other.dormant;
        self.churned += other.churned;
    }
}

/// The counts of one reported interval with its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleIntervalCounts {
    /// The interval's start (UTC ms).
    pub start_ms: i64,
    /// The next interval's start (UTC ms).
    pub end_ms: i64,
    /// Persons per status.
    pub counts: LifecycleCounts,
}

/// Lifecycle counts of one partition of persons; partitions merge by addition.
#[derive(Debug, Clone)]
pub struct LifecycleAccumulator<'m> {
    model: &'m LifecycleModel,
    /// Counts per interval of the model's extended grid (look-back intervals stay zero).
    counts: Vec<LifecycleCounts>,
    persons_considered: u64,
    /// Reused activity bitset, one bit per grid interval.
    scratch: Vec<u64>,
}

impl<'m> LifecycleAccumulator<'m> {
    pub(super) fn new(model: &'m LifecycleModel) -> Self {
        Self {
            model,
            counts: vec![LifecycleCounts::default(); model.grid.len()],
            persons_considered: 0,
            scratch: Vec::new(),
        }
    }

    /// Adds one person's statuses in every reported interval.
    pub fn add_person(&mut self, person: &LifecyclePerson<'_>) {
        let grid = &self.model.grid;
        let look_back = self.model.look_back;
        let mut bits = std::mem::take(&mut self.scratch);
        mark_activity(grid, person.activity_ms, &mut bits);
        let first_seen = person
            .first_seen_ms
            .and_then(|instant| grid.index_of(instant));
        let mut previous: Option<usize> = None;
        for active in set_bits(&bits) {
            if let Some(before) = previous {
                self.count_inactive_run(before, active);
            }
            if active >= look_back {
                let counts = &mut self.counts[active];
                if first_seen == Some(active) {
                    counts.new += 1;
                } else if previous.is_some_and(|before| before + 1 == active) {
                    counts.returning += 1;
                } else {
                    counts.resurrecting += 1;
                }
            }
            previous = Some(active);
        }
        if let Some(last) = previous {
            self.count_inactive_run(last, grid.len());
        }
        self.scratch = bits;
        self.persons_considered += 1;
    }

    /// Counts the dormant and churned statuses of the inactive run strictly between the
    /// active intervals `active` and `next_active` (or the grid's end).
    fn count_inactive_run(&mut self, active: usize, next_active: usize) {
        let look_back = self.model.look_back;
        let dormant_at = active + 1;
        if dormant_at < next_active && dormant_at >= look_back {
            self.counts[dormant_at].dormant += 1;
        }
        let churned_at = active + self.model.churn_intervals;
        if churned_at < next_active && churned_at >= look_back {
            self.counts[churned_at].churned += 1;
        }
    }

    /// Adds another partition's counts (persons must not appear in both).
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            mine.add(theirs);
        }
        self.persons_considered += other.persons_considered;
    }

    /// Persons added so far.
    pub fn persons_considered(&self) -> u64 {
        self.persons_considered
    }

    /// The counts of every reported interval, oldest first.
    pub fn intervals(&self) -> Vec<LifecycleIntervalCounts> {
        let grid = &self.model.grid;
        (self.model.look_back..grid.len())
            .map(|index| LifecycleIntervalCounts {
                start_ms: grid.start(index),
                end_ms: grid.end(index),
                counts: self.counts[index],
            })
            .collect()
    }
}
