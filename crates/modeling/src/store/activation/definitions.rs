//! Trigger definitions, and firing them: the raw triggers a transaction just appended are
//! matched against the tenant's definitions, and each match under its definition's per-person
//! cap becomes a trigger of its own in the same transaction (so a definition's trigger is as
//! durable as the change behind it); matches over the cap are counted, not written.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A definition as written by a create or an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionSpec {
    /// For people.
    pub display_name: String,
    /// The contract's `TriggerType` number it picks.
    pub trigger_type: i16,
    /// For segment types, the segment id; empty otherwise.
    pub segment_id: String,
    /// Stages or RFM segments changed to (contract numbers); empty for any.
    pub target_values: Vec<i16>,
    /// At most this many per person within `cap_period_secs`; `None` for no cap.
    pub cap_max: Option<i32>,
    /// The cap's rolling period, seconds.
    pub cap_period_secs: Option<i64>,
}

/// A stored definition.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredDefinition {
    /// The id.
    pub definition_id: String,
    /// For people.
    pub display_name: String,
    /// The contract's `TriggerType` number.
    pub trigger_type: i16,
    /// For segment types, the segment id.
    pub segment_id: String,
    /// Values changed to; empty for any.
    pub target_values: Vec<i16>,
    /// The cap's most triggers.
    pub cap_max: Option<i32>,
    /// The cap's period, seconds.
    pub cap_period_secs: Option<i64>,
    /// Matches the cap held back.
    pub suppressed_count: i64,
    /// Grows with every change (the etag).
    pub revision: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl StoredDefinition {
    /// The definition's writable part.
    pub fn spec(&self) -> DefinitionSpec {
        DefinitionSpec {
            display_name: self.display_name.clone(),
            trigger_type: self.trigger_type,
            segment_id: self.segment_id.clone(),
            target_values: self.target_values.clone(),
            cap_max: self.cap_max,
            cap_period_secs: self.cap_period_secs,
        }
    }
}

const COLUMNS: &str = "definition_id, display_name, trigger_type, segment_id, target_values,
    cap_max, cap_period_secs, suppressed_count, revision, created_at, updated_at";

/// Creates a definition; `false` when the id is taken.
pub async fn insert_definition(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
    spec: &DefinitionSpec,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO modeling.trigger_definitions
             (tenant_id, definition_id, display_name, trigger_type, segment_id, target_values,
              cap_max, cap_period_secs)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant_id, definition_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(id)
    .bind(&spec.display_name)
    .bind(spec.trigger_type)
    .bind(&spec.segment_id)
    .bind(&spec.target_values)
    .bind(spec.cap_max)
    .bind(spec.cap_period_secs)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One definition.
pub async fn definition(
    executor: impl sqlx::PgExecutor<'_>,
    tenant: &str,
    id: &str,
) -> Result<Option<StoredDefinition>, sqlx::Error> {
    read_definition(executor, tenant, id, "").await
}

/// One definition, read as is or (with `lock` " FOR UPDATE") locked.
async fn read_definition(
    executor: impl sqlx::PgExecutor<'_>,
    tenant: &str,
    id: &str,
    lock: &str,
) -> Result<Option<StoredDefinition>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM modeling.trigger_definitions
          WHERE tenant_id = $1 AND definition_id = $2{lock}"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(executor)
    .await
}

