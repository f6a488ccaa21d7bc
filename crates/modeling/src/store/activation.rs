//! The trigger log (the outbox segment changes write into) and webhook destinations with their
//! cursors, the next batch each delivers, and the ledger of attempts as it is read (delivery's
//! own writes are in `deliveries`).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::segments::NewChange;

/// The contract's `TRIGGER_TYPE_SEGMENT_ENTERED`.
pub const SEGMENT_ENTERED: i16 = 1;
/// The contract's `TRIGGER_TYPE_SEGMENT_EXITED`.
pub const SEGMENT_EXITED: i16 = 2;
/// `TRIGGER_TYPE_LIFECYCLE_STAGE_CHANGED`.
pub const LIFECYCLE_STAGE_CHANGED: i16 = 3;
/// `TRIGGER_TYPE_CHURN_FLAG_RAISED`.
pub const CHURN_FLAG_RAISED: i16 = 4;
/// `TRIGGER_TYPE_CHURN_FLAG_CLEARED`.
pub const CHURN_FLAG_CLEARED: i16 = 5;
/// `TRIGGER_TYPE_RFM_SEGMENT_CHANGED`.
pub const RFM_SEGMENT_CHANGED: i16 = 6;

/// Appends one trigger per segment change, in the caller's transaction (the one that
/// publishes the changes): each gets the tenant's next trigger sequence.
pub async fn append_segment_triggers(
    conn: &mut PgConnection,
    tenant: &str,
    segment: &str,
    changes: &[NewChange],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let (sequences, _) =
        super::next_sequences(&mut *conn, "trigger_heads", tenant, changes.len()).await?;
    let persons: Vec<Uuid> = changes.iter().map(|c| c.person).collect();
    let types: Vec<i16> = changes
        .iter()
        .map(|c| {
            if c.entered {
                SEGMENT_ENTERED
            } else {
                SEGMENT_EXITED
            }
        })
        .collect();
    let reasons: Vec<i16> = changes.iter().map(|c| c.reason).collect();
    sqlx::query(
        "INSERT INTO modeling.triggers
             (tenant_id, sequence, trigger_type, person_id, segment_id, reason, triggered_at)
         SELECT $1, s, t, p, $2, r, $7
           FROM UNNEST($3::bigint[], $4::smallint[], $5::uuid[], $6::smallint[]) AS x(s, t, p, r)",
    )
    .bind(tenant)
    .bind(segment)
    .bind(&sequences)
    .bind(&types)
    .bind(&persons)
    .bind(&reasons)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// One trigger as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredTrigger {
    /// Its place in the tenant's trigger log.
    pub sequence: i64,
    /// The contract's `TriggerType` number.
    pub trigger_type: i16,
    /// The person.
    pub person_id: Uuid,
    /// For segment triggers, the segment id.
    pub segment_id: String,
    /// For segment triggers, the contract's `SegmentChangeReason` number.
    pub reason: i16,
    /// When it happened.
    pub triggered_at: DateTime<Utc>,
    /// Model-output triggers: the stage or RFM segment before (contract number).
    pub previous_value: i16,
    /// Model-output triggers: the stage or RFM segment now.
    pub current_value: i16,
    /// Churn triggers: the churn score now, when the person has one.
    pub churn_score: Option<f64>,
}

/// Which triggers a reader wants.
#[derive(Debug, Clone, Default)]
pub struct TriggerFilter {
    /// These types; empty for every type.
    pub types: Vec<i16>,
    /// For segment triggers, these segments; empty for every segment.
    pub segments: Vec<String>,
}

/// Up to `limit` triggers after `after` that pass `filter`.
pub async fn triggers_after(
    executor: impl sqlx::PgExecutor<'_>,
    tenant: &str,
    filter: &TriggerFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredTrigger>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sequence, trigger_type, person_id, segment_id, reason, triggered_at,
                previous_value, current_value, churn_score
           FROM modeling.triggers
          WHERE tenant_id = $1 AND sequence > $2
            AND (cardinality($3::smallint[]) = 0 OR trigger_type = ANY($3))
            AND (cardinality($4::text[]) = 0 OR segment_id = ANY($4))
          ORDER BY sequence LIMIT $5",
    )
    .bind(tenant)
    .bind(after)
    .bind(&filter.types)
    .bind(&filter.segments)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// The tenant's newest trigger sequence and the last one pruned.
