//! Listing quarantined events and releasing them on replay.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::publish::{
    Processed, Published, Verdict, outcome, publish, record_outcome, violations_json,
};

/// A stored quarantined event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QuarantinedRow {
    /// Raw position.
    pub sequence: i64,
    /// Encoded `Event`.
    pub raw_event: Option<Vec<u8>>,
    /// Received.
    pub received_at: Option<DateTime<Utc>>,
    /// First reason number.
    #[sqlx(rename = "reason_number")]
    pub reason: i32,
    /// `[{reason, field, detail}]`.
    pub violations: serde_json::Value,
    /// Dictionary version last checked against.
    pub dictionary_version: i64,
    /// First quarantined.
    pub quarantined_at: DateTime<Utc>,
    /// State number.
    pub state: i16,
    /// Replays.
    pub replay_count: i32,
    /// Last replay.
    pub last_replay_at: Option<DateTime<Utc>>,
    /// Replaced by a correction.
    pub corrected: bool,
    /// Source revision.
    pub source_revision: i64,
    /// Source id.
    pub source: String,
}

/// Filter of a listing.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Source id or empty.
    pub source: String,
    /// Reason numbers or empty.
    pub reasons: Vec<i32>,
    /// Received at or after.
    pub from: Option<DateTime<Utc>>,
    /// Received before.
    pub to: Option<DateTime<Utc>>,
    /// Source event name or empty.
    pub source_event_name: String,
    /// States (default quarantined).
    pub states: Vec<i16>,
    /// Only named sequences, when non-empty.
    pub sequences: Vec<i64>,
}

const COLUMNS: &str =
    "sequence, raw_event, received_at, reason_number, violations, dictionary_version,
    quarantined_at, state, replay_count, last_replay_at, corrected, source_revision, source";

/// Up to `limit` events after `after` matching `filter`, and the total.
pub async fn list(
    pool: &PgPool,
    tenant: &str,
    filter: &Filter,
    after: i64,
    limit: i64,
) -> Result<(Vec<QuarantinedRow>, i64), sqlx::Error> {
    let states = if filter.states.is_empty() {
        vec![1i16]
    } else {
        filter.states.clone()
    };
    let where_clause = "tenant_id = $1 AND state = ANY($2)
        AND ($3 = '' OR source = $3)
        AND (cardinality($4::int[]) = 0 OR reason_number = ANY($4))
        AND ($5::timestamptz IS NULL OR received_at >= $5)
        AND ($6::timestamptz IS NULL OR received_at < $6)
        AND ($7 = '' OR source_event_name = $7)
        AND (cardinality($8::bigint[]) = 0 OR sequence = ANY($8))";
    // The page and its total come from one snapshot: read apart, an event
    // quarantined in between was counted but missing from the page.
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query_as::<_, QuarantinedRow>(&format!(
        "SELECT {COLUMNS} FROM governance.quarantine WHERE {where_clause} AND sequence > $9
          ORDER BY sequence LIMIT $10"
    ))
    .bind(tenant)
    .bind(&states)
    .bind(&filter.source)
    .bind(&filter.reasons)
    .bind(filter.from)
    .bind(filter.to)
    .bind(&filter.source_event_name)
    .bind(&filter.sequences)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM (SELECT 1 FROM governance.quarantine WHERE {where_clause} LIMIT 100000) t"
    ))
    .bind(tenant)
    .bind(&states)
    .bind(&filter.source)
    .bind(&filter.reasons)
    .bind(filter.from)
    .bind(filter.to)
    .bind(&filter.source_event_name)
    .bind(&filter.sequences)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((rows, total))
}

/// What replaying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayDone {
    /// Released at this clean sequence.
    Released(i64),
    /// Still quarantined.
    StillQuarantined,
    /// Duplicate of a clean record.
    Duplicate,
    /// No longer quarantined (released by a concurrent replay).
    Gone,
}

