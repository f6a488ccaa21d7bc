//! All SQL of the modeling service.

pub mod activation;
pub mod changes;
pub mod costs;
pub mod dead_letters;
pub mod deliveries;
pub mod identifiers;
pub mod journal;
pub mod model_settings;
pub mod segments;

use chrono::{DateTime, Utc};
use prost::Message as _;
use sqlx::PgPool;
use uuid::Uuid;

/// A clean event with its person, ready to store.
#[derive(Debug, Clone)]
pub struct NewStoredEvent {
    /// Clean log sequence.
    pub sequence: i64,
    /// Client message id.
    pub message_id: String,
    /// The resolved person.
    pub person_id: Option<Uuid>,
    /// Canonical name.
    pub event_name: String,
    /// Channel.
    pub channel: String,
    /// When it happened.
    pub event_time: DateTime<Utc>,
    /// Encoded `CleanEvent`.
    pub payload: Vec<u8>,
    /// The clean log withdrew the event with this message id: it is
    /// deleted rather than stored.
    pub retraction: bool,
}

impl NewStoredEvent {
    /// The withdrawal of `message_id` at clean `sequence`.
    pub fn retraction(sequence: i64, message_id: &str) -> Self {
        Self {
            sequence,
            message_id: message_id.to_owned(),
            person_id: None,
            event_name: String::new(),
            channel: String::new(),
            event_time: DateTime::<Utc>::UNIX_EPOCH,
            payload: Vec::new(),
            retraction: true,
        }
    }
}

/// A stored event read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    /// Clean log sequence.
    pub sequence: i64,
    /// Client message id.
    pub message_id: String,
    /// The person.
    pub person_id: Option<Uuid>,
    /// Canonical name.
    pub event_name: String,
    /// Channel.
    pub channel: String,
    /// When it happened.
    pub event_time: DateTime<Utc>,
    /// Encoded `CleanEvent`.
    pub payload: Vec<u8>,
}

/// Count rows: key, events, persons.
pub type Counts = Vec<(String, i64, i64)>;

/// The person `person` is now: the survivor it was merged into, or itself.
pub async fn survivor_of(pool: &PgPool, tenant: &str, person: Uuid) -> Result<Uuid, sqlx::Error> {
    let survivor: Option<Uuid> = sqlx::query_scalar(
        "SELECT to_person FROM modeling.person_redirects WHERE tenant_id = $1 AND from_person = $2",
    )
    .bind(tenant)
    .bind(person)
    .fetch_optional(pool)
    .await?;
    Ok(survivor.unwrap_or(person))
}

/// The tenants whose event store holds at least one person (read from the counters, not
/// the store).
pub async fn tenants_with_persons(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT tenant_id FROM modeling.event_counters
          WHERE dim = 2 AND key = '' AND persons > 0
          ORDER BY tenant_id",
    )
    .fetch_all(pool)
    .await
}

