//! Reading a CSV file in the character encoding its import declares.
//!
//! A UTF-8 file is cut as it is. A file in any other encoding is decoded
//! to UTF-8 first and cut as text, and every offset the cutter reports is
//! mapped back to the file's own bytes: offsets are what a client uses to
//! find a row in its file, and the committed offset is where a broken
//! upload resumes.
//!
//! Why not cut the raw bytes and decode each cell: in UTF-16 every
//! character is two bytes, so the byte of a delimiter or a line break is
//! routinely half of another character (U+2C0A is `0A 2C` in UTF-16LE). In
//! GBK and GB18030 the second byte of a two-byte character can be anything
//! in 0x40–0x7E and the second and fourth bytes of a four-byte character
//! are digits (0x30–0x39); comma, `"`, tab, CR and LF are never among them,
//! but a delimiter or quote a source may choose (`|`, `@`, `\`, a letter or
//! a digit) can be, so cutting raw bytes would be right only for some
//! settings. Decoded text makes the delimiter a character, whatever it is.
//!
//! The mapping rests on one rule: a line break is always a whole character
//! that decodes to itself. In GBK and GB18030 the bytes 0x0A and 0x0D are
//! never part of a multi-byte character (a lead byte followed by one is
//! malformed, and the decoder reads the break again on its own); in UTF-16
//! the code units 0x000A and 0x000D are never part of a surrogate pair. So
//! the bytes are decoded one line at a time, the decoder holds nothing back
//! at the end of a line, and the end of each line is recorded both in the
//! text and in the file. Every offset the cutter reports is the start of
//! the bytes, the end of a line or the end of the file, so each maps back
//! exactly; a committed offset is always at a character boundary, and a
//! resumed upload decodes afresh from there.
//!
//! A malformed sequence is replaced by U+FFFD only so that cutting goes on;
//! its place is recorded, and the row holding it is rejected as
//! `INVALID_ENCODING` rather than stored.

use encoding_rs::DecoderResult;
use touchline_error::FieldViolation;

/// A character encoding a CSV file may declare; source validation and
/// imports both accept exactly [`Encoding::ALL`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8; a byte-order mark at the start is skipped.
    #[default]
    Utf8,
    /// GBK (code page 936), as Chinese Excel, ERP and POS exports write it.
    Gbk,
    /// GB18030, a superset of GBK.
    Gb18030,
    /// UTF-16, little-endian; a byte-order mark at the start is skipped.
    Utf16Le,
    /// UTF-16, big-endian; a byte-order mark at the start is skipped.
    Utf16Be,
}

impl Encoding {
    /// Every encoding a CSV file may declare.
    pub const ALL: [Self; 5] = [
        Self::Utf8,
        Self::Gbk,
        Self::Gb18030,
        Self::Utf16Le,
        Self::Utf16Be,
    ];

    /// The encoding a name declares, ignoring case; empty means UTF-8.
    /// `None` for a name that is not one of the declared encodings.
    pub fn from_name(name: &str) -> Option<Self> {
        if name.is_empty() {
            return Some(Self::Utf8);
        }
        Self::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(name))
    }

    /// The declared names, for error messages: `UTF-8, GBK, …`.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// The name as the contract spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::Gbk => "GBK",
            Self::Gb18030 => "GB18030",
            Self::Utf16Le => "UTF-16LE",
            Self::Utf16Be => "UTF-16BE",
        }
    }

    /// The byte-order mark skipped at the start of a file (none for GBK and
    /// GB18030, which have none of their own).
    pub fn bom(self) -> &'static [u8] {
        match self {
            Self::Utf8 => b"\xEF\xBB\xBF",
            Self::Gbk | Self::Gb18030 => b"",
            Self::Utf16Le => b"\xFF\xFE",
            Self::Utf16Be => b"\xFE\xFF",
        }
    }

    /// The decoder to use, or `None` when the bytes are read as they are.
    /// GBK's decoder is GB18030's (the Encoding Standard defines GBK
    /// decoding as GB18030 decoding), so both names read both kinds of file.
    fn decoder(self) -> Option<&'static encoding_rs::Encoding> {
        match self {
            Self::Utf8 => None,
            Self::Gbk => Some(encoding_rs::GBK),
            Self::Gb18030 => Some(encoding_rs::GB18030),
            Self::Utf16Le => Some(encoding_rs::UTF_16LE),
            Self::Utf16Be => Some(encoding_rs::UTF_16BE),
        }
    }

    /// Bytes of one code unit.
    fn unit(self) -> usize {
        match self {
            Self::Utf16Le | Self::Utf16Be => 2,
            Self::Utf8 | Self::Gbk | Self::Gb18030 => 1,
        }
    }

    /// Whether the code unit `unit` is CR or LF.
    fn is_line_break(self, unit: &[u8]) -> bool {
        matches!(
            (self, unit),
            (Self::Utf16Le, [b'\n' | b'\r', 0])
                | (Self::Utf16Be, [0, b'\n' | b'\r'])
                | (Self::Utf8 | Self::Gbk | Self::Gb18030, [b'\n' | b'\r'])
        )
    }
}

