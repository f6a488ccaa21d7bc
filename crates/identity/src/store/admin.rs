//! SQL of rules, consent, erasure and profiles.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::KeyRow;
use crate::domain::IdentifierKey;
use crate::rules::Rules;

/// The services that confirm an erasure (identity confirms its own part at
/// once).
pub const ERASURE_SERVICES: [&str; 5] = [
    "collection",
    "governance",
    "identity",
    "modeling",
    "reporting",
];

/// The tenant's stored rules, if ever set.
pub async fn load_rules(
    conn: &mut PgConnection,
    tenant: &str,
) -> Result<Option<Rules>, sqlx::Error> {
    let row = sqlx::query_as::<_, (Json<Rules>, i64, Option<DateTime<Utc>>)>(
        "SELECT rules, revision, updated_at FROM identity.rules WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(Json(mut rules), revision, updated_at)| {
        rules.revision = revision;
        rules.updated_at = updated_at;
        rules
    }))
}

/// Stores `rules` as revision `expected + 1`; `None` when the stored
/// revision is not `expected` (a concurrent edit).
pub async fn save_rules(
    conn: &mut PgConnection,
    tenant: &str,
    rules: &Rules,
    expected: i64,
    now: DateTime<Utc>,
) -> Result<Option<i64>, sqlx::Error> {
    let json = serde_json::to_value(rules).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    sqlx::query_scalar(
        "INSERT INTO identity.rules (tenant_id, rules, revision, updated_at)
         VALUES ($1, $2, 1, $4)
         ON CONFLICT (tenant_id) DO UPDATE
           SET rules = EXCLUDED.rules, revision = identity.rules.revision + 1,
               updated_at = EXCLUDED.updated_at
         WHERE identity.rules.revision = $3
         RETURNING revision",
    )
    .bind(tenant)
    .bind(json)
    .bind(expected)
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// A person's stored consent.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredConsent {
    /// Opted out of marketing.
    pub marketing_opt_out: bool,
    /// When it last changed.
    #[sqlx(rename = "consent_time")]
    pub time: Option<DateTime<Utc>>,
    /// Who reported it.
    #[sqlx(rename = "consent_source")]
    pub source: String,
    /// Who set it.
    #[sqlx(rename = "consent_actor")]
    pub actor: String,
}

/// Sets consent unless the stored one is newer; returns what is stored and
/// whether it changed.
pub async fn set_consent(
    conn: &mut PgConnection,
    tenant: &str,
    person: Uuid,
    consent: &StoredConsent,
) -> Result<(StoredConsent, bool), sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE identity.persons
            SET marketing_opt_out = $3, consent_time = $4, consent_source = $5,
                consent_actor = $6, updated_at = now()
          WHERE tenant_id = $1 AND person_id = $2
            AND (consent_time IS NULL OR consent_time <= $4)
            AND (marketing_opt_out IS DISTINCT FROM $3 OR consent_time IS NULL)
         RETURNING 1",
    )
    .bind(tenant)
    .bind(person)
    .bind(consent.marketing_opt_out)
    .bind(consent.time)
    .bind(&consent.source)
    .bind(&consent.actor)
    .fetch_optional(&mut *conn)
    .await?
    .is_some();
    let stored = sqlx::query_as::<_, StoredConsent>(
        "SELECT marketing_opt_out, consent_time, consent_source, consent_actor
           FROM identity.persons WHERE tenant_id = $1 AND person_id = $2",
    )
    .bind(tenant)
    .bind(person)
    .fetch_one(conn)
    .await?;
    Ok((stored, updated))
}

/// A person as GetProfile shows it.
#[derive(Debug, Clone)]
pub struct StoredPerson {
    /// Id.
    pub person_id: Uuid,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Consent.
    pub consent: StoredConsent,
    /// Identifiers: key, linked at, first observed, last seen.
    pub identifiers: Vec<(IdentifierKey, DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// Ids merged into this person, oldest merge first.
    pub merged: Vec<Uuid>,
}

/// A person's own columns, as [`person`] reads them.
#[derive(sqlx::FromRow)]
struct PersonRow {
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[sqlx(flatten)]
    consent: StoredConsent,
}

/// A person's identifier, as [`person`] reads it.
#[derive(sqlx::FromRow)]
struct PersonIdentifierRow {
    #[sqlx(flatten)]
    key: KeyRow,
    linked_at: DateTime<Utc>,
    last_seen_at: Option<DateTime<Utc>>,
}

/// A held identifier with its owner, as [`identifiers_of`] reads it.
#[derive(sqlx::FromRow)]
struct HeldRow {
    person_id: Uuid,
    #[sqlx(flatten)]
    key: KeyRow,
}

/// The identifiers of `types` that `persons` hold, by person, type, scope and value.
pub async fn identifiers_of(
    conn: &mut PgConnection,
    tenant: &str,
    persons: &[Uuid],
    types: &[String],
) -> Result<Vec<(Uuid, IdentifierKey)>, sqlx::Error> {
    Ok(sqlx::query_as::<_, HeldRow>(
        "SELECT person_id, id_type, id_scope, id_value FROM identity.identifiers
          WHERE tenant_id = $1 AND person_id = ANY($2) AND id_type = ANY($3)
          ORDER BY person_id, id_type, id_scope, id_value",
    )
    .bind(tenant)
    .bind(persons)
    .bind(types)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|row| (row.person_id, IdentifierKey::from(row.key)))
    .collect())
}

