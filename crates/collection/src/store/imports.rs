//! Imports and their row results.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// An import as stored, each field named as its column.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct ImportRecord {
    /// Import id.
    pub import_id: String,
    /// Source id.
    pub source_id: String,
    /// Source revision the rows are mapped with.
    pub source_revision: i64,
    /// `DataFormat`.
    pub format: i32,
    /// File name.
    pub file_name: String,
    /// Declared size.
    pub size_bytes: i64,
    /// Declared SHA-256.
    pub sha256: String,
    /// `ImportState`.
    pub state: i32,
    /// Offset up to which every row is committed.
    pub received_bytes: i64,
    /// Rows read.
    pub rows_processed: i64,
    /// Rows accepted.
    pub rows_accepted: i64,
    /// Rows that were duplicates.
    pub rows_duplicate: i64,
    /// Rows rejected.
    pub rows_rejected: i64,
    /// Why it failed.
    pub error: String,
    /// Encoded `CsvOptions` in effect.
    pub csv_options: Vec<u8>,
    /// The CSV header once read.
    pub header: Option<Vec<String>>,
    /// Token subject of the creator.
    pub creator: String,
    /// Token to resume the upload.
    pub resume_token: String,
    /// Created.
    pub create_time: DateTime<Utc>,
    /// Last change.
    pub update_time: DateTime<Utc>,
    /// Upload complete.
    pub upload_complete_time: Option<DateTime<Utc>>,
    /// Final state reached.
    pub complete_time: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "import_id, source_id, source_revision, format, file_name, size_bytes, sha256,
    state, received_bytes, rows_processed, rows_accepted, rows_duplicate, rows_rejected, error,
    csv_options, header, creator, resume_token, create_time, update_time, upload_complete_time,
    complete_time";

/// Creates an import; false when the id is taken.
pub async fn insert(
    conn: &mut PgConnection,
    tenant: &str,
    import: &ImportRecord,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO collection.imports (tenant_id, import_id, source_id, source_revision, format,
            file_name, size_bytes, sha256, state, csv_options, creator, resume_token)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(&import.import_id)
    .bind(&import.source_id)
    .bind(import.source_revision)
    .bind(import.format)
    .bind(&import.file_name)
    .bind(import.size_bytes)
    .bind(&import.sha256)
    .bind(import.state)
    .bind(&import.csv_options)
    .bind(&import.creator)
    .bind(&import.resume_token)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One import.
pub async fn get(
    conn: &mut PgConnection,
    tenant: &str,
    import_id: &str,
) -> Result<Option<ImportRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM collection.imports WHERE tenant_id = $1 AND import_id = $2"
    ))
    .bind(tenant)
    .bind(import_id)
    .fetch_optional(&mut *conn)
    .await
}

/// The import a resume token belongs to.
pub async fn by_resume_token(
    conn: &mut PgConnection,
    tenant: &str,
    token: &str,
) -> Result<Option<ImportRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM collection.imports WHERE tenant_id = $1 AND resume_token = $2"
    ))
    .bind(tenant)
    .bind(token)
    .fetch_optional(&mut *conn)
    .await
}

/// Imports newest first, after the `(create_time, import_id)` of the last
/// one of the previous page.
pub async fn list(
    pool: &PgPool,
    tenant: &str,
    source_id: Option<&str>,
    states: &[i32],
    after: Option<(DateTime<Utc>, String)>,
    limit: i64,
) -> Result<Vec<ImportRecord>, sqlx::Error> {
    let (after_time, after_id) = after.unzip();
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM collection.imports
          WHERE tenant_id = $1
            AND ($2::text IS NULL OR source_id = $2)
            AND (cardinality($3::integer[]) = 0 OR state = ANY($3))
            AND ($4::timestamptz IS NULL OR (create_time, import_id) < ($4, $5))
          ORDER BY create_time DESC, import_id DESC LIMIT $6"
    ))
    .bind(tenant)
    .bind(source_id)
    .bind(states)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The outcome of one row, to store.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct RowResult {
    /// 1-based row.
    pub row: i64,
    /// Where it starts in the file.
    pub byte_offset: i64,
    /// `ImportRowStatus`.
    pub status: i32,
    /// Derived message id.
    pub message_id: String,
    /// Raw-log sequence when stored.
    pub sequence: i64,
    /// Violations as JSON, for rejected rows.
    pub violations: Option<serde_json::Value>,
    /// Raw text, for rejected rows.
    pub raw: Option<String>,
}

/// Progress to record with a set of rows.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The committed offset before these rows (guards against a second
    /// uploader of the same import).
    pub from_offset: i64,
    /// The committed offset after them.
    pub to_offset: i64,
    /// The header, once read.
    pub header: Option<Vec<String>>,
    /// Rows read.
    pub processed: i64,
    /// Rows accepted.
    pub accepted: i64,
    /// Rows that were duplicates.
    pub duplicate: i64,
    /// Rows rejected.
    pub rejected: i64,
}

