//! Incremental splitting of CSV and JSON Lines bytes into rows: a row is
//! cut only once it is complete, so an upload can stop and resume anywhere,
//! and a row that cannot be read becomes a rejected row, never an error of
//! the whole file.

use touchline_error::FieldViolation;
use touchline_proto::collection::v1::{CsvOptions, DataFormat};

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
}

/// Where the reader is in the preamble of a CSV file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Preamble {
    /// Lines still to skip before the header.
    pub skip_lines: u32,
    /// The header once read (`None` while still expected).
    pub header: Option<Vec<String>>,
}

/// Rows cut from a buffer and how many bytes they used.
#[derive(Debug, Default)]
pub struct Cut {
    /// Complete rows, in order.
    pub rows: Vec<RawRow>,
    /// Bytes of the buffer consumed (rows, blank lines, preamble).
    pub consumed: usize,
}

fn delimiter(csv: &CsvOptions) -> u8 {
    csv.delimiter.bytes().next().unwrap_or(b',')
}

fn quote(csv: &CsvOptions) -> u8 {
    csv.quote.bytes().next().unwrap_or(b'"')
}

/// Cuts complete rows off `buf`, which starts at file offset `base`. A row
/// is complete once bytes follow it, or at the end of the file (`last`).
/// The preamble (skipped lines, header) is consumed first and recorded in
/// `preamble`.
pub fn cut_rows(
    layout: &Layout,
    preamble: &mut Preamble,
    buf: &[u8],
    base: u64,
    last: bool,
) -> Cut {
    let mut start = 0usize;
    if base == 0 && buf.starts_with(b"\xEF\xBB\xBF") {
        start = 3;
    }
    if layout.format == DataFormat::JsonLines {
        return cut_lines(buf, start, base, last);
    }
    while preamble.skip_lines > 0 {
        match buf[start..].iter().position(|b| *b == b'\n') {
            Some(nl) => {
                start += nl + 1;
                preamble.skip_lines -= 1;
            }
            None if last => {
                start = buf.len();
                preamble.skip_lines = 0;
            }
            None => {
                return Cut {
                    rows: Vec::new(),
                    consumed: start,
                };
            }
        }
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter(&layout.csv))
        .quote(quote(&layout.csv))
        .from_reader(&buf[start..]);
    let mut cut = Cut {
        rows: Vec::new(),
        consumed: start,
    };
    let mut record = csv::ByteRecord::new();
    loop {
        let row_start = usize::try_from(reader.position().byte()).unwrap_or(usize::MAX);
        let read = reader.read_byte_record(&mut record);
        let end = usize::try_from(reader.position().byte()).unwrap_or(usize::MAX);
        match read {
            Ok(false) => {
                // Only blank lines were left.
                if last {
                    cut.consumed = buf.len();
                }
                return cut;
            }
            Ok(true) | Err(_) if start + end >= buf.len() && !last => return cut,
            Ok(true) => {
                let cells: Result<Vec<String>, _> = record
                    .iter()
                    .map(|cell| String::from_utf8(cell.to_vec()))
                    .collect();
                let first = record.position().map_or(row_start, |p| {
                    usize::try_from(p.byte()).unwrap_or(row_start)
                });
                let raw = text(&buf[start + first..start + end]);
                cut.consumed = start + end;
                match cells {
                    Ok(cells) if layout.csv.no_header_row || preamble.header.is_some() => {
                        cut.rows.push(RawRow {
                            offset: base + (start + first) as u64,
                            values: Ok(RowValues::Csv(cells)),
                            raw,
                        });
                    }
                    Ok(cells) => preamble.header = Some(cells),
                    Err(_) if preamble.header.is_none() && !layout.csv.no_header_row => {
                        preamble.header = Some(Vec::new());
                    }
                    Err(_) => cut.rows.push(RawRow {
                        offset: base + (start + first) as u64,
                        values: Err(FieldViolation::new(
                            "row",
                            "INVALID_UTF8",
                            "not valid UTF-8",
                        )),
                        raw,
                    }),
                }
            }
            Err(err) => {
                cut.consumed = start + end;
                cut.rows.push(RawRow {
                    offset: base + (start + row_start) as u64,
                    values: Err(FieldViolation::new(
                        "row",
                        "UNREADABLE_ROW",
                        err.to_string(),
                    )),
                    raw: text(&buf[start + row_start..start + end]),
                });
            }
        }
    }
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
    String::from_utf8_lossy(cut).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_layout() -> Layout {
        Layout {
            format: DataFormat::Csv,
            csv: CsvOptions::default(),
        }
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