/// Reads an active person.
pub async fn person(
    conn: &mut PgConnection,
    tenant: &str,
    person: Uuid,
) -> Result<Option<StoredPerson>, sqlx::Error> {
    let row = sqlx::query_as::<_, PersonRow>(
        "SELECT created_at, updated_at, marketing_opt_out, consent_time, consent_source,
                consent_actor
           FROM identity.persons WHERE tenant_id = $1 AND person_id = $2 AND state = 'active'",
    )
    .bind(tenant)
    .bind(person)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let identifiers = sqlx::query_as::<_, PersonIdentifierRow>(
        "SELECT id_type, id_scope, id_value, linked_at, last_seen_at FROM identity.identifiers
          WHERE tenant_id = $1 AND person_id = $2 ORDER BY linked_at, id_type, id_value",
    )
    .bind(tenant)
    .bind(person)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|r| (IdentifierKey::from(r.key), r.linked_at, r.last_seen_at))
    .collect();
    let merged: Vec<Uuid> = sqlx::query_scalar(
        "SELECT person_id FROM identity.persons
          WHERE tenant_id = $1 AND merged_into = $2 ORDER BY updated_at, person_id",
    )
    .bind(tenant)
    .bind(person)
    .fetch_all(conn)
    .await?;
    Ok(Some(StoredPerson {
        person_id: person,
        created_at: row.created_at,
        updated_at: row.updated_at,
        consent: row.consent,
        identifiers,
        merged,
    }))
}

/// An erasure as stored.
#[derive(Debug, Clone)]
pub struct StoredErasure {
    /// Id.
    pub erasure_id: Uuid,
    /// Erased ids.
    pub person_ids: Vec<Uuid>,
    /// Why.
    pub reason: String,
    /// Who.
    pub actor: String,
    /// When asked.
    pub requested_at: DateTime<Utc>,
    /// When every service confirmed.
    pub completed_at: Option<DateTime<Utc>>,
    /// Per service: name, removed records, done at.
    pub services: Vec<(String, i64, Option<DateTime<Utc>>)>,
}

/// An erasure's own columns, as [`erasure`] reads them.
#[derive(sqlx::FromRow)]
struct ErasureRow {
    person_ids: Vec<Uuid>,
    reason: String,
    actor: String,
    requested_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

/// Erases `person` (locked by the caller) and the ids merged into it:
/// identifiers move to the suppression list, everything else about them is
/// deleted, cache invalidations are queued. Returns the erased ids and how
/// many identifiers were removed.
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &str,
    person: Uuid,
    erasure: Uuid,
    now: DateTime<Utc>,
) -> Result<(Vec<Uuid>, i64), sqlx::Error> {
    let mut ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT person_id FROM identity.persons WHERE tenant_id = $1 AND merged_into = $2
          ORDER BY person_id",
    )
    .bind(tenant)
    .bind(person)
    .fetch_all(&mut *conn)
    .await?;
    ids.insert(0, person);
    let removed: i64 = sqlx::query_scalar(
        "WITH gone AS (
           DELETE FROM identity.identifiers WHERE tenant_id = $1 AND person_id = $2
           RETURNING id_type, id_scope, id_value, version
         ), suppressed AS (
           INSERT INTO identity.suppressed (tenant_id, id_type, id_scope, id_value, erasure_id,
                                            created_at)
           SELECT $1, id_type, id_scope, id_value, $3, $4 FROM gone
           ON CONFLICT DO NOTHING
         ), queued AS (
           INSERT INTO identity.outbox (tenant_id, id_type, id_scope, id_value, version)
           SELECT $1, id_type, id_scope, id_value, version + 1 FROM gone
         )
         SELECT count(*) FROM gone",
    )
    .bind(tenant)
    .bind(person)
    .bind(erasure)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    for statement in [
        "DELETE FROM identity.identifier_history WHERE tenant_id = $1 AND person_id = ANY($2)",
        "DELETE FROM identity.review_items WHERE tenant_id = $1
            AND (person_a = ANY($2) OR person_b = ANY($2))",
        "DELETE FROM identity.separations WHERE tenant_id = $1
            AND (person_a = ANY($2) OR person_b = ANY($2))",
        // Past split records named the moved identifiers: keep the records
        // (consumers replay them) without the values.
        "UPDATE identity.changes SET moved = '[]' WHERE tenant_id = $1
            AND (person_id = ANY($2) OR other_person_ids && $2)",
        "DELETE FROM identity.persons WHERE tenant_id = $1 AND person_id = ANY($2)",
    ] {
        sqlx::query(statement)
            .bind(tenant)
            .bind(&ids)
            .execute(&mut *conn)
            .await?;
    }
    Ok((ids, removed))
}

