//! Parsing and normalising the timestamp texts clients and collectors send: RFC 3339 or epoch
//! digits, and the correction of a client's clock skew. Cleaning is its only user, so it
//! lives here rather than in a shared crate.

use chrono::{DateTime, TimeDelta, Utc};

/// Why a timestamp text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Nothing was given.
    #[error("timestamp is empty")]
    Empty,
    /// Neither RFC 3339 nor epoch digits.
    #[error("timestamp is neither RFC 3339 nor epoch seconds/milliseconds/microseconds")]
    Unrecognised,
    /// Digits, but outside the years 1970–9999.
    #[error("timestamp is out of range")]
    OutOfRange,
}

/// The unit an epoch number was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    /// Up to 11 digits.
    Seconds,
    /// 12–14 digits.
    Milliseconds,
    /// 15–17 digits.
    Microseconds,
}

/// Reads a client timestamp: RFC 3339 with an offset, or epoch seconds,
/// milliseconds or microseconds as digits. The unit of digits follows from
/// their count (≤ 11 seconds, ≤ 14 milliseconds, ≤ 17 microseconds), which is
/// unambiguous for every instant from 1973 to 5138.
pub fn parse_client_timestamp(text: &str) -> Result<DateTime<Utc>, TimestampError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(TimestampError::Empty);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return parse_epoch(text).map(|(instant, _)| instant);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|_| TimestampError::Unrecognised)
}

/// Reads epoch digits and says which unit they were taken as.
pub fn parse_epoch(digits: &str) -> Result<(DateTime<Utc>, EpochUnit), TimestampError> {
    let value: i64 = digits.parse().map_err(|_| TimestampError::OutOfRange)?;
    let (micros, unit) = match digits.len() {
        0 => return Err(TimestampError::Empty),
        1..=11 => (value.checked_mul(1_000_000), EpochUnit::Seconds),
        12..=14 => (value.checked_mul(1_000), EpochUnit::Milliseconds),
        15..=17 => (Some(value), EpochUnit::Microseconds),
        _ => return Err(TimestampError::OutOfRange),
    };
    let micros = micros.ok_or(TimestampError::OutOfRange)?;
    DateTime::from_timestamp_micros(micros)
        .map(|instant| (instant, unit))
        .ok_or(TimestampError::OutOfRange)
}

/// Corrects device clock skew: the device's clock was off by
/// `sent_at − received_at`, so the event happened at
/// `received_at − (sent_at − original)`.
pub fn correct_clock_skew(
    original: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    received_at: DateTime<Utc>,
) -> DateTime<Utc> {
    match sent_at {
        Some(sent) => {
            let in_flight: TimeDelta = sent - original;
            received_at - in_flight
        }
        None => original,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_epoch_unit_and_rfc3339() {
        let expected = DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid");
        for text in [
            "1795507200",
            "1795507200000",
            "1795507200000000",
            "2026-11-24T16:00:00+08:00",
            " 2026-11-24T08:00:00Z ",
        ] {
            assert_eq!(parse_client_timestamp(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert_eq!(parse_client_timestamp(""), Err(TimestampError::Empty));
        assert_eq!(
            parse_client_timestamp("yesterday"),
            Err(TimestampError::Unrecognised)
        );
        assert_eq!(
            parse_client_timestamp("2026-11-24 08:00:00"),
            Err(TimestampError::Unrecognised)
        );
        assert_eq!(
            parse_client_timestamp("123456789012345678"),
            Err(TimestampError::OutOfRange)
        );
    }

    #[test]
    fn skew_correction_uses_the_servers_clock() {
        let original = parse_client_timestamp("1795507200000").expect("valid");
        let sent = original + TimeDelta::seconds(5);
        let received = original + TimeDelta::hours(2); // device clock two hours slow
        let corrected = correct_clock_skew(original, Some(sent), received);
        assert_eq!(corrected, received - TimeDelta::seconds(5));
        assert_eq!(correct_clock_skew(original, None, received), original);
    }
}
