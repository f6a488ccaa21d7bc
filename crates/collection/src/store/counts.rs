//! Ingest counters per source and UTC hour of receipt.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// Counter increments for one source in one hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct CountDelta {
    /// Source id as events carried it.
    pub source: String,
    /// Newly committed events.
    pub accepted: i64,
    /// Message-id duplicates.
    pub duplicates: i64,
    /// Events rejected at ingest.
    pub rejected: i64,
}

/// Adds `deltas` to the counters of `hour`, inside the caller's transaction.
pub async fn add_in(
    conn: &mut PgConnection,
    tenant: &str,
    hour: DateTime<Utc>,
    deltas: &[CountDelta],
) -> Result<(), sqlx::Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let sources: Vec<&str> = deltas.iter().map(|d| d.source.as_str()).collect();
    let accepted: Vec<i64> = deltas.iter().map(|d| d.accepted).collect();
    let duplicates: Vec<i64> = deltas.iter().map(|d| d.duplicates).collect();
    let rejected: Vec<i64> = deltas.iter().map(|d| d.rejected).collect();
    // Rows are locked in a fixed order (sources sorted by the caller) so
    // concurrent writers of the same hour cannot deadlock.
    sqlx::query(
        "INSERT INTO collection.ingest_counts (tenant_id, hour, source, accepted, duplicates, rejected)
         SELECT $1, $2, s, a, d, r FROM UNNEST($3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
           AS t(s, a, d, r)
         ON CONFLICT (tenant_id, hour, source) DO UPDATE
           SET accepted = collection.ingest_counts.accepted + EXCLUDED.accepted,
               duplicates = collection.ingest_counts.duplicates + EXCLUDED.duplicates,
               rejected = collection.ingest_counts.rejected + EXCLUDED.rejected",
    )
    .bind(tenant)
    .bind(hour)
    .bind(&sources)
    .bind(&accepted)
    .bind(&duplicates)
    .bind(&rejected)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One stored counter row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CountRow {
    /// Start of the UTC hour.
    pub hour: DateTime<Utc>,
    /// The counts.
    #[sqlx(flatten)]
    pub delta: CountDelta,
}

/// Counters of hours in `[start, end)`, optionally only of `sources`.
pub async fn read(
    pool: &PgPool,
    tenant: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    sources: &[String],
) -> Result<Vec<CountRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT hour, source, accepted, duplicates, rejected FROM collection.ingest_counts
          WHERE tenant_id = $1 AND hour >= $2 AND hour < $3
            AND (cardinality($4::text[]) = 0 OR source = ANY($4))
          ORDER BY hour, source",
    )
    .bind(tenant)
    .bind(start)
    .bind(end)
    .bind(sources)
    .fetch_all(pool)
    .await
}
