//! What makes a source definition valid, and how an update mask applies,
//! decided without gRPC or SQL.

use chrono::format::{Item, StrftimeItems};
use touchline_error::FieldViolation;
use touchline_proto::collection::v1::{
    CsvOptions, DataFormat, FieldTransform, Source, SourceKind, SourceState, UnmappedFieldPolicy,
};
use touchline_proto::common::v1::{EventType, ValueType};

use crate::domain::import::Encoding;

/// Timestamp format keywords besides strftime patterns.
pub const TIMESTAMP_KEYWORDS: [&str; 4] =
    ["rfc3339", "epoch_seconds", "epoch_millis", "epoch_micros"];
/// Canonical fields a mapping may target besides `properties.` / `traits.` / `context.` paths.
pub const TARGET_FIELDS: [&str; 6] = [
    "event",
    "original_timestamp",
    "sent_at",
    "user_id",
    "anonymous_id",
    "channel",
];

/// Whether `id` is a valid source (or import) id: 1–63 lower-case letters,
/// digits and hyphens, starting with a letter.
pub fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('a'..='z'))
        && id.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_snake(value: &str, max: usize) -> bool {
    let mut chars = value.chars();
    matches!(chars.next(), Some('a'..='z'))
        && value.len() <= max
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `format` is a keyword or a strftime pattern chrono understands.
pub fn is_valid_timestamp_format(format: &str) -> bool {
    if TIMESTAMP_KEYWORDS.contains(&format) {
        return true;
    }
    !format.trim().is_empty() && StrftimeItems::new(format).all(|item| item != Item::Error)
}

/// Fills defaults (time zone `UTC`, state ACTIVE, default formats) and
/// checks every field; reports every problem, not only the first.
#[expect(
    clippy::too_many_lines,
    reason = "a flat list of per-field checks that reports every problem of a source, not only the first"
)]
pub fn normalise(mut source: Source) -> Result<Source, Vec<FieldViolation>> {
    let mut out = Vec::new();
    if source.time_zone.trim().is_empty() {
        source.time_zone = "UTC".to_owned();
    }
    if source.state == SourceState::Unspecified as i32 {
        source.state = SourceState::Active as i32;
    }
    if source.unmapped_fields == UnmappedFieldPolicy::Unspecified as i32 {
        source.unmapped_fields = UnmappedFieldPolicy::KeepAsProperties as i32;
    }
    if source.default_event_type == EventType::Unspecified as i32 {
        source.default_event_type = EventType::Track as i32;
    }
    check_len(&mut out, "display_name", &source.display_name, 200);
    check_len(&mut out, "description", &source.description, 2_000);
    match SourceKind::try_from(source.kind) {
        Ok(SourceKind::Unspecified) | Err(_) => {
            out.push(FieldViolation::new(
                "kind",
                "REQUIRED",
                "a known kind is required",
            ));
        }
        Ok(_) => {}
    }
    let format = DataFormat::try_from(source.format).unwrap_or(DataFormat::Unspecified);
    if format == DataFormat::Unspecified {
        out.push(FieldViolation::new(
            "format",
            "REQUIRED",
            "a known format is required",
        ));
    }
    if !is_snake(&source.channel, 64) {
        out.push(FieldViolation::new(
            "channel",
            "INVALID_CHANNEL",
            "lower snake case, 1 to 64 characters",
        ));
    }
    if source.time_zone.parse::<chrono_tz::Tz>().is_err() {
        out.push(FieldViolation::new(
            "time_zone",
            "UNKNOWN_TIME_ZONE",
            format!("{:?} is not an IANA time zone", source.time_zone),
        ));
    }
    if source.timestamp_formats.len() > 10 {
        out.push(FieldViolation::new(
            "timestamp_formats",
            "TOO_MANY",
            "at most 10",
        ));
    }
    for (i, format) in source.timestamp_formats.iter().enumerate() {
        if !is_valid_timestamp_format(format) {
            out.push(FieldViolation::new(
                format!("timestamp_formats[{i}]"),
                "BAD_TIMESTAMP_FORMAT",
                format!("{format:?} is neither a keyword nor a strftime pattern"),
            ));
        }
    }
    check_mappings(&mut out, &source);
    check_identifiers(&mut out, &source);
    if source.natural_key_fields.len() > 10 {
        out.push(FieldViolation::new(
            "natural_key_fields",
            "TOO_MANY",
            "at most 10",
        ));
    }
    for (i, field) in source.natural_key_fields.iter().enumerate() {
        if field.trim().is_empty() {
            out.push(FieldViolation::new(
                format!("natural_key_fields[{i}]"),
                "EMPTY",
                "must not be empty",
            ));
        }
    }
    let is_file = matches!(format, DataFormat::Csv | DataFormat::JsonLines);
    if is_file && source.natural_key_fields.is_empty() {
        out.push(FieldViolation::new(
            "natural_key_fields",
            "REQUIRED",
            "required for CSV and JSON Lines sources",
        ));
    }
    let tracks = source.default_event_type == EventType::Track as i32;
    if is_file
        && tracks
        && source.event_name_field.trim().is_empty()
        && source.default_event_name.trim().is_empty()
    {
        out.push(FieldViolation::new(
            "default_event_name",
            "REQUIRED",
            "a file source of track events needs event_name_field or default_event_name",
        ));
    }
    check_len(
        &mut out,
        "default_event_name",
        &source.default_event_name,
        256,
    );
    if EventType::try_from(source.default_event_type).is_err() {
        out.push(FieldViolation::new(
            "default_event_type",
            "UNKNOWN",
            "unknown event type",
        ));
    }
    if UnmappedFieldPolicy::try_from(source.unmapped_fields).is_err() {
        out.push(FieldViolation::new(
            "unmapped_fields",
            "UNKNOWN",
            "unknown policy",
        ));
    }
    if !matches!(
        SourceState::try_from(source.state),
        Ok(SourceState::Active | SourceState::Disabled)
    ) {
        out.push(FieldViolation::new("state", "UNKNOWN", "unknown state"));
    }
    if let Some(csv) = &source.csv_options {
        check_csv(&mut out, "csv_options", csv);
    }
    if out.is_empty() { Ok(source) } else { Err(out) }
}

