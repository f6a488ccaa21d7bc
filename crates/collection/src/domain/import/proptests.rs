//! Property tests of the row parser: random and mutated CSV and JSON Lines
//! bytes, cut at random chunk boundaries, mapped by random source
//! definitions. The parser must never panic, must cut the same rows however
//! the bytes arrive, and must turn a bad row into a rejection of that row
//! alone. Case counts follow `PROPTEST_CASES` (256 by default).

use proptest::collection::vec;
use proptest::prelude::*;
use touchline_proto::collection::v1::{
    CsvOptions, DataFormat, FieldMapping, IdentifierField, Source,
};

use super::*;

/// Field names rows and sources share, so mappings often hit real columns.
const NAMES: &[&str] = &[
    "id", "time", "phone", "name", "a.b", "$1", "$2", "$9", "total", "", "x y", "ü",
];

const TARGETS: &[&str] = &[
    "event",
    "original_timestamp",
    "sent_at",
    "user_id",
    "anonymous_id",
    "channel",
    "properties.total",
    "properties.a.b.c",
    "traits.name",
    "context.ip",
    "nowhere",
    "properties.",
    "",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(NAMES).prop_map(str::to_owned),
        1 => ".{0,6}",
    ]
}

fn source() -> impl Strategy<Value = Source> {
    let mapping = (
        name(),
        proptest::sample::select(TARGETS),
        -1i32..7,
        prop_oneof![4 => Just(String::new()), 1 => ".{0,8}"],
    )
        .prop_map(|(source_field, target, transform, constant)| FieldMapping {
            source_field,
            target_field: target.to_owned(),
            transform,
            constant,
            ..Default::default()
        });
    let identifier =
        (name(), name(), ".{0,4}").prop_map(|(source_field, scope_field, scope)| IdentifierField {
            source_field,
            scope_field,
            scope,
            identifier_type: "phone".to_owned(),
        });
    (
        vec(mapping, 0..8),
        vec(identifier, 0..3),
        vec(name(), 0..3),
        name(),
        -1i32..4,
        -1i32..5,
        ".{0,6}",
    )
        .prop_map(
            |(field_mappings, identifier_fields, keys, event_name_field, unmapped, kind, dflt)| {
                Source {
                    field_mappings,
                    identifier_fields,
                    natural_key_fields: keys,
                    event_name_field,
                    unmapped_fields: unmapped,
                    default_event_type: kind,
                    default_event_name: dflt,
                    channel: "pos".to_owned(),
                    ..Default::default()
                }
            },
        )
}

fn csv_options() -> impl Strategy<Value = CsvOptions> {
    (
        prop_oneof![
            Just(String::new()),
            Just(";".to_owned()),
            Just("\t".to_owned()),
            "[ -~]"
        ],
        prop_oneof![Just(String::new()), Just("'".to_owned())],
        any::<bool>(),
        0i32..3,
        vec(
            prop_oneof![Just("NULL".to_owned()), Just("-".to_owned())],
            0..2,
        ),
    )
        .prop_map(
            |(delimiter, quote, no_header_row, skip_lines, null_values)| CsvOptions {
                delimiter,
                quote,
                no_header_row,
                skip_lines,
                null_values,
                ..Default::default()
            },
        )
}

/// A CSV-looking file: cells drawn from awkward pieces (quotes, delimiters,
/// line breaks, non-ASCII, stray bytes).
fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
    let cell = prop_oneof![
        4 => "[a-z0-9 .:-]{0,8}".prop_map(String::into_bytes),
        1 => Just(b"\"a,b\"".to_vec()),
        1 => Just(b"\"a\"\"b\"".to_vec()),
        1 => Just(b"\"open".to_vec()),
        1 => Just(b"x\ry".to_vec()),
        1 => Just("é中".as_bytes().to_vec()),
        1 => vec(any::<u8>(), 0..4),
    ];
    let row = vec(cell, 0..6).prop_map(|cells| cells.join(&b","[..]));
    let ending = prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..]), Just(&b"\n\n"[..])];
    vec((row, ending), 0..12).prop_map(|rows| {
        let mut out = Vec::new();
        for (row, ending) in rows {
            out.extend_from_slice(&row);
            out.extend_from_slice(ending);
        }
        out
    })
}

/// A JSON Lines-looking file: objects, other JSON values, broken lines.
fn json_bytes() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        4 => (name(), ".{0,8}", any::<i32>()).prop_map(|(k, v, n)| {
            serde_json::json!({ k: v, "time": n, "a": {"b": [n, null, true]} })
                .to_string()
                .into_bytes()
        }),
        1 => Just(b"[1,2]".to_vec()),
        1 => Just(b"{\"a\":".to_vec()),
        1 => Just(b"   ".to_vec()),
        1 => vec(any::<u8>(), 0..12),
    ];
    vec(line, 0..12).prop_map(|lines| lines.join(&b"\n"[..]))
}

