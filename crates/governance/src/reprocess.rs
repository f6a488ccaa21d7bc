//! Reprocessing jobs: clean the raw events received in a time range again
//! under a dictionary version and report how the outcome differs from the
//! first cleaning. In APPLY mode the difference is also published: an event
//! whose clean content changed is restated in the clean log, one that now
//! fails a rule is retracted and quarantined, and a quarantined one that now
//! passes is released. Duplicates stay duplicates.
//!
//! A job runs in the background of the server that accepted it, reading the
//! raw log from collection between the first and last raw sequence the
//! outcome ledger holds for the range, and records its progress after every
//! batch. A job whose server stops while it runs is reported FAILED once its
//! progress is [`ORPHANED_AFTER`] old; start a new one. Repeating a job is
//! harmless: each batch's changes are committed with the ledger they are
//! judged against, so a second APPLY finds them unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message as _;
use sqlx::PgPool;
use touchline_proto::common::v1::{PartitionCursor, TailSelector};
use touchline_proto::governance::v1::{
    CleanEvent, QuarantineReason, ReasonCount, ReprocessDiff, ReprocessSample,
};

use crate::domain::clean::from_timestamp_pb;
use crate::domain::diff::{Change, Side, compare};
use crate::sources::SourceRegistry;
use crate::store::corrections::{self, Correction};
use crate::store::publish::{Processed, Verdict, outcome};
use crate::store::quarantine::apply_replay;
use crate::store::reprocess::{self as store, Created, JobRow, Progress, mode};
use crate::store::tenant;
use crate::upstream::Collection;
use crate::worker::{GovernanceSettings, TenantState, TenantStates, process_raw};

/// Samples kept per job.
const MAX_SAMPLES: usize = 100;
/// Raw events per read.
const BATCH: i32 = 500;
/// Longest wait for the next raw batch before the job fails.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// A pending or running job whose server has not recorded progress for this
/// long is failed as orphaned: a live job records progress after every
/// batch, and waits at most [`READ_TIMEOUT`] for one.
pub const ORPHANED_AFTER: Duration = Duration::from_secs(3 * 60);

/// Job states, as stored.
pub mod state {
    /// Waiting.
    pub const PENDING: i16 = 1;
    /// Working.
    pub const RUNNING: i16 = 2;
    /// Done.
    pub const SUCCEEDED: i16 = 3;
    /// Stopped with an error.
    pub const FAILED: i16 = 4;
}

/// Why a job could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No such dictionary version.
    #[error("dictionary version {0} does not exist")]
    VersionNotFound(i64),
    /// APPLY publishes under the active version only: events cleaned from
    /// now on use it, and the past must not be made to disagree with them.
    #[error("dictionary version {asked} is not the active version {active}")]
    NotActiveVersion {
        /// The version asked for.
        asked: i64,
        /// The active version.
        active: i64,
    },
    /// Another APPLY job over an overlapping range is still running.
    #[error("reprocessing job {0} is applying an overlapping range")]
    ApplyRunning(String),
    /// The database failed.
    #[error("storage: {0}")]
    Store(#[from] sqlx::Error),
}

/// A job to start.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Received at or after.
    pub start: chrono::DateTime<chrono::Utc>,
    /// Received before.
    pub end: chrono::DateTime<chrono::Utc>,
    /// Source ids; empty for all.
    pub sources: Vec<String>,
    /// Dictionary version; 0 for the active one.
    pub dictionary_version: i64,
    /// Apply rather than dry run.
    pub apply: bool,
    /// Subject of the caller.
    pub creator: String,
    /// Idempotency key.
    pub request_id: Option<String>,
}

/// Starts and runs reprocessing jobs.
#[derive(Debug, Clone)]
pub struct Reprocessor {
    pool: PgPool,
    collection: Collection,
    sources: SourceRegistry,
    states: TenantStates,
    settings: GovernanceSettings,
}

impl Reprocessor {
    /// Jobs writing to `pool`, reading raw events and sources from
    /// `collection`.
    pub fn new(pool: PgPool, collection: Collection, settings: GovernanceSettings) -> Self {
        Self {
            pool,
            sources: SourceRegistry::new(collection.clone()),
            collection,
            states: TenantStates::default(),
            settings,
        }
    }

