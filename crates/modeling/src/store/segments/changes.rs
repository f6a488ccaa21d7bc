//! Membership and the change log: who is in a segment now or as of a sequence, publishing
//! entries and exits with their sequences, and pruning what readers no longer need.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The persons in the segment now.
pub async fn current_members(
    conn: &mut PgConnection,
    tenant: &str,
    segment: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT person_id FROM modeling.segment_memberships
          WHERE tenant_id = $1 AND segment_id = $2 AND exited_sequence IS NULL
          ORDER BY person_id",
    )
    .bind(tenant)
    .bind(segment)
    .fetch_all(conn)
    .await
}

/// What a change says of its person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Became a member.
    Entered,
    /// Stopped being a member.
    Exited,
    /// Stays a member whose exported identifiers changed.
    IdentifiersUpdated,
}

impl ChangeKind {
    /// The contract's `SegmentChangeKind` number.
    pub fn number(self) -> i16 {
        match self {
            Self::Entered => 1,
            Self::Exited => 2,
            Self::IdentifiersUpdated => 3,
        }
    }
}

/// An entry, exit or update to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewChange {
    /// The person.
    pub person: Uuid,
    /// What happened.
    pub kind: ChangeKind,
    /// The contract's `SegmentChangeReason` number.
    pub reason: i16,
}

/// The contract's `SEGMENT_CHANGE_REASON_RULE_EVALUATED`: the reason whose changes name the
/// event behind them.
const RULE_EVALUATED: i16 = 1;

/// The event behind each of `changes` (aligned with them): for reason RULE_EVALUATED the
/// message id of the person's newest stored event, else empty.
pub async fn causes(
    conn: &mut PgConnection,
    tenant: &str,
    changes: &[NewChange],
) -> Result<Vec<String>, sqlx::Error> {
    let persons: Vec<Uuid> = changes
        .iter()
        .filter(|c| c.reason == RULE_EVALUATED)
        .map(|c| c.person)
        .collect();
    if persons.is_empty() {
        return Ok(vec![String::new(); changes.len()]);
    }
    let newest: std::collections::HashMap<Uuid, String> = sqlx::query_as::<_, (Uuid, String)>(
        "SELECT p, (SELECT e.message_id FROM modeling.events e
                     WHERE e.tenant_id = $1 AND e.person_id = p
                     ORDER BY e.sequence DESC LIMIT 1)
           FROM UNNEST($2::uuid[]) AS p",
    )
    .bind(tenant)
    .bind(&persons)
    .fetch_all(conn)
    .await?
    .into_iter()
    .collect();
    Ok(changes
        .iter()
        .map(|c| {
            (c.reason == RULE_EVALUATED)
                .then(|| newest.get(&c.person).cloned())
                .flatten()
                .unwrap_or_default()
        })
        .collect())
}

