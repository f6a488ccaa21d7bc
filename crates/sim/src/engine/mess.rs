//! Planting the mess. Every decision is drawn from the person's separate mess stream and counted
//! (eligible, planted) so the truth can state observed against configured rates; every spoiled
//! record carries its defects into the truth files.

use rand::Rng;
use serde_json::Value;

use super::Gen;
use crate::config::DefectKind;
use crate::output::{format_iso, format_naive, format_with_offset};
use crate::person::PLACEHOLDER_PHONE;
use crate::record::{Body, Defect, Event, Field, Identifier, Record, Row};

/// All-zero device id, as iOS reports the advertising id when tracking is refused.
pub const ZERO_ID: &str = "00000000-0000-0000-0000-000000000000";
/// Columns that identify a row, by priority.
pub const ID_COLUMNS: [&str; 8] = [
    "order_id",
    "ticket_id",
    "response_id",
    "send_id",
    "click_id",
    "crm_id",
    "FromUserName",
    "openid",
];

const BAD_TIMES: [&str; 5] = [
    "0000-00-00 00:00:00",
    "2026-02-30 25:61:00",
    "N/A",
    "",
    "1970-01-01 00:00:00",
];

fn spoil_phone(rng: &mut crate::rng::SimRng, phone: &str) -> String {
    match rng.random_range(0..4) {
        0 => phone[..10].to_owned(),
        1 => format!("{phone}9"),
        2 => format!("0{}", &phone[1..]),
        _ => format!("{}O{}", &phone[..5], &phone[6..]),
    }
}

fn insert_nul(s: &str) -> String {
    let mut cut = s.len() / 2;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\0{}", &s[..cut], &s[cut..])
}

