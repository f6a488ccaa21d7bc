//! SQL the journey projection reads: a tenant's whole event store in one snapshot (the
//! rebuild), and what changed since a revision (the catch-up). See migration 0009 for why a
//! revision orders a tenant's changes.

use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A stored event with a person, as the projection takes it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JournalEvent {
    /// Clean-log sequence.
    pub sequence: i64,
    /// The person.
    pub person_id: Uuid,
    /// Canonical name.
    pub event_name: String,
    /// Channel.
    pub channel: String,
    /// When it happened.
    pub event_time: DateTime<Utc>,
    /// Encoded `CleanEvent`.
    pub payload: Vec<u8>,
}

/// Where an event was before it was deleted or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Removal {
    /// Clean-log sequence.
    pub sequence: i64,
    /// The person who held it.
    pub person_id: Uuid,
}

/// The positions a read of the store reflects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Positions {
    /// The newest revision of the tenant's events (0 when none).
    pub revision: i64,
    /// The event-store worker's clean-log cursor.
    pub clean_sequence: i64,
    /// The identity-change consumer's cursor.
    pub identity_sequence: i64,
}

/// Streams to `sink`, in chunks of [`LOAD_CHUNK`], the events of `tenant` stored without a
/// person at `revision` or before, named one of `names` (`None`: any name) and in
/// `[start_ms, end_ms)`: the conversions attribution cannot put on any journey. Their
/// `person_id` is the nil id; the caller decides whom each stands for. Stops early when the
/// sink's receiver is gone.
pub async fn unowned(
    pool: &PgPool,
    tenant: &str,
    names: Option<&[String]>,
    (start_ms, end_ms): (i64, i64),
    revision: i64,
    sink: &tokio::sync::mpsc::Sender<Vec<JournalEvent>>,
) -> Result<(), sqlx::Error> {
    let start = DateTime::from_timestamp_millis(start_ms).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let end = DateTime::from_timestamp_millis(end_ms).unwrap_or(DateTime::<Utc>::MAX_UTC);
    let rows = sqlx::query_as::<_, JournalEvent>(
        "SELECT sequence, '00000000-0000-0000-0000-000000000000'::uuid AS person_id,
                event_name, channel, event_time, payload
           FROM modeling.events
          WHERE tenant_id = $1 AND person_id IS NULL AND revision <= $2
            AND event_time >= $3 AND event_time < $4
            AND ($5::text[] IS NULL OR event_name = ANY($5))",
    )
    .bind(tenant)
    .bind(revision)
    .bind(start)
    .bind(end)
    .bind(names)
    .fetch(pool);
    send_in_chunks(rows, sink).await
}

/// Sends `rows` to `sink` in chunks of [`LOAD_CHUNK`]; stops early when the sink's receiver is
/// gone (the reader already failed and reports why).
async fn send_in_chunks(
    mut rows: impl futures::Stream<Item = Result<JournalEvent, sqlx::Error>> + Unpin,
    sink: &tokio::sync::mpsc::Sender<Vec<JournalEvent>>,
) -> Result<(), sqlx::Error> {
    let mut chunk = Vec::with_capacity(LOAD_CHUNK);
    while let Some(row) = rows.try_next().await? {
        chunk.push(row);
        if chunk.len() == LOAD_CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(LOAD_CHUNK));
            if sink.send(full).await.is_err() {
                return Ok(());
            }
        }
    }
    if !chunk.is_empty() {
        // A closed sink means the reader already failed and reports why.
        let _closed = sink.send(chunk).await;
    }
    Ok(())
}

/// What changed since a revision: removals first, then the events as they are now.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Events deleted or moved away.
    pub removals: Vec<Removal>,
    /// Events added or changed.
    pub events: Vec<JournalEvent>,
    /// Where the read stood.
    pub positions: Positions,
}

/// Rows read per round trip of the rebuild.
pub const LOAD_CHUNK: usize = 20_000;