/// Flips, inserts and deletes a few bytes.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, op, byte) in edits {
        let at = if bytes.is_empty() {
            0
        } else {
            at % bytes.len()
        };
        match op % 3 {
            0 if at < bytes.len() => bytes[at] ^= byte,
            1 => bytes.insert(at, byte),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.push(byte),
        }
    }
    bytes
}

fn file() -> impl Strategy<Value = (Layout, Vec<u8>)> {
    let edits = vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..6);
    prop_oneof![
        (
            csv_options(),
            proptest::sample::select(Encoding::ALL.to_vec()),
            csv_bytes(),
            edits.clone()
        )
            .prop_map(|(csv, encoding, bytes, edits)| {
                (
                    Layout {
                        format: DataFormat::Csv,
                        csv,
                        encoding,
                    },
                    mutate(bytes, &edits),
                )
            }),
        (json_bytes(), edits).prop_map(|(bytes, edits)| {
            (
                Layout {
                    format: DataFormat::JsonLines,
                    csv: CsvOptions::default(),
                    encoding: Encoding::Utf8,
                },
                mutate(bytes, &edits),
            )
        }),
    ]
}

/// A CJK character whose GBK form ends in `byte`: such a character holds
/// a delimiter or quote byte that a raw-byte cutter would split at.
fn gbk_char_ending_in(byte: u8) -> String {
    ('\u{4E00}'..='\u{9FA5}')
        .map(String::from)
        .find(|c| encoding_rs::GBK.encode(c).0.get(1) == Some(&byte))
        .unwrap_or_default()
}

/// `text` in `encoding`, with a byte-order mark when `bom` (for the
/// encodings that have one).
fn encode(text: &str, encoding: Encoding, bom: bool) -> Vec<u8> {
    let mut out = if bom {
        encoding.bom().to_vec()
    } else {
        Vec::new()
    };
    match encoding {
        Encoding::Utf8 => out.extend_from_slice(text.as_bytes()),
        Encoding::Gbk => out.extend_from_slice(&encoding_rs::GBK.encode(text).0),
        Encoding::Gb18030 => out.extend_from_slice(&encoding_rs::GB18030.encode(text).0),
        Encoding::Utf16Le => out.extend(text.encode_utf16().flat_map(u16::to_le_bytes)),
        Encoding::Utf16Be => out.extend(text.encode_utf16().flat_map(u16::to_be_bytes)),
    }
    out
}

/// `bytes` decoded strictly, or `None` if they do not decode.
fn decode_exactly(bytes: &[u8], encoding: Encoding) -> Option<String> {
    let decoder = match encoding {
        Encoding::Utf8 => encoding_rs::UTF_8,
        Encoding::Gbk => encoding_rs::GBK,
        Encoding::Gb18030 => encoding_rs::GB18030,
        Encoding::Utf16Le => encoding_rs::UTF_16LE,
        Encoding::Utf16Be => encoding_rs::UTF_16BE,
    };
    decoder
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|text| text.into_owned())
}

fn to_usize(offset: u64) -> usize {
    usize::try_from(offset).unwrap_or(usize::MAX)
}

/// A CSV text whose every character GBK can encode: Chinese cells, cells
/// quoted around delimiters, quotes and line breaks, and characters whose
/// GBK bytes hold `|` (one of the delimiters), `\` or `@`.
fn chinese_csv(delimiter: char) -> impl Strategy<Value = String> {
    let tricky = [
        gbk_char_ending_in(b'|'),
        gbk_char_ending_in(b'\\'),
        gbk_char_ending_in(b'@'),
    ]
    .concat();
    let cell = prop_oneof![
        2 => "[a-z0-9]{0,5}",
        3 => proptest::sample::select(vec!["张三", "李四", "王小明", "北京市朝阳区", "会员卡", "€", ""])
            .prop_map(str::to_owned),
        1 => Just(tricky),
        1 => proptest::sample::select(vec!["张,三", "说\"好\"的", "第一行\n第二行", "a\r\nb"])
            .prop_map(move |inner| {
                let inner = inner.replace(',', &delimiter.to_string());
                format!("\"{}\"", inner.replace('"', "\"\""))
            }),
    ];
    let row = ("[a-z0-9]{1,5}", vec(cell, 0..4)).prop_map(move |(id, cells)| {
        let mut row = id;
        for cell in cells {
            row.push(delimiter);
            row.push_str(&cell);
        }
        row
    });
    let ending = prop_oneof![Just("\n"), Just("\r\n")];
    (vec((row, ending), 0..10), any::<bool>()).prop_map(move |(rows, end_with_break)| {
        let mut text = format!("编号{delimiter}姓名{delimiter}地址\n");
        let count = rows.len();
        for (i, (row, ending)) in rows.into_iter().enumerate() {
            text.push_str(&row);
            if i + 1 < count || end_with_break {
                text.push_str(ending);
            }
        }
        text
    })
}

