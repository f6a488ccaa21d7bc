//! Incremental splitting of CSV and JSON Lines bytes into rows: a row is
//! cut only once it is complete, so an upload can stop and resume anywhere,
//! and a row that cannot be read becomes a rejected row, never an error of
//! the whole file.

use touchline_error::FieldViolation;
use touchline_proto::collection::v1::{CsvOptions, DataFormat};

use super::decode::{Encoding, Input};

/// Longest row accepted; a longer one fails the import (memory stays bounded).
pub const MAX_ROW_BYTES: usize = 4 * 1024 * 1024;
/// Longest raw text kept for a rejected row.
pub const MAX_RAW_BYTES: usize = 4 * 1024;

/// One row cut from the file: where it starts and its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    /// Byte offset of the row in the file.
    pub offset: u64,
    /// The row's values, or why it could not be read.
    pub values: Result<RowValues, FieldViolation>,
    /// The row's text (for rejected rows).
    pub raw: String,
}

/// The values of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowValues {
    /// CSV cells, in column order.
    Csv(Vec<String>),
    /// A JSON object.
    Json(serde_json::Map<String, serde_json::Value>),
}

/// How the file is laid out.
#[derive(Debug, Clone)]
pub struct Layout {
    /// CSV or JSON Lines.
    pub format: DataFormat,
    /// CSV options in effect.
    pub csv: CsvOptions,
    /// The character encoding `csv.encoding` names (CSV only: JSON Lines
    /// is UTF-8).
    pub encoding: Encoding,
}

/// Where the reader is in the preamble of a CSV file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Preamble {
    /// Lines still to skip before the header.
    pub skip_lines: u32,
    /// The header once read (`None` while still expected).
    pub header: Option<Vec<String>>,
}

impl Preamble {
    /// Whether every skipped line and the header (when the file has one)
    /// have been read; JSON Lines has no preamble.
    pub fn is_complete(&self, layout: &Layout) -> bool {
        layout.format == DataFormat::JsonLines
            || (self.skip_lines == 0 && (layout.csv.no_header_row || self.header.is_some()))
    }
}

/// Rows cut from a buffer and how many bytes they used.
#[derive(Debug, Default)]
pub struct Cut {
    /// Complete rows, in order.
    pub rows: Vec<RawRow>,
    /// Bytes of the buffer consumed (rows, blank lines, preamble).
    pub consumed: usize,
}

pub(crate) fn delimiter(csv: &CsvOptions) -> u8 {
    csv.delimiter.bytes().next().unwrap_or(b',')
}

pub(crate) fn quote(csv: &CsvOptions) -> u8 {
    csv.quote.bytes().next().unwrap_or(b'"')
}

/// Cuts complete rows off `buf`, which starts at file offset `base`. A row
/// is complete once bytes follow it, or at the end of the file (`last`).
/// The preamble (skipped lines, header) is consumed first and recorded in
/// `preamble`. A CSV file in an encoding other than UTF-8 is decoded before
/// it is cut (see `decode`); offsets stay those of the file's bytes.
pub fn cut_rows(
    layout: &Layout,
    preamble: &mut Preamble,
    buf: &[u8],
    base: u64,
    last: bool,
) -> Cut {
    // JSON Lines is UTF-8 whatever the CSV options say.
    let encoding = match layout.format {
        DataFormat::JsonLines => Encoding::Utf8,
        _ => layout.encoding,
    };
    let bom = encoding.bom();
    let start = if base == 0 && buf.starts_with(bom) {
        bom.len()
    } else {
        0
    };
    if layout.format == DataFormat::JsonLines {
        return cut_lines(buf, start, base, last);
    }
    let input = Input::new(encoding, &buf[start..], last);
    let mut cut = cut_csv(layout, preamble, &input, base + start as u64, last);
    cut.consumed += start;
    cut
}

