//! All SQL of the identity service. Every statement filters by tenant and
//! takes a whole batch at once (`UNNEST` arrays), so a request costs a fixed
//! number of round trips whatever its size.
//!
//! `mod.rs` holds the graph (identifiers, persons, merges, splits); `log`
//! the change log, audit and review queue; `admin` rules, consent, erasure
//! and profiles; `outbox` the cache invalidations; `timeline` the last uses
//! and handovers of weak identifiers; `owners` the single-identifier reads; `moves` the
//! merges and splits that re-point identifiers.

pub mod admin;
pub mod log;
mod moves;
pub mod outbox;
mod owners;
pub mod timeline;

pub use moves::{merge, merge_all, split};
pub use owners::{current_person, owner, owner_at};

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::IdentifierKey;
use crate::graph::Known;

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
    /// Persons it was already seen with.
    pub seen_with: &'a [Uuid],
}

/// A current owner and the entry's version (what the cache stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Owner {
    /// The person.
    pub person_id: Uuid,
    /// Grows on every move of the identifier (and when it is first seen
    /// with another person).
    pub version: i64,
    /// Seen with other persons than its owner (whether it still names the
    /// owner depends on the rules), or handed over from another person (who
    /// it names depends on the event's time): only PostgreSQL may answer.
    pub contested: bool,
}

fn key_arrays<K: Borrow<IdentifierKey>>(keys: &[K]) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
    (
        keys.iter().map(|k| k.borrow().id_type.as_str()).collect(),
        keys.iter().map(|k| k.borrow().scope.as_str()).collect(),
        keys.iter().map(|k| k.borrow().value.as_str()).collect(),
    )
}

/// An identifier's columns `id_type, id_scope, id_value`.
#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    id_type: String,
    id_scope: String,
    id_value: String,
}

impl From<KeyRow> for IdentifierKey {
    fn from(row: KeyRow) -> Self {
        Self {
            id_type: row.id_type,
            scope: row.id_scope,
            value: row.id_value,
        }
    }
}

/// An identifier with what the graph knows about it, as [`lookup`] reads it.
#[derive(sqlx::FromRow)]
struct LookupRow {
    #[sqlx(flatten)]
    key: KeyRow,
    person_id: Uuid,
    seen_with: Vec<Uuid>,
    version: i64,
    last_seen_at: Option<DateTime<Utc>>,
    held_since: Option<DateTime<Utc>>,
    previous: Option<Uuid>,
}

/// A contested identifier, as [`contested_of`] reads it.
#[derive(sqlx::FromRow)]
struct ContestedRow {
    #[sqlx(flatten)]
    key: KeyRow,
    person_id: Uuid,
    seen_with: Vec<Uuid>,
}

/// The random id of this database (migration 0008): what the cache keys live under.
pub async fn store_epoch(pool: &sqlx::PgPool) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar("SELECT epoch FROM identity.store_epoch")
        .fetch_one(pool)
        .await
}

/// The owners (with versions and "seen with" lists) of those of `keys` that
/// are linked.
pub async fn lookup<K: Borrow<IdentifierKey>>(
    conn: &mut PgConnection,
    tenant: &str,
    keys: &[K],
) -> Result<HashMap<IdentifierKey, (Known, i64)>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (types, scopes, values) = key_arrays(keys);
    // A previous holder merged since stands for the person it was merged
    // into (merged ids point one hop to their survivor).
    let rows = sqlx::query_as::<_, LookupRow>(
        "SELECT i.id_type, i.id_scope, i.id_value, i.person_id, i.seen_with, i.version,
                i.last_seen_at, i.held_since,
                CASE WHEN pp.state = 'merged' THEN pp.merged_into ELSE i.previous_person_id END
                  AS previous
           FROM UNNEST($2::text[], $3::text[], $4::text[]) AS k(t, s, v)
           CROSS JOIN LATERAL (
             SELECT * FROM identity.identifiers x
              WHERE x.tenant_id = $1 AND x.id_type = k.t AND x.id_scope = k.s AND x.id_value = k.v
              LIMIT 1) i
           LEFT JOIN identity.persons pp
             ON pp.tenant_id = $1 AND pp.person_id = i.previous_person_id",
    )
    // One probe of the unique key per identifier, whatever the statistics say. As a plain
    // join, the planner reads a tenant that grew since the table was last analysed (a new
    // tenant, a new database, autovacuum off or behind) as a few rows, and hashes all of the
    // tenant's identifiers for every batch: 28 ms at 60,000 identifiers and growing, against
    // 1.8 ms this way. The LIMIT keeps the planner from folding the probe back into a join.
    // Planned for each batch, never from a cached generic plan: one made while the table was
    // nearly empty scans it whole for every identifier, and is kept (seconds per call).
    .persistent(false)
    .bind(tenant)
    .bind(&types)
    .bind(&scopes)
    .bind(&values)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let known = Known {
                person_id: row.person_id,
                seen_with: row.seen_with,
                last_seen: row.last_seen_at,
                held_since: row.held_since,
                previous: row.previous,
            };
            (row.key.into(), (known, row.version))
        })
        .collect())
}

