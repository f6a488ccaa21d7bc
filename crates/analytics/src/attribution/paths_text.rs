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
    parse_paths_text_parallel(text, separator, 1)
}

/// [`parse_paths_text`] on up to `threads` threads: the text is cut at line boundaries, each
/// part parsed into its own accumulator, and the parts merged in text order, so paths and
/// channel codes come out in the same first-seen order as a sequential parse. Only the
/// rounding of fractional counts repeated across parts may differ in the last bits.
pub fn parse_paths_text_parallel(
    text: &str,
    separator: &str,
    threads: usize,
) -> Result<PathTable, PathsTextError> {
    let separator = match separator.trim() {
        "" => ">",
        trimmed => trimmed,
    };
    if separator.contains(';') {
        let mut parser = Parser::default();
        parser.violation(0, PathsField::Separator, "must not contain ';'".to_owned());
        return Err(parser.into_error());
    }
    let parts = split_at_lines(text, threads.max(1));
    let parse = |&(start, first_line): &(usize, usize), end: usize| {
        // The header may only be the first non-blank line of the whole text.
        let header_allowed = text[..start].trim().is_empty();
        parse_part(&text[start..end], first_line, separator, header_allowed)
    };
    let ends: Vec<usize> = parts
        .iter()
        .skip(1)
        .map(|p| p.0)
        .chain([text.len()])
        .collect();
    let parsed: Vec<Parser> = if parts.len() == 1 {
        vec![parse(&parts[0], text.len())]
    } else {
        crate::calendar::on_threads(parts.iter().zip(&ends), |(part, &end)| parse(part, end))
    };
    let mut parsed = parsed.into_iter();
    let mut first = parsed.next().unwrap_or_default();
    for part in parsed {
        first.total += part.total;
        let room = MAX_REPORTED_VIOLATIONS - first.violations.len();
        first
            .violations
            .extend(part.violations.into_iter().take(room));
        if first.total == 0 {
            first.builder.merge(part.builder);
        }
    }
    if first.total > 0 {
        return Err(first.into_error());
    }
    Ok(first.builder.finish())
}

/// Up to `parts` (start byte, first line number) pairs cutting the text just after a newline.
fn split_at_lines(text: &str, parts: usize) -> Vec<(usize, usize)> {
    let mut cuts = vec![(0, 1)];
    let bytes = text.as_bytes();
    let (mut line, mut counted_to) = (1, 0);
    for k in 1..parts {
        let target = (text.len() * k / parts).max(counted_to);
        let Some(newline) = bytes[target..].iter().position(|&b| b == b'\n') else {
            break;
        };
        let start = target + newline + 1;
        line += bytes[counted_to..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted_to = start;
        if start < text.len() {
            cuts.push((start, line));
        }
    }
    cuts
}

/// Parses one part of the text whose first line has number `first_line`.
fn parse_part(part: &str, first_line: usize, separator: &str, header_allowed: bool) -> Parser {
    let mut parser = Parser::default();
    // Distinct paths are at most the lines; sizing once avoids regrowing the index and columns.
    let lines = part.bytes().filter(|&b| b == b'\n').count() + 1;
    parser.builder.reserve(lines, part.len() / 8);
    let mut seen_content = !header_allowed;
    for (index, raw_line) in part.split('\n').enumerate() {
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.trim().is_empty() {
            continue;
        }
        let first = !seen_content;
        seen_content = true;
        if first && is_header(line) {
            continue;
        }
        parser.row(first_line + index, line, separator);
    }
    parser
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
        // A one-character separator splits on the char: much faster than a substring search.
        let mut chars = separator.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => self.path_parts(line_number, path.split(c)),
            _ => self.path_parts(line_number, path.split(separator)),
        }
    }

    fn path_parts<'a>(&mut self, line_number: usize, parts: impl Iterator<Item = &'a str>) -> bool {
        self.codes.clear();
        for (position, name) in parts.enumerate() {
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
