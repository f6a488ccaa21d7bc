//! The `path;conversions;value;nulls` text layout (`a > b > c;12;3400.5;30`), parsed into a
//! [`PathTable`]. Every row is validated and every problem is named with its line (1-based)
//! and field; no input makes the parser panic.
//!
//! Rules: lines end with `\n` (a trailing `\r` is dropped); blank lines are ignored; the first
//! non-blank line is a header when its columns read `path;conversions;value;nulls`
//! (case-insensitive); channel names are trimmed and must not be empty (so `a >> b` is an
//! error with separator `>`); the three numbers must be finite and non-negative, and a row with
//! value but no conversion is refused. Repeated identical paths add up.

use std::fmt;

use thiserror::Error;

use super::path_table::{PathTable, PathTableBuilder};

/// How many violations an error lists (it still counts them all).
pub const MAX_REPORTED_VIOLATIONS: usize = 100;

/// The part of the text a violation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathsField {
    /// The channel separator parameter (reported on line 0).
    Separator,
    /// The row as a whole (its column count).
    Row,
    /// The path column.
    Path,
    /// The conversions column.
    Conversions,
    /// The value column.
    Value,
    /// The nulls column.
    Nulls,
}

impl PathsField {
    /// The field's name as callers know it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Separator => "separator",
            Self::Row => "row",
            Self::Path => "path",
            Self::Conversions => "conversions",
            Self::Value => "value",
            Self::Nulls => "nulls",
        }
    }
}

/// One problem in the paths text.
#[derive(Debug, Clone, PartialEq)]
pub struct PathsTextViolation {
    /// 1-based line number; 0 for the separator parameter.
    pub line: usize,
    /// The field at fault.
    pub field: PathsField,
    /// What is wrong, in lowercase words.
    pub reason: String,
}

impl fmt::Display for PathsTextViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {}: {}",
            self.line,
            self.field.as_str(),
            self.reason
        )
    }
}

/// The paths text was refused: its violations (the first [`MAX_REPORTED_VIOLATIONS`]) and how
/// many there were in all.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("invalid paths text: {total} problem(s)")]
pub struct PathsTextError {
    /// The first violations, in line order.
    pub violations: Vec<PathsTextViolation>,
    /// The number of violations found.
    pub total: usize,
}

const HEADER: [&str; 4] = ["path", "conversions", "value", "nulls"];

/// Parses the text with the given channel separator (empty means `>`; it is trimmed).
pub fn parse_paths_text(text: &str, separator: &str) -> Result<PathTable, PathsTextError> {
    let mut parser = Parser::default();
    let separator = match separator.trim() {
        "" => ">",
        trimmed => trimmed,
    };
    if separator.contains(';') {
        parser.violation(0, PathsField::Separator, "must not contain ';'".to_owned());
        return Err(parser.into_error());
    }
    let mut seen_content = false;
    for (index, raw_line) in text.split('\n').enumerate() {
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.trim().is_empty() {
            continue;
        }
        let first = !seen_content;
        seen_content = true;
        if first && is_header(line) {
            continue;
        }
        parser.row(index + 1, line, separator);
    }
    if parser.total > 0 {
        return Err(parser.into_error());
    }
    Ok(parser.builder.finish())
}

fn is_header(line: &str) -> bool {
    let mut columns = line.split(';');
    HEADER.iter().all(|name| {
        columns
            .next()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case(name))
    }) && columns.next().is_none()
}

#[derive(Default)]
struct Parser {
    builder: PathTableBuilder,
    codes: Vec<u32>,
    violations: Vec<PathsTextViolation>,
    total: usize,
}

impl Parser {
    fn violation(&mut self, line: usize, field: PathsField, reason: String) {
        self.total += 1;
        if self.violations.len() < MAX_REPORTED_VIOLATIONS {
            self.violations.push(PathsTextViolation {
                line,
                field,
                reason,
            });
        }
    }

    fn into_error(self) -> PathsTextError {
        PathsTextError {
            violations: self.violations,
            total: self.total,
        }
    }

    fn row(&mut self, line_number: usize, line: &str, separator: &str) {
        let mut columns = line.split(';');
        let (Some(path), Some(conv), Some(value), Some(nulls), None) = (
            columns.next(),
            columns.next(),
            columns.next(),
            columns.next(),
            columns.next(),
        ) else {
            let found = line.split(';').count();
            let reason = format!("expected 4 columns separated by ';', found {found}");
            self.violation(line_number, PathsField::Row, reason);
            return;
        };
        let path_ok = self.path(line_number, path, separator);
        let conv = self.number(line_number, PathsField::Conversions, conv);
        let value = self.number(line_number, PathsField::Value, value);
        let nulls = self.number(line_number, PathsField::Nulls, nulls);
        let (Some(conv), Some(value), Some(nulls), true) = (conv, value, nulls, path_ok) else {
            return;
        };
        if value > 0.0 && conv == 0.0 {
            let reason = "a value without any conversion".to_owned();
            self.violation(line_number, PathsField::Value, reason);
            return;
        }
        if self.total == 0 {
            self.builder.add_checked(&self.codes, conv, value, nulls);
        }
    }

    /// Fills `self.codes` with the path's channel codes; false (after reporting) when malformed.
    fn path(&mut self, line_number: usize, path: &str, separator: &str) -> bool {
        self.codes.clear();
        for (position, name) in path.split(separator).enumerate() {
            let name = name.trim();
            if name.is_empty() {
                let reason = format!("empty channel name at position {}", position + 1);
                self.violation(line_number, PathsField::Path, reason);
                return false;
            }
            let code = self.builder.channel_code(name);
            self.codes.push(code);
        }
        true
    }

    fn number(&mut self, line_number: usize, field: PathsField, text: &str) -> Option<f64> {
        let text = text.trim();
        match text.parse::<f64>() {
            Ok(number) if number.is_finite() && number >= 0.0 => Some(number),
            Ok(_) => {
                let reason = "must be a finite non-negative number".to_owned();
                self.violation(line_number, field, reason);
                None
            }
            Err(_) => {
                let shown: String = text.chars().take(40).collect();
                let reason = format!("not a number: {shown:?}");
                self.violation(line_number, field, reason);
                None
            }
        }
    }
}
