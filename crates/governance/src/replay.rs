//! Replaying quarantined events: re-clean them under a dictionary version,
//! with the sources' current settings and any corrections, and release the
//! ones that now pass. Transport-free: the gRPC adapter parses the request
//! into a [`ReplayPlan`] and encodes the [`ReplayRun`].
//!
//! Exactly once: the store locks each quarantined row and releases it only
//! while it is still quarantined, so concurrent or repeated replays release
//! an event once.

use std::collections::HashMap;

use prost::Message as _;
use sqlx::PgPool;
use touchline_proto::collection::v1::RawEvent;
use touchline_proto::common::v1::Event;

use crate::domain::clean::{Quarantine, timestamp_pb};
use crate::sources::SourceRegistry;
use crate::store::publish::{Processed, Verdict};
use crate::store::quarantine::{
    self as store, Filter, QuarantinedRow, ReplayDone, apply_replay, clean_message_ids,
};
use crate::worker::{GovernanceSettings, TenantStates, process_raw};

/// Which quarantined events to replay.
#[derive(Debug, Clone)]
pub enum Selection {
    /// These raw sequences.
    Names(Vec<i64>),
    /// Quarantined events matching `filter`, after raw sequence `after`, at
    /// most `max`.
    Filter {
        /// Which events.
        filter: Filter,
        /// Continue after this raw sequence.
        after: i64,
        /// Most events to handle.
        max: i64,
    },
}

/// A parsed replay request.
#[derive(Debug, Clone)]
pub struct ReplayPlan {
    /// The events.
    pub selection: Selection,
    /// Replacement events by raw sequence.
    pub corrections: HashMap<i64, Event>,
    /// Dictionary version; 0 for the active one.
    pub dictionary_version: i64,
    /// Only report.
    pub validate_only: bool,
}

/// What replaying one event did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Released at this clean sequence (0 in a dry run).
    Released(i64),
    /// Still failing.
    StillQuarantined(Quarantine),
    /// Duplicates a clean event.
    Duplicate,
    /// Not a quarantined event of the tenant (or already released).
    NotFound,
}

