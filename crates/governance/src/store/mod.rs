//! All SQL of the governance service, by concern: the clean log and
//! cursors here, `publish` (committing cleaned batches and replays),
//! `tenant` (keys, privacy settings, the active dictionary), `dictionary`
//! (draft and versions), `quarantine` and `quality`.

pub mod corrections;
pub mod dictionary;
pub mod publish;
pub mod quality;
pub mod quarantine;
pub mod reprocess;
pub mod tenant;

use sqlx::PgPool;

/// Idempotency keys of the writes that take a `request_id`.
pub const REQUESTS: touchline_db::RequestTable =
    touchline_db::RequestTable::named("governance.idempotency");

/// A clean record read back.
#[derive(Debug, Clone, sqlx::FromRow)]
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
    sqlx::query_as(
        "SELECT tenant_id, last_sequence FROM governance.consumer_cursors WHERE consumer = $1",
    )
    .bind(consumer)
    .fetch_all(pool)
    .await
}

/// How far `consumer` (the cleaning worker) has read the tenant's raw log, and the tenant's
/// newest clean record, read in one statement so that both come from the same snapshot: every
/// clean record of an event up to the cursor is at or before it. The newest record, not the
/// head: a reserved sequence may stay unused (a duplicate found at insert), and a consumer's
/// cursor stops at the last record it read.
pub async fn clean_position(
    pool: &PgPool,
    consumer: &str,
    tenant: &str,
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT COALESCE((SELECT last_sequence FROM governance.consumer_cursors
                           WHERE consumer = $1 AND tenant_id = $2), 0),
                COALESCE((SELECT sequence FROM governance.clean_events
                           WHERE tenant_id = $2 ORDER BY sequence DESC LIMIT 1), 0)",
    )
    .bind(consumer)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// The clean log's heads.
const CLEAN_HEADS: touchline_db::HeadTable =
    touchline_db::HeadTable::named("governance.clean_heads");

/// The newest sequence of each tenant (all tenants, or the named ones).
pub async fn heads(
    pool: &PgPool,
    tenants: Option<&[String]>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    CLEAN_HEADS.read(pool, tenants).await
}

/// Up to `limit` clean records after `after`, in order.
pub async fn read_after(
    pool: &PgPool,
    tenant: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredCleanEvent>, sqlx::Error> {
    sqlx::query_as::<_, StoredCleanEvent>(
        "SELECT sequence, payload, traceparent FROM governance.clean_events
          WHERE tenant_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}
