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
use std::sync::Mutex;

use thiserror::Error;

use super::distinct_paths::{DistinctPaths, TOUCH_AHEAD};
use super::path_table::PathTable;
use super::paths_scan::{ChannelCodes, quick_row};

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

/// [`parse_paths_text`] on up to `threads` threads: the text is cut at line boundaries into
/// parts read side by side, while the calling thread adds their rows to the table in text
/// order, so the table (path order, channel codes, every sum to the last bit) and the
/// violations are exactly those of a sequential parse.
pub fn parse_paths_text_parallel(
    text: &str,
    separator: &str,
    threads: usize,
) -> Result<PathTable, PathsTextError> {
    parse_in_parts(text, separator, threads, PART_BYTES)
}

/// The size of a part of the text. Many parts per thread, so threads that finish early take
/// more and the table is built from the first parts while the last are read. Parts' buffers
/// are reused, so with small parts what is written is read back from cache, and the parse
/// touches little fresh memory (its page faults cost more than reading the rows, and threads
/// faulting at once wait on each other). Not so small that the per-part work (a channel
/// index, a code map) counts: about 750 rows.
const PART_BYTES: usize = 64 << 10;

/// [`parse_paths_text_parallel`] with parts of about `part_bytes` (tests cut texts into many
/// tiny parts with it).
pub(super) fn parse_in_parts(
    text: &str,
    separator: &str,
    threads: usize,
    part_bytes: usize,
) -> Result<PathTable, PathsTextError> {
    let separator = match separator.trim() {
        "" => ">",
        trimmed => trimmed,
    };
    if separator.contains(';') {
        let violation = PathsTextViolation {
            line: 0,
            field: PathsField::Separator,
            reason: "must not contain ';'".to_owned(),
        };
        return Err(PathsTextError {
            violations: vec![violation],
            total: 1,
        });
    }
    let starts = cut_at_lines(text, part_bytes.max(1));
    // The header may only be the first non-blank line of the whole text: in the part holding
    // the text's first non-blank character (looked for once, not before every part).
    let first_content = text.find(|c: char| !c.is_whitespace());
    // Parts whose rows are in the table, emptied for the next part to be read into.
    let spare: Mutex<Vec<Part>> = Mutex::new(Vec::new());
    let read = |index: usize| {
        let start = starts[index];
        let end = starts.get(index + 1).copied().unwrap_or(text.len());
        let header_allowed = first_content.is_none_or(|first| first >= start);
        let part = spare.lock().ok().and_then(|mut parts| parts.pop());
        read_part(
            part.unwrap_or_default(),
            &text[start..end],
            separator,
            header_allowed,
        )
    };
    let mut assembly = Assembly {
        text_bytes: text.len(),
        ..Assembly::default()
    };
    let mut add = |part| {
        let emptied = assembly.add(part);
        if let Ok(mut parts) = spare.lock() {
            parts.push(emptied);
        }
    };
    if threads > 1 && starts.len() > 1 {
        crate::calendar::on_threads_in_order(starts.len(), threads, read, add);
    } else {
        (0..starts.len()).for_each(|index| add(read(index)));
    }
    assembly.finish()
}

/// Where the parts start: 0, then just after the first newline at least `part_bytes` past the
/// previous start.
fn cut_at_lines(text: &str, part_bytes: usize) -> Vec<usize> {
    let mut starts = vec![0];
    let bytes = text.as_bytes();
    let mut target = part_bytes;
    while let Some(rest) = bytes.get(target..) {
        let Some(newline) = rest.iter().position(|&b| b == b'\n') else {
            break;
        };
        let start = target + newline + 1;
        if start >= text.len() {
            break;
        }
        starts.push(start);
        target = start.saturating_add(part_bytes);
    }
    starts
}

/// The table built from the parts in text order, or the violations once there are any.
#[derive(Default)]
struct Assembly {
    table: DistinctPaths,
    violations: Vec<PathsTextViolation>,
    total: usize,
    /// Lines in the parts added so far: part line numbers count from their part's start.
    lines: usize,
    /// The length of the whole text, to size the table when the first rows come (sized
    /// before, the table's zeroing would hold the first part back from the other threads).
    text_bytes: usize,
}

impl Assembly {
    /// Adds a part's rows (or violations) and gives the part back emptied.
    fn add(&mut self, mut part: Part) -> Part {
        let before = self.lines;
        self.lines += part.lines;
        if self.total + part.total > 0 {
            self.total += part.total;
            let room = MAX_REPORTED_VIOLATIONS - self.violations.len();
            let shifted = part
                .violations
                .drain(..)
                .map(|violation| PathsTextViolation {
                    line: before + violation.line,
                    ..violation
                });
            self.violations.extend(shifted.take(room));
            part.clear();
            return part;
        }
        if before == 0 {
            // The first part (the only one without lines before it). About one row per 64
            // bytes on real files; the table grows past that if need be.
            self.table
                .reserve(self.text_bytes / 64, self.text_bytes / 8);
        }
        // Channel codes are per part; coding each part's names in its first-seen order, part
        // after part, gives every channel the code a sequential parse would.
        let global: Vec<u32> = part
            .channels
            .take_names()
            .into_iter()
            .map(|name| self.table.channel_code(name))
            .collect();
        for index in 0..part.ends.len() {
            if index % TOUCH_AHEAD == 0 {
                let coming = part.hashes.get(index + TOUCH_AHEAD..).unwrap_or_default();
                self.table.touch(coming);
            }
            let (codes, hash, numbers) = part.row_at(index);
            self.table.add(codes, &global, hash, numbers);
        }
        part.clear();
        part
    }

