//! SQL that applies the identity service's change log to the event store: merges move history
//! to the surviving person, splits move the events of the split-off identifiers, erasures
//! delete, consent changes set the person's opt-out.
//!
//! Every change is applied under the tenant's store lock (see [`lock_tenant`]), which the
//! event-store worker takes too, so an event resolved before a merge and stored after it is
//! redirected rather than left under a person id that no longer exists.

use sqlx::PgConnection;
use touchline_proto::common::v1::Identifier;
use uuid::Uuid;

pub use crate::merges::Merge;
use crate::merges::MergePlan;

/// Serialises the tenant's event-store writes with identity changes for the transaction.
pub async fn lock_tenant(conn: &mut PgConnection, tenant: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('modeling.events:' || $1, 0))")
        .bind(tenant)
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves the history of `merged` to `survivor` and redirects their ids; returns events moved.
pub async fn apply_merge(
    conn: &mut PgConnection,
    tenant: &str,
    survivor: Uuid,
    merged: &[Uuid],
) -> Result<u64, sqlx::Error> {
    apply_merges(
        conn,
        tenant,
        &[Merge {
            survivor,
            merged: merged.to_vec(),
        }],
    )
    .await
}

/// Applies a run of merges, in order, with a fixed number of statements; returns the events
/// whose person changed.
#[expect(
    clippy::too_many_lines,
    reason = "a run of merges in one transaction: redirects, moved events, counters, in the order that keeps them consistent"
)]
pub async fn apply_merges(
    conn: &mut PgConnection,
    tenant: &str,
    merges: &[Merge],
) -> Result<u64, sqlx::Error> {
    let plan = MergePlan::new(merges);
    if plan.is_empty() {
        return Ok(0);
    }
    let (from, to): (Vec<Uuid>, Vec<Uuid>) = plan.moves.iter().copied().unzip();
    let mut moved = 0;
    if !from.is_empty() {
        moved = sqlx::query(
            "UPDATE modeling.events e SET person_id = u.t
               FROM UNNEST($2::uuid[], $3::uuid[]) AS u(f, t)
              WHERE e.tenant_id = $1 AND e.person_id = u.f",
        )
        .bind(tenant)
        .bind(&from)
        .bind(&to)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        // Persons that pointed at a merged id now point where it ended, so a chain of merges
        // never needs more than one hop.
        sqlx::query(
            "UPDATE modeling.person_redirects r SET to_person = u.t
               FROM UNNEST($2::uuid[], $3::uuid[]) AS u(f, t)
              WHERE r.tenant_id = $1 AND r.to_person = u.f",
        )
        .bind(tenant)
        .bind(&from)
        .bind(&to)
        .execute(&mut *conn)
        .await?;
    }
    let (from, to): (Vec<Uuid>, Vec<Uuid>) = plan.redirects.iter().copied().unzip();
    sqlx::query(
        "INSERT INTO modeling.person_redirects (tenant_id, from_person, to_person)
         SELECT $1, f, t FROM UNNEST($2::uuid[], $3::uuid[]) AS u(f, t)
         ON CONFLICT (tenant_id, from_person) DO UPDATE SET to_person = EXCLUDED.to_person",
    )
    .bind(tenant)
    .bind(&from)
    .bind(&to)
    .execute(&mut *conn)
    .await?;
    let (from, to): (Vec<Uuid>, Vec<Uuid>) = plan.detached_copies.iter().copied().unzip();
    if !from.is_empty() {
        sqlx::query(
            "INSERT INTO modeling.detached_identifiers (tenant_id, person_id, id_type, id_scope, id_value)
             SELECT d.tenant_id, u.t, d.id_type, d.id_scope, d.id_value
               FROM UNNEST($2::uuid[], $3::uuid[]) AS u(f, t)
               JOIN modeling.detached_identifiers d ON d.tenant_id = $1 AND d.person_id = u.f
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(&from)
        .bind(&to)
        .execute(&mut *conn)
        .await?;
    }
    // The merged persons' attributes follow them; an opt-out is never lost by a merge.
    let before: std::collections::HashMap<Uuid, bool> = sqlx::query_as::<_, (Uuid, bool)>(
        "SELECT person_id, marketing_opt_out FROM modeling.person_attributes
          WHERE tenant_id = $1 AND person_id = ANY($2)",
    )
    .bind(tenant)
    .bind(&plan.involved)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let attributes = plan.attributes(&before);
    if !attributes.deletes.is_empty() {
        sqlx::query(
            "DELETE FROM modeling.person_attributes WHERE tenant_id = $1 AND person_id = ANY($2)",
        )
        .bind(tenant)
        .bind(&attributes.deletes)
        .execute(&mut *conn)
        .await?;
    }
    if !attributes.upserts.is_empty() {
        let (persons, opt_outs): (Vec<Uuid>, Vec<bool>) =
            attributes.upserts.iter().copied().unzip();
        sqlx::query(
            "INSERT INTO modeling.person_attributes (tenant_id, person_id, marketing_opt_out)
             SELECT $1, p, o FROM UNNEST($2::uuid[], $3::bool[]) AS u(p, o)
             ON CONFLICT (tenant_id, person_id) DO UPDATE
               SET marketing_opt_out = EXCLUDED.marketing_opt_out, updated_at = now()",
        )
        .bind(tenant)
        .bind(&persons)
        .bind(&opt_outs)
        .execute(&mut *conn)
        .await?;
    }
    crate::store::identifiers::merge(conn, tenant, &plan.moves).await?;
    Ok(moved)
}

/// The stored events of `person`: sequence and encoded `CleanEvent`.
pub async fn events_of(
    conn: &mut PgConnection,
    tenant: &str,
    person: Uuid,
) -> Result<Vec<(i64, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sequence, payload FROM modeling.events WHERE tenant_id = $1 AND person_id = $2",
    )
    .bind(tenant)
    .bind(person)
    .fetch_all(conn)
    .await
}

