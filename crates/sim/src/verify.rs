//! Independent check of an output directory against its truth: every data line has a true
//! person (aggregate rows excepted) and a true instant consistent with what the line says,
//! every planted defect is present where the truth says and is of that kind, lines without a
//! defect are clean, and planted rates match the configured ones within sampling tolerance.
//! It re-reads the files as a consumer would; it shares no code with the generator's planting.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::{LocalResult, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde_json::Value;

use crate::SimError;
use crate::person::PLACEHOLDER_PHONE;

/// What a verification found.
#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    /// Data lines checked.
    pub lines: u64,
    /// Defect entries checked.
    pub defects: u64,
    /// Defect entries per kind.
    pub defects_by_kind: BTreeMap<String, u64>,
    /// Problems found (capped at 50 messages; `problem_count` has the total).
    pub problems: Vec<String>,
    /// Number of problems found.
    pub problem_count: u64,
}

impl VerifyReport {
    fn problem(&mut self, msg: String) {
        self.problem_count += 1;
        if self.problems.len() < 50 {
            self.problems.push(msg);
        }
    }
}

struct Truth {
    person: Option<String>,
    true_ms: i64,
}

fn read(path: &Path) -> Result<Vec<u8>, SimError> {
    std::fs::read(path).map_err(|e| SimError::io(path, e))
}

fn csv_rows(bytes: &[u8]) -> Vec<(u64, Vec<String>)> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    r.byte_records()
        .filter_map(Result::ok)
        .map(|rec| {
            let line = rec.position().map_or(0, |p| p.line());
            (
                line,
                rec.iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect(),
            )
        })
        .collect()
}

/// A valid mainland mobile number.
pub fn valid_phone(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
}

fn naive(text: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok()
}

/// Parses a cell's time per the file's convention to epoch ms; `None` if it does not parse.
fn parse_time(v: &Value, tz: Tz, naive_local: bool) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().map(|s| s * 1000),
        Value::String(s) if naive_local => match tz.from_local_datetime(&naive(s)?) {
            LocalResult::Single(t) => Some(t.timestamp_millis()),
            _ => None,
        },
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis()),
        _ => None,
    }
    .filter(|ms| (1_577_836_800_000..1_893_456_000_000).contains(ms))
}

