//! One person's RFM values from their purchases.
//!
//! The contract's definitions: purchases in the lookback `(as_of − lookback, as_of]` count;
//! frequency is their number (every purchase, even two at the same second), monetary their total
//! value, recency the time from the last of them to `as_of`. Purchases after `as_of` are left
//! out; a person with no purchase in the lookback is not scored.

use super::score::RfmValues;
use crate::churn::error::ChurnError;

/// One purchase: when (Unix seconds) and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Purchase {
    /// When it happened, Unix seconds.
    pub time: i64,
    /// Its value (finite; refunds may be negative).
    pub value: f64,
}

/// The person's RFM values, or `None` without a purchase in the lookback; refuses a negative
/// lookback and non-finite purchase values.
pub fn rfm_values(
    purchases: &[Purchase],
    as_of: i64,
    lookback_secs: i64,
) -> Result<Option<RfmValues>, ChurnError> {
    if lookback_secs < 0 {
        return Err(ChurnError::invalid("lookback", "must not be negative"));
    }
    let window_start = as_of.saturating_sub(lookback_secs);
    let mut frequency = 0u64;
    let mut monetary = 0.0;
    let mut last: Option<i64> = None;
    for (index, purchase) in purchases.iter().enumerate() {
        if !purchase.value.is_finite() {
            return Err(ChurnError::invalid_at(
                "purchases.value",
                index,
                "must be finite",
            ));
        }
        if purchase.time <= window_start || purchase.time > as_of {
            continue;
        }
        frequency += 1;
        monetary += purchase.value;
        last = Some(last.map_or(purchase.time, |t| t.max(purchase.time)));
    }
    Ok(last.map(|last| RfmValues {
        recency_secs: as_of - last,
        frequency,
        monetary,
    }))
}
