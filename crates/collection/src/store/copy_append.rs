//! The raw log's fast append: a group commit written with binary COPY.
//!
//! COPY costs PostgreSQL less per row than `INSERT … SELECT FROM UNNEST`,
//! but it cannot skip a row whose message id is stored already: one such row
//! fails the whole COPY. So the group bets that its message ids are new; if
//! the bet fails, the transaction rolls back to a savepoint taken after the
//! head was bumped and inserts the same rows at the same sequences with
//! `ON CONFLICT DO NOTHING`. The head row stays locked throughout, so the
//! group keeps its place among the tenant's commits: an earlier batch is
//! never answered "duplicate" for a message id that a later batch carried.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{Connection as _, PgConnection};

use super::copy::{CopyError, CopyRows};
use super::counts::{self, CountDelta};
use super::{GroupCounts, NewRawEvent, insert_rows, reserve};

/// The raw log's columns in the order [`copy_body`] writes them.
const COPY_RAW_EVENTS: &str = "COPY collection.raw_events
    (tenant_id, sequence, message_id, event_name, source, channel, received_at, payload,
     traceparent, source_revision)
    FROM STDIN (FORMAT binary)";

/// What a COPY append stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyAppend {
    /// Per event, its sequence, or `None` when its message id was stored
    /// before (or earlier in the group).
    pub sequences: Vec<Option<i64>>,
    /// Whether COPY met a stored message id and the rows were inserted
    /// instead.
    pub conflicted: bool,
}

/// Appends `events` to the tenant's raw log by COPY, adds the ingest
/// counters of `hour` and wakes tailers, in one transaction; falls back to
/// a conflict-tolerant insert inside the same transaction when a message id
/// was stored before. `counts` holds, per source (sorted), the rows offered
/// and what was decided before storing.
pub async fn append_group_by_copy(
    conn: &mut PgConnection,
    tenant: &str,
    events: &[NewRawEvent],
    received_at: DateTime<Utc>,
    hour: DateTime<Utc>,
    counts: &[GroupCounts],
) -> Result<CopyAppend, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let first = reserve(&mut tx, tenant, events.len()).await?;
    let body = copy_body(tenant, first, events, received_at)
        .map_err(|err| sqlx::Error::Protocol(err.to_string()))?;
    let mut attempt = tx.begin().await?;
    let mut copy = attempt.copy_in_raw(COPY_RAW_EVENTS).await?;
    copy.send(body).await?;
    let (sequences, conflicted) = match copy.finish().await {
        Ok(_) => {
            attempt.commit().await?;
            let all = (first..).take(events.len()).map(Some).collect();
            (all, false)
        }
        Err(err) if is_unique_violation(&err) => {
            attempt.rollback().await?;
            let stored = insert_rows(&mut tx, tenant, first, events, received_at, None).await?;
            (stored, true)
        }
        Err(err) => return Err(err),
    };
    counts::add_in(&mut tx, tenant, hour, &deltas(events, &sequences, counts)).await?;
    if sequences.iter().any(Option::is_some) {
        touchline_db::wake_tailers(&mut tx, crate::RAW_LOG_CHANNEL, tenant).await?;
    }
    tx.commit().await?;
    Ok(CopyAppend {
        sequences,
        conflicted,
    })
}

/// The counter deltas of a stored group: an offered row not stored is a
/// message-id duplicate.
fn deltas(
    events: &[NewRawEvent],
    sequences: &[Option<i64>],
    counts: &[GroupCounts],
) -> Vec<CountDelta> {
    let mut accepted: HashMap<&str, i64> = HashMap::new();
    for (event, sequence) in events.iter().zip(sequences) {
        if sequence.is_some() {
            *accepted.entry(event.source.as_str()).or_default() += 1;
        }
    }
    counts
        .iter()
        .map(|c| {
            let stored = accepted.get(c.source.as_str()).copied().unwrap_or(0);
            CountDelta {
                source: c.source.clone(),
                accepted: stored,
                duplicates: c.duplicates + c.offered - stored,
                rejected: c.rejected,
            }
        })
        .collect()
}

fn copy_body(
    tenant: &str,
    first: i64,
    events: &[NewRawEvent],
    received_at: DateTime<Utc>,
) -> Result<Vec<u8>, CopyError> {
    // Per row: ten length prefixes, the two bigints and the timestamp, the
    // field count, and the variable values.
    let bytes: usize = events
        .iter()
        .map(|e| {
            70 + tenant.len()
                + e.message_id.len()
                + e.event_name.len()
                + e.source.len()
                + e.channel.len()
                + e.payload.len()
                + e.traceparent.as_ref().map_or(0, String::len)
        })
        .sum();
    let mut rows = CopyRows::with_capacity(bytes);
    for (sequence, event) in (first..).zip(events) {
        rows.tuple(10)?
            .text(tenant)?
            .bigint(sequence)
            .text(&event.message_id)?
            .text(&event.event_name)?
            .text(&event.source)?
            .text(&event.channel)?
            .timestamptz(received_at)
            .bytes(&event.payload)?
            .text_or_null(event.traceparent.as_deref())?
            .bigint(event.source_revision);
    }
    Ok(rows.finish())
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(message_id: &str, source: &str) -> NewRawEvent {
        NewRawEvent {
            message_id: message_id.to_owned(),
            source: source.to_owned(),
            ..NewRawEvent::default()
        }
    }

    #[test]
    fn rows_not_stored_count_as_duplicates_of_their_source() {
        let events = [event("a", "app"), event("b", "app"), event("c", "pos")];
        let counts = [
            GroupCounts {
                source: "app".to_owned(),
                offered: 2,
                duplicates: 1,
                rejected: 3,
            },
            GroupCounts {
                source: "pos".to_owned(),
                offered: 1,
                ..GroupCounts::default()
            },
        ];
        let got = deltas(&events, &[Some(7), None, Some(9)], &counts);
        assert_eq!(
            got,
            vec![
                CountDelta {
                    source: "app".to_owned(),
                    accepted: 1,
                    duplicates: 2,
                    rejected: 3,
                },
                CountDelta {
                    source: "pos".to_owned(),
                    accepted: 1,
                    duplicates: 0,
                    rejected: 0,
                },
            ]
        );
    }
}
