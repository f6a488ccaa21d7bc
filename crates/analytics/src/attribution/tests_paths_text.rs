//! Paths-text parser tests: accepted layouts, every malformed row named by line and field, a
//! round trip through the text, and arbitrary input that must never panic.
#![allow(clippy::unwrap_used, reason = "tests")]

use proptest::prelude::*;

use super::{
    MAX_REPORTED_VIOLATIONS, PathsField, PathsTextError, parse_paths_text,
    parse_paths_text_parallel,
};

fn violations(text: &str) -> Vec<(usize, PathsField)> {
    let error: PathsTextError = parse_paths_text(text, ">").unwrap_err();
    error.violations.iter().map(|v| (v.line, v.field)).collect()
}

#[test]
fn parses_header_blank_lines_crlf_and_adds_up_repeated_paths() {
    let text = "path;conversions;value;nulls\r\n a > b > c ;12;3400.5;30\r\n\n  \nb;1;2;0\na>b>c;1;0.5;1.5\n";
    let paths = parse_paths_text(text, "").unwrap();
    assert_eq!(paths.channel_names(), ["a", "b", "c"]);
    assert_eq!(paths.len(), 2);
    let row = paths.row(0);
    assert_eq!(
        (row.channels, row.conversions, row.value, row.nulls),
        (&[0u32, 1, 2][..], 13.0, 3401.0, 31.5)
    );
    assert_eq!(paths.row(1).channels, &[1]);
    assert_eq!(
        (
            paths.total_conversions(),
            paths.total_value(),
            paths.total_nulls()
        ),
        (14.0, 3403.0, 31.5)
    );
}

#[test]
fn custom_separator_and_header_case() {
    let paths = parse_paths_text(
        "PATH;Conversions;VALUE;nulls\nfb, email ,search;1;0;0",
        " , ",
    )
    .unwrap();
    assert_eq!(paths.channel_names(), ["fb", "email", "search"]);
    assert!(parse_paths_text("a;1;0;0", ";").is_err());
}

#[test]
fn header_only_or_empty_text_is_an_empty_table() {
    for text in ["", "\n\n", "path;conversions;value;nulls\n"] {
        assert!(parse_paths_text(text, ">").unwrap().is_empty());
    }
}

#[test]
fn every_problem_is_named_with_its_line_and_field() {
    let cases: Vec<(&str, Vec<(usize, PathsField)>)> = vec![
        ("a >> b;1;0;0", vec![(1, PathsField::Path)]),
        ("a > ;1;0;0", vec![(1, PathsField::Path)]),
        (";1;0;0", vec![(1, PathsField::Path)]),
        ("a;x;0;0", vec![(1, PathsField::Conversions)]),
        ("a;1;-3;0", vec![(1, PathsField::Value)]),
        ("a;1;0;-1", vec![(1, PathsField::Nulls)]),
        (
            "a;NaN;inf;0",
            vec![(1, PathsField::Conversions), (1, PathsField::Value)],
        ),
        ("a;0;5;1", vec![(1, PathsField::Value)]),
        ("a;1;0", vec![(1, PathsField::Row)]),
        ("a;1;0;0;9", vec![(1, PathsField::Row)]),
        (
            "ok;1;0;0\n\nbad;;;\n",
            vec![
                (3, PathsField::Conversions),
                (3, PathsField::Value),
                (3, PathsField::Nulls),
            ],
        ),
        // A header is only recognised on the first non-blank line.
        (
            "a;1;0;0\npath;conversions;value;nulls",
            vec![
                (2, PathsField::Conversions),
                (2, PathsField::Value),
                (2, PathsField::Nulls),
            ],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(violations(text), want, "{text:?}");
    }
    let error = parse_paths_text("a>>b;x;0;0", ">").unwrap_err();
    let shown: Vec<String> = error.violations.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "line 1: path: empty channel name at position 2",
            "line 1: conversions: not a number: \"x\""
        ]
    );
}

#[test]
fn violations_are_capped_but_counted() {
    let text = "x;y;z;w\n".repeat(500);
    let error = parse_paths_text(&text, ">").unwrap_err();
    assert_eq!(error.violations.len(), MAX_REPORTED_VIOLATIONS);
    assert_eq!(error.total, 1500);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_text_never_panics_and_errors_name_a_real_line(text in "\\PC{0,200}", separator in "\\PC{0,3}") {
        let line_count = text.split('\n').count();
        match parse_paths_text(&text, &separator) {
            Ok(paths) => prop_assert!(paths.rows().all(|r| !r.channels.is_empty())),
            Err(error) => {
                prop_assert!(error.total >= error.violations.len() && !error.violations.is_empty());
                for v in &error.violations {
                    let line_ok = if v.field == PathsField::Separator { v.line == 0 } else { (1..=line_count).contains(&v.line) };
                    prop_assert!(line_ok, "{v}");
                    prop_assert!(!v.reason.is_empty());
                }
            }
        }
    }

    #[test]
    fn near_valid_rows_never_panic(rows in prop::collection::vec("[ab> ;0-9.e-]{0,16}", 0..12)) {
        let text = rows.join("\n");
        if let Err(error) = parse_paths_text(&text, ">") {
            prop_assert!(error.violations.iter().all(|v| v.line >= 1 && v.line <= rows.len().max(1)));
        }
    }

    #[test]
    fn rendered_tables_round_trip(
        rows in prop::collection::vec((prop::collection::vec("[a-z]{1,6}", 1..5), 0u32..50, 0u32..500, 0u32..50), 1..20),
    ) {
        let text: String = rows
            .iter()
            .map(|(path, conv, value, nulls)| {
                let value = if *conv > 0 { *value } else { 0 };
                format!("{};{conv};{value};{nulls}\n", path.join(" > "))
            })
            .collect();
        let paths = parse_paths_text(&text, ">").unwrap();
        let conversions: u32 = rows.iter().map(|r| r.1).sum();
        let nulls: u32 = rows.iter().map(|r| r.3).sum();
        prop_assert_eq!(paths.total_conversions(), f64::from(conversions));
        prop_assert_eq!(paths.total_nulls(), f64::from(nulls));
        let mut distinct: Vec<&Vec<String>> = rows.iter().map(|r| &r.0).collect();
        distinct.sort();
        distinct.dedup();
        prop_assert_eq!(paths.len(), distinct.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn parallel_parse_equals_sequential(
        rows in prop::collection::vec("(path;conversions;value;nulls|[ab]( ?> ?[abc]){0,3};[0-3];[0-9];[0-2]|[ab>;x ]{0,6}|)", 0..30),
        threads in 1usize..5,
    ) {
        let text = rows.join("\n");
        let sequential = parse_paths_text(&text, ">");
        let parallel = parse_paths_text_parallel(&text, ">", threads);
        prop_assert_eq!(sequential, parallel);
    }
}