/// The persons of `tenant` who opted out of marketing.
pub async fn opted_out_persons(
    pool: &PgPool,
    tenant: &str,
) -> Result<std::collections::HashSet<Uuid>, sqlx::Error> {
    let persons: Vec<Uuid> = sqlx::query_scalar(
        "SELECT person_id FROM modeling.person_attributes
          WHERE tenant_id = $1 AND marketing_opt_out",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    Ok(persons.into_iter().collect())
}

/// Which of `persons` opted out of marketing (one indexed read for a page, where
/// [`opted_out_persons`] reads the tenant's whole list).
pub async fn opted_out_among(
    pool: &PgPool,
    tenant: &str,
    persons: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, sqlx::Error> {
    let persons: Vec<Uuid> = sqlx::query_scalar(
        "SELECT person_id FROM modeling.person_attributes
          WHERE tenant_id = $1 AND person_id = ANY($2) AND marketing_opt_out",
    )
    .bind(tenant)
    .bind(persons)
    .fetch_all(pool)
    .await?;
    Ok(persons.into_iter().collect())
}

/// Hands out the tenant's next `count` sequences of a log whose head is kept in
/// `heads_table` (`tenant_id`, `head_sequence`), inside the caller's transaction: the head row
/// stays locked until it ends, so a log's sequences have no gaps and commit in order. Returns
/// the sequences (empty for 0) and the head after them.
pub async fn next_sequences(
    conn: &mut sqlx::PgConnection,
    heads_table: &'static str,
    tenant: &str,
    count: usize,
) -> Result<(Vec<i64>, i64), sqlx::Error> {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let head: i64 = sqlx::query_scalar(&format!(
        "INSERT INTO modeling.{heads_table} (tenant_id, head_sequence) VALUES ($1, $2)
         ON CONFLICT (tenant_id)
         DO UPDATE SET head_sequence = modeling.{heads_table}.head_sequence + $2
         RETURNING head_sequence"
    ))
    .bind(tenant)
    .bind(count)
    .fetch_one(conn)
    .await?;
    Ok(((head - count + 1..=head).collect(), head))
}

/// Modeling's consumer cursors.
const CURSORS: touchline_db::CursorTable = touchline_db::CursorTable::in_schema("modeling");

/// The cursors `consumer` has committed, per tenant.
pub async fn load_cursors(
    pool: &PgPool,
    consumer: &str,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    CURSORS.load(&mut *pool.acquire().await?, consumer).await
}

/// How far `consumer` has applied the tenant's log (0 before anything).
pub async fn cursor(pool: &PgPool, consumer: &str, tenant: &str) -> Result<i64, sqlx::Error> {
    let cursor: Option<i64> = sqlx::query_scalar(
        "SELECT last_sequence FROM modeling.consumer_cursors WHERE consumer = $1 AND tenant_id = $2",
    )
    .bind(consumer)
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    Ok(cursor.unwrap_or(0))
}

/// Moves `consumer`'s cursor for `tenant` inside the caller's transaction.
pub async fn advance_cursor(
    conn: &mut sqlx::PgConnection,
    consumer: &str,
    tenant: &str,
    consumed_through: i64,
) -> Result<(), sqlx::Error> {
    CURSORS
        .advance(conn, consumer, tenant, consumed_through)
        .await
}

/// Stores a batch and the consumed cursor in one transaction; idempotent. A later clean event
/// with a message id stored before is a restatement and replaces the stored one; a retraction
/// deletes it; a redelivered older one changes nothing.
pub async fn commit_batch(
    pool: &PgPool,
    tenant: &str,
    events: &[NewStoredEvent],
    consumer: &str,
    consumed_through: i64,
) -> Result<(), sqlx::Error> {
    commit_batch_setting_aside(pool, tenant, events, &[], consumer, consumed_through).await
}

/// [`commit_batch`], with the batch's events that cannot be stored written as dead letters in
/// the same transaction, so the cursor passes them and they can be listed.
pub async fn commit_batch_setting_aside(
    pool: &PgPool,
    tenant: &str,
    events: &[NewStoredEvent],
    dead: &[dead_letters::DeadLetter],
    consumer: &str,
    consumed_through: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    changes::lock_tenant(&mut tx, tenant).await?;
    apply_rows(&mut tx, tenant, events).await?;
    dead_letters::insert(&mut tx, tenant, dead).await?;
    CURSORS
        .advance(&mut tx, consumer, tenant, consumed_through)
        .await?;
    tx.commit().await
}

/// Stores, restates or retracts `events` inside the caller's transaction (which holds the
/// tenant's lock). A record older than the one stored changes nothing; a newer record or a
/// retraction of a message id also retires its older dead letters, which it supersedes.
pub async fn apply_rows(
    tx: &mut sqlx::PgConnection,
    tenant: &str,
    events: &[NewStoredEvent],
) -> Result<(), sqlx::Error> {
    let latest = latest_per_message(events);
    let (retractions, stored): (Vec<&NewStoredEvent>, Vec<&NewStoredEvent>) =
        latest.into_iter().partition(|e| e.retraction);
    let events = stored.as_slice();
    // An event resolved to a person before some of their identifiers were detached as shared,
    // and made only of those, names nobody.
    let resolved: Vec<Uuid> = events.iter().filter_map(|e| e.person_id).collect();
    let detached = changes::detached_of(&mut *tx, tenant, &resolved).await?;
    let owner = |e: &NewStoredEvent| -> Option<Uuid> {
        let person = e.person_id?;
        let Some(ids) = detached.get(&person) else {
            return Some(person);
        };
        let carried = touchline_proto::governance::v1::CleanEvent::decode(e.payload.as_slice())
            .map(|c| c.identifiers)
            .unwrap_or_default();
        (!crate::split::only_detached(&carried, ids)).then_some(person)
    };
    if !events.is_empty() {
        let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
        let ids: Vec<&str> = events.iter().map(|e| e.message_id.as_str()).collect();
        let persons: Vec<Option<Uuid>> = events.iter().map(|e| owner(e)).collect();
        let names: Vec<&str> = events.iter().map(|e| e.event_name.as_str()).collect();
        let channels: Vec<&str> = events.iter().map(|e| e.channel.as_str()).collect();
        let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.event_time).collect();
        let payloads: Vec<&[u8]> = events.iter().map(|e| e.payload.as_slice()).collect();
        sqlx::query(
            "INSERT INTO modeling.events
               (tenant_id, sequence, message_id, person_id, event_name, channel, event_time, payload)
             SELECT $1, s, m, COALESCE(r.to_person, p), n, c, t, b
               FROM UNNEST($2::bigint[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::timestamptz[], $8::bytea[])
                 AS u(s, m, p, n, c, t, b)
               LEFT JOIN modeling.person_redirects r ON r.tenant_id = $1 AND r.from_person = u.p
              WHERE NOT EXISTS (
                SELECT 1 FROM modeling.erased_persons e
                 WHERE e.tenant_id = $1 AND e.person_id IN (u.p, r.to_person))
             ON CONFLICT (tenant_id, message_id) DO UPDATE
               SET sequence = EXCLUDED.sequence, person_id = EXCLUDED.person_id,
                   event_name = EXCLUDED.event_name, channel = EXCLUDED.channel,
                   event_time = EXCLUDED.event_time, payload = EXCLUDED.payload,
                   stored_at = now()
               WHERE modeling.events.sequence < EXCLUDED.sequence",
        )
        .bind(tenant)
        .bind(&sequences)
        .bind(&ids)
        .bind(&persons)
        .bind(&names)
        .bind(&channels)
        .bind(&times)
        .bind(&payloads)
        .execute(&mut *tx)
        .await?;
    }
    if !retractions.is_empty() {
        let ids: Vec<&str> = retractions.iter().map(|e| e.message_id.as_str()).collect();
        let sequences: Vec<i64> = retractions.iter().map(|e| e.sequence).collect();
        sqlx::query(
            "DELETE FROM modeling.events e
              USING UNNEST($2::text[], $3::bigint[]) AS r(m, s)
              WHERE e.tenant_id = $1 AND e.message_id = r.m AND e.sequence < r.s",
        )
        .bind(tenant)
        .bind(&ids)
        .bind(&sequences)
        .execute(&mut *tx)
        .await?;
    }
    let all: Vec<&NewStoredEvent> = events.iter().chain(&retractions).copied().collect();
    dead_letters::retire_superseded(
        tx,
        tenant,
        &all.iter()
            .map(|e| e.message_id.as_str())
            .collect::<Vec<_>>(),
        &all.iter().map(|e| e.sequence).collect::<Vec<_>>(),
    )
    .await
}

/// Totals and per-channel / per-event counts of events and distinct persons.
pub async fn count_events(
    pool: &PgPool,
    tenant: &str,
) -> Result<(i64, i64, Counts, Counts), sqlx::Error> {
    // The counters are kept by triggers on modeling.events (migration 0008), so this reads a
    // row per channel and per event name, whatever the size of the store.
    let rows: Vec<(i32, String, i64, i64)> = sqlx::query_as(
        "SELECT dim::int, key, events, persons FROM modeling.event_counters
          WHERE tenant_id = $1 AND (events > 0 OR dim = 2)
          ORDER BY dim, events DESC, key",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    let (mut events, mut persons) = (0, 0);
    let (mut channels, mut names) = (Counts::new(), Counts::new());
    for (dim, key, dim_events, dim_persons) in rows {
        match dim {
            0 => channels.push((key, dim_events, dim_persons)),
            1 => names.push((key, dim_events, dim_persons)),
            _ => (events, persons) = (dim_events, dim_persons),
        }
    }
    Ok((events, persons, channels, names))
}

/// Up to `limit` events after sequence `after`, in log order.
pub async fn list_events(
    pool: &PgPool,
    tenant: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sequence, message_id, person_id, event_name, channel, event_time, payload
           FROM modeling.events WHERE tenant_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The batch with only the highest sequence of each message id, in sequence order: one
/// statement may not update a row twice.
fn latest_per_message(events: &[NewStoredEvent]) -> Vec<&NewStoredEvent> {
    let mut newest: std::collections::HashMap<&str, &NewStoredEvent> =
        std::collections::HashMap::with_capacity(events.len());
    for event in events {
        let slot = newest.entry(event.message_id.as_str()).or_insert(event);
        if slot.sequence < event.sequence {
            *slot = event;
        }
    }
    let mut latest: Vec<&NewStoredEvent> = newest.into_values().collect();
    latest.sort_by_key(|e| e.sequence);
    latest
}