/// Publishes `changes` of one segment (with the event behind each, `causes`, aligned; missing
/// ones are empty): each gets the tenant's next sequence and a stable id, and the membership
/// intervals move with them, in the caller's transaction. Returns the last sequence given
/// (the head when `changes` is empty).
pub async fn publish(
    conn: &mut PgConnection,
    tenant: &str,
    segment: &str,
    changes: &[NewChange],
    causes: &[String],
    at: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let (sequences, head) =
        crate::store::next_sequences(&mut *conn, "segment_change_heads", tenant, changes.len())
            .await?;
    if changes.is_empty() {
        return Ok(head);
    }
    let ids: Vec<Uuid> = changes.iter().map(|_| Uuid::now_v7()).collect();
    let persons: Vec<Uuid> = changes.iter().map(|c| c.person).collect();
    let kinds: Vec<i16> = changes.iter().map(|c| c.kind.number()).collect();
    let reasons: Vec<i16> = changes.iter().map(|c| c.reason).collect();
    let causes: Vec<&str> = (0..changes.len())
        .map(|i| causes.get(i).map_or("", String::as_str))
        .collect();
    sqlx::query(
        "INSERT INTO modeling.segment_changes
             (tenant_id, sequence, change_id, segment_id, person_id, kind, reason, changed_at,
              cause_message_id)
         SELECT $1, s, i, $2, p, k, r, $7, c
           FROM UNNEST($3::bigint[], $4::uuid[], $5::uuid[], $6::smallint[], $8::smallint[],
                       $9::text[]) AS t(s, i, p, k, r, c)",
    )
    .bind(tenant)
    .bind(segment)
    .bind(&sequences)
    .bind(&ids)
    .bind(&persons)
    .bind(&kinds)
    .bind(at)
    .bind(&reasons)
    .bind(&causes)
    .execute(&mut *conn)
    .await?;
    let (entered, entered_at): (Vec<Uuid>, Vec<i64>) = changes
        .iter()
        .zip(&sequences)
        .filter(|(c, _)| c.kind == ChangeKind::Entered)
        .map(|(c, s)| (c.person, *s))
        .unzip();
    sqlx::query(
        "INSERT INTO modeling.segment_memberships
             (tenant_id, segment_id, person_id, entered_sequence, entered_at)
         SELECT $1, $2, p, s, $5 FROM UNNEST($3::uuid[], $4::bigint[]) AS t(p, s)",
    )
    .bind(tenant)
    .bind(segment)
    .bind(&entered)
    .bind(&entered_at)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    let (exited, exited_at): (Vec<Uuid>, Vec<i64>) = changes
        .iter()
        .zip(&sequences)
        .filter(|(c, _)| c.kind == ChangeKind::Exited)
        .map(|(c, s)| (c.person, *s))
        .unzip();
    sqlx::query(
        "UPDATE modeling.segment_memberships m SET exited_sequence = t.s
           FROM UNNEST($3::uuid[], $4::bigint[]) AS t(p, s)
          WHERE m.tenant_id = $1 AND m.segment_id = $2 AND m.person_id = t.p
            AND m.exited_sequence IS NULL",
    )
    .bind(tenant)
    .bind(segment)
    .bind(&exited)
    .bind(&exited_at)
    .execute(conn)
    .await?;
    Ok(head)
}

/// What an evaluation of a segment leaves on its row.
#[derive(Debug, Clone, Copy)]
pub struct Evaluated {
    /// The rule revision the members now reflect.
    pub rule_revision: i64,
    /// Members now.
    pub member_count: i64,
    /// The segment's latest change, when this evaluation published one.
    pub last_change_sequence: Option<i64>,
    /// When a window may next change a membership.
    pub next_due_at: Option<DateTime<Utc>>,
}

