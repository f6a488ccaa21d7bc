//! Committing cleaning results: clean records (deduplicated by natural key),
//! quarantined records, the outcome ledger and the consumed cursor, in one
//! transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use prost::Message as _;
use sqlx::{PgConnection, PgPool};

use crate::domain::clean::{Cleaned, Quarantine};
use crate::domain::natural_key::{KeyDecision, KnownKey, decide};

/// Outcome codes of `governance.raw_outcomes`.
pub mod outcome {
    /// Published as a clean event.
    pub const CLEAN: i16 = 1;
    /// Quarantined.
    pub const QUARANTINED: i16 = 2;
    /// Natural-key duplicate.
    pub const DUPLICATE_NATURAL_KEY: i16 = 3;
    /// Restatement.
    pub const RESTATEMENT: i16 = 4;
    /// Message-id duplicate.
    pub const DUPLICATE_MESSAGE_ID: i16 = 5;
}

/// What cleaning made of one raw event.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Clean.
    Clean(Box<Cleaned>),
    /// Quarantined.
    Quarantined(Quarantine),
}

/// One raw event with its verdict.
#[derive(Debug, Clone)]
pub struct Processed {
    /// Raw position.
    pub raw_sequence: i64,
    /// Client message id.
    pub message_id: String,
    /// Source id.
    pub source: String,
    /// Name as sent.
    pub source_event_name: String,
    /// Receipt time.
    pub received_at: DateTime<Utc>,
    /// Source revision.
    pub source_revision: i64,
    /// Dictionary version used (0 pass-through).
    pub dictionary_version: i64,
    /// The raw event, encoded (kept for quarantined ones).
    pub raw_event: Vec<u8>,
    /// Trace context of the cleaning step.
    pub traceparent: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
}

/// What publishing did with one clean candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Appended at this clean sequence.
    New(i64),
    /// Appended as a restatement at this clean sequence.
    Restated(i64),
    /// A natural-key duplicate: nothing appended.
    Duplicate,
}

