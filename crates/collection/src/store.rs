//! All SQL of the collection service. The raw log lives here; sources,
//! counters and imports have their own modules.

pub mod copy;
pub mod copy_append;
pub mod counts;
pub mod imports;
pub mod sources;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// An event to append to the raw log.
#[derive(Debug, Clone, Default)]
pub struct NewRawEvent {
    /// Client message id (unique per tenant).
    pub message_id: String,
    /// Event name as sent.
    pub event_name: String,
    /// Source id.
    pub source: String,
    /// Channel.
    pub channel: String,
    /// The encoded `touchline.common.v1.Event`.
    pub payload: Vec<u8>,
    /// Trace context of the call that sent it.
    pub traceparent: Option<String>,
    /// The source revision it is received under (0: unregistered).
    pub source_revision: i64,
    /// The 1-based row of the imported file it came from.
    pub import_row: Option<i64>,
}

/// A record read back from the raw log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredRawEvent {
    /// Position in the tenant's log.
    pub sequence: i64,
    /// The encoded `touchline.common.v1.Event`.
    pub payload: Vec<u8>,
    /// When it was committed.
    pub received_at: DateTime<Utc>,
    /// Trace context of the ingest call.
    pub traceparent: Option<String>,
    /// The source revision it was received under.
    pub source_revision: i64,
    /// The import id, for imported events.
    pub file_import: Option<String>,
    /// The row of the imported file.
    pub import_row: Option<i64>,
}

/// Appends `events` to the tenant's raw log inside the caller's transaction
/// and returns, per event, its sequence or `None` when its message id was
/// stored before (or earlier in `events`).
///
/// The head row lock taken first serialises this tenant's appends until the
/// caller commits, so sequences become visible in order: a tailer reading
/// "after N" can never miss a lower sequence committed later.
pub async fn append_in(
    conn: &mut PgConnection,
    tenant: &str,
    events: &[NewRawEvent],
    received_at: DateTime<Utc>,
    file_import: Option<&str>,
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let first = reserve(conn, tenant, events.len()).await?;
    let stored = insert_rows(conn, tenant, first, events, received_at, file_import).await?;
    if stored.iter().any(Option::is_some) {
        touchline_db::wake_tailers(&mut *conn, crate::RAW_LOG_CHANNEL, tenant).await?;
    }
    Ok(stored)
}

/// The raw log's heads.
const HEADS: touchline_db::HeadTable = touchline_db::HeadTable::named("collection.log_heads");

/// Reserves `count` sequences of the tenant's raw log and returns the first;
/// the head stays locked until the caller's transaction ends.
pub(crate) async fn reserve(
    conn: &mut PgConnection,
    tenant: &str,
    count: usize,
) -> Result<i64, sqlx::Error> {
    HEADS.reserve(conn, tenant, count).await
}

/// Inserts `events` at the sequences from `first` on, skipping message ids
/// stored before (or earlier in `events`); per event, its sequence or
/// `None`. The caller holds the tenant's head lock for those sequences.
pub(crate) async fn insert_rows(
    conn: &mut PgConnection,
    tenant: &str,
    first: i64,
    events: &[NewRawEvent],
    received_at: DateTime<Utc>,
    file_import: Option<&str>,
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    let sequences: Vec<i64> = (first..).take(events.len()).collect();
    let message_ids: Vec<&str> = events.iter().map(|e| e.message_id.as_str()).collect();
    let names: Vec<&str> = events.iter().map(|e| e.event_name.as_str()).collect();
    let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
    let channels: Vec<&str> = events.iter().map(|e| e.channel.as_str()).collect();
    let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
    let traceparents: Vec<Option<&str>> = events.iter().map(|e| e.traceparent.as_deref()).collect();
    let revisions: Vec<i64> = events.iter().map(|e| e.source_revision).collect();
    let rows: Vec<Option<i64>> = events.iter().map(|e| e.import_row).collect();
    let inserted: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO collection.raw_events
           (tenant_id, sequence, message_id, event_name, source, channel, received_at, payload,
            traceparent, source_revision, file_import, import_row)
         SELECT $1, s, m, n, src, ch, $7, p, tp, rev, $12, r
           FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $8::bytea[],
                       $9::text[], $10::bigint[], $11::bigint[])
             AS t(s, m, n, src, ch, p, tp, rev, r)
         ON CONFLICT (tenant_id, message_id) DO NOTHING
         RETURNING sequence",
    )
    .bind(tenant)
    .bind(&sequences)
    .bind(&message_ids)
    .bind(&names)
    .bind(&sources)
    .bind(&channels)
    .bind(received_at)
    .bind(&payloads)
    .bind(&traceparents)
    .bind(&revisions)
    .bind(&rows)
    .bind(file_import)
    .fetch_all(&mut *conn)
    .await?;
    let mut stored = vec![None; events.len()];
    for sequence in inserted {
        if let Some(slot) = usize::try_from(sequence - first)
            .ok()
            .and_then(|i| stored.get_mut(i))
        {
            *slot = Some(sequence);
        }
    }
    Ok(stored)
}

/// The newest sequence of each tenant (all tenants, or the named ones).
pub async fn heads(
    pool: &PgPool,
    tenants: Option<&[String]>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    HEADS.read(pool, tenants).await
}

/// Up to `limit` records of the tenant's log after `after`, in order.
pub async fn read_after(
    pool: &PgPool,
    tenant: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredRawEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sequence, payload, received_at, traceparent, source_revision, file_import,
                import_row
           FROM collection.raw_events
          WHERE tenant_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Per source, what a group commit hands to [`append_group`] besides the
/// rows: how many of its rows are offered for storing, and the duplicates
/// and rejections already decided before storing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupCounts {
    /// Source id as events carried it (sorted, unique within a group).
    pub source: String,
    /// Rows of this source in the offered rows.
    pub offered: i64,
    /// Duplicates decided before storing.
    pub duplicates: i64,
    /// Rejections decided before storing.
    pub rejected: i64,
}

