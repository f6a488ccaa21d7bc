//! The delivery worker: one task per delivering destination, so a slow or dead endpoint
//! holds up only its own queue, with one delivery in flight and its triggers in sequence
//! order. A task works in rounds: it reads its destination and, in one transaction, the
//! batches it has frozen, freezing the next ones ahead when few are left (id and body fixed
//! before the first attempt, so every retry is the same message); then it sends them one
//! after another, handing each attempt to the ledger writer (see `ledger`), which writes the
//! attempts of many deliveries in one transaction. A failure ends the round once it is
//! written, and the task waits as the retry schedule says; a round also ends after a short
//! while, so a deleted, resumed or rotated destination is seen soon, and every attempt of a
//! round is written before the next round reads the batches again. The work is I/O on the
//! async runtime; model runs use the blocking pool, so the two never wait for the same
//! threads.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use tokio::task::JoinHandle;
use touchline_runtime::Shutdown;
use touchline_webhooks::{Outcome, RetrySchedule, SendError, Sender, SenderConfig, SigningSecret};

use super::super::Modeling;
use super::body::delivery_body;
use super::ledger::{self, Ledger, LedgerError};
use crate::store::activation::{self as store, Attempt, Batch, Destination, TriggerFilter};
use crate::store::deliveries::{self, AttemptRecord};

/// How often the set of delivering destinations is read again.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);
/// The longest a task sleeps before looking at its destination again (deleted, resumed).
const RECHECK: Duration = Duration::from_secs(1);
/// How long a round keeps sending before the task reads its destination again.
const ROUND: Duration = Duration::from_millis(250);
/// Most batches a destination has frozen ahead.
const AHEAD_BATCHES: usize = 100;
/// Most triggers a destination has frozen ahead (at least one batch).
const AHEAD_TRIGGERS: usize = 1_000;
/// How long the ledger writer may take to write what is queued at shutdown.
const LEDGER_DRAIN: Duration = Duration::from_secs(5);

/// Pushes every destination's triggers.
#[derive(Debug, Clone)]
pub struct DeliveryWorker {
    modeling: Modeling,
}

/// Why a round stopped short; the task looks again after [`RECHECK`].
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("reading or freezing batches: {0}")]
    Store(#[from] sqlx::Error),
    #[error("reading the identifiers the triggers carry: {0}")]
    Identifiers(#[from] crate::error::ModelingError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl DeliveryWorker {
    /// The worker of `modeling`.
    pub fn new(modeling: Modeling) -> Self {
        Self { modeling }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        let options = self.modeling.webhooks;
        let sender = match Sender::new(SenderConfig {
            timeout: options.timeout,
            policy: options.policy,
            ..SenderConfig::default()
        }) {
            Ok(sender) => sender,
            Err(err) => {
                tracing::error!(error = %err, "webhook delivery cannot start");
                return;
            }
        };
        let (ledger, writer) = Ledger::start(self.modeling.pool.clone());
        let mut tasks: HashMap<(String, String), JoinHandle<()>> = HashMap::new();
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                () = self.modeling.segment_signals.deliveries_woken() => {}
                () = tokio::time::sleep(SUPERVISE_EVERY) => {}
            }
            let delivering = match store::delivering(&self.modeling.pool).await {
                Ok(list) => list,
                Err(err) => {
                    tracing::warn!(error = %err, "webhook destinations could not be read; retrying");
                    continue;
                }
            };
            tasks.retain(|_, task| !task.is_finished());
            for key in delivering {
                tasks.entry(key.clone()).or_insert_with(|| {
                    let task = EndpointTask {
                        modeling: self.modeling.clone(),
                        sender: sender.clone(),
                        ledger: ledger.clone(),
                        tenant: key.0,
                        id: key.1,
                    };
                    tokio::spawn(task.run(shutdown.clone()))
                });
            }
        }
        for (_, task) in tasks {
            task.abort();
            let _ = task.await;
        }
        // The attempts already made are written down, so a restart does not send them again.
        drop(ledger);
        if tokio::time::timeout(LEDGER_DRAIN, writer).await.is_err() {
            tracing::warn!("webhook attempts still queued at shutdown are sent again after it");
        }
    }
}

/// One destination's queue.
struct EndpointTask {
    modeling: Modeling,
    sender: Sender,
    ledger: Ledger,
    tenant: String,
    id: String,
}

/// What a task does next.
enum Step {
    /// Look again at once.
    Again,
    /// Wait this long (or until new triggers arrive).
    Wait(Duration),
    /// The destination stopped delivering.
    Stop,
}

/// How many batches of `max_batch_size` triggers a destination freezes ahead.
fn batches_ahead(max_batch_size: usize) -> usize {
    (AHEAD_TRIGGERS / max_batch_size.max(1)).clamp(1, AHEAD_BATCHES)
}