/// Records an erasure and its pending confirmations (identity's is done).
#[allow(
    clippy::too_many_arguments,
    reason = "one row's columns; a struct would only rename them"
)]
pub async fn insert_erasure(
    conn: &mut PgConnection,
    tenant: &str,
    erasure: Uuid,
    persons: &[Uuid],
    reason: &str,
    actor: &str,
    removed: i64,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO identity.erasures (tenant_id, erasure_id, person_ids, reason, actor,
                                        requested_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(erasure)
    .bind(persons)
    .bind(reason)
    .bind(actor)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let services: Vec<&str> = ERASURE_SERVICES.to_vec();
    sqlx::query(
        "INSERT INTO identity.erasure_confirmations
           (tenant_id, erasure_id, service, removed_records, done_at)
         SELECT $1, $2, s, CASE WHEN s = 'identity' THEN $3 ELSE 0 END,
                CASE WHEN s = 'identity' THEN $4 END
           FROM UNNEST($5::text[]) AS u(s)",
    )
    .bind(tenant)
    .bind(erasure)
    .bind(removed)
    .bind(now)
    .bind(&services)
    .execute(conn)
    .await?;
    Ok(())
}

/// The erasure that covered `person`, if any.
pub async fn erasure_of_person(
    conn: &mut PgConnection,
    tenant: &str,
    person: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT erasure_id FROM identity.erasures WHERE tenant_id = $1 AND $2 = ANY(person_ids)
          LIMIT 1",
    )
    .bind(tenant)
    .bind(person)
    .fetch_optional(conn)
    .await
}

/// Reads an erasure with its confirmations.
pub async fn erasure(
    pool: &PgPool,
    tenant: &str,
    erasure: Uuid,
) -> Result<Option<StoredErasure>, sqlx::Error> {
    let row = sqlx::query_as::<_, ErasureRow>(
        "SELECT person_ids, reason, actor, requested_at, completed_at FROM identity.erasures
          WHERE tenant_id = $1 AND erasure_id = $2",
    )
    .bind(tenant)
    .bind(erasure)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let services = sqlx::query_as(
        "SELECT service, removed_records, done_at FROM identity.erasure_confirmations
          WHERE tenant_id = $1 AND erasure_id = $2 ORDER BY service",
    )
    .bind(tenant)
    .bind(erasure)
    .fetch_all(pool)
    .await?;
    Ok(Some(StoredErasure {
        erasure_id: erasure,
        person_ids: row.person_ids,
        reason: row.reason,
        actor: row.actor,
        requested_at: row.requested_at,
        completed_at: row.completed_at,
        services,
    }))
}

/// Records a service's confirmation; completes the erasure when it was the
/// last. `false` when the erasure or service is unknown.
pub async fn confirm_erasure(
    conn: &mut PgConnection,
    tenant: &str,
    erasure: Uuid,
    service: &str,
    removed: i64,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let found = sqlx::query(
        "UPDATE identity.erasure_confirmations
            SET done_at = COALESCE(done_at, $4), removed_records = $5
          WHERE tenant_id = $1 AND erasure_id = $2 AND service = $3
         RETURNING 1",
    )
    .bind(tenant)
    .bind(erasure)
    .bind(service)
    .bind(now)
    .bind(removed)
    .fetch_optional(&mut *conn)
    .await?
    .is_some();
    if found {
        sqlx::query(
            "UPDATE identity.erasures SET completed_at = $3
              WHERE tenant_id = $1 AND erasure_id = $2 AND completed_at IS NULL
                AND NOT EXISTS (SELECT 1 FROM identity.erasure_confirmations
                                 WHERE tenant_id = $1 AND erasure_id = $2 AND done_at IS NULL)",
        )
        .bind(tenant)
        .bind(erasure)
        .bind(now)
        .execute(conn)
        .await?;
    }
    Ok(found)
}

/// Idempotency keys of LinkIdentifiers, SplitPerson and ResolveReviewItem.
pub const REQUESTS: touchline_db::RequestTable =
    touchline_db::RequestTable::named("identity.requests");
