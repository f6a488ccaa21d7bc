//! The delivery worker: one task per delivering destination, so a slow or dead endpoint
//! holds up only its own queue. A task freezes the next batch of its triggers (id and body
//! fixed before the first attempt, so every retry is the same message), sends it, records the
//! attempt with what it means in one transaction, and waits as the retry schedule says. The
//! work is I/O on the async runtime; model runs use the blocking pool, so the two never wait
//! for the same threads.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use tokio::task::JoinHandle;
use touchline_runtime::Shutdown;
use touchline_webhooks::{Outcome, RetrySchedule, SendError, Sender, SenderConfig, SigningSecret};

use super::super::Modeling;
use super::body::delivery_body;
use crate::store::activation::{self as store, Attempt, Batch, Destination, TriggerFilter};

/// How often the set of delivering destinations is read again.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);
/// The longest a task sleeps before looking at its destination again (deleted, resumed).
const RECHECK: Duration = Duration::from_secs(1);

/// Pushes every destination's triggers.
#[derive(Debug, Clone)]
pub struct DeliveryWorker {
    modeling: Modeling,
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
                        tenant: key.0,
                        id: key.1,
                    };
                    tokio::spawn(task.run(shutdown.clone()))
                });
            }
        }
        for (_, task) in tasks {
            task.abort();
        }
    }
}

/// One destination's queue.
struct EndpointTask {
    modeling: Modeling,
    sender: Sender,
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

    async fn step(&self) -> Result<Step, sqlx::Error> {
        let pool = &self.modeling.pool;
        let Some(destination) = store::destination(pool, &self.tenant, &self.id).await? else {
            return Ok(Step::Stop);
        };
        if !matches!(destination.state, store::ACTIVE | store::FAILING) {
            return Ok(Step::Stop);
        }
        let batch = match store::batch(pool, &self.tenant, &self.id).await? {
            Some(batch) => batch,
            None => match self.freeze_next(&destination).await? {
                Some(batch) => batch,
                None => return Ok(Step::Wait(RECHECK)),
            },
        };
        let now = Utc::now();
        if batch.next_attempt_at > now {
            let wait = (batch.next_attempt_at - now).to_std().unwrap_or(RECHECK);
            return Ok(Step::Wait(wait));
        }
        let started = tokio::time::Instant::now();
        self.attempt(&destination, batch).await?;
        // The endpoint's own rate limit: attempts at least 1/rate apart.
        if let Ok(rate) = u32::try_from(destination.max_deliveries_per_second)
            && rate > 0
        {
            tokio::time::sleep_until(started + Duration::from_secs(1) / rate).await;
        }
        Ok(Step::Again)
    }

    /// Freezes the destination's next batch; `None` when no trigger is waiting for it.
    async fn freeze_next(&self, destination: &Destination) -> Result<Option<Batch>, sqlx::Error> {
        let pool = &self.modeling.pool;
        // The head first: every trigger up to it is committed, so none found past the cursor
        // means none for this destination up to the head.
        let (head, _) = store::trigger_head(pool, &self.tenant).await?;
        let filter = TriggerFilter {
            types: destination.trigger_types.clone(),
            segments: destination.segment_ids.clone(),
        };
        let triggers = store::triggers_after(
            pool,
            &self.tenant,
            &filter,
            destination.delivered_sequence,
            i64::from(destination.max_batch_size),
        )
        .await?;
        let (Some(first), Some(last)) = (triggers.first(), triggers.last()) else {
            if head > destination.delivered_sequence {
                store::skip_to(pool, &self.tenant, &self.id, head).await?;
            }
            return Ok(None);
        };
        let batch = Batch {
            webhook_id: format!("msg_{}_{}_{}", self.id, first.sequence, last.sequence),
            first_sequence: first.sequence,
            last_sequence: last.sequence,
            body: delivery_body(&self.tenant, &triggers),
            attempts: 0,
            next_attempt_at: Utc::now(),
        };
        store::freeze(pool, &self.tenant, &self.id, &batch).await?;
        // Another replica may have frozen one first: deliver whichever is stored.
        store::batch(pool, &self.tenant, &self.id).await
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

    async fn attempt(&self, destination: &Destination, batch: Batch) -> Result<(), sqlx::Error> {
        let secrets = Self::secrets(destination);
        let signing: Vec<&SigningSecret> = secrets.iter().collect();
        let attempted_at = Utc::now();
        let outcome = self
            .sender
            .send(
                &destination.url,
                &batch.webhook_id,
                Bytes::from(batch.body.clone()),
                &signing,
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
        store::record_attempt(
            &self.modeling.pool,
            &self.tenant,
            &self.id,
            destination.created_at,
            &attempt,
            retry_at,
        )
        .await
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