/// Verifies the output directory `dir`.
#[expect(
    clippy::too_many_lines,
    reason = "checks every truth file against the manifest in turn; each check is short and they share the parsed manifest"
)]
pub fn verify(dir: &Path) -> Result<VerifyReport, SimError> {
    let manifest: Value =
        serde_json::from_slice(&read(&dir.join("manifest.json"))?).map_err(SimError::Json)?;
    let template = match manifest["template"].as_str() {
        Some("healthcare") => crate::template::get(crate::TemplateKind::Healthcare),
        _ => crate::template::get(crate::TemplateKind::Retail),
    };
    let aliases: HashSet<&str> = template
        .vocab
        .aliases
        .iter()
        .flat_map(|(_, a)| a.iter().copied())
        .collect();
    let mut rep = VerifyReport::default();

    let persons: HashSet<String> = csv_rows(&read(&dir.join("truth/persons.csv"))?)
        .into_iter()
        .filter_map(|(_, r)| r.into_iter().next())
        .collect();
    let shared: HashSet<String> = csv_rows(&read(&dir.join("truth/shared_devices.csv"))?)
        .into_iter()
        .filter_map(|(_, r)| r.into_iter().next())
        .collect();
    let mut truth: HashMap<(String, u64), Truth> = HashMap::new();
    for (_, r) in csv_rows(&read(&dir.join("truth/records.csv"))?) {
        let [file, line, _key, person, ms] = &r[..] else {
            continue;
        };
        let person = (!person.is_empty()).then(|| person.clone());
        truth.insert(
            (file.clone(), line.parse().unwrap_or(0)),
            Truth {
                person,
                true_ms: ms.parse().unwrap_or(0),
            },
        );
    }
    let mut defects: HashMap<(String, u64), Vec<String>> = HashMap::new();
    for (_, r) in csv_rows(&read(&dir.join("truth/defects.csv"))?) {
        let [file, line, _key, kind, _detail] = &r[..] else {
            continue;
        };
        defects
            .entry((file.clone(), line.parse().unwrap_or(0)))
            .or_default()
            .push(kind.clone());
        *rep.defects_by_kind.entry(kind.clone()).or_default() += 1;
        rep.defects += 1;
    }

    let files = manifest["files"].as_array().cloned().unwrap_or_default();
    // POS order ids first, for cross-source duplicates.
    let mut pos_orders: HashSet<String> = HashSet::new();
    for f in files.iter().filter(|f| f["channel"] == "pos") {
        let path = f["path"].as_str().unwrap_or_default();
        for (_, r) in csv_rows(&read(&dir.join(path))?) {
            if let Some(id) = r.first().filter(|s| !s.is_empty()) {
                pos_orders.insert(id.clone());
            }
        }
    }
    for f in &files {
        let path = f["path"].as_str().unwrap_or_default().to_owned();
        let tz: Tz = f["time_zone"]
            .as_str()
            .unwrap_or("UTC")
            .parse()
            .unwrap_or(Tz::UTC);
        let naive_local = f["local_time_without_offset"].as_bool().unwrap_or(false);
        let aggregate = f["aggregate"].as_bool().unwrap_or(false);
        let bytes = read(&dir.join(&path))?;
        let csv = f["format"] == "csv";
        let sdk = path.starts_with("sdk/");
        let mut lines: Vec<(u64, Value, &[u8])> = Vec::new();
        if csv {
            let header: Vec<String> = bytes
                .split(|b| *b == b'\n')
                .next()
                .map(|h| {
                    String::from_utf8_lossy(h)
                        .split(',')
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let raw: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
            for (line, cells) in csv_rows(&bytes) {
                let obj: serde_json::Map<String, Value> = header
                    .iter()
                    .cloned()
                    .zip(cells.into_iter().map(Value::String))
                    .collect();
                lines.push((
                    line,
                    Value::Object(obj),
                    raw.get((line as usize).saturating_sub(1))
                        .copied()
                        .unwrap_or_default(),
                ));
            }
        } else {
            for (i, raw) in bytes
                .split(|b| *b == b'\n')
                .enumerate()
                .filter(|(_, l)| !l.is_empty())
            {
                match serde_json::from_slice::<Value>(raw) {
                    Ok(v) => lines.push((i as u64 + 1, v, raw)),
                    Err(_) => rep.problem(format!("{path}:{} is not json", i + 1)),
                }
            }
        }
        if lines.len() as u64 != f["records"].as_u64().unwrap_or(0) {
            rep.problem(format!(
                "{path}: {} lines, manifest says {}",
                lines.len(),
                f["records"]
            ));
        }
        let mut seen_ids: HashSet<String> = HashSet::new();
        let mut seen_rows: HashSet<Vec<u8>> = HashSet::new();
        let time_col = match path.as_str() {
            _ if sdk => "",
            p if p.starts_with("wechat/oa_events") => "CreateTime",
            p if p.starts_with("wechat/oa_users") => "subscribe_time",
            _ => [
                "order_time",
                "joined_at",
                "updated_at",
                "sent_at",
                "event_time",
                "created_at",
                "submitted_at",
                "registered_at",
                "click_time",
                "date",
            ]
            .into_iter()
            .find(|c| lines.first().is_some_and(|(_, v, _)| v.get(*c).is_some()))
            .unwrap_or(""),
        };
        for (line, v, raw) in &lines {
            rep.lines += 1;
            let key = (path.clone(), *line);
            let Some(t) = truth.get(&key) else {
                rep.problem(format!("{path}:{line} has no truth record"));
                continue;
            };
            match &t.person {
                Some(p) if !persons.contains(p) => {
                    rep.problem(format!("{path}:{line} person {p} unknown"))
                }
                None if !aggregate => rep.problem(format!("{path}:{line} has no true person")),
                _ => {}
            }
            let kinds = defects.get(&key).cloned().unwrap_or_default();
            let has = |k: &str| kinds.iter().any(|x| x == k);
            let mut check = |ok: bool, what: &str| {
                if !ok {
                    rep.problem(format!("{path}:{line} {what}"));
                }
            };
            let text = String::from_utf8_lossy(raw);
            let nul = raw.contains(&0) || text.contains("\\u0000");
            check(
                nul == has("nul_byte"),
                "nul byte presence disagrees with truth",
            );
            let placeholder = text.contains(PLACEHOLDER_PHONE)
                || text.contains("\"unknown\"")
                || text.contains(crate::engine::ZERO_ID);
            check(
                placeholder == has("placeholder_id"),
                "placeholder presence disagrees with truth",
            );
            if sdk {
                let id = v["messageId"].as_str().unwrap_or_default().to_owned();
                check(
                    seen_ids.insert(id) != has("sdk_retry_duplicate"),
                    "message id repetition disagrees with truth",
                );
                let name = v["event"].as_str().unwrap_or_default();
                check(
                    aliases.contains(name) == has("event_alias"),
                    "event alias disagrees with truth",
                );
                let ts = v["originalTimestamp"]
                    .as_i64()
                    .filter(|ms| (1_577_836_800_000..1_893_456_000_000).contains(ms));
                check(
                    ts.is_none() == has("bad_timestamp"),
                    "timestamp validity disagrees with truth",
                );
                if let Some(ts) = ts {
                    check(
                        (ts - t.true_ms).abs() <= 3_600_000,
                        "device time far from the true instant",
                    );
                    let late = v["sentAt"].as_i64().unwrap_or(0) - ts > 3_600_000;
                    check(
                        late == has("late_arrival"),
                        "send delay disagrees with truth",
                    );
                }
                let missing = v.get("anonymousId").is_none() && v.get("userId").is_none();
                check(
                    missing == has("missing_id"),
                    "missing ids disagree with truth",
                );
                let dev = v["context"]["device"]["id"].as_str().unwrap_or_default();
                // A placeholder device id hides which device it was, shared or not.
                if !has("placeholder_id") {
                    check(
                        shared.contains(dev) == has("shared_device"),
                        "shared device disagrees with truth",
                    );
                }
                let money_text = ["price", "revenue"]
                    .iter()
                    .any(|k| v["properties"][*k].is_string());
                check(
                    money_text == has("wrong_type"),
                    "money type disagrees with truth",
                );
                let phones: Vec<&str> = v["identifiers"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|i| i["type"] == "phone")
                            .filter_map(|i| i["value"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                check(
                    phones.iter().any(|p| !valid_phone(p)) == has("invalid_phone"),
                    "phone validity disagrees with truth",
                );
                continue;
            }
            if aggregate {
                check(
                    seen_rows.insert(raw.to_vec()) != has("ad_report_resent"),
                    "row repetition disagrees with truth",
                );
                continue;
            }
            if let Some(phone) = v
                .get("phone")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty() && !p.contains('*'))
            {
                check(
                    valid_phone(phone) != has("invalid_phone"),
                    "phone validity disagrees with truth",
                );
            }
            if let Some(a) = v.get("amount") {
                let ok =
                    a.is_number() || a.as_str().is_some_and(|s| s.parse::<f64>().is_ok() && csv);
                check(ok != has("wrong_type"), "amount type disagrees with truth");
            }
            if has("cross_source_duplicate") {
                check(
                    v["order_id"]
                        .as_str()
                        .is_some_and(|o| pos_orders.contains(o)),
                    "duplicate order not found in pos",
                );
            }
            if has("missing_id") {
                let id_empty = crate::engine::ID_COLUMNS
                    .iter()
                    .find_map(|c| v.get(*c))
                    .is_some_and(|x| x.is_null() || x == "");
                check(id_empty, "id column not empty");
            }
            if time_col.is_empty() {
                continue;
            }
            let cell = v[time_col].clone();
            let cell = if csv && time_col == "CreateTime" {
                cell.as_str()
                    .and_then(|s| s.parse::<i64>().ok())
                    .map(Value::from)
                    .unwrap_or(cell)
            } else {
                cell
            };
            let parsed = parse_time(&cell, tz, naive_local);
            let s = cell.as_str().unwrap_or_default().replace('\0', "");
            if has("dst_gap") {
                check(
                    naive(&s)
                        .is_some_and(|n| matches!(tz.from_local_datetime(&n), LocalResult::None)),
                    "dst gap time exists",
                );
            } else if has("dst_overlap") {
                check(
                    naive(&s).is_some_and(|n| {
                        matches!(tz.from_local_datetime(&n), LocalResult::Ambiguous(..))
                    }),
                    "dst overlap time is not ambiguous",
                );
            } else if has("ambiguous_timestamp") {
                check(
                    NaiveDateTime::parse_from_str(&s, "%d/%m/%Y %H:%M:%S").is_ok(),
                    "ambiguous time not dd/mm/yyyy",
                );
            } else if has("bad_timestamp") {
                check(parsed.is_none(), "bad time parses");
            } else {
                match parsed {
                    Some(ms) => check(
                        (ms - t.true_ms).abs() < 1000,
                        "time disagrees with the true instant",
                    ),
                    None => check(false, "time does not parse"),
                }
            }
        }
    }
    let records_total = truth.len() as u64;
    if records_total != rep.lines {
        rep.problem(format!(
            "truth has {records_total} records, files have {} lines",
            rep.lines
        ));
    }
    Ok(rep)
}
