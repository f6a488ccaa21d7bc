//! The paths-text parser against a deliberately naive reference written from the rules alone
//! (split every line, trim every field, `str::parse` every number, linear channel lookup), on
//! random texts full of what real files get wrong: malformed rows, CRLF, blank and
//! whitespace-only lines, headers in every place, unicode and unicode-space-edged channel
//! names, long names that agree on their first and last bytes, numbers signed, huge,
//! non-finite, in exponent form or with more digits than a double holds. Tables are compared
//! bit for bit, errors violation by violation, on one thread and cut in many small parts.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::paths_scan::NameKey;
use super::paths_text::parse_in_parts;
use super::{MAX_REPORTED_VIOLATIONS, PathTable, PathsField, parse_paths_text_parallel};

/// What a parse gives, in plain values: channel names and `(codes, conversions, value,
/// nulls)` rows with the numbers as bits, or the violations `(line, field, reason)` and total.
type Outcome = Result<(Vec<String>, Vec<Row>), (Vec<(usize, PathsField, String)>, usize)>;
type Row = (Vec<u32>, [u64; 3]);

fn outcome_of(parsed: Result<PathTable, super::PathsTextError>) -> Outcome {
    match parsed {
        Ok(table) => {
            let rows = table
                .rows()
                .map(|r| {
                    let bits = [r.conversions, r.value, r.nulls].map(f64::to_bits);
                    (r.channels.to_vec(), bits)
                })
                .collect();
            Ok((table.channel_names().to_vec(), rows))
        }
        Err(error) => {
            let violations = error
                .violations
                .into_iter()
                .map(|v| (v.line, v.field, v.reason))
                .collect();
            Err((violations, error.total))
        }
    }
}

/// The rules of the layout, read as plainly as possible.
fn reference(text: &str, separator: &str) -> Outcome {
    let separator = if separator.trim().is_empty() {
        ">"
    } else {
        separator.trim()
    };
    if separator.contains(';') {
        let reason = "must not contain ';'".to_owned();
        return Err((vec![(0, PathsField::Separator, reason)], 1));
    }
    let mut reading = Reference::default();
    let mut seen_content = false;
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        let columns: Vec<&str> = line.split(';').collect();
        let header = ["path", "conversions", "value", "nulls"];
        let is_header = columns.len() == 4
            && columns
                .iter()
                .zip(header)
                .all(|(c, h)| c.trim().to_ascii_lowercase() == h);
        if !seen_content && is_header {
            seen_content = true;
            continue;
        }
        seen_content = true;
        reading.row(index + 1, &columns, separator);
    }
    reading.finish()
}

/// The reference's state: channel names by linear search, rows by their code sequence.
#[derive(Default)]
struct Reference {
    problems: Vec<(usize, PathsField, String)>,
    names: Vec<String>,
    rows: Vec<(Vec<u32>, [f64; 3])>,
    row_of: HashMap<Vec<u32>, usize>,
}

impl Reference {
    fn row(&mut self, number: usize, columns: &[&str], separator: &str) {
        if columns.len() != 4 {
            let reason = format!(
                "expected 4 columns separated by ';', found {}",
                columns.len()
            );
            self.problems.push((number, PathsField::Row, reason));
            return;
        }
        let path: Vec<&str> = columns[0].split(separator).map(str::trim).collect();
        let empty = path.iter().position(|name| name.is_empty());
        if let Some(position) = empty {
            let reason = format!("empty channel name at position {}", position + 1);
            self.problems.push((number, PathsField::Path, reason));
        }
        let fields = [
            PathsField::Conversions,
            PathsField::Value,
            PathsField::Nulls,
        ];
        let mut numbers = [0.0; 3];
        let mut numbers_ok = true;
        for (k, field) in fields.into_iter().enumerate() {
            let written = columns[k + 1].trim();
            match written.parse::<f64>() {
                Ok(n) if n.is_finite() && n >= 0.0 => numbers[k] = n,
                Ok(_) => {
                    numbers_ok = false;
                    let reason = "must be a finite non-negative number".to_owned();
                    self.problems.push((number, field, reason));
                }
                Err(_) => {
                    numbers_ok = false;
                    let shown: String = written.chars().take(40).collect();
                    let reason = format!("not a number: {shown:?}");
                    self.problems.push((number, field, reason));
                }
            }
        }
        if empty.is_some() || !numbers_ok {
            return;
        }
        if numbers[1] > 0.0 && numbers[0] == 0.0 {
            let reason = "a value without any conversion".to_owned();
            self.problems.push((number, PathsField::Value, reason));
            return;
        }
        let codes: Vec<u32> = path.iter().map(|name| self.code(name)).collect();
        self.add(codes, numbers);
    }

