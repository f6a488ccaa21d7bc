//! All SQL of the identity service. Every statement filters by tenant and
//! takes a whole batch at once (`UNNEST` arrays), so a request costs a fixed
//! number of round trips whatever its size.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::IdentifierKey;

/// An identifier to link to a person, with the evidence of its first sighting.
#[derive(Debug, Clone, Copy)]
pub struct LinkRow<'a> {
    /// The identifier.
    pub key: &'a IdentifierKey,
    /// Its person.
    pub person_id: Uuid,
    /// When it was seen with the person's other identifiers.
    pub observed_at: Option<DateTime<Utc>>,
    /// The event that showed it; may be empty.
    pub evidence_message_id: &'a str,
}

/// The owners of those of `keys` that are linked already.
pub async fn lookup(
    conn: &mut PgConnection,
    tenant: &str,
    keys: &[IdentifierKey],
) -> Result<HashMap<IdentifierKey, Uuid>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let types: Vec<&str> = keys.iter().map(|k| k.id_type.as_str()).collect();
    let scopes: Vec<&str> = keys.iter().map(|k| k.scope.as_str()).collect();
    let values: Vec<&str> = keys.iter().map(|k| k.value.as_str()).collect();
    let rows = sqlx::query(
        "SELECT i.id_type, i.id_scope, i.id_value, i.person_id
           FROM UNNEST($2::text[], $3::text[], $4::text[]) AS k(t, s, v)
           JOIN identity.identifiers i
             ON i.tenant_id = $1 AND i.id_type = k.t AND i.id_scope = k.s AND i.id_value = k.v",
    )
    .bind(tenant)
    .bind(&types)
    .bind(&scopes)
    .bind(&values)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|row| {
            let key = IdentifierKey {
                id_type: row.try_get(0)?,
                scope: row.try_get(1)?,
                value: row.try_get(2)?,
            };
            Ok((key, row.try_get(3)?))
        })
        .collect()
}

/// Creates `persons` and links `links` in one statement, returning how many
/// links were written. A link whose identifier another transaction claimed
/// first is skipped (`ON CONFLICT DO NOTHING`), so fewer than `links.len()`
/// means the caller planned on stale data and must roll back and re-plan.
///
/// Links are inserted in key order: concurrent writers then take the unique
/// index's entries in the same order and wait on each other instead of
/// deadlocking.
pub async fn create_and_link(
    conn: &mut PgConnection,
    tenant: &str,
    persons: &[Uuid],
    links: &[LinkRow<'_>],
    now: DateTime<Utc>,
) -> Result<usize, sqlx::Error> {
    if persons.is_empty() && links.is_empty() {
        return Ok(0);
    }
    let types: Vec<&str> = links.iter().map(|l| l.key.id_type.as_str()).collect();
    let scopes: Vec<&str> = links.iter().map(|l| l.key.scope.as_str()).collect();
    let values: Vec<&str> = links.iter().map(|l| l.key.value.as_str()).collect();
    let owners: Vec<Uuid> = links.iter().map(|l| l.person_id).collect();
    let observed: Vec<Option<DateTime<Utc>>> = links.iter().map(|l| l.observed_at).collect();
    let evidence: Vec<&str> = links.iter().map(|l| l.evidence_message_id).collect();
    // The persons are inserted by a sibling CTE of the same statement; the
    // foreign key is checked at the end of the statement, when they exist.
    let inserted = sqlx::query(
        "WITH new_persons AS (
           INSERT INTO identity.persons (tenant_id, person_id, created_at)
           SELECT $1, p, $2 FROM UNNEST($3::uuid[]) AS n(p)
         )
         INSERT INTO identity.identifiers
           (tenant_id, id_type, id_scope, id_value, person_id, linked_at, observed_at, evidence_message_id)
         SELECT $1, t, s, v, p, $2, o, e
           FROM UNNEST($4::text[], $5::text[], $6::text[], $7::uuid[], $8::timestamptz[], $9::text[])
             AS l(t, s, v, p, o, e)
          ORDER BY t, s, v
         ON CONFLICT ON CONSTRAINT identifiers_key DO NOTHING
         RETURNING 1",
    )
    .bind(tenant)
    .bind(now)
    .bind(persons)
    .bind(&types)
    .bind(&scopes)
    .bind(&values)
    .bind(&owners)
    .bind(&observed)
    .bind(&evidence)
    .fetch_all(conn)
    .await?;
    Ok(inserted.len())
}
