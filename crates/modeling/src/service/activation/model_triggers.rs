//! Triggers on model outputs: a person's lifecycle stage or RFM segment changed, or their
//! churn flag was raised or cleared. Each look computes every person's outputs under the
//! tenant's model settings, compares them with the ones last seen, and appends a trigger per
//! change in the transaction that saves the new states (a chunk of persons at a time). A
//! tenant's first look only records the states, so turning activation on does not announce
//! every person at once.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use touchline_analytics::lifecycle::LifecycleStage;
use uuid::Uuid;

use super::super::Modeling;
use super::super::outputs::Needs;
use crate::error::ModelingError;
use crate::store::activation::{self as store, ModelState, ModelTrigger};

/// Looks at least this often even when no event arrived: stages and flags change as time
/// passes (a customer turns dormant, an inactivity threshold is crossed).
const LOOK_AT_LEAST_EVERY: Duration = Duration::from_secs(60);
/// And at most this often while events keep arriving: a look computes every person's outputs
/// (churn, lifecycle, RFM) and shares the machine with segment membership, whose entries must
/// stay within a second of their events.
const LOOK_AT_MOST_EVERY: Duration = Duration::from_secs(5);
/// Persons whose changes are saved and announced per transaction.
const PUBLISH_CHUNK: usize = 1_000;

/// What the worker remembers of a tenant's model states between looks.
#[derive(Debug, Clone, Default)]
pub struct ModelMemory {
    revision: Option<i64>,
    at: Option<Instant>,
    /// The least spacing between looks the last one's cost asks for (see [`Self::paced`]).
    pace: Duration,
}

impl ModelMemory {
    /// Whether a look is due at the view revision `revision`: it moved and the last look is
    /// at least [`LOOK_AT_MOST_EVERY`] old, or the last look is [`LOOK_AT_LEAST_EVERY`] old.
    pub(in crate::service) fn due(&self, revision: i64) -> bool {
        let since = self.at.map(|at| at.elapsed());
        let spacing = LOOK_AT_MOST_EVERY.max(self.pace);
        let moved = self.revision != Some(revision) && since.is_none_or(|since| since >= spacing);
        moved || since.is_none_or(|since| since >= LOOK_AT_LEAST_EVERY)
    }

    /// Whether a look could be due at any revision: false while the last look is younger than
    /// the pace, so a caller need not bring the view forward just to learn it is not.
    pub(in crate::service) fn could_be_due(&self) -> bool {
        let spacing = LOOK_AT_MOST_EVERY.max(self.pace).min(LOOK_AT_LEAST_EVERY);
        self.at.is_none_or(|at| at.elapsed() >= spacing)
    }

    /// A look at `revision` was made now.
    pub(in crate::service) fn looked(&mut self, revision: i64) {
        self.revision = Some(revision);
        self.at = Some(Instant::now());
    }

    /// A look took `cost`: while events keep arriving, the next waits at least ten times as
    /// long, so keeping a large tenant's outputs fresh takes at most a tenth of a core.
    pub(in crate::service) fn paced(&mut self, cost: Duration) {
        self.pace = cost.saturating_mul(10);
    }
}

/// The contract's `LifecycleStage` number.
fn stage_number(stage: LifecycleStage) -> i16 {
    match stage {
        LifecycleStage::New => 1,
        LifecycleStage::Active => 2,
        LifecycleStage::Returning => 3,
        LifecycleStage::Dormant => 4,
        LifecycleStage::Churned => 5,
    }
}