    fn code(&mut self, name: &str) -> u32 {
        match self.names.iter().position(|n| n == name) {
            Some(code) => code as u32,
            None => {
                self.names.push(name.to_owned());
                self.names.len() as u32 - 1
            }
        }
    }

    fn add(&mut self, codes: Vec<u32>, numbers: [f64; 3]) {
        match self.row_of.get(&codes) {
            Some(&row) => {
                for (sum, n) in self.rows[row].1.iter_mut().zip(numbers) {
                    *sum += n;
                }
            }
            None => {
                self.row_of.insert(codes.clone(), self.rows.len());
                self.rows.push((codes, numbers));
            }
        }
    }

    fn finish(mut self) -> Outcome {
        if !self.problems.is_empty() {
            let total = self.problems.len();
            self.problems.truncate(MAX_REPORTED_VIOLATIONS);
            return Err((self.problems, total));
        }
        let rows = self
            .rows
            .into_iter()
            .map(|(codes, numbers)| (codes, numbers.map(f64::to_bits)))
            .collect();
        Ok((self.names, rows))
    }
}

/// Channel names, including ones the quick reader must not take for each other: longer than
/// 16 bytes and equal on their first and last eight, unicode, unicode-space edged.
const NAMES: [&str; 16] = [
    "a",
    "b",
    "email",
    "paid_search",
    "organic_search",
    "social_paid_campaign",
    "social_pXXX_campaign",
    "abcdefgh12345678",
    "abcdefgh12345679",
    "café",
    "频道",
    "\u{a0}tv\u{a0}",
    "\u{2003}radio",
    "\u{b}sms",
    "push\u{85}",
    "a b",
];

/// Numbers as files write them, good and bad.
const NUMBERS: [&str; 34] = [
    "0",
    "1",
    "12",
    "3400.5",
    "0.1",
    " 7 ",
    "\t3",
    "1e3",
    "+5",
    "-1",
    "-0",
    "NaN",
    "inf",
    "infinity",
    "1.",
    ".5",
    "00.50",
    "1e400",
    "123456789012345678901234567890",
    "9007199254740993",
    "9007199254740992",
    "0.30000000000000004",
    "1.7976931348623157e308",
    "x",
    "",
    " ",
    "1 2",
    "１",
    "12345678901234567890.5",
    "1234567890123456789",
    "0.0000000000000000000001",
    "0.00000000000000000000001",
    "5\u{b}",
    "\u{a0}4",
];

/// A plain decimal of up to 22 digits, the point anywhere (or nowhere): past 19 digits or
/// 2^53 the quick reader hands it to the careful one, below it converts it itself.
fn decimal() -> impl Strategy<Value = String> {
    (1usize..23, any::<u64>(), 0usize..23).prop_map(|(digits, seed, dot)| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut text: String = (0..digits)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        if dot > 0 && dot < digits {
            text.insert(dot, '.');
        }
        text
    })
}

/// One number: from the list above, a random decimal, or a random double printed either way.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&NUMBERS[..]).prop_map(str::to_owned),
        4 => decimal(),
        1 => any::<f64>().prop_map(|x| format!("{}", x.abs())),
        1 => any::<f64>().prop_map(|x| format!("{x:e}")),
        2 => (0u32..100).prop_map(|n| n.to_string()),
    ]
}

/// A number the rules accept, in any of the ways it may be written.
fn valid_number() -> impl Strategy<Value = String> {
    number().prop_filter("accepted", |text| {
        text.trim()
            .parse::<f64>()
            .is_ok_and(|n| n.is_finite() && n >= 0.0)
    })
}

