//! Each person's model outputs as last seen (lifecycle stage, churn flag, RFM segment), so a
//! change of one becomes a trigger, written in the same transaction.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// One person's model outputs as last seen (contract numbers; 0 for none).
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct ModelState {
    /// The person.
    pub person_id: Uuid,
    /// `LifecycleStage` number.
    pub lifecycle_stage: i16,
    /// `RfmSegment` number.
    pub rfm_segment: i16,
    /// Flagged by the inactivity rule.
    pub churned: bool,
    /// 1 − P(alive), when scored.
    pub churn_score: Option<f64>,
}

/// A model-output trigger to append.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelTrigger {
    /// The trigger type number.
    pub trigger_type: i16,
    /// The person.
    pub person: Uuid,
    /// Before.
    pub previous_value: i16,
    /// Now.
    pub current_value: i16,
    /// The churn score now.
    pub churn_score: Option<f64>,
}

/// Whether the tenant's model states were recorded once already.
pub async fn has_baseline(conn: &mut PgConnection, tenant: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, i32>(
        "SELECT 1 FROM modeling.model_state_baselines WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(conn)
    .await?
    .is_some())
}

/// The model states of those of `persons` that have one.
pub async fn model_states(
    conn: &mut PgConnection,
    tenant: &str,
    persons: &[Uuid],
) -> Result<Vec<ModelState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT person_id, lifecycle_stage, rfm_segment, churned, churn_score
           FROM modeling.person_model_states
          WHERE tenant_id = $1 AND person_id = ANY($2) ORDER BY person_id",
    )
    .bind(tenant)
    .bind(persons)
    .fetch_all(conn)
    .await
}

/// Marks the tenant's model states as recorded once (from then on, changes are announced).
pub async fn mark_baseline(conn: &mut PgConnection, tenant: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO modeling.model_state_baselines (tenant_id) VALUES ($1)
         ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores `states` (changed or new), in the caller's transaction.
pub async fn save_model_states(
    conn: &mut PgConnection,
    tenant: &str,
    states: &[ModelState],
) -> Result<(), sqlx::Error> {
    let persons: Vec<Uuid> = states.iter().map(|s| s.person_id).collect();
    let stages: Vec<i16> = states.iter().map(|s| s.lifecycle_stage).collect();
    let segments: Vec<i16> = states.iter().map(|s| s.rfm_segment).collect();
    let churned: Vec<bool> = states.iter().map(|s| s.churned).collect();
    let scores: Vec<Option<f64>> = states.iter().map(|s| s.churn_score).collect();
    sqlx::query(
        "INSERT INTO modeling.person_model_states
             (tenant_id, person_id, lifecycle_stage, rfm_segment, churned, churn_score)
         SELECT $1, p, l, r, c, s
           FROM UNNEST($2::uuid[], $3::smallint[], $4::smallint[], $5::bool[], $6::float8[])
                AS t(p, l, r, c, s)
         ON CONFLICT (tenant_id, person_id) DO UPDATE
            SET lifecycle_stage = EXCLUDED.lifecycle_stage, rfm_segment = EXCLUDED.rfm_segment,
                churned = EXCLUDED.churned, churn_score = EXCLUDED.churn_score",
    )
    .bind(tenant)
    .bind(&persons)
    .bind(&stages)
    .bind(&segments)
    .bind(&churned)
    .bind(&scores)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Appends model-output triggers with the tenant's next sequences, in the caller's
/// transaction.
pub async fn append_model_triggers(
    conn: &mut PgConnection,
    tenant: &str,
    triggers: &[ModelTrigger],
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if triggers.is_empty() {
        return Ok(());
    }
    let (sequences, _) =
        crate::store::next_sequences(&mut *conn, "trigger_heads", tenant, triggers.len()).await?;
    let types: Vec<i16> = triggers.iter().map(|t| t.trigger_type).collect();
    let persons: Vec<Uuid> = triggers.iter().map(|t| t.person).collect();
    let before: Vec<i16> = triggers.iter().map(|t| t.previous_value).collect();
    let now: Vec<i16> = triggers.iter().map(|t| t.current_value).collect();
    let scores: Vec<Option<f64>> = triggers.iter().map(|t| t.churn_score).collect();
    sqlx::query(
        "INSERT INTO modeling.triggers
             (tenant_id, sequence, trigger_type, person_id, triggered_at, previous_value,
              current_value, churn_score)
         SELECT $1, s, t, p, $2, b, n, c
           FROM UNNEST($3::bigint[], $4::smallint[], $5::uuid[], $6::smallint[], $7::smallint[],
                       $8::float8[]) AS x(s, t, p, b, n, c)",
    )
    .bind(tenant)
    .bind(at)
    .bind(&sequences)
    .bind(&types)
    .bind(&persons)
    .bind(&before)
    .bind(&now)
    .bind(&scores)
    .execute(&mut *conn)
    .await?;
    super::triggers::fire_appended(conn, tenant, &sequences).await
}

/// Takes the tenant's model-state lock until the transaction ends; `false` when another
/// worker holds it.
pub async fn try_lock_model_states(
    conn: &mut PgConnection,
    tenant: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('model-states:' || $1, 0))",
    )
    .bind(tenant)
    .fetch_one(conn)
    .await
}