/// Which of `ids` the tenant has.
pub async fn existing_definitions(
    pool: &PgPool,
    tenant: &str,
    ids: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT definition_id FROM modeling.trigger_definitions
          WHERE tenant_id = $1 AND definition_id = ANY($2)",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// Up to `limit` definitions with ids after `after`, by id.
pub async fn definitions(
    pool: &PgPool,
    tenant: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<StoredDefinition>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM modeling.trigger_definitions
          WHERE tenant_id = $1 AND definition_id > $2 ORDER BY definition_id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Locks a definition for a change in the caller's transaction.
pub async fn lock_definition(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
) -> Result<Option<StoredDefinition>, sqlx::Error> {
    read_definition(conn, tenant, id, " FOR UPDATE").await
}

/// Replaces a definition's writable fields at the next revision.
pub async fn update_definition(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
    spec: &DefinitionSpec,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE modeling.trigger_definitions
            SET display_name = $3, target_values = $4, cap_max = $5, cap_period_secs = $6,
                revision = revision + 1, updated_at = now()
          WHERE tenant_id = $1 AND definition_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(&spec.display_name)
    .bind(&spec.target_values)
    .bind(spec.cap_max)
    .bind(spec.cap_period_secs)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes a definition; `false` when there was none.
pub async fn delete_definition(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM modeling.trigger_definitions WHERE tenant_id = $1 AND definition_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The definitions that pick triggers of segment `segment_id` (a segment they name cannot go).
pub async fn naming_segment(
    conn: &mut PgConnection,
    tenant: &str,
    segment_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT definition_id FROM modeling.trigger_definitions
          WHERE tenant_id = $1 AND segment_id = $2 ORDER BY definition_id",
    )
    .bind(tenant)
    .bind(segment_id)
    .fetch_all(conn)
    .await
}

/// The definition a request id already created.
pub async fn definition_request(
    pool: &PgPool,
    tenant: &str,
    request_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT definition_id FROM modeling.trigger_definition_requests
          WHERE tenant_id = $1 AND request_id = $2 AND created_at > now() - interval '1 day'",
    )
    .bind(tenant)
    .bind(request_id)
    .fetch_optional(pool)
    .await
}

/// Records what `request_id` created.
pub async fn record_definition_request(
    conn: &mut PgConnection,
    tenant: &str,
    request_id: &str,
    definition: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO modeling.trigger_definition_requests (tenant_id, request_id, definition_id)
         VALUES ($1, $2, $3) ON CONFLICT (tenant_id, request_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(request_id)
    .bind(definition)
    .execute(conn)
    .await?;
    Ok(())
}

/// A raw trigger a definition picks, with the person's triggers of that definition already
/// within the cap's period.
#[derive(sqlx::FromRow)]
struct Match {
    sequence: i64,
    person_id: Uuid,
    definition_id: String,
    cap_max: Option<i32>,
    recent: i64,
}

/// Fires the tenant's definitions on the raw triggers with sequences in `(after, through]`,
/// in the caller's transaction (the one that appended them).
pub async fn fire_definitions(
    conn: &mut PgConnection,
    tenant: &str,
    after: i64,
    through: i64,
) -> Result<(), sqlx::Error> {
    // Most tenants define none: one probe of the key, instead of reading back every trigger
    // just appended (tens of thousands when a model look announces a day's new customers).
    let defined: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM modeling.trigger_definitions WHERE tenant_id = $1)",
    )
    .bind(tenant)
    .fetch_one(&mut *conn)
    .await?;
    if !defined {
        return Ok(());
    }
    let matches: Vec<Match> = sqlx::query_as(
        "SELECT r.sequence, r.person_id, d.definition_id, d.cap_max,
                CASE WHEN d.cap_max IS NULL THEN 0 ELSE (
                    SELECT count(*) FROM modeling.triggers t
                     WHERE t.tenant_id = $1 AND t.definition_id = d.definition_id
                       AND t.person_id = r.person_id
                       AND t.triggered_at > r.triggered_at - make_interval(secs => d.cap_period_secs)
                ) END AS recent
           FROM modeling.triggers r
           JOIN modeling.trigger_definitions d
             ON d.tenant_id = r.tenant_id AND d.trigger_type = r.trigger_type
            AND (d.segment_id = '' OR d.segment_id = r.segment_id)
            AND (cardinality(d.target_values) = 0 OR r.current_value = ANY(d.target_values))
          WHERE r.tenant_id = $1 AND r.sequence > $2 AND r.sequence <= $3 AND r.definition_id = ''
          ORDER BY r.sequence, d.definition_id",
    )
    .bind(tenant)
    .bind(after)
    .bind(through)
    .fetch_all(&mut *conn)
    .await?;
    if matches.is_empty() {
        return Ok(());
    }
    let Capped { fired, suppressed } = under_caps(&matches);
    if !fired.is_empty() {
        let (sequences, _) =
            crate::store::next_sequences(&mut *conn, "trigger_heads", tenant, fired.len()).await?;
        let (raw, ids): (Vec<i64>, Vec<&str>) = fired.iter().copied().unzip();
        sqlx::query(
            "INSERT INTO modeling.triggers
                 (tenant_id, sequence, trigger_type, person_id, segment_id, reason, triggered_at,
                  previous_value, current_value, churn_score, definition_id, cause_message_id)
             SELECT $1, u.s, r.trigger_type, r.person_id, r.segment_id, r.reason, r.triggered_at,
                    r.previous_value, r.current_value, r.churn_score, u.d, r.cause_message_id
               FROM UNNEST($2::bigint[], $3::bigint[], $4::text[]) AS u(s, raw, d)
               JOIN modeling.triggers r ON r.tenant_id = $1 AND r.sequence = u.raw",
        )
        .bind(tenant)
        .bind(&sequences)
        .bind(&raw)
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    }
    if !suppressed.is_empty() {
        let (ids, counts): (Vec<&str>, Vec<i64>) = suppressed.into_iter().unzip();
        sqlx::query(
            "UPDATE modeling.trigger_definitions d SET suppressed_count = suppressed_count + u.n
               FROM UNNEST($2::text[], $3::bigint[]) AS u(id, n)
              WHERE d.tenant_id = $1 AND d.definition_id = u.id",
        )
        .bind(tenant)
        .bind(&ids)
        .bind(&counts)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Which matches fire (raw sequence, definition) and how many each definition held back: a
/// match fires while the person's triggers of its definition in the period, those fired
/// before this batch and those fired earlier in it, stay under the cap.
fn under_caps(matches: &[Match]) -> Capped<'_> {
    let mut fired = Vec::with_capacity(matches.len());
    let mut in_batch: HashMap<(&str, Uuid), i64> = HashMap::new();
    let mut suppressed: HashMap<&str, i64> = HashMap::new();
    for m in matches {
        let id = m.definition_id.as_str();
        let earlier = in_batch.entry((id, m.person_id)).or_insert(0);
        let allowed = m
            .cap_max
            .is_none_or(|cap| m.recent + *earlier < i64::from(cap));
        if allowed {
            *earlier += 1;
            fired.push((m.sequence, id));
        } else {
            *suppressed.entry(id).or_insert(0) += 1;
        }
    }
    let mut suppressed: Vec<(&str, i64)> = suppressed.into_iter().collect();
    suppressed.sort_unstable();
    Capped { fired, suppressed }
}

/// What the caps let through.
struct Capped<'a> {
    /// Raw sequence and definition of each trigger to write.
    fired: Vec<(i64, &'a str)>,
    /// Per definition, the matches held back.
    suppressed: Vec<(&'a str, i64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(sequence: i64, person: u128, definition: &str, cap: Option<i32>, recent: i64) -> Match {
        Match {
            sequence,
            person_id: Uuid::from_u128(person),
            definition_id: definition.to_owned(),
            cap_max: cap,
            recent,
        }
    }

    #[test]
    fn a_cap_counts_earlier_triggers_and_those_earlier_in_the_batch() {
        let matches = [
            m(1, 1, "a", Some(2), 1),
            m(2, 1, "a", Some(2), 1),
            m(3, 2, "a", Some(2), 0),
            m(4, 2, "a", Some(2), 0),
            m(5, 2, "a", Some(2), 0),
            m(6, 1, "b", None, 0),
            m(7, 1, "b", None, 0),
        ];
        let Capped { fired, suppressed } = under_caps(&matches);
        assert_eq!(
            fired,
            vec![(1, "a"), (3, "a"), (4, "a"), (6, "b"), (7, "b")]
        );
        assert_eq!(suppressed, vec![("a", 2)]);
    }
}