/// The bytes the CSV cutter reads, and the way from their offsets back to
/// the file's.
#[derive(Debug)]
pub(super) enum Input<'a> {
    /// UTF-8 bytes read as they are; offsets are the file's.
    Raw(&'a [u8]),
    /// Text decoded from another encoding.
    Decoded(Decoded),
}

impl<'a> Input<'a> {
    /// The input for `bytes` in `encoding`; `bytes` start at a character
    /// boundary and `last` says they end the file.
    pub fn new(encoding: Encoding, bytes: &'a [u8], last: bool) -> Self {
        match encoding.decoder() {
            None => Input::Raw(bytes),
            Some(decoder) => Input::Decoded(Decoded::new(encoding, decoder, bytes, last)),
        }
    }

    /// The UTF-8 bytes to cut (for [`Input::Raw`], not yet checked).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Input::Raw(bytes) => bytes,
            Input::Decoded(decoded) => decoded.text.as_bytes(),
        }
    }

    /// The offset in the original bytes of offset `at` of [`Input::bytes`];
    /// `None` when `at` is neither the start, the end of a line nor the end
    /// of the file, which the cutter never asks for.
    pub fn offset(&self, at: usize) -> Option<usize> {
        match self {
            Input::Raw(_) => Some(at),
            Input::Decoded(decoded) => decoded.offset(at),
        }
    }

    /// Why the bytes `from..to` of [`Input::bytes`] cannot be stored, when
    /// the file's bytes there did not decode. (Invalid UTF-8 in raw input
    /// is found when its cells are read.)
    pub fn violation(&self, from: usize, to: usize) -> Option<FieldViolation> {
        match self {
            Input::Raw(_) => None,
            Input::Decoded(decoded) if decoded.is_clean(from, to) => None,
            Input::Decoded(decoded) => Some(FieldViolation::new(
                "row",
                "INVALID_ENCODING",
                format!("not valid {}", decoded.encoding.name()),
            )),
        }
    }
}

/// Text decoded from part of a file, with the ends of its lines in both.
#[derive(Debug)]
pub(super) struct Decoded {
    encoding: Encoding,
    /// The decoded text; U+FFFD where a sequence did not decode.
    text: String,
    /// `(text offset, byte offset)` of the start, of the end of every line
    /// and of the end of the file when it was reached, ascending.
    marks: Vec<(usize, usize)>,
    /// Text offsets of the U+FFFD put in for malformed sequences, ascending.
    bad: Vec<usize>,
}

impl Decoded {
    fn new(
        encoding: Encoding,
        decoder: &'static encoding_rs::Encoding,
        bytes: &[u8],
        last: bool,
    ) -> Self {
        // Byte-order marks are dealt with by the caller, at the start of the
        // file only: here the bytes may start anywhere after it.
        let mut decoder = decoder.new_decoder_without_bom_handling();
        let mut out = Decoded {
            encoding,
            text: String::with_capacity(bytes.len() + bytes.len() / 2),
            marks: vec![(0, 0)],
            bad: Vec::new(),
        };
        let unit = encoding.unit();
        let mut line_start = 0;
        let mut at = 0;
        while at + unit <= bytes.len() {
            at += unit;
            if encoding.is_line_break(&bytes[at - unit..at]) {
                out.decode(&mut decoder, &bytes[line_start..at], false);
                out.marks.push((out.text.len(), at));
                line_start = at;
            }
        }
        // The rest is an unfinished line: a character cut off at its end
        // stays inside the decoder unless the file ends here.
        out.decode(&mut decoder, &bytes[line_start..], last);
        if last && out.marks.last() != Some(&(out.text.len(), bytes.len())) {
            out.marks.push((out.text.len(), bytes.len()));
        }
        out
    }