/// The triggers that take a person from `before` to `after`.
pub fn changes(before: &ModelState, after: &ModelState) -> Vec<ModelTrigger> {
    let mut out = Vec::new();
    let trigger = |trigger_type, previous_value, current_value| ModelTrigger {
        trigger_type,
        person: after.person_id,
        previous_value,
        current_value,
        churn_score: after.churn_score,
    };
    if before.lifecycle_stage != after.lifecycle_stage && after.lifecycle_stage != 0 {
        out.push(trigger(
            store::LIFECYCLE_STAGE_CHANGED,
            before.lifecycle_stage,
            after.lifecycle_stage,
        ));
    }
    if before.rfm_segment != after.rfm_segment && after.rfm_segment != 0 {
        out.push(trigger(
            store::RFM_SEGMENT_CHANGED,
            before.rfm_segment,
            after.rfm_segment,
        ));
    }
    match (before.churned, after.churned) {
        (false, true) => out.push(trigger(store::CHURN_FLAG_RAISED, 0, 0)),
        (true, false) => out.push(trigger(store::CHURN_FLAG_CLEARED, 0, 0)),
        _ => {}
    }
    out
}

impl Modeling {
    /// Compares every person's model outputs with the ones last seen and publishes the
    /// changes as triggers; returns how many.
    pub(in crate::service) async fn refresh_model_triggers(
        &self,
        tenant: &str,
        memory: &mut ModelMemory,
    ) -> Result<usize, ModelingError> {
        if !memory.could_be_due() {
            return Ok(0);
        }
        let revision = self.journeys.current(tenant).await?.positions.revision;
        if !memory.due(revision) {
            return Ok(0);
        }
        let inputs = self.output_inputs(tenant, Needs::ALL).await?;
        let now = Utc::now();
        let now_ms = now.timestamp_millis();
        let (states, evaluated) = self
            .on_view(tenant, Vec::new(), move |view, run| {
                let outputs = inputs.outputs(view, run, now_ms)?;
                let mut states: BTreeMap<Uuid, ModelState> = BTreeMap::new();
                let blank = |person_id| ModelState {
                    person_id,
                    lifecycle_stage: 0,
                    rfm_segment: 0,
                    churned: false,
                    churn_score: None,
                };
                for (person, stage) in outputs.lifecycle.iter().flatten() {
                    states
                        .entry(*person)
                        .or_insert_with(|| blank(*person))
                        .lifecycle_stage = stage_number(*stage);
                }
                for (person, segment) in outputs.rfm.iter().flatten() {
                    states
                        .entry(*person)
                        .or_insert_with(|| blank(*person))
                        .rfm_segment = i16::from(*segment);
                }
                for row in inputs.churn.iter().flat_map(|t| t.rows.iter()) {
                    let state = states
                        .entry(row.person)
                        .or_insert_with(|| blank(row.person));
                    state.churned = row.churned;
                    state.churn_score = row.score;
                }
                Ok((states, view.positions.revision))
            })
            .await?;
        let opted_out = crate::store::opted_out_persons(&self.pool, tenant).await?;
        let published = self
            .publish_model_changes(tenant, &states, &opted_out, now)
            .await?;
        memory.looked(evaluated);
        if published > 0 {
            let (head, _) = store::trigger_head(&self.pool, tenant).await?;
            self.segment_signals.published(tenant, head);
        }
        Ok(published)
    }