/// Commits one upstream batch and the consumed cursor. Re-committing a
/// batch (after a crash before the cursor moved) changes nothing.
pub async fn commit_batch(
    pool: &PgPool,
    tenant: &str,
    batch: &[Processed],
    consumer: &str,
    consumed_through: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Raw events already accounted for (a batch committed before a crash
    // moved nothing else) are left exactly as they were.
    let sequences: Vec<i64> = batch.iter().map(|p| p.raw_sequence).collect();
    let done: std::collections::HashSet<i64> = sqlx::query_scalar(
        "SELECT raw_sequence FROM governance.raw_outcomes WHERE tenant_id = $1 AND raw_sequence = ANY($2)",
    )
    .bind(tenant)
    .bind(&sequences)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let batch: Vec<&Processed> = batch
        .iter()
        .filter(|p| !done.contains(&p.raw_sequence))
        .collect();
    let clean: Vec<&Processed> = batch
        .iter()
        .copied()
        .filter(|p| matches!(p.verdict, Verdict::Clean(_)))
        .collect();
    let published = publish(&mut tx, tenant, &clean, false).await?;
    let mut by_raw: HashMap<i64, Published> = HashMap::new();
    for (p, result) in clean.iter().zip(&published) {
        by_raw.insert(p.raw_sequence, *result);
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    for p in batch {
        match &p.verdict {
            Verdict::Clean(c) => {
                let code = match by_raw.get(&p.raw_sequence) {
                    Some(Published::Restated(_)) => outcome::RESTATEMENT,
                    Some(Published::Duplicate) => outcome::DUPLICATE_NATURAL_KEY,
                    _ => outcome::CLEAN,
                };
                outcomes.push(OutcomeRow {
                    processed: p,
                    code,
                    reason: 0,
                    clean: Some(c),
                });
            }
            Verdict::Quarantined(q) => {
                insert_quarantine(&mut tx, tenant, p, q).await?;
                outcomes.push(OutcomeRow {
                    processed: p,
                    code: outcome::QUARANTINED,
                    reason: q.reason() as i32,
                    clean: None,
                });
            }
        }
    }
    record_outcomes(&mut tx, tenant, &outcomes).await?;
    sqlx::query(
        "INSERT INTO governance.consumer_cursors (consumer, tenant_id, last_sequence) VALUES ($1, $2, $3)
         ON CONFLICT (consumer, tenant_id) DO UPDATE
           SET last_sequence = GREATEST(governance.consumer_cursors.last_sequence, EXCLUDED.last_sequence),
               updated_at = now()",
    )
    .bind(consumer)
    .bind(tenant)
    .bind(consumed_through)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// A stored natural key, as [`publish`] reads it.
#[derive(sqlx::FromRow)]
struct NaturalKeyRow {
    natural_key: String,
    source: String,
    content_hash: Vec<u8>,
    message_id: String,
}

/// Publishes clean candidates in order: decides duplicates and
/// restatements against the stored natural keys (locked), allocates clean
/// sequences after the head and appends. On a first publication
/// (`republish` false), candidates whose raw sequence was already published
/// are reported as duplicates of themselves and skipped; a republication (a
/// release after a retraction) appends the raw event's next revision.
#[expect(
    clippy::too_many_lines,
    reason = "one batch's publication in one transaction: message-id and natural-key duplicates, restatements, clean rows, outcomes, head, wake-up"
)]
pub async fn publish(
    conn: &mut PgConnection,
    tenant: &str,
    items: &[&Processed],
    republish: bool,
) -> Result<Vec<Published>, sqlx::Error> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = items
        .iter()
        .filter_map(|p| match &p.verdict {
            Verdict::Clean(c) => c.natural_key.clone(),
            Verdict::Quarantined(_) => None,
        })
        .collect();
    let mut known: HashMap<String, KnownKey> = HashMap::new();
    if !keys.is_empty() {
        let rows = sqlx::query_as::<_, NaturalKeyRow>(
            "SELECT natural_key, source, content_hash, message_id FROM governance.natural_keys
              WHERE tenant_id = $1 AND natural_key = ANY($2) FOR UPDATE",
        )
        .bind(tenant)
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            known.insert(
                row.natural_key,
                KnownKey {
                    source: row.source,
                    content_hash: row.content_hash,
                    message_id: row.message_id,
                },
            );
        }
    }
    let mut decisions = Vec::with_capacity(items.len());
    let mut to_append = 0usize;
    for p in items {
        let Verdict::Clean(c) = &p.verdict else {
            decisions.push(KeyDecision::Duplicate);
            continue;
        };
        let decision = match &c.natural_key {
            None => KeyDecision::New,
            Some(key) => {
                let d = decide(known.get(key), &p.source, &c.content_hash);
                let message_id = match &d {
                    KeyDecision::Restatement { message_id } => message_id.clone(),
                    _ => p.message_id.clone(),
                };
                if d != KeyDecision::Duplicate {
                    let source = known
                        .get(key)
                        .map_or_else(|| p.source.clone(), |k| k.source.clone());
                    known.insert(
                        key.clone(),
                        KnownKey {
                            source,
                            content_hash: c.content_hash.clone(),
                            message_id,
                        },
                    );
                }
                d
            }
        };
        if decision != KeyDecision::Duplicate {
            to_append += 1;
        }
        decisions.push(decision);
    }
    let mut results = Vec::with_capacity(items.len());
    if to_append == 0 {
        results.resize(items.len(), Published::Duplicate);
        return Ok(results);
    }
    let first = reserve_clean(conn, tenant, to_append).await?;
    // One statement for the clean rows and one for their natural keys: per-row round trips
    // would bound the stage at a few thousand events per second.
    let mut next = first - 1;
    let mut rows = CleanRows::default();
    // Per result slot: the clean sequence it would take and whether it restates.
    let mut planned: Vec<Option<(i64, bool)>> = Vec::with_capacity(items.len());
    for (p, decision) in items.iter().zip(decisions) {
        let Verdict::Clean(c) = &p.verdict else {
            planned.push(None);
            continue;
        };
        if decision == KeyDecision::Duplicate {
            planned.push(None);
            continue;
        }
        next += 1;
        let mut event = c.event.clone();
        event.raw_sequence = p.raw_sequence;
        event.dictionary_version = p.dictionary_version;
        let restated = matches!(decision, KeyDecision::Restatement { .. });
        if let KeyDecision::Restatement { message_id } = &decision {
            event.message_id.clone_from(message_id);
            event.restatement = true;
        }
        rows.push(next, p, &event, c.event_time, false);
        planned.push(Some((next, restated)));
    }
    let inserted = rows.insert(conn, tenant, republish).await?;
    // The natural keys of what was inserted: the first record of a key keeps its source and
    // message id, the latest content hash wins (one row per key per statement).
    let mut keys: Vec<(&str, &str, &str, &[u8], i64)> = Vec::new();
    let mut key_slot: HashMap<&str, usize> = HashMap::new();
    for (p, plan) in items.iter().zip(&planned) {
        let (Verdict::Clean(c), Some(_)) = (&p.verdict, plan) else {
            continue;
        };
        let Some(key) = c.natural_key.as_deref() else {
            continue;
        };
        if !inserted.contains(&p.raw_sequence) {
            continue;
        }
        match key_slot.get(key) {
            Some(&slot) => keys[slot].3 = &c.content_hash,
            None => {
                key_slot.insert(key, keys.len());
                let message_id = rows
                    .message_id_of(p.raw_sequence)
                    .unwrap_or(p.message_id.as_str());
                keys.push((key, &p.source, message_id, &c.content_hash, p.raw_sequence));
            }
        }
    }
    if !keys.is_empty() {
        sqlx::query(
            "INSERT INTO governance.natural_keys
               (tenant_id, natural_key, source, message_id, content_hash, first_raw_sequence)
             SELECT $1, k, s, m, h, r
               FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[])
                 AS u(k, s, m, h, r)
             ON CONFLICT (tenant_id, natural_key) DO UPDATE
               SET content_hash = EXCLUDED.content_hash, updated_at = now()",
        )
        .bind(tenant)
        .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.3).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.4).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    for (p, plan) in items.iter().zip(planned) {
        results.push(match plan {
            Some((sequence, restated)) if inserted.contains(&p.raw_sequence) => {
                if restated {
                    Published::Restated(sequence)
                } else {
                    Published::New(sequence)
                }
            }
            _ => Published::Duplicate,
        });
    }
    touchline_db::wake_tailers(&mut *conn, crate::CLEAN_LOG_CHANNEL, tenant).await?;
    Ok(results)
}