/// Blank padding around a name: nothing usually, else spaces, tabs, a carriage return.
fn padding() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["", "", "", " ", " ", "  ", "\t", " \t ", "\r", "         "][..])
}

/// A path with `\u{1}` standing for the separator (filled in when the text is rendered);
/// `empty_parts` of 21 parts are blank, which makes the row an error.
fn path(empty_parts: u32) -> impl Strategy<Value = String> {
    let name = (padding(), prop::sample::select(&NAMES[..]), padding())
        .prop_map(|(before, name, after)| format!("{before}{name}{after}"));
    let part = prop_oneof![
        21 - empty_parts => name,
        empty_parts => padding().prop_map(str::to_owned),
    ];
    prop::collection::vec(part, 1..7).prop_map(|parts| parts.join("\u{1}"))
}

/// A row the rules accept (with a separator that does not cut the names), written plainly or
/// not; a value only where there are conversions.
fn good_row() -> impl Strategy<Value = String> {
    let plain = (0u32..40, 0u32..9000, 0u32..100).prop_map(|(c, v, cents)| {
        let value = if c > 0 {
            format!("{v}.{cents:02}")
        } else {
            "0".to_owned()
        };
        [c.to_string(), value]
    });
    let any_way = (valid_number(), valid_number()).prop_map(|(c, v)| {
        let value = if c.trim().parse::<f64>().is_ok_and(|c| c > 0.0) {
            v
        } else {
            "0".to_owned()
        };
        [c, value]
    });
    let numbers = prop_oneof![3 => plain, 1 => any_way];
    (
        path(0),
        numbers,
        prop_oneof![3 => (0u32..40).prop_map(|n| n.to_string()), 1 => valid_number()],
    )
        .prop_map(|(path, [c, v], n)| format!("{path};{c};{v};{n}"))
}

fn blank_line() -> impl Strategy<Value = String> {
    prop::sample::select(&["", " ", "\t", "\u{a0}", "\r", "\u{3000}"][..]).prop_map(str::to_owned)
}

fn header() -> impl Strategy<Value = String> {
    prop::sample::select(
        &[
            "path;conversions;value;nulls",
            " PATH ; Conversions;VALUE ;nulls\r",
            "path;conversions;value;nulls;extra",
            "path;conversions;value",
        ][..],
    )
    .prop_map(str::to_owned)
}

/// Any line: mostly rows, good and bad, with blank lines, headers and garbage.
fn line() -> impl Strategy<Value = String> {
    let row = (path(1), number(), number(), number())
        .prop_map(|(path, c, v, n)| format!("{path};{c};{v};{n}"));
    prop_oneof![
        12 => good_row(),
        4 => row,
        1 => blank_line(),
        1 => header(),
        1 => (path(1), number()).prop_map(|(p, c)| format!("{p};{c};1")),
        1 => (path(1), number()).prop_map(|(p, c)| format!("{p};{c};1;2;3")),
        1 => "\\PC{0,14}",
    ]
}

/// A text that should parse: an optional header, then good rows and blank lines.
fn clean_lines() -> impl Strategy<Value = Vec<String>> {
    let body = prop::collection::vec(prop_oneof![8 => good_row(), 1 => blank_line()], 0..40);
    (
        prop::option::of(header()),
        prop::collection::vec(blank_line(), 0..2),
        body,
    )
        .prop_map(|(header, blanks, body)| blanks.into_iter().chain(header).chain(body).collect())
}

/// The separator parameter, and how the paths join their names (the trimmed separator, or
/// the raw one with its spaces, which then trim off the names).
fn separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(
        &[
            ">", ">", " > ", "", "->", "→", ",", "|", "a", "1", ";", ">;",
        ][..],
    )
}

/// A separator that cuts no channel name of [`NAMES`].
fn clean_separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&[">", ">", " > ", "", "->", "→", ",", "|"][..])
}

/// Half the cases clean texts (their tables get compared), half anything.
fn case() -> impl Strategy<Value = (Vec<String>, &'static str)> {
    prop_oneof![
        (clean_lines(), clean_separator()),
        (prop::collection::vec(line(), 0..40), separator()),
    ]
}

