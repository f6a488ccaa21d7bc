//! The group committer: concurrent ingest calls of a tenant share one
//! transaction, so throughput comes from many events per commit rather than
//! many commits (a durable commit costs a WAL flush; they top out near a few
//! thousand per second).
//!
//! Each tenant is served by one committer task, chosen by hashing the
//! tenant, so within a process the tenant's head-row lock is never
//! contended. A task takes the first waiting submission, gathers whatever
//! else is already queued (and, for a short bounded linger, what arrives
//! next), commits it all at once and only then answers each submitter:
//! acknowledged always means committed.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};
use touchline_proto::collection::v1::SourceState;

use crate::append_path::{AppendPath, AppendPaths};

/// The source revision a raw event carries when its tenant registers sources and this one
/// is not among them (the raw log's contract calls it -1).
pub const UNREGISTERED_SOURCE: i64 = -1;
use crate::config::CollectionConfig;
use crate::store::counts::{self, CountDelta};
use crate::store::{self, GroupCounts, NewRawEvent, copy_append, sources};

/// Submissions queued per committer before submitters wait.
const QUEUE_DEPTH: usize = 256;

/// Events one caller wants committed, with the counts of those it already
/// turned away (for the ingest counters).
#[derive(Debug, Default)]
pub struct Submission {
    /// The tenant.
    pub tenant: String,
    /// Valid events, no message id repeated among them.
    pub rows: Vec<NewRawEvent>,
    /// Per source: events rejected or repeated within the call.
    pub turned_away: Vec<CountDelta>,
}

/// What became of one submitted row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOutcome {
    /// Committed at this sequence.
    Accepted(i64),
    /// Its message id was stored before.
    Duplicate,
    /// Its source is disabled.
    SourceDisabled,
    /// Its source is not registered and registration is required.
    SourceNotRegistered,
}

/// Why a submission was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// PostgreSQL failed; nothing of the submission was committed.
    #[error("storing the batch failed")]
    Store(#[source] Arc<sqlx::Error>),
    /// The committer stopped (shutdown).
    #[error("the committer stopped")]
    Stopped,
}

struct Job {
    submission: Submission,
    reply: oneshot::Sender<Result<Vec<RowOutcome>, CommitError>>,
}

/// Handle to the committer tasks.
#[derive(Debug, Clone)]
pub struct GroupCommitter {
    shards: Arc<[mpsc::Sender<Job>]>,
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    linger: Duration,
    max_group_events: usize,
    require_registered: bool,
    commits_in_flight: usize,
}

impl GroupCommitter {
    /// Starts the committer tasks; they end when every handle is dropped.
    pub fn start(pool: PgPool, config: &CollectionConfig) -> Self {
        let settings = Settings {
            linger: Duration::from_micros(config.commit_linger_us),
            max_group_events: config.max_group_events.max(1),
            require_registered: config.require_registered_sources,
            commits_in_flight: config.commits_in_flight.max(1),
        };
        let shards: Vec<_> = (0..config.committers.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
                let paths = AppendPaths::new(config.copy_appends);
                tokio::spawn(run(pool.clone(), rx, settings, paths));
                tx
            })
            .collect();
        Self {
            shards: shards.into(),
        }
    }

    /// Commits `submission` together with whatever else is waiting and
    /// returns one outcome per row, in order.
    pub async fn submit(&self, submission: Submission) -> Result<Vec<RowOutcome>, CommitError> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        submission.tenant.hash(&mut hasher);
        let shard = usize::try_from(hasher.finish() % self.shards.len() as u64).unwrap_or(0);
        let sender = self.shards.get(shard).ok_or(CommitError::Stopped)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Job { submission, reply })
            .await
            .map_err(|_| CommitError::Stopped)?;
        answer.await.map_err(|_| CommitError::Stopped)?
    }
}

async fn run(pool: PgPool, mut rx: mpsc::Receiver<Job>, settings: Settings, paths: AppendPaths) {
    let in_flight = Arc::new(Semaphore::new(settings.commits_in_flight));
    while let Some(first) = rx.recv().await {
        let mut events = first.submission.rows.len();
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + settings.linger;
        while events < settings.max_group_events {
            let next = match rx.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::error::TryRecvError::Empty) if !settings.linger.is_zero() => {
                    tokio::time::timeout_at(deadline, rx.recv())
                        .await
                        .ok()
                        .flatten()
                }
                Err(_) => None,
            };
            let Some(job) = next else { break };
            events += job.submission.rows.len();
            jobs.push(job);
        }
        let mut by_tenant: BTreeMap<String, Vec<Job>> = BTreeMap::new();
        for job in jobs {
            by_tenant
                .entry(job.submission.tenant.clone())
                .or_default()
                .push(job);
        }
        for (tenant, jobs) in by_tenant {
            // Gathering the next group overlaps with this commit; the
            // tenant's head-row lock still orders the transactions, so
            // sequences become visible in order.
            let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                return;
            };
            let pool = pool.clone();
            let paths = paths.clone();
            tokio::spawn(async move {
                commit_group(&pool, &tenant, jobs, settings, &paths).await;
                drop(permit);
            });
        }
    }
}

/// Commits the jobs of one tenant in one transaction and answers them.
async fn commit_group(
    pool: &PgPool,
    tenant: &str,
    mut jobs: Vec<Job>,
    settings: Settings,
    paths: &AppendPaths,
) {
    let result = write_group(pool, tenant, &mut jobs, settings, paths).await;
    match result {
        Ok(outcomes) => {
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.reply.send(Ok(outcome));
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, tenant, "group commit failed");
            let err = CommitError::Store(Arc::new(err));
            for job in jobs {
                let _ = job.reply.send(Err(err.clone()));
            }
        }
    }
}

