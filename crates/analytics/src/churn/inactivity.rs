//! Inactivity rules: a person is churned after N days without qualifying activity, and a
//! suggestion of N from the gaps between consecutive purchases.
//!
//! Rules chosen where the definitions leave room:
//! - Time is Unix seconds; a day is 86,400 seconds of elapsed time (not a calendar day), so a
//!   threshold means the same span in every time zone and across DST changes.
//! - A person is churned when `as_of − last_activity ≥ N days` (at exactly N days the N days
//!   have passed). Activity stamped after `as_of` (clock skew) counts as inactive for 0 seconds.
//!   A person with no qualifying activity at all is `NeverActive`, not churned: they never
//!   started, so there is nothing to lose.
//! - Gaps are the differences between consecutive purchase times of one person; equal
//!   timestamps are one purchase recorded twice, so zero gaps are left out.
//! - The suggestion is the p-th percentile of the gaps with linear interpolation between the
//!   closest ranks (the common "type 7" definition: position `(n − 1)·p` in the sorted gaps),
//!   rounded up to whole days and clamped to the contract's 1–1,095 days. With fewer gaps than
//!   `min_gap_count` the percentile says little, so the suggestion is the documented fallback
//!   (90 days by default) and says so.
//! - Rules are tried in order, first match wins; a rule without a segment is the default, there
//!   is at most one and it comes last.

use super::error::ChurnError;

/// Seconds in one day of elapsed time.
pub const SECONDS_PER_DAY: i64 = 86_400;
/// The longest inactivity threshold the contract allows, in days.
pub const MAX_THRESHOLD_DAYS: u32 = 1_095;
/// The gap percentile a suggestion uses unless told otherwise.
pub const DEFAULT_SUGGESTION_PERCENTILE: f64 = 0.9;
/// Fewer gaps than this and the suggestion falls back to `fallback_days`.
pub const DEFAULT_MIN_GAP_COUNT: u64 = 10;
/// The threshold suggested when there are too few gaps, in days.
pub const DEFAULT_FALLBACK_DAYS: u32 = 90;

/// N: whole days without qualifying activity after which a person is churned (1–1,095).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InactivityThreshold {
    days: u32,
}

impl InactivityThreshold {
    /// A threshold of `days` whole days; refuses 0 and more than 1,095.
    pub fn from_days(days: u32) -> Result<Self, ChurnError> {
        if days == 0 || days > MAX_THRESHOLD_DAYS {
            return Err(ChurnError::invalid(
                "threshold",
                format!("must be 1 to {MAX_THRESHOLD_DAYS} days, got {days}"),
            ));
        }
        Ok(Self { days })
    }

    /// The threshold in days.
    pub fn days(self) -> u32 {
        self.days
    }

    /// The threshold in seconds.
    pub fn seconds(self) -> i64 {
        i64::from(self.days) * SECONDS_PER_DAY
    }
}

/// Where a person stands against their inactivity threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InactivityStatus {
    /// No qualifying activity at all; never churned.
    NeverActive,
    /// Active within the threshold.
    Active {
        /// Seconds since the last qualifying activity (0 when it is after `as_of`).
        inactive_for_secs: i64,
    },
    /// At or past the threshold.
    Churned {
        /// Seconds since the last qualifying activity.
        inactive_for_secs: i64,
    },
}

impl InactivityStatus {
    /// True for `Churned`.
    pub fn is_churned(self) -> bool {
        matches!(self, Self::Churned { .. })
    }
}

/// Applies an inactivity threshold to a person's last qualifying activity (Unix seconds).
pub fn inactivity_status(
    last_activity: Option<i64>,
    as_of: i64,
    threshold: InactivityThreshold,
) -> InactivityStatus {
    let Some(last) = last_activity else {
        return InactivityStatus::NeverActive;
    };
    let inactive_for_secs = as_of.saturating_sub(last).max(0);
    if inactive_for_secs >= threshold.seconds() {
        InactivityStatus::Churned { inactive_for_secs }
    } else {
        InactivityStatus::Active { inactive_for_secs }
    }
}

/// One inactivity rule: members of `segment` (everyone when `None`) churn after `threshold`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InactivityRule<S> {
    /// The segment the rule applies to; `None` is the default rule.
    pub segment: Option<S>,
    /// N.
    pub threshold: InactivityThreshold,
}

/// Checks a rule list: not empty, at most one default rule and, if present, it comes last.
pub fn validate_rules<S>(rules: &[InactivityRule<S>]) -> Result<(), ChurnError> {
    if rules.is_empty() {
        return Err(ChurnError::invalid(
            "inactivity_rules",
            "must hold at least one rule",
        ));
    }
    let last = rules.len() - 1;
    match rules.iter().position(|rule| rule.segment.is_none()) {
        Some(index) if index != last => Err(ChurnError::invalid_at(
            "inactivity_rules.segment",
            index,
            "the default rule (no segment) must be the only one and come last",
        )),
        _ => Ok(()),
    }
}

