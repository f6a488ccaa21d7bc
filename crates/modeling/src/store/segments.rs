//! Segments, their membership intervals and the tenant's change log.
//!
//! The rule is kept as this module's own JSON form, so a rename in the service's types never
//! changes what is stored by accident. Sequences of the change log are handed out from
//! `segment_change_heads` inside the publishing transaction: one row per tenant, so
//! publications of one tenant are serialised and the log has no gaps a reader could mistake
//! for a change it missed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::model_settings::{StoredMatcher, from_stored, to_stored};
use touchline_analytics::lifecycle::LifecycleStage;

use crate::journeys::segments::{Aggregation, ChurnTest, Comparison, EventAggregate, Rule, Window};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "v")]
enum StoredComparison {
    Eq(f64),
    Ne(f64),
    Gt(f64),
    Ge(f64),
    Lt(f64),
    Le(f64),
    Between(f64, f64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
enum StoredRule {
    AllOf {
        rules: Vec<StoredRule>,
    },
    AnyOf {
        rules: Vec<StoredRule>,
    },
    Not {
        rule: Box<StoredRule>,
    },
    Events {
        event: StoredMatcher,
        aggregation: String,
        comparison: StoredComparison,
        #[serde(default)]
        within_last_ms: Option<i64>,
        #[serde(default)]
        range_ms: Option<(i64, i64)>,
    },
    ChurnScore {
        comparison: StoredComparison,
    },
    Churned {
        churned: bool,
    },
    Member {
        segment: String,
    },
    Lifecycle {
        stages: Vec<String>,
    },
    Rfm {
        segments: Vec<u8>,
    },
}

const STAGES: [(LifecycleStage, &str); 5] = [
    (LifecycleStage::New, "new"),
    (LifecycleStage::Active, "active"),
    (LifecycleStage::Returning, "returning"),
    (LifecycleStage::Dormant, "dormant"),
    (LifecycleStage::Churned, "churned"),
];

impl From<Comparison> for StoredComparison {
    fn from(c: Comparison) -> Self {
        match c {
            Comparison::Equals(v) => StoredComparison::Eq(v),
            Comparison::NotEquals(v) => StoredComparison::Ne(v),
            Comparison::Greater(v) => StoredComparison::Gt(v),
            Comparison::AtLeast(v) => StoredComparison::Ge(v),
            Comparison::Less(v) => StoredComparison::Lt(v),
            Comparison::AtMost(v) => StoredComparison::Le(v),
            Comparison::Between(a, b) => StoredComparison::Between(a, b),
        }
    }
}

impl From<StoredComparison> for Comparison {
    fn from(c: StoredComparison) -> Self {
        match c {
            StoredComparison::Eq(v) => Comparison::Equals(v),
            StoredComparison::Ne(v) => Comparison::NotEquals(v),
            StoredComparison::Gt(v) => Comparison::Greater(v),
            StoredComparison::Ge(v) => Comparison::AtLeast(v),
            StoredComparison::Lt(v) => Comparison::Less(v),
            StoredComparison::Le(v) => Comparison::AtMost(v),
            StoredComparison::Between(a, b) => Comparison::Between(a, b),
        }
    }
}

const AGGREGATIONS: [(Aggregation, &str); 6] = [
    (Aggregation::Count, "count"),
    (Aggregation::Sum, "sum"),
    (Aggregation::Average, "average"),
    (Aggregation::Min, "min"),
    (Aggregation::Max, "max"),
    (Aggregation::DistinctDays, "distinct_days"),
];

fn to_json_rule(rule: &Rule) -> StoredRule {
    match rule {
        Rule::AllOf(rules) => StoredRule::AllOf {
            rules: rules.iter().map(to_json_rule).collect(),
        },
        Rule::AnyOf(rules) => StoredRule::AnyOf {
            rules: rules.iter().map(to_json_rule).collect(),
        },
        Rule::Not(rule) => StoredRule::Not {
            rule: Box::new(to_json_rule(rule)),
        },
        Rule::Events(events) => StoredRule::Events {
            event: to_stored(&events.matcher),
            aggregation: AGGREGATIONS
                .iter()
                .find(|(a, _)| *a == events.aggregation)
                .map_or("count", |(_, name)| name)
                .to_owned(),
            comparison: events.comparison.into(),
            within_last_ms: match events.window {
                Window::Last { ms } => Some(ms),
                Window::Range { .. } => None,
            },
            range_ms: match events.window {
                Window::Range { start_ms, end_ms } => Some((start_ms, end_ms)),
                Window::Last { .. } => None,
            },
        },
        Rule::Churn(ChurnTest::Score(comparison)) => StoredRule::ChurnScore {
            comparison: (*comparison).into(),
        },
        Rule::Churn(ChurnTest::Churned(churned)) => StoredRule::Churned { churned: *churned },
        Rule::Member(segment) => StoredRule::Member {
            segment: segment.clone(),
        },
        Rule::Lifecycle(stages) => StoredRule::Lifecycle {
            stages: stages
                .iter()
                .filter_map(|s| STAGES.iter().find(|(stage, _)| stage == s))
                .map(|(_, name)| (*name).to_owned())
                .collect(),
        },
        Rule::Rfm(segments) => StoredRule::Rfm {
            segments: segments.clone(),
        },
    }
}

fn from_json_rule(rule: StoredRule) -> Result<Rule, &'static str> {
    Ok(match rule {
        StoredRule::AllOf { rules } => Rule::AllOf(
            rules
                .into_iter()
                .map(from_json_rule)
                .collect::<Result<_, _>>()?,
        ),
        StoredRule::AnyOf { rules } => Rule::AnyOf(
            rules
                .into_iter()
                .map(from_json_rule)
                .collect::<Result<_, _>>()?,
        ),
        StoredRule::Not { rule } => Rule::Not(Box::new(from_json_rule(*rule)?)),
        StoredRule::Events {
            event,
            aggregation,
            comparison,
            within_last_ms,
            range_ms,
        } => Rule::Events(EventAggregate {
            matcher: from_stored(event),
            aggregation: AGGREGATIONS
                .iter()
                .find(|(_, name)| *name == aggregation)
                .map(|(a, _)| *a)
                .ok_or("an unknown aggregation")?,
            comparison: comparison.into(),
            window: match (within_last_ms, range_ms) {
                (Some(ms), _) => Window::Last { ms },
                (None, Some((start_ms, end_ms))) => Window::Range { start_ms, end_ms },
                (None, None) => return Err("a condition without a window"),
            },
        }),
        StoredRule::ChurnScore { comparison } => Rule::Churn(ChurnTest::Score(comparison.into())),
        StoredRule::Churned { churned } => Rule::Churn(ChurnTest::Churned(churned)),
        StoredRule::Member { segment } => Rule::Member(segment),
        StoredRule::Lifecycle { stages } => Rule::Lifecycle(
            stages
                .iter()
                .map(|name| {
                    STAGES
                        .iter()
                        .find(|(_, n)| n == name)
                        .map(|(stage, _)| *stage)
                        .ok_or("an unknown lifecycle stage")
                })
                .collect::<Result<_, _>>()?,
        ),
        StoredRule::Rfm { segments } => Rule::Rfm(segments),
    })
}

fn encode_rule(rule: &Rule) -> Result<serde_json::Value, sqlx::Error> {
    serde_json::to_value(to_json_rule(rule)).map_err(|err| sqlx::Error::Encode(Box::new(err)))
}

fn decode_rule(json: serde_json::Value) -> Result<Rule, sqlx::Error> {
    let stored: StoredRule =
        serde_json::from_value(json).map_err(|err| sqlx::Error::Decode(Box::new(err)))?;
    from_json_rule(stored).map_err(|why| sqlx::Error::Decode(why.into()))
}

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

const COLUMNS: &str = "segment_id, display_name, description, rule, reevaluation_secs, revision,
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
             reevaluation_secs, revision, rule_revision)
         VALUES ($1, $2, $3, $4, $5, $6, 1, 1)
         ON CONFLICT (tenant_id, segment_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(id)
    .bind(&definition.display_name)
    .bind(&definition.description)
    .bind(encode_rule(&definition.rule)?)
    .bind(definition.reevaluation_secs)
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
                revision = revision + 1,
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

/// An entry or exit to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewChange {
    /// The person.
    pub person: Uuid,
    /// Entered (true) or exited.
    pub entered: bool,
    /// The contract's `SegmentChangeReason` number.
    pub reason: i16,
}