/// Moves the events at `sequences` to `person`; returns how many moved.
pub async fn move_events(
    conn: &mut PgConnection,
    tenant: &str,
    sequences: &[i64],
    person: Uuid,
) -> Result<u64, sqlx::Error> {
    if sequences.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        "UPDATE modeling.events SET person_id = $2 WHERE tenant_id = $1 AND sequence = ANY($3)",
    )
    .bind(tenant)
    .bind(person)
    .bind(sequences)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Remembers that `identifiers` were detached from `person`, so events resolved to them
/// earlier but stored later are stored without a person.
pub async fn record_detached(
    conn: &mut PgConnection,
    tenant: &str,
    person: Uuid,
    identifiers: &[Identifier],
) -> Result<(), sqlx::Error> {
    if identifiers.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO modeling.detached_identifiers (tenant_id, person_id, id_type, id_scope, id_value)
         SELECT $1, $2, t, s, v FROM UNNEST($3::text[], $4::text[], $5::text[]) AS u(t, s, v)
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(person)
    .bind(identifiers.iter().map(|i| i.r#type.as_str()).collect::<Vec<_>>())
    .bind(identifiers.iter().map(|i| i.scope.as_str()).collect::<Vec<_>>())
    .bind(identifiers.iter().map(|i| i.value.as_str()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// The identifiers detached from each of `persons`.
pub async fn detached_of(
    conn: &mut PgConnection,
    tenant: &str,
    persons: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Vec<Identifier>>, sqlx::Error> {
    let mut out: std::collections::HashMap<Uuid, Vec<Identifier>> =
        std::collections::HashMap::new();
    if persons.is_empty() {
        return Ok(out);
    }
    let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(
        "SELECT person_id, id_type, id_scope, id_value FROM modeling.detached_identifiers
          WHERE tenant_id = $1 AND person_id = ANY($2)",
    )
    .bind(tenant)
    .bind(persons)
    .fetch_all(conn)
    .await?;
    for (person, r#type, scope, value) in rows {
        out.entry(person).or_default().push(Identifier {
            r#type,
            scope,
            value,
        });
    }
    Ok(out)
}

/// Takes the person off the events at `sequences` (their identifiers turned out to be shared
/// by several people); returns how many.
pub async fn detach_events(
    conn: &mut PgConnection,
    tenant: &str,
    sequences: &[i64],
) -> Result<u64, sqlx::Error> {
    if sequences.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        "UPDATE modeling.events SET person_id = NULL WHERE tenant_id = $1 AND sequence = ANY($2)",
    )
    .bind(tenant)
    .bind(sequences)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Deletes every record of `persons` and queues the erasure's confirmation in the same
/// transaction; returns the records removed.
pub async fn erase(
    conn: &mut PgConnection,
    tenant: &str,
    persons: &[Uuid],
    erasure: &str,
) -> Result<u64, sqlx::Error> {
    let mut removed =
        sqlx::query("DELETE FROM modeling.events WHERE tenant_id = $1 AND person_id = ANY($2)")
            .bind(tenant)
            .bind(persons)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    for table in [
        "person_attributes",
        "detached_identifiers",
        "identifier_owners",
        "identifier_updates",
    ] {
        removed += sqlx::query(&format!(
            "DELETE FROM modeling.{table} WHERE tenant_id = $1 AND person_id = ANY($2)"
        ))
        .bind(tenant)
        .bind(persons)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    removed += sqlx::query(
        "DELETE FROM modeling.person_redirects WHERE tenant_id = $1 AND (from_person = ANY($2) OR to_person = ANY($2))",
    )
    .bind(tenant)
    .bind(persons)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    // Remembered briefly so events resolved before the erasure and stored after it are
    // dropped; older entries go, as no resolution stays in flight that long.
    sqlx::query("DELETE FROM modeling.erased_persons WHERE erased_at < now() - interval '1 hour'")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO modeling.erased_persons (tenant_id, person_id)
         SELECT $1, p FROM UNNEST($2::uuid[]) AS p
         ON CONFLICT (tenant_id, person_id) DO UPDATE SET erased_at = now()",
    )
    .bind(tenant)
    .bind(persons)
    .execute(&mut *conn)
    .await?;
    if !erasure.is_empty() {
        sqlx::query(
            "INSERT INTO modeling.erasure_confirmations (tenant_id, erasure, removed_records)
             VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, erasure) DO UPDATE
               SET removed_records = modeling.erasure_confirmations.removed_records + EXCLUDED.removed_records",
        )
        .bind(tenant)
        .bind(erasure)
        .bind(i64::try_from(removed).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
    }
    Ok(removed)
}

/// Sets the marketing opt-out of `person`.
pub async fn set_opt_out(
    conn: &mut PgConnection,
    tenant: &str,
    person: Uuid,
    opt_out: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO modeling.person_attributes (tenant_id, person_id, marketing_opt_out)
         VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, person_id) DO UPDATE
           SET marketing_opt_out = EXCLUDED.marketing_opt_out, updated_at = now()",
    )
    .bind(tenant)
    .bind(person)
    .bind(opt_out)
    .execute(conn)
    .await?;
    Ok(())
}

/// Erasure confirmations waiting to be relayed: tenant, erasure, records removed.
pub async fn pending_confirmations(
    conn: &mut PgConnection,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT tenant_id, erasure, removed_records FROM modeling.erasure_confirmations ORDER BY created_at LIMIT 100")
        .fetch_all(conn)
        .await
}

/// Drops a relayed confirmation.
pub async fn confirmation_sent(
    conn: &mut PgConnection,
    tenant: &str,
    erasure: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM modeling.erasure_confirmations WHERE tenant_id = $1 AND erasure = $2")
        .bind(tenant)
        .bind(erasure)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marketing opt-out of `person` (false when never set).
pub async fn opted_out(
    pool: &sqlx::PgPool,
    tenant: &str,
    person: Uuid,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query_scalar(
        "SELECT marketing_opt_out FROM modeling.person_attributes WHERE tenant_id = $1 AND person_id = $2",
    )
    .bind(tenant)
    .bind(person)
    .fetch_optional(pool)
    .await?
    .unwrap_or(false))
}
