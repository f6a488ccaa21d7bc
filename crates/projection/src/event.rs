//! The events the projection takes and gives back, already dictionary-encoded, and the
//! 48-bit packing of times and sequences.
//!
//! Times and clean-log sequences are kept in 48 bits (a 32-bit low part and a 16-bit high
//! part in two columns): 48 bits of milliseconds reach ±4,400 years around 1970 and 48 bits
//! of sequence 2.8 × 10¹⁴ events, while saving 4 of every 16 bytes an event would otherwise
//! spend on them. Values outside are refused at append, never wrapped.

use crate::error::ProjectionError;

/// The most analysable properties a tenant can mark (each is one slot of an event).
pub const MAX_PROPERTIES: usize = 4;

/// The earliest time the projection stores, in ms since the Unix epoch.
pub const MIN_TIME_MS: i64 = -(1 << 47);
/// The latest time the projection stores.
pub const MAX_TIME_MS: i64 = (1 << 47) - 1;
/// The largest clean-log sequence the projection stores.
pub const MAX_SEQ: u64 = (1 << 48) - 1;

/// Where an event met the person: codes of the touchpoint's columns.
///
/// `channel`, `touchpoint` and `source` are codes of the projection's dictionaries;
/// `touchpoint_type` and `department` are the contract's enum numbers (0 = unspecified).
/// Distinct combinations are few (a touchpoint belongs to one channel and usually to one
/// source), so the projection stores one 16-bit code per combination, not five columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Touch {
    /// Channel code.
    pub channel: u32,
    /// Touchpoint code (the touchpoint within its channel).
    pub touchpoint: u32,
    /// `TouchpointType` enum number.
    pub touchpoint_type: u8,
    /// `Department` enum number.
    pub department: u8,
    /// Source code.
    pub source: u32,
}

/// One event of a person, as stored and as read back.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Event {
    /// Milliseconds since the Unix epoch (UTC).
    pub time_ms: i64,
    /// Position in the tenant's clean log: unique per event, orders equal times.
    pub seq: u64,
    /// Canonical event code.
    pub event: u32,
    /// Channel, touchpoint, type, department, source.
    pub touch: Touch,
    /// Monetary value, when the event has one.
    pub value: Option<f64>,
    /// Codes of the analysable properties, by slot; 0 when the event lacks one.
    pub properties: [u32; MAX_PROPERTIES],
}

/// An event for a person, as appended.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NewEvent {
    /// The person key (the service's integer for a person; an `i64` key casts losslessly).
    pub person: u64,
    /// The event.
    pub event: Event,
}

/// Splits a time into its stored low and high parts.
pub(crate) fn pack_time(time_ms: i64) -> Result<(u32, i16), ProjectionError> {
    if !(MIN_TIME_MS..=MAX_TIME_MS).contains(&time_ms) {
        return Err(ProjectionError::OutOfRange {
            field: "event_time",
            value: i128::from(time_ms),
        });
    }
    Ok((time_ms as u32, (time_ms >> 32) as i16))
}

/// Joins the stored parts of a time.
#[inline]
pub(crate) fn unpack_time(low: u32, high: i16) -> i64 {
    (i64::from(high) << 32) | i64::from(low)
}

/// Splits a sequence into its stored low and high parts.
pub(crate) fn pack_seq(seq: u64) -> Result<(u32, u16), ProjectionError> {
    if seq > MAX_SEQ {
        return Err(ProjectionError::OutOfRange {
            field: "sequence",
            value: i128::from(seq),
        });
    }
    Ok((seq as u32, (seq >> 32) as u16))
}

/// Joins the stored parts of a sequence.
#[inline]
pub(crate) fn unpack_seq(low: u32, high: u16) -> u64 {
    (u64::from(high) << 32) | u64::from(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sequences_round_trip_through_48_bits() {
        for time in [
            0,
            -1,
            1,
            MIN_TIME_MS,
            MAX_TIME_MS,
            1_767_225_600_123,
            -86_400_000,
        ] {
            let (low, high) = pack_time(time).expect("in range");
            assert_eq!(unpack_time(low, high), time);
        }
        for seq in [0, 1, u64::from(u32::MAX), u64::from(u32::MAX) + 1, MAX_SEQ] {
            let (low, high) = pack_seq(seq).expect("in range");
            assert_eq!(unpack_seq(low, high), seq);
        }
    }

    #[test]
    fn values_past_48_bits_are_refused() {
        assert!(pack_time(MAX_TIME_MS + 1).is_err());
        assert!(pack_time(MIN_TIME_MS - 1).is_err());
        assert!(pack_seq(MAX_SEQ + 1).is_err());
    }
}