    /// Decodes `bytes` onto the text, marking malformed sequences.
    fn decode(&mut self, decoder: &mut encoding_rs::Decoder, mut bytes: &[u8], last: bool) {
        loop {
            let room = decoder
                .max_utf8_buffer_length_without_replacement(bytes.len())
                .unwrap_or(bytes.len().saturating_mul(3));
            self.text.reserve(room.max(4));
            let (result, read) =
                decoder.decode_to_string_without_replacement(bytes, &mut self.text, last);
            bytes = &bytes[read..];
            match result {
                // A decoder may still hold a character after reporting a
                // malformed one, so it is called until it has given all.
                DecoderResult::InputEmpty => return,
                DecoderResult::OutputFull => {}
                DecoderResult::Malformed(_, _) => {
                    self.bad.push(self.text.len());
                    self.text.push(char::REPLACEMENT_CHARACTER);
                }
            }
        }
    }

    fn offset(&self, at: usize) -> Option<usize> {
        self.marks
            .binary_search_by_key(&at, |(text, _)| *text)
            .ok()
            .and_then(|i| self.marks.get(i))
            .map(|(_, bytes)| *bytes)
    }

    fn is_clean(&self, from: usize, to: usize) -> bool {
        let first = self.bad.partition_point(|&b| b < from);
        self.bad.get(first).is_none_or(|&b| b >= to)
    }
}

#[cfg(test)]
mod tests {
    use touchline_proto::collection::v1::{CsvOptions, DataFormat};

    use super::*;
    use crate::domain::import::{Layout, Preamble, RawRow, RowValues, cut_rows};

    fn layout(encoding: Encoding, delimiter: &str) -> Layout {
        Layout {
            format: DataFormat::Csv,
            csv: CsvOptions {
                delimiter: delimiter.to_owned(),
                ..Default::default()
            },
            encoding,
        }
    }

    /// Feeds `data` in chunks of `chunk` bytes the way an upload session
    /// does, starting again from a fresh reader (a resumed upload) after
    /// every cut; returns the header and the rows.
    fn read(layout: &Layout, data: &[u8], chunk: usize) -> (Vec<String>, Vec<RawRow>) {
        let mut header = None;
        let mut rows = Vec::new();
        let mut buffer = Vec::new();
        let mut base = 0;
        for piece in data.chunks(chunk.max(1)) {
            buffer.extend_from_slice(piece);
            let last = base + buffer.len() == data.len();
            let mut preamble = Preamble {
                skip_lines: 0,
                header: header.clone(),
            };
            let cut = cut_rows(layout, &mut preamble, &buffer, base as u64, last);
            header = preamble.header;
            rows.extend(cut.rows);
            buffer.drain(..cut.consumed);
            base += cut.consumed;
        }
        assert!(buffer.is_empty(), "the whole file is read");
        (header.unwrap_or_default(), rows)
    }

    fn cells(row: &RawRow) -> Vec<String> {
        match &row.values {
            Ok(RowValues::Csv(cells)) => cells.clone(),
            other => panic!("not CSV cells: {other:?}"),
        }
    }

    /// A CJK character whose second GBK byte is `byte`.
    fn gbk_char_ending_in(byte: u8) -> String {
        ('\u{4E00}'..='\u{9FA5}')
            .map(String::from)
            .find(|c| encoding_rs::GBK.encode(c).0.get(1) == Some(&byte))
            .unwrap_or_default()
    }

