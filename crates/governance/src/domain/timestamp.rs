//! Timestamp normalisation: from whatever a source sent to one UTC instant,
//! with the rule that was applied.
//!
//! Accepted, in order: the source's declared formats when it declares any
//! (chrono strftime patterns or the keywords `rfc3339`, `epoch_seconds`,
//! `epoch_millis`, `epoch_micros`); otherwise epoch digits (unit by digit
//! count), RFC 3339 / ISO 8601 with an offset, and ISO 8601 local times
//! without one, read in the source's IANA zone.
//!
//! Local times that a DST change makes impossible or ambiguous follow one
//! documented rule:
//! - in a gap (clocks jump forward, e.g. 02:30 on a spring-forward night)
//!   the time is shifted forward by the width of the gap, which is the same
//!   as reading it with the offset in force before the change: a clock that
//!   was not moved forward keeps counting in the old offset;
//! - in an overlap (clocks fall back, the hour repeats) the earlier of the
//!   two instants is taken.
//!
//! `d/m/yyyy` versus `m/d/yyyy` dates are read only when one reading is
//! impossible (a part above 12) or both agree; otherwise they are
//! ambiguous and the event is quarantined, unless the source declares the
//! format.
//!
//! SDK events are corrected for device clock skew with `sent_at`; business
//! sources (exports sent long after the fact) are not.

use super::client_time::{EpochUnit, correct_clock_skew, parse_client_timestamp, parse_epoch};
use chrono::{
    DateTime, LocalResult, NaiveDate, NaiveDateTime, Offset as _, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;

/// Why a timestamp could not be normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeProblem {
    /// Not readable with any accepted form.
    Invalid(String),
    /// A day/month order that cannot be decided.
    Ambiguous(String),
    /// More than ten minutes after its receipt.
    InFuture,
    /// Before 2000-01-01 UTC.
    TooOld,
}

/// A normalised timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    /// The instant, in UTC.
    pub instant: DateTime<Utc>,
    /// How it was read (see `CleanEvent.timestamp_rule`).
    pub rule: String,
    /// True when clock skew was corrected.
    pub corrected: bool,
}

/// Where and how to read a timestamp.
#[derive(Debug, Clone, Copy)]
pub struct TimeContext<'a> {
    /// Zone of local times.
    pub zone: Tz,
    /// Declared formats; empty for the defaults.
    pub formats: &'a [String],
    /// Correct device clock skew with `sent_at`.
    pub skew_correct: bool,
    /// When a collector first received the event, for imports of data
    /// collected earlier elsewhere: the device clock is measured against
    /// this instant rather than the ingest time.
    pub collector_received: Option<DateTime<Utc>>,
}

/// Events are never more than this after their receipt.
const MAX_FUTURE: TimeDelta = TimeDelta::minutes(10);

/// Reads `original` (and `sent_at` for skew) ingested at `received_at`.
pub fn normalise(
    original: &str,
    sent_at: &str,
    received_at: DateTime<Utc>,
    ctx: TimeContext<'_>,
) -> Result<Normalised, TimeProblem> {
    let (instant, mut rule) = parse(original, ctx.zone, ctx.formats)?;
    let mut corrected = false;
    let mut instant = instant;
    if ctx.skew_correct
        && let Ok(sent) = parse_client_timestamp(sent_at)
    {
        let reference = ctx.collector_received.unwrap_or(received_at);
        let fixed = correct_clock_skew(instant, Some(sent), reference);
        if fixed != instant {
            corrected = true;
            instant = fixed;
            rule.push_str("+skew_corrected");
        }
    }
    if instant > received_at + MAX_FUTURE {
        return Err(TimeProblem::InFuture);
    }
    if instant < min_instant() {
        return Err(TimeProblem::TooOld);
    }
    Ok(Normalised {
        instant,
        rule,
        corrected,
    })
}