/// Records an evaluation on the segment's row.
pub async fn evaluated(
    conn: &mut PgConnection,
    tenant: &str,
    segment: &str,
    outcome: Evaluated,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE modeling.segments
            SET built_rule_revision = $3, member_count = $4,
                last_change_sequence = COALESCE($5, last_change_sequence),
                next_due_at = $6, evaluated_at = now()
          WHERE tenant_id = $1 AND segment_id = $2",
    )
    .bind(tenant)
    .bind(segment)
    .bind(outcome.rule_revision)
    .bind(outcome.member_count)
    .bind(outcome.last_change_sequence)
    .bind(outcome.next_due_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The tenant's newest change sequence and the last one pruned (0, 0 before any change).
pub async fn head(pool: &PgPool, tenant: &str) -> Result<(i64, i64), sqlx::Error> {
    Ok(sqlx::query_as(
        "SELECT head_sequence, pruned_through FROM modeling.segment_change_heads
          WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(pool)
    .await?
    .unwrap_or((0, 0)))
}

/// One published change.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredChange {
    /// Its place in the tenant's log.
    pub sequence: i64,
    /// Its stable id.
    pub change_id: Uuid,
    /// The segment.
    pub segment_id: String,
    /// The person.
    pub person_id: Uuid,
    /// `KIND_ENTERED` or `KIND_EXITED`.
    pub kind: i16,
    /// The contract's reason number.
    pub reason: i16,
    /// When it was decided.
    pub changed_at: DateTime<Utc>,
    /// The message id of the event behind it (RULE_EVALUATED), else empty.
    pub cause_message_id: String,
}

/// Up to `limit` changes after `after`, of one segment or (`None`) of all.
pub async fn changes_after(
    pool: &PgPool,
    tenant: &str,
    segment: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredChange>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sequence, change_id, segment_id, person_id, kind, reason, changed_at,
                cause_message_id
           FROM modeling.segment_changes
          WHERE tenant_id = $1 AND sequence > $2 AND ($3::text IS NULL OR segment_id = $3)
          ORDER BY sequence LIMIT $4",
    )
    .bind(tenant)
    .bind(after)
    .bind(segment)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A member as of a sequence.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredMember {
    /// The person.
    pub person_id: Uuid,
    /// When they last entered.
    pub entered_at: DateTime<Utc>,
}

/// Up to `limit` members of `segment` after person `after`, as of change `as_of`.
pub async fn members_as_of(
    pool: &PgPool,
    tenant: &str,
    segment: &str,
    as_of: i64,
    after: Uuid,
    limit: i64,
) -> Result<Vec<StoredMember>, sqlx::Error> {
    sqlx::query_as(
        "SELECT person_id, entered_at FROM modeling.segment_memberships
          WHERE tenant_id = $1 AND segment_id = $2 AND person_id > $4
            AND entered_sequence <= $3 AND (exited_sequence IS NULL OR exited_sequence > $3)
          ORDER BY person_id LIMIT $5",
    )
    .bind(tenant)
    .bind(segment)
    .bind(as_of)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many members `segment` had as of change `as_of`.
pub async fn member_count_as_of(
    pool: &PgPool,
    tenant: &str,
    segment: &str,
    as_of: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM modeling.segment_memberships
          WHERE tenant_id = $1 AND segment_id = $2
            AND entered_sequence <= $3 AND (exited_sequence IS NULL OR exited_sequence > $3)",
    )
    .bind(tenant)
    .bind(segment)
    .bind(as_of)
    .fetch_one(pool)
    .await
}

/// Drops changes and closed membership intervals older than `keep`, and moves each tenant's
/// pruned-through mark past what was dropped.
pub async fn prune(pool: &PgPool, keep: std::time::Duration) -> Result<u64, sqlx::Error> {
    let keep_secs = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    let pruned: Vec<(String, i64)> = sqlx::query_as(
        "WITH gone AS (
             DELETE FROM modeling.segment_changes
              WHERE changed_at < now() - make_interval(secs => $1)
          RETURNING tenant_id, sequence)
         SELECT tenant_id, max(sequence) FROM gone GROUP BY tenant_id",
    )
    .bind(keep_secs as f64)
    .fetch_all(&mut *tx)
    .await?;
    let mut dropped = 0;
    for (tenant, through) in &pruned {
        sqlx::query(
            "UPDATE modeling.segment_change_heads SET pruned_through = GREATEST(pruned_through, $2)
              WHERE tenant_id = $1",
        )
        .bind(tenant)
        .bind(through)
        .execute(&mut *tx)
        .await?;
        let closed = sqlx::query(
            "DELETE FROM modeling.segment_memberships
              WHERE tenant_id = $1 AND exited_sequence IS NOT NULL AND exited_sequence <= $2",
        )
        .bind(tenant)
        .bind(through)
        .execute(&mut *tx)
        .await?;
        dropped += closed.rows_affected();
    }
    tx.commit().await?;
    Ok(dropped + pruned.len() as u64)
}

/// Of `persons`, those merged into another person and those erased: the causes of exits
/// that are not the rule's doing.
pub async fn exit_causes(
    conn: &mut PgConnection,
    tenant: &str,
    persons: &[Uuid],
) -> Result<(Vec<Uuid>, Vec<Uuid>), sqlx::Error> {
    if persons.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let merged: Vec<Uuid> = sqlx::query_scalar(
        "SELECT from_person FROM modeling.person_redirects
          WHERE tenant_id = $1 AND from_person = ANY($2)",
    )
    .bind(tenant)
    .bind(persons)
    .fetch_all(&mut *conn)
    .await?;
    let erased: Vec<Uuid> = sqlx::query_scalar(
        "SELECT person_id FROM modeling.erased_persons WHERE tenant_id = $1 AND person_id = ANY($2)",
    )
    .bind(tenant)
    .bind(persons)
    .fetch_all(conn)
    .await?;
    Ok((merged, erased))
}
