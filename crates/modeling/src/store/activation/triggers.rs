//! The trigger log: the outbox segment changes and model outputs write into, read by cursor
//! and pruned past its retention.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::store::segments::{ChangeKind, NewChange};

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
/// `TRIGGER_TYPE_SEGMENT_MEMBER_UPDATED`.
pub const SEGMENT_MEMBER_UPDATED: i16 = 7;

/// Appends one trigger per segment change, in the caller's transaction (the one that
/// publishes the changes): each gets the tenant's next trigger sequence. The tenant's trigger
/// definitions fire on them in the same transaction.
pub async fn append_segment_triggers(
    conn: &mut PgConnection,
    tenant: &str,
    segment: &str,
    changes: &[NewChange],
    causes: &[String],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let (sequences, _) =
        crate::store::next_sequences(&mut *conn, "trigger_heads", tenant, changes.len()).await?;
    let persons: Vec<Uuid> = changes.iter().map(|c| c.person).collect();
    let types: Vec<i16> = changes
        .iter()
        .map(|c| match c.kind {
            ChangeKind::Entered => SEGMENT_ENTERED,
            ChangeKind::Exited => SEGMENT_EXITED,
            ChangeKind::IdentifiersUpdated => SEGMENT_MEMBER_UPDATED,
        })
        .collect();
    let reasons: Vec<i16> = changes.iter().map(|c| c.reason).collect();
    let causes: Vec<&str> = (0..changes.len())
        .map(|i| causes.get(i).map_or("", String::as_str))
        .collect();
    sqlx::query(
        "INSERT INTO modeling.triggers
             (tenant_id, sequence, trigger_type, person_id, segment_id, reason, triggered_at,
              cause_message_id)
         SELECT $1, s, t, p, $2, r, $7, c
           FROM UNNEST($3::bigint[], $4::smallint[], $5::uuid[], $6::smallint[], $8::text[])
                AS x(s, t, p, r, c)",
    )
    .bind(tenant)
    .bind(segment)
    .bind(&sequences)
    .bind(&types)
    .bind(&persons)
    .bind(&reasons)
    .bind(at)
    .bind(&causes)
    .execute(&mut *conn)
    .await?;
    fire_appended(conn, tenant, &sequences).await
}

/// Fires the tenant's definitions on the raw triggers just appended at `sequences`.
pub(super) async fn fire_appended(
    conn: &mut PgConnection,
    tenant: &str,
    sequences: &[i64],
) -> Result<(), sqlx::Error> {
    match (sequences.first(), sequences.last()) {
        (Some(first), Some(last)) => super::fire_definitions(conn, tenant, first - 1, *last).await,
        _ => Ok(()),
    }
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
    /// The definition that fired it; empty for the raw log.
    pub definition_id: String,
    /// The message id of the event behind it (segment triggers, RULE_EVALUATED), else empty.
    pub cause_message_id: String,
}

/// Which triggers a reader wants.
#[derive(Debug, Clone, Default)]
pub struct TriggerFilter {
    /// These types; empty for every type.
    pub types: Vec<i16>,
    /// For segment triggers, these segments; empty for every segment.
    pub segments: Vec<String>,
    /// The triggers these definitions fired; empty for the raw log.
    pub definitions: Vec<String>,
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
                previous_value, current_value, churn_score, definition_id, cause_message_id
           FROM modeling.triggers
          WHERE tenant_id = $1 AND sequence > $2
            AND (cardinality($3::smallint[]) = 0 OR trigger_type = ANY($3))
            AND (cardinality($4::text[]) = 0 OR segment_id = ANY($4))
            AND CASE WHEN cardinality($6::text[]) = 0 THEN definition_id = ''
                     ELSE definition_id = ANY($6) END
          ORDER BY sequence LIMIT $5",
    )
    .bind(tenant)
    .bind(after)
    .bind(&filter.types)
    .bind(&filter.segments)
    .bind(limit)
    .bind(&filter.definitions)
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

/// The tenant's first trigger at or after `time`, if any.
pub async fn first_trigger_since(
    pool: &PgPool,
    tenant: &str,
    time: chrono::DateTime<chrono::Utc>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT min(sequence) FROM modeling.triggers WHERE tenant_id = $1 AND triggered_at >= $2",
    )
    .bind(tenant)
    .bind(time)
    .fetch_one(pool)
    .await
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
