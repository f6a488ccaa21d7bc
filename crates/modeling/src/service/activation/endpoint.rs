//! One destination's queue: its frozen batches held in memory with how far each has come,
//! read again from the store every [`ROUND`] (and at once when new triggers arrive while few
//! batches wait), with the next batches frozen ahead in the same transaction. Sends go out as
//! `dispatch` allows, up to the destination's concurrency and rate; each answer is handed to
//! the ledger writer, and a batch leaves memory only once its delivery is written.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;
use touchline_runtime::Shutdown;
use touchline_webhooks::{Sender, SigningSecret};

use super::super::Modeling;
use super::attempt::{self, Target};
use super::body::delivery_body;
use super::dispatch::{self, Progress, Slot};
use super::ledger::{self, Ledger, LedgerError};
use crate::store::activation::{self as store, Batch, Destination, StoredTrigger, TriggerFilter};
use crate::store::deliveries::{self, AttemptRecord};

/// How long the task waits after the store failed it.
const RECHECK: Duration = Duration::from_secs(1);
/// How often the task reads its destination and batches again.
const ROUND: Duration = Duration::from_millis(250);
/// Most moving batches (see `dispatch::moving`) a destination has frozen ahead.
const AHEAD_BATCHES: usize = 100;
/// Most triggers in moving batches a destination has frozen ahead (at least one batch), unless
/// its concurrency needs more batches.
const AHEAD_TRIGGERS: usize = 1_000;
/// Most triggers a destination has frozen in all, counting batches awaiting a retry and those
/// behind them in their lane: beyond it, new triggers wait.
const FROZEN_TRIGGERS: usize = 20_000;
/// And most batches.
const FROZEN_BATCHES: usize = 1_000;

/// Why a read of the destination stopped short; the task looks again after [`RECHECK`].
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("reading or freezing batches: {0}")]
    Store(#[from] sqlx::Error),
    #[error("reading the identifiers the triggers carry: {0}")]
    Identifiers(#[from] crate::error::ModelingError),
}

/// One destination's queue.
pub(super) struct EndpointTask {
    pub modeling: Modeling,
    pub sender: Sender,
    pub ledger: Ledger,
    pub tenant: String,
    pub id: String,
}

/// A frozen batch as the task holds it (its body apart, shared by every attempt).
struct Held {
    batch: Batch,
    body: Bytes,
    progress: Progress,
}

/// The task's view of its destination.
struct Queue {
    destination: Destination,
    target: Arc<Target>,
    held: BTreeMap<i64, Held>,
    /// The last freeze filled its room: more triggers may be waiting.
    more: bool,
}

/// An attempt being sent, and one being written.
type Flight = BoxFuture<'static, AttemptRecord>;
type Writing = BoxFuture<'static, (AttemptRecord, Result<bool, LedgerError>)>;

/// When the task next has something to do.
struct Clock {
    read_at: Instant,
    paused_until: Instant,
    next_send: Instant,
}

/// How many moving batches of `size` triggers a destination freezes ahead.
fn batches_ahead(size: usize, concurrency: usize) -> usize {
    (AHEAD_TRIGGERS / size.max(1))
        .max(2 * concurrency)
        .clamp(1, AHEAD_BATCHES)
}

/// How many batches of `size` triggers a destination holds frozen at most.
fn batches_frozen(size: usize, ahead: usize) -> usize {
    (FROZEN_TRIGGERS / size.max(1)).clamp(ahead, FROZEN_BATCHES.max(ahead))
}

impl Queue {
    fn capacity(&self) -> usize {
        usize::try_from(self.destination.max_concurrency)
            .unwrap_or(1)
            .max(1)
    }

    /// Few batches wait to be sent: worth reading again as soon as triggers arrive.
    fn runs_low(&self) -> bool {
        let waiting = self
            .held
            .values()
            .filter(|h| h.progress == Progress::Waiting)
            .count();
        waiting < self.capacity()
    }

    fn ready(&self, room: usize) -> Vec<i64> {
        dispatch::ready(self.destination.ordering, self.slots(), Utc::now(), room)
    }

    fn moving(&self) -> usize {
        dispatch::moving(self.destination.ordering, self.slots(), Utc::now())
    }

    /// What dispatch needs of each held batch, by first sequence (read in place: this runs on
    /// every turn of the task).
    fn slots(&self) -> impl Iterator<Item = (i64, Slot)> + '_ {
        self.held.iter().map(|(first, h)| {
            let slot = Slot {
                lane: h.batch.lane,
                due: h.batch.next_attempt_at,
                progress: h.progress,
            };
            (*first, slot)
        })
    }

    /// The earliest future retry of a waiting batch.
    fn next_due(&self) -> Option<DateTime<Utc>> {
        let now = Utc::now();
        self.held
            .values()
            .filter(|h| h.progress == Progress::Waiting && h.batch.next_attempt_at > now)
            .map(|h| h.batch.next_attempt_at)
            .min()
    }

    fn held_as(&mut self, record: &AttemptRecord) -> Option<&mut Held> {
        self.held
            .get_mut(&record.attempt.first_sequence)
            .filter(|h| h.batch.webhook_id == record.attempt.webhook_id)
    }

    /// Takes in what the store holds now: new batches, and the retry times of waiting ones (a
    /// resume may have reset them); a waiting batch no longer stored (a replay dropped it)
    /// goes. Batches in flight or being written stay as they are.
    fn merge(&mut self, stored: Vec<Batch>) {
        let mut seen = HashSet::new();
        for mut batch in stored {
            seen.insert(batch.first_sequence);
            let body = std::mem::take(&mut batch.body);
            match self.held.get_mut(&batch.first_sequence) {
                Some(h) if h.progress != Progress::Waiting => {}
                Some(h) if h.batch.webhook_id == batch.webhook_id => h.batch = batch,
                // Another batch under the same first sequence (a replay froze it again): its
                // body is read on the next round, once the old one is gone.
                Some(_) => {
                    seen.remove(&batch.first_sequence);
                }
                None if !body.is_empty() => {
                    let held = Held {
                        batch,
                        body: Bytes::from(body),
                        progress: Progress::Waiting,
                    };
                    self.held.insert(held.batch.first_sequence, held);
                }
                None => {}
            }
        }
        self.held
            .retain(|first, h| seen.contains(first) || h.progress != Progress::Waiting);
    }
}

