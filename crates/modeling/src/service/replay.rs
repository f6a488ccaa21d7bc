//! Replaying dead letters: the stored clean events go through the same resolution as the
//! event-store worker's batches, and the outcome is settled in one transaction.

use prost::Message as _;
use touchline_proto::governance::v1::CleanEvent;

use super::Modeling;
use crate::domain::MAX_REPLAY;
use crate::error::ModelingError;
use crate::resolve::ResolveError;
use crate::store::dead_letters;

/// What a replay did with one letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// Stored in the event store (or superseded there by a later record): the letter is gone.
    Stored,
    /// Still cannot be stored: the letter stays, with this reason.
    SetAside,
    /// Its person was erased: not stored, the letter is gone.
    Dropped,
}

/// One replayed letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayResult {
    /// The letter's clean-log sequence.
    pub sequence: i64,
    /// What happened.
    pub outcome: ReplayOutcome,
    /// The reason code, for [`ReplayOutcome::SetAside`].
    pub reason: String,
}

impl Modeling {
    /// Replays the tenant's letters with these sequences (its oldest when empty).
    pub async fn replay_dead_letters(
        &self,
        tenant: &str,
        sequences: &[i64],
    ) -> Result<Vec<ReplayResult>, ModelingError> {
        if sequences.len() > MAX_REPLAY {
            return Err(ModelingError::invalid(
                "sequences",
                "TOO_MANY",
                format!("at most {MAX_REPLAY} per call"),
            ));
        }
        if let Some(i) = sequences.iter().position(|s| *s < 0) {
            return Err(ModelingError::invalid(
                &format!("sequences[{i}]"),
                "OUT_OF_RANGE",
                "must not be negative",
            ));
        }
        let resolver = self.resolver.as_ref().ok_or(ModelingError::Upstream {
            service: "identity",
            code: tonic::Code::Unavailable,
        })?;
        let limit = i64::try_from(MAX_REPLAY).unwrap_or(i64::MAX);
        let letters = dead_letters::load(&self.pool, tenant, sequences, limit).await?;
        let mut results = Vec::with_capacity(letters.len());
        let mut events = Vec::with_capacity(letters.len());
        for letter in letters {
            match CleanEvent::decode(letter.payload.as_slice()) {
                Ok(event) => events.push(event),
                // Not ours to fix here: the letter stays as it is, and says so.
                Err(_) => results.push(ReplayResult {
                    sequence: letter.sequence,
                    outcome: ReplayOutcome::SetAside,
                    reason: letter.reason,
                }),
            }
        }
        let plan = resolver
            .plan(tenant, &events)
            .await
            .map_err(|err| match err {
                ResolveError::Upstream(status) => ModelingError::upstream("identity", &status),
                ResolveError::Protocol(_) => ModelingError::Upstream {
                    service: "identity",
                    code: tonic::Code::Internal,
                },
            })?;
        let mut gone: Vec<i64> = plan.rows.iter().map(|r| r.sequence).collect();
        gone.extend(&plan.suppressed);
        dead_letters::settle_replay(&self.pool, tenant, &plan.rows, &plan.dead, &gone).await?;
        results.extend(plan.rows.iter().map(|r| ReplayResult {
            sequence: r.sequence,
            outcome: ReplayOutcome::Stored,
            reason: String::new(),
        }));
        results.extend(plan.dead.iter().map(|d| ReplayResult {
            sequence: d.sequence,
            outcome: ReplayOutcome::SetAside,
            reason: d.reason.code().to_owned(),
        }));
        results.extend(plan.suppressed.iter().map(|s| ReplayResult {
            sequence: *s,
            outcome: ReplayOutcome::Dropped,
            reason: String::new(),
        }));
        results.sort_by_key(|r| r.sequence);
        Ok(results)
    }
}
