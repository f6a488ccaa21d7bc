//! The SQL of webhook delivery: the batches a destination has frozen ahead (each delivered
//! with the id and body it was frozen with), and the ledger of attempts, written for many
//! attempts of many destinations in one transaction. Batches may be acknowledged out of order
//! (several in flight), so a destination keeps two cursors: `frozen_sequence`, where freezing
//! reads on, and `delivered_sequence`, below its oldest batch still frozen.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::activation::{Attempt, Batch, DELIVERED, DISABLED, FAILING, GAVE_UP, GONE, SUSPENDED};

/// Up to `limit` of the destination's frozen batches, by first sequence; the body is left
/// empty for those whose first sequence is in `known` (the caller holds them already).
pub async fn frozen(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
    limit: i64,
    known: &[i64],
) -> Result<Vec<Batch>, sqlx::Error> {
    sqlx::query_as(
        "SELECT webhook_id, first_sequence, last_sequence,
                CASE WHEN first_sequence = ANY($4) THEN ''::bytea ELSE body END AS body,
                attempts, next_attempt_at, lane
           FROM modeling.webhook_batches WHERE tenant_id = $1 AND destination_id = $2
          ORDER BY first_sequence LIMIT $3",
    )
    .bind(tenant)
    .bind(id)
    .bind(limit)
    .bind(known)
    .fetch_all(conn)
    .await
}

/// Freezes `batches` (due now; every trigger after the destination's `frozen_sequence` up to
/// the last of them that it takes) and moves `frozen_sequence` past them; `false` when one of
/// them was frozen already (by another replica), so the caller reads the stored ones back.
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
    let lanes: Vec<i32> = batches.iter().map(|b| b.lane).collect();
    let done = sqlx::query(
        "INSERT INTO modeling.webhook_batches
             (tenant_id, destination_id, webhook_id, first_sequence, last_sequence, body,
              attempts, next_attempt_at, lane)
         SELECT $1, $2, w, f, l, b, 0, d, n
           FROM UNNEST($3::text[], $4::bigint[], $5::bigint[], $6::bytea[], $7::timestamptz[],
                       $8::int[]) AS u(w, f, l, b, d, n)
         ON CONFLICT (tenant_id, destination_id, first_sequence) DO NOTHING",
    )
    .bind(tenant)
    .bind(id)
    .bind(&ids)
    .bind(&firsts)
    .bind(&lasts)
    .bind(&bodies)
    .bind(&due)
    .bind(&lanes)
    .execute(&mut *conn)
    .await?;
    if usize::try_from(done.rows_affected()).is_ok_and(|n| n != batches.len()) {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE modeling.webhook_destinations
            SET frozen_sequence = GREATEST(frozen_sequence, $3)
          WHERE tenant_id = $1 AND destination_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(lasts.iter().copied().max().unwrap_or_default())
    .execute(conn)
    .await?;
    Ok(true)
}

/// Moves a destination's freezing cursor to `head` when no trigger after it up to `head` is
/// for the destination, and its delivered cursor too when it has no batch frozen. Run it in
/// a transaction: the destination's row is locked first, so the update's look at the batches
/// comes after any acknowledgement holding the row has committed. Without the lock, an
/// acknowledgement of the last batch that took the row first would read the freezing cursor
/// before the move, and this update, waiting for the row, would still see the batch and keep
/// the delivered cursor: both cursors would stay apart until the next trigger.
pub async fn skip_to(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
    head: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT 1 FROM modeling.webhook_destinations
          WHERE tenant_id = $1 AND destination_id = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE modeling.webhook_destinations
            SET frozen_sequence = GREATEST(frozen_sequence, $3),
                delivered_sequence = CASE
                    WHEN EXISTS (SELECT 1 FROM modeling.webhook_batches b
                                  WHERE b.tenant_id = $1 AND b.destination_id = $2)
                    THEN delivered_sequence ELSE GREATEST(delivered_sequence, $3) END
          WHERE tenant_id = $1 AND destination_id = $2",
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
/// cursor up to the oldest batch still frozen; a failure schedules its batch's next attempt, or (without one) suspends or
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

/// Drops delivered batches and moves their destinations' cursors up to the oldest batch still
/// frozen (everything before it is acknowledged), or to the freezing cursor when none is. A
/// failing destination turns active again only once no batch of it awaits a retry; a
/// suspended or disabled one stays so (another delivery of it may land after the failure).
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
    let webhook_ids: Vec<&str> = delivered
        .iter()
        .map(|r| r.attempt.webhook_id.as_str())
        .collect();
    let times: Vec<DateTime<Utc>> = delivered.iter().map(|r| r.attempt.attempted_at).collect();
    // By id too: a batch frozen again under the same first sequence after a replay is another.
    sqlx::query(
        "DELETE FROM modeling.webhook_batches b
          USING UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[]) AS done(t, i, f, w)
          WHERE b.tenant_id = done.t AND b.destination_id = done.i AND b.first_sequence = done.f
            AND b.webhook_id = done.w",
    )
    .bind(&tenants)
    .bind(&ids)
    .bind(&firsts)
    .bind(&webhook_ids)
    .execute(&mut *conn)
    .await?;
    // A statement of its own: it must see the batches just dropped as gone.
    sqlx::query(
        "UPDATE modeling.webhook_destinations d
            SET delivered_sequence = GREATEST(d.delivered_sequence, COALESCE(
                    (SELECT min(b.first_sequence) - 1 FROM modeling.webhook_batches b
                      WHERE b.tenant_id = d.tenant_id AND b.destination_id = d.destination_id),
                    d.frozen_sequence)),
                state = CASE
                    WHEN d.state NOT IN (1, 2) THEN d.state
                    WHEN EXISTS (SELECT 1 FROM modeling.webhook_batches b
                                  WHERE b.tenant_id = d.tenant_id
                                    AND b.destination_id = d.destination_id AND b.attempts > 0)
                    THEN 2 ELSE 1 END,
                consecutive_failures = 0, last_success_at = p.at
           FROM (SELECT t, i, max(a) AS at
                   FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) AS u(t, i, a)
                  GROUP BY t, i) p
          WHERE d.tenant_id = p.t AND d.destination_id = p.i",
    )
    .bind(&tenants)
    .bind(&ids)
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