    fn gbk(text: &str) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
        assert!(!unmappable, "{text:?} is not all GBK");
        bytes.into_owned()
    }

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        text.encode_utf16()
            .flat_map(|u| {
                if big_endian {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                }
            })
            .collect()
    }

    #[test]
    fn every_declared_name_is_an_encoding() {
        for encoding in Encoding::ALL {
            let name = encoding.name();
            assert_eq!(Encoding::from_name(name), Some(encoding), "{name}");
            assert_eq!(Encoding::from_name(&name.to_lowercase()), Some(encoding));
        }
        assert_eq!(Encoding::from_name(""), Some(Encoding::Utf8));
        assert_eq!(Encoding::from_name("latin1"), None);
    }

    #[test]
    fn line_ends_map_to_the_file() {
        // 张三 is four bytes in GBK, six in UTF-8.
        let bytes = gbk("张三,1\r\n李四,2\n");
        let Input::Decoded(decoded) = Input::new(Encoding::Gbk, &bytes, true) else {
            panic!("GBK is decoded");
        };
        assert_eq!(decoded.text, "张三,1\r\n李四,2\n");
        let crlf = "张三,1\r\n".len();
        assert_eq!(decoded.offset(0), Some(0));
        assert_eq!(decoded.offset(crlf - 1), Some(7), "after the CR");
        assert_eq!(decoded.offset(crlf), Some(8));
        assert_eq!(decoded.offset(decoded.text.len()), Some(bytes.len()));
        assert_eq!(decoded.offset(1), None, "inside a line");
    }

    #[test]
    fn gb18030_four_byte_characters_decode_under_both_names() {
        // U+20AD is four bytes in GB18030 with digits as its second and fourth.
        let (bytes, _, unmappable) = encoding_rs::GB18030.encode("a,\u{20AD}😀\n");
        assert!(!unmappable);
        assert!(bytes.iter().any(u8::is_ascii_digit));
        for encoding in [Encoding::Gbk, Encoding::Gb18030] {
            let input = Input::new(encoding, &bytes, true);
            assert_eq!(input.bytes(), "a,\u{20AD}😀\n".as_bytes(), "{encoding:?}");
            assert!(input.violation(0, input.bytes().len()).is_none());
        }
    }

    #[test]
    fn an_unfinished_character_waits_for_the_rest() {
        let bytes = gbk("王五\n赵六");
        for cut in 0..=bytes.len() {
            let input = Input::new(Encoding::Gbk, &bytes[..cut], false);
            let text = std::str::from_utf8(input.bytes()).map_err(|e| e.to_string());
            assert!(text.is_ok_and(|t| "王五\n赵六".starts_with(t)), "at {cut}");
            assert!(
                input.violation(0, input.bytes().len()).is_none(),
                "at {cut}"
            );
        }
        // Cut at the end of the file, the half character is malformed.
        let input = Input::new(Encoding::Gbk, &bytes[..bytes.len() - 1], true);
        assert!(input.violation(0, input.bytes().len()).is_some());
    }

    #[test]
    fn malformed_sequences_are_placed_in_their_line() {
        // A lead byte before a line break, an invalid lead, a lone surrogate.
        let bytes = b"ok\n\x81\nfine\n\xFFx\nend".to_vec();
        let input = Input::new(Encoding::Gb18030, &bytes, true);
        let text = String::from_utf8_lossy(input.bytes()).into_owned();
        let lines: Vec<(usize, &str)> = text
            .split_inclusive('\n')
            .scan(0, |at, line| {
                let start = *at;
                *at += line.len();
                Some((start, line))
            })
            .collect();
        let bad: Vec<bool> = lines
            .iter()
            .map(|(start, line)| input.violation(*start, start + line.len()).is_some())
            .collect();
        assert_eq!(bad, [false, true, false, true, false]);
        assert_eq!(
            input.violation(3, 7).map(|v| v.description),
            Some("not valid GB18030".to_owned())
        );

        let mut units = utf16("a\n", false);
        units.extend([0x00, 0xD8]); // a high surrogate with no low one
        units.extend(utf16("\nb", false));
        let input = Input::new(Encoding::Utf16Le, &units, true);
        assert_eq!(input.bytes(), "a\n\u{FFFD}\nb".as_bytes());
        assert!(input.violation(0, 2).is_none());
        assert!(input.violation(2, 6).is_some());
        assert_eq!(input.offset(6), Some(8), "the break after the surrogate");
        assert!(input.violation(6, 7).is_none());
    }

    #[test]
    fn utf16_line_breaks_are_whole_units() {
        // U+0A0D and U+0D0A look like line breaks byte by byte.
        for big_endian in [false, true] {
            let encoding = if big_endian {
                Encoding::Utf16Be
            } else {
                Encoding::Utf16Le
            };
            let text = "\u{0A0D},\u{0D0A}\n名,x\n";
            let bytes = utf16(text, big_endian);
            let Input::Decoded(decoded) = Input::new(encoding, &bytes, true) else {
                panic!("UTF-16 is decoded");
            };
            assert_eq!(decoded.text, text);
            let first = "\u{0A0D},\u{0D0A}\n".len();
            assert_eq!(decoded.marks, vec![(0, 0), (first, 8), (text.len(), 16)]);
        }
    }

    #[test]
    fn a_gbk_export_reads_as_its_chinese_text_however_it_is_chunked() {
        let text = "姓名,城市,备注\r\n张三,北京,\"买了\"\"羽绒服\"\",会员价\"\r\n李四,上海,\"两行\n备注\"\r\n";
        let data = gbk(text);
        let second = gbk("姓名,城市,备注\r\n张三,北京,\"买了\"\"羽绒服\"\",会员价\"\r\n").len();
        for chunk in 1..=data.len() {
            let (header, rows) = read(&layout(Encoding::Gbk, ""), &data, chunk);
            assert_eq!(header, ["姓名", "城市", "备注"], "chunks of {chunk}");
            assert_eq!(rows.len(), 2, "chunks of {chunk}");
            assert_eq!(cells(&rows[0]), ["张三", "北京", "买了\"羽绒服\",会员价"]);
            assert_eq!(cells(&rows[1]), ["李四", "上海", "两行\n备注"]);
            // Offsets are the GBK file's: each is where the row's bytes start.
            assert_eq!(rows[0].offset, gbk("姓名,城市,备注\r\n").len() as u64);
            assert_eq!(rows[1].offset, second as u64);
            assert_eq!(rows[1].raw, "李四,上海,\"两行\n备注\"");
        }
    }

    #[test]
    fn a_delimiter_byte_inside_a_gbk_character_does_not_split_it() {
        // Characters whose second byte is `|` or `\`, in a `|`-separated file.
        let pipe = gbk_char_ending_in(b'|');
        let backslash = gbk_char_ending_in(b'\\');
        assert!(!pipe.is_empty() && !backslash.is_empty());
        let text = format!("名|注\n{pipe}{backslash}|{pipe}\n");
        let data = gbk(&text);
        assert!(data.contains(&b'|'));
        let (_, rows) = read(&layout(Encoding::Gb18030, "|"), &data, 3);
        assert_eq!(rows.len(), 1);
        assert_eq!(cells(&rows[0]), [format!("{pipe}{backslash}"), pipe]);
    }

    #[test]
    fn utf16_files_read_with_and_without_a_byte_order_mark() {
        let text = "名字,城市\r\n王五,\"广州,天河\"\r\n赵六😀,深圳";
        let mut le = vec![0xFF, 0xFE];
        le.extend(utf16(text, false));
        let be = utf16(text, true);
        for (encoding, data, start) in [(Encoding::Utf16Le, le, 2), (Encoding::Utf16Be, be, 0)] {
            for chunk in [1, 2, 3, 5, 7, data.len()] {
                let (header, rows) = read(&layout(encoding, ""), &data, chunk);
                assert_eq!(
                    header,
                    ["名字", "城市"],
                    "{encoding:?} in chunks of {chunk}"
                );
                assert_eq!(cells(&rows[0]), ["王五", "广州,天河"]);
                assert_eq!(cells(&rows[1]), ["赵六😀", "深圳"]);
                let first = start + 2 * "名字,城市\r\n".encode_utf16().count();
                assert_eq!(rows[0].offset, first as u64);
                let second = first + 2 * "王五,\"广州,天河\"\r\n".encode_utf16().count();
                assert_eq!(rows[1].offset, second as u64);
            }
        }
    }

    #[test]
    fn a_row_that_does_not_decode_is_rejected_alone() {
        let mut data = gbk("单号,姓名\n1,张三\n2,");
        let bad = data.len() - 2;
        data.extend([0x81, b',', 0xFF]);
        data.extend(gbk("\n3,李四\n"));
        for chunk in 1..=data.len() {
            let (_, rows) = read(&layout(Encoding::Gbk, ""), &data, chunk);
            assert_eq!(rows.len(), 3);
            assert_eq!(cells(&rows[0]), ["1", "张三"]);
            assert_eq!(cells(&rows[2]), ["3", "李四"]);
            let violation = rows[1].values.as_ref().err();
            assert_eq!(violation.map(|v| v.reason), Some("INVALID_ENCODING"));
            assert_eq!(rows[1].offset, bad as u64);
            assert_eq!(rows[1].raw, "2,\u{FFFD},\u{FFFD}");
        }
    }
}
