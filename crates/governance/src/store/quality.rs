//! Sums of the outcome ledger for the quality report.

use chrono::NaiveDate;
use sqlx::{PgPool, Row};

/// Counts of one (source, local day).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    pub by_reason: Vec<(i32, i64)>,
    /// Collection's count of valid events received, when known.
    pub ingest_received: Option<i64>,
    /// Collection's count of message-id duplicates recognised at ingest.
    pub ingest_duplicates: i64,
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
    let rows = sqlx::query(
        "SELECT source, (received_at AT TIME ZONE $2)::date AS day,
                count(*),
                count(*) FILTER (WHERE outcome = 1),
                count(*) FILTER (WHERE outcome = 2),
                count(*) FILTER (WHERE outcome = 3),
                count(*) FILTER (WHERE outcome = 4),
                count(*) FILTER (WHERE outcome = 5),
                count(*) FILTER (WHERE outcome = 1 AND late),
                count(*) FILTER (WHERE outcome = 1 AND corrected),
                count(*) FILTER (WHERE outcome = 1 AND identified),
                COALESCE(sum(blocked_ids) FILTER (WHERE outcome = 1), 0)::bigint,
                COALESCE(sum(invalid_ids) FILTER (WHERE outcome = 1), 0)::bigint
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
    let reasons = sqlx::query(
        "SELECT source, (received_at AT TIME ZONE $2)::date, reason, count(*)
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
    let mut out: Vec<DayCounts> = rows
        .into_iter()
        .map(|r| {
            Ok(DayCounts {
                source: r.try_get(0)?,
                day: r.try_get(1)?,
                seen: r.try_get(2)?,
                clean: r.try_get(3)?,
                quarantined: r.try_get(4)?,
                duplicates_natural_key: r.try_get(5)?,
                restatements: r.try_get(6)?,
                duplicates_message_id: r.try_get(7)?,
                late: r.try_get(8)?,
                corrected: r.try_get(9)?,
                identified: r.try_get(10)?,
                blocked_ids: r.try_get(11)?,
                invalid_ids: r.try_get(12)?,
                by_reason: Vec::new(),
                ingest_received: None,
                ingest_duplicates: 0,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    for r in reasons {
        let source: String = r.try_get(0)?;
        let day: Option<NaiveDate> = r.try_get(1)?;
        let reason: i32 = r.try_get(2)?;
        let count: i64 = r.try_get(3)?;
        if let Some(row) = out.iter_mut().find(|d| d.source == source && d.day == day) {
            row.by_reason.push((reason, count));
        }
    }
    Ok(out)
}