    /// Records a job and starts it in the background (or returns the job a
    /// call with the same request id started).
    pub async fn start(&self, tenant: &str, spec: JobSpec) -> Result<JobRow, StartError> {
        if spec.apply {
            let active = tenant::active_version(&self.pool, tenant).await?;
            if spec.dictionary_version != 0 && spec.dictionary_version != active {
                return Err(StartError::NotActiveVersion {
                    asked: spec.dictionary_version,
                    active,
                });
            }
        }
        let state = self
            .states
            .load(&self.pool, tenant, spec.dictionary_version, &self.settings)
            .await?
            .ok_or(StartError::VersionNotFound(spec.dictionary_version))?;
        let new = JobRow {
            job_id: uuid::Uuid::new_v4().to_string(),
            state: state::PENDING,
            mode: if spec.apply {
                mode::APPLY
            } else {
                mode::DRY_RUN
            },
            range_start: spec.start,
            range_end: spec.end,
            sources: spec.sources.clone(),
            dictionary_version: state.dictionary.as_ref().map_or(0, |d| d.version),
            total_events: 0,
            examined_events: 0,
            diff: None,
            error: String::new(),
            creator: spec.creator.clone(),
            created_at: chrono::Utc::now(),
            completed_at: None,
        };
        let created = store::create(
            &self.pool,
            tenant,
            &new,
            spec.request_id.as_deref(),
            ORPHANED_AFTER,
        )
        .await?;
        match created {
            Created::Started(job) => {
                let runner = self.clone();
                let tenant = tenant.to_owned();
                let started = job.clone();
                tokio::spawn(async move { runner.run(&tenant, &started, &state).await });
                Ok(job)
            }
            Created::Existing(job) => Ok(job),
            Created::Overlapping(job_id) => Err(StartError::ApplyRunning(job_id)),
        }
    }

    async fn run(&self, tenant: &str, job: &JobRow, state: &TenantState) {
        let mut diff = Diff::default();
        let mut progress = Progress {
            state: state::RUNNING,
            ..Progress::default()
        };
        let result = self
            .execute(tenant, job, state, &mut diff, &mut progress)
            .await;
        progress.diff = diff.to_pb().encode_to_vec();
        match result {
            Ok(()) => progress.state = state::SUCCEEDED,
            Err(error) => {
                tracing::warn!(tenant, job = %job.job_id, error = %error, "reprocessing job failed");
                progress.state = state::FAILED;
                progress.error = error;
            }
        }
        if let Err(e) = store::progress(&self.pool, tenant, &job.job_id, &progress).await {
            tracing::error!(tenant, job = %job.job_id, error = %touchline_error::cause_chain(&e), "recording the end of a reprocessing job failed");
        }
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one reprocessing job's loop: read the range, re-clean, compare, record progress"
    )]
    async fn execute(
        &self,
        tenant: &str,
        job: &JobRow,
        state: &TenantState,
        diff: &mut Diff,
        progress: &mut Progress,
    ) -> Result<(), String> {
        let store_error = |e: sqlx::Error| format!("storage: {}", touchline_error::cause_chain(&e));
        let Some((first, last, total)) = store::range(
            &self.pool,
            tenant,
            job.range_start,
            job.range_end,
            &job.sources,
        )
        .await
        .map_err(store_error)?
        else {
            return Ok(());
        };
        progress.total = total;
        store::progress(&self.pool, tenant, &job.job_id, progress)
            .await
            .map_err(store_error)?;
        let mut stream = self
            .collection
            .tail_raw(TailSelector {
                cursors: vec![PartitionCursor {
                    tenant: tenant.to_owned(),
                    after_sequence: first - 1,
                }],
                all_tenants: false,
                max_batch_size: BATCH,
            })
            .await
            .map_err(|s| format!("reading the raw log: {}", s.message()))?;
        loop {
            let batch = tokio::time::timeout(READ_TIMEOUT, stream.message())
                .await
                .map_err(|_| "the raw log stopped delivering".to_owned())?
                .map_err(|s| format!("reading the raw log: {}", s.message()))?
                .ok_or_else(|| "the raw log stream ended early".to_owned())?;
            let selected: Vec<_> = batch
                .events
                .iter()
                .filter(|raw| raw.sequence <= last)
                .filter(|raw| {
                    raw.received_at
                        .as_ref()
                        .and_then(from_timestamp_pb)
                        .is_some_and(|t| t >= job.range_start && t < job.range_end)
                })
                .filter(|raw| {
                    job.sources.is_empty()
                        || raw
                            .event
                            .as_ref()
                            .is_some_and(|e| job.sources.contains(&e.source.trim().to_owned()))
                })
                .collect();
            let sequences: Vec<i64> = selected.iter().map(|r| r.sequence).collect();
            let before = store::before(&self.pool, tenant, &sequences)
                .await
                .map_err(store_error)?;
            let mut changed: Vec<(Processed, Option<&store::Before>)> = Vec::new();
            for raw in selected {
                let after = process_raw(&self.sources, tenant, state, raw)
                    .await
                    .map_err(|s| format!("source registry: {}", s.message()))?;
                let after_side = match &after.verdict {
                    Verdict::Clean(c) => Side::Clean(Some(Box::new(c.event.clone()))),
                    Verdict::Quarantined(q) => Side::Quarantined(q.reason()),
                };
                let earlier = before.get(&raw.sequence);
                let change = diff.add(
                    raw.sequence,
                    &after.message_id,
                    earlier.map(side_of),
                    &after_side,
                );
                if job.mode == mode::APPLY && change != Change::Unchanged {
                    changed.push((after, earlier));
                }
                progress.examined += 1;
            }
            self.publish_changes(tenant, &changed)
                .await
                .map_err(store_error)?;
            progress.diff = diff.to_pb().encode_to_vec();
            store::progress(&self.pool, tenant, &job.job_id, progress)
                .await
                .map_err(store_error)?;
            if batch.events.last().is_some_and(|r| r.sequence >= last) {
                return Ok(());
            }
        }
    }
}

