//! The dictionary draft and its published versions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::domain::dictionary::{Dictionary, EventDef};

/// A draft event with its bookkeeping.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DraftEvent {
    /// The definition.
    #[sqlx(rename = "definition", json)]
    pub def: EventDef,
    /// Version it was last published in (0: draft only).
    pub version: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A published version's summary.
#[derive(Debug, Clone)]
pub struct VersionRow {
    /// Number.
    pub version: i64,
    /// Description.
    pub description: String,
    /// Publisher.
    pub publisher: String,
    /// When.
    pub published_at: DateTime<Utc>,
    /// The dictionary.
    pub dictionary: Dictionary,
    /// `[(event_name, kind)]`, kind 1 added, 2 changed, 3 deprecated.
    pub changes: Vec<(String, i32)>,
}

/// A published version as stored; unreadable changes read as none.
#[derive(sqlx::FromRow)]
struct StoredVersion {
    version: i64,
    description: String,
    publisher: String,
    published_at: DateTime<Utc>,
    #[sqlx(json)]
    dictionary: Dictionary,
    changes: serde_json::Value,
}

impl From<StoredVersion> for VersionRow {
    fn from(row: StoredVersion) -> Self {
        Self {
            version: row.version,
            description: row.description,
            publisher: row.publisher,
            published_at: row.published_at,
            dictionary: row.dictionary,
            changes: row
                .changes
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| {
                            (
                                c["event_name"].as_str().unwrap_or_default().to_owned(),
                                i32::try_from(c["kind"].as_i64().unwrap_or(0)).unwrap_or(0),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The whole draft, by event name.
pub async fn draft(
    pool: &PgPool,
    tenant: &str,
) -> Result<BTreeMap<String, DraftEvent>, sqlx::Error> {
    let rows = sqlx::query_as::<_, DraftEvent>(
        "SELECT definition, version, created_at, updated_at FROM governance.dictionary_draft
          WHERE tenant_id = $1 ORDER BY event_name",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|event| (event.def.event_name.clone(), event))
        .collect())
}

/// Inserts a new draft event; `false` when the name is taken.
pub async fn insert_event(
    pool: &PgPool,
    tenant: &str,
    def: &EventDef,
) -> Result<bool, sqlx::Error> {
    let value = serde_json::to_value(def).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let done = sqlx::query(
        "INSERT INTO governance.dictionary_draft (tenant_id, event_name, definition)
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(&def.event_name)
    .bind(value)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces one draft event if it was last changed at `expected_updated_at`
/// (optimistic concurrency); `false` when it changed meanwhile or is gone.
pub async fn update_event(
    pool: &PgPool,
    tenant: &str,
    def: &EventDef,
    expected_updated_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let value = serde_json::to_value(def).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let done = sqlx::query(
        "UPDATE governance.dictionary_draft
            SET definition = $3, updated_at = clock_timestamp()
          WHERE tenant_id = $1 AND event_name = $2 AND updated_at = $4",
    )
    .bind(tenant)
    .bind(&def.event_name)
    .bind(value)
    .bind(expected_updated_at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes draft events (insert or replace).
pub async fn upsert_events(
    pool: &PgPool,
    tenant: &str,
    defs: &[EventDef],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for def in defs {
        let value = serde_json::to_value(def).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query(
            "INSERT INTO governance.dictionary_draft (tenant_id, event_name, definition)
             VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, event_name) DO UPDATE
               SET definition = EXCLUDED.definition, updated_at = now()",
        )
        .bind(tenant)
        .bind(&def.event_name)
        .bind(value)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Publishes `dictionary` as the next version if the active one is still
/// `expected_active` (serialised by a lock on the tenant's versions);
/// returns the new version, or `None` when someone published first.
pub async fn publish(
    pool: &PgPool,
    tenant: &str,
    expected_active: i64,
    dictionary: &Dictionary,
    description: &str,
    publisher: &str,
    changes: &[(String, i32)],
) -> Result<Option<i64>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('governance.dictionary:' || $1))")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    let active: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) FROM governance.dictionary_versions WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&mut *tx)
    .await?;
    if active != expected_active {
        return Ok(None);
    }
    let version = active + 1;
    let mut frozen = dictionary.clone();
    frozen.version = version;
    let value = serde_json::to_value(&frozen).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let changes_json = serde_json::Value::Array(
        changes
            .iter()
            .map(|(n, k)| serde_json::json!({"event_name": n, "kind": k}))
            .collect(),
    );
    sqlx::query(
        "INSERT INTO governance.dictionary_versions
           (tenant_id, version, description, publisher, dictionary, changes)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(version)
    .bind(description)
    .bind(publisher)
    .bind(value)
    .bind(changes_json)
    .execute(&mut *tx)
    .await?;
    let names: Vec<&str> = changes.iter().map(|(n, _)| n.as_str()).collect();
    sqlx::query(
        "UPDATE governance.dictionary_draft SET version = $3 WHERE tenant_id = $1 AND event_name = ANY($2)",
    )
    .bind(tenant)
    .bind(&names)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(version))
}

/// Published versions, newest first.
pub async fn versions(
    pool: &PgPool,
    tenant: &str,
    limit: i64,
    before: i64,
) -> Result<Vec<VersionRow>, sqlx::Error> {
    let rows = sqlx::query_as::<_, StoredVersion>(
        "SELECT version, description, publisher, published_at, dictionary, changes
           FROM governance.dictionary_versions
          WHERE tenant_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(VersionRow::from).collect())
}