    fn finish(self) -> Result<PathTable, PathsTextError> {
        if self.total > 0 {
            return Err(PathsTextError {
                violations: self.violations,
                total: self.total,
            });
        }
        Ok(self.table.finish())
    }
}

/// Reads one part of the text; its violations are numbered from its first line (1).
fn read_part(mut part: Part, text: &str, separator: &str, header_allowed: bool) -> Part {
    // About one row per 64 bytes on real files; the columns grow past that if need be.
    part.reserve(text.len() / 64, text.len() / 8);
    let mut seen_content = !header_allowed;
    let (mut at, mut line_number) = (0, 1);
    while at <= text.len() {
        // Most rows are plain. The first non-blank line may be the header, which the quick
        // reader would take for channel names before failing, so it is read carefully.
        if seen_content {
            let row_start = part.codes.len();
            let quick = quick_row(text, at, separator, &mut part.channels, &mut part.codes);
            if let Some(row) = quick {
                part.push_row(row_start, row.hash, row.numbers);
                (at, line_number) = (row.next_line, line_number + 1);
                continue;
            }
            part.codes.truncate(row_start);
        }
        let end = text[at..].find('\n').map_or(text.len(), |found| at + found);
        let raw_line = &text[at..end];
        (at, line_number) = (end + 1, line_number + 1);
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.trim().is_empty() {
            continue;
        }
        let first = !seen_content;
        seen_content = true;
        if first && is_header(line) {
            continue;
        }
        part.row(line_number - 1, line, separator);
    }
    // Every pass of the loop took one line, the last one without its newline.
    part.lines = line_number - 2;
    part
}

fn is_header(line: &str) -> bool {
    let mut columns = line.split(';');
    HEADER.iter().all(|name| {
        columns
            .next()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case(name))
    }) && columns.next().is_none()
}

/// One part's valid rows (channel codes local to the part) and its violations.
#[derive(Default)]
struct Part {
    channels: ChannelCodes,
    /// The rows' channel codes one after the other; row `i` ends at `ends[i]`.
    codes: Vec<u32>,
    ends: Vec<usize>,
    /// Per row, a hash of its channel names (the same in every part).
    hashes: Vec<u64>,
    /// Conversions, value and nulls per row.
    numbers: Vec<[f64; 3]>,
    violations: Vec<PathsTextViolation>,
    total: usize,
    /// The newlines in the part: how far the next part's line numbers are shifted.
    lines: usize,
}

impl Part {
    /// Empties the part, keeping its buffers.
    fn clear(&mut self) {
        self.channels.clear();
        self.codes.clear();
        self.ends.clear();
        self.hashes.clear();
        self.numbers.clear();
        self.violations.clear();
        self.total = 0;
        self.lines = 0;
    }

    fn reserve(&mut self, rows: usize, codes: usize) {
        self.codes.reserve(codes);
        self.ends.reserve(rows);
        self.hashes.reserve(rows);
        self.numbers.reserve(rows);
    }

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

    /// Keeps the row whose codes were pushed from `row_start` on. Once a violation is found
    /// the table is never built, so rows are only checked.
    fn push_row(&mut self, row_start: usize, hash: u64, numbers: [f64; 3]) {
        if self.total == 0 {
            self.hashes.push(hash);
            self.ends.push(self.codes.len());
            self.numbers.push(numbers);
        } else {
            self.codes.truncate(row_start);
        }
    }

    /// The row `index` of this part: its codes, hash and numbers.
    fn row_at(&self, index: usize) -> (&[u32], u64, [f64; 3]) {
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        (
            &self.codes[start..self.ends[index]],
            self.hashes[index],
            self.numbers[index],
        )
    }

    /// The careful reading of a row: every problem named.
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
        let row_start = self.codes.len();
        let path_ok = self.path(line_number, path, separator);
        let conv = self.number(line_number, PathsField::Conversions, conv);
        let value = self.number(line_number, PathsField::Value, value);
        let nulls = self.number(line_number, PathsField::Nulls, nulls);
        let (Some(conv), Some(value), Some(nulls), true) = (conv, value, nulls, path_ok) else {
            self.codes.truncate(row_start);
            return;
        };
        if value > 0.0 && conv == 0.0 {
            let reason = "a value without any conversion".to_owned();
            self.violation(line_number, PathsField::Value, reason);
            self.codes.truncate(row_start);
            return;
        }
        let hash = self.channels.path_hash(&self.codes[row_start..]);
        self.push_row(row_start, hash, [conv, value, nulls]);
    }

    /// Pushes the path's channel codes; false (after reporting) when malformed.
    fn path(&mut self, line_number: usize, path: &str, separator: &str) -> bool {
        let mut chars = separator.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => self.path_parts(line_number, path.split(c)),
            _ => self.path_parts(line_number, path.split(separator)),
        }
    }

    fn path_parts<'a>(&mut self, line_number: usize, parts: impl Iterator<Item = &'a str>) -> bool {
        for (position, name) in parts.enumerate() {
            let name = name.trim();
            if name.is_empty() {
                let reason = format!("empty channel name at position {}", position + 1);
                self.violation(line_number, PathsField::Path, reason);
                return false;
            }
            let code = self.channels.code(name);
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