/// Reserves `count` sequences of the tenant's clean log and returns the
/// first; the head stays locked until the caller's transaction ends, which
/// orders the tenant's appends to the clean log.
pub(crate) async fn reserve_clean(
    conn: &mut PgConnection,
    tenant: &str,
    count: usize,
) -> Result<i64, sqlx::Error> {
    super::CLEAN_HEADS.reserve(conn, tenant, count).await
}

/// The columns of clean rows to append, gathered for one UNNEST statement.
#[derive(Default)]
pub(crate) struct CleanRows {
    pub(crate) sequences: Vec<i64>,
    pub(crate) raw_sequences: Vec<i64>,
    pub(crate) retracted: Vec<bool>,
    pub(crate) message_ids: Vec<String>,
    pub(crate) names: Vec<String>,
    pub(crate) channels: Vec<String>,
    pub(crate) times: Vec<DateTime<Utc>>,
    pub(crate) payloads: Vec<Vec<u8>>,
    pub(crate) traceparents: Vec<Option<String>>,
}

impl CleanRows {
    /// Inserts the rows, each as the next revision of its raw event when
    /// `next_revision`, else as revision 0 (a first publication, skipped when
    /// the raw event was published before); the raw sequences inserted.
    pub(crate) async fn insert(
        &self,
        conn: &mut PgConnection,
        tenant: &str,
        next_revision: bool,
    ) -> Result<std::collections::HashSet<i64>, sqlx::Error> {
        let inserted: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO governance.clean_events
               (tenant_id, sequence, raw_sequence, revision, retracted, message_id, event_name,
                channel, event_time, payload, traceparent)
             SELECT $1, s, r,
                    CASE WHEN $11 THEN COALESCE(
                      (SELECT max(e.revision) + 1 FROM governance.clean_events e
                        WHERE e.tenant_id = $1 AND e.raw_sequence = u.r), 0)
                    ELSE 0 END,
                    x, m, n, c, t, b, tp
               FROM UNNEST($2::bigint[], $3::bigint[], $4::boolean[], $5::text[], $6::text[],
                           $7::text[], $8::timestamptz[], $9::bytea[], $10::text[])
                 AS u(s, r, x, m, n, c, t, b, tp)
             ON CONFLICT (tenant_id, raw_sequence, revision) DO NOTHING
             RETURNING raw_sequence",
        )
        .bind(tenant)
        .bind(&self.sequences)
        .bind(&self.raw_sequences)
        .bind(&self.retracted)
        .bind(&self.message_ids)
        .bind(&self.names)
        .bind(&self.channels)
        .bind(&self.times)
        .bind(&self.payloads)
        .bind(&self.traceparents)
        .bind(next_revision)
        .fetch_all(conn)
        .await?;
        Ok(inserted.into_iter().collect())
    }

    /// `event` at clean `sequence`, published for raw event `p`, ordered in
    /// the log at `time`; `retracted` when it withdraws the message id.
    pub(crate) fn push(
        &mut self,
        sequence: i64,
        p: &Processed,
        event: &touchline_proto::governance::v1::CleanEvent,
        time: DateTime<Utc>,
        retracted: bool,
    ) {
        self.sequences.push(sequence);
        self.raw_sequences.push(p.raw_sequence);
        self.retracted.push(retracted);
        self.message_ids.push(event.message_id.clone());
        self.names.push(event.event_name.clone());
        self.channels.push(event.channel.clone());
        self.times.push(time);
        self.payloads.push(event.encode_to_vec());
        self.traceparents.push(p.traceparent.clone());
    }

    /// The message id the clean row of `raw_sequence` was appended under.
    fn message_id_of(&self, raw_sequence: i64) -> Option<&str> {
        self.raw_sequences
            .iter()
            .position(|r| *r == raw_sequence)
            .and_then(|i| self.message_ids.get(i))
            .map(String::as_str)
    }
}