/// What the one statement of [`append_group`] answers. Its `woken` column
/// is selected only so the notifying CTE runs; it is not read.
#[derive(sqlx::FromRow)]
struct GroupAppended {
    /// The head after this group's sequences were reserved.
    last_sequence: i64,
    /// The sequences the group stored (message ids new to the tenant).
    inserted: Vec<i64>,
}

/// Appends `events` to the tenant's raw log, adds the ingest counters of
/// `hour`, and wakes tailers, all in ONE statement committed on its own:
/// the head row's lock is held only while the statement runs and commits,
/// with no client round trip inside it. Returns, per event, its sequence or
/// `None` when its message id was stored before.
///
/// The head is bumped first (the insert reads the new head), so as with
/// [`append_in`] the tenant's appends are serialised and sequences become
/// visible in order. Counter rows are written in `counts` order (sorted by
/// source), after the head lock, so concurrent writers cannot deadlock.
#[expect(
    clippy::too_many_lines,
    reason = "one group append's statements in order inside one transaction: head, rows, counters, wake-up"
)]
pub async fn append_group(
    conn: &mut PgConnection,
    tenant: &str,
    events: &[NewRawEvent],
    received_at: DateTime<Utc>,
    hour: DateTime<Utc>,
    counts: &[GroupCounts],
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let count =
        i64::try_from(events.len()).map_err(|err| sqlx::Error::Protocol(err.to_string()))?;
    let message_ids: Vec<&str> = events.iter().map(|e| e.message_id.as_str()).collect();
    let names: Vec<&str> = events.iter().map(|e| e.event_name.as_str()).collect();
    let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
    let channels: Vec<&str> = events.iter().map(|e| e.channel.as_str()).collect();
    let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
    let traceparents: Vec<Option<&str>> = events.iter().map(|e| e.traceparent.as_deref()).collect();
    let revisions: Vec<i64> = events.iter().map(|e| e.source_revision).collect();
    let count_sources: Vec<&str> = counts.iter().map(|c| c.source.as_str()).collect();
    let offered: Vec<i64> = counts.iter().map(|c| c.offered).collect();
    let duplicates: Vec<i64> = counts.iter().map(|c| c.duplicates).collect();
    let rejected: Vec<i64> = counts.iter().map(|c| c.rejected).collect();
    let appended: GroupAppended = sqlx::query_as(
        "WITH head AS (
           INSERT INTO collection.log_heads (tenant_id, last_sequence) VALUES ($1, $2)
           ON CONFLICT (tenant_id) DO UPDATE
             SET last_sequence = collection.log_heads.last_sequence + EXCLUDED.last_sequence,
                 updated_at = now()
           RETURNING last_sequence
         ), stored AS (
           INSERT INTO collection.raw_events
             (tenant_id, sequence, message_id, event_name, source, channel, received_at, payload,
              traceparent, source_revision)
           SELECT $1, head.last_sequence - $2 + t.o, t.m, t.n, t.src, t.ch, $3, t.p, t.tp, t.rev
             FROM head,
                  UNNEST($4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::text[],
                         $10::bigint[]) WITH ORDINALITY AS t(m, n, src, ch, p, tp, rev, o)
           ON CONFLICT (tenant_id, message_id) DO NOTHING
           RETURNING sequence, source
         ), counted AS (
           INSERT INTO collection.ingest_counts
             (tenant_id, hour, source, accepted, duplicates, rejected)
           SELECT $1, $11, c.s, coalesce(a.n, 0), c.o - coalesce(a.n, 0) + c.d, c.r
             FROM UNNEST($12::text[], $13::bigint[], $14::bigint[], $15::bigint[])
                    WITH ORDINALITY AS c(s, o, d, r, k)
             LEFT JOIN (SELECT source, count(*) AS n FROM stored GROUP BY source) a
               ON a.source = c.s
            ORDER BY c.k
           ON CONFLICT (tenant_id, hour, source) DO UPDATE
             SET accepted = collection.ingest_counts.accepted + EXCLUDED.accepted,
                 duplicates = collection.ingest_counts.duplicates + EXCLUDED.duplicates,
                 rejected = collection.ingest_counts.rejected + EXCLUDED.rejected
         ), woken AS (
           SELECT pg_notify($16, $1) FROM (SELECT 1 FROM stored LIMIT 1) AS any_stored
         )
         SELECT (SELECT last_sequence FROM head) AS last_sequence,
                ARRAY(SELECT sequence FROM stored) AS inserted,
                (SELECT count(*) FROM woken) AS woken",
    )
    .bind(tenant)
    .bind(count)
    .bind(received_at)
    .bind(&message_ids)
    .bind(&names)
    .bind(&sources)
    .bind(&channels)
    .bind(&payloads)
    .bind(&traceparents)
    .bind(&revisions)
    .bind(hour)
    .bind(&count_sources)
    .bind(&offered)
    .bind(&duplicates)
    .bind(&rejected)
    .bind(crate::RAW_LOG_CHANNEL)
    .fetch_one(&mut *conn)
    .await?;
    let first = appended.last_sequence - count + 1;
    let mut stored = vec![None; events.len()];
    for sequence in appended.inserted {
        if let Some(slot) = usize::try_from(sequence - first)
            .ok()
            .and_then(|i| stored.get_mut(i))
        {
            *slot = Some(sequence);
        }
    }
    Ok(stored)
}
