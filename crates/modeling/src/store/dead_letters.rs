//! Dead letters: clean events the event store set aside with a typed reason instead of
//! retrying them forever, written in the same transaction as the cursor that passes them.

use sqlx::{PgConnection, PgPool, Row as _};

/// Why a clean event was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// Identity refused the event's identifiers as invalid (INVALID_ARGUMENT or OUT_OF_RANGE
    /// for this event alone).
    IdentifiersRefused,
    /// The event carries more identifiers than one resolve call may hold.
    TooManyIdentifiers,
    /// The event lacks its event time.
    NoEventTime,
}

impl DeadLetterReason {
    /// The stored and reported code.
    pub fn code(self) -> &'static str {
        match self {
            DeadLetterReason::IdentifiersRefused => "IDENTIFIERS_REFUSED",
            DeadLetterReason::TooManyIdentifiers => "TOO_MANY_IDENTIFIERS",
            DeadLetterReason::NoEventTime => "NO_EVENT_TIME",
        }
    }
}

/// One event set aside.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its clean-log sequence.
    pub sequence: i64,
    /// Its message id.
    pub message_id: String,
    /// Why.
    pub reason: DeadLetterReason,
    /// For people; never personal data.
    pub detail: String,
    /// The clean event as received.
    pub payload: Vec<u8>,
}

/// Writes dead letters; a letter already written (a batch read again) stays as it was.
pub async fn insert(
    conn: &mut PgConnection,
    tenant: &str,
    letters: &[DeadLetter],
) -> Result<(), sqlx::Error> {
    if letters.is_empty() {
        return Ok(());
    }
    let sequences: Vec<i64> = letters.iter().map(|l| l.sequence).collect();
    let ids: Vec<&str> = letters.iter().map(|l| l.message_id.as_str()).collect();
    let reasons: Vec<&str> = letters.iter().map(|l| l.reason.code()).collect();
    let details: Vec<&str> = letters.iter().map(|l| l.detail.as_str()).collect();
    let payloads: Vec<&[u8]> = letters.iter().map(|l| l.payload.as_slice()).collect();
    sqlx::query(
        "INSERT INTO modeling.dead_letters (tenant_id, sequence, message_id, reason, detail, payload)
         SELECT $1, s, m, r, d, p
           FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[]) AS u(s, m, r, d, p)
         ON CONFLICT (tenant_id, sequence) DO NOTHING",
    )
    .bind(tenant)
    .bind(&sequences)
    .bind(&ids)
    .bind(&reasons)
    .bind(&details)
    .bind(&payloads)
    .execute(conn)
    .await?;
    Ok(())
}

/// One stored dead letter, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDeadLetter {
    /// Clean-log sequence.
    pub sequence: i64,
    /// Message id.
    pub message_id: String,
    /// Reason code.
    pub reason: String,
    /// For people.
    pub detail: String,
}

/// The tenant's dead letters after `after_sequence`, oldest first, at most `limit`.
pub async fn list(
    pool: &PgPool,
    tenant: &str,
    after_sequence: i64,
    limit: i64,
) -> Result<Vec<StoredDeadLetter>, sqlx::Error> {
    sqlx::query(
        "SELECT sequence, message_id, reason, detail FROM modeling.dead_letters
          WHERE tenant_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(tenant)
    .bind(after_sequence)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|row| {
        Ok(StoredDeadLetter {
            sequence: row.try_get(0)?,
            message_id: row.try_get(1)?,
            reason: row.try_get(2)?,
            detail: row.try_get(3)?,
        })
    })
    .collect()
}