/// The result of a replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayRun {
    /// Per selected event, by raw sequence, in selection order.
    pub outcomes: Vec<(i64, Outcome)>,
    /// With a filter: the raw sequence to continue after, when more may
    /// be left.
    pub continue_after: Option<i64>,
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No such dictionary version.
    #[error("dictionary version {0} does not exist")]
    VersionNotFound(i64),
    /// A correction changes the message id of its event.
    #[error("the correction of quarantined event {0} changes its message id")]
    MessageIdChanged(i64),
    /// The source registry failed.
    #[error("source registry: {0}")]
    Upstream(#[from] tonic::Status),
    /// The database failed.
    #[error("storage: {0}")]
    Store(#[from] sqlx::Error),
}

/// Replays quarantined events of any tenant.
#[derive(Debug, Clone)]
pub struct Replayer {
    pool: PgPool,
    sources: SourceRegistry,
    states: TenantStates,
    settings: GovernanceSettings,
}

impl Replayer {
    /// A replayer writing to `pool` and reading sources through `sources`.
    pub fn new(pool: PgPool, sources: SourceRegistry, settings: GovernanceSettings) -> Self {
        Self {
            pool,
            sources,
            states: TenantStates::default(),
            settings,
        }
    }

    /// Runs `plan` for `tenant`.
    #[expect(
        clippy::too_many_lines,
        reason = "one replay's loop: re-clean each quarantined event, publish, record the attempt"
    )]
    pub async fn replay(&self, tenant: &str, plan: &ReplayPlan) -> Result<ReplayRun, ReplayError> {
        let state = self
            .states
            .load(&self.pool, tenant, plan.dictionary_version, &self.settings)
            .await?
            .ok_or(ReplayError::VersionNotFound(plan.dictionary_version))?;
        let (rows, order, continue_after) = self.select(tenant, &plan.selection).await?;
        let mut revisions: HashMap<String, Option<i64>> = HashMap::new();
        let mut processed: Vec<(Processed, bool)> = Vec::with_capacity(rows.len());
        for row in &rows {
            let original = row
                .raw_event
                .as_deref()
                .and_then(|b| Event::decode(b).ok())
                .unwrap_or_default();
            let (event, corrected) = match plan.corrections.get(&row.sequence) {
                Some(fixed) if fixed.message_id != original.message_id => {
                    return Err(ReplayError::MessageIdChanged(row.sequence));
                }
                Some(fixed) => (fixed.clone(), true),
                None => (original, false),
            };
            // A replay follows a fix: use the source's current revision.
            let source = event.source.trim().to_owned();
            let current = match revisions.get(&source) {
                Some(r) => *r,
                None => {
                    let r = self
                        .sources
                        .current(tenant, &source)
                        .await?
                        .map(|(_, rev)| rev);
                    revisions.insert(source.clone(), r);
                    r
                }
            };
            let raw = RawEvent {
                sequence: row.sequence,
                event: Some(event),
                received_at: row.received_at.map(timestamp_pb),
                source_revision: current.unwrap_or(row.source_revision),
                ..Default::default()
            };
            let p = process_raw(&self.sources, tenant, &state, &raw).await?;
            processed.push((p, corrected));
        }
        let done: Vec<Outcome> = if plan.validate_only {
            self.dry_run(tenant, &processed).await?
        } else {
            apply_replay(&self.pool, tenant, &processed)
                .await?
                .into_iter()
                .zip(&processed)
                .map(|(d, (p, _))| match d {
                    ReplayDone::Released(s) => Outcome::Released(s),
                    ReplayDone::StillQuarantined => match &p.verdict {
                        Verdict::Quarantined(q) => Outcome::StillQuarantined(q.clone()),
                        Verdict::Clean(_) => Outcome::Duplicate,
                    },
                    ReplayDone::Duplicate => Outcome::Duplicate,
                    ReplayDone::Gone => Outcome::NotFound,
                })
                .collect()
        };
        let mut by_sequence: HashMap<i64, Outcome> = processed
            .iter()
            .map(|(p, _)| p.raw_sequence)
            .zip(done)
            .collect();
        let outcomes = order
            .into_iter()
            .map(|s| (s, by_sequence.remove(&s).unwrap_or(Outcome::NotFound)))
            .collect();
        if !plan.validate_only {
            let released = rows.len();
            tracing::info!(tenant, examined = released, "quarantined events replayed");
        }
        Ok(ReplayRun {
            outcomes,
            continue_after,
        })
    }

    /// The quarantined rows selected, the order to report them in, and
    /// where a filtered selection continues.
    async fn select(
        &self,
        tenant: &str,
        selection: &Selection,
    ) -> Result<(Vec<QuarantinedRow>, Vec<i64>, Option<i64>), sqlx::Error> {
        match selection {
            Selection::Names(sequences) => {
                let filter = Filter {
                    sequences: sequences.clone(),
                    ..Filter::default()
                };
                let limit = i64::try_from(sequences.len()).unwrap_or(i64::MAX);
                let (rows, _) = store::list(&self.pool, tenant, &filter, 0, limit).await?;
                Ok((rows, sequences.clone(), None))
            }
            Selection::Filter { filter, after, max } => {
                let filter = Filter {
                    states: vec![1],
                    sequences: Vec::new(),
                    ..filter.clone()
                };
                let (mut rows, _) =
                    store::list(&self.pool, tenant, &filter, *after, max + 1).await?;
                let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > *max;
                rows.truncate(usize::try_from(*max).unwrap_or(0));
                let order = rows.iter().map(|r| r.sequence).collect();
                let next = if more {
                    rows.last().map(|r| r.sequence)
                } else {
                    None
                };
                Ok((rows, order, next))
            }
        }
    }

    async fn dry_run(
        &self,
        tenant: &str,
        processed: &[(Processed, bool)],
    ) -> Result<Vec<Outcome>, sqlx::Error> {
        let ids: Vec<String> = processed
            .iter()
            .filter(|(p, _)| matches!(p.verdict, Verdict::Clean(_)))
            .map(|(p, _)| p.message_id.clone())
            .collect();
        let clean = clean_message_ids(&self.pool, tenant, &ids).await?;
        Ok(processed
            .iter()
            .map(|(p, _)| match &p.verdict {
                Verdict::Quarantined(q) => Outcome::StillQuarantined(q.clone()),
                Verdict::Clean(_) if clean.contains(&p.message_id) => Outcome::Duplicate,
                Verdict::Clean(_) => Outcome::Released(0),
            })
            .collect())
    }
}