async fn snapshot(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(conn)
        .await?;
    Ok(())
}

async fn positions(
    conn: &mut PgConnection,
    tenant: &str,
    at_least: i64,
) -> Result<Positions, sqlx::Error> {
    sqlx::query_as::<_, Positions>(
        "SELECT GREATEST($2,
                  (SELECT max(revision) FROM modeling.events WHERE tenant_id = $1),
                  (SELECT max(revision) FROM modeling.event_removals WHERE tenant_id = $1))
                  AS revision,
                COALESCE((SELECT last_sequence FROM modeling.consumer_cursors
                           WHERE consumer = $3 AND tenant_id = $1), 0) AS clean_sequence,
                COALESCE((SELECT last_sequence FROM modeling.consumer_cursors
                           WHERE consumer = $4 AND tenant_id = $1), 0) AS identity_sequence",
    )
    .bind(tenant)
    .bind(at_least)
    .bind(crate::CLEAN_LOG_CONSUMER)
    .bind(crate::identity_changes::IDENTITY_CHANGES_CONSUMER)
    .fetch_one(conn)
    .await
}

/// Reads every event of `tenant` that belongs to a person, in one snapshot, sending them to
/// `sink` in chunks of [`LOAD_CHUNK`]; returns the positions of that snapshot. Stops early
/// when the sink's receiver is gone (the builder failed; it reports why).
pub async fn load(
    pool: &PgPool,
    tenant: &str,
    sink: &tokio::sync::mpsc::Sender<Vec<JournalEvent>>,
) -> Result<Positions, sqlx::Error> {
    let mut tx = pool.begin().await?;
    snapshot(&mut tx).await?;
    let positions = positions(&mut tx, tenant, 0).await?;
    let rows = sqlx::query_as::<_, JournalEvent>(
        "SELECT sequence, person_id, event_name, channel, event_time, payload
           FROM modeling.events WHERE tenant_id = $1 AND person_id IS NOT NULL",
    )
    .bind(tenant)
    .fetch(&mut *tx);
    send_in_chunks(rows, sink).await?;
    tx.commit().await?;
    Ok(positions)
}

/// What changed in `tenant`'s events after `revision`, read in one snapshot. At most `limit`
/// rows of each kind are read; `None` when more changed than that (rebuild instead).
pub async fn changes_since(
    pool: &PgPool,
    tenant: &str,
    revision: i64,
    limit: i64,
) -> Result<Option<Changes>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    snapshot(&mut tx).await?;
    let positions = positions(&mut tx, tenant, revision).await?;
    if positions.revision == revision {
        tx.commit().await?;
        return Ok(Some(Changes {
            positions,
            ..Changes::default()
        }));
    }
    let removals: Vec<Removal> = sqlx::query_as(
        "SELECT sequence, person_id FROM modeling.event_removals
          WHERE tenant_id = $1 AND revision > $2 ORDER BY revision LIMIT $3",
    )
    .bind(tenant)
    .bind(revision)
    .bind(limit + 1)
    .fetch_all(&mut *tx)
    .await?;
    let events: Vec<JournalEvent> = sqlx::query_as(
        "SELECT sequence, person_id, event_name, channel, event_time, payload
           FROM modeling.events
          WHERE tenant_id = $1 AND revision > $2 AND person_id IS NOT NULL
          ORDER BY revision LIMIT $3",
    )
    .bind(tenant)
    .bind(revision)
    .bind(limit + 1)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if removals.len() > limit || events.len() > limit {
        return Ok(None);
    }
    Ok(Some(Changes {
        removals,
        events,
        positions,
    }))
}

/// Forgets removals older than `age`; returns how many.
pub async fn prune_removals(pool: &PgPool, age: std::time::Duration) -> Result<u64, sqlx::Error> {
    let seconds = age.as_secs_f64();
    let done = sqlx::query(
        "DELETE FROM modeling.event_removals WHERE removed_at < now() - make_interval(secs => $1)",
    )
    .bind(seconds)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