impl Clock {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            read_at: now,
            paused_until: now,
            next_send: now,
        }
    }

    fn pause(&mut self) {
        self.paused_until = Instant::now() + RECHECK;
    }

    /// The next instant worth waking at without an event (never one already past while
    /// paused, which would spin until the pause ends).
    fn wake(&self, queue: Option<&Queue>) -> Instant {
        let now = Instant::now();
        if self.paused_until > now {
            return self.paused_until;
        }
        let mut wake = self.read_at;
        if self.next_send > now {
            wake = wake.min(self.next_send);
        }
        if let Some(due) = queue.and_then(Queue::next_due) {
            let wait = (due - Utc::now()).to_std().unwrap_or_default();
            wake = wake.min(now + wait);
        }
        wake
    }
}

impl EndpointTask {
    /// Delivers until the destination stops delivering (deleted, suspended, disabled) or
    /// `shutdown`.
    pub(super) async fn run(self, shutdown: Shutdown) {
        let mut heads = self.modeling.segment_signals.subscribe(&self.tenant);
        let mut heads_open = true;
        let mut queue: Option<Queue> = None;
        let mut flights: FuturesUnordered<Flight> = FuturesUnordered::new();
        let mut writes: FuturesUnordered<Writing> = FuturesUnordered::new();
        let mut clock = Clock::new();
        let mut fresh = true;
        loop {
            let now = Instant::now();
            let eager = queue
                .as_ref()
                .is_none_or(|q| q.runs_low() && (fresh || q.more));
            if now >= clock.paused_until && (now >= clock.read_at || eager) {
                match self.read(&mut queue).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(err) => {
                        tracing::warn!(tenant = %self.tenant, destination = %self.id, error = %err, "webhook delivery failed to read its batches; retrying");
                        clock.pause();
                    }
                }
                clock.read_at = Instant::now() + ROUND;
                fresh = false;
            }
            if let Some(queue) = queue.as_mut()
                && Instant::now() >= clock.paused_until
            {
                self.dispatch(queue, &mut flights, &mut clock);
            }
            let wake = clock.wake(queue.as_ref());
            tokio::select! {
                () = shutdown.wait() => return,
                Some(record) = flights.next(), if !flights.is_empty() => {
                    if let Some(h) = queue.as_mut().and_then(|q| q.held_as(&record)) {
                        h.progress = Progress::Answered {
                            delivered: record.attempt.outcome == store::DELIVERED,
                        };
                    }
                    match self.ledger.record(record.clone()).await {
                        Ok(written) => writes.push(Box::pin(async move {
                            let kept = ledger::kept(written).await;
                            (record, kept)
                        })),
                        Err(err) => {
                            self.not_written(queue.as_mut(), &record, &err, &mut clock);
                        }
                    }
                }
                Some((record, kept)) = writes.next(), if !writes.is_empty() => match kept {
                    Ok(true) => {
                        if !queue.as_mut().is_none_or(|q| Self::written(q, &record)) {
                            return;
                        }
                    }
                    // The destination was deleted (or replaced) meanwhile.
                    Ok(false) => return,
                    Err(err) => self.not_written(queue.as_mut(), &record, &err, &mut clock),
                },
                changed = heads.changed(), if heads_open => {
                    fresh = true;
                    heads_open = changed.is_ok();
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Sends what may go now, within the destination's concurrency and rate.
    fn dispatch(
        &self,
        queue: &mut Queue,
        flights: &mut FuturesUnordered<Flight>,
        clock: &mut Clock,
    ) {
        let room = queue.capacity().saturating_sub(flights.len());
        if room == 0 {
            return;
        }
        let rate = u32::try_from(queue.destination.max_deliveries_per_second)
            .ok()
            .filter(|rate| *rate > 0);
        for first in queue.ready(room) {
            let now = Instant::now();
            if now < clock.next_send {
                break;
            }
            let Some(h) = queue.held.get_mut(&first) else {
                continue;
            };
            h.progress = Progress::InFlight;
            flights.push(Box::pin(attempt::send(
                self.sender.clone(),
                queue.target.clone(),
                h.batch.clone(),
                h.body.clone(),
            )));
            // The endpoint's own rate limit: attempts start at least 1/rate apart.
            if let Some(rate) = rate {
                clock.next_send = now + Duration::from_secs(1) / rate;
            }
        }
    }

    /// A written attempt: a delivered batch leaves, a failed one waits for its retry. `false`
    /// when the destination stopped delivering (suspended or disabled).
    fn written(queue: &mut Queue, record: &AttemptRecord) -> bool {
        let outcome = record.attempt.outcome;
        if outcome == store::DELIVERED {
            if queue.held_as(record).is_some() {
                queue.held.remove(&record.attempt.first_sequence);
            }
            return true;
        }
        if let Some(h) = queue.held_as(record) {
            h.batch.attempts = record.attempt.attempt;
            h.batch.next_attempt_at = record.retry_at.unwrap_or(DateTime::<Utc>::MAX_UTC);
            h.progress = Progress::Waiting;
        }
        !matches!(outcome, store::GAVE_UP | store::GONE)
    }

    /// An attempt that could not be written is made again (with the same id), after a pause.
    fn not_written(
        &self,
        queue: Option<&mut Queue>,
        record: &AttemptRecord,
        err: &LedgerError,
        clock: &mut Clock,
    ) {
        tracing::warn!(tenant = %self.tenant, destination = %self.id, error = %err, "a webhook attempt could not be recorded; it is made again");
        if let Some(h) = queue.and_then(|q| q.held_as(record)) {
            h.progress = Progress::Waiting;
        }
        clock.pause();
    }

    /// Reads the destination and its frozen batches into `queue`, freezing the next ones
    /// ahead when there is room, in one transaction; `false` when it no longer delivers (or
    /// was replaced under the same id).
    async fn read(&self, queue: &mut Option<Queue>) -> Result<bool, ReadError> {
        let (tenant, id) = (self.tenant.as_str(), self.id.as_str());
        let mut tx = self.modeling.pool.begin().await?;
        let Some(destination) = store::destination(&mut *tx, tenant, id).await? else {
            return Ok(false);
        };
        let replaced = queue
            .as_ref()
            .is_some_and(|q| q.destination.created_at != destination.created_at);
        if replaced || !matches!(destination.state, store::ACTIVE | store::FAILING) {
            return Ok(false);
        }
        let queue = self.renewed(queue, destination);
        let size = usize::try_from(queue.destination.max_batch_size)
            .unwrap_or(1)
            .max(1);
        let ahead = batches_ahead(size, queue.capacity());
        let most = batches_frozen(size, ahead);
        // A freeze can end with a partial batch per lane beyond the bound.
        let limit = i64::try_from(most + queue.capacity()).unwrap_or(i64::MAX);
        let known: Vec<i64> = queue.held.keys().copied().collect();
        let stored = deliveries::frozen(&mut tx, tenant, id, limit, &known).await?;
        let count = stored.len();
        // In sequence order nothing after a batch awaiting its retry can go: freeze no more.
        let retrying = queue.destination.ordering == store::SEQUENCE
            && stored
                .first()
                .is_some_and(|b| b.next_attempt_at > Utc::now());
        queue.merge(stored);
        queue.more = false;
        let moving = queue.moving();
        if retrying || moving >= ahead || count >= most {
            tx.commit().await?;
            return Ok(true);
        }
        // The head first: every trigger up to it is committed, so none found past the cursor
        // means none for this destination up to the head.
        let (head, _) = store::trigger_head(&mut *tx, tenant).await?;
        let d = &queue.destination;
        let filter = TriggerFilter {
            types: d.trigger_types.clone(),
            segments: d.segment_ids.clone(),
            definitions: d.definition_ids.clone(),
        };
        let room = (ahead - moving).min(most - count) * size;
        let room_rows = i64::try_from(room).unwrap_or(i64::MAX);
        let triggers =
            store::triggers_after(&mut *tx, tenant, &filter, d.frozen_sequence, room_rows).await?;
        if triggers.is_empty() {
            if head > d.frozen_sequence {
                deliveries::skip_to(&mut tx, tenant, id, head).await?;
            }
            tx.commit().await?;
            return Ok(true);
        }
        queue.more = triggers.len() >= room;
        let fresh = self.batches_of(&queue.destination, &triggers).await?;
        if deliveries::freeze(&mut tx, tenant, id, &fresh).await? {
            queue.merge_fresh(fresh);
        } else {
            // Another replica froze some first: take whichever are stored.
            let known: Vec<i64> = queue.held.keys().copied().collect();
            let stored = deliveries::frozen(&mut tx, tenant, id, limit, &known).await?;
            queue.merge(stored);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// `queue` with `destination` as just read (a new queue on the first read).
    fn renewed<'q>(&self, queue: &'q mut Option<Queue>, destination: Destination) -> &'q mut Queue {
        let target = Arc::new(Target {
            tenant: self.tenant.clone(),
            id: self.id.clone(),
            created_at: destination.created_at,
            url: destination.url.clone(),
            secrets: secrets(&destination),
        });
        match queue.take() {
            Some(mut held) => {
                held.destination = destination;
                held.target = target;
                queue.insert(held)
            }
            None => queue.insert(Queue {
                destination,
                target,
                held: BTreeMap::new(),
                more: false,
            }),
        }
    }

    /// New batches of `triggers` (in sequence order), due now.
    async fn batches_of(
        &self,
        destination: &Destination,
        triggers: &[StoredTrigger],
    ) -> Result<Vec<Batch>, ReadError> {
        // Read before freezing, so every attempt of a batch sends the same identifiers.
        let persons: Vec<uuid::Uuid> = triggers.iter().map(|t| t.person_id).collect();
        let exported = self
            .modeling
            .exported_identifiers(&self.tenant, &persons, &destination.identifier_types)
            .await?;
        let size = usize::try_from(destination.max_batch_size).unwrap_or(1);
        let now = Utc::now();
        let id = &self.id;
        let batches = dispatch::split(
            &persons,
            destination.ordering,
            destination.max_concurrency,
            size,
        )
        .into_iter()
        .filter_map(|(lane, members)| {
            let chunk: Vec<&StoredTrigger> =
                members.iter().filter_map(|i| triggers.get(*i)).collect();
            let (first, last) = (chunk.first()?, chunk.last()?);
            Some(Batch {
                webhook_id: format!("msg_{id}_{}_{}", first.sequence, last.sequence),
                first_sequence: first.sequence,
                last_sequence: last.sequence,
                body: delivery_body(&self.tenant, chunk.iter().copied(), &exported),
                attempts: 0,
                next_attempt_at: now,
                lane,
            })
        })
        .collect();
        Ok(batches)
    }
}

impl Queue {
    /// Holds batches just frozen by this task.
    fn merge_fresh(&mut self, fresh: Vec<Batch>) {
        for mut batch in fresh {
            let body = Bytes::from(std::mem::take(&mut batch.body));
            let held = Held {
                batch,
                body,
                progress: Progress::Waiting,
            };
            self.held.insert(held.batch.first_sequence, held);
        }
    }
}

/// The secrets that sign now: the current one, and the previous one during a rotation.
pub(super) fn secrets(destination: &Destination) -> Vec<SigningSecret> {
    let mut secrets: Vec<SigningSecret> = SigningSecret::parse(&destination.signing_secret)
        .into_iter()
        .collect();
    if let (Some(previous), Some(until)) = (
        destination.previous_secret.as_deref(),
        destination.previous_secret_until,
    ) && until > Utc::now()
    {
        secrets.extend(SigningSecret::parse(previous));
    }
    secrets
}
