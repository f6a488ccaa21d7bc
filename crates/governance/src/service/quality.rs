//! The quality report's counts: governance's outcome ledger per source and day, completed
//! with collection's ingest counters.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone as _, Utc};
use chrono_tz::Tz;

use super::Governance;
use crate::domain::ranges::ReportDays;
use crate::error::GovernanceError;
use crate::store::quality::{DayCounts, day_counts};

/// A report's counts: per (source, day), per source and in total.
#[derive(Debug, Clone, Default)]
pub struct QualityCounts {
    /// Per (day, source), in that order.
    pub rows: Vec<DayCounts>,
    /// Per source, by source.
    pub by_source: Vec<DayCounts>,
    /// Over everything.
    pub total: DayCounts,
    /// Whether collection's ingest counters are included.
    pub complete: bool,
}

impl Governance {
    /// The counts of `days`. `ingest_received` and `ingest_duplicates` come with collection's
    /// ingest counters (message-id duplicates never reach the raw log); when collection cannot
    /// be asked, only what reached governance is counted and `complete` is false. Ingest
    /// counters are kept per UTC hour: in a zone whose offset is not whole hours, an hour is
    /// given to the day it starts in.
    pub async fn quality_counts(
        &self,
        tenant: &str,
        days: ReportDays,
        sources: &[String],
    ) -> Result<QualityCounts, GovernanceError> {
        let ReportDays { zone, start, end } = days;
        let mut rows = day_counts(&self.pool, tenant, zone.name(), start, end, sources).await?;
        let from = local_midnight(zone, start);
        let to = local_midnight(zone, end + TimeDelta::days(1));
        let complete = match self.ingest.read(tenant, from, to, sources).await {
            Ok(hours) => {
                merge_ingest(&mut rows, zone, &hours, start, end);
                true
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), "ingest counters unavailable; quality report without ingest duplicates");
                false
            }
        };
        let mut by_source: BTreeMap<String, DayCounts> = BTreeMap::new();
        let mut total = DayCounts::default();
        for c in &rows {
            let entry = by_source
                .entry(c.source.clone())
                .or_insert_with(|| DayCounts {
                    source: c.source.clone(),
                    ..DayCounts::default()
                });
            add(entry, c);
            add(&mut total, c);
        }
        Ok(QualityCounts {
            rows,
            by_source: by_source.into_values().collect(),
            total,
            complete,
        })
    }
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