fn min_instant() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Reads one timestamp text to an instant and the rule applied.
pub fn parse(
    text: &str,
    zone: Tz,
    formats: &[String],
) -> Result<(DateTime<Utc>, String), TimeProblem> {
    let text = text.trim();
    if text.is_empty() {
        return Err(TimeProblem::Invalid("the timestamp is empty".to_owned()));
    }
    if !formats.is_empty() {
        for format in formats {
            if let Some(found) = parse_declared(text, format, zone) {
                return Ok(found);
            }
        }
        return Err(TimeProblem::Invalid(format!(
            "matches none of the source's {} timestamp formats",
            formats.len()
        )));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return parse_epoch(text)
            .map(|(instant, unit)| {
                let rule = match unit {
                    EpochUnit::Seconds => "epoch_seconds",
                    EpochUnit::Milliseconds => "epoch_millis",
                    EpochUnit::Microseconds => "epoch_micros",
                };
                (instant, rule.to_owned())
            })
            .map_err(|err| TimeProblem::Invalid(err.to_string()));
    }
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok((instant.with_timezone(&Utc), "rfc3339".to_owned()));
    }
    for pattern in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(instant) = DateTime::parse_from_str(text, pattern) {
            return Ok((instant.with_timezone(&Utc), "iso8601_offset".to_owned()));
        }
    }
    for pattern in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, pattern) {
            return Ok(local(naive, zone));
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(local(date.and_time(chrono::NaiveTime::MIN), zone));
    }
    if let Some(found) = day_month(text, zone)? {
        return Ok(found);
    }
    Err(TimeProblem::Invalid(
        "neither epoch digits, ISO 8601 nor a declared format".to_owned(),
    ))
}

fn parse_declared(text: &str, format: &str, zone: Tz) -> Option<(DateTime<Utc>, String)> {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    let epoch = |per_second: i64, rule: &str| {
        let n: i64 = text.parse().ok()?;
        let micros = n.checked_mul(1_000_000 / per_second)?;
        DateTime::from_timestamp_micros(micros).map(|t| (t, rule.to_owned()))
    };
    match format.trim() {
        "rfc3339" => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| (t.with_timezone(&Utc), "rfc3339".to_owned())),
        "epoch_seconds" if digits => epoch(1, "epoch_seconds"),
        "epoch_millis" if digits => epoch(1_000, "epoch_millis"),
        "epoch_micros" if digits => epoch(1_000_000, "epoch_micros"),
        "epoch_seconds" | "epoch_millis" | "epoch_micros" => None,
        pattern => {
            if let Ok(t) = DateTime::parse_from_str(text, pattern) {
                return Some((t.with_timezone(&Utc), format!("format:{pattern}")));
            }
            let naive = NaiveDateTime::parse_from_str(text, pattern)
                .ok()
                .or_else(|| {
                    NaiveDate::parse_from_str(text, pattern)
                        .ok()
                        .map(|d| d.and_time(chrono::NaiveTime::MIN))
                })?;
            let (instant, rule) = local(naive, zone);
            Some((instant, format!("format:{pattern};{rule}")))
        }
    }
}

