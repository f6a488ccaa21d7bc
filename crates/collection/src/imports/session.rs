//! One upload in progress: chunks are checked against the committed offset,
//! cut into complete rows, and each set of rows is committed with the new
//! offset in one transaction.

use chrono::Utc;
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use tokio::sync::OwnedSemaphorePermit;
use touchline_proto::collection::v1::{
    FileImport, ImportChunk, ImportRowStatus, ImportState, Source,
};

use super::views::{file_import, violations_to_json};
use super::{ImportError, MAX_CHUNK_BYTES, PROGRESS_BYTES, PROGRESS_ROWS};
use crate::committer::hour_of;
use crate::domain::import::{Cut, Layout, MAX_ROW_BYTES, Preamble, Row, cut_rows, row_event};
use crate::error::CollectionError;
use crate::store::counts::{self, CountDelta};
use crate::store::imports::{self as store, ImportRecord, Progress, RowResult};
use crate::store::{self as raw, NewRawEvent};

/// One upload in progress on one call.
#[derive(Debug)]
pub struct Session {
    pub(super) pool: PgPool,
    pub(super) tenant: String,
    pub(super) record: ImportRecord,
    pub(super) source: Source,
    pub(super) layout: Layout,
    pub(super) preamble: Preamble,
    /// Bytes after the committed offset not yet cut into rows.
    pub(super) buffer: Vec<u8>,
    /// Bytes hashed from the start of the file, when every one was seen.
    pub(super) hasher: Option<(Sha256, u64)>,
    pub(super) since_progress: (u64, i64),
    pub(super) _permit: OwnedSemaphorePermit,
}

/// What a chunk led to.
#[derive(Debug)]
pub enum Step {
    /// Nothing worth reporting yet.
    Quiet,
    /// Progress to report.
    Progress(FileImport),
    /// The upload is complete; the import reached a final state.
    Done(FileImport),
}

impl Session {
    /// The import as it stands.
    pub fn file_import(&self) -> FileImport {
        file_import(&self.tenant, &self.record)
    }

    /// Where the next byte belongs.
    fn received(&self) -> u64 {
        u64::try_from(self.record.received_bytes).unwrap_or(0) + self.buffer.len() as u64
    }

    /// Takes one chunk: checks its place, cuts and commits complete rows.
    pub async fn chunk(&mut self, chunk: ImportChunk) -> Result<Step, ImportError> {
        if chunk.data.len() > MAX_CHUNK_BYTES {
            return Err(CollectionError::invalid(
                "chunk.data",
                "CHUNK_TOO_LARGE",
                "at most 1 MiB per chunk",
            )
            .into());
        }
        let offset = u64::try_from(chunk.offset).map_err(|_| {
            ImportError::OutOfRange("a chunk offset must not be negative".to_owned())
        })?;
        let received = self.received();
        let size = u64::try_from(self.record.size_bytes).unwrap_or(0);
        if offset > received {
            return Err(ImportError::OutOfRange(format!(
                "the chunk at {offset} leaves a gap: continue at {received}"
            )));
        }
        let end = offset + chunk.data.len() as u64;
        if end > size {
            return Err(ImportError::OutOfRange(format!(
                "the chunk ends past the declared size {size}"
            )));
        }
        self.hash(offset, &chunk.data);
        if end <= received {
            return Ok(Step::Quiet);
        }
        let fresh = &chunk.data[usize::try_from(received - offset).unwrap_or(0)..];
        self.buffer.extend_from_slice(fresh);
        self.since_progress.0 += fresh.len() as u64;
        let last = self.received() == size;
        self.commit(last).await?;
        if self.buffer.len() > MAX_ROW_BYTES {
            return Err(self.fail("a row is longer than 4 MiB").await);
        }
        if last {
            // The cutter consumes the whole file on its last call; should
            // bytes be left, the import fails rather than report success
            // with rows unread.
            if !self.buffer.is_empty() {
                return Err(self
                    .fail("the end of the file could not be read (a quoted field is never closed, or a character is cut off)")
                    .await);
            }
            return self.finish().await.map(Step::Done);
        }
        if self.since_progress.0 >= PROGRESS_BYTES || self.since_progress.1 >= PROGRESS_ROWS {
            self.since_progress = (0, 0);
            return Ok(Step::Progress(self.file_import()));
        }
        Ok(Step::Quiet)
    }

