//! File imports: an upload is parsed while it streams in, and each set of
//! complete rows is committed to the raw log together with the import's new
//! committed offset in one transaction. An upload broken anywhere resumes
//! from that offset and stores every row exactly once; memory holds at most
//! one chunk plus one unfinished row.

use std::sync::Arc;

use chrono::DateTime;
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use touchline_proto::collection::v1::{
    CsvOptions, DataFormat, FileImport, ImportMetadata, ImportRowResult, ImportState, Source,
    SourceState,
};

use crate::config::CollectionConfig;
use crate::domain::import::{Encoding, Layout, Preamble};
use crate::domain::names;
use crate::error::CollectionError;
use crate::store::imports::{self as store, ImportRecord, RowResult};
use crate::store::sources;

/// Largest file accepted.
pub const MAX_FILE_BYTES: i64 = 10 * 1024 * 1024 * 1024;
/// Largest chunk accepted.
pub const MAX_CHUNK_BYTES: usize = 1024 * 1024;
/// Progress is reported after about this many bytes…
const PROGRESS_BYTES: u64 = 4 * 1024 * 1024;
/// …or this many rows.
const PROGRESS_ROWS: i64 = 10_000;

/// Failures of an import call: the service's errors plus the two codes
/// only the upload protocol has.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A service error.
    #[error(transparent)]
    Service(#[from] CollectionError),
    /// A chunk leaves a gap or goes past the declared size.
    #[error("{0}")]
    OutOfRange(String),
    /// The checksum does not match.
    #[error("{0}")]
    DataLoss(String),
}

impl touchline_error::ApiError for ImportError {
    fn code(&self) -> touchline_error::ErrorCode {
        match self {
            ImportError::Service(err) => err.code(),
            ImportError::OutOfRange(_) => touchline_error::ErrorCode::OutOfRange,
            ImportError::DataLoss(_) => touchline_error::ErrorCode::DataLoss,
        }
    }

    fn field_violations(&self) -> Vec<touchline_error::FieldViolation> {
        match self {
            ImportError::Service(err) => err.field_violations(),
            ImportError::OutOfRange(_) | ImportError::DataLoss(_) => Vec::new(),
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ImportError::Service(err) => err.retry_after(),
            ImportError::OutOfRange(_) | ImportError::DataLoss(_) => None,
        }
    }
}

impl From<sqlx::Error> for ImportError {
    fn from(err: sqlx::Error) -> Self {
        ImportError::Service(err.into())
    }
}

mod session;
mod views;

pub use session::{Session, Step};
pub use views::file_import;
use views::{
    bad_token, check_metadata, decode_csv, merge_csv, page_size_of, token_text,
    violations_from_json,
};

/// Runs file imports.
#[derive(Debug, Clone)]
pub struct Importer {
    pool: PgPool,
    open: Arc<Semaphore>,
}

impl Importer {
    /// An importer over `pool`.
    pub fn new(pool: PgPool, config: Arc<CollectionConfig>) -> Self {
        Self {
            pool,
            open: Arc::new(Semaphore::new(config.max_open_imports.max(1))),
        }
    }

