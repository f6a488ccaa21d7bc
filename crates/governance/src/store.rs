//! All SQL of the governance service.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

/// A clean event ready to append.
#[derive(Debug, Clone)]
pub struct NewCleanEvent {
    /// The raw sequence it came from, kept as its clean sequence.
    pub sequence: i64,
    /// Client message id.
    pub message_id: String,
    /// Canonical name.
    pub event_name: String,
    /// Channel.
    pub channel: String,
    /// When it happened.
    pub event_time: DateTime<Utc>,
    /// Encoded `CleanEvent`.
    pub payload: Vec<u8>,
    /// Trace context of the cleaning step.
    pub traceparent: Option<String>,
}

/// A raw event that could not be cleaned.
#[derive(Debug, Clone)]
pub struct NewQuarantined {
    /// Raw sequence.
    pub sequence: i64,
    /// Client message id.
    pub message_id: String,
    /// Reason code.
    pub reason: String,
    /// Offending field.
    pub field: String,
    /// Details.
    pub detail: String,
}

/// A clean record read back.
#[derive(Debug, Clone)]
pub struct StoredCleanEvent {
    /// Position in the clean log.
    pub sequence: i64,
    /// Encoded `CleanEvent`.
    pub payload: Vec<u8>,
    /// Trace context of the cleaning step.
    pub traceparent: Option<String>,
}

/// The cursors `consumer` has committed, per tenant.
pub async fn load_cursors(
    pool: &PgPool,
    consumer: &str,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query(
        "SELECT tenant_id, last_sequence FROM governance.consumer_cursors WHERE consumer = $1",
    )
    .bind(consumer)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
    .collect()
}

/// Commits one upstream batch: its clean and quarantined records, the clean
/// log head, and the consumed cursor, all in one transaction. Re-committing
/// a batch (after a crash before the cursor moved) changes nothing.
pub async fn commit_batch(
    pool: &PgPool,
    tenant: &str,
    clean: &[NewCleanEvent],
    quarantined: &[NewQuarantined],
    consumer: &str,
    consumed_through: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    if !clean.is_empty() {
        let sequences: Vec<i64> = clean.iter().map(|e| e.sequence).collect();
        let ids: Vec<&str> = clean.iter().map(|e| e.message_id.as_str()).collect();
        let names: Vec<&str> = clean.iter().map(|e| e.event_name.as_str()).collect();
        let channels: Vec<&str> = clean.iter().map(|e| e.channel.as_str()).collect();
        let times: Vec<DateTime<Utc>> = clean.iter().map(|e| e.event_time).collect();
        let payloads: Vec<&[u8]> = clean.iter().map(|e| e.payload.as_slice()).collect();
        let traces: Vec<Option<&str>> = clean.iter().map(|e| e.traceparent.as_deref()).collect();
        sqlx::query(
            "INSERT INTO governance.clean_events
               (tenant_id, sequence, message_id, event_name, channel, event_time, payload, traceparent)
             SELECT $1, s, m, n, c, t, p, tp
               FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::bytea[], $8::text[])
                 AS u(s, m, n, c, t, p, tp)
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(&sequences)
        .bind(&ids)
        .bind(&names)
        .bind(&channels)
        .bind(&times)
        .bind(&payloads)
        .bind(&traces)
        .execute(&mut *tx)
        .await?;
        let last = sequences.iter().copied().max().unwrap_or(0);
        sqlx::query(
            "INSERT INTO governance.clean_heads (tenant_id, last_sequence) VALUES ($1, $2)
             ON CONFLICT (tenant_id) DO UPDATE
               SET last_sequence = GREATEST(governance.clean_heads.last_sequence, EXCLUDED.last_sequence),
                   updated_at = now()",
        )
        .bind(tenant)
        .bind(last)
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::CLEAN_LOG_CHANNEL)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
    }
    for q in quarantined {
        sqlx::query(
            "INSERT INTO governance.quarantine (tenant_id, sequence, message_id, reason, field, detail)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(q.sequence)
        .bind(&q.message_id)
        .bind(&q.reason)
        .bind(&q.field)
        .bind(&q.detail)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO governance.consumer_cursors (consumer, tenant_id, last_sequence) VALUES ($1, $2, $3)
         ON CONFLICT (consumer, tenant_id) DO UPDATE
           SET last_sequence = GREATEST(governance.consumer_cursors.last_sequence, EXCLUDED.last_sequence),
               updated_at = now()",
    )
    .bind(consumer)
    .bind(tenant)
    .bind(consumed_through)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The newest clean sequence of each tenant (all, or the named ones).
pub async fn heads(
    pool: &PgPool,
    tenants: Option<&[String]>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let query = match tenants {
        None => sqlx::query("SELECT tenant_id, last_sequence FROM governance.clean_heads ORDER BY tenant_id"),
        Some(tenants) => sqlx::query(
            "SELECT tenant_id, last_sequence FROM governance.clean_heads WHERE tenant_id = ANY($1) ORDER BY tenant_id",
        )
        .bind(tenants.to_vec()),
    };
    query
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Up to `limit` clean records after `after`, in order.
pub async fn read_after(
    pool: &PgPool,
    tenant: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredCleanEvent>, sqlx::Error> {
    sqlx::query(
        "SELECT sequence, payload, traceparent FROM governance.clean_events
          WHERE tenant_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|row| {
        Ok(StoredCleanEvent {
            sequence: row.try_get(0)?,
            payload: row.try_get(1)?,
            traceparent: row.try_get(2)?,
        })
    })
    .collect()
}
