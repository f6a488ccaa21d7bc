//! Builds a customer's BG/NBD summary (x, t_x, T) from raw purchase times.
//!
//! As in the paper's CDNOW analysis and lifetimes' `summary_data_from_transaction_data`, time is
//! counted in whole days of the tenant's time zone: purchases on the same local day are one
//! purchase, x is the number of distinct purchase days minus one, t_x is the days from the
//! first to the last purchase day and T the days from the first purchase day to the day of the
//! observation end, each divided by 7 when the unit is weeks (so weeks may be fractional).
//! Purchases after the observation end are left out (they belong to a later period or a
//! hold-out); a person with none before it has no summary.

use chrono::{DateTime, Datelike};
use chrono_tz::Tz;

use super::model::CustomerSummary;
use crate::churn::error::ChurnError;

/// The model's time unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimeUnit {
    /// Days (the contract's unit).
    #[default]
    Days,
    /// Weeks of 7 days (the paper's unit).
    Weeks,
}

impl TimeUnit {
    /// Days per unit.
    pub fn days(self) -> f64 {
        match self {
            Self::Days => 1.0,
            Self::Weeks => 7.0,
        }
    }
}

/// Builds summaries for many persons against one observation end, reusing its buffer.
#[derive(Debug, Clone)]
pub struct SummaryBuilder {
    time_zone: Tz,
    unit: TimeUnit,
    end_secs: i64,
    end_day: i64,
    days: Vec<i64>,
}

impl SummaryBuilder {
    /// A builder for observation end `end_secs` (Unix seconds), cutting days in `time_zone`.
    pub fn new(end_secs: i64, time_zone: Tz, unit: TimeUnit) -> Result<Self, ChurnError> {
        let end_day = local_day(end_secs, time_zone)
            .ok_or_else(|| ChurnError::invalid("observation_end", "is out of range"))?;
        Ok(Self {
            time_zone,
            unit,
            end_secs,
            end_day,
            days: Vec::new(),
        })
    }

    /// The summary of one person's purchase times (Unix seconds, any order); `None` when no
    /// purchase falls at or before the observation end.
    pub fn summarize(
        &mut self,
        purchase_times: &[i64],
    ) -> Result<Option<CustomerSummary>, ChurnError> {
        self.days.clear();
        for (index, &secs) in purchase_times.iter().enumerate() {
            if secs > self.end_secs {
                continue;
            }
            let day = local_day(secs, self.time_zone).ok_or_else(|| {
                ChurnError::invalid_at("purchase_times", index, "is out of range")
            })?;
            self.days.push(day);
        }
        self.days.sort_unstable();
        self.days.dedup();
        let (Some(&first), Some(&last)) = (self.days.first(), self.days.last()) else {
            return Ok(None);
        };
        let unit = self.unit.days();
        let summary = CustomerSummary {
            repeat_purchases: (self.days.len() - 1) as u64,
            recency: (last - first) as f64 / unit,
            age: (self.end_day - first) as f64 / unit,
        };
        Ok(Some(summary))
    }
}

/// Days since the common era of the local date of `secs` in `time_zone`.
fn local_day(secs: i64, time_zone: Tz) -> Option<i64> {
    let utc = DateTime::from_timestamp(secs, 0)?;
    Some(i64::from(
        utc.with_timezone(&time_zone)
            .date_naive()
            .num_days_from_ce(),
    ))
}