/// Applies re-cleaned verdicts to quarantined events, each only if it is
/// still quarantined (row lock), so a replayed event is released once.
#[expect(
    clippy::too_many_lines,
    reason = "settles a replay in one transaction: published, still quarantined and dropped events with their outcomes"
)]
pub async fn apply_replay(
    pool: &PgPool,
    tenant: &str,
    items: &[(Processed, bool)],
) -> Result<Vec<ReplayDone>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut done = Vec::with_capacity(items.len());
    for (p, corrected) in items {
        let still: Option<i16> = sqlx::query_scalar(
            "SELECT state FROM governance.quarantine WHERE tenant_id = $1 AND sequence = $2 FOR UPDATE",
        )
        .bind(tenant)
        .bind(p.raw_sequence)
        .fetch_optional(&mut *tx)
        .await?;
        if still != Some(1) {
            done.push(ReplayDone::Gone);
            continue;
        }
        let (state, result) = match &p.verdict {
            Verdict::Quarantined(q) => {
                sqlx::query(
                    "UPDATE governance.quarantine
                        SET reason = $3, reason_number = $4, field = $5, detail = $6, violations = $7,
                            dictionary_version = $8, raw_event = $9, corrected = corrected OR $10
                      WHERE tenant_id = $1 AND sequence = $2",
                )
                .bind(tenant)
                .bind(p.raw_sequence)
                .bind(q.reason().as_str_name())
                .bind(q.reason() as i32)
                .bind(q.first().map(|v| v.field.clone()).unwrap_or_default())
                .bind(q.first().map(|v| v.detail.clone()).unwrap_or_default())
                .bind(violations_json(q))
                .bind(p.dictionary_version)
                .bind(&p.raw_event)
                .bind(*corrected)
                .execute(&mut *tx)
                .await?;
                record_outcome(
                    &mut tx,
                    tenant,
                    p,
                    outcome::QUARANTINED,
                    q.reason() as i32,
                    None,
                )
                .await?;
                (1i16, ReplayDone::StillQuarantined)
            }
            Verdict::Clean(c) => {
                // Clean unless its latest record is a retraction.
                let latest: Option<bool> = sqlx::query_scalar(
                    "SELECT NOT retracted FROM governance.clean_events
                      WHERE tenant_id = $1 AND message_id = $2 ORDER BY sequence DESC LIMIT 1",
                )
                .bind(tenant)
                .bind(&p.message_id)
                .fetch_optional(&mut *tx)
                .await?;
                let already = latest == Some(true);
                let published = if already {
                    Published::Duplicate
                } else {
                    publish(&mut tx, tenant, &[p], latest.is_some())
                        .await?
                        .first()
                        .copied()
                        .unwrap_or(Published::Duplicate)
                };
                let (state, code, result) = match published {
                    Published::New(s) => (2i16, outcome::CLEAN, ReplayDone::Released(s)),
                    Published::Restated(s) => (2i16, outcome::RESTATEMENT, ReplayDone::Released(s)),
                    Published::Duplicate if already => {
                        (3i16, outcome::DUPLICATE_MESSAGE_ID, ReplayDone::Duplicate)
                    }
                    Published::Duplicate => {
                        (3i16, outcome::DUPLICATE_NATURAL_KEY, ReplayDone::Duplicate)
                    }
                };
                record_outcome(&mut tx, tenant, p, code, 0, Some(c)).await?;
                (state, result)
            }
        };
        sqlx::query(
            "UPDATE governance.quarantine
                SET state = $3, replay_count = replay_count + 1, last_replay_at = now()
              WHERE tenant_id = $1 AND sequence = $2",
        )
        .bind(tenant)
        .bind(p.raw_sequence)
        .bind(state)
        .execute(&mut *tx)
        .await?;
        done.push(result);
    }
    tx.commit().await?;
    Ok(done)
}

/// Which of `message_ids` have a clean record now (not retracted).
pub async fn clean_message_ids(
    pool: &PgPool,
    tenant: &str,
    message_ids: &[String],
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT message_id FROM (
           SELECT DISTINCT ON (message_id) message_id, retracted FROM governance.clean_events
            WHERE tenant_id = $1 AND message_id = ANY($2)
            ORDER BY message_id, sequence DESC) latest
          WHERE NOT retracted",
    )
    .bind(tenant)
    .bind(message_ids)
    .fetch_all(pool)
    .await?;
    Ok(found.into_iter().collect())
}
