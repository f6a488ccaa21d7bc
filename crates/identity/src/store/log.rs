//! SQL of the identity change log, the decision audit and the review queue.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::IdentifierKey;

/// The NOTIFY channel woken when the identity change log grows.
pub const CHANGES_CHANNEL: &str = "identity_changes";

/// A change to append to the log.
#[derive(Debug, Clone, Default)]
pub struct NewChange {
    /// `merge`, `split`, `detach`, `erasure`, `consent` or `link`.
    pub kind: &'static str,
    /// See the contract's `IdentityChange.person_id`.
    pub person_id: Uuid,
    /// See `IdentityChange.other_person_ids`.
    pub others: Vec<Uuid>,
    /// SPLIT: the identifiers moved; DETACH: the identifiers found shared; LINK: the
    /// identifiers that became the person's.
    pub moved: Vec<IdentifierKey>,
    /// ERASURE: the erasure record.
    pub erasure_id: Option<Uuid>,
    /// CONSENT: the new opt-out.
    pub marketing_opt_out: bool,
}

/// A stored change.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredChange {
    /// Position in the tenant's log.
    pub sequence: i64,
    /// Kind name.
    pub kind: String,
    /// Main person.
    pub person_id: Uuid,
    /// Other persons.
    #[sqlx(rename = "other_person_ids")]
    pub others: Vec<Uuid>,
    /// SPLIT: moved identifiers; DETACH: shared identifiers.
    #[sqlx(json)]
    pub moved: Vec<IdentifierKey>,
    /// ERASURE: the erasure.
    pub erasure_id: Option<Uuid>,
    /// CONSENT: the opt-out.
    pub marketing_opt_out: bool,
    /// Commit time.
    pub change_time: DateTime<Utc>,
    /// Trace context.
    pub traceparent: String,
}

/// Appends `changes` to the tenant's log, returning their sequences, and
/// wakes tailers when the transaction commits.
pub async fn append_changes(
    conn: &mut PgConnection,
    tenant: &str,
    changes: &[NewChange],
    now: DateTime<Utc>,
    traceparent: &str,
) -> Result<Vec<i64>, sqlx::Error> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    // Reserving serialises appends per tenant, so sequences become visible
    // in order.
    let first = CHANGE_HEADS.reserve(conn, tenant, changes.len()).await?;
    let sequences: Vec<i64> = (first..).take(changes.len()).collect();
    let kinds: Vec<&str> = changes.iter().map(|c| c.kind).collect();
    let persons: Vec<Uuid> = changes.iter().map(|c| c.person_id).collect();
    // Arrays of arrays do not unnest into rows of arrays: each row's lists travel as JSON.
    let others: Vec<serde_json::Value> = changes
        .iter()
        .map(|c| serde_json::to_value(&c.others).unwrap_or_default())
        .collect();
    let moved: Vec<serde_json::Value> = changes
        .iter()
        .map(|c| serde_json::to_value(&c.moved).unwrap_or_default())
        .collect();
    let erasures: Vec<Option<Uuid>> = changes.iter().map(|c| c.erasure_id).collect();
    let opt_outs: Vec<bool> = changes.iter().map(|c| c.marketing_opt_out).collect();
    // One statement for the whole batch: a resolve call can announce hundreds of links.
    sqlx::query(
        "INSERT INTO identity.changes
           (tenant_id, sequence, kind, person_id, other_person_ids, moved, erasure_id,
            marketing_opt_out, change_time, traceparent)
         SELECT $1, s, k, p, ARRAY(SELECT jsonb_array_elements_text(o)::uuid), m, e, c, $2, $3
           FROM UNNEST($4::bigint[], $5::text[], $6::uuid[], $7::jsonb[], $8::jsonb[],
                       $9::uuid[], $10::bool[]) AS u(s, k, p, o, m, e, c)",
    )
    .bind(tenant)
    .bind(now)
    .bind(traceparent)
    .bind(&sequences)
    .bind(&kinds)
    .bind(&persons)
    .bind(&others)
    .bind(&moved)
    .bind(&erasures)
    .bind(&opt_outs)
    .execute(&mut *conn)
    .await?;
    touchline_db::wake_tailers(conn, CHANGES_CHANNEL, tenant).await?;
    Ok(sequences)
}