/// Feeds `data` the way an upload session does: the unconsumed bytes plus
/// the next chunk, cut at the given sizes; returns every row and the header.
fn feed(layout: &Layout, data: &[u8], chunk_sizes: &[usize]) -> (Vec<RawRow>, Preamble) {
    let mut preamble = Preamble {
        skip_lines: u32::try_from(layout.csv.skip_lines).unwrap_or(0),
        header: None,
    };
    let mut rows = Vec::new();
    let mut buffer: Vec<u8> = Vec::new();
    let mut base = 0u64;
    let mut fed = 0usize;
    let mut sizes = chunk_sizes.iter().cycle();
    loop {
        let size = sizes.next().copied().unwrap_or(data.len()).max(1);
        let end = (fed + size).min(data.len());
        buffer.extend_from_slice(&data[fed..end]);
        fed = end;
        let last = fed == data.len();
        let cut = cut_rows(layout, &mut preamble, &buffer, base, last);
        assert!(cut.consumed <= buffer.len(), "consumed past the buffer");
        rows.extend(cut.rows);
        buffer.drain(..cut.consumed);
        base += cut.consumed as u64;
        if last {
            // The last call consumes everything, except a CSV tail that never closes a quote:
            // that is left for the import to fail on, not read as one cell swallowing the
            // rows after it.
            let decoded = super::decode::Input::new(layout.encoding, &buffer, true);
            let unclosed = layout.format != DataFormat::JsonLines
                && super::cut::ends_inside_quotes(
                    decoded.bytes(),
                    super::cut::delimiter(&layout.csv),
                    super::cut::quote(&layout.csv),
                );
            assert!(
                buffer.is_empty() || unclosed,
                "the last call consumes everything"
            );
            return (rows, preamble);
        }
    }
}

