//! The contract's view of imports and the checks and conversions around
//! it: metadata validation, CSV option merging, page tokens and the stored
//! form of row violations.

use chrono::{DateTime, Utc};
use prost::Message as _;
use touchline_error::FieldViolation;
use touchline_proto::collection::v1::{
    CsvOptions, DataFormat, FileImport, ImportMetadata, ImportState,
};

use crate::domain::{names, source as rules};
use crate::error::CollectionError;
use crate::store::imports::ImportRecord;

pub(super) fn decode_csv(bytes: &[u8]) -> CsvOptions {
    CsvOptions::decode(bytes).unwrap_or_default()
}

pub(super) fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// The contract's view of a stored import.
pub fn file_import(tenant: &str, r: &ImportRecord) -> FileImport {
    let uploading = r.state == ImportState::Uploading as i32;
    FileImport {
        name: names::import(tenant, &r.import_id),
        source: names::source(tenant, &r.source_id),
        format: r.format,
        file_name: r.file_name.clone(),
        size_bytes: r.size_bytes,
        sha256: r.sha256.clone(),
        state: r.state,
        received_bytes: r.received_bytes,
        resume_token: r.resume_token.clone(),
        upload_expire_time: uploading
            .then(|| timestamp(r.update_time + chrono::TimeDelta::hours(24))),
        rows_processed: r.rows_processed,
        rows_accepted: r.rows_accepted,
        rows_duplicate: r.rows_duplicate,
        rows_restated: 0,
        rows_rejected: r.rows_rejected,
        error: r.error.clone(),
        source_revision: r.source_revision,
        csv_options: Some(decode_csv(&r.csv_options)),
        create_time: Some(timestamp(r.create_time)),
        upload_complete_time: r.upload_complete_time.map(timestamp),
        complete_time: r.complete_time.map(timestamp),
        creator: r.creator.clone(),
    }
}

pub(super) fn merge_csv(base: Option<CsvOptions>, over: Option<CsvOptions>) -> CsvOptions {
    let mut out = base.unwrap_or_default();
    if let Some(over) = over {
        if !over.delimiter.is_empty() {
            out.delimiter = over.delimiter;
        }
        if !over.quote.is_empty() {
            out.quote = over.quote;
        }
        if !over.encoding.is_empty() {
            out.encoding = over.encoding;
        }
        if !over.null_values.is_empty() {
            out.null_values = over.null_values;
        }
        out.no_header_row |= over.no_header_row;
        if over.skip_lines > 0 {
            out.skip_lines = over.skip_lines;
        }
    }
    out
}

pub(super) fn check_metadata(m: &ImportMetadata) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    if m.size_bytes <= 0 {
        out.push(FieldViolation::new(
            "metadata.size_bytes",
            "REQUIRED",
            "the file's size in bytes",
        ));
    }
    if m.sha256.len() != 64 || !m.sha256.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        out.push(FieldViolation::new(
            "metadata.sha256",
            "BAD_SHA256",
            "64 lower-case hex digits",
        ));
    }
    if m.file_name.chars().count() > 512 {
        out.push(FieldViolation::new(
            "metadata.file_name",
            "TOO_LONG",
            "at most 512 characters",
        ));
    }
    if !m.import_id.is_empty() && !rules::is_valid_id(&m.import_id) {
        out.push(FieldViolation::new(
            "metadata.import_id",
            "INVALID_ID",
            "1 to 63 lower-case letters, digits and hyphens, starting with a letter",
        ));
    }
    if !matches!(
        DataFormat::try_from(m.format),
        Ok(DataFormat::Csv | DataFormat::JsonLines)
    ) {
        out.push(FieldViolation::new(
            "metadata.format",
            "UNSUPPORTED_FORMAT",
            "CSV or JSON Lines",
        ));
    }
    if let Some(csv) = &m.csv_options {
        rules::check_csv(&mut out, "metadata.csv_options", csv);
    }
    out
}

pub(super) fn bad_token() -> CollectionError {
    CollectionError::invalid("page_token", "BAD_PAGE_TOKEN", "not a token we issued")
}

pub(super) fn token_text(token: &str) -> Result<String, CollectionError> {
    hex::decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad_token)
}

pub(super) fn page_size_of(requested: i32, default: i64, max: i64) -> Result<i64, CollectionError> {
    match requested {
        0 => Ok(default),
        n if n < 0 => Err(CollectionError::invalid(
            "page_size",
            "NEGATIVE",
            "must not be negative",
        )),
        n => Ok(i64::from(n).min(max)),
    }
}

pub(super) fn violations_to_json(violations: &[FieldViolation]) -> serde_json::Value {
    serde_json::Value::Array(
        violations
            .iter()
            .map(|v| {
                serde_json::json!({"field": v.field, "reason": v.reason, "description": v.description})
            })
            .collect(),
    )
}

pub(super) fn violations_from_json(
    value: Option<serde_json::Value>,
) -> Vec<touchline_proto::collection::v1::FieldViolation> {
    let text = |v: &serde_json::Value, k: &str| {
        v.get(k)
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    match value {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| touchline_proto::collection::v1::FieldViolation {
                field: text(v, "field"),
                description: text(v, "description"),
                reason: text(v, "reason"),
            })
            .collect(),
        _ => Vec::new(),
    }
}