/// `a/b/yyyy[ HH:MM[:SS]]` when the order of day and month can be decided.
fn day_month(text: &str, zone: Tz) -> Result<Option<(DateTime<Utc>, String)>, TimeProblem> {
    let (date, time) = text.split_once(' ').unwrap_or((text, "00:00:00"));
    let parts: Vec<&str> = date.split(['/', '.']).collect();
    let [a, b, y] = parts.as_slice() else {
        return Ok(None);
    };
    let (Ok(a), Ok(b), Ok(y)) = (a.parse::<u32>(), b.parse::<u32>(), y.parse::<i32>()) else {
        return Ok(None);
    };
    if y < 1000 {
        return Ok(None);
    }
    let (day, month, rule) = match (a > 12, b > 12) {
        (true, false) => (a, b, "day_month"),
        (false, true) => (b, a, "month_day"),
        (false, false) if a == b => (a, b, "day_month"),
        (false, false) => {
            return Err(TimeProblem::Ambiguous(format!(
                "{a}/{b}/{y} reads as day/month and as month/day; declare the source's timestamp format"
            )));
        }
        (true, true) => return Ok(None),
    };
    let Some(date) = NaiveDate::from_ymd_opt(y, month, day) else {
        return Ok(None);
    };
    let time = chrono::NaiveTime::parse_from_str(time, "%H:%M:%S")
        .or_else(|_| chrono::NaiveTime::parse_from_str(time, "%H:%M"));
    let Ok(time) = time else {
        return Ok(None);
    };
    let (instant, local_rule) = local(date.and_time(time), zone);
    Ok(Some((instant, format!("{rule};{local_rule}"))))
}