/// How many identifiers of each type each of `persons` holds.
pub async fn type_counts(
    conn: &mut PgConnection,
    tenant: &str,
    persons: &[Uuid],
) -> Result<HashMap<Uuid, HashMap<String, u32>>, sqlx::Error> {
    let mut out: HashMap<Uuid, HashMap<String, u32>> = HashMap::new();
    if persons.is_empty() {
        return Ok(out);
    }
    let rows = sqlx::query_as::<_, (Uuid, String, i64)>(
        "SELECT person_id, id_type, count(*) FROM identity.identifiers
          WHERE tenant_id = $1 AND person_id = ANY($2) GROUP BY person_id, id_type",
    )
    .bind(tenant)
    .bind(persons)
    .fetch_all(conn)
    .await?;
    for (person, id_type, count) in rows {
        out.entry(person)
            .or_default()
            .insert(id_type, u32::try_from(count).unwrap_or(u32::MAX));
    }
    Ok(out)
}

/// Separated pairs (smaller id first) involving any of `persons`.
pub async fn separations(
    conn: &mut PgConnection,
    tenant: &str,
    persons: &[Uuid],
) -> Result<HashSet<(Uuid, Uuid)>, sqlx::Error> {
    if persons.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = sqlx::query_as::<_, (Uuid, Uuid)>(
        "SELECT person_a, person_b FROM identity.separations
          WHERE tenant_id = $1 AND (person_a = ANY($2) OR person_b = ANY($2))",
    )
    .bind(tenant)
    .bind(persons)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Those of `keys` that belonged to erased persons.
pub async fn suppressed(
    conn: &mut PgConnection,
    tenant: &str,
    keys: &[IdentifierKey],
) -> Result<HashSet<IdentifierKey>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashSet::new());
    }
    let (types, scopes, values) = key_arrays(keys);
    let rows = sqlx::query_as::<_, KeyRow>(
        "SELECT s.id_type, s.id_scope, s.id_value
           FROM UNNEST($2::text[], $3::text[], $4::text[]) AS k(t, s, v)
           CROSS JOIN LATERAL (
             SELECT * FROM identity.suppressed x
              WHERE x.tenant_id = $1 AND x.id_type = k.t AND x.id_scope = k.s AND x.id_value = k.v
              LIMIT 1) s",
    )
    // A probe of the key per identifier, planned for each batch, as in `lookup`.
    .persistent(false)
    .bind(tenant)
    .bind(&types)
    .bind(&scopes)
    .bind(&values)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(IdentifierKey::from).collect())
}

/// Locks `persons` (in id order, so concurrent writers queue instead of
/// deadlocking) and returns those still active.
pub async fn lock_persons(
    conn: &mut PgConnection,
    tenant: &str,
    persons: &[Uuid],
) -> Result<HashSet<Uuid>, sqlx::Error> {
    if persons.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = sqlx::query_as::<_, (Uuid, String)>(
        "SELECT person_id, state FROM identity.persons
          WHERE tenant_id = $1 AND person_id = ANY($2)
          ORDER BY person_id FOR UPDATE",
    )
    .bind(tenant)
    .bind(persons)
    .fetch_all(conn)
    .await?;
    let mut active = HashSet::new();
    for (person, state) in rows {
        if state == "active" {
            active.insert(person);
        }
    }
    Ok(active)
}

