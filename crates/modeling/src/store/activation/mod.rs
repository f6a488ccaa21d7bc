//! Webhook destinations with their cursors, the next batch each delivers, and the ledger of
//! attempts as it is read (delivery's own writes are in `deliveries`). The trigger log (the
//! outbox segment changes write into) is in `triggers`, the model outputs last seen per person
//! in `model_states`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

mod definitions;
mod model_states;
mod triggers;

pub use definitions::*;
pub use model_states::*;
pub use triggers::*;

/// A destination as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Destination {
    /// The tenant.
    pub tenant_id: String,
    /// The id.
    pub destination_id: String,
    /// For people.
    pub display_name: String,
    /// The endpoint.
    pub url: String,
    /// Trigger types delivered; empty for all.
    pub trigger_types: Vec<i16>,
    /// Segments delivered; empty for all.
    pub segment_ids: Vec<String>,
    /// Most triggers a delivery carries.
    pub max_batch_size: i32,
    /// The current secret (`whsec_…`).
    pub signing_secret: String,
    /// The secret before a rotation, still signing until `previous_secret_until`.
    pub previous_secret: Option<String>,
    /// When the previous secret stops signing.
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// The last trigger sequence the endpoint acknowledged.
    pub delivered_sequence: i64,
    /// The contract's `WebhookState` number.
    pub state: i16,
    /// Failed attempts since the last success.
    pub consecutive_failures: i32,
    /// The last success.
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failure.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// What went wrong last.
    pub last_error: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Most attempts a second; 0 for no limit.
    pub max_deliveries_per_second: i32,
    /// Identifier types each trigger carries; empty for none.
    pub identifier_types: Vec<String>,
    /// The definitions whose triggers it delivers; empty for the raw log.
    pub definition_ids: Vec<String>,
    /// The contract's `WebhookOrdering` number ([`SEQUENCE`], [`PER_PERSON`], [`UNORDERED`]).
    pub ordering: i16,
    /// Most deliveries in flight at once (the lanes of a per-person destination).
    pub max_concurrency: i32,
    /// Every trigger up to it that the destination takes is frozen into a batch or delivered.
    pub frozen_sequence: i64,
}

const DESTINATION: &str =
    "tenant_id, destination_id, display_name, url, trigger_types, segment_ids,
    max_batch_size, signing_secret, previous_secret, previous_secret_until, delivered_sequence,
    state, consecutive_failures, last_success_at, last_failure_at, last_error, created_at,
    max_deliveries_per_second, identifier_types, definition_ids, ordering, max_concurrency,
    frozen_sequence";

/// The contract's `WEBHOOK_STATE_ACTIVE`.
pub const ACTIVE: i16 = 1;
/// `WEBHOOK_STATE_FAILING`.
pub const FAILING: i16 = 2;
/// `WEBHOOK_STATE_SUSPENDED`.
pub const SUSPENDED: i16 = 3;
/// `WEBHOOK_STATE_DISABLED`.
pub const DISABLED: i16 = 4;

/// `WEBHOOK_ORDERING_SEQUENCE`.
pub const SEQUENCE: i16 = 1;
/// `WEBHOOK_ORDERING_PER_PERSON`.
pub const PER_PERSON: i16 = 2;
/// `WEBHOOK_ORDERING_UNORDERED`.
pub const UNORDERED: i16 = 3;

/// Creates a destination; `false` when the id is taken.
pub async fn insert_destination(
    conn: &mut PgConnection,
    d: &Destination,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO modeling.webhook_destinations
             (tenant_id, destination_id, display_name, url, trigger_types, segment_ids,
              max_batch_size, signing_secret, delivered_sequence, max_deliveries_per_second,
              identifier_types, definition_ids, ordering, max_concurrency, frozen_sequence)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $9)
         ON CONFLICT (tenant_id, destination_id) DO NOTHING",
    )
    .bind(&d.tenant_id)
    .bind(&d.destination_id)
    .bind(&d.display_name)
    .bind(&d.url)
    .bind(&d.trigger_types)
    .bind(&d.segment_ids)
    .bind(d.max_batch_size)
    .bind(&d.signing_secret)
    .bind(d.delivered_sequence)
    .bind(d.max_deliveries_per_second)
    .bind(&d.identifier_types)
    .bind(&d.definition_ids)
    .bind(d.ordering)
    .bind(d.max_concurrency)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One destination.
