//! Single-identifier reads: the current owner (for the cache), the owner
//! at a past instant, and the live person an old id stands for.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Owner;
use crate::domain::IdentifierKey;

/// The current owner of `key` and the entry's version.
pub async fn owner(
    conn: &mut PgConnection,
    tenant: &str,
    key: &IdentifierKey,
) -> Result<Option<Owner>, sqlx::Error> {
    sqlx::query_as::<_, Owner>(
        "SELECT person_id, version,
                cardinality(seen_with) > 0 OR held_since IS NOT NULL AS contested
           FROM identity.identifiers
          WHERE tenant_id = $1 AND id_type = $2 AND id_scope = $3 AND id_value = $4",
    )
    .bind(tenant)
    .bind(&key.id_type)
    .bind(&key.scope)
    .bind(&key.value)
    .fetch_optional(conn)
    .await
}

/// Who owned `key` at `at`, if anyone (the person id of that time).
pub async fn owner_at(
    conn: &mut PgConnection,
    tenant: &str,
    key: &IdentifierKey,
    at: DateTime<Utc>,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT person_id FROM identity.identifier_history
          WHERE tenant_id = $1 AND id_type = $2 AND id_scope = $3 AND id_value = $4
            AND valid_from <= $5 AND (valid_to IS NULL OR valid_to > $5)
          ORDER BY valid_from DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(&key.id_type)
    .bind(&key.scope)
    .bind(&key.value)
    .bind(at)
    .fetch_optional(conn)
    .await
}

/// The live person an id stands for today: itself, or the person it was
/// merged into; `None` when unknown or erased.
pub async fn current_person(
    conn: &mut PgConnection,
    tenant: &str,
    person: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    let row = sqlx::query_as::<_, (String, Option<Uuid>)>(
        "SELECT state, merged_into FROM identity.persons WHERE tenant_id = $1 AND person_id = $2",
    )
    .bind(tenant)
    .bind(person)
    .fetch_optional(conn)
    .await?;
    let Some((state, merged_into)) = row else {
        return Ok(None);
    };
    Ok(match (state.as_str(), merged_into) {
        ("merged", Some(into)) => Some(into),
        _ => Some(person),
    })
}