/// Creates `persons` and links `links` in one statement (history included),
/// returning how many links were written. A link whose identifier another
/// transaction claimed first is skipped (`ON CONFLICT DO NOTHING`), so fewer
/// than `links.len()` means the caller planned on stale data and must roll
/// back and re-plan. Links are inserted in key order so concurrent writers
/// take the unique index's entries in the same order.
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
    // uuid[][] cannot be ragged: "seen with" lists are at most one person
    // for new links, so they travel as a nullable uuid per link.
    let seen: Vec<Option<Uuid>> = links.iter().map(|l| l.seen_with.first().copied()).collect();
    // The persons are inserted by a sibling CTE of the same statement; the
    // foreign key is checked at the end of the statement, when they exist.
    let count: i64 = sqlx::query_scalar(
        "WITH new_persons AS (
           INSERT INTO identity.persons (tenant_id, person_id, created_at, updated_at)
           SELECT $1, p, $2, $2 FROM UNNEST($3::uuid[]) AS n(p)
         ), linked AS (
           INSERT INTO identity.identifiers
             (tenant_id, id_type, id_scope, id_value, person_id, linked_at, observed_at,
              evidence_message_id, seen_with, last_seen_at)
           SELECT $1, t, s, v, p, $2, o, e,
                  CASE WHEN w IS NULL THEN '{}'::uuid[] ELSE ARRAY[w] END, o
             FROM UNNEST($4::text[], $5::text[], $6::text[], $7::uuid[], $8::timestamptz[],
                         $9::text[], $10::uuid[]) AS l(t, s, v, p, o, e, w)
            ORDER BY t, s, v
           ON CONFLICT ON CONSTRAINT identifiers_key DO NOTHING
           RETURNING id_type, id_scope, id_value, person_id
         ), history AS (
           INSERT INTO identity.identifier_history
             (tenant_id, id_type, id_scope, id_value, person_id, valid_from)
           SELECT $1, id_type, id_scope, id_value, person_id, $2 FROM linked
         )
         SELECT count(*) FROM linked",
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
    .bind(&seen)
    .fetch_one(conn)
    .await?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// The identifiers of `persons` seen with other persons (those the rules
/// may count as shared), with their owners and "seen with" lists.
pub async fn contested_of(
    conn: &mut PgConnection,
    tenant: &str,
    persons: &[Uuid],
) -> Result<Vec<(IdentifierKey, Known)>, sqlx::Error> {
    if persons.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as::<_, ContestedRow>(
        "SELECT id_type, id_scope, id_value, person_id, seen_with FROM identity.identifiers
          WHERE tenant_id = $1 AND person_id = ANY($2) AND cardinality(seen_with) > 0",
    )
    .bind(tenant)
    .bind(persons)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let known = Known {
                person_id: row.person_id,
                seen_with: row.seen_with,
                ..Known::default()
            };
            (row.key.into(), known)
        })
        .collect())
}

/// Adds persons to identifiers' "seen with" lists. Each changed identifier
/// gets a new version and a queued cache invalidation: a contested value is
/// never answered from the cache.
pub async fn add_seen_with(
    conn: &mut PgConnection,
    tenant: &str,
    pairs: &[(IdentifierKey, Uuid)],
) -> Result<(), sqlx::Error> {
    if pairs.is_empty() {
        return Ok(());
    }
    let types: Vec<&str> = pairs.iter().map(|(k, _)| k.id_type.as_str()).collect();
    let scopes: Vec<&str> = pairs.iter().map(|(k, _)| k.scope.as_str()).collect();
    let values: Vec<&str> = pairs.iter().map(|(k, _)| k.value.as_str()).collect();
    let persons: Vec<Uuid> = pairs.iter().map(|(_, p)| *p).collect();
    // One row per identifier, so a key seen with two persons in one batch
    // is updated once (an UPDATE ... FROM applies one source row per target).
    sqlx::query(
        "WITH k AS (
           SELECT $1::text AS tenant, t, s, v, array_agg(DISTINCT p) AS ps
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::uuid[]) AS u(t, s, v, p)
            GROUP BY t, s, v
         ), changed AS (
           UPDATE identity.identifiers i
              SET seen_with = (SELECT array_agg(DISTINCT x)
                                 FROM unnest(i.seen_with || k.ps) AS x),
                  version = i.version + 1
             FROM k
            WHERE i.tenant_id = k.tenant AND i.id_type = k.t AND i.id_scope = k.s
              AND i.id_value = k.v
              AND NOT (k.ps <@ i.seen_with) AND cardinality(i.seen_with) < 1001
           RETURNING i.id_type, i.id_scope, i.id_value, i.version
         )
         INSERT INTO identity.outbox (tenant_id, id_type, id_scope, id_value, version)
         SELECT $1, id_type, id_scope, id_value, version FROM changed",
    )
    // The tenant comes through `k` so the target is probed per key whatever the statistics
    // say (see `timeline::record_last_seen`); planned for each batch, like `lookup`.
    .persistent(false)
    .bind(tenant)
    .bind(&types)
    .bind(&scopes)
    .bind(&values)
    .bind(&persons)
    .execute(conn)
    .await?;
    Ok(())
}

/// The identifiers of `person`.
pub async fn identifiers_of(
    conn: &mut PgConnection,
    tenant: &str,
    person: Uuid,
) -> Result<Vec<IdentifierKey>, sqlx::Error> {
    let rows = sqlx::query_as::<_, KeyRow>(
        "SELECT id_type, id_scope, id_value FROM identity.identifiers
          WHERE tenant_id = $1 AND person_id = $2 ORDER BY id_type, id_scope, id_value",
    )
    .bind(tenant)
    .bind(person)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(IdentifierKey::from).collect())
}
