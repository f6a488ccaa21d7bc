//! Running a funnel over partitions of persons on scoped threads, one thread per partition.
//!
//! A partition is columnar: one slice of events for all its persons, the persons' ids, and
//! the offsets where each person's events start. Each thread owns an evaluator and an
//! accumulator; the accumulators are merged in partition order, so the result does not
//! depend on which thread finishes first.

use super::aggregate::FunnelAccumulator;
use super::definition::{FunnelError, FunnelEvent, ValidFunnel};
use super::evaluate::{FunnelEvaluator, PersonOutcome};

/// The persons of one partition.
#[derive(Clone, Copy, Debug)]
pub struct PersonBatch<'a> {
    /// One id per person.
    pub person_ids: &'a [u64],
    /// `offsets[i]..offsets[i + 1]` are person i's events; one more offset than persons.
    pub offsets: &'a [usize],
    /// Every person's events, each person's sorted by `(time, seq)`.
    pub events: &'a [FunnelEvent],
}

impl PersonBatch<'_> {
    fn check(&self, partition: usize) -> Result<(), FunnelError> {
        let malformed = |reason| FunnelError::MalformedPartition { partition, reason };
        if self.offsets.len() != self.person_ids.len() + 1 {
            return Err(malformed("offsets must have one more entry than persons"));
        }
        if self.offsets.windows(2).any(|w| w[1] < w[0]) {
            return Err(malformed("offsets must not decrease"));
        }
        if self
            .offsets
            .last()
            .is_some_and(|&end| end > self.events.len())
        {
            return Err(malformed("offsets point past the events"));
        }
        Ok(())
    }
}

/// Evaluates and counts every person of one partition.
pub fn run_partition(
    funnel: &ValidFunnel,
    batch: &PersonBatch<'_>,
    keep_persons: bool,
) -> Result<FunnelAccumulator, FunnelError> {
    let mut evaluator = FunnelEvaluator::new(funnel);
    let mut accumulator = FunnelAccumulator::new(funnel.step_count(), keep_persons);
    let mut outcome = PersonOutcome::default();
    for (person, bounds) in batch.person_ids.iter().zip(batch.offsets.windows(2)) {
        let events = batch.events.get(bounds[0]..bounds[1]).unwrap_or(&[]);
        evaluator.evaluate(events, &mut outcome)?;
        accumulator.add(*person, &outcome);
    }
    Ok(accumulator)
}

/// Evaluates every partition on its own thread and merges the results in partition order.
pub fn run_partitions(
    funnel: &ValidFunnel,
    partitions: &[PersonBatch<'_>],
    keep_persons: bool,
) -> Result<FunnelAccumulator, FunnelError> {
    for (index, batch) in partitions.iter().enumerate() {
        batch.check(index)?;
    }
    let results = crate::calendar::on_threads(partitions, |batch| {
        run_partition(funnel, batch, keep_persons)
    });
    let mut merged = FunnelAccumulator::new(funnel.step_count(), keep_persons);
    for result in results {
        merged.merge(result?);
    }
    Ok(merged)
}