/// The contract's `SEGMENT_CHANGE_KIND_ENTERED`.
pub const KIND_ENTERED: i16 = 1;
/// The contract's `SEGMENT_CHANGE_KIND_EXITED`.
pub const KIND_EXITED: i16 = 2;

/// Publishes `changes` of one segment: each gets the tenant's next sequence and a stable id,
/// and the membership intervals move with them, in the caller's transaction. Returns the last
/// sequence given (the head when `changes` is empty).
pub async fn publish(
    conn: &mut PgConnection,
    tenant: &str,
    segment: &str,
    changes: &[NewChange],
    at: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let (sequences, head) =
        super::next_sequences(&mut *conn, "segment_change_heads", tenant, changes.len()).await?;
    if changes.is_empty() {
        return Ok(head);
    }
    let ids: Vec<Uuid> = changes.iter().map(|_| Uuid::now_v7()).collect();
    let persons: Vec<Uuid> = changes.iter().map(|c| c.person).collect();
    let kinds: Vec<i16> = changes
        .iter()
        .map(|c| if c.entered { KIND_ENTERED } else { KIND_EXITED })
        .collect();
    let reasons: Vec<i16> = changes.iter().map(|c| c.reason).collect();
    sqlx::query(
        "INSERT INTO modeling.segment_changes
             (tenant_id, sequence, change_id, segment_id, person_id, kind, reason, changed_at)
         SELECT $1, s, i, $2, p, k, r, $7
           FROM UNNEST($3::bigint[], $4::uuid[], $5::uuid[], $6::smallint[], $8::smallint[])
                AS t(s, i, p, k, r)",
    )
    .bind(tenant)
    .bind(segment)
    .bind(&sequences)
    .bind(&ids)
    .bind(&persons)
    .bind(&kinds)
    .bind(at)
    .bind(&reasons)
    .execute(&mut *conn)
    .await?;
    let (entered, entered_at): (Vec<Uuid>, Vec<i64>) = changes
        .iter()
        .zip(&sequences)
        .filter(|(c, _)| c.entered)
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
        .filter(|(c, _)| !c.entered)
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
        "SELECT sequence, change_id, segment_id, person_id, kind, reason, changed_at
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
