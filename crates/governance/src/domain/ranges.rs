//! The time ranges a request may cover: the days of a quality report and the received-time
//! range of a reprocess job.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::error::GovernanceError;

/// The longest range one reprocess job may cover.
const MAX_REPROCESS_DAYS: i64 = 400;
/// The longest quality report, in days past its first.
const MAX_REPORT_DAYS: i64 = 366;
/// A report without a start covers this many days before its end as well.
const DEFAULT_REPORT_DAYS: i64 = 6;

/// The days a quality report covers, in its time zone.
#[derive(Debug, Clone, Copy)]
pub struct ReportDays {
    /// The zone whose days are counted.
    pub zone: Tz,
    /// The first day.
    pub start: NaiveDate,
    /// The last day.
    pub end: NaiveDate,
}

/// A report's days: an empty zone means UTC, an empty end today there, an empty start a week
/// before the end; at most 366 days apart.
pub fn report_days(
    time_zone: &str,
    start_day: &str,
    end_day: &str,
) -> Result<ReportDays, GovernanceError> {
    let zone_name = if time_zone.trim().is_empty() {
        "UTC"
    } else {
        time_zone.trim()
    };
    let zone: Tz = zone_name.parse().map_err(|_| {
        GovernanceError::invalid("time_zone", "INVALID_TIME_ZONE", "not an IANA time zone")
    })?;
    let day = |field: &str, text: &str| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| GovernanceError::invalid(field, "INVALID_DAY", "expected YYYY-MM-DD"))
    };
    let end = if end_day.is_empty() {
        Utc::now().with_timezone(&zone).date_naive()
    } else {
        day("end_day", end_day)?
    };
    let start = if start_day.is_empty() {
        end - TimeDelta::days(DEFAULT_REPORT_DAYS)
    } else {
        day("start_day", start_day)?
    };
    if start > end || end - start > TimeDelta::days(MAX_REPORT_DAYS) {
        return Err(GovernanceError::invalid(
            "start_day",
            "INVALID_RANGE",
            "start_day must be at most 366 days before end_day",
        ));
    }
    Ok(ReportDays { zone, start, end })
}

/// A reprocess job's received-time range: both ends required, the end after the start, at
/// most 400 days.
pub fn reprocess_range(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), GovernanceError> {
    let required = |field: &str| {
        GovernanceError::invalid(
            &format!("received_time.{field}"),
            "REQUIRED",
            "both ends of the range are required",
        )
    };
    let start = start.ok_or_else(|| required("start_time"))?;
    let end = end.ok_or_else(|| required("end_time"))?;
    if end <= start {
        return Err(GovernanceError::invalid(
            "received_time.end_time",
            "INVALID_RANGE",
            "must be after start_time",
        ));
    }
    if end - start > TimeDelta::days(MAX_REPROCESS_DAYS) {
        return Err(GovernanceError::invalid(
            "received_time",
            "RANGE_TOO_LONG",
            "at most 400 days",
        ));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_days_default_to_a_week_and_stay_within_a_year() {
        let days = report_days("", "", "2026-11-25");
        assert_eq!(
            days.ok().map(|d| (d.start.to_string(), d.end.to_string())),
            Some(("2026-11-19".to_owned(), "2026-11-25".to_owned()))
        );
        assert!(report_days("Mars/Olympus", "", "").is_err());
        assert!(report_days("", "2024-01-01", "2026-01-01").is_err());
        assert!(report_days("", "2026-01-02", "2026-01-01").is_err());
    }

    #[test]
    fn a_reprocess_range_needs_both_ends_in_order() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc());
        assert!(reprocess_range(None, t("2026-01-01T00:00:00Z")).is_err());
        assert!(reprocess_range(t("2026-01-02T00:00:00Z"), t("2026-01-01T00:00:00Z")).is_err());
        assert!(reprocess_range(t("2024-01-01T00:00:00Z"), t("2026-01-01T00:00:00Z")).is_err());
        assert!(reprocess_range(t("2026-01-01T00:00:00Z"), t("2026-01-02T00:00:00Z")).is_ok());
    }
}