#[expect(
    clippy::too_many_lines,
    reason = "one group commit's transaction in order (append, counts, outcomes per job); splitting it would thread the transaction and the job slices through helpers that mean nothing alone"
)]
async fn write_group(
    pool: &PgPool,
    tenant: &str,
    jobs: &mut [Job],
    settings: Settings,
    paths: &AppendPaths,
) -> Result<Vec<Vec<RowOutcome>>, sqlx::Error> {
    let received_at = Utc::now();
    // No explicit transaction: the source lookup reads committed state (as
    // it would inside a read-committed transaction), and the append is one
    // self-committing statement, so the tenant's head lock is never held
    // across a client round trip.
    let mut conn = pool.acquire().await?;
    let source_ids: Vec<&str> = {
        let mut ids: Vec<&str> = jobs
            .iter()
            .flat_map(|j| j.submission.rows.iter().map(|r| r.source.as_str()))
            .filter(|s| !s.is_empty())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let heads: HashMap<String, sources::SourceHead> = if source_ids.is_empty() {
        HashMap::new()
    } else {
        sources::heads_in(&mut conn, tenant, &source_ids)
            .await?
            .into_iter()
            .collect()
    };
    // A tenant that registers its sources is told about an id that is none of them (a typo, a
    // source not yet registered): the event is kept and governance quarantines it as
    // UNKNOWN_SOURCE, so it can be replayed once the source exists. A tenant that registers
    // none sends generic SDK streams, which need no registration.
    let unmatched = source_ids.iter().any(|id| !heads.contains_key(*id));
    let registers_sources = unmatched && sources::any_registered(&mut conn, tenant).await?;
    let disabled = SourceState::Disabled as i32;
    let mut outcomes: Vec<Vec<RowOutcome>> = Vec::with_capacity(jobs.len());
    let mut to_store: Vec<NewRawEvent> = Vec::new();
    let mut slots: Vec<(usize, usize)> = Vec::new();
    let mut counts: BTreeMap<String, GroupCounts> = BTreeMap::new();
    for (j, job) in jobs.iter_mut().enumerate() {
        let rows = std::mem::take(&mut job.submission.rows);
        let mut job_outcomes = Vec::with_capacity(rows.len());
        for (r, mut row) in rows.into_iter().enumerate() {
            let outcome = match heads.get(&row.source) {
                Some(head) if head.state == disabled => Some(RowOutcome::SourceDisabled),
                Some(head) => {
                    row.source_revision = head.revision;
                    None
                }
                None if settings.require_registered => Some(RowOutcome::SourceNotRegistered),
                None if registers_sources && !row.source.is_empty() => {
                    row.source_revision = UNREGISTERED_SOURCE;
                    None
                }
                None => None,
            };
            let c = count_of(&mut counts, &row.source);
            match outcome {
                Some(rejected) => {
                    c.rejected += 1;
                    job_outcomes.push(rejected);
                }
                None => {
                    c.offered += 1;
                    job_outcomes.push(RowOutcome::Duplicate);
                    slots.push((j, r));
                    to_store.push(row);
                }
            }
        }
        for turned in &job.submission.turned_away {
            let c = count_of(&mut counts, &turned.source);
            c.rejected += turned.rejected;
            c.duplicates += turned.duplicates;
        }
        outcomes.push(job_outcomes);
    }
    let counts: Vec<GroupCounts> = counts.into_values().collect();
    let hour = hour_of(received_at);
    if to_store.is_empty() {
        let deltas: Vec<CountDelta> = counts
            .into_iter()
            .map(|c| CountDelta {
                source: c.source,
                accepted: 0,
                duplicates: c.duplicates,
                rejected: c.rejected,
            })
            .collect();
        counts::add_in(&mut conn, tenant, hour, &deltas).await?;
        return Ok(outcomes);
    }
    let sequences = store_rows(
        &mut conn,
        tenant,
        &to_store,
        received_at,
        hour,
        &counts,
        paths,
    )
    .await?;
    for ((j, r), sequence) in slots.into_iter().zip(sequences) {
        if let (Some(sequence), Some(slot)) =
            (sequence, outcomes.get_mut(j).and_then(|o| o.get_mut(r)))
        {
            *slot = RowOutcome::Accepted(sequence);
        }
    }
    Ok(outcomes)
}

/// Stores the rows by the tenant's current [`AppendPath`]; per row, its
/// sequence or `None` for a message id stored before.
async fn store_rows(
    conn: &mut sqlx::PgConnection,
    tenant: &str,
    rows: &[NewRawEvent],
    received_at: DateTime<Utc>,
    hour: DateTime<Utc>,
    counts: &[GroupCounts],
    paths: &AppendPaths,
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    let sequences = match paths.choose(tenant) {
        AppendPath::Copy => {
            let appended =
                copy_append::append_group_by_copy(conn, tenant, rows, received_at, hour, counts)
                    .await?;
            if appended.conflicted {
                paths.copy_conflicted(tenant);
            }
            appended.sequences
        }
        AppendPath::Insert => {
            let sequences =
                store::append_group(conn, tenant, rows, received_at, hour, counts).await?;
            paths.inserted(tenant, sequences.iter().filter(|s| s.is_none()).count());
            sequences
        }
    };
    Ok(sequences)
}

fn count_of<'a>(
    counts: &'a mut BTreeMap<String, GroupCounts>,
    source: &str,
) -> &'a mut GroupCounts {
    counts
        .entry(source.to_owned())
        .or_insert_with(|| GroupCounts {
            source: source.to_owned(),
            ..GroupCounts::default()
        })
}

/// The start of the UTC hour holding `instant`.
pub fn hour_of(instant: DateTime<Utc>) -> DateTime<Utc> {
    instant
        .duration_trunc(TimeDelta::hours(1))
        .unwrap_or(instant)
}
