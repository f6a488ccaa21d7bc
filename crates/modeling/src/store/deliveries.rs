//! The SQL of webhook delivery: the batches a destination has frozen ahead (each delivered in
//! sequence order, with the id and body it was frozen with), and the ledger of attempts,
//! written for many attempts of many destinations in one transaction.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::activation::{Attempt, Batch, DELIVERED, DISABLED, FAILING, GAVE_UP, GONE, SUSPENDED};

/// Up to `limit` of the destination's frozen batches, first to deliver first.
pub async fn frozen(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
    limit: i64,
) -> Result<Vec<Batch>, sqlx::Error> {
    sqlx::query_as(
        "SELECT webhook_id, first_sequence, last_sequence, body, attempts, next_attempt_at
           FROM modeling.webhook_batches WHERE tenant_id = $1 AND destination_id = $2
          ORDER BY first_sequence LIMIT $3",
    )
    .bind(tenant)
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Freezes `batches` (in sequence order, due now) after the destination's last frozen one;
/// `false` when one of them was frozen already (by another replica), so the caller reads the
/// stored ones back.
pub async fn freeze(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
    batches: &[Batch],
) -> Result<bool, sqlx::Error> {
    if batches.is_empty() {
        return Ok(true);
    }
    let ids: Vec<&str> = batches.iter().map(|b| b.webhook_id.as_str()).collect();
    let firsts: Vec<i64> = batches.iter().map(|b| b.first_sequence).collect();
    let lasts: Vec<i64> = batches.iter().map(|b| b.last_sequence).collect();
    let bodies: Vec<&[u8]> = batches.iter().map(|b| b.body.as_slice()).collect();
    let due: Vec<DateTime<Utc>> = batches.iter().map(|b| b.next_attempt_at).collect();
    let done = sqlx::query(
        "INSERT INTO modeling.webhook_batches
             (tenant_id, destination_id, webhook_id, first_sequence, last_sequence, body,
              attempts, next_attempt_at)
         SELECT $1, $2, w, f, l, b, 0, d
           FROM UNNEST($3::text[], $4::bigint[], $5::bigint[], $6::bytea[], $7::timestamptz[])
                AS u(w, f, l, b, d)
         ON CONFLICT (tenant_id, destination_id, first_sequence) DO NOTHING",
    )
    .bind(tenant)
    .bind(id)
    .bind(&ids)
    .bind(&firsts)
    .bind(&lasts)
    .bind(&bodies)
    .bind(&due)
    .execute(conn)
    .await?;
    Ok(usize::try_from(done.rows_affected()).is_ok_and(|n| n == batches.len()))
}

/// Moves a destination's cursor to `head` when no trigger up to it is for the destination and
/// it has no batch frozen.
pub async fn skip_to(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
    head: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE modeling.webhook_destinations SET delivered_sequence = GREATEST(delivered_sequence, $3)
          WHERE tenant_id = $1 AND destination_id = $2
            AND NOT EXISTS (SELECT 1 FROM modeling.webhook_batches b
                             WHERE b.tenant_id = $1 AND b.destination_id = $2)",
    )
    .bind(tenant)
    .bind(id)
    .bind(head)
    .execute(conn)
    .await?;
    Ok(())
}

/// One attempt to write into the ledger, with what it means for its destination.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The tenant.
    pub tenant: String,
    /// The destination.
    pub id: String,
    /// When the destination the attempt was made for was created: a destination deleted and
    /// created again under the same id while the attempt was in flight is another one.
    pub created_at: DateTime<Utc>,
    /// The attempt.
    pub attempt: Attempt,
    /// A failure's next attempt; `None` with a failure suspends or disables the destination.
    pub retry_at: Option<DateTime<Utc>>,
}

/// Records attempts (of any destinations, each destination's in the order they were made) and
/// what they mean, inside the caller's transaction: a delivery drops its batch and moves the
/// cursor past it; a failure schedules its batch's next attempt, or (without one) suspends or
/// disables the destination. Returns, per record, whether it was kept: an attempt made for a
/// destination since deleted (or deleted and created again) is dropped.
///
/// A delivered batch that is no longer frozen (a replay dropped it while it was in flight)
/// leaves the cursor where the replay put it.
pub async fn record_attempts(
    conn: &mut PgConnection,
    records: &[AttemptRecord],
) -> Result<Vec<bool>, sqlx::Error> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<&str> = records.iter().map(|r| r.tenant.as_str()).collect();
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let created: Vec<DateTime<Utc>> = records.iter().map(|r| r.created_at).collect();
    // Locked in one order, so concurrent writers cannot deadlock.
    let alive: Vec<(String, String)> = sqlx::query_as(
        "SELECT d.tenant_id, d.destination_id
           FROM modeling.webhook_destinations d
           JOIN (SELECT DISTINCT t, i, c
                   FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) AS u(t, i, c)) u
             ON d.tenant_id = u.t AND d.destination_id = u.i AND d.created_at = u.c
          ORDER BY d.tenant_id, d.destination_id
            FOR UPDATE OF d",
    )
    .bind(&tenants)
    .bind(&ids)
    .bind(&created)
    .fetch_all(&mut *conn)
    .await?;
    let kept: Vec<bool> = records
        .iter()
        .map(|r| alive.iter().any(|(t, i)| *t == r.tenant && *i == r.id))
        .collect();
    let records: Vec<&AttemptRecord> = records
        .iter()
        .zip(&kept)
        .filter_map(|(r, keep)| keep.then_some(r))
        .collect();
    if records.is_empty() {
        return Ok(kept);
    }
    insert_attempts(conn, &records).await?;
    let delivered: Vec<&AttemptRecord> = records
        .iter()
        .copied()
        .filter(|r| r.attempt.outcome == DELIVERED)
        .collect();
    apply_deliveries(conn, &delivered).await?;
    // A destination's failure ends its run of attempts, so it follows its deliveries here.
    for failed in records.iter().filter(|r| r.attempt.outcome != DELIVERED) {
        apply_failure(conn, failed).await?;
    }
    Ok(kept)
}

