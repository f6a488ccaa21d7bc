//! One attempt: a frozen batch sent once, and its answer as the ledger records it (with the
//! next attempt's time from the retry schedule, or none when the schedule is spent).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use touchline_webhooks::{Outcome, RetrySchedule, SendError, Sender, SigningSecret};

use crate::store::activation::{self as store, Attempt, Batch};
use crate::store::deliveries::AttemptRecord;

/// The destination an attempt is made for, as the task read it.
#[derive(Debug)]
pub(super) struct Target {
    /// The tenant.
    pub tenant: String,
    /// The destination id.
    pub id: String,
    /// When it was created (an attempt for one since replaced is dropped).
    pub created_at: DateTime<Utc>,
    /// The endpoint.
    pub url: String,
    /// The secrets that sign now.
    pub secrets: Vec<SigningSecret>,
}

/// Sends `batch` (frozen as `body`) once; the attempt as the ledger records it.
pub(super) async fn send(
    sender: Sender,
    target: Arc<Target>,
    batch: Batch,
    body: Bytes,
) -> AttemptRecord {
    let attempted_at = Utc::now();
    let signing: Vec<&SigningSecret> = target.secrets.iter().collect();
    let outcome = sender
        .send(&target.url, &batch.webhook_id, body, &signing)
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
        let delay = RetrySchedule::standard().delay_after(failed, retry_after, &mut rand::rng());
        match delay {
            Some(delay) => Some(
                attempted_at + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
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
        tracing::info!(tenant = %target.tenant, destination = %target.id, attempt = number, http_status, error = %attempt.error, "a webhook delivery failed");
    }
    AttemptRecord {
        tenant: target.tenant.clone(),
        id: target.id.clone(),
        created_at: target.created_at,
        attempt,
        retry_at,
    }
}

/// An attempt's result as the ledger records it.
pub(super) struct Classified {
    pub code: i16,
    pub http_status: i32,
    pub error: String,
    pub elapsed: Duration,
    pub retry_after: Option<Duration>,
}

pub(super) fn classify(outcome: Result<Outcome, SendError>) -> Classified {
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