pub async fn trigger_head(
    executor: impl sqlx::PgExecutor<'_>,
    tenant: &str,
) -> Result<(i64, i64), sqlx::Error> {
    Ok(sqlx::query_as(
        "SELECT head_sequence, pruned_through FROM modeling.trigger_heads WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(executor)
    .await?
    .unwrap_or((0, 0)))
}

/// Drops triggers older than `keep` and moves the pruned-through marks.
pub async fn prune_triggers(pool: &PgPool, keep: std::time::Duration) -> Result<(), sqlx::Error> {
    let keep_secs = keep.as_secs_f64();
    sqlx::query(
        "WITH gone AS (
             DELETE FROM modeling.triggers WHERE triggered_at < now() - make_interval(secs => $1)
          RETURNING tenant_id, sequence),
         marks AS (SELECT tenant_id, max(sequence) AS through FROM gone GROUP BY tenant_id)
         UPDATE modeling.trigger_heads h SET pruned_through = GREATEST(h.pruned_through, m.through)
           FROM marks m WHERE h.tenant_id = m.tenant_id",
    )
    .bind(keep_secs)
    .execute(pool)
    .await?;
    sqlx::query(
        "DELETE FROM modeling.webhook_attempts WHERE attempted_at < now() - make_interval(secs => $1)",
    )
    .bind(keep_secs)
    .execute(pool)
    .await?;
    Ok(())
}

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
}

const DESTINATION: &str =
    "tenant_id, destination_id, display_name, url, trigger_types, segment_ids,
    max_batch_size, signing_secret, previous_secret, previous_secret_until, delivered_sequence,
    state, consecutive_failures, last_success_at, last_failure_at, last_error, created_at,
    max_deliveries_per_second";

/// The contract's `WEBHOOK_STATE_ACTIVE`.
pub const ACTIVE: i16 = 1;
/// `WEBHOOK_STATE_FAILING`.
pub const FAILING: i16 = 2;
/// `WEBHOOK_STATE_SUSPENDED`.
pub const SUSPENDED: i16 = 3;
/// `WEBHOOK_STATE_DISABLED`.
pub const DISABLED: i16 = 4;

/// Creates a destination; `false` when the id is taken.
pub async fn insert_destination(
    conn: &mut PgConnection,
    d: &Destination,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO modeling.webhook_destinations
             (tenant_id, destination_id, display_name, url, trigger_types, segment_ids,
              max_batch_size, signing_secret, delivered_sequence, max_deliveries_per_second)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
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
            "UPDATE modeling.webhook_destinations SET delivered_sequence = $3
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

/// A batch a destination has frozen (delivered in `first_sequence` order).
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
}

