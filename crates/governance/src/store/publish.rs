//! Committing cleaning results: clean records (deduplicated by natural key),
//! quarantined records, the outcome ledger and the consumed cursor, in one
//! transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use prost::Message as _;
use sqlx::{PgConnection, PgPool, Row};

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
    let published = publish(&mut tx, tenant, &clean).await?;
    let mut by_raw: HashMap<i64, Published> = HashMap::new();
    for (p, result) in clean.iter().zip(&published) {
        by_raw.insert(p.raw_sequence, *result);
    }
    for p in batch {
        match &p.verdict {
            Verdict::Clean(c) => {
                let code = match by_raw.get(&p.raw_sequence) {
                    Some(Published::Restated(_)) => outcome::RESTATEMENT,
                    Some(Published::Duplicate) => outcome::DUPLICATE_NATURAL_KEY,
                    _ => outcome::CLEAN,
                };
                record_outcome(&mut tx, tenant, p, code, 0, Some(c)).await?;
            }
            Verdict::Quarantined(q) => {
                insert_quarantine(&mut tx, tenant, p, q).await?;
                record_outcome(
                    &mut tx,
                    tenant,
                    p,
                    outcome::QUARANTINED,
                    q.reason() as i32,
                    None,
                )
                .await?;
            }
        }
    }
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

/// Publishes clean candidates in order: decides duplicates and
/// restatements against the stored natural keys (locked), allocates clean
/// sequences after the head and appends. Candidates whose raw sequence was
/// already published are reported as duplicates of themselves and skipped.
pub async fn publish(
    conn: &mut PgConnection,
    tenant: &str,
    items: &[&Processed],
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
        let rows = sqlx::query(
            "SELECT natural_key, source, content_hash, message_id FROM governance.natural_keys
              WHERE tenant_id = $1 AND natural_key = ANY($2) FOR UPDATE",
        )
        .bind(tenant)
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            known.insert(
                row.try_get(0)?,
                KnownKey {
                    source: row.try_get(1)?,
                    content_hash: row.try_get(2)?,
                    message_id: row.try_get(3)?,
                },
            );
        }
    }
    let mut decisions = Vec::with_capacity(items.len());
    let mut to_append = 0i64;
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
    let head: i64 = sqlx::query_scalar(
        "INSERT INTO governance.clean_heads (tenant_id, last_sequence) VALUES ($1, $2)
         ON CONFLICT (tenant_id) DO UPDATE
           SET last_sequence = governance.clean_heads.last_sequence + EXCLUDED.last_sequence,
               updated_at = now()
         RETURNING last_sequence",
    )
    .bind(tenant)
    .bind(to_append)
    .fetch_one(&mut *conn)
    .await?;
    let mut next = head - to_append;
    for (p, decision) in items.iter().zip(decisions) {
        let Verdict::Clean(c) = &p.verdict else {
            results.push(Published::Duplicate);
            continue;
        };
        if decision == KeyDecision::Duplicate {
            results.push(Published::Duplicate);
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
        let inserted = sqlx::query(
            "INSERT INTO governance.clean_events
               (tenant_id, sequence, raw_sequence, message_id, event_name, channel, event_time, payload, traceparent)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (tenant_id, raw_sequence) DO NOTHING",
        )
        .bind(tenant)
        .bind(next)
        .bind(p.raw_sequence)
        .bind(&event.message_id)
        .bind(&event.event_name)
        .bind(&event.channel)
        .bind(c.event_time)
        .bind(event.encode_to_vec())
        .bind(p.traceparent.as_deref())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 0 {
            results.push(Published::Duplicate);
            continue;
        }
        if let Some(key) = &c.natural_key {
            sqlx::query(
                "INSERT INTO governance.natural_keys
                   (tenant_id, natural_key, source, message_id, content_hash, first_raw_sequence)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant_id, natural_key) DO UPDATE
                   SET content_hash = EXCLUDED.content_hash, updated_at = now()",
            )
            .bind(tenant)
            .bind(key)
            .bind(&p.source)
            .bind(&event.message_id)
            .bind(&c.content_hash)
            .bind(p.raw_sequence)
            .execute(&mut *conn)
            .await?;
        }
        results.push(if restated {
            Published::Restated(next)
        } else {
            Published::New(next)
        });
    }
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(crate::CLEAN_LOG_CHANNEL)
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    Ok(results)
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
    let first = q.first();
    sqlx::query(
        "INSERT INTO governance.quarantine
           (tenant_id, sequence, message_id, reason, field, detail, source, source_event_name,
            received_at, source_revision, raw_event, reason_number, violations, dictionary_version, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT DO NOTHING",
    )
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