/// Moves the import's committed offset and counters, only if it is still
/// uploading at `from_offset`; false otherwise (cancelled, or another call
/// moved it), in which case the caller must roll back.
pub async fn advance(
    conn: &mut PgConnection,
    tenant: &str,
    import_id: &str,
    uploading: i32,
    progress: &Progress,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE collection.imports
            SET received_bytes = $5, header = COALESCE($6, header),
                rows_processed = rows_processed + $7, rows_accepted = rows_accepted + $8,
                rows_duplicate = rows_duplicate + $9, rows_rejected = rows_rejected + $10,
                update_time = now()
          WHERE tenant_id = $1 AND import_id = $2 AND state = $3 AND received_bytes = $4",
    )
    .bind(tenant)
    .bind(import_id)
    .bind(uploading)
    .bind(progress.from_offset)
    .bind(progress.to_offset)
    .bind(&progress.header)
    .bind(progress.processed)
    .bind(progress.accepted)
    .bind(progress.duplicate)
    .bind(progress.rejected)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores row outcomes.
pub async fn insert_rows(
    conn: &mut PgConnection,
    tenant: &str,
    import_id: &str,
    rows: &[RowResult],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let numbers: Vec<i64> = rows.iter().map(|r| r.row).collect();
    let offsets: Vec<i64> = rows.iter().map(|r| r.byte_offset).collect();
    let statuses: Vec<i32> = rows.iter().map(|r| r.status).collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.message_id.as_str()).collect();
    let sequences: Vec<i64> = rows.iter().map(|r| r.sequence).collect();
    let violations: Vec<Option<serde_json::Value>> =
        rows.iter().map(|r| r.violations.clone()).collect();
    let raws: Vec<Option<&str>> = rows.iter().map(|r| r.raw.as_deref()).collect();
    sqlx::query(
        "INSERT INTO collection.import_rows
            (tenant_id, import_id, row_number, byte_offset, status, message_id, sequence, violations, raw)
         SELECT $1, $2, n, o, s, m, q, v, r
           FROM UNNEST($3::bigint[], $4::bigint[], $5::integer[], $6::text[], $7::bigint[],
                       $8::jsonb[], $9::text[]) AS t(n, o, s, m, q, v, r)",
    )
    .bind(tenant)
    .bind(import_id)
    .bind(&numbers)
    .bind(&offsets)
    .bind(&statuses)
    .bind(&ids)
    .bind(&sequences)
    .bind(&violations)
    .bind(&raws)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A change of an import's state.
#[derive(Debug, Clone, Copy)]
pub struct StateChange<'a> {
    /// Only from these states.
    pub from: &'a [i32],
    /// To this state.
    pub to: i32,
    /// Why, when it failed.
    pub error: &'a str,
    /// The upload is complete now.
    pub upload_complete: bool,
    /// A final state is reached now.
    pub complete: bool,
}

/// Changes the state of an import that is in one of `change.from`; false
/// when it was not.
pub async fn set_state(
    conn: &mut PgConnection,
    tenant: &str,
    import_id: &str,
    change: StateChange<'_>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE collection.imports
            SET state = $4, error = $5, update_time = now(),
                upload_complete_time = CASE WHEN $6 THEN now() ELSE upload_complete_time END,
                complete_time = CASE WHEN $7 THEN now() ELSE complete_time END,
                resume_token = CASE WHEN $6 OR $7 THEN '' ELSE resume_token END
          WHERE tenant_id = $1 AND import_id = $2 AND state = ANY($3)",
    )
    .bind(tenant)
    .bind(import_id)
    .bind(change.from)
    .bind(change.to)
    .bind(change.error)
    .bind(change.upload_complete)
    .bind(change.complete)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Row outcomes after `after_row`, in row order.
pub async fn rows(
    pool: &PgPool,
    tenant: &str,
    import_id: &str,
    after_row: i64,
    statuses: &[i32],
    limit: i64,
) -> Result<Vec<RowResult>, sqlx::Error> {
    sqlx::query_as(
        "SELECT row_number AS row, byte_offset, status, message_id, sequence, violations, raw
           FROM collection.import_rows
          WHERE tenant_id = $1 AND import_id = $2 AND row_number > $3
            AND (cardinality($4::integer[]) = 0 OR status = ANY($4))
          ORDER BY row_number LIMIT $5",
    )
    .bind(tenant)
    .bind(import_id)
    .bind(after_row)
    .bind(statuses)
    .bind(limit)
    .fetch_all(pool)
    .await
}