/// The destination's next batch to deliver, if any is frozen.
pub async fn batch(pool: &PgPool, tenant: &str, id: &str) -> Result<Option<Batch>, sqlx::Error> {
    sqlx::query_as(
        "SELECT webhook_id, first_sequence, last_sequence, body, attempts, next_attempt_at
           FROM modeling.webhook_batches WHERE tenant_id = $1 AND destination_id = $2
          ORDER BY first_sequence LIMIT 1",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
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

/// One person's model outputs as last seen (contract numbers; 0 for none).
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct ModelState {
    /// The person.
    pub person_id: Uuid,
    /// `LifecycleStage` number.
    pub lifecycle_stage: i16,
    /// `RfmSegment` number.
    pub rfm_segment: i16,
    /// Flagged by the inactivity rule.
    pub churned: bool,
    /// 1 − P(alive), when scored.
    pub churn_score: Option<f64>,
}

/// A model-output trigger to append.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelTrigger {
    /// The trigger type number.
    pub trigger_type: i16,
    /// The person.
    pub person: Uuid,
    /// Before.
    pub previous_value: i16,
    /// Now.
    pub current_value: i16,
    /// The churn score now.
    pub churn_score: Option<f64>,
}

/// Whether the tenant's model states were recorded once already.
pub async fn has_baseline(conn: &mut PgConnection, tenant: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, i32>(
        "SELECT 1 FROM modeling.model_state_baselines WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// Every person's model state of the tenant, by person id.
pub async fn model_states(
    conn: &mut PgConnection,
    tenant: &str,
) -> Result<Vec<ModelState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT person_id, lifecycle_stage, rfm_segment, churned, churn_score
           FROM modeling.person_model_states WHERE tenant_id = $1 ORDER BY person_id",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await
}

/// Stores `states` (changed or new) and the baseline mark, in the caller's transaction.
pub async fn save_model_states(
    conn: &mut PgConnection,
    tenant: &str,
    states: &[ModelState],
) -> Result<(), sqlx::Error> {
    let persons: Vec<Uuid> = states.iter().map(|s| s.person_id).collect();
    let stages: Vec<i16> = states.iter().map(|s| s.lifecycle_stage).collect();
    let segments: Vec<i16> = states.iter().map(|s| s.rfm_segment).collect();
    let churned: Vec<bool> = states.iter().map(|s| s.churned).collect();
    let scores: Vec<Option<f64>> = states.iter().map(|s| s.churn_score).collect();
    sqlx::query(
        "INSERT INTO modeling.person_model_states
             (tenant_id, person_id, lifecycle_stage, rfm_segment, churned, churn_score)
         SELECT $1, p, l, r, c, s
           FROM UNNEST($2::uuid[], $3::smallint[], $4::smallint[], $5::bool[], $6::float8[])
                AS t(p, l, r, c, s)
         ON CONFLICT (tenant_id, person_id) DO UPDATE
            SET lifecycle_stage = EXCLUDED.lifecycle_stage, rfm_segment = EXCLUDED.rfm_segment,
                churned = EXCLUDED.churned, churn_score = EXCLUDED.churn_score",
    )
    .bind(tenant)
    .bind(&persons)
    .bind(&stages)
    .bind(&segments)
    .bind(&churned)
    .bind(&scores)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO modeling.model_state_baselines (tenant_id) VALUES ($1)
         ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant)
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends model-output triggers with the tenant's next sequences, in the caller's
/// transaction.
pub async fn append_model_triggers(
    conn: &mut PgConnection,
    tenant: &str,
    triggers: &[ModelTrigger],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if triggers.is_empty() {
        return Ok(());
    }
    let (sequences, _) =
        super::next_sequences(&mut *conn, "trigger_heads", tenant, triggers.len()).await?;
    let types: Vec<i16> = triggers.iter().map(|t| t.trigger_type).collect();
    let persons: Vec<Uuid> = triggers.iter().map(|t| t.person).collect();
    let before: Vec<i16> = triggers.iter().map(|t| t.previous_value).collect();
    let now: Vec<i16> = triggers.iter().map(|t| t.current_value).collect();
    let scores: Vec<Option<f64>> = triggers.iter().map(|t| t.churn_score).collect();
    sqlx::query(
        "INSERT INTO modeling.triggers
             (tenant_id, sequence, trigger_type, person_id, triggered_at, previous_value,
              current_value, churn_score)
         SELECT $1, s, t, p, $2, b, n, c
           FROM UNNEST($3::bigint[], $4::smallint[], $5::uuid[], $6::smallint[], $7::smallint[],
                       $8::float8[]) AS x(s, t, p, b, n, c)",
    )
    .bind(tenant)
    .bind(at)
    .bind(&sequences)
    .bind(&types)
    .bind(&persons)
    .bind(&before)
    .bind(&now)
    .bind(&scores)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the tenant's model-state lock until the transaction ends; `false` when another
/// worker holds it.
pub async fn try_lock_model_states(
    conn: &mut PgConnection,
    tenant: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('model-states:' || $1, 0))",
    )
    .bind(tenant)
    .fetch_one(conn)
    .await
}

/// The tenants with a webhook destination.
pub async fn destination_tenants(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT tenant_id FROM modeling.webhook_destinations")
        .fetch_all(pool)
        .await
}