fn check_len(out: &mut Vec<FieldViolation>, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        out.push(FieldViolation::new(
            field,
            "TOO_LONG",
            format!("at most {max} characters"),
        ));
    }
}

fn is_valid_target(target: &str) -> bool {
    if TARGET_FIELDS.contains(&target) {
        return true;
    }
    ["properties.", "traits.", "context."].iter().any(|prefix| {
        target
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.split('.').all(|part| !part.is_empty()))
    })
}

fn check_mappings(out: &mut Vec<FieldViolation>, source: &Source) {
    if source.field_mappings.len() > 500 {
        out.push(FieldViolation::new(
            "field_mappings",
            "TOO_MANY",
            "at most 500",
        ));
    }
    for (i, mapping) in source.field_mappings.iter().enumerate() {
        let at = |field: &str| format!("field_mappings[{i}].{field}");
        if !is_valid_target(&mapping.target_field) {
            out.push(FieldViolation::new(
                at("target_field"),
                "BAD_TARGET_FIELD",
                "a canonical field or a path under properties., traits. or context.",
            ));
        }
        if mapping.source_field.trim().is_empty() == mapping.constant.is_empty() {
            out.push(FieldViolation::new(
                at("source_field"),
                "SOURCE_OR_CONSTANT",
                "set exactly one of source_field and constant",
            ));
        }
        if ValueType::try_from(mapping.r#type).is_err() {
            out.push(FieldViolation::new(
                at("type"),
                "UNKNOWN",
                "unknown value type",
            ));
        }
        if FieldTransform::try_from(mapping.transform).is_err() {
            out.push(FieldViolation::new(
                at("transform"),
                "UNKNOWN",
                "unknown transform",
            ));
        }
        if !mapping.scale.is_finite() {
            out.push(FieldViolation::new(
                at("scale"),
                "NOT_FINITE",
                "must be a finite number",
            ));
        }
        if !mapping.timestamp_format.is_empty()
            && !is_valid_timestamp_format(&mapping.timestamp_format)
        {
            out.push(FieldViolation::new(
                at("timestamp_format"),
                "BAD_TIMESTAMP_FORMAT",
                "neither a keyword nor a strftime pattern",
            ));
        }
    }
}