/// A local time in `zone`, with the DST rules of this module.
pub fn local(naive: NaiveDateTime, zone: Tz) -> (DateTime<Utc>, String) {
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(t) => (t.with_timezone(&Utc), format!("local:{zone}")),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
            (a.min(b), format!("local_dst_overlap_earlier:{zone}"))
        }
        LocalResult::None => {
            // A gap is never longer than a day; the offset a day earlier is
            // the one in force before the change.
            let before = zone
                .offset_from_utc_datetime(&(naive - TimeDelta::days(1)))
                .fix()
                .local_minus_utc();
            let instant = (naive - TimeDelta::seconds(i64::from(before))).and_utc();
            (instant, format!("local_dst_gap_shifted:{zone}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    fn p(text: &str, zone: Tz) -> Result<DateTime<Utc>, TimeProblem> {
        parse(text, zone, &[]).map(|(t, _)| t)
    }

    #[test]
    fn reads_epochs_iso_and_local_times() {
        let want = utc("2026-11-24T08:00:00Z");
        for text in [
            "1795507200",
            "1795507200000",
            "1795507200000000",
            "2026-11-24T16:00:00+08:00",
            "2026-11-24 16:00:00+08:00",
        ] {
            assert_eq!(p(text, Tz::UTC), Ok(want), "{text}");
        }
        assert_eq!(
            p("2026-11-24 16:00:00", chrono_tz::Asia::Shanghai),
            Ok(want)
        );
        assert_eq!(
            p("2026-11-24T16:00:00", chrono_tz::Asia::Shanghai),
            Ok(want)
        );
        assert_eq!(p("2026/11/24 16:00", chrono_tz::Asia::Shanghai), Ok(want));
    }

    #[test]
    fn dst_gap_shifts_forward_and_overlap_takes_the_earlier_instant() {
        // Los Angeles springs forward on 2026-03-08 at 02:00 (-08:00 → -07:00).
        let la = chrono_tz::America::Los_Angeles;
        let (t, rule) = local(
            NaiveDateTime::parse_from_str("2026-03-08 02:30:00", "%Y-%m-%d %H:%M:%S")
                .unwrap_or_default(),
            la,
        );
        assert_eq!(t, utc("2026-03-08T10:30:00Z"));
        assert_eq!(t, utc("2026-03-08T03:30:00-07:00"), "shifted by the gap");
        assert!(rule.starts_with("local_dst_gap_shifted"));
        // Sydney falls back on 2026-04-05 at 03:00 (+11:00 → +10:00).
        let syd = chrono_tz::Australia::Sydney;
        let (t, rule) = local(
            NaiveDateTime::parse_from_str("2026-04-05 02:30:00", "%Y-%m-%d %H:%M:%S")
                .unwrap_or_default(),
            syd,
        );
        assert_eq!(t, utc("2026-04-05T02:30:00+11:00"));
        assert!(rule.starts_with("local_dst_overlap_earlier"));
    }

    #[test]
    fn generator_gap_rows_come_back_to_their_true_instant() {
        // The generator writes a gap row as the true instant formatted with
        // the offset before the change (a clock not moved forward).
        let la = chrono_tz::America::Los_Angeles;
        let true_instant = utc("2026-03-08T10:45:00Z");
        let written = (true_instant - TimeDelta::hours(8)).naive_utc();
        assert_eq!(local(written, la).0, true_instant);
    }

    #[test]
    fn day_month_order_is_read_only_when_decidable() {
        let sh = chrono_tz::Asia::Shanghai;
        assert_eq!(
            p("24/11/2026 16:00:00", sh),
            Ok(utc("2026-11-24T08:00:00Z"))
        );
        assert_eq!(
            p("11/24/2026 16:00:00", sh),
            Ok(utc("2026-11-24T08:00:00Z"))
        );
        assert!(matches!(
            p("05/11/2026 16:00:00", sh),
            Err(TimeProblem::Ambiguous(_))
        ));
        let declared = vec!["%d/%m/%Y %H:%M:%S".to_owned()];
        assert_eq!(
            parse("05/11/2026 16:00:00", sh, &declared).map(|(t, _)| t),
            Ok(utc("2026-11-05T08:00:00Z"))
        );
    }

    #[test]
    fn rejects_nonsense_and_checks_the_range() {
        for bad in [
            "",
            "N/A",
            "Invalid Date",
            "0000-00-00 00:00:00",
            "2026-02-30 25:61:00",
        ] {
            assert!(
                matches!(p(bad, Tz::UTC), Err(TimeProblem::Invalid(_))),
                "{bad}"
            );
        }
        let ctx = TimeContext {
            zone: Tz::UTC,
            formats: &[],
            skew_correct: false,
            collector_received: None,
        };
        let received = utc("2026-11-24T08:00:00Z");
        assert_eq!(normalise("0", "", received, ctx), Err(TimeProblem::TooOld));
        assert_eq!(
            normalise("1970-01-01 00:00:00", "", received, ctx),
            Err(TimeProblem::TooOld)
        );
        assert_eq!(
            normalise("2026-11-25T08:00:00Z", "", received, ctx),
            Err(TimeProblem::InFuture)
        );
    }

    #[test]
    fn corrects_skew_only_for_sdk_sources() {
        let received = utc("2026-11-24T09:00:00Z");
        let original = "2026-11-24T08:00:00Z"; // device clock an hour behind
        let sent = "2026-11-24T08:00:05Z";
        let sdk = TimeContext {
            zone: Tz::UTC,
            formats: &[],
            skew_correct: true,
            collector_received: None,
        };
        let n = normalise(original, sent, received, sdk);
        assert_eq!(
            n.as_ref().map(|n| n.instant),
            Ok(utc("2026-11-24T08:59:55Z"))
        );
        assert_eq!(n.map(|n| n.corrected), Ok(true));
        let export = TimeContext {
            skew_correct: false,
            ..sdk
        };
        let n = normalise(original, sent, received, export);
        assert_eq!(
            n.map(|n| (n.instant, n.corrected)),
            Ok((utc(original), false))
        );
    }

    #[test]
    fn skew_is_measured_against_the_collector_receipt_of_an_import() {
        // Collected live at 09:00 on a device an hour behind, imported a
        // day later: the import time must not move the event.
        let collected = utc("2026-11-24T09:00:00Z");
        let imported = utc("2026-11-25T10:00:00Z");
        let ctx = TimeContext {
            zone: Tz::UTC,
            formats: &[],
            skew_correct: true,
            collector_received: Some(collected),
        };
        let n = normalise(
            "2026-11-24T08:00:00Z",
            "2026-11-24T08:00:05Z",
            imported,
            ctx,
        );
        assert_eq!(
            n.map(|n| (n.instant, n.corrected)),
            Ok((utc("2026-11-24T08:59:55Z"), true))
        );
    }
}
