//! The event-store worker: tails governance's clean log, resolves each
//! event's identifiers to a person through the identity service, and stores
//! the events with the consumed cursor in one transaction.

use futures::{FutureExt as _, TryStreamExt as _};
use sqlx::PgPool;
use touchline_proto::governance::v1::TailCleanEventsResponse;
use touchline_runtime::Shutdown;

use crate::resolve::{ResolveError, Resolver};
use crate::store::dead_letters::DeadLetter;
use crate::store::{self, NewStoredEvent};
use crate::turns::TenantTurns;
use crate::upstream::{Governance, Identity};

/// A batch of the clean log with its persons, ready to store.
#[derive(Debug)]
struct ResolvedBatch {
    tenant: String,
    rows: Vec<NewStoredEvent>,
    /// Events set aside, stored with the batch's cursor.
    dead: Vec<DeadLetter>,
    /// The last sequence of the batch, stored events or not.
    last: i64,
}

/// Clean-log batches being resolved at once.
const RESOLVES_IN_FLIGHT: usize = 4;
/// Most events one tail response carries: a worker that fell behind reads thousands at once.
const TAIL_BATCH: i32 = 2_000;
/// Most events of one tenant resolved and stored together: batches already waiting are
/// merged up to this many, so a worker that fell behind catches up with a few large
/// transactions (identity is still called with at most 1,000 identifiers at a time) instead
/// of many small ones, while one that keeps up stores each batch as it comes.
const MOST_EVENTS_MERGED: usize = 2_000;

