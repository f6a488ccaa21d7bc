//! Publishing what reprocessing in APPLY mode changed about raw events the
//! first cleaning published: a restating record when the clean content
//! changed, or a retraction (and the event quarantined) when it now fails a
//! rule. Each is a new revision of the raw event in the clean log, appended
//! after the head with the outcome ledger rewritten in the same
//! transaction, so received = clean + quarantined + duplicates still holds
//! and a repeated job finds nothing left to change.

use sqlx::PgPool;
use touchline_proto::governance::v1::CleanEvent;

use super::publish::{
    CleanRows, OutcomeRow, Processed, Verdict, outcome, record_outcomes, requarantine,
    reserve_clean,
};

/// One published raw event whose cleaning changed.
#[derive(Debug, Clone)]
pub struct Correction<'a> {
    /// The raw event cleaned again.
    pub processed: &'a Processed,
    /// The message id its clean records carry (a restatement's is the
    /// first record's).
    pub message_id: String,
    /// Its ledger outcome so far: clean or restatement.
    pub outcome: i16,
}

/// Appends one record per correction and rewrites the ledger, in one
/// transaction: a clean verdict restates the event, a quarantined one
/// retracts it.
pub async fn apply(
    pool: &PgPool,
    tenant: &str,
    corrections: &[Correction<'_>],
) -> Result<(), sqlx::Error> {
    if corrections.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let first = reserve_clean(&mut tx, tenant, corrections.len()).await?;
    let mut rows = CleanRows::default();
    let mut ledger = Vec::with_capacity(corrections.len());
    for (sequence, c) in (first..).zip(corrections) {
        let p = c.processed;
        match &p.verdict {
            Verdict::Clean(cleaned) => {
                let mut event = cleaned.event.clone();
                event.message_id.clone_from(&c.message_id);
                event.raw_sequence = p.raw_sequence;
                event.dictionary_version = p.dictionary_version;
                event.restatement = true;
                rows.push(sequence, p, &event, cleaned.event_time, false);
                ledger.push(OutcomeRow {
                    processed: p,
                    code: c.outcome,
                    reason: 0,
                    clean: Some(cleaned),
                });
            }
            Verdict::Quarantined(q) => {
                let event = CleanEvent {
                    message_id: c.message_id.clone(),
                    raw_sequence: p.raw_sequence,
                    dictionary_version: p.dictionary_version,
                    retraction: true,
                    ..CleanEvent::default()
                };
                rows.push(sequence, p, &event, p.received_at, true);
                requarantine(&mut tx, tenant, p, q).await?;
                ledger.push(OutcomeRow {
                    processed: p,
                    code: outcome::QUARANTINED,
                    reason: q.reason() as i32,
                    clean: None,
                });
            }
        }
    }
    rows.insert(&mut tx, tenant, true).await?;
    record_outcomes(&mut tx, tenant, &ledger).await?;
    touchline_db::wake_tailers(&mut tx, crate::CLEAN_LOG_CHANNEL, tenant).await?;
    tx.commit().await
}