fn check_identifiers(out: &mut Vec<FieldViolation>, source: &Source) {
    if source.identifier_fields.len() > 50 {
        out.push(FieldViolation::new(
            "identifier_fields",
            "TOO_MANY",
            "at most 50",
        ));
    }
    for (i, field) in source.identifier_fields.iter().enumerate() {
        if field.source_field.trim().is_empty() {
            out.push(FieldViolation::new(
                format!("identifier_fields[{i}].source_field"),
                "REQUIRED",
                "must not be empty",
            ));
        }
        if !is_snake(&field.identifier_type, 64) {
            out.push(FieldViolation::new(
                format!("identifier_fields[{i}].identifier_type"),
                "BAD_IDENTIFIER_TYPE",
                "lower snake case, 1 to 64 characters",
            ));
        }
    }
}

/// Checks CSV options (also those an import overrides).
pub fn check_csv(out: &mut Vec<FieldViolation>, at: &str, csv: &CsvOptions) {
    for (field, value) in [("delimiter", &csv.delimiter), ("quote", &csv.quote)] {
        if !value.is_empty() && (value.len() != 1 || !value.is_ascii()) {
            out.push(FieldViolation::new(
                format!("{at}.{field}"),
                "ONE_CHARACTER",
                "one ASCII character",
            ));
        }
    }
    if csv.skip_lines < 0 {
        out.push(FieldViolation::new(
            format!("{at}.skip_lines"),
            "NEGATIVE",
            "must not be negative",
        ));
    }
    if Encoding::from_name(&csv.encoding).is_none() {
        out.push(FieldViolation::new(
            format!("{at}.encoding"),
            "UNKNOWN_ENCODING",
            format!("one of {}", Encoding::names()),
        ));
    }
}

/// Fields of a source that an update may change.
pub const MUTABLE_PATHS: [&str; 14] = [
    "display_name",
    "description",
    "channel",
    "time_zone",
    "timestamp_formats",
    "field_mappings",
    "identifier_fields",
    "natural_key_fields",
    "event_name_field",
    "default_event_name",
    "default_event_type",
    "unmapped_fields",
    "csv_options",
    "state",
];

/// Applies the fields of `patch` named by `paths` (`*` for every mutable
/// field) to `current`; an unknown or immutable path is a violation.
pub fn apply_mask(
    current: &Source,
    patch: &Source,
    paths: &[String],
) -> Result<Source, Vec<FieldViolation>> {
    let mut next = current.clone();
    let mut out = Vec::new();
    if paths.is_empty() {
        out.push(FieldViolation::new(
            "update_mask",
            "REQUIRED",
            "name the fields to change",
        ));
    }
    let expanded: Vec<&str> = if paths.iter().any(|p| p == "*") {
        MUTABLE_PATHS.to_vec()
    } else {
        paths.iter().map(String::as_str).collect()
    };
    for path in expanded {
        if let Some(sub) = path.strip_prefix("csv_options.") {
            let csv = next.csv_options.get_or_insert_with(CsvOptions::default);
            let from = patch.csv_options.clone().unwrap_or_default();
            match sub {
                "delimiter" => csv.delimiter = from.delimiter,
                "quote" => csv.quote = from.quote,
                "no_header_row" => csv.no_header_row = from.no_header_row,
                "skip_lines" => csv.skip_lines = from.skip_lines,
                "encoding" => csv.encoding = from.encoding,
                "null_values" => csv.null_values = from.null_values,
                _ => out.push(unknown_path(path)),
            }
            continue;
        }
        match path {
            "display_name" => next.display_name.clone_from(&patch.display_name),
            "description" => next.description.clone_from(&patch.description),
            "channel" => next.channel.clone_from(&patch.channel),
            "time_zone" => next.time_zone.clone_from(&patch.time_zone),
            "timestamp_formats" => next.timestamp_formats.clone_from(&patch.timestamp_formats),
            "field_mappings" => next.field_mappings.clone_from(&patch.field_mappings),
            "identifier_fields" => next.identifier_fields.clone_from(&patch.identifier_fields),
            "natural_key_fields" => next
                .natural_key_fields
                .clone_from(&patch.natural_key_fields),
            "event_name_field" => next.event_name_field.clone_from(&patch.event_name_field),
            "default_event_name" => next
                .default_event_name
                .clone_from(&patch.default_event_name),
            "default_event_type" => next.default_event_type = patch.default_event_type,
            "unmapped_fields" => next.unmapped_fields = patch.unmapped_fields,
            "csv_options" => next.csv_options.clone_from(&patch.csv_options),
            "state" => next.state = patch.state,
            "name" | "kind" | "format" | "revision" | "create_time" | "update_time" | "etag" => {
                out.push(FieldViolation::new(
                    "update_mask",
                    "IMMUTABLE_FIELD",
                    format!("{path} cannot be changed"),
                ));
            }
            _ => out.push(unknown_path(path)),
        }
    }
    if out.is_empty() { Ok(next) } else { Err(out) }
}