/// Cuts CSV rows off `input`, whose first byte is at file offset `base`;
/// `consumed` counts the input's original bytes. Should a position ever not
/// map back to them, cutting stops there rather than report a wrong offset
/// (and the upload fails if the file ends unread).
#[expect(
    clippy::too_many_lines,
    reason = "a single-pass CSV state machine whose states share the cursor, the quote state and the preamble"
)]
fn cut_csv(
    layout: &Layout,
    preamble: &mut Preamble,
    input: &Input<'_>,
    base: u64,
    last: bool,
) -> Cut {
    let buf = input.bytes();
    let mut cut = Cut::default();
    // Offset in `buf` up to which the cut accounts for the input.
    let mut done = 0usize;
    while preamble.skip_lines > 0 {
        let (next, left) = match buf[done..].iter().position(|b| *b == b'\n') {
            Some(nl) => (done + nl + 1, preamble.skip_lines - 1),
            None if last => (buf.len(), 0),
            None => return cut,
        };
        let Some(consumed) = input.offset(next) else {
            return cut;
        };
        done = next;
        cut.consumed = consumed;
        preamble.skip_lines = left;
    }
    let start = done;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter(&layout.csv))
        .quote(quote(&layout.csv))
        .from_reader(&buf[start..]);
    let mut record = csv::ByteRecord::new();
    let at = |position: &csv::Position| {
        start.saturating_add(usize::try_from(position.byte()).unwrap_or(usize::MAX))
    };
    loop {
        let row_start = at(reader.position());
        let read = reader.read_byte_record(&mut record);
        let end = at(reader.position());
        match read {
            Ok(false) => {
                // Only blank lines were left.
                if last && let Some(consumed) = input.offset(buf.len()) {
                    cut.consumed = consumed;
                }
                return cut;
            }
            Ok(true) | Err(_) if end >= buf.len() && !last => return cut,
            // The reader takes a quote that is never closed to run to the end of the file,
            // swallowing every row after it as one cell. Left unconsumed, the rest of the
            // file fails the import instead of ending it with rows silently lost.
            Ok(true)
                if end >= buf.len()
                    && ends_inside_quotes(
                        &buf[row_start..end],
                        delimiter(&layout.csv),
                        quote(&layout.csv),
                    ) =>
            {
                return cut;
            }
            Ok(true) => {
                let first = row_begin(buf, record.position().map_or(row_start, at), end);
                let (Some(offset), Some(consumed)) = (input.offset(first), input.offset(end))
                else {
                    return cut;
                };
                let raw = text(&buf[first..end]);
                cut.consumed = consumed;
                let offset = base + offset as u64;
                let cells: Result<Vec<String>, FieldViolation> = match input.violation(first, end) {
                    Some(violation) => Err(violation),
                    None => record
                        .iter()
                        .map(|cell| String::from_utf8(cell.to_vec()))
                        .collect::<Result<_, _>>()
                        .map_err(|_| FieldViolation::new("row", "INVALID_UTF8", "not valid UTF-8")),
                };
                match cells {
                    Ok(cells) if layout.csv.no_header_row || preamble.header.is_some() => {
                        cut.rows.push(RawRow {
                            offset,
                            values: Ok(RowValues::Csv(cells)),
                            raw,
                        });
                    }
                    Ok(cells) => preamble.header = Some(cells),
                    Err(_) if preamble.header.is_none() && !layout.csv.no_header_row => {
                        preamble.header = Some(Vec::new());
                    }
                    Err(violation) => cut.rows.push(RawRow {
                        offset,
                        values: Err(violation),
                        raw,
                    }),
                }
            }
            Err(err) => {
                let row_start = row_begin(buf, row_start, end);
                let (Some(offset), Some(consumed)) = (input.offset(row_start), input.offset(end))
                else {
                    return cut;
                };
                cut.consumed = consumed;
                cut.rows.push(RawRow {
                    offset: base + offset as u64,
                    values: Err(FieldViolation::new(
                        "row",
                        "UNREADABLE_ROW",
                        err.to_string(),
                    )),
                    raw: text(&buf[row_start..end]),
                });
            }
        }
    }
}

/// Whether CSV text ends inside a quoted field: a quote opens one only at the start of a
/// field, and inside it a doubled quote stands for itself.
pub(crate) fn ends_inside_quotes(text: &[u8], delimiter: u8, quote: u8) -> bool {
    let mut at_field_start = true;
    let mut quoted = false;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if quoted {
            if b == quote {
                if text.get(i + 1) == Some(&quote) {
                    i += 1;
                } else {
                    quoted = false;
                }
            }
        } else if at_field_start && b == quote {
            quoted = true;
        }
        at_field_start = !quoted && (b == delimiter || b == b'\n' || b == b'\r');
        i += 1;
    }
    quoted
}

/// Where a row's own bytes begin: the reader counts the blank lines before
/// it, and after CRLF the LF, as part of the row; its offset and raw text
/// start past them, at its first byte in the file.
fn row_begin(buf: &[u8], from: usize, end: usize) -> usize {
    from + buf[from..end]
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count()
}