pub async fn destination(
    executor: impl sqlx::PgExecutor<'_>,
    tenant: &str,
    id: &str,
) -> Result<Option<Destination>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {DESTINATION} FROM modeling.webhook_destinations
          WHERE tenant_id = $1 AND destination_id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// Locks a destination's row until the caller's transaction ends: taken first by every
/// transaction that writes the destination with its batches or ledger, so they cannot
/// deadlock with the ledger writer (which locks destinations first too).
async fn lock_destination(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT 1 FROM modeling.webhook_destinations
          WHERE tenant_id = $1 AND destination_id = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(())
}

/// Destinations after `after`, by id.
pub async fn destinations(
    pool: &PgPool,
    tenant: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<Destination>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {DESTINATION} FROM modeling.webhook_destinations
          WHERE tenant_id = $1 AND destination_id > $2 ORDER BY destination_id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Every destination that is delivering (active or failing), of every tenant.
pub async fn delivering(pool: &PgPool) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT tenant_id, destination_id FROM modeling.webhook_destinations
          WHERE state IN (1, 2)",
    )
    .fetch_all(pool)
    .await
}

/// The destinations that deliver definition `definition_id`'s triggers.
pub async fn delivering_definition(
    conn: &mut PgConnection,
    tenant: &str,
    definition_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT destination_id FROM modeling.webhook_destinations
          WHERE tenant_id = $1 AND $2 = ANY(definition_ids) ORDER BY destination_id",
    )
    .bind(tenant)
    .bind(definition_id)
    .fetch_all(conn)
    .await
}