impl EndpointTask {
    async fn run(self, shutdown: Shutdown) {
        let mut heads = self.modeling.segment_signals.subscribe(&self.tenant);
        loop {
            let step = match self.step().await {
                Ok(step) => step,
                Err(err) => {
                    tracing::warn!(tenant = %self.tenant, destination = %self.id, error = %err, "webhook delivery failed to read or record; retrying");
                    Step::Wait(RECHECK)
                }
            };
            match step {
                Step::Again => {}
                Step::Stop => return,
                Step::Wait(wait) => {
                    tokio::select! {
                        () = shutdown.wait() => return,
                        _ = tokio::time::timeout(wait.min(RECHECK), heads.changed()) => {}
                    }
                }
            }
        }
    }

    /// One round: the destination and its frozen batches, sent in order.
    async fn step(&self) -> Result<Step, RoundError> {
        let Some((destination, batches)) = self.frozen_batches().await? else {
            return Ok(Step::Stop);
        };
        if batches.is_empty() {
            return Ok(Step::Wait(RECHECK));
        }
        let secrets = Self::secrets(&destination);
        let signing: Vec<&SigningSecret> = secrets.iter().collect();
        let rate = u32::try_from(destination.max_deliveries_per_second)
            .ok()
            .filter(|rate| *rate > 0);
        let round_ends = tokio::time::Instant::now() + ROUND;
        let mut written = Written::default();
        let mut next = Step::Again;
        for batch in batches {
            let now = Utc::now();
            if batch.next_attempt_at > now {
                next = Step::Wait((batch.next_attempt_at - now).to_std().unwrap_or(RECHECK));
                break;
            }
            let started = tokio::time::Instant::now();
            let record = self.attempt(&destination, &signing, batch).await;
            let delivered = record.attempt.outcome == store::DELIVERED;
            written.push(self.ledger.record(record).await?);
            // The endpoint's own rate limit: attempts at least 1/rate apart.
            if let Some(rate) = rate {
                tokio::time::sleep_until(started + Duration::from_secs(1) / rate).await;
            }
            // A failure waits for its retry (read back with the batches once it is written);
            // a destination deleted meanwhile is seen as soon as an attempt of it is dropped.
            if !delivered || tokio::time::Instant::now() >= round_ends || written.stop_early() {
                break;
            }
        }
        // Every attempt of the round is written before the batches are read again.
        written.all().await?;
        Ok(next)
    }

    /// The destination and up to a round's worth of its frozen batches, freezing more ahead
    /// when few are left, in one transaction; `None` when it no longer delivers.
    async fn frozen_batches(&self) -> Result<Option<(Destination, Vec<Batch>)>, RoundError> {
        let (tenant, id) = (self.tenant.as_str(), self.id.as_str());
        let mut tx = self.modeling.pool.begin().await?;
        let Some(destination) = store::destination(&mut *tx, tenant, id).await? else {
            return Ok(None);
        };
        if !matches!(destination.state, store::ACTIVE | store::FAILING) {
            return Ok(None);
        }
        let size = usize::try_from(destination.max_batch_size)
            .unwrap_or(1)
            .max(1);
        let ahead = batches_ahead(size);
        let limit = i64::try_from(ahead).unwrap_or(i64::MAX);
        let mut batches = deliveries::frozen(&mut tx, tenant, id, limit).await?;
        let retrying = batches
            .first()
            .is_some_and(|b| b.next_attempt_at > Utc::now());
        if retrying || batches.len() >= ahead {
            tx.commit().await?;
            return Ok(Some((destination, batches)));
        }
        // The head first: every trigger up to it is committed, so none found past the cursor
        // means none for this destination up to the head.
        let (head, _) = store::trigger_head(&mut *tx, tenant).await?;
        let filter = TriggerFilter {
            types: destination.trigger_types.clone(),
            segments: destination.segment_ids.clone(),
            definitions: destination.definition_ids.clone(),
        };
        let after = batches
            .last()
            .map_or(destination.delivered_sequence, |b| b.last_sequence);
        let room = i64::try_from((ahead - batches.len()) * size).unwrap_or(i64::MAX);
        let triggers = store::triggers_after(&mut *tx, tenant, &filter, after, room).await?;
        if triggers.is_empty() {
            if batches.is_empty() && head > destination.delivered_sequence {
                deliveries::skip_to(&mut tx, tenant, id, head).await?;
            }
            tx.commit().await?;
            return Ok(Some((destination, batches)));
        }
        // Read before freezing, so every attempt of a batch sends the same identifiers.
        let persons: Vec<uuid::Uuid> = triggers.iter().map(|t| t.person_id).collect();
        let exported = self
            .modeling
            .exported_identifiers(tenant, &persons, &destination.identifier_types)
            .await?;
        let now = Utc::now();
        let fresh: Vec<Batch> = triggers
            .chunks(size)
            .filter_map(|chunk| {
                let (first, last) = (chunk.first()?, chunk.last()?);
                Some(Batch {
                    webhook_id: format!("msg_{id}_{}_{}", first.sequence, last.sequence),
                    first_sequence: first.sequence,
                    last_sequence: last.sequence,
                    body: delivery_body(tenant, chunk, &exported),
                    attempts: 0,
                    next_attempt_at: now,
                })
            })
            .collect();
        if deliveries::freeze(&mut tx, tenant, id, &fresh).await? {
            batches.extend(fresh);
        } else {
            // Another replica froze some first: deliver whichever are stored.
            batches = deliveries::frozen(&mut tx, tenant, id, limit).await?;
        }
        tx.commit().await?;
        Ok(Some((destination, batches)))
    }