impl Gen<'_> {
    /// Counts an opportunity for `kind` and decides whether to spoil it.
    pub fn chance(&mut self, kind: DefectKind) -> bool {
        let rate = self.ctx.cfg.rates.get(kind);
        self.stats.eligible[kind as usize] += 1;
        let hit = rate > 0.0 && self.mess.random_bool(rate);
        if hit {
            self.stats.planted[kind as usize] += 1;
        }
        hit
    }

    fn record(&mut self, rec: Record) {
        for d in &rec.defects {
            self.stats.defect_records[d.kind as usize] += 1;
        }
        self.out.records.push(rec);
    }

    /// Finishes an SDK event: plants defects, records it, maybe re-sends it.
    #[expect(
        clippy::too_many_lines,
        reason = "applies every kind of SDK mess to one event, each a few lines, in a fixed order the truth files rely on"
    )]
    pub(super) fn push_sdk(
        &mut self,
        file: usize,
        mut ev: Event,
        t: i64,
        shared: Option<&str>,
        late_ms: i64,
    ) {
        // The device stamped both times with the same skewed clock, so the instant a live
        // collector received the batch is its sent-at less that skew.
        let skew = ev
            .original_timestamp
            .as_i64()
            .map_or(0, |stamped| stamped - t);
        let received_ms = ev.sent_at - skew;
        let mut defects = Vec::new();
        let mut d = |kind, detail: String| defects.push(Defect { kind, detail });
        if let Some(site) = shared {
            d(DefectKind::SharedDevice, format!("store ipad at {site}"));
        }
        if late_ms > 0 {
            d(
                DefectKind::LateArrival,
                format!("sent {} minutes late", late_ms / 60_000),
            );
        }
        let aliases = ev
            .event
            .as_deref()
            .filter(|_| ev.kind == "track")
            .and_then(|n| self.ctx.t.vocab.aliases.iter().find(|(c, _)| *c == n))
            .map(|(_, a)| *a);
        if let Some(aliases) = aliases
            && self.chance(DefectKind::EventAlias)
        {
            let alias = aliases[self.mess.random_range(0..aliases.len())];
            d(
                DefectKind::EventAlias,
                format!(
                    "{}{}{alias}",
                    ev.event.as_deref().unwrap_or(""),
                    crate::record::ALIAS_SEPARATOR
                ),
            );
            ev.event = Some(alias.to_owned());
        }
        let mut anon_gone = false;
        if self.chance(DefectKind::MissingId) {
            ev.anonymous_id = None;
            ev.user_id = None;
            ev.identifiers
                .retain(|i| i.kind != "anonymous_id" && i.kind != "user_id");
            anon_gone = true;
            d(
                DefectKind::MissingId,
                "anonymousId and userId absent".into(),
            );
        }
        if (ev.channel == "app" || !anon_gone) && self.chance(DefectKind::PlaceholderId) {
            let ph = if self.mess.random_bool(0.5) {
                ZERO_ID
            } else {
                "unknown"
            };
            if ev.channel == "app" {
                ev.context["device"]["id"] = ph.into();
                for i in ev.identifiers.iter_mut().filter(|i| i.kind == "device_id") {
                    i.value = ph.into();
                }
                d(
                    DefectKind::PlaceholderId,
                    format!("context.device.id = {ph}"),
                );
            } else {
                ev.anonymous_id = Some(ph.into());
                for i in ev
                    .identifiers
                    .iter_mut()
                    .filter(|i| i.kind == "anonymous_id")
                {
                    i.value = ph.into();
                }
                d(DefectKind::PlaceholderId, format!("anonymousId = {ph}"));
            }
        }
        if ev.identifiers.iter().any(|i| i.kind == "phone") && self.chance(DefectKind::InvalidPhone)
        {
            // Spoil the number the event carries (a recycled number's holders change theirs).
            let sent = ev
                .identifiers
                .iter()
                .find(|i| i.kind == "phone")
                .map_or_else(|| self.p.phone.clone(), |i| i.value.clone());
            let bad = spoil_phone(&mut self.mess, &sent);
            for i in ev.identifiers.iter_mut().filter(|i| i.kind == "phone") {
                i.value = bad.clone();
            }
            if let Some(traits) = ev.context.get_mut("traits").and_then(Value::as_object_mut) {
                traits.insert("phone".into(), bad.clone().into());
            }
            d(DefectKind::InvalidPhone, format!("phone written as {bad}"));
        }
        let money_key = ["price", "revenue"]
            .into_iter()
            .find(|k| ev.properties.contains_key(*k));
        if let Some(k) = money_key
            && self.chance(DefectKind::WrongType)
        {
            let text = ev
                .properties
                .get(k)
                .map(|v| format!("{v}"))
                .unwrap_or_default();
            ev.properties.insert(k.into(), Value::String(text));
            d(DefectKind::WrongType, format!("properties.{k} is a string"));
        }
        if self.chance(DefectKind::BadTimestamp) {
            let ts = ev.original_timestamp.as_i64().unwrap_or(t);
            let (v, what) = match self.mess.random_range(0..4) {
                0 => (Value::from(ts / 1000), "seconds instead of milliseconds"),
                1 => (Value::from(0), "zero"),
                2 => (Value::String("Invalid Date".into()), "unparseable text"),
                _ => (
                    Value::String(format_naive(ts, chrono_tz::Asia::Shanghai)),
                    "local text without zone",
                ),
            };
            ev.original_timestamp = v;
            d(
                DefectKind::BadTimestamp,
                format!("originalTimestamp is {what}"),
            );
        }
        if let Some(page) = ev
            .properties
            .get("page")
            .and_then(Value::as_str)
            .map(str::to_owned)
            && self.chance(DefectKind::NulByte)
        {
            ev.properties
                .insert("page".into(), Value::String(insert_nul(&page)));
            d(DefectKind::NulByte, "NUL in properties.page".into());
        }
        let retry = self.chance(DefectKind::SdkRetryDuplicate);
        let key = ev.message_id.clone();
        let rec = Record {
            file,
            key: key.clone(),
            true_ms: t,
            received_ms: Some(received_ms),
            body: Body::Sdk(Box::new(ev)),
            defects,
        };
        let dup = retry.then(|| {
            let mut copy = rec.clone();
            let delay = self.mess.random_range(30_000..600_000);
            if let Body::Sdk(e) = &mut copy.body {
                e.sent_at += delay;
            }
            copy.received_ms = copy.received_ms.map(|ms| ms + delay);
            copy.defects.push(Defect {
                kind: DefectKind::SdkRetryDuplicate,
                detail: format!("retry of message {key}"),
            });
            copy
        });
        self.record(rec);
        if let Some(copy) = dup {
            self.record(copy);
        }
    }

    /// Finishes a business row; see [`Gen::push_row_opts`].
    pub(super) fn push_row(
        &mut self,
        file: usize,
        key: String,
        t: i64,
        name: &str,
        fields: Vec<Field>,
        ids: Vec<Identifier>,
    ) -> i64 {
        self.push_row_opts(file, key, t, name, fields, ids, true)
    }

    /// As [`Gen::push_row`], never blanking the id column (for rows whose id must match another).
    pub(super) fn push_row_keep_ids(
        &mut self,
        file: usize,
        key: String,
        t: i64,
        name: &str,
        fields: Vec<Field>,
        ids: Vec<Identifier>,
    ) -> i64 {
        self.push_row_opts(file, key, t, name, fields, ids, false)
    }

    /// Formats the time cell, plants row defects, records the row; returns its true instant
    /// (moved when a DST defect was planted).
    #[allow(
        clippy::too_many_arguments,
        reason = "the row and its planting options"
    )]
    #[expect(
        clippy::too_many_lines,
        reason = "applies every kind of source mess to one file row, each a few lines, in a fixed order the truth files rely on"
    )]
    fn push_row_opts(
        &mut self,
        file: usize,
        key: String,
        t: i64,
        name: &str,
        mut fields: Vec<Field>,
        mut ids: Vec<Identifier>,
        allow_missing: bool,
    ) -> i64 {
        let spec = &self.ctx.layout.files[file];
        let mut defects = Vec::new();
        let mut true_ms = t;
        let tc = spec.time_column.filter(|c| *c < fields.len());
        let mut time_spoiled = false;
        if let Some(c) = tc {
            if spec.naive_local_time {
                if let Some(g) = spec.gap
                    && self.chance(DefectKind::DstGap)
                {
                    let width = i64::from(g.after_s - g.before_s) * 1000;
                    true_ms = g.at_ms + self.mess.random_range(0..width);
                    fields[c] = Field::Str(format_with_offset(true_ms, g.before_s));
                    defects.push(Defect {
                        kind: DefectKind::DstGap,
                        detail: "clock not moved forward".into(),
                    });
                    time_spoiled = true;
                }
                if !time_spoiled
                    && let Some(o) = spec.overlap
                    && self.chance(DefectKind::DstOverlap)
                {
                    // The repeated hour's first pass: a naive local time cannot say which pass
                    // it was, and the platform's documented rule takes the earlier instant, so
                    // the truth planted here is the one a rule can recover.
                    let width = i64::from(o.before_s - o.after_s) * 1000;
                    true_ms = o.at_ms - width + self.mess.random_range(0..width);
                    fields[c] = Field::Str(format_naive(true_ms, spec.tz));
                    defects.push(Defect {
                        kind: DefectKind::DstOverlap,
                        detail: "local time occurs twice".into(),
                    });
                    time_spoiled = true;
                }
            }
            if !time_spoiled {
                fields[c] = if spec.naive_local_time {
                    Field::Str(format_naive(true_ms, spec.tz))
                } else if spec.channel == "wechat_oa" {
                    Field::Int(true_ms.div_euclid(1000))
                } else {
                    Field::Str(format_iso(true_ms, spec.tz))
                };
                if self.chance(DefectKind::BadTimestamp) {
                    let bad = BAD_TIMES[self.mess.random_range(0..BAD_TIMES.len())];
                    fields[c] = Field::Str(bad.into());
                    defects.push(Defect {
                        kind: DefectKind::BadTimestamp,
                        detail: format!("time written as {bad:?}"),
                    });
                    time_spoiled = true;
                }
            }
            if !time_spoiled
                && spec.naive_local_time
                && let Some(text) = fields[c].as_str()
                && let Some(swapped) = ambiguous_form(text)
                && self.chance(DefectKind::AmbiguousTimestamp)
            {
                fields[c] = Field::Str(swapped);
                defects.push(Defect {
                    kind: DefectKind::AmbiguousTimestamp,
                    detail: "dd/mm/yyyy".into(),
                });
            }
        }
        let idc = ID_COLUMNS
            .iter()
            .find_map(|n| spec.header.iter().position(|h| h == n));
        if allow_missing
            && let Some(c) = idc
            && self.chance(DefectKind::MissingId)
        {
            let old = std::mem::replace(&mut fields[c], Field::Null);
            if let Field::Str(v) = old {
                ids.retain(|i| i.value != v);
            }
            defects.push(Defect {
                kind: DefectKind::MissingId,
                detail: format!("{} empty", spec.header[c]),
            });
        }
        let phone_col = spec.header.iter().position(|h| *h == "phone");
        if let Some(c) = phone_col
            && let Some(phone) = fields[c].as_str().map(str::to_owned)
            && !phone.is_empty()
            && !phone.contains('*')
        {
            let replacement = if self.chance(DefectKind::PlaceholderId) {
                defects.push(Defect {
                    kind: DefectKind::PlaceholderId,
                    detail: format!("phone {PLACEHOLDER_PHONE}"),
                });
                Some(PLACEHOLDER_PHONE.to_owned())
            } else if self.chance(DefectKind::InvalidPhone) {
                let bad = spoil_phone(&mut self.mess, &phone);
                defects.push(Defect {
                    kind: DefectKind::InvalidPhone,
                    detail: format!("phone written as {bad}"),
                });
                Some(bad)
            } else {
                None
            };
            if let Some(r) = replacement {
                for i in ids.iter_mut().filter(|i| i.kind == "phone") {
                    i.value = r.clone();
                }
                fields[c] = Field::Str(r);
            }
        }
        if let Some(c) = spec.header.iter().position(|h| *h == "amount")
            && let Field::Money(m) = fields[c]
            && self.chance(DefectKind::WrongType)
        {
            let text = if spec.format == crate::layout::FileFormat::Csv {
                format!("¥{}.{:02}", m / 100, m % 100)
            } else {
                format!("{}.{:02}", m / 100, m % 100)
            };
            fields[c] = Field::Str(text);
            defects.push(Defect {
                kind: DefectKind::WrongType,
                detail: "amount as text".into(),
            });
        }
        let candidates: Vec<usize> = (0..fields.len())
            .filter(|c| Some(*c) != idc && Some(*c) != tc && Some(*c) != phone_col)
            .filter(|c| fields[*c].as_str().is_some_and(|s| !s.is_empty()))
            .collect();
        if !candidates.is_empty() && self.chance(DefectKind::NulByte) {
            let c = candidates[self.mess.random_range(0..candidates.len())];
            let text = fields[c].as_str().map(insert_nul).unwrap_or_default();
            fields[c] = Field::Str(text);
            defects.push(Defect {
                kind: DefectKind::NulByte,
                detail: format!("NUL in {}", spec.header[c]),
            });
        }
        let row = Row {
            name: name.to_owned(),
            fields,
            ids,
        };
        self.record(Record {
            file,
            key,
            true_ms,
            received_ms: None,
            body: Body::Row(row),
            defects,
        });
        true_ms
    }
}

/// `dd/mm/yyyy HH:MM:SS` for a `yyyy-mm-dd HH:MM:SS` text whose day and month could be swapped.
fn ambiguous_form(text: &str) -> Option<String> {
    let (date, time) = text.split_once(' ')?;
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    let (mi, di): (u32, u32) = (m.parse().ok()?, d.parse().ok()?);
    (di <= 12 && di != mi).then(|| format!("{d}/{m}/{y} {time}"))
}