    /// Hashes the part of a chunk that extends the bytes seen from offset 0;
    /// a chunk beyond them (a resumed upload that did not resend the start)
    /// makes the checksum unverifiable on this call.
    fn hash(&mut self, offset: u64, data: &[u8]) {
        if let Some((hasher, seen)) = &mut self.hasher {
            let end = offset + data.len() as u64;
            if offset > *seen {
                self.hasher = None;
            } else if end > *seen {
                let from = usize::try_from(*seen - offset).unwrap_or(0);
                hasher.update(&data[from..]);
                *seen = end;
            }
        }
    }

    async fn fail(&mut self, why: &str) -> ImportError {
        let mut conn = match self.pool.acquire().await {
            Ok(conn) => conn,
            Err(err) => return err.into(),
        };
        let from = [ImportState::Uploading as i32];
        if let Err(err) = store::set_state(
            &mut conn,
            &self.tenant,
            &self.record.import_id,
            store::StateChange {
                from: &from,
                to: ImportState::Failed as i32,
                error: why,
                upload_complete: false,
                complete: true,
            },
        )
        .await
        {
            return err.into();
        }
        tracing::warn!(tenant = %self.tenant, import = %self.record.import_id, reason = why, "import failed");
        CollectionError::FailedPrecondition(format!("the import failed: {why}")).into()
    }

    async fn finish(&mut self) -> Result<FileImport, ImportError> {
        let verified = match self.hasher.take() {
            Some((hasher, seen)) if seen == u64::try_from(self.record.size_bytes).unwrap_or(0) => {
                Some(hex::encode(hasher.finalize()) == self.record.sha256)
            }
            _ => None,
        };
        if verified == Some(false) {
            let mut conn = self.pool.acquire().await?;
            let from = [ImportState::Uploading as i32];
            store::set_state(
                &mut conn,
                &self.tenant,
                &self.record.import_id,
                store::StateChange {
                    from: &from,
                    to: ImportState::Failed as i32,
                    error: "the SHA-256 checksum does not match",
                    upload_complete: true,
                    complete: true,
                },
            )
            .await?;
            return Err(ImportError::DataLoss(
                "the SHA-256 checksum does not match the file".to_owned(),
            ));
        }
        let mut conn = self.pool.acquire().await?;
        let from = [ImportState::Uploading as i32];
        let done = store::set_state(
            &mut conn,
            &self.tenant,
            &self.record.import_id,
            store::StateChange {
                from: &from,
                to: ImportState::Succeeded as i32,
                error: "",
                upload_complete: true,
                complete: true,
            },
        )
        .await?;
        if !done {
            return Err(
                CollectionError::FailedPrecondition("the import was cancelled".to_owned()).into(),
            );
        }
        let record = store::get(&mut conn, &self.tenant, &self.record.import_id)
            .await?
            .ok_or_else(|| CollectionError::NotFound("import".to_owned()))?;
        self.record = record;
        tracing::info!(tenant = %self.tenant, import = %self.record.import_id, rows = self.record.rows_processed, "import succeeded");
        Ok(self.file_import())
    }