/// Writes attempts into the ledger in the order given (their ids follow it).
async fn insert_attempts(
    conn: &mut PgConnection,
    records: &[&AttemptRecord],
) -> Result<(), sqlx::Error> {
    let column = |f: fn(&AttemptRecord) -> i64| records.iter().map(|r| f(r)).collect::<Vec<_>>();
    let tenants: Vec<&str> = records.iter().map(|r| r.tenant.as_str()).collect();
    let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let webhook_ids: Vec<&str> = records
        .iter()
        .map(|r| r.attempt.webhook_id.as_str())
        .collect();
    let firsts = column(|r| r.attempt.first_sequence);
    let lasts = column(|r| r.attempt.last_sequence);
    let numbers: Vec<i32> = records.iter().map(|r| r.attempt.attempt).collect();
    let times: Vec<DateTime<Utc>> = records.iter().map(|r| r.attempt.attempted_at).collect();
    let outcomes: Vec<i16> = records.iter().map(|r| r.attempt.outcome).collect();
    let statuses: Vec<i32> = records.iter().map(|r| r.attempt.http_status).collect();
    let errors: Vec<&str> = records.iter().map(|r| r.attempt.error.as_str()).collect();
    let durations = column(|r| r.attempt.duration_ms);
    sqlx::query(
        "INSERT INTO modeling.webhook_attempts
             (tenant_id, destination_id, webhook_id, first_sequence, last_sequence, attempt,
              attempted_at, outcome, http_status, error, duration_ms)
         SELECT t, i, w, f, l, a, at, o, h, e, d
           FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
                       $6::int[], $7::timestamptz[], $8::smallint[], $9::int[], $10::text[],
                       $11::bigint[]) WITH ORDINALITY AS u(t, i, w, f, l, a, at, o, h, e, d, n)
          ORDER BY n",
    )
    .bind(&tenants)
    .bind(&ids)
    .bind(&webhook_ids)
    .bind(&firsts)
    .bind(&lasts)
    .bind(&numbers)
    .bind(&times)
    .bind(&outcomes)
    .bind(&statuses)
    .bind(&errors)
    .bind(&durations)
    .execute(conn)
    .await?;
    Ok(())
}

/// Drops delivered batches and moves their destinations' cursors past the ones still frozen.
async fn apply_deliveries(
    conn: &mut PgConnection,
    delivered: &[&AttemptRecord],
) -> Result<(), sqlx::Error> {
    if delivered.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = delivered.iter().map(|r| r.tenant.as_str()).collect();
    let ids: Vec<&str> = delivered.iter().map(|r| r.id.as_str()).collect();
    let firsts: Vec<i64> = delivered.iter().map(|r| r.attempt.first_sequence).collect();
    let times: Vec<DateTime<Utc>> = delivered.iter().map(|r| r.attempt.attempted_at).collect();
    sqlx::query(
        "WITH done AS (
             SELECT t, i, f, a FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::timestamptz[])
                 AS u(t, i, f, a)),
         gone AS (
             DELETE FROM modeling.webhook_batches b USING done
              WHERE b.tenant_id = done.t AND b.destination_id = done.i
                AND b.first_sequence = done.f
          RETURNING b.tenant_id, b.destination_id, b.last_sequence),
         moved AS (
             SELECT tenant_id, destination_id, max(last_sequence) AS through
               FROM gone GROUP BY tenant_id, destination_id),
         per_destination AS (
             SELECT t, i, max(a) AS at FROM done GROUP BY t, i)
         UPDATE modeling.webhook_destinations d
            SET delivered_sequence = GREATEST(d.delivered_sequence, COALESCE(m.through, 0)),
                state = 1, consecutive_failures = 0, last_success_at = p.at
           FROM per_destination p
           LEFT JOIN moved m ON m.tenant_id = p.t AND m.destination_id = p.i
          WHERE d.tenant_id = p.t AND d.destination_id = p.i",
    )
    .bind(&tenants)
    .bind(&ids)
    .bind(&firsts)
    .bind(&times)
    .execute(conn)
    .await?;
    Ok(())
}

/// Schedules a failed batch's next attempt and marks its destination failing, suspended or
/// disabled.
async fn apply_failure(conn: &mut PgConnection, failed: &AttemptRecord) -> Result<(), sqlx::Error> {
    let attempt = &failed.attempt;
    sqlx::query(
        "UPDATE modeling.webhook_batches
            SET attempts = $4, next_attempt_at = COALESCE($5, next_attempt_at)
          WHERE tenant_id = $1 AND destination_id = $2 AND first_sequence = $3",
    )
    .bind(&failed.tenant)
    .bind(&failed.id)
    .bind(attempt.first_sequence)
    .bind(attempt.attempt)
    .bind(failed.retry_at)
    .execute(&mut *conn)
    .await?;
    let state = match attempt.outcome {
        GONE => DISABLED,
        GAVE_UP => SUSPENDED,
        _ => FAILING,
    };
    sqlx::query(
        "UPDATE modeling.webhook_destinations
            SET state = $3, consecutive_failures = consecutive_failures + 1,
                last_failure_at = $4, last_error = $5
          WHERE tenant_id = $1 AND destination_id = $2",
    )
    .bind(&failed.tenant)
    .bind(&failed.id)
    .bind(state)
    .bind(attempt.attempted_at)
    .bind(&attempt.error)
    .execute(conn)
    .await?;
    Ok(())
}
