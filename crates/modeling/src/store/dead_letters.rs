//! Dead letters: clean events the event store set aside with a typed reason instead of
//! retrying them forever, written in the same transaction as the cursor that passes them.

use sqlx::{PgConnection, PgPool};

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
    /// A record of a reassigned phone number names no phone number.
    NoPhoneNumber,
    /// A record of a reassigned phone number came after its holder used the number on or
    /// after the date it gives: identity kept the number with them.
    NumberUsedSince,
}

impl DeadLetterReason {
    /// The stored and reported code.
    pub fn code(self) -> &'static str {
        match self {
            DeadLetterReason::IdentifiersRefused => "IDENTIFIERS_REFUSED",
            DeadLetterReason::TooManyIdentifiers => "TOO_MANY_IDENTIFIERS",
            DeadLetterReason::NoEventTime => "NO_EVENT_TIME",
            DeadLetterReason::NoPhoneNumber => "NO_PHONE_NUMBER",
            DeadLetterReason::NumberUsedSince => "NUMBER_USED_SINCE",
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

/// Removes the dead letters of `message_ids` older than the record now applied at the matching
/// entry of `sequences`: a newer record or a retraction of the same message supersedes them, so
/// replaying them could only bring back what the log has since replaced.
pub async fn retire_superseded(
    conn: &mut PgConnection,
    tenant: &str,
    message_ids: &[&str],
    sequences: &[i64],
) -> Result<(), sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM modeling.dead_letters d
          USING UNNEST($2::text[], $3::bigint[]) AS n(m, s)
          WHERE d.tenant_id = $1 AND d.message_id = n.m AND d.sequence < n.s",
    )
    .bind(tenant)
    .bind(message_ids)
    .bind(sequences)
    .execute(conn)
    .await?;
    Ok(())
}

/// One stored dead letter, as listed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredDeadLetter {
    /// Clean-log sequence.
    pub sequence: i64,
    /// Message id.
    pub message_id: String,
    /// Reason code.
    pub reason: String,
    /// For people.
    pub detail: String,
    /// When it was set aside.
    pub set_aside_at: chrono::DateTime<chrono::Utc>,
    /// The clean event as received (encoded `CleanEvent`).
    pub payload: Vec<u8>,
}

/// The tenant's dead letters after `after_sequence`, oldest first, at most `limit`.
pub async fn list(
    pool: &PgPool,
    tenant: &str,
    after_sequence: i64,
    limit: i64,
) -> Result<Vec<StoredDeadLetter>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sequence, message_id, reason, detail, set_aside_at, payload FROM modeling.dead_letters
          WHERE tenant_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(tenant)
    .bind(after_sequence)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The tenant's dead letters with these sequences (all of them, oldest first, up to `limit`
/// when `sequences` is empty).
pub async fn load(
    pool: &PgPool,
    tenant: &str,
    sequences: &[i64],
    limit: i64,
) -> Result<Vec<StoredDeadLetter>, sqlx::Error> {
    if sequences.is_empty() {
        return list(pool, tenant, 0, limit).await;
    }
    sqlx::query_as(
        "SELECT sequence, message_id, reason, detail, set_aside_at, payload FROM modeling.dead_letters
          WHERE tenant_id = $1 AND sequence = ANY($2) ORDER BY sequence",
    )
    .bind(tenant)
    .bind(sequences)
    .fetch_all(pool)
    .await
}

/// Settles a replay in one transaction under the tenant's lock: stores `rows`, gives the letters
/// still set aside their new reason, and deletes the letters in `gone` (stored or dropped).
pub async fn settle_replay(
    pool: &PgPool,
    tenant: &str,
    rows: &[crate::store::NewStoredEvent],
    still: &[DeadLetter],
    gone: &[i64],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    crate::store::changes::lock_tenant(&mut tx, tenant).await?;
    crate::store::apply_rows(&mut tx, tenant, rows).await?;
    for letter in still {
        sqlx::query(
            "UPDATE modeling.dead_letters SET reason = $3, detail = $4
              WHERE tenant_id = $1 AND sequence = $2",
        )
        .bind(tenant)
        .bind(letter.sequence)
        .bind(letter.reason.code())
        .bind(&letter.detail)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DELETE FROM modeling.dead_letters WHERE tenant_id = $1 AND sequence = ANY($2)")
        .bind(tenant)
        .bind(gone)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
