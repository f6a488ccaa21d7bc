//! All SQL of the collection service.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

/// An event to append to the raw log.
#[derive(Debug, Clone)]
pub struct NewRawEvent {
    /// Client message id (unique per tenant).
    pub message_id: String,
    /// Event name as sent.
    pub event_name: String,
    /// Source id.
    pub source: String,
    /// Channel.
    pub channel: String,
    /// The encoded `touchline.common.v1.Event`.
    pub payload: Vec<u8>,
}

/// A record read back from the raw log.
#[derive(Debug, Clone)]
pub struct StoredRawEvent {
    /// Position in the tenant's log.
    pub sequence: i64,
    /// The encoded `touchline.common.v1.Event`.
    pub payload: Vec<u8>,
    /// When it was committed.
    pub received_at: DateTime<Utc>,
    /// Trace context of the ingest call.
    pub traceparent: Option<String>,
}

/// Appends `events` to the tenant's raw log in one transaction and returns,
/// per event, its sequence or `None` when its message id was stored before.
/// The caller removes repeats within the batch first.
pub async fn append(
    pool: &PgPool,
    tenant: &str,
    events: &[NewRawEvent],
    received_at: DateTime<Utc>,
    traceparent: Option<&str>,
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let count =
        i64::try_from(events.len()).map_err(|err| sqlx::Error::Protocol(err.to_string()))?;
    let mut tx = pool.begin().await?;
    // Taking the head row lock first serialises this tenant's appends, so
    // sequences become visible in order.
    let last: i64 = sqlx::query_scalar(
        "INSERT INTO collection.log_heads (tenant_id, last_sequence) VALUES ($1, $2)
         ON CONFLICT (tenant_id) DO UPDATE
           SET last_sequence = collection.log_heads.last_sequence + EXCLUDED.last_sequence,
               updated_at = now()
         RETURNING last_sequence",
    )
    .bind(tenant)
    .bind(count)
    .fetch_one(&mut *tx)
    .await?;
    let first = last - count + 1;
    let sequences: Vec<i64> = (first..=last).collect();
    let message_ids: Vec<&str> = events.iter().map(|e| e.message_id.as_str()).collect();
    let names: Vec<&str> = events.iter().map(|e| e.event_name.as_str()).collect();
    let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
    let channels: Vec<&str> = events.iter().map(|e| e.channel.as_str()).collect();
    let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
    let inserted = sqlx::query(
        "INSERT INTO collection.raw_events
           (tenant_id, sequence, message_id, event_name, source, channel, received_at, payload, traceparent)
         SELECT $1, s, m, n, src, ch, $7, p, $8
           FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $9::bytea[])
             AS t(s, m, n, src, ch, p)
         ON CONFLICT (tenant_id, message_id) DO NOTHING
         RETURNING sequence",
    )
    .bind(tenant)
    .bind(&sequences)
    .bind(&message_ids)
    .bind(&names)
    .bind(&sources)
    .bind(&channels)
    .bind(received_at)
    .bind(traceparent)
    .bind(&payloads)
    .fetch_all(&mut *tx)
    .await?;
    if !inserted.is_empty() {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::RAW_LOG_CHANNEL)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;

    let mut stored = vec![false; events.len()];
    for row in inserted {
        let sequence: i64 = row.try_get(0)?;
        if let Some(slot) = usize::try_from(sequence - first)
            .ok()
            .and_then(|i| stored.get_mut(i))
        {
            *slot = true;
        }
    }
    Ok(sequences
        .iter()
        .zip(stored)
        .map(|(sequence, stored)| stored.then_some(*sequence))
        .collect())
}

/// The newest sequence of each tenant (all tenants, or the named ones).
pub async fn heads(
    pool: &PgPool,
    tenants: Option<&[String]>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = match tenants {
        None => {
            sqlx::query(
                "SELECT tenant_id, last_sequence FROM collection.log_heads ORDER BY tenant_id",
            )
            .fetch_all(pool)
            .await?
        }
        Some(tenants) => {
            sqlx::query(
                "SELECT tenant_id, last_sequence FROM collection.log_heads
                  WHERE tenant_id = ANY($1) ORDER BY tenant_id",
            )
            .bind(tenants)
            .fetch_all(pool)
            .await?
        }
    };
    rows.into_iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Up to `limit` records of the tenant's log after `after`, in order.
pub async fn read_after(
    pool: &PgPool,
    tenant: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredRawEvent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT sequence, payload, received_at, traceparent FROM collection.raw_events
          WHERE tenant_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(StoredRawEvent {
                sequence: row.try_get(0)?,
                payload: row.try_get(1)?,
                received_at: row.try_get(2)?,
                traceparent: row.try_get(3)?,
            })
        })
        .collect()
}