/// Why a worker session ended.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// An upstream call failed.
    #[error("upstream call: {0}")]
    Upstream(#[from] tonic::Status),
    /// Resolving persons failed.
    #[error("resolving persons: {0}")]
    Resolve(#[from] ResolveError),
    /// Committing failed.
    #[error("storing events: {0}")]
    Store(#[from] sqlx::Error),
    /// An upstream answer made no sense.
    #[error("upstream answer: {0}")]
    Protocol(String),
}

/// Fills the unified event store from the clean log, for every tenant.
#[derive(Debug, Clone)]
pub struct EventStoreWorker {
    pool: PgPool,
    governance: Governance,
    resolver: Resolver,
    status: touchline_pipeline::status::PipelineStatus,
}

impl EventStoreWorker {
    /// A worker writing to `pool`.
    pub fn new(pool: PgPool, governance: Governance, identity: Identity) -> Self {
        Self {
            pool,
            governance,
            resolver: Resolver::new(identity),
            status: touchline_pipeline::status::PipelineStatus::new(),
        }
    }

    /// Reports positions and errors into `status` (the process's shared one).
    pub fn with_status(mut self, status: touchline_pipeline::status::PipelineStatus) -> Self {
        self.status = status;
        self
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        touchline_pipeline::consumer::run(
            crate::CLEAN_LOG_CONSUMER,
            shutdown,
            &self.status,
            || self.session(),
        )
        .await;
    }

    async fn session(&self) -> Result<(), WorkerError> {
        let cursors = store::load_cursors(&self.pool, crate::CLEAN_LOG_CONSUMER).await?;
        let stream = self
            .governance
            .tail(touchline_pipeline::tail::resume_all_tenants(
                cursors, TAIL_BATCH,
            ))
            .await?;
        // Resolution (a call to identity) is most of a batch's time and is bound by round trips
        // and row locks, not by one core: batches of different tenants are resolved at once,
        // and storing overlaps them. One tenant's batches are resolved one after another, in
        // log order: identity's answer depends on what it saw first (a recycled number, a
        // value shared past its limit), so the same events must reach it in the same order to
        // give the same persons. Batches are stored one after another in log order, each with
        // its cursor. An erasure applied between a batch's resolution and its storage is
        // caught at storage (see `store::commit_batch`).
        let (ready, mut to_store) = tokio::sync::mpsc::channel::<ResolvedBatch>(1);
        let turns = TenantTurns::default();
        let resolve = async move {
            let mut resolved = Box::pin(merged(stream))
                .map_err(WorkerError::from)
                .map_ok(|batch| {
                    let turn = turns.take(&batch.tenant);
                    async move {
                        turn.wait().await;
                        let processed = self.process(batch).await;
                        turn.done();
                        processed
                    }
                })
                .try_buffered(RESOLVES_IN_FLIGHT);
            while let Some(batch) = resolved.try_next().await? {
                let Some(batch) = batch else { continue };
                if ready.send(batch).await.is_err() {
                    // The store side ended, with the error the session returns.
                    break;
                }
            }
            Ok::<(), WorkerError>(())
        };
        let store = async {
            while let Some(batch) = to_store.recv().await {
                if !batch.dead.is_empty() {
                    tracing::warn!(tenant = %batch.tenant, set_aside = batch.dead.len(), "clean events set aside as dead letters");
                    let metrics = touchline_telemetry::metrics::pipeline();
                    for letter in &batch.dead {
                        metrics.count_dead_letters(letter.reason.code(), 1);
                    }
                }
                store::commit_batch_setting_aside(
                    &self.pool,
                    &batch.tenant,
                    &batch.rows,
                    &batch.dead,
                    crate::CLEAN_LOG_CONSUMER,
                    batch.last,
                )
                .await?;
                self.status
                    .committed(crate::CLEAN_LOG_CONSUMER, &batch.tenant, batch.last);
                self.status.recovered(crate::CLEAN_LOG_CONSUMER);
            }
            Ok::<(), WorkerError>(())
        };
        tokio::try_join!(resolve, store)?;
        Ok(())
    }

    #[tracing::instrument(name = "modeling.store_batch", skip_all, fields(service = "modeling", tenant = %batch.tenant, events = batch.events.len(), lag))]
    async fn process(
        &self,
        batch: TailCleanEventsResponse,
    ) -> Result<Option<ResolvedBatch>, WorkerError> {
        let Some(last) = batch.events.last().map(|e| e.sequence) else {
            return Ok(None);
        };
        tracing::Span::current().record("lag", batch.head_sequence - last);
        self.status.saw_head(
            crate::CLEAN_LOG_CONSUMER,
            &batch.tenant,
            batch.head_sequence,
        );
        let plan = self.resolver.plan(&batch.tenant, &batch.events).await?;
        if !plan.suppressed.is_empty() {
            tracing::info!(
                suppressed = plan.suppressed.len(),
                "events of erased persons not stored (their identifiers are suppressed)"
            );
        }
        Ok(Some(ResolvedBatch {
            tenant: batch.tenant,
            rows: plan.rows,
            dead: plan.dead,
            last,
        }))
    }
}

/// The tail's batches, with those already waiting merged per tenant (in log order, at most
/// [`MOST_EVENTS_MERGED`] events each); nothing waits for more to come.
fn merged<S>(
    stream: S,
) -> impl futures::Stream<Item = Result<TailCleanEventsResponse, tonic::Status>>
where
    S: futures::Stream<Item = Result<TailCleanEventsResponse, tonic::Status>> + Unpin,
{
    let ready = std::collections::VecDeque::new();
    futures::stream::try_unfold(
        (stream, ready, false),
        |(mut stream, mut ready, mut ended)| async move {
            if let Some(batch) = ready.pop_front() {
                return Ok(Some((batch, (stream, ready, ended))));
            }
            if ended {
                return Ok(None);
            }
            let Some(first) = stream.try_next().await? else {
                return Ok(None);
            };
            let mut waiting = first.events.len();
            let mut groups: Vec<TailCleanEventsResponse> = vec![first];
            while waiting < MOST_EVENTS_MERGED * RESOLVES_IN_FLIGHT {
                let next = match stream.try_next().now_or_never() {
                    None => break,
                    Some(next) => next?,
                };
                let Some(next) = next else {
                    ended = true;
                    break;
                };
                waiting += next.events.len();
                merge_into(&mut groups, next);
            }
            ready.extend(groups);
            Ok(ready
                .pop_front()
                .map(|batch| (batch, (stream, ready, ended))))
        },
    )
}

/// Appends `next` to the latest group of its tenant while that stays within
/// [`MOST_EVENTS_MERGED`], or as a group of its own.
fn merge_into(groups: &mut Vec<TailCleanEventsResponse>, next: TailCleanEventsResponse) {
    let latest = groups.iter_mut().rev().find(|g| g.tenant == next.tenant);
    match latest {
        Some(group) if group.events.len() + next.events.len() <= MOST_EVENTS_MERGED => {
            group.head_sequence = group.head_sequence.max(next.head_sequence);
            group.events.extend(next.events);
        }
        _ => groups.push(next),
    }
}

#[cfg(test)]
mod tests {
    use touchline_proto::governance::v1::CleanEvent;

    use super::*;

    fn batch(tenant: &str, sequences: std::ops::RangeInclusive<i64>) -> TailCleanEventsResponse {
        let events: Vec<CleanEvent> = sequences
            .map(|sequence| CleanEvent {
                sequence,
                ..CleanEvent::default()
            })
            .collect();
        TailCleanEventsResponse {
            tenant: tenant.to_owned(),
            head_sequence: events.last().map_or(0, |e| e.sequence),
            events,
        }
    }

    fn shape(groups: &[TailCleanEventsResponse]) -> Vec<(&str, i64, i64, i64)> {
        groups
            .iter()
            .map(|g| {
                let first = g.events.first().map_or(0, |e| e.sequence);
                let last = g.events.last().map_or(0, |e| e.sequence);
                (g.tenant.as_str(), first, last, g.head_sequence)
            })
            .collect()
    }

    #[test]
    fn waiting_batches_merge_per_tenant_in_log_order_up_to_the_cap() {
        let cap = i64::try_from(MOST_EVENTS_MERGED).unwrap_or(i64::MAX);
        let mut groups = vec![batch("a", 1..=100)];
        merge_into(&mut groups, batch("b", 1..=50));
        merge_into(&mut groups, batch("a", 101..=200));
        merge_into(&mut groups, batch("b", 51..=60));
        assert_eq!(
            shape(&groups),
            vec![("a", 1, 200, 200), ("b", 1, 60, 60)],
            "each tenant's batches join its latest group, in order"
        );
        merge_into(&mut groups, batch("a", 201..=cap));
        assert_eq!(
            shape(&groups),
            vec![("a", 1, cap, cap), ("b", 1, 60, 60)],
            "a group fills up to the cap"
        );
        merge_into(&mut groups, batch("a", cap + 1..=cap + 10));
        assert_eq!(
            shape(&groups),
            vec![
                ("a", 1, cap, cap),
                ("b", 1, 60, 60),
                ("a", cap + 1, cap + 10, cap + 10)
            ],
            "past the cap the tenant's later events start a group of their own"
        );
    }
}