    /// Saves the states that changed and appends their triggers, a chunk of persons per
    /// transaction: a large tenant's look can change tens of thousands of persons, and the
    /// trigger log's head, which segment rounds append to as well, is held only for a chunk.
    /// Each chunk compares against the states stored when it runs, under the tenant's lock,
    /// so replicas looking at once never announce a change twice.
    async fn publish_model_changes(
        &self,
        tenant: &str,
        states: &BTreeMap<Uuid, ModelState>,
        opted_out: &HashSet<Uuid>,
        now: chrono::DateTime<Utc>,
    ) -> Result<usize, ModelingError> {
        // The first look only records: the baseline is marked with its last chunk, so a
        // first look cut short announces nothing on the next one either.
        let announce = store::has_baseline(&mut *self.pool.acquire().await?, tenant).await?;
        let everyone: Vec<&ModelState> = states.values().collect();
        if everyone.is_empty() {
            if !announce {
                let mut tx = self.pool.begin().await?;
                store::mark_baseline(&mut tx, tenant).await?;
                tx.commit().await?;
            }
            return Ok(0);
        }
        let mut published = 0;
        let chunks = everyone.chunks(PUBLISH_CHUNK);
        let last = chunks.len().saturating_sub(1);
        for (index, chunk) in chunks.enumerate() {
            let mut tx = self.pool.begin().await?;
            if !store::try_lock_model_states(&mut tx, tenant).await? {
                // Another replica is publishing this tenant's changes right now.
                return Ok(published);
            }
            let persons: Vec<Uuid> = chunk.iter().map(|s| s.person_id).collect();
            let before: BTreeMap<Uuid, ModelState> = store::model_states(&mut tx, tenant, &persons)
                .await?
                .into_iter()
                .map(|s| (s.person_id, s))
                .collect();
            let mut changed = Vec::new();
            let mut triggers = Vec::new();
            for after in chunk {
                let person = after.person_id;
                let previous = before.get(&person).copied().unwrap_or(ModelState {
                    person_id: person,
                    lifecycle_stage: 0,
                    rfm_segment: 0,
                    churned: false,
                    churn_score: None,
                });
                if previous == **after {
                    continue;
                }
                changed.push(**after);
                if announce && !opted_out.contains(&person) {
                    triggers.extend(changes(&previous, after));
                }
            }
            store::save_model_states(&mut tx, tenant, &changed).await?;
            store::append_model_triggers(&mut tx, tenant, &triggers, now).await?;
            if index == last && !announce {
                store::mark_baseline(&mut tx, tenant).await?;
            }
            tx.commit().await?;
            published += triggers.len();
        }
        Ok(published)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_costly_look_spaces_the_next_while_events_keep_arriving() {
        let Some(six_seconds_ago) = Instant::now().checked_sub(Duration::from_secs(6)) else {
            return;
        };
        let mut memory = ModelMemory::default();
        assert!(memory.due(1), "a first look is due");
        memory.looked(1);
        memory.at = Some(six_seconds_ago);
        assert!(memory.due(2), "events moved and 5 s passed");
        assert!(!memory.due(1), "nothing moved and a minute has not passed");
        memory.paced(Duration::from_secs(1));
        assert!(
            !memory.due(2),
            "a look of 1 s waits 10 s while events arrive"
        );
        assert!(!memory.could_be_due(), "so the view need not be read");
        memory.paced(Duration::from_millis(100));
        assert!(memory.due(2), "a look of 100 ms keeps the 5 s pace");
        assert!(memory.could_be_due());
    }

    fn state(stage: i16, rfm: i16, churned: bool) -> ModelState {
        ModelState {
            person_id: Uuid::from_u128(1),
            lifecycle_stage: stage,
            rfm_segment: rfm,
            churned,
            churn_score: Some(0.4),
        }
    }

    #[test]
    fn each_output_that_moves_is_one_trigger_and_nothing_moves_nothing() {
        let kinds = |b, a| {
            changes(&b, &a)
                .iter()
                .map(|t| (t.trigger_type, t.previous_value, t.current_value))
                .collect::<Vec<_>>()
        };
        assert!(kinds(state(2, 3, false), state(2, 3, false)).is_empty());
        assert_eq!(
            kinds(state(4, 3, true), state(3, 5, false)),
            vec![
                (store::LIFECYCLE_STAGE_CHANGED, 4, 3),
                (store::RFM_SEGMENT_CHANGED, 3, 5),
                (store::CHURN_FLAG_CLEARED, 0, 0)
            ]
        );
        assert_eq!(
            kinds(state(2, 0, false), state(4, 0, true)),
            vec![
                (store::LIFECYCLE_STAGE_CHANGED, 2, 4),
                (store::CHURN_FLAG_RAISED, 0, 0)
            ]
        );
        // Losing an output (no longer scored) is not announced as a change to "none".
        assert!(kinds(state(2, 3, false), state(0, 0, false)).is_empty());
    }
}
