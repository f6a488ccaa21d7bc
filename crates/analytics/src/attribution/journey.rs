//! One person's journey as the models take it: channel codes with touch times and how it ended.

use super::credits::AttributionError;

/// A journey: the touches (channel code and time) a person made before converting, or before
/// the end of the analysis when they did not convert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Journey<'a> {
    /// Channel code of each touch, in time order; codes index the caller's channel list.
    pub channels: &'a [u32],
    /// Time of each touch in epoch milliseconds, non-decreasing, one per channel entry.
    pub touch_times_ms: &'a [i64],
    /// The conversion time, or the analysis end for a journey that did not convert.
    pub end_ms: i64,
    /// Whether the journey ended in a conversion.
    pub converted: bool,
    /// The conversion's value (ignored when not converted); finite and non-negative.
    pub value: f64,
}

impl Journey<'_> {
    /// Checks the journey against the rules in the field docs; `index` names it in the error.
    pub fn validate(&self, index: usize, channel_count: usize) -> Result<(), AttributionError> {
        let invalid = |field, reason| AttributionError::InvalidJourney {
            journey: index,
            field,
            reason,
        };
        if self.channels.len() != self.touch_times_ms.len() {
            return Err(invalid(
                "touch_times_ms",
                "needs exactly one time per channel entry",
            ));
        }
        if self.channels.iter().any(|&c| c as usize >= channel_count) {
            return Err(invalid("channels", "channel code outside the channel list"));
        }
        if self.touch_times_ms.windows(2).any(|w| w[0] > w[1]) {
            return Err(invalid("touch_times_ms", "touch times must not decrease"));
        }
        if self.touch_times_ms.last().is_some_and(|&t| t > self.end_ms) {
            return Err(invalid("end_ms", "a touch is later than the journey's end"));
        }
        if self.converted && !(self.value.is_finite() && self.value >= 0.0) {
            return Err(invalid("value", "must be a finite non-negative number"));
        }
        Ok(())
    }

    /// The value the journey carries: its value when converted, else 0.
    pub(crate) fn credited_value(&self) -> f64 {
        if self.converted { self.value } else { 0.0 }
    }
}
