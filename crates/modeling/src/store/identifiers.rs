//! Who holds each identifier, kept from identity's change log, and the queue of members whose
//! exported identifiers changed.
//!
//! Identity is the authority; this is its reading in modeling's database, so a segment can
//! select "persons holding a member card" over the whole tenant in one indexed read instead of
//! asking identity person by person.

use std::collections::{HashMap, HashSet};

use sqlx::{PgConnection, PgPool};
use touchline_proto::common::v1::Identifier;
use uuid::Uuid;

/// The identifiers' parts as three parallel lists, for `UNNEST`.
fn columns(keys: &[Identifier]) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
    let mut parts = (
        Vec::with_capacity(keys.len()),
        Vec::with_capacity(keys.len()),
        Vec::with_capacity(keys.len()),
    );
    for key in keys {
        parts.0.push(key.r#type.as_str());
        parts.1.push(key.scope.as_str());
        parts.2.push(key.value.as_str());
    }
    parts
}

/// Queues `(person, type)` pairs for the segment worker, when the tenant has a live segment
/// that publishes identifier updates (nobody would take them otherwise).
async fn queue_updates(
    conn: &mut PgConnection,
    tenant: &str,
    updates: &[(Uuid, String)],
) -> Result<(), sqlx::Error> {
    if updates.is_empty() {
        return Ok(());
    }
    let (persons, types): (Vec<Uuid>, Vec<&str>) =
        updates.iter().map(|(p, t)| (*p, t.as_str())).unzip();
    sqlx::query(
        "INSERT INTO modeling.identifier_updates (tenant_id, person_id, id_type)
         SELECT $1, p, t FROM UNNEST($2::uuid[], $3::text[]) AS u(p, t)
          WHERE EXISTS (SELECT 1 FROM modeling.segments
                         WHERE tenant_id = $1 AND deleted_at IS NULL
                           AND cardinality(identifier_update_types) > 0)",
    )
    .bind(tenant)
    .bind(&persons)
    .bind(&types)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that the identifiers of `updates` (a person and a type each, repeats allowed)
/// changed owner: queues them for the segment worker and moves the tenant's identifier
/// revision on (see [`revision`]). Nothing changed, nothing is written: a revision that moved
/// for nothing would make every segment of the tenant be evaluated again.
async fn changed(
    conn: &mut PgConnection,
    tenant: &str,
    mut updates: Vec<(Uuid, String)>,
) -> Result<(), sqlx::Error> {
    if updates.is_empty() {
        return Ok(());
    }
    updates.sort();
    updates.dedup();
    queue_updates(&mut *conn, tenant, &updates).await?;
    crate::store::next_sequences(conn, "identifier_heads", tenant, 1).await?;
    Ok(())
}

/// Each `(person, keys)` in order: the keys are the person's now (LINK): new values, and values
/// handed over from their previous holders, who are queued for an update too. A run of links
/// is written with a fixed number of statements, whatever its length. Announcing a key its
/// holder already has changes nothing and queues nothing, so a repeated announcement (identity
/// announcing what was linked before it announced links) publishes no update.
pub async fn link(
    conn: &mut PgConnection,
    tenant: &str,
    links: &[(Uuid, &[Identifier])],
) -> Result<(), sqlx::Error> {
    // Every holder a key has on the way through the run, in order; the last one wins.
    let mut holders: HashMap<(&str, &str, &str), Vec<Uuid>> = HashMap::new();
    for (person, keys) in links {
        for key in *keys {
            let id = (key.r#type.as_str(), key.scope.as_str(), key.value.as_str());
            let seen = holders.entry(id).or_default();
            if seen.last() != Some(person) {
                seen.push(*person);
            }
        }
    }
    if holders.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<(&(&str, &str, &str), Uuid)> = holders
        .iter()
        .filter_map(|(key, seen)| seen.last().map(|last| (key, *last)))
        .collect();
    rows.sort_unstable();
    let (types, scopes, values, persons) = rows.iter().fold(
        (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
        |mut columns, ((t, s, v), p)| {
            columns.0.push(*t);
            columns.1.push(*s);
            columns.2.push(*v);
            columns.3.push(*p);
            columns
        },
    );
    let stored: Vec<(String, String, String, Uuid)> = sqlx::query_as(
        "SELECT o.id_type, o.id_scope, o.id_value, o.person_id
           FROM UNNEST($2::text[], $3::text[], $4::text[]) AS k(t, s, v)
           CROSS JOIN LATERAL (
             SELECT * FROM modeling.identifier_owners x
              WHERE x.tenant_id = $1 AND x.id_type = k.t AND x.id_scope = k.s AND x.id_value = k.v
              LIMIT 1) o",
    )
    // A probe of the key per identifier, planned for each run, as identity's lookup does (see
    // there why neither a join nor a cached plan).
    .persistent(false)
    .bind(tenant)
    .bind(&types)
    .bind(&scopes)
    .bind(&values)
    .fetch_all(&mut *conn)
    .await?;
    let before: HashMap<(&str, &str, &str), Uuid> = stored
        .iter()
        .map(|(t, s, v, p)| ((t.as_str(), s.as_str(), v.as_str()), *p))
        .collect();
    let updates = changed_holders(&holders, &before);
    if updates.is_empty() {
        // Every key is already where the run leaves it.
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO modeling.identifier_owners (tenant_id, id_type, id_scope, id_value, person_id)
         SELECT $1, t, s, v, p FROM UNNEST($2::text[], $3::text[], $4::text[], $5::uuid[])
                AS k(t, s, v, p)
         ON CONFLICT (tenant_id, id_type, id_scope, id_value)
         DO UPDATE SET person_id = EXCLUDED.person_id, linked_at = now()
         WHERE modeling.identifier_owners.person_id <> EXCLUDED.person_id",
    )
    .bind(tenant)
    .bind(&types)
    .bind(&scopes)
    .bind(&values)
    .bind(&persons)
    .execute(&mut *conn)
    .await?;
    changed(conn, tenant, updates).await
}

/// The `(person, type)` pairs whose identifiers a run of links changed: for each key that moves
/// (it had no holder, or another one), its stored holder and every holder in the run, in that
/// order (repeats are left to [`changed`]). A key the run leaves with the holder it had is no
/// change.
fn changed_holders(
    holders: &HashMap<(&str, &str, &str), Vec<Uuid>>,
    before: &HashMap<(&str, &str, &str), Uuid>,
) -> Vec<(Uuid, String)> {
    let mut updates: Vec<(Uuid, String)> = Vec::new();
    for (key, seen) in holders {
        let stored = before.get(key).copied();
        if seen.iter().all(|p| Some(*p) == stored) {
            continue;
        }
        let id_type = key.0.to_owned();
        updates.extend(stored.map(|p| (p, id_type.clone())));
        updates.extend(seen.iter().map(|p| (*p, id_type.clone())));
    }
    updates
}

/// The identifiers of each `from` person are `to`'s now (merges, each pair `(from, to)`).
pub async fn merge(
    conn: &mut PgConnection,
    tenant: &str,
    moves: &[(Uuid, Uuid)],
) -> Result<(), sqlx::Error> {
    if moves.is_empty() {
        return Ok(());
    }
    let (from, to): (Vec<Uuid>, Vec<Uuid>) = moves.iter().copied().unzip();
    let gained: Vec<(Uuid, String)> = sqlx::query_as(
        "UPDATE modeling.identifier_owners o SET person_id = u.t
           FROM UNNEST($2::uuid[], $3::uuid[]) AS u(f, t)
          WHERE o.tenant_id = $1 AND o.person_id = u.f
         RETURNING o.person_id, o.id_type",
    )
    .bind(tenant)
    .bind(&from)
    .bind(&to)
    .fetch_all(&mut *conn)
    .await?;
    changed(conn, tenant, gained).await
}

/// `keys` left `person` for `new_person` (a split).
pub async fn split(
    conn: &mut PgConnection,
    tenant: &str,
    person: Uuid,
    new_person: Uuid,
    keys: &[Identifier],
) -> Result<(), sqlx::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    let (types, scopes, values) = columns(keys);
    let moved: Vec<String> = sqlx::query_scalar(
        "UPDATE modeling.identifier_owners o SET person_id = $5
           FROM UNNEST($2::text[], $3::text[], $4::text[]) AS k(t, s, v)
          WHERE o.tenant_id = $1 AND o.id_type = k.t AND o.id_scope = k.s AND o.id_value = k.v
         RETURNING o.id_type",
    )
    .bind(tenant)
    .bind(&types)
    .bind(&scopes)
    .bind(&values)
    .bind(new_person)
    .fetch_all(&mut *conn)
    .await?;
    let updates: Vec<(Uuid, String)> = moved
        .into_iter()
        .flat_map(|t| [(person, t.clone()), (new_person, t)])
        .collect();
    changed(conn, tenant, updates).await
}

/// The tenant's identifier revision: it grows whenever an owner changes (0 before any).
pub async fn revision(pool: &PgPool, tenant: &str) -> Result<i64, sqlx::Error> {
    let head: Option<i64> = sqlx::query_scalar(
        "SELECT head_sequence FROM modeling.identifier_heads WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    Ok(head.unwrap_or(0))
}

/// The persons holding an identifier of `id_type` (with `scope`, or any scope when empty).
pub async fn holders(
    pool: &PgPool,
    tenant: &str,
    id_type: &str,
    scope: &str,
) -> Result<HashSet<Uuid>, sqlx::Error> {
    let persons: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT person_id FROM modeling.identifier_owners
          WHERE tenant_id = $1 AND id_type = $2 AND ($3 = '' OR id_scope = $3)",
    )
    .bind(tenant)
    .bind(id_type)
    .bind(scope)
    .fetch_all(pool)
    .await?;
    Ok(persons.into_iter().collect())
}

/// Takes every queued `(person, type)` update of the tenant, in the caller's transaction (the
/// one that publishes them, so a failed publication leaves them queued).
pub async fn take_updates(
    conn: &mut PgConnection,
    tenant: &str,
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as(
        "DELETE FROM modeling.identifier_updates WHERE tenant_id = $1
         RETURNING person_id, id_type",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use uuid::Uuid;

    use super::changed_holders;

    const CARD: (&str, &str, &str) = ("member_card", "", "c-1");

    fn person(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_key_announced_again_to_its_holder_is_no_change() {
        let holders = HashMap::from([(CARD, vec![person(1)])]);
        let before = HashMap::from([(CARD, person(1))]);
        assert!(changed_holders(&holders, &before).is_empty());
    }

    #[test]
    fn a_new_key_and_a_handover_name_every_holder() {
        let fresh = HashMap::from([(CARD, vec![person(1)])]);
        assert_eq!(
            changed_holders(&fresh, &HashMap::new()),
            vec![(person(1), "member_card".to_owned())]
        );
        // Held by 1, passed to 2 and then 3 within the run: all three lost or gained it.
        let handed = HashMap::from([(CARD, vec![person(2), person(3)])]);
        let before = HashMap::from([(CARD, person(1))]);
        let named: Vec<Uuid> = changed_holders(&handed, &before)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(named, vec![person(1), person(2), person(3)]);
    }
}
