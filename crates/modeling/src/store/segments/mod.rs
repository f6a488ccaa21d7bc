//! Segments, their membership intervals and the tenant's change log.
//!
//! The rule is kept as this module's own JSON form, so a rename in the service's types never
//! changes what is stored by accident. Sequences of the change log are handed out from
//! `segment_change_heads` inside the publishing transaction: one row per tenant, so
//! publications of one tenant are serialised and the log has no gaps a reader could mistake
//! for a change it missed.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::journeys::segments::Rule;

mod changes;
mod rule_json;

pub use changes::*;
use rule_json::{decode_rule, encode_rule};

/// A segment's definition as written by a create or an update.
#[derive(Debug, Clone)]
pub struct Definition {
    /// For people.
    pub display_name: String,
    /// What it is for.
    pub description: String,
    /// Who is a member.
    pub rule: Rule,
    /// How often window conditions are looked at again at the latest (seconds).
    pub reevaluation_secs: i64,
    /// Identifier types whose change for a member publishes an update.
    pub identifier_update_types: Vec<String>,
}

/// A stored segment.
#[derive(Debug, Clone)]
pub struct SegmentRow {
    /// The id.
    pub id: String,
    /// The definition.
    pub definition: Definition,
    /// The etag: grows with every change of the definition.
    pub revision: i64,
    /// Grows only when the rule changes.
    pub rule_revision: i64,
    /// The rule revision the members reflect; `None` before the first build.
    pub built_rule_revision: Option<i64>,
    /// Current members (opted-out persons are never members).
    pub member_count: i64,
    /// The sequence of the segment's latest change.
    pub last_change_sequence: i64,
    /// When a window may next change a membership.
    pub next_due_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its definition last changed.
    pub updated_at: DateTime<Utc>,
    /// Deleted, its members' exits still to publish.
    pub deleted: bool,
}

#[derive(sqlx::FromRow)]
struct Row {
    segment_id: String,
    display_name: String,
    description: String,
    rule: serde_json::Value,
    reevaluation_secs: i64,
    identifier_update_types: Vec<String>,
    revision: i64,
    rule_revision: i64,
    built_rule_revision: Option<i64>,
    member_count: i64,
    last_change_sequence: i64,
    next_due_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted: bool,
}

const COLUMNS: &str = "segment_id, display_name, description, rule, reevaluation_secs,
    identifier_update_types, revision,
    rule_revision, built_rule_revision, member_count, last_change_sequence, next_due_at,
    created_at, updated_at, deleted_at IS NOT NULL AS deleted";

impl TryFrom<Row> for SegmentRow {
    type Error = sqlx::Error;
    fn try_from(row: Row) -> Result<Self, sqlx::Error> {
        Ok(SegmentRow {
            id: row.segment_id,
            definition: Definition {
                display_name: row.display_name,
                description: row.description,
                rule: decode_rule(row.rule)?,
                reevaluation_secs: row.reevaluation_secs,
                identifier_update_types: row.identifier_update_types,
            },
            revision: row.revision,
            rule_revision: row.rule_revision,
            built_rule_revision: row.built_rule_revision,
            member_count: row.member_count,
            last_change_sequence: row.last_change_sequence,
            next_due_at: row.next_due_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            deleted: row.deleted,
        })
    }
}

/// Creates a segment; `false` when the id is taken (by a live or a deleting segment).
pub async fn insert(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
    definition: &Definition,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO modeling.segments (tenant_id, segment_id, display_name, description, rule,
             reevaluation_secs, identifier_update_types, revision, rule_revision)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 1)
         ON CONFLICT (tenant_id, segment_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(id)
    .bind(&definition.display_name)
    .bind(&definition.description)
    .bind(encode_rule(&definition.rule)?)
    .bind(definition.reevaluation_secs)
    .bind(&definition.identifier_update_types)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One live segment.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
) -> Result<Option<SegmentRow>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM modeling.segments
          WHERE tenant_id = $1 AND segment_id = $2 AND deleted_at IS NULL"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(SegmentRow::try_from).transpose()
}

