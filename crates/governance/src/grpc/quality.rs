//! The quality report RPC: governance's outcome ledger per source and day,
//! completed with collection's ingest counters.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone as _, Utc};
use chrono_tz::Tz;
use touchline_error::FieldViolation;
use touchline_proto::governance::v1 as pb;

use crate::error::GovernanceError;
use crate::ingest::IngestCounts;
use crate::store::quality::{DayCounts, day_counts};

/// `GetQualityReport`. `received` and `duplicates_message_id` come with
/// collection's ingest counters (message-id duplicates never reach the raw
/// log); when collection cannot be asked, only what reached governance is
/// counted and `includes_ingest_duplicates` is false. Ingest counters are
/// kept per UTC hour: in a zone whose offset is not whole hours, an hour is
/// given to the day it starts in.
pub async fn report(
    pool: &sqlx::PgPool,
    ingest: &IngestCounts,
    tenant: &str,
    req: &pb::GetQualityReportRequest,
) -> Result<pb::GetQualityReportResponse, GovernanceError> {
    let zone_name = if req.time_zone.trim().is_empty() {
        "UTC"
    } else {
        req.time_zone.trim()
    };
    let zone: Tz = zone_name.parse().map_err(|_| {
        GovernanceError::Invalid(vec![FieldViolation::new(
            "time_zone",
            "INVALID_TIME_ZONE",
            "not an IANA time zone",
        )])
    })?;
    let day = |field: &str, text: &str| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            GovernanceError::Invalid(vec![FieldViolation::new(
                field,
                "INVALID_DAY",
                "expected YYYY-MM-DD",
            )])
        })
    };
    let end = if req.end_day.is_empty() {
        Utc::now().with_timezone(&zone).date_naive()
    } else {
        day("end_day", &req.end_day)?
    };
    let start = if req.start_day.is_empty() {
        end - TimeDelta::days(6)
    } else {
        day("start_day", &req.start_day)?
    };
    if start > end || end - start > TimeDelta::days(366) {
        return Err(GovernanceError::Invalid(vec![FieldViolation::new(
            "start_day",
            "INVALID_RANGE",
            "start_day must be at most 366 days before end_day",
        )]));
    }
    let mut counts = day_counts(pool, tenant, zone.name(), start, end, &req.sources).await?;
    let from = local_midnight(zone, start);
    let to = local_midnight(zone, end + TimeDelta::days(1));
    let complete = match ingest.read(tenant, from, to, &req.sources).await {
        Ok(hours) => {
            merge_ingest(&mut counts, zone, &hours, start, end);
            true
        }
        Err(status) => {
            tracing::warn!(code = ?status.code(), "ingest counters unavailable; quality report without ingest duplicates");
            false
        }
    };
    let row = |c: &DayCounts| row(c, complete);
    let rows: Vec<pb::QualityReportRow> = counts.iter().map(row).collect();
    let mut by_source: BTreeMap<String, DayCounts> = BTreeMap::new();
    let mut total = DayCounts::default();
    for c in &counts {
        let entry = by_source
            .entry(c.source.clone())
            .or_insert_with(|| DayCounts {
                source: c.source.clone(),
                ..DayCounts::default()
            });
        add(entry, c);
        add(&mut total, c);
    }
    Ok(pb::GetQualityReportResponse {
        rows,
        source_totals: by_source.values().map(row).collect(),
        total: Some(row(&total)),
    })
}

/// The first instant of `day` in `zone` (the instant after a gap when
/// midnight does not exist there).
fn local_midnight(zone: Tz, day: NaiveDate) -> DateTime<Utc> {
    let naive = day.and_time(chrono::NaiveTime::MIN);
    match zone.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.with_timezone(&Utc)
        }
        chrono::LocalResult::None => crate::domain::timestamp::local(naive, zone).0,
    }
}

/// Adds collection's counters to the rows of their (source, local day),
/// adding rows for pairs only collection saw.
fn merge_ingest(
    counts: &mut Vec<DayCounts>,
    zone: Tz,
    hours: &[crate::ingest::HourCount],
    start: NaiveDate,
    end: NaiveDate,
) {
    let mut by_key: BTreeMap<(NaiveDate, String), (i64, i64)> = BTreeMap::new();
    for h in hours {
        let day = h.hour.with_timezone(&zone).date_naive();
        if day < start || day > end {
            continue;
        }
        let entry = by_key.entry((day, h.source.clone())).or_default();
        entry.0 += h.received;
        entry.1 += h.duplicates;
    }
    for c in counts.iter_mut() {
        let Some(day) = c.day else { continue };
        let (received, duplicates) = by_key.remove(&(day, c.source.clone())).unwrap_or_default();
        c.ingest_received = Some(received);
        c.ingest_duplicates = duplicates;
    }
    for ((day, source), (received, duplicates)) in by_key {
        counts.push(DayCounts {
            source,
            day: Some(day),
            ingest_received: Some(received),
            ingest_duplicates: duplicates,
            ..DayCounts::default()
        });
    }
    counts.sort_by(|a, b| (a.day, &a.source).cmp(&(b.day, &b.source)));
}

fn add(into: &mut DayCounts, c: &DayCounts) {
    into.seen += c.seen;
    into.ingest_received = match (into.ingest_received, c.ingest_received) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    into.ingest_duplicates += c.ingest_duplicates;
    into.clean += c.clean;
    into.quarantined += c.quarantined;
    into.duplicates_natural_key += c.duplicates_natural_key;
    into.restatements += c.restatements;
    into.duplicates_message_id += c.duplicates_message_id;
    into.late += c.late;
    into.corrected += c.corrected;
    into.identified += c.identified;
    into.blocked_ids += c.blocked_ids;
    into.invalid_ids += c.invalid_ids;
    for (reason, n) in &c.by_reason {
        match into.by_reason.iter_mut().find(|(r, _)| r == reason) {
            Some((_, m)) => *m += n,
            None => into.by_reason.push((*reason, *n)),
        }
    }
    into.by_reason.sort_unstable();
}

fn row(c: &DayCounts, complete: bool) -> pb::QualityReportRow {
    // Collection counts every valid arrival, duplicates included; before
    // governance has caught up, its count runs ahead of the outcomes.
    let received = match c.ingest_received {
        Some(n) if complete => n,
        _ => c.seen,
    };
    let duplicates_message_id =
        c.duplicates_message_id + if complete { c.ingest_duplicates } else { 0 };
    let duplicates = duplicates_message_id + c.duplicates_natural_key + c.restatements;
    #[allow(
        clippy::cast_precision_loss,
        reason = "a share of counts far below 2^52"
    )]
    let share = if c.clean == 0 {
        0.0
    } else {
        c.identified as f64 / c.clean as f64
    };
    pb::QualityReportRow {
        source: c.source.clone(),
        day: c
            .day
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        received,
        clean: c.clean,
        quarantined: c.quarantined,
        quarantined_by_reason: c
            .by_reason
            .iter()
            .map(|(reason, count)| pb::ReasonCount {
                reason: *reason,
                count: *count,
            })
            .collect(),
        duplicates,
        duplicates_message_id,
        duplicates_natural_key: c.duplicates_natural_key,
        restatements: c.restatements,
        late_events: c.late,
        timestamps_corrected: c.corrected,
        with_identifier: c.identified,
        identified_share: share,
        flagged: 0,
        identifiers_blocked: c.blocked_ids,
        identifiers_invalid: c.invalid_ids,
        includes_ingest_duplicates: complete,
    }
}