proptest! {
    /// Whatever the bytes and however they arrive, the parser cuts the same
    /// rows, every offset points into the file, and every row, good or
    /// bad, maps to an event or to named violations.
    #[test]
    fn any_file_is_cut_the_same_however_it_arrives(
        (layout, data) in file(),
        chunk_sizes in vec(1usize..64, 1..8),
        source in source(),
    ) {
        let (whole, preamble) = feed(&layout, &data, &[data.len().max(1)]);
        let (pieces, _) = feed(&layout, &data, &chunk_sizes);
        prop_assert_eq!(&whole, &pieces);
        let header = preamble.header.unwrap_or_default();
        let nulls = layout.csv.null_values.clone();
        for (n, row) in whole.iter().enumerate() {
            prop_assert!(row.offset < data.len() as u64);
            prop_assert!(row.raw.len() <= MAX_RAW_BYTES);
            if let Ok(values) = &row.values {
                let number = i64::try_from(n).unwrap_or(i64::MAX) + 1;
                match row_event("src", &source, "imp", number, &Row::new(values, &header, &nulls)) {
                    Ok(event) => {
                        prop_assert!(event.message_id.starts_with("src:"));
                        prop_assert!(!event.original_timestamp.trim().is_empty());
                    }
                    Err(violations) => prop_assert!(!violations.is_empty()),
                }
            }
        }
    }

    /// One unreadable line among good JSON lines is rejected alone; every
    /// other line still becomes its row, in order.
    #[test]
    fn a_bad_json_line_is_rejected_alone(
        good in vec(("[a-z]{1,6}", any::<i64>()), 1..20),
        bad in prop_oneof![
            Just(b"{\"a\":".to_vec()),
            Just(b"[1]".to_vec()),
            Just(b"\"text\"".to_vec()),
            vec(any::<u8>(), 1..16).prop_filter("not JSON", |b| {
                b.iter().any(|c| !c.is_ascii_whitespace())
                    && !b.contains(&b'\n')
                    && !matches!(serde_json::from_slice::<serde_json::Value>(b), Ok(serde_json::Value::Object(_)))
            }),
        ],
        at in any::<usize>(),
        chunk_sizes in vec(1usize..64, 1..8),
    ) {
        let at = at % (good.len() + 1);
        let mut lines: Vec<Vec<u8>> = good
            .iter()
            .map(|(k, v)| serde_json::json!({ "key": k, "time": v }).to_string().into_bytes())
            .collect();
        lines.insert(at, bad);
        let data = lines.join(&b"\n"[..]);
        let layout = Layout {
            format: DataFormat::JsonLines,
            csv: CsvOptions::default(),
            encoding: Encoding::Utf8,
        };
        let (rows, _) = feed(&layout, &data, &chunk_sizes);
        prop_assert_eq!(rows.len(), good.len() + 1);
        for (i, row) in rows.iter().enumerate() {
            prop_assert_eq!(row.values.is_err(), i == at, "row {}", i);
        }
        let keys: Vec<String> = rows
            .iter()
            .filter_map(|r| match &r.values {
                Ok(RowValues::Json(map)) => map.get("key").and_then(|v| v.as_str()).map(str::to_owned),
                _ => None,
            })
            .collect();
        let expected: Vec<String> = good.iter().map(|(k, _)| k.clone()).collect();
        prop_assert_eq!(keys, expected);
    }

    /// A CSV row with invalid UTF-8, or one that maps to no timestamp, is
    /// rejected alone; the rows around it become events.
    #[test]
    fn a_bad_csv_row_is_rejected_alone(
        good in vec(("[a-z0-9]{1,6}", 1u32..1_000_000), 1..20),
        bad in prop_oneof![
            Just(b"r-bad,\xff\xfe".to_vec()),
            Just(b"r-bad,".to_vec()),
        ],
        at in any::<usize>(),
        chunk_sizes in vec(1usize..64, 1..8),
    ) {
        let at = at % (good.len() + 1);
        let mut lines: Vec<Vec<u8>> = good
            .iter()
            .map(|(id, t)| format!("{id},{t}").into_bytes())
            .collect();
        lines.insert(at, bad);
        let mut data = b"id,time\n".to_vec();
        data.extend(lines.join(&b"\n"[..]));
        let layout = Layout {
            format: DataFormat::Csv,
            csv: CsvOptions::default(),
            encoding: Encoding::Utf8,
        };
        let (rows, preamble) = feed(&layout, &data, &chunk_sizes);
        prop_assert_eq!(rows.len(), good.len() + 1);
        let source = Source {
            default_event_name: "purchase".to_owned(),
            field_mappings: vec![FieldMapping {
                source_field: "time".to_owned(),
                target_field: "original_timestamp".to_owned(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let header = preamble.header.unwrap_or_default();
        for (i, row) in rows.iter().enumerate() {
            let event = row.values.as_ref().map_err(|v| vec![v.clone()]).and_then(|values| {
                row_event("src", &source, "imp", 1, &Row::new(values, &header, &[]))
            });
            prop_assert_eq!(event.is_err(), i == at, "row {}: {:?}", i, event);
        }
    }

    /// A file in any declared encoding is cut into the rows of its text,
    /// however its bytes arrive: the same cells as the UTF-8 file, and each
    /// row's offset is where its bytes start in the encoded file.
    #[test]
    fn an_encoded_file_is_cut_like_its_text(
        (delimiter, text) in proptest::sample::select(vec![',', '|', ';', '\t'])
            .prop_flat_map(|d| (Just(d), chinese_csv(d))),
        encoding in proptest::sample::select(Encoding::ALL.to_vec()),
        bom in any::<bool>(),
        chunk_sizes in vec(1usize..64, 1..8),
    ) {
        let csv = CsvOptions { delimiter: delimiter.to_string(), ..Default::default() };
        let utf8 = Layout { format: DataFormat::Csv, csv: csv.clone(), encoding: Encoding::Utf8 };
        let (expected, expected_preamble) = feed(&utf8, text.as_bytes(), &[text.len().max(1)]);
        let data = encode(&text, encoding, bom);
        let layout = Layout { format: DataFormat::Csv, csv, encoding };
        let (rows, preamble) = feed(&layout, &data, &chunk_sizes);
        prop_assert_eq!(&preamble.header, &expected_preamble.header);
        prop_assert_eq!(rows.len(), expected.len());
        for (i, (row, want)) in rows.iter().zip(&expected).enumerate() {
            prop_assert_eq!(&row.values, &want.values, "row {}", i);
            prop_assert_eq!(&row.raw, &want.raw, "row {}", i);
            // The row's bytes, up to the next row, are its text encoded.
            let to = rows.get(i + 1).map_or(data.len(), |next| to_usize(next.offset));
            let want_to = expected.get(i + 1).map_or(text.len(), |next| to_usize(next.offset));
            let bytes = data.get(to_usize(row.offset)..to).unwrap_or_default();
            prop_assert_eq!(
                decode_exactly(bytes, encoding),
                text.get(to_usize(want.offset)..want_to).map(str::to_owned),
                "row {}", i
            );
        }
    }
}