/// One ledger row: raw event, outcome code, quarantine reason, cleaning facts.
pub struct OutcomeRow<'a> {
    /// The raw event.
    pub processed: &'a Processed,
    /// Outcome code (see `outcome`).
    pub code: i16,
    /// Quarantine reason, 0 otherwise.
    pub reason: i32,
    /// The cleaning result, for clean outcomes.
    pub clean: Option<&'a Cleaned>,
}

/// Writes (or, on replay, rewrites) the ledger rows of a batch in one statement.
pub async fn record_outcomes(
    conn: &mut PgConnection,
    tenant: &str,
    rows: &[OutcomeRow<'_>],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: &dyn Fn(&OutcomeRow<'_>) -> bool| rows.iter().map(f).collect::<Vec<bool>>();
    sqlx::query(
        "INSERT INTO governance.raw_outcomes
           (tenant_id, raw_sequence, source, received_at, outcome, reason, late, corrected, identified, blocked_ids, invalid_ids)
         SELECT $1, r, s, t, o, q, l, c, i, b, v
           FROM UNNEST($2::bigint[], $3::text[], $4::timestamptz[], $5::smallint[], $6::integer[],
                       $7::boolean[], $8::boolean[], $9::boolean[], $10::integer[], $11::integer[])
             AS u(r, s, t, o, q, l, c, i, b, v)
         ON CONFLICT (tenant_id, raw_sequence) DO UPDATE
           SET outcome = EXCLUDED.outcome, reason = EXCLUDED.reason, late = EXCLUDED.late,
               corrected = EXCLUDED.corrected, identified = EXCLUDED.identified,
               blocked_ids = EXCLUDED.blocked_ids, invalid_ids = EXCLUDED.invalid_ids",
    )
    .bind(tenant)
    .bind(rows.iter().map(|r| r.processed.raw_sequence).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.processed.source.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.processed.received_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.code).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.reason).collect::<Vec<_>>())
    .bind(col(&|r| r.clean.is_some_and(|c| c.late)))
    .bind(col(&|r| r.clean.is_some_and(|c| c.event.timestamp_corrected)))
    .bind(col(&|r| r.clean.is_some_and(|c| c.identified)))
    .bind(rows.iter().map(|r| r.clean.map_or(0, |c| c.event.blocked_identifiers)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.clean.map_or(0, |c| c.event.invalid_identifiers_dropped)).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes (or, on replay, rewrites) the ledger row of a raw event.
pub async fn record_outcome(
    conn: &mut PgConnection,
    tenant: &str,
    p: &Processed,
    code: i16,
    reason: i32,
    clean: Option<&Cleaned>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO governance.raw_outcomes
           (tenant_id, raw_sequence, source, received_at, outcome, reason, late, corrected, identified, blocked_ids, invalid_ids)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (tenant_id, raw_sequence) DO UPDATE
           SET outcome = EXCLUDED.outcome, reason = EXCLUDED.reason, late = EXCLUDED.late,
               corrected = EXCLUDED.corrected, identified = EXCLUDED.identified,
               blocked_ids = EXCLUDED.blocked_ids, invalid_ids = EXCLUDED.invalid_ids",
    )
    .bind(tenant)
    .bind(p.raw_sequence)
    .bind(&p.source)
    .bind(p.received_at)
    .bind(code)
    .bind(reason)
    .bind(clean.is_some_and(|c| c.late))
    .bind(clean.is_some_and(|c| c.event.timestamp_corrected))
    .bind(clean.is_some_and(|c| c.identified))
    .bind(clean.map_or(0, |c| c.event.blocked_identifiers))
    .bind(clean.map_or(0, |c| c.event.invalid_identifiers_dropped))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_quarantine(
    conn: &mut PgConnection,
    tenant: &str,
    p: &Processed,
    q: &Quarantine,
) -> Result<(), sqlx::Error> {
    write_quarantine(conn, tenant, p, q, "ON CONFLICT DO NOTHING").await
}

/// Quarantines a raw event that was published before (reprocessing found it
/// failing a rule): a row left by an earlier quarantine and release is
/// reopened with the new reason.
pub async fn requarantine(
    conn: &mut PgConnection,
    tenant: &str,
    p: &Processed,
    q: &Quarantine,
) -> Result<(), sqlx::Error> {
    write_quarantine(
        conn,
        tenant,
        p,
        q,
        "ON CONFLICT (tenant_id, sequence) DO UPDATE
           SET state = 1, reason = EXCLUDED.reason, field = EXCLUDED.field,
               detail = EXCLUDED.detail, raw_event = EXCLUDED.raw_event,
               reason_number = EXCLUDED.reason_number, violations = EXCLUDED.violations,
               dictionary_version = EXCLUDED.dictionary_version, quarantined_at = now()",
    )
    .await
}

async fn write_quarantine(
    conn: &mut PgConnection,
    tenant: &str,
    p: &Processed,
    q: &Quarantine,
    on_conflict: &str,
) -> Result<(), sqlx::Error> {
    let first = q.first();
    sqlx::query(&format!(
        "INSERT INTO governance.quarantine
           (tenant_id, sequence, message_id, reason, field, detail, source, source_event_name,
            received_at, source_revision, raw_event, reason_number, violations, dictionary_version, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         {on_conflict}"
    ))
    .bind(tenant)
    .bind(p.raw_sequence)
    .bind(&p.message_id)
    .bind(q.reason().as_str_name())
    .bind(first.map(|v| v.field.as_str()).unwrap_or_default())
    .bind(first.map(|v| v.detail.as_str()).unwrap_or_default())
    .bind(&p.source)
    .bind(&p.source_event_name)
    .bind(p.received_at)
    .bind(p.source_revision)
    .bind(&p.raw_event)
    .bind(q.reason() as i32)
    .bind(violations_json(q))
    .bind(p.dictionary_version)
    .bind(p.traceparent.as_deref())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Violations as stored: `[{reason, field, detail}]`.
pub fn violations_json(q: &Quarantine) -> serde_json::Value {
    serde_json::Value::Array(
        q.violations
            .iter()
            .map(|v| serde_json::json!({"reason": v.reason as i32, "field": v.field, "detail": v.detail}))
            .collect(),
    )
}