/// The persons in a live segment now (as of its last evaluation); `None` when the tenant has
/// no such segment.
pub async fn live_members(
    pool: &PgPool,
    tenant: &str,
    id: &str,
) -> Result<Option<Vec<uuid::Uuid>>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    if get(&mut conn, tenant, id).await?.is_none() {
        return Ok(None);
    }
    current_members(&mut conn, tenant, id).await.map(Some)
}

/// Live segments after `after`, by id.
pub async fn list(
    pool: &PgPool,
    tenant: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<SegmentRow>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM modeling.segments
          WHERE tenant_id = $1 AND segment_id > $2 AND deleted_at IS NULL
          ORDER BY segment_id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(SegmentRow::try_from).collect()
}

/// Every segment of the tenant, deleted ones still publishing their exits included.
pub async fn all(conn: &mut PgConnection, tenant: &str) -> Result<Vec<SegmentRow>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM modeling.segments WHERE tenant_id = $1 ORDER BY segment_id"
    ))
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(SegmentRow::try_from).collect()
}

/// Replaces the definition at `revision + 1`; a rule change also moves the rule revision.
pub async fn update(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
    definition: &Definition,
    rule_changed: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE modeling.segments
            SET display_name = $3, description = $4, rule = $5, reevaluation_secs = $6,
                identifier_update_types = $8, revision = revision + 1,
                rule_revision = rule_revision + CASE WHEN $7 THEN 1 ELSE 0 END,
                updated_at = now()
          WHERE tenant_id = $1 AND segment_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(&definition.display_name)
    .bind(&definition.description)
    .bind(encode_rule(&definition.rule)?)
    .bind(definition.reevaluation_secs)
    .bind(rule_changed)
    .bind(&definition.identifier_update_types)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a segment deleted; the membership worker publishes its members' exits, then drops
/// it.
pub async fn mark_deleted(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE modeling.segments SET deleted_at = now(), revision = revision + 1
          WHERE tenant_id = $1 AND segment_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Drops a deleted segment whose exits are published, with its membership intervals.
pub async fn purge(conn: &mut PgConnection, tenant: &str, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM modeling.segment_memberships WHERE tenant_id = $1 AND segment_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM modeling.segments
          WHERE tenant_id = $1 AND segment_id = $2 AND deleted_at IS NOT NULL",
    )
    .bind(tenant)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The segment a request id already created, updated or deleted, with the action.
pub async fn recorded_request(
    conn: &mut PgConnection,
    tenant: &str,
    request_id: &str,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT segment_id, action FROM modeling.segment_requests
          WHERE tenant_id = $1 AND request_id = $2 AND created_at > now() - interval '1 day'",
    )
    .bind(tenant)
    .bind(request_id)
    .fetch_optional(conn)
    .await
}

/// Records that `request_id` did `action` on `segment`.
pub async fn record_request(
    conn: &mut PgConnection,
    tenant: &str,
    request_id: &str,
    segment: &str,
    action: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO modeling.segment_requests (tenant_id, request_id, segment_id, action)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, request_id)
         DO UPDATE SET segment_id = EXCLUDED.segment_id, action = EXCLUDED.action, created_at = now()",
    )
    .bind(tenant)
    .bind(request_id)
    .bind(segment)
    .bind(action)
    .execute(conn)
    .await?;
    Ok(())
}

/// The tenants that have segments.
pub async fn tenants(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT tenant_id FROM modeling.segments")
        .fetch_all(pool)
        .await
}

/// Takes the tenant's publication lock until the transaction ends; `false` when another
/// worker holds it (that worker publishes; this one skips the round).
pub async fn try_lock_tenant(conn: &mut PgConnection, tenant: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended('segments:' || $1, 0))")
        .bind(tenant)
        .fetch_one(conn)
        .await
}