/// The first rule whose segment the person belongs to (the default rule matches everyone);
/// `None` when no rule applies.
pub fn select_rule<S>(
    rules: &[InactivityRule<S>],
    mut is_member: impl FnMut(&S) -> bool,
) -> Option<&InactivityRule<S>> {
    rules
        .iter()
        .find(|rule| rule.segment.as_ref().is_none_or(&mut is_member))
}

/// How a threshold is suggested from purchase gaps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuggestionOptions {
    /// The percentile of the gaps, 0–1; default 0.9.
    pub percentile: f64,
    /// Fewer gaps than this and the fallback is used; default 10.
    pub min_gap_count: u64,
    /// The suggestion when gaps are too few, in days; default 90.
    pub fallback_days: u32,
}

impl Default for SuggestionOptions {
    fn default() -> Self {
        Self {
            percentile: DEFAULT_SUGGESTION_PERCENTILE,
            min_gap_count: DEFAULT_MIN_GAP_COUNT,
            fallback_days: DEFAULT_FALLBACK_DAYS,
        }
    }
}

/// A suggested threshold and what it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdSuggestion {
    /// The suggested N.
    pub threshold: InactivityThreshold,
    /// Gaps the suggestion was computed from.
    pub gap_sample_size: u64,
    /// The percentile gap in seconds before rounding; `None` when the fallback was used.
    pub percentile_gap_secs: Option<f64>,
}

/// The purchase gaps of a set of persons, mergeable across partitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PurchaseGapSample {
    gaps_secs: Vec<i64>,
}

impl PurchaseGapSample {
    /// An empty sample.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one person's purchase times (Unix seconds, sorted ascending; equal times allowed).
    pub fn add_person(&mut self, purchase_times: &[i64]) -> Result<(), ChurnError> {
        for (index, pair) in purchase_times.windows(2).enumerate() {
            let gap = pair[1].checked_sub(pair[0]).ok_or_else(|| {
                ChurnError::invalid_at("purchase_times", index + 1, "gap overflows")
            })?;
            if gap < 0 {
                return Err(ChurnError::invalid_at(
                    "purchase_times",
                    index + 1,
                    "must be sorted ascending",
                ));
            }
            if gap > 0 {
                self.gaps_secs.push(gap);
            }
        }
        Ok(())
    }

    /// Adds another partition's gaps.
    pub fn merge(&mut self, other: Self) {
        self.gaps_secs.extend(other.gaps_secs);
    }

    /// Gaps held.
    pub fn len(&self) -> u64 {
        self.gaps_secs.len() as u64
    }

    /// True when no gap is held.
    pub fn is_empty(&self) -> bool {
        self.gaps_secs.is_empty()
    }

    /// Suggests N from the gaps (reorders the sample in place; its contents stay the same).
    pub fn suggest(
        &mut self,
        options: &SuggestionOptions,
    ) -> Result<ThresholdSuggestion, ChurnError> {
        if !(0.0..=1.0).contains(&options.percentile) {
            return Err(ChurnError::invalid(
                "suggestion_percentile",
                "must be between 0 and 1",
            ));
        }
        let fallback = InactivityThreshold::from_days(options.fallback_days)?;
        let gap_sample_size = self.len();
        if self.is_empty() || gap_sample_size < options.min_gap_count {
            return Ok(ThresholdSuggestion {
                threshold: fallback,
                gap_sample_size,
                percentile_gap_secs: None,
            });
        }
        let gap = interpolated_percentile(&mut self.gaps_secs, options.percentile);
        Ok(ThresholdSuggestion {
            threshold: threshold_from_gap(gap),
            gap_sample_size,
            percentile_gap_secs: Some(gap),
        })
    }
}

/// Rounds a gap in seconds up to whole days, clamped to 1–1,095.
fn threshold_from_gap(gap_secs: f64) -> InactivityThreshold {
    let days = (gap_secs / SECONDS_PER_DAY as f64)
        .ceil()
        .clamp(1.0, f64::from(MAX_THRESHOLD_DAYS));
    // The clamp keeps `days` inside 1..=1095, so the cast is exact.
    InactivityThreshold { days: days as u32 }
}

/// The type-7 percentile of a non-empty slice, by selection rather than a full sort.
fn interpolated_percentile(values: &mut [i64], percentile: f64) -> f64 {
    let position = (values.len() - 1) as f64 * percentile;
    let lower_rank = position.floor() as usize;
    let (_, lower, upper_part) = values.select_nth_unstable(lower_rank);
    let lower = *lower as f64;
    let fraction = position - lower_rank as f64;
    match upper_part.iter().min() {
        Some(&upper) if fraction > 0.0 => lower + fraction * (upper as f64 - lower),
        _ => lower,
    }
}