/// The identity change log's heads.
const CHANGE_HEADS: touchline_db::HeadTable =
    touchline_db::HeadTable::named("identity.change_heads");

/// The newest sequence of each tenant (all tenants, or the named ones).
pub async fn heads(
    pool: &PgPool,
    tenants: Option<&[String]>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    CHANGE_HEADS.read(pool, tenants).await
}

/// Up to `limit` changes of `tenant` after `after`, in order.
pub async fn read_after(
    pool: &PgPool,
    tenant: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredChange>, sqlx::Error> {
    sqlx::query_as::<_, StoredChange>(
        "SELECT sequence, kind, person_id, other_person_ids, moved, erasure_id,
                marketing_opt_out, change_time, traceparent
           FROM identity.changes
          WHERE tenant_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One audit record to write.
#[derive(Debug, Clone, Default)]
pub struct NewDecision {
    /// `merge`, `refusal`, `split` or `handover`.
    pub kind: &'static str,
    /// `shared_event`, `explicit_link`, `review_approval`, `explicit_split`,
    /// `resolution_rule`, `carrier_record`.
    pub rule: &'static str,
    /// For refusals.
    pub refusal_reason: &'static str,
    /// Main person.
    pub person_id: Uuid,
    /// Other persons.
    pub others: Vec<Uuid>,
    /// The identifiers, already masked: (type, scope, masked value).
    pub identifiers: Vec<(String, String, String)>,
    /// Evidence event.
    pub evidence_message_id: String,
    /// Source.
    pub source: String,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// A review item opened or resolved.
    pub review_item_id: Option<Uuid>,
    /// The change it produced (0 for none).
    pub change_sequence: i64,
}

/// A stored audit record.
#[derive(Debug, Clone)]
pub struct StoredDecision {
    /// Its id.
    pub decision_id: Uuid,
    /// The record.
    pub decision: NewDecisionOwned,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A read-back audit record (names as stored).
#[derive(Debug, Clone)]
pub struct NewDecisionOwned {
    /// Kind.
    pub kind: String,
    /// Rule.
    pub rule: String,
    /// Refusal reason.
    pub refusal_reason: String,
    /// Main person.
    pub person_id: Uuid,
    /// Other persons.
    pub others: Vec<Uuid>,
    /// Masked identifiers.
    pub identifiers: Vec<(String, String, String)>,
    /// Evidence.
    pub evidence_message_id: String,
    /// Source.
    pub source: String,
    /// Actor.
    pub actor: String,
    /// Reason.
    pub reason: String,
    /// Review item.
    pub review_item_id: Option<Uuid>,
    /// Change.
    pub change_sequence: i64,
}

/// An audit record as stored; unreadable identifiers read as none.
#[derive(sqlx::FromRow)]
struct DecisionRow {
    decision_id: Uuid,
    kind: String,
    rule: String,
    refusal_reason: String,
    person_id: Uuid,
    other_person_ids: Vec<Uuid>,
    identifiers: serde_json::Value,
    evidence_message_id: String,
    source: String,
    actor: String,
    reason: String,
    review_item_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    change_sequence: i64,
}

impl From<DecisionRow> for StoredDecision {
    fn from(row: DecisionRow) -> Self {
        Self {
            decision_id: row.decision_id,
            decision: NewDecisionOwned {
                kind: row.kind,
                rule: row.rule,
                refusal_reason: row.refusal_reason,
                person_id: row.person_id,
                others: row.other_person_ids,
                identifiers: serde_json::from_value(row.identifiers).unwrap_or_default(),
                evidence_message_id: row.evidence_message_id,
                source: row.source,
                actor: row.actor,
                reason: row.reason,
                review_item_id: row.review_item_id,
                change_sequence: row.change_sequence,
            },
            created_at: row.created_at,
        }
    }
}

/// Writes audit records; returns their ids.
pub async fn insert_decisions(
    conn: &mut PgConnection,
    tenant: &str,
    decisions: &[NewDecision],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut ids = Vec::with_capacity(decisions.len());
    for d in decisions {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO identity.decisions
               (tenant_id, decision_id, kind, rule, refusal_reason, person_id, other_person_ids,
                identifiers, evidence_message_id, source, actor, reason, review_item_id,
                created_at, change_sequence)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(tenant)
        .bind(id)
        .bind(d.kind)
        .bind(d.rule)
        .bind(d.refusal_reason)
        .bind(d.person_id)
        .bind(&d.others)
        .bind(serde_json::to_value(&d.identifiers).unwrap_or_default())
        .bind(&d.evidence_message_id)
        .bind(&d.source)
        .bind(&d.actor)
        .bind(&d.reason)
        .bind(d.review_item_id)
        .bind(now)
        .bind(d.change_sequence)
        .execute(&mut *conn)
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

/// A page of audit records, newest first, strictly older than `before`.
pub async fn list_decisions(
    pool: &PgPool,
    tenant: &str,
    person: Option<Uuid>,
    kind: Option<&str>,
    range: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<StoredDecision>, sqlx::Error> {
    let rows = sqlx::query_as::<_, DecisionRow>(
        "SELECT decision_id, kind, rule, refusal_reason, person_id, other_person_ids,
                identifiers, evidence_message_id, source, actor, reason, review_item_id,
                created_at, change_sequence
           FROM identity.decisions
          WHERE tenant_id = $1
            AND ($2::uuid IS NULL OR person_id = $2 OR $2 = ANY(other_person_ids))
            AND ($3::text IS NULL OR kind = $3)
            AND ($4::timestamptz IS NULL OR created_at >= $4)
            AND ($5::timestamptz IS NULL OR created_at < $5)
            AND ($6::uuid IS NULL OR decision_id < $6)
          ORDER BY decision_id DESC LIMIT $7",
    )
    .bind(tenant)
    .bind(person)
    .bind(kind)
    .bind(range.0)
    .bind(range.1)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(StoredDecision::from).collect())
}

/// A review item as stored.
#[derive(Debug, Clone)]
pub struct StoredReviewItem {
    /// Its id.
    pub item_id: Uuid,
    /// `open`, `approved`, `rejected`.
    pub state: String,
    /// Why refused.
    pub refusal_reason: String,
    /// The pair, smaller id first.
    pub persons: (Uuid, Uuid),
    /// Masked identifiers.
    pub identifiers: Vec<(String, String, String)>,
    /// Newest first, up to 20.
    pub evidence_message_ids: Vec<String>,
    /// How many events.
    pub evidence_count: i64,
    /// Opened.
    pub created_at: DateTime<Utc>,
    /// Decided.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Who decided.
    pub resolver: String,
    /// Note.
    pub note: String,
    /// For the etag.
    pub version: i64,
}

/// Opens a review item for a pair, or adds evidence to the existing one
/// (whatever its state: a rejected pair is not reopened). Returns its id.
#[allow(
    clippy::too_many_arguments,
    reason = "one row's columns; a struct would only rename them"
)]
pub async fn upsert_review_item(
    conn: &mut PgConnection,
    tenant: &str,
    pair: (Uuid, Uuid),
    reason: &str,
    identifiers: &[(String, String, String)],
    evidence: &str,
    now: DateTime<Utc>,
) -> Result<Uuid, sqlx::Error> {
    let evidence: Vec<&str> = if evidence.is_empty() {
        Vec::new()
    } else {
        vec![evidence]
    };
    sqlx::query_scalar(
        "INSERT INTO identity.review_items
           (tenant_id, item_id, refusal_reason, person_a, person_b, identifiers,
            evidence_message_ids, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT ON CONSTRAINT review_items_pair DO UPDATE
           SET evidence_count = identity.review_items.evidence_count + 1,
               evidence_message_ids =
                 (EXCLUDED.evidence_message_ids || identity.review_items.evidence_message_ids)[1:20]
         RETURNING item_id",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(reason)
    .bind(pair.0)
    .bind(pair.1)
    .bind(serde_json::to_value(identifiers).unwrap_or_default())
    .bind(&evidence)
    .bind(now)
    .fetch_one(conn)
    .await
}

const REVIEW_COLUMNS: &str = "item_id, state, refusal_reason, person_a, person_b, identifiers,
    evidence_message_ids, evidence_count, created_at, resolved_at, resolver, note, version";

/// A review item's [`REVIEW_COLUMNS`]; unreadable identifiers read as none.
#[derive(sqlx::FromRow)]
struct ReviewRow {
    item_id: Uuid,
    state: String,
    refusal_reason: String,
    person_a: Uuid,
    person_b: Uuid,
    identifiers: serde_json::Value,
    evidence_message_ids: Vec<String>,
    evidence_count: i64,
    created_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    resolver: String,
    note: String,
    version: i64,
}

impl From<ReviewRow> for StoredReviewItem {
    fn from(row: ReviewRow) -> Self {
        Self {
            item_id: row.item_id,
            state: row.state,
            refusal_reason: row.refusal_reason,
            persons: (row.person_a, row.person_b),
            identifiers: serde_json::from_value(row.identifiers).unwrap_or_default(),
            evidence_message_ids: row.evidence_message_ids,
            evidence_count: row.evidence_count,
            created_at: row.created_at,
            resolved_at: row.resolved_at,
            resolver: row.resolver,
            note: row.note,
            version: row.version,
        }
    }
}

/// A page of review items: most evidence first, then by id; `after` is the
/// (evidence_count, item_id) of the last item of the previous page.
pub async fn list_review_items(
    pool: &PgPool,
    tenant: &str,
    state: &str,
    reason: Option<&str>,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<StoredReviewItem>, sqlx::Error> {
    let rows = sqlx::query_as::<_, ReviewRow>(&format!(
        "SELECT {REVIEW_COLUMNS} FROM identity.review_items
          WHERE tenant_id = $1 AND state = $2 AND ($3::text IS NULL OR refusal_reason = $3)
            AND ($4::bigint IS NULL OR (evidence_count, item_id) < ($4, $5))
          ORDER BY evidence_count DESC, item_id DESC LIMIT $6"
    ))
    .bind(tenant)
    .bind(state)
    .bind(reason)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(StoredReviewItem::from).collect())
}

/// One review item, locked for a decision.
pub async fn lock_review_item(
    conn: &mut PgConnection,
    tenant: &str,
    item: Uuid,
) -> Result<Option<StoredReviewItem>, sqlx::Error> {
    let row = sqlx::query_as::<_, ReviewRow>(&format!(
        "SELECT {REVIEW_COLUMNS} FROM identity.review_items
          WHERE tenant_id = $1 AND item_id = $2 FOR UPDATE"
    ))
    .bind(tenant)
    .bind(item)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(StoredReviewItem::from))
}

/// Records a decision on a review item.
pub async fn decide_review_item(
    conn: &mut PgConnection,
    tenant: &str,
    item: Uuid,
    state: &str,
    resolver: &str,
    note: &str,
    now: DateTime<Utc>,
) -> Result<Option<StoredReviewItem>, sqlx::Error> {
    let row = sqlx::query_as::<_, ReviewRow>(&format!(
        "UPDATE identity.review_items
            SET state = $3, resolver = $4, note = $5, resolved_at = $6, version = version + 1
          WHERE tenant_id = $1 AND item_id = $2
         RETURNING {REVIEW_COLUMNS}"
    ))
    .bind(tenant)
    .bind(item)
    .bind(state)
    .bind(resolver)
    .bind(note)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(StoredReviewItem::from))
}