fn render(lines: &[String], separator: &str, crlf: bool, final_newline: bool) -> String {
    let joiner = match separator.trim() {
        "" => ">",
        trimmed => trimmed,
    };
    let ending = if crlf { "\r\n" } else { "\n" };
    let mut text = lines
        .iter()
        .map(|line| line.replace('\u{1}', joiner))
        .collect::<Vec<_>>()
        .join(ending);
    if final_newline {
        text.push_str(ending);
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn parser_matches_naive_reference(
        (lines, separator) in case(),
        crlf in any::<bool>(),
        final_newline in any::<bool>(),
        threads in 1usize..5,
        part_bytes in 1usize..120,
    ) {
        let text = render(&lines, separator, crlf, final_newline);
        let want = reference(&text, separator);
        prop_assert_eq!(&outcome_of(parse_paths_text_parallel(&text, separator, 1)), &want, "{:?}", text);
        // Parts of a few bytes cut the text every line or few: every way of splitting rows,
        // headers and blank lines across parts, read on one thread or several.
        let cut = parse_in_parts(&text, separator, threads, part_bytes);
        prop_assert_eq!(&outcome_of(cut), &want, "{:?} in parts of {} bytes", text, part_bytes);
    }

    #[test]
    fn name_keys_read_in_place_equal_keys_of_the_name_alone(
        text in "[a-zé ]{0,40}",
        cut in any::<(prop::sample::Index, prop::sample::Index)>(),
    ) {
        let bytes = text.as_bytes();
        let (a, b) = (cut.0.index(bytes.len() + 1), cut.1.index(bytes.len() + 1));
        let (start, end) = (a.min(b), a.max(b));
        prop_assert_eq!(NameKey::within(bytes, start, end), NameKey::of(&bytes[start..end]));
    }
}

/// Large texts (thousands of rows, many repeated paths) on several threads, so parts are big
/// and cut inside runs of rows, and a violation may sit in any part.
#[test]
fn large_texts_match_the_reference_on_many_threads() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    // Half the cases good rows only, so the tables themselves are compared; few distinct
    // channels make paths repeat, so sums build up across parts.
    let good = prop::collection::vec(prop_oneof![20 => good_row(), 1 => blank_line()], 3000..4000);
    let any = prop::collection::vec(prop_oneof![200 => good_row(), 1 => line()], 3000..4000);
    for case in 0..12 {
        let lines = if case % 2 == 0 {
            good.new_tree(&mut runner).unwrap().current()
        } else {
            any.new_tree(&mut runner).unwrap().current()
        };
        let text = render(&lines, ">", case % 3 == 0, true);
        let want = reference(&text, ">");
        if case % 2 == 0 {
            assert!(want.is_ok(), "case {case}");
        }
        for threads in [1, 2, 3, 8] {
            let got = outcome_of(parse_paths_text_parallel(&text, ">", threads));
            assert!(got == want, "case {case}, {threads} threads");
            // Parts of 200 to 20,000 bytes: a few rows to a few hundred each.
            let part_bytes = 200 * 10usize.pow(case % 3);
            let got = outcome_of(parse_in_parts(&text, ">", threads, part_bytes));
            assert!(
                got == want,
                "case {case}, {threads} threads, parts of {part_bytes}"
            );
        }
    }
}

/// Thousands of distinct channel names (the name index grows many times) and a path of
/// thousands of channels on one line (longer than any block the reader scans at once).
#[test]
fn many_channels_and_very_long_paths_match_the_reference() {
    let mut lines: Vec<String> = (0..3000)
        .map(|i| {
            format!(
                "channel_{i} > c{} ;{};{}.5;{}",
                i * 7 % 1000,
                i % 5 + 1,
                i,
                i % 3
            )
        })
        .collect();
    let long: Vec<String> = (0..5000).map(|i| format!("c{}", i % 1700)).collect();
    lines.insert(1500, format!("{};1;2;3", long.join(" > ")));
    let text = lines.join("\n");
    let want = reference(&text, ">");
    assert!(want.is_ok());
    for (threads, part_bytes) in [(1, usize::MAX), (2, 4096), (3, 100)] {
        let got = outcome_of(parse_in_parts(&text, ">", threads, part_bytes));
        assert!(got == want, "{threads} threads, parts of {part_bytes}");
    }
}
