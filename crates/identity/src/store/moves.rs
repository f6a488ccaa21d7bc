//! Merges and splits: statements that re-point identifiers to another person, close and open
//! their history rows, and queue their cache invalidations, in one statement each.

use super::*;

/// The rest of a statement whose CTE `moved` re-pointed identifiers (returning their key,
/// new `person_id` and version; tenant `$1`): closes their history rows and opens new ones at
/// the instant bound as `$time`, and queues their cache invalidations in the outbox, all in
/// the same statement.
fn record_moves(time: usize) -> String {
    format!(
        ", closed AS (
           UPDATE identity.identifier_history h SET valid_to = ${time}
             FROM moved m
            WHERE h.tenant_id = $1 AND h.id_type = m.id_type AND h.id_scope = m.id_scope
              AND h.id_value = m.id_value AND h.valid_to IS NULL
         ), opened AS (
           INSERT INTO identity.identifier_history
             (tenant_id, id_type, id_scope, id_value, person_id, valid_from)
           SELECT $1, id_type, id_scope, id_value, person_id, ${time} FROM moved
         ), queued AS (
           INSERT INTO identity.outbox (tenant_id, id_type, id_scope, id_value, version)
           SELECT $1, id_type, id_scope, id_value, version FROM moved
         )
         SELECT count(*) FROM moved"
    )
}

/// Moves every identifier of `absorbed` to `survivor`: one merge of [`merge_all`].
pub async fn merge(
    conn: &mut PgConnection,
    tenant: &str,
    survivor: Uuid,
    absorbed: &[Uuid],
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    merge_all(conn, tenant, &[(survivor, absorbed)], now).await
}

/// Applies a plan's merges (survivor, absorbed) in a handful of statements, leaving what
/// applying them one after another leaves: a survivor absorbed by a later merge hands on
/// everything it took, so each absorbed person ends at the last survivor of its chain.
/// Moves the identifiers, marks the absorbed persons merged (and redirects persons merged
/// into them earlier), keeps history, combines consent (an opt-out wins) and queues cache
/// invalidations. Returns how many identifiers moved.
pub async fn merge_all(
    conn: &mut PgConnection,
    tenant: &str,
    merges: &[(Uuid, &[Uuid])],
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let (absorbed, survivors) = crate::graph::final_survivors(merges);
    if absorbed.is_empty() {
        return Ok(0);
    }
    let count: i64 = sqlx::query_scalar(&format!(
        "WITH pairs AS (
           SELECT * FROM UNNEST($2::uuid[], $3::uuid[]) AS p(absorbed, survivor)
         ), moved AS (
           UPDATE identity.identifiers i
              SET person_id = pairs.survivor, version = i.version + 1
             FROM pairs
            WHERE i.tenant_id = $1 AND i.person_id = pairs.absorbed
           RETURNING i.id_type, i.id_scope, i.id_value, i.person_id, i.version
         ){}",
        record_moves(4)
    ))
    .bind(tenant)
    .bind(&absorbed)
    .bind(&survivors)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    // Identifiers of a survivor stop counting as seen with the persons it absorbed (or
    // itself): they are one person now.
    sqlx::query(
        "WITH pairs AS (
           SELECT * FROM UNNEST($2::uuid[], $3::uuid[]) AS p(absorbed, survivor)
         ), groups AS (
           SELECT survivor, array_agg(absorbed) || survivor AS members FROM pairs GROUP BY survivor
         )
         UPDATE identity.identifiers i
            SET seen_with = ARRAY(SELECT unnest(i.seen_with) EXCEPT SELECT unnest(g.members))
           FROM groups g
          WHERE i.tenant_id = $1 AND i.person_id = g.survivor AND i.seen_with && g.members",
    )
    .bind(tenant)
    .bind(&absorbed)
    .bind(&survivors)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "WITH pairs AS (
           SELECT * FROM UNNEST($2::uuid[], $3::uuid[]) AS p(absorbed, survivor)
         ), opted AS (
           SELECT pairs.survivor, bool_or(x.marketing_opt_out) AS any_out
             FROM pairs JOIN identity.persons x
               ON x.tenant_id = $1 AND x.person_id = pairs.absorbed
            GROUP BY pairs.survivor
         )
         UPDATE identity.persons p
            SET marketing_opt_out = p.marketing_opt_out OR opted.any_out, updated_at = $4
           FROM opted
          WHERE p.tenant_id = $1 AND p.person_id = opted.survivor",
    )
    .bind(tenant)
    .bind(&absorbed)
    .bind(&survivors)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // The absorbed persons, then those merged into them earlier, point one hop to the
    // survivor (in this order: the first leaves no absorbed id behind for the second).
    for column in ["person_id", "merged_into"] {
        sqlx::query(&format!(
            "UPDATE identity.persons p
                SET state = 'merged', merged_into = pairs.survivor, updated_at = $4
               FROM UNNEST($2::uuid[], $3::uuid[]) AS pairs(absorbed, survivor)
              WHERE p.tenant_id = $1 AND p.{column} = pairs.absorbed"
        ))
        .bind(tenant)
        .bind(&absorbed)
        .bind(&survivors)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Moves `keys` (which must belong to `person`) to the new person `into`,
/// records the separation and queues cache invalidations. Returns how many
/// identifiers moved.
pub async fn split(
    conn: &mut PgConnection,
    tenant: &str,
    person: Uuid,
    into: Uuid,
    keys: &[IdentifierKey],
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let (types, scopes, values) = key_arrays(keys);
    sqlx::query(
        "INSERT INTO identity.persons (tenant_id, person_id, created_at, updated_at,
                                       marketing_opt_out)
         SELECT $1, $2, $3, $3, marketing_opt_out FROM identity.persons
          WHERE tenant_id = $1 AND person_id = $4",
    )
    .bind(tenant)
    .bind(into)
    .bind(now)
    .bind(person)
    .execute(&mut *conn)
    .await?;
    let count: i64 = sqlx::query_scalar(&format!(
        "WITH moved AS (
           UPDATE identity.identifiers i
              SET person_id = $2, version = i.version + 1, seen_with = '{{}}'
             FROM UNNEST($4::text[], $5::text[], $6::text[]) AS k(t, s, v)
            WHERE i.tenant_id = $1 AND i.person_id = $3
              AND i.id_type = k.t AND i.id_scope = k.s AND i.id_value = k.v
           RETURNING i.id_type, i.id_scope, i.id_value, i.person_id, i.version
         ){}",
        record_moves(7)
    ))
    .bind(tenant)
    .bind(into)
    .bind(person)
    .bind(&types)
    .bind(&scopes)
    .bind(&values)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    let (a, b) = crate::graph::pair(person, into);
    sqlx::query(
        "INSERT INTO identity.separations (tenant_id, person_a, person_b) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(a)
    .bind(b)
    .execute(conn)
    .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}