    /// The secrets that sign now: the current one, and the previous one during a rotation.
    fn secrets(destination: &Destination) -> Vec<SigningSecret> {
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

    /// Sends `batch` once; the attempt as the ledger records it.
    async fn attempt(
        &self,
        destination: &Destination,
        signing: &[&SigningSecret],
        batch: Batch,
    ) -> AttemptRecord {
        let attempted_at = Utc::now();
        let outcome = self
            .sender
            .send(
                &destination.url,
                &batch.webhook_id,
                Bytes::from(batch.body),
                signing,
            )
            .await;
        let number = batch.attempts + 1;
        let Classified {
            code: mut outcome_code,
            http_status,
            error,
            elapsed,
            retry_after,
        } = classify(outcome);
        let retry_at = if outcome_code == store::RETRYING {
            let failed = usize::try_from(number).unwrap_or(usize::MAX);
            let delay =
                RetrySchedule::standard().delay_after(failed, retry_after, &mut rand::rng());
            match delay {
                Some(delay) => Some(
                    attempted_at
                        + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
                ),
                None => {
                    outcome_code = store::GAVE_UP;
                    None
                }
            }
        } else {
            None
        };
        let attempt = Attempt {
            webhook_id: batch.webhook_id,
            first_sequence: batch.first_sequence,
            last_sequence: batch.last_sequence,
            attempt: number,
            attempted_at,
            outcome: outcome_code,
            http_status,
            error,
            duration_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        };
        if outcome_code != store::DELIVERED {
            tracing::info!(tenant = %self.tenant, destination = %self.id, attempt = number, http_status, error = %attempt.error, "a webhook delivery failed");
        }
        AttemptRecord {
            tenant: self.tenant.clone(),
            id: self.id.clone(),
            created_at: destination.created_at,
            attempt,
            retry_at,
        }
    }
}

/// A round's attempts handed to the ledger, oldest first, until each is written.
#[derive(Default)]
struct Written {
    pending: std::collections::VecDeque<ledger::Written>,
    /// An attempt was dropped (its destination is gone) or could not be written.
    stop: bool,
    failed: Option<LedgerError>,
}

impl Written {
    fn push(&mut self, written: ledger::Written) {
        self.pending.push_back(written);
    }

    /// Takes the answers already in; whether the round should stop sending.
    fn stop_early(&mut self) -> bool {
        while let Some(front) = self.pending.front_mut() {
            match front.try_recv() {
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => break,
                answer => {
                    self.pending.pop_front();
                    self.note(answer.unwrap_or(Err(LedgerError::Stopped)));
                }
            }
        }
        self.stop
    }

    fn note(&mut self, answer: Result<bool, LedgerError>) {
        match answer {
            Ok(true) => {}
            Ok(false) => self.stop = true,
            Err(err) => {
                self.stop = true;
                self.failed.get_or_insert(err);
            }
        }
    }

    /// Waits until every attempt is written; the first failure to write one.
    async fn all(mut self) -> Result<(), LedgerError> {
        while let Some(written) = self.pending.pop_front() {
            self.note(ledger::kept(written).await);
        }
        self.failed.map_or(Ok(()), Err)
    }
}

/// An attempt's result as the ledger records it.
struct Classified {
    code: i16,
    http_status: i32,
    error: String,
    elapsed: Duration,
    retry_after: Option<Duration>,
}

fn classify(outcome: Result<Outcome, SendError>) -> Classified {
    match outcome {
        Ok(Outcome::Delivered { status, elapsed }) => Classified {
            code: store::DELIVERED,
            http_status: i32::from(status),
            error: String::new(),
            elapsed,
            retry_after: None,
        },
        Ok(Outcome::Gone { elapsed }) => Classified {
            code: store::GONE,
            http_status: 410,
            error: "the endpoint answered 410 Gone".to_owned(),
            elapsed,
            retry_after: None,
        },
        Ok(Outcome::Retry {
            status,
            retry_after,
            error,
            elapsed,
        }) => Classified {
            code: store::RETRYING,
            http_status: status.map_or(0, i32::from),
            error,
            elapsed,
            retry_after,
        },
        Err(err) => Classified {
            code: store::RETRYING,
            http_status: 0,
            error: format!("the endpoint could not be called: {err}"),
            elapsed: Duration::ZERO,
            retry_after: None,
        },
    }
}