    /// Starts or resumes the upload the metadata describes.
    #[expect(
        clippy::too_many_lines,
        reason = "opening an import is one sequence: validate, decode the preamble, record, start the session"
    )]
    pub async fn open(
        &self,
        tenant: &str,
        creator: &str,
        metadata: ImportMetadata,
    ) -> Result<Session, ImportError> {
        let violations = check_metadata(&metadata);
        if !violations.is_empty() {
            return Err(CollectionError::violations(violations).into());
        }
        if metadata.size_bytes > MAX_FILE_BYTES {
            return Err(CollectionError::BatchTooBig {
                limit: usize::try_from(MAX_FILE_BYTES).unwrap_or(usize::MAX),
                actual: usize::try_from(metadata.size_bytes).unwrap_or(usize::MAX),
            }
            .into());
        }
        let permit = Arc::clone(&self.open).try_acquire_owned().map_err(|_| {
            CollectionError::Limited(crate::limits::LimitError::Busy {
                retry_after: std::time::Duration::from_secs(5),
            })
        })?;
        let source_id = match names::parse(&metadata.source, "sources") {
            Some((t, id)) if t == tenant => id.to_owned(),
            _ => {
                return Err(
                    CollectionError::NotFound(format!("source {:?}", metadata.source)).into(),
                );
            }
        };
        let mut conn = self.pool.acquire().await?;
        let existing = if !metadata.resume_token.is_empty() {
            Some(
                store::by_resume_token(&mut conn, tenant, &metadata.resume_token)
                    .await?
                    .ok_or_else(|| CollectionError::NotFound("resume token".to_owned()))?,
            )
        } else if !metadata.import_id.is_empty() {
            store::get(&mut conn, tenant, &metadata.import_id).await?
        } else {
            None
        };
        let record = match existing {
            Some(record) => {
                if record.source_id != source_id
                    || record.size_bytes != metadata.size_bytes
                    || record.sha256 != metadata.sha256
                    || record.format != metadata.format
                {
                    return Err(CollectionError::FailedPrecondition(
                        "the metadata differs from the import being resumed".to_owned(),
                    )
                    .into());
                }
                if record.state != ImportState::Uploading as i32 {
                    return Err(CollectionError::FailedPrecondition(
                        "the import is no longer uploading".to_owned(),
                    )
                    .into());
                }
                record
            }
            None => {
                let source = sources::get(&mut conn, tenant, &source_id, None)
                    .await?
                    .ok_or_else(|| CollectionError::NotFound(format!("source {source_id:?}")))?;
                let source = Source::decode(source.as_slice())
                    .map_err(|err| CollectionError::from(sqlx::Error::Decode(Box::new(err))))?;
                if source.state == SourceState::Disabled as i32 {
                    return Err(CollectionError::FailedPrecondition(
                        "the source is disabled".to_owned(),
                    )
                    .into());
                }
                if source.format != metadata.format {
                    return Err(CollectionError::invalid(
                        "metadata.format",
                        "FORMAT_MISMATCH",
                        "must equal the source's format",
                    )
                    .into());
                }
                let csv = merge_csv(source.csv_options.clone(), metadata.csv_options.clone());
                encoding_of(metadata.format, &csv)?;
                let import_id = if metadata.import_id.is_empty() {
                    format!("i{}", uuid::Uuid::now_v7().simple())
                } else {
                    metadata.import_id.clone()
                };
                let record = ImportRecord {
                    import_id: import_id.clone(),
                    source_id: source_id.clone(),
                    source_revision: source.revision,
                    format: metadata.format,
                    file_name: metadata.file_name.clone(),
                    size_bytes: metadata.size_bytes,
                    sha256: metadata.sha256.clone(),
                    state: ImportState::Uploading as i32,
                    csv_options: csv.encode_to_vec(),
                    creator: creator.to_owned(),
                    resume_token: format!("r{}", uuid::Uuid::new_v4().simple()),
                    ..ImportRecord::default()
                };
                if !store::insert(&mut conn, tenant, &record).await? {
                    return Err(
                        CollectionError::AlreadyExists(format!("import {import_id:?}")).into(),
                    );
                }
                store::get(&mut conn, tenant, &import_id)
                    .await?
                    .ok_or_else(|| CollectionError::NotFound(format!("import {import_id:?}")))?
            }
        };
        let source = sources::get(
            &mut conn,
            tenant,
            &record.source_id,
            Some(record.source_revision),
        )
        .await?
        .ok_or_else(|| CollectionError::NotFound(format!("source {:?}", record.source_id)))?;
        let source = Source::decode(source.as_slice())
            .map_err(|err| CollectionError::from(sqlx::Error::Decode(Box::new(err))))?;
        let csv = decode_csv(&record.csv_options);
        let encoding = encoding_of(record.format, &csv)?;
        let preamble = if record.received_bytes == 0 {
            Preamble {
                skip_lines: u32::try_from(csv.skip_lines).unwrap_or(0),
                header: None,
            }
        } else {
            Preamble {
                skip_lines: 0,
                header: record.header.clone(),
            }
        };
        Ok(Session {
            pool: self.pool.clone(),
            tenant: tenant.to_owned(),
            layout: Layout {
                format: DataFormat::try_from(record.format).unwrap_or(DataFormat::Csv),
                csv,
                encoding,
            },
            preamble,
            buffer: Vec::new(),
            hasher: Some((Sha256::new(), 0)),
            since_progress: (0, 0),
            record,
            source,
            _permit: permit,
        })
    }

    /// One import.
    pub async fn get(&self, tenant: &str, import_id: &str) -> Result<FileImport, CollectionError> {
        let mut conn = self.pool.acquire().await?;
        let record = store::get(&mut conn, tenant, import_id)
            .await?
            .ok_or_else(|| CollectionError::NotFound(format!("import {import_id:?}")))?;
        Ok(file_import(tenant, &record))
    }

    /// Cancels an uploading or processing import.
    pub async fn cancel(
        &self,
        tenant: &str,
        import_id: &str,
    ) -> Result<FileImport, CollectionError> {
        let mut conn = self.pool.acquire().await?;
        let record = store::get(&mut conn, tenant, import_id)
            .await?
            .ok_or_else(|| CollectionError::NotFound(format!("import {import_id:?}")))?;
        let open = [
            ImportState::Uploading as i32,
            ImportState::Processing as i32,
        ];
        if record.state != ImportState::Cancelled as i32 {
            let cancelled = store::set_state(
                &mut conn,
                tenant,
                import_id,
                store::StateChange {
                    from: &open,
                    to: ImportState::Cancelled as i32,
                    error: "",
                    upload_complete: false,
                    complete: true,
                },
            )
            .await?;
            if !cancelled {
                return Err(CollectionError::FailedPrecondition(
                    "the import has already finished".to_owned(),
                ));
            }
            tracing::info!(tenant, import = import_id, "import cancelled");
        }
        self.get(tenant, import_id).await
    }

    /// Imports newest first; the page token names the last one returned.
    pub async fn list(
        &self,
        tenant: &str,
        source: &str,
        states: &[i32],
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<FileImport>, String), CollectionError> {
        let size = page_size_of(page_size, 50, 500)?;
        let after = if page_token.is_empty() {
            None
        } else {
            let text = token_text(page_token)?;
            let (micros, id) = text.split_once(':').ok_or_else(bad_token)?;
            let micros: i64 = micros.parse().map_err(|_| bad_token())?;
            Some((
                DateTime::from_timestamp_micros(micros).ok_or_else(bad_token)?,
                id.to_owned(),
            ))
        };
        let source_id = if source.is_empty() {
            None
        } else {
            match names::parse(source, "sources") {
                Some((t, id)) if t == tenant => Some(id.to_owned()),
                _ => {
                    return Err(CollectionError::invalid(
                        "source",
                        "BAD_NAME",
                        "tenants/{tenant}/sources/{source}",
                    ));
                }
            }
        };
        let records = store::list(
            &self.pool,
            tenant,
            source_id.as_deref(),
            states,
            after,
            size + 1,
        )
        .await?;
        let more = records.len() as i64 > size;
        let page: Vec<&ImportRecord> = records
            .iter()
            .take(usize::try_from(size).unwrap_or(0))
            .collect();
        let next = match (more, page.last()) {
            (true, Some(last)) => hex::encode(format!(
                "{}:{}",
                last.create_time.timestamp_micros(),
                last.import_id
            )),
            _ => String::new(),
        };
        Ok((
            page.into_iter().map(|r| file_import(tenant, r)).collect(),
            next,
        ))
    }

    /// Row outcomes in row order.
    pub async fn rows(
        &self,
        tenant: &str,
        import_id: &str,
        statuses: &[i32],
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<ImportRowResult>, String), CollectionError> {
        self.get(tenant, import_id).await?;
        let size = page_size_of(page_size, 500, 5_000)?;
        let after: i64 = if page_token.is_empty() {
            0
        } else {
            token_text(page_token)?.parse().map_err(|_| bad_token())?
        };
        let rows = store::rows(&self.pool, tenant, import_id, after, statuses, size + 1).await?;
        let more = rows.len() as i64 > size;
        let page: Vec<RowResult> = rows
            .into_iter()
            .take(usize::try_from(size).unwrap_or(0))
            .collect();
        let next = match (more, page.last()) {
            (true, Some(last)) => hex::encode(last.row.to_string()),
            _ => String::new(),
        };
        let rows = page
            .into_iter()
            .map(|r| ImportRowResult {
                row: r.row,
                byte_offset: r.byte_offset,
                status: r.status,
                message_id: r.message_id,
                sequence: r.sequence,
                violations: violations_from_json(r.violations),
                raw: r.raw.unwrap_or_default(),
            })
            .collect();
        Ok((rows, next))
    }
}

/// The encoding an import reads its file in. Source and metadata
/// validation already refuse names that are not encodings; JSON Lines is
/// always UTF-8, so another encoding for it is refused.
fn encoding_of(format: i32, csv: &CsvOptions) -> Result<Encoding, CollectionError> {
    let field = "metadata.csv_options.encoding";
    let encoding = Encoding::from_name(&csv.encoding).ok_or_else(|| {
        CollectionError::invalid(
            field,
            "UNKNOWN_ENCODING",
            format!("one of {}", Encoding::names()),
        )
    })?;
    if format == DataFormat::JsonLines as i32 && encoding != Encoding::Utf8 {
        return Err(CollectionError::invalid(
            field,
            "UNSUPPORTED_ENCODING",
            "JSON Lines files are read as UTF-8",
        ));
    }
    Ok(encoding)
}