    /// Cuts the complete rows off the buffer and commits them with the new
    /// offset in one transaction.
    #[expect(
        clippy::too_many_lines,
        reason = "one chunk of an import commits rows, rejections, progress and counters in one transaction"
    )]
    async fn commit(&mut self, last: bool) -> Result<(), ImportError> {
        let base = u64::try_from(self.record.received_bytes).unwrap_or(0);
        let had_header = self.preamble.header.is_some();
        let mut preamble = self.preamble.clone();
        let Cut { rows, consumed } =
            cut_rows(&self.layout, &mut preamble, &self.buffer, base, last);
        // The import row records the header but no count of lines still to
        // skip, so nothing is committed until the preamble is read whole: an
        // upload broken inside it resumes from byte 0 and skips them again.
        if consumed == 0 || (!last && !preamble.is_complete(&self.layout)) {
            return Ok(());
        }
        let header = preamble.header.clone().unwrap_or_default();
        let nulls = self.layout.csv.null_values.clone();
        let mut events = Vec::with_capacity(rows.len());
        let mut results = Vec::with_capacity(rows.len());
        let mut event_slots = Vec::with_capacity(rows.len());
        for (i, raw_row) in rows.into_iter().enumerate() {
            let number = self.record.rows_processed + i as i64 + 1;
            let mut result = RowResult {
                row: number,
                byte_offset: i64::try_from(raw_row.offset).unwrap_or(i64::MAX),
                ..RowResult::default()
            };
            let built = match &raw_row.values {
                Err(violation) => Err(vec![violation.clone()]),
                Ok(values) => row_event(
                    &self.record.source_id,
                    &self.source,
                    &self.record.import_id,
                    number,
                    &Row::new(values, &header, &nulls),
                ),
            };
            match built {
                Ok(event) => {
                    result.message_id.clone_from(&event.message_id);
                    event_slots.push(results.len());
                    events.push(NewRawEvent {
                        message_id: event.message_id.clone(),
                        event_name: event.event.clone(),
                        source: self.record.source_id.clone(),
                        channel: event.channel.clone(),
                        payload: event.encode_to_vec(),
                        traceparent: touchline_telemetry::current_traceparent(),
                        source_revision: self.record.source_revision,
                        import_row: Some(number),
                    });
                }
                Err(violations) => {
                    result.status = ImportRowStatus::Rejected as i32;
                    result.violations = Some(violations_to_json(&violations));
                    result.raw = Some(raw_row.raw);
                }
            }
            results.push(result);
        }
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let sequences = raw::append_in(
            &mut tx,
            &self.tenant,
            &events,
            now,
            Some(&self.record.import_id),
        )
        .await?;
        for (slot, sequence) in event_slots.into_iter().zip(sequences) {
            if let Some(result) = results.get_mut(slot) {
                match sequence {
                    Some(sequence) => {
                        result.status = ImportRowStatus::Accepted as i32;
                        result.sequence = sequence;
                    }
                    None => result.status = ImportRowStatus::Duplicate as i32,
                }
            }
        }
        let count = |status: ImportRowStatus| {
            results.iter().filter(|r| r.status == status as i32).count() as i64
        };
        let progress = Progress {
            from_offset: self.record.received_bytes,
            to_offset: self.record.received_bytes + consumed as i64,
            header: (!had_header).then(|| preamble.header.clone()).flatten(),
            processed: results.len() as i64,
            accepted: count(ImportRowStatus::Accepted),
            duplicate: count(ImportRowStatus::Duplicate),
            rejected: count(ImportRowStatus::Rejected),
        };
        store::insert_rows(&mut tx, &self.tenant, &self.record.import_id, &results).await?;
        if !results.is_empty() {
            let delta = CountDelta {
                source: self.record.source_id.clone(),
                accepted: progress.accepted,
                duplicates: progress.duplicate,
                rejected: progress.rejected,
            };
            counts::add_in(&mut tx, &self.tenant, hour_of(now), &[delta]).await?;
        }
        let moved = store::advance(
            &mut tx,
            &self.tenant,
            &self.record.import_id,
            ImportState::Uploading as i32,
            &progress,
        )
        .await?;
        if !moved {
            tx.rollback().await?;
            return Err(CollectionError::FailedPrecondition(
                "the import was cancelled or is being uploaded by another call".to_owned(),
            )
            .into());
        }
        tx.commit().await?;
        touchline_telemetry::metrics::pipeline().import_progress(
            u64::try_from(progress.processed).unwrap_or(0),
            u64::try_from(consumed).unwrap_or(0),
        );
        self.preamble = preamble;
        self.buffer.drain(..consumed);
        self.record.received_bytes = progress.to_offset;
        self.record.rows_processed += progress.processed;
        self.record.rows_accepted += progress.accepted;
        self.record.rows_duplicate += progress.duplicate;
        self.record.rows_rejected += progress.rejected;
        self.record.header = self.preamble.header.clone();
        self.since_progress.1 += progress.processed;
        Ok(())
    }
}
