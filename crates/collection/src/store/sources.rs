//! The source registry: current state per source and immutable revisions,
//! plus the idempotency records of retried writes.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// The current revision and state of a source, as ingest needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct SourceHead {
    /// Current revision.
    pub revision: i64,
    /// `touchline.collection.v1.SourceState` as stored.
    pub state: i32,
}

/// A source's id with its head, as [`heads_in`] reads them.
#[derive(sqlx::FromRow)]
struct HeadRow {
    source_id: String,
    #[sqlx(flatten)]
    head: SourceHead,
}

/// A source's id with its current encoded form, as [`list`] reads them.
#[derive(sqlx::FromRow)]
struct ListedSource {
    source_id: String,
    payload: Vec<u8>,
}

/// Whether the tenant has registered any source at all.
pub async fn any_registered(conn: &mut PgConnection, tenant: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM collection.sources WHERE tenant_id = $1)")
        .bind(tenant)
        .fetch_one(&mut *conn)
        .await
}

/// Current revision and state of each named source that exists.
pub async fn heads_in(
    conn: &mut PgConnection,
    tenant: &str,
    source_ids: &[&str],
) -> Result<Vec<(String, SourceHead)>, sqlx::Error> {
    let rows: Vec<HeadRow> = sqlx::query_as(
        "SELECT source_id, revision, state FROM collection.sources
          WHERE tenant_id = $1 AND source_id = ANY($2)",
    )
    .bind(tenant)
    .bind(source_ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.source_id, row.head))
        .collect())
}

/// The encoded source at `revision`, or at its current revision when
/// `revision` is `None`.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &str,
    source_id: &str,
    revision: Option<i64>,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT r.payload FROM collection.source_revisions r
           JOIN collection.sources s USING (tenant_id, source_id)
          WHERE r.tenant_id = $1 AND r.source_id = $2
            AND r.revision = COALESCE($3, s.revision)",
    )
    .bind(tenant)
    .bind(source_id)
    .bind(revision)
    .fetch_optional(&mut *conn)
    .await
}

/// Locks the source for an update and returns its current encoded form.
pub async fn lock_current(
    conn: &mut PgConnection,
    tenant: &str,
    source_id: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT r.payload FROM collection.sources s
           JOIN collection.source_revisions r
             ON r.tenant_id = s.tenant_id AND r.source_id = s.source_id AND r.revision = s.revision
          WHERE s.tenant_id = $1 AND s.source_id = $2
          FOR UPDATE OF s",
    )
    .bind(tenant)
    .bind(source_id)
    .fetch_optional(&mut *conn)
    .await
}

/// A page of encoded current sources ordered by id, after `after`.
pub async fn list(
    pool: &PgPool,
    tenant: &str,
    after: &str,
    limit: i64,
    kind: Option<i32>,
    show_disabled: bool,
    disabled_state: i32,
) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    let rows: Vec<ListedSource> = sqlx::query_as(
        "SELECT s.source_id, r.payload FROM collection.sources s
           JOIN collection.source_revisions r
             ON r.tenant_id = s.tenant_id AND r.source_id = s.source_id AND r.revision = s.revision
          WHERE s.tenant_id = $1 AND s.source_id > $2
            AND ($3::integer IS NULL OR s.kind = $3)
            AND ($4 OR s.state <> $5)
          ORDER BY s.source_id LIMIT $6",
    )
    .bind(tenant)
    .bind(after)
    .bind(kind)
    .bind(show_disabled)
    .bind(disabled_state)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.source_id, row.payload))
        .collect())
}

/// A revision to write.
#[derive(Debug)]
pub struct RevisionRow<'a> {
    /// Source id.
    pub source_id: &'a str,
    /// The new revision (1 on create).
    pub revision: i64,
    /// `SourceKind`.
    pub kind: i32,
    /// `SourceState`.
    pub state: i32,
    /// The encoded source as of this revision.
    pub payload: &'a [u8],
    /// When it was written.
    pub at: DateTime<Utc>,
}

/// Creates a source at revision 1; false when the id is taken.
pub async fn insert(
    conn: &mut PgConnection,
    tenant: &str,
    row: &RevisionRow<'_>,
) -> Result<bool, sqlx::Error> {
    let created = sqlx::query(
        "INSERT INTO collection.sources (tenant_id, source_id, revision, kind, state, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(row.source_id)
    .bind(row.revision)
    .bind(row.kind)
    .bind(row.state)
    .bind(row.at)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if created {
        insert_revision(conn, tenant, row).await?;
    }
    Ok(created)
}

/// Moves a locked source to a new revision.
pub async fn update(
    conn: &mut PgConnection,
    tenant: &str,
    row: &RevisionRow<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE collection.sources SET revision = $3, state = $4, update_time = $5
          WHERE tenant_id = $1 AND source_id = $2",
    )
    .bind(tenant)
    .bind(row.source_id)
    .bind(row.revision)
    .bind(row.state)
    .bind(row.at)
    .execute(&mut *conn)
    .await?;
    insert_revision(conn, tenant, row).await
}

async fn insert_revision(
    conn: &mut PgConnection,
    tenant: &str,
    row: &RevisionRow<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO collection.source_revisions (tenant_id, source_id, revision, payload, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(row.source_id)
    .bind(row.revision)
    .bind(row.payload)
    .bind(row.at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Idempotency keys of CreateSource and UpdateSource.
pub const REQUESTS: touchline_db::RequestTable =
    touchline_db::RequestTable::named("collection.idempotent_requests");