impl Reprocessor {
    /// Publishes the changed outcomes of one batch (none in a dry run): published events are
    /// restated or retracted, quarantined ones replayed. Duplicates (by
    /// message id or natural key) published nothing and stay as they are.
    async fn publish_changes(
        &self,
        tenant: &str,
        changed: &[(Processed, Option<&store::Before>)],
    ) -> Result<(), sqlx::Error> {
        let mut restated = Vec::new();
        let mut replayed = Vec::new();
        for (after, before) in changed {
            let Some(before) = before else { continue };
            match before.outcome {
                outcome::CLEAN | outcome::RESTATEMENT => restated.push(Correction {
                    processed: after,
                    message_id: before
                        .clean_message_id
                        .clone()
                        .unwrap_or_else(|| after.message_id.clone()),
                    outcome: before.outcome,
                }),
                outcome::QUARANTINED => replayed.push((after.clone(), false)),
                _ => {}
            }
        }
        corrections::apply(&self.pool, tenant, &restated).await?;
        if !replayed.is_empty() {
            apply_replay(&self.pool, tenant, &replayed).await?;
        }
        Ok(())
    }
}

/// The first cleaning's outcome as a side of the comparison.
fn side_of(before: &store::Before) -> Side {
    match before.outcome {
        outcome::QUARANTINED => Side::Quarantined(
            QuarantineReason::try_from(before.reason).unwrap_or(QuarantineReason::Unspecified),
        ),
        _ => Side::Clean(
            before
                .clean
                .as_deref()
                .and_then(|b| CleanEvent::decode(b).ok())
                .map(Box::new),
        ),
    }
}

/// The difference summed so far.
#[derive(Debug, Default)]
struct Diff {
    counts: BTreeMap<&'static str, i64>,
    before: BTreeMap<i32, i64>,
    after: BTreeMap<i32, i64>,
    samples: Vec<ReprocessSample>,
}

impl Diff {
    /// Counts one event's change and returns it.
    fn add(
        &mut self,
        raw_sequence: i64,
        message_id: &str,
        before: Option<Side>,
        after: &Side,
    ) -> Change {
        // An event the first cleaning has no record of (should not happen:
        // the range comes from the ledger) counts as newly seen.
        let before = before.unwrap_or(Side::Quarantined(QuarantineReason::Unspecified));
        if let Side::Quarantined(r) = &before
            && *r != QuarantineReason::Unspecified
        {
            *self.before.entry(*r as i32).or_default() += 1;
        }
        if let Side::Quarantined(r) = after {
            *self.after.entry(*r as i32).or_default() += 1;
        }
        let (change, fields) = compare(&before, after);
        let key = match change {
            Change::Unchanged => "unchanged",
            Change::NewlyClean => "newly_clean",
            Change::NewlyQuarantined => "newly_quarantined",
            Change::EventNameChanged => "event_name_changed",
            Change::TouchpointChanged => "touchpoint_changed",
            Change::PropertiesChanged => "properties_changed",
            Change::ReasonChanged => "reason_changed",
        };
        *self.counts.entry(key).or_default() += 1;
        if change != Change::Unchanged && self.samples.len() < MAX_SAMPLES {
            let name = |s: &Side| match s {
                Side::Clean(Some(e)) => e.event_name.clone(),
                _ => String::new(),
            };
            let reason = |s: &Side| match s {
                Side::Quarantined(r) => *r as i32,
                Side::Clean(_) => 0,
            };
            self.samples.push(ReprocessSample {
                raw_sequence,
                message_id: message_id.to_owned(),
                event_name_before: name(&before),
                event_name_after: name(after),
                reason_before: reason(&before),
                reason_after: reason(after),
                changed_fields: fields,
            });
        }
        change
    }

    fn to_pb(&self) -> ReprocessDiff {
        let count = |k: &str| self.counts.get(k).copied().unwrap_or(0);
        let reasons = |m: &BTreeMap<i32, i64>| {
            m.iter()
                .map(|(reason, count)| ReasonCount {
                    reason: *reason,
                    count: *count,
                })
                .collect()
        };
        ReprocessDiff {
            unchanged_count: count("unchanged"),
            newly_clean_count: count("newly_clean"),
            newly_quarantined_count: count("newly_quarantined"),
            event_name_changed_count: count("event_name_changed"),
            properties_changed_count: count("properties_changed"),
            touchpoint_changed_count: count("touchpoint_changed"),
            reason_changed_count: count("reason_changed"),
            quarantined_before: reasons(&self.before),
            quarantined_after: reasons(&self.after),
            samples: self.samples.clone(),
        }
    }
}