/// Deletes a destination with its batch and ledger; `false` when it did not exist.
pub async fn delete_destination(
    pool: &PgPool,
    tenant: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    lock_destination(&mut tx, tenant, id).await?;
    for table in ["webhook_batches", "webhook_attempts"] {
        sqlx::query(&format!(
            "DELETE FROM modeling.{table} WHERE tenant_id = $1 AND destination_id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    let done = sqlx::query(
        "DELETE FROM modeling.webhook_destinations WHERE tenant_id = $1 AND destination_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Makes a destination deliver again, from `after` when given (dropping its batch), or from
/// where it stopped.
pub async fn resume(
    pool: &PgPool,
    tenant: &str,
    id: &str,
    after: Option<i64>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    lock_destination(&mut tx, tenant, id).await?;
    if let Some(after) = after {
        sqlx::query(
            "DELETE FROM modeling.webhook_batches WHERE tenant_id = $1 AND destination_id = $2",
        )
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE modeling.webhook_destinations SET delivered_sequence = $3, frozen_sequence = $3
              WHERE tenant_id = $1 AND destination_id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(after)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE modeling.webhook_batches SET attempts = 0, next_attempt_at = now()
              WHERE tenant_id = $1 AND destination_id = $2",
        )
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE modeling.webhook_destinations SET state = 1, consecutive_failures = 0
          WHERE tenant_id = $1 AND destination_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// A batch a destination has frozen (in `first_sequence` order; see `delivery::dispatch`
/// for which wait for which).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Batch {
    /// Its `webhook-id`.
    pub webhook_id: String,
    /// Its first trigger sequence.
    pub first_sequence: i64,
    /// Its last trigger sequence.
    pub last_sequence: i64,
    /// The frozen body.
    pub body: Vec<u8>,
    /// Attempts made so far.
    pub attempts: i32,
    /// When the next is due.
    pub next_attempt_at: DateTime<Utc>,
    /// The lane of a per-person destination's batch (0 otherwise).
    pub lane: i32,
}

/// When the destination's earliest retry of a failed batch is due, if one failed.
pub async fn next_retry(
    pool: &PgPool,
    tenant: &str,
    id: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT min(next_attempt_at) FROM modeling.webhook_batches
          WHERE tenant_id = $1 AND destination_id = $2 AND attempts > 0",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(pool)
    .await
}

/// One attempt as recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attempt {
    /// The batch's `webhook-id`.
    pub webhook_id: String,
    /// Its first sequence.
    pub first_sequence: i64,
    /// Its last sequence.
    pub last_sequence: i64,
    /// 1 for the first attempt of the batch.
    pub attempt: i32,
    /// When.
    pub attempted_at: DateTime<Utc>,
    /// The contract's `WebhookAttemptOutcome` number.
    pub outcome: i16,
    /// The HTTP status, 0 without an answer.
    pub http_status: i32,
    /// What went wrong.
    pub error: String,
    /// How long it took.
    pub duration_ms: i64,
}

/// `WEBHOOK_ATTEMPT_OUTCOME_DELIVERED`.
pub const DELIVERED: i16 = 1;
/// `WEBHOOK_ATTEMPT_OUTCOME_RETRYING`.
pub const RETRYING: i16 = 2;
/// `WEBHOOK_ATTEMPT_OUTCOME_SUSPENDED`.
pub const GAVE_UP: i16 = 3;
/// `WEBHOOK_ATTEMPT_OUTCOME_DISABLED`.
pub const GONE: i16 = 4;

/// A page of a destination's attempts, newest first, before attempt id `before` (0: newest).
pub async fn attempts(
    pool: &PgPool,
    tenant: &str,
    id: &str,
    before: i64,
    limit: i64,
) -> Result<Vec<(i64, Attempt)>, sqlx::Error> {
    let rows: Vec<AttemptRow> = sqlx::query_as(
        "SELECT attempt_id, webhook_id, first_sequence, last_sequence, attempt, attempted_at,
                outcome, http_status, error, duration_ms
           FROM modeling.webhook_attempts
          WHERE tenant_id = $1 AND destination_id = $2 AND ($3 = 0 OR attempt_id < $3)
          ORDER BY attempt_id DESC LIMIT $4",
    )
    .bind(tenant)
    .bind(id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.attempt_id, r.attempt))
        .collect())
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    attempt_id: i64,
    #[sqlx(flatten)]
    attempt: Attempt,
}

/// The destination a request id already created, with the secret generated for it.
pub async fn recorded_request(
    pool: &PgPool,
    tenant: &str,
    request_id: &str,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT destination_id, secret FROM modeling.webhook_requests
          WHERE tenant_id = $1 AND request_id = $2 AND created_at > now() - interval '1 day'",
    )
    .bind(tenant)
    .bind(request_id)
    .fetch_optional(pool)
    .await
}

/// Records what `request_id` created (and the secret generated, returned to a retry).
pub async fn record_request(
    conn: &mut PgConnection,
    tenant: &str,
    request_id: &str,
    destination: &str,
    secret: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO modeling.webhook_requests (tenant_id, request_id, destination_id, secret)
         VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, request_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(request_id)
    .bind(destination)
    .bind(secret)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes `secret` the destination's signing secret, the current one signing too until
/// `previous_until`.
pub async fn rotate_secret(
    pool: &PgPool,
    tenant: &str,
    id: &str,
    secret: &str,
    previous_until: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE modeling.webhook_destinations
            SET previous_secret = signing_secret, previous_secret_until = $4, signing_secret = $3
          WHERE tenant_id = $1 AND destination_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(secret)
    .bind(previous_until)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The tenants with a webhook destination or a trigger definition: those whose model-output
/// triggers are computed.
pub async fn destination_tenants(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT tenant_id FROM modeling.webhook_destinations
         UNION SELECT tenant_id FROM modeling.trigger_definitions",
    )
    .fetch_all(pool)
    .await
}
