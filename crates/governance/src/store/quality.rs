//! Sums of the outcome ledger for the quality report.

use chrono::NaiveDate;
use sqlx::PgPool;

/// Counts of one (source, local day).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct DayCounts {
    /// Source id.
    pub source: String,
    /// Local day of receipt.
    pub day: Option<NaiveDate>,
    /// Events that reached governance.
    pub seen: i64,
    /// Clean.
    pub clean: i64,
    /// Quarantined (not released).
    pub quarantined: i64,
    /// Natural-key duplicates.
    pub duplicates_natural_key: i64,
    /// Restatements.
    pub restatements: i64,
    /// Message-id duplicates found by governance (replays).
    pub duplicates_message_id: i64,
    /// Late clean events.
    pub late: i64,
    /// Clean events with corrected timestamps.
    pub corrected: i64,
    /// Clean events with an identifier besides the anonymous id.
    pub identified: i64,
    /// Identifiers removed as placeholders.
    pub blocked_ids: i64,
    /// Identifiers removed as invalid.
    pub invalid_ids: i64,
    /// Quarantined per reason number.
    #[sqlx(skip)]
    pub by_reason: Vec<(i32, i64)>,
    /// Collection's count of valid events received, when known.
    #[sqlx(skip)]
    pub ingest_received: Option<i64>,
    /// Collection's count of message-id duplicates recognised at ingest.
    #[sqlx(skip)]
    pub ingest_duplicates: i64,
}

/// Quarantined events of one (source, local day, reason number).
#[derive(sqlx::FromRow)]
struct ReasonCount {
    source: String,
    day: Option<NaiveDate>,
    reason: i32,
    count: i64,
}

/// Counts per source and local day of receipt in `zone`, for days in
/// `[start, end]`, optionally only `sources`.
pub async fn day_counts(
    pool: &PgPool,
    tenant: &str,
    zone: &str,
    start: NaiveDate,
    end: NaiveDate,
    sources: &[String],
) -> Result<Vec<DayCounts>, sqlx::Error> {
    let mut out = sqlx::query_as::<_, DayCounts>(
        "SELECT source, (received_at AT TIME ZONE $2)::date AS day,
                count(*) AS seen,
                count(*) FILTER (WHERE outcome = 1) AS clean,
                count(*) FILTER (WHERE outcome = 2) AS quarantined,
                count(*) FILTER (WHERE outcome = 3) AS duplicates_natural_key,
                count(*) FILTER (WHERE outcome = 4) AS restatements,
                count(*) FILTER (WHERE outcome = 5) AS duplicates_message_id,
                count(*) FILTER (WHERE outcome = 1 AND late) AS late,
                count(*) FILTER (WHERE outcome = 1 AND corrected) AS corrected,
                count(*) FILTER (WHERE outcome = 1 AND identified) AS identified,
                COALESCE(sum(blocked_ids) FILTER (WHERE outcome = 1), 0)::bigint AS blocked_ids,
                COALESCE(sum(invalid_ids) FILTER (WHERE outcome = 1), 0)::bigint AS invalid_ids
           FROM governance.raw_outcomes
          WHERE tenant_id = $1
            AND (received_at AT TIME ZONE $2)::date BETWEEN $3 AND $4
            AND (cardinality($5::text[]) = 0 OR source = ANY($5))
          GROUP BY 1, 2 ORDER BY 2, 1",
    )
    .bind(tenant)
    .bind(zone)
    .bind(start)
    .bind(end)
    .bind(sources)
    .fetch_all(pool)
    .await?;
    let reasons = sqlx::query_as::<_, ReasonCount>(
        "SELECT source, (received_at AT TIME ZONE $2)::date AS day, reason, count(*) AS count
           FROM governance.raw_outcomes
          WHERE tenant_id = $1 AND outcome = 2
            AND (received_at AT TIME ZONE $2)::date BETWEEN $3 AND $4
            AND (cardinality($5::text[]) = 0 OR source = ANY($5))
          GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .bind(tenant)
    .bind(zone)
    .bind(start)
    .bind(end)
    .bind(sources)
    .fetch_all(pool)
    .await?;
    for r in reasons {
        if let Some(row) = out
            .iter_mut()
            .find(|d| d.source == r.source && d.day == r.day)
        {
            row.by_reason.push((r.reason, r.count));
        }
    }
    Ok(out)
}