fn unknown_path(path: &str) -> FieldViolation {
    FieldViolation::new(
        "update_mask",
        "UNKNOWN_FIELD",
        format!("{path:?} is not a field of Source"),
    )
}

/// The etag of a source revision.
pub fn etag(source_id: &str, revision: i64) -> String {
    format!("\"{source_id}-r{revision}\"")
}

#[cfg(test)]
mod tests {
    use touchline_proto::collection::v1::{FieldMapping, IdentifierField};

    use super::*;

    fn pos() -> Source {
        Source {
            kind: SourceKind::Pos as i32,
            format: DataFormat::Csv as i32,
            channel: "pos".to_owned(),
            time_zone: "Asia/Shanghai".to_owned(),
            timestamp_formats: vec!["%Y-%m-%d %H:%M:%S".to_owned(), "epoch_millis".to_owned()],
            natural_key_fields: vec!["receipt_no".to_owned()],
            default_event_name: "purchase".to_owned(),
            identifier_fields: vec![IdentifierField {
                source_field: "phone".to_owned(),
                identifier_type: "phone".to_owned(),
                ..Default::default()
            }],
            field_mappings: vec![FieldMapping {
                source_field: "total".to_owned(),
                target_field: "properties.amount".to_owned(),
                scale: 0.01,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn reasons(source: Source) -> Vec<(String, &'static str)> {
        normalise(source)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.field, v.reason))
            .collect()
    }

    #[test]
    fn a_good_source_gets_defaults() {
        let source = normalise(Source {
            time_zone: String::new(),
            ..pos()
        });
        let source = source.ok().unwrap_or_default();
        assert_eq!(source.time_zone, "UTC");
        assert_eq!(source.state, SourceState::Active as i32);
    }

    #[test]
    fn every_problem_is_named() {
        let mut bad = pos();
        bad.time_zone = "Mars/Olympus".to_owned();
        bad.timestamp_formats = vec!["%Q-%".to_owned()];
        bad.channel = "POS".to_owned();
        bad.natural_key_fields.clear();
        bad.field_mappings[0].target_field = "amount".to_owned();
        let reasons = reasons(bad);
        for expected in [
            ("time_zone", "UNKNOWN_TIME_ZONE"),
            ("timestamp_formats[0]", "BAD_TIMESTAMP_FORMAT"),
            ("channel", "INVALID_CHANNEL"),
            ("natural_key_fields", "REQUIRED"),
            ("field_mappings[0].target_field", "BAD_TARGET_FIELD"),
        ] {
            assert!(
                reasons.contains(&(expected.0.to_owned(), expected.1)),
                "{expected:?} missing from {reasons:?}"
            );
        }
    }

    #[test]
    fn ids_are_checked() {
        assert!(is_valid_id("pos-shanghai-1"));
        for bad in ["", "1pos", "Pos", "pos_1", &"a".repeat(64)] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn masks_change_only_named_mutable_fields() {
        let current = pos();
        let patch = Source {
            display_name: "Stores".to_owned(),
            channel: "other".to_owned(),
            csv_options: Some(CsvOptions {
                delimiter: ";".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let next = apply_mask(
            &current,
            &patch,
            &[
                "display_name".to_owned(),
                "csv_options.delimiter".to_owned(),
            ],
        );
        let next = next.ok().unwrap_or_default();
        assert_eq!(next.display_name, "Stores");
        assert_eq!(next.channel, "pos");
        assert_eq!(next.csv_options.unwrap_or_default().delimiter, ";");
        let err = apply_mask(&current, &patch, &["kind".to_owned()]);
        assert_eq!(err.err().unwrap_or_default()[0].reason, "IMMUTABLE_FIELD");
    }
}