fn cut_lines(buf: &[u8], mut start: usize, base: u64, last: bool) -> Cut {
    let mut cut = Cut {
        rows: Vec::new(),
        consumed: start,
    };
    while start < buf.len() {
        let (line, next) = match buf[start..].iter().position(|b| *b == b'\n') {
            Some(nl) => (&buf[start..start + nl], start + nl + 1),
            None if last => (&buf[start..], buf.len()),
            None => break,
        };
        let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
        if !trimmed.iter().all(u8::is_ascii_whitespace) {
            let values = match serde_json::from_slice::<serde_json::Value>(trimmed) {
                Ok(serde_json::Value::Object(map)) => Ok(RowValues::Json(map)),
                Ok(_) => Err(FieldViolation::new(
                    "row",
                    "NOT_AN_OBJECT",
                    "a line must hold a JSON object",
                )),
                Err(err) => Err(FieldViolation::new(
                    "row",
                    "UNREADABLE_ROW",
                    err.to_string(),
                )),
            };
            cut.rows.push(RawRow {
                offset: base + start as u64,
                values,
                raw: text(trimmed),
            });
        }
        start = next;
        cut.consumed = next;
    }
    cut
}

fn text(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(MAX_RAW_BYTES)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    // A character cut in two at the limit became U+FFFD, which may be
    // longer than what it replaced.
    while text.len() > MAX_RAW_BYTES {
        text.pop();
    }
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_layout() -> Layout {
        Layout {
            format: DataFormat::Csv,
            csv: CsvOptions::default(),
            encoding: Encoding::Utf8,
        }
    }

    #[test]
    fn a_quote_never_closed_leaves_the_rest_of_the_file_unread() {
        let data = b"a,b\n1,\"open\n2,x\n3,y\n";
        let mut preamble = Preamble::default();
        let cut = cut_rows(&csv_layout(), &mut preamble, data, 0, true);
        assert!(
            cut.rows.is_empty(),
            "no row is taken from a file that never closes its quote"
        );
        assert!(
            cut.consumed < data.len(),
            "the rest is left for the import to fail on"
        );
        // Doubled quotes inside a closed field, and a quote inside an unquoted field, are fine.
        let fine = b"a,b\n1,\"say \"\"hi\"\"\"\n2,ab\"c\n";
        let mut preamble = Preamble::default();
        let cut = cut_rows(&csv_layout(), &mut preamble, fine, 0, true);
        assert_eq!(cut.rows.len(), 2);
        assert_eq!(cut.consumed, fine.len());
    }

    #[test]
    fn csv_rows_are_cut_only_when_complete() {
        let data = b"id,name\n1,\"a\nb\"\n2,c\n3,d";
        let mut preamble = Preamble::default();
        let first = cut_rows(&csv_layout(), &mut preamble, &data[..12], 0, false);
        assert_eq!(
            preamble.header,
            Some(vec!["id".to_owned(), "name".to_owned()])
        );
        assert!(first.rows.is_empty(), "the quoted row is not finished");
        assert_eq!(first.consumed, 8);
        let rest = &data[first.consumed..];
        let second = cut_rows(&csv_layout(), &mut preamble, rest, 8, false);
        assert_eq!(second.rows.len(), 2);
        assert_eq!(
            second.rows[0].values,
            Ok(RowValues::Csv(vec!["1".into(), "a\nb".into()]))
        );
        assert_eq!(second.rows[1].offset, 16);
        let tail = &rest[second.consumed..];
        let third = cut_rows(
            &csv_layout(),
            &mut preamble,
            tail,
            8 + second.consumed as u64,
            true,
        );
        assert_eq!(third.rows.len(), 1);
        assert_eq!(third.consumed, tail.len());
    }

    #[test]
    fn json_lines_reject_bad_lines_alone() {
        let layout = Layout {
            format: DataFormat::JsonLines,
            csv: CsvOptions::default(),
            encoding: Encoding::Utf8,
        };
        let cut = cut_rows(
            &layout,
            &mut Preamble::default(),
            b"{\"a\":1}\n\nnot json\n[1]\n{\"b\"",
            0,
            false,
        );
        assert_eq!(cut.rows.len(), 3);
        assert!(cut.rows[0].values.is_ok());
        assert_eq!(
            cut.rows[1].values.as_ref().err().map(|v| v.reason),
            Some("UNREADABLE_ROW")
        );
        assert_eq!(
            cut.rows[2].values.as_ref().err().map(|v| v.reason),
            Some("NOT_AN_OBJECT")
        );
    }
}
