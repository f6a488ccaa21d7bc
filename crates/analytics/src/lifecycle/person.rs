//! One person's lifecycle: their status in each reported interval and their current stage.

use super::{
    LifecycleError, LifecycleModel, LifecyclePerson, LifecycleStage, LifecycleStatus, is_marked,
};

/// A person's status in one reported interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonInterval {
    /// The interval's start (UTC ms).
    pub start_ms: i64,
    /// The status (churned wins over dormant when K = 1).
    pub status: LifecycleStatus,
    /// Qualifying activities in the interval.
    pub event_count: u64,
}

/// A person's stage as of an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonStage {
    /// The stage.
    pub stage: LifecycleStage,
    /// Start of the interval in which the person entered the stage. For `Active`, when the
    /// active run reaches back to the model's first interval, this is the earliest start the
    /// model can see (the person has been active at least since then).
    pub since_ms: i64,
    /// The latest qualifying activity at or before the instant.
    pub last_active_ms: i64,
}

impl LifecycleModel {
    /// The person's status in every reported interval, oldest first.
    pub fn person_history(&self, person: &LifecyclePerson<'_>) -> Vec<PersonInterval> {
        let grid = &self.grid;
        let mut counts = vec![0u64; grid.len()];
        for &instant in person.activity_ms {
            if let Some(index) = grid.index_of(instant) {
                counts[index] += 1;
            }
        }
        let bits = bits_of(&counts);
        let first_seen = person
            .first_seen_ms
            .and_then(|instant| grid.index_of(instant));
        (self.look_back..grid.len())
            .map(|index| PersonInterval {
                start_ms: grid.start(index),
                status: self.status_at(&bits, first_seen, index),
                event_count: counts[index],
            })
            .collect()
    }

    /// The person's stage as of `as_of_ms`, which must fall in a reported interval; activity
    /// after `as_of_ms` is ignored. `None` for a person without qualifying activity up to the
    /// judged interval.
    pub fn person_stage(
        &self,
        person: &LifecyclePerson<'_>,
        as_of_ms: i64,
    ) -> Result<Option<PersonStage>, LifecycleError> {
        let grid = &self.grid;
        let current = grid
            .index_of(as_of_ms)
            .filter(|&index| index >= self.look_back)
            .ok_or_else(|| LifecycleError::InvalidInput {
                field: "as_of",
                reason: "must fall inside the reported intervals".to_owned(),
            })?;
        let mut counts = vec![0u64; grid.len()];
        let mut last_active_ms = None::<i64>;
        for &instant in person
            .activity_ms
            .iter()
            .filter(|&&instant| instant <= as_of_ms)
        {
            last_active_ms = Some(last_active_ms.map_or(instant, |last| last.max(instant)));
            if let Some(index) = grid.index_of(instant) {
                counts[index] += 1;
            }
        }
        let Some(last_active_ms) = last_active_ms else {
            return Ok(None);
        };
        let bits = bits_of(&counts);
        let judged = if is_marked(&bits, current) {
            current
        } else {
            current - 1
        };
        let first_seen = person
            .first_seen_ms
            .and_then(|instant| grid.index_of(instant));
        let stage = if is_marked(&bits, judged) {
            self.active_stage(&bits, first_seen, judged)
        } else {
            self.inactive_stage(&bits, judged, last_active_ms)?
        };
        Ok(stage.map(|(stage, since_ms)| PersonStage {
            stage,
            since_ms,
            last_active_ms,
        }))
    }

    /// Every person's stage as of `as_of_ms`, in input order, folding `threads` partitions
    /// side by side (for segment rules over all persons).
    pub fn stages(
        &self,
        persons: &[LifecyclePerson<'_>],
        as_of_ms: i64,
        threads: usize,
    ) -> Result<Vec<Option<PersonStage>>, LifecycleError> {
        crate::calendar::run_partitioned(
            persons,
            threads,
            Vec::new,
            |stages, person| {
                stages.push(self.person_stage(person, as_of_ms)?);
                Ok(())
            },
            |all, partition| all.extend(partition),
        )
    }

    fn active_stage(
        &self,
        bits: &[u64],
        first_seen: Option<usize>,
        judged: usize,
    ) -> Option<(LifecycleStage, i64)> {
        let grid = &self.grid;
        let stage = match self.status_at(bits, first_seen, judged) {
            LifecycleStatus::New => (LifecycleStage::New, grid.start(judged)),
            LifecycleStatus::Returning => {
                let mut run_start = judged;
                while run_start > 0 && is_marked(bits, run_start - 1) {
                    run_start -= 1;
                }
                (LifecycleStage::Active, grid.start(run_start + 1))
            }
            _ => (LifecycleStage::Returning, grid.start(judged)),
        };
        Some(stage)
    }

    fn inactive_stage(
        &self,
        bits: &[u64],
        judged: usize,
        last_active_ms: i64,
    ) -> Result<Option<(LifecycleStage, i64)>, LifecycleError> {
        let k = self.churn_intervals;
        let last_active_index = (0..judged).rev().find(|&index| is_marked(bits, index));
        if let Some(active) = last_active_index {
            let stage = if judged - active < k {
                (LifecycleStage::Dormant, self.grid.start(active + 1))
            } else {
                (LifecycleStage::Churned, self.grid.start(active + k))
            };
            return Ok(Some(stage));
        }
        if last_active_ms >= self.grid.start(0) {
            // Active only inside the judged interval's successors: nothing to judge yet.
            return Ok(None);
        }
        // Active only before the grid, which starts at least K intervals before `judged`.
        let mut since = self.calendar.interval_start(last_active_ms)?;
        for _ in 0..k {
            since = self.calendar.next_start(since)?;
        }
        Ok(Some((LifecycleStage::Churned, since)))
    }

    /// The person's status in grid interval `index` (one status; churned wins over dormant).
    pub(super) fn status_at(
        &self,
        bits: &[u64],
        first_seen: Option<usize>,
        index: usize,
    ) -> LifecycleStatus {
        let k = self.churn_intervals;
        let active = |at: usize| is_marked(bits, at);
        let previous_active = index > 0 && active(index - 1);
        if active(index) {
            if first_seen == Some(index) {
                LifecycleStatus::New
            } else if previous_active {
                LifecycleStatus::Returning
            } else {
                LifecycleStatus::Resurrecting
            }
        } else if index >= k && active(index - k) && (index - k + 1..index).all(|at| !active(at)) {
            LifecycleStatus::Churned
        } else if previous_active {
            LifecycleStatus::Dormant
        } else {
            LifecycleStatus::Inactive
        }
    }
}

fn bits_of(counts: &[u64]) -> Vec<u64> {
    let mut bits = vec![0u64; counts.len().div_ceil(64)];
    for (index, _) in counts.iter().enumerate().filter(|(_, count)| **count > 0) {
        bits[index / 64] |= 1 << (index % 64);
    }
    bits
}
