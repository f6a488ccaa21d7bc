//! RFM scores: recency, frequency and monetary value each scored 1..=L by quantiles.
//!
//! Quantile bounds use the nearest-rank ("inverted CDF") definition: over the n persons' values
//! sorted ascending, bound i (1 ≤ i < L) is the smallest value v with at least `i·n/L` persons at
//! or below it, i.e. the value at 1-based rank `⌈i·n/L⌉`. Every bound is an observed value (a
//! frequency bound is a whole purchase count), and the bounds never decrease.
//!
//! Scores follow the contract's bounds: level k covers values above bound k−1 and up to bound k,
//! so a value's level is 1 + the number of bounds strictly below it. That is the tie rule: equal
//! values always share a level, and where many persons share a value, levels may be left empty
//! instead of splitting them. Frequency and monetary score their level (higher is better);
//! recency is measured as time since the last purchase, so its score is `L + 1 − level` (fewer
//! seconds scores higher).
//!
//! Bounds need every person's values; the per-person scoring after that is independent, so
//! partitions can score in parallel against the same bounds.

use crate::churn::error::ChurnError;

/// One person's RFM values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RfmValues {
    /// Seconds from the last purchase to the evaluation time (≥ 0).
    pub recency_secs: i64,
    /// Purchases in the lookback (≥ 1 for a scored person).
    pub frequency: u64,
    /// Total purchase value in the lookback (finite; refunds may make it negative).
    pub monetary: f64,
}

/// One person's scores, each 1..=levels, higher is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RfmScores {
    /// Recency score (higher is more recent).
    pub recency: u8,
    /// Frequency score.
    pub frequency: u8,
    /// Monetary score.
    pub monetary: u8,
}

/// The number of score levels per dimension, 2 to 10 (default 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScoreLevels(u8);

impl ScoreLevels {
    /// The default: scores 1–5.
    pub const FIVE: Self = Self(5);

    /// Levels `count`; refuses fewer than 2 or more than 10.
    pub fn new(count: u32) -> Result<Self, ChurnError> {
        match u8::try_from(count) {
            Ok(levels @ 2..=10) => Ok(Self(levels)),
            _ => Err(ChurnError::invalid(
                "score_levels",
                format!("must be 2 to 10, got {count}"),
            )),
        }
    }

    /// The level count.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for ScoreLevels {
    fn default() -> Self {
        Self::FIVE
    }
}

/// The quantile bounds: `levels − 1` per dimension, non-decreasing.
#[derive(Debug, Clone, PartialEq)]
pub struct RfmThresholds {
    /// The level count the bounds were cut for.
    pub levels: ScoreLevels,
    /// Recency bounds in seconds (fewer seconds score higher).
    pub recency_secs: Vec<i64>,
    /// Frequency bounds, purchases.
    pub frequency: Vec<u64>,
    /// Monetary bounds.
    pub monetary: Vec<f64>,
}

impl RfmThresholds {
    /// Cuts the bounds from every scored person's values; refuses an empty set, negative
    /// recency and non-finite monetary values.
    pub fn from_values(values: &[RfmValues], levels: ScoreLevels) -> Result<Self, ChurnError> {
        if values.is_empty() {
            return Err(ChurnError::invalid(
                "persons",
                "at least one person with a purchase is needed",
            ));
        }
        validate(values)?;
        let mut recency: Vec<i64> = values.iter().map(|v| v.recency_secs).collect();
        let mut frequency: Vec<u64> = values.iter().map(|v| v.frequency).collect();
        let mut monetary: Vec<f64> = values.iter().map(|v| v.monetary).collect();
        recency.sort_unstable();
        frequency.sort_unstable();
        monetary.sort_unstable_by(f64::total_cmp);
        Ok(Self {
            levels,
            recency_secs: nearest_rank_bounds(&recency, levels),
            frequency: nearest_rank_bounds(&frequency, levels),
            monetary: nearest_rank_bounds(&monetary, levels),
        })
    }

    /// Recency bounds in days, as the contract reports them.
    pub fn recency_days(&self) -> Vec<f64> {
        self.recency_secs
            .iter()
            .map(|&secs| secs as f64 / 86_400.0)
            .collect()
    }

    /// Scores one person against the bounds.
    pub fn score(&self, values: &RfmValues) -> RfmScores {
        let levels = self.levels.get();
        let recency_level = level_of(&self.recency_secs, &values.recency_secs, i64::cmp);
        RfmScores {
            recency: levels + 1 - recency_level,
            frequency: level_of(&self.frequency, &values.frequency, u64::cmp),
            monetary: level_of(&self.monetary, &values.monetary, f64::total_cmp),
        }
    }
}

/// Refuses values the scores cannot order.
fn validate(values: &[RfmValues]) -> Result<(), ChurnError> {
    for (index, value) in values.iter().enumerate() {
        if value.recency_secs < 0 {
            return Err(ChurnError::invalid_at(
                "persons.recency",
                index,
                "must not be negative",
            ));
        }
        if !value.monetary.is_finite() {
            return Err(ChurnError::invalid_at(
                "persons.monetary",
                index,
                "must be finite",
            ));
        }
    }
    Ok(())
}

/// Bound i is the value at 1-based rank ⌈i·n/L⌉ of the sorted values.
fn nearest_rank_bounds<T: Copy>(sorted: &[T], levels: ScoreLevels) -> Vec<T> {
    let n = sorted.len();
    let l = usize::from(levels.get());
    (1..l).map(|i| sorted[(i * n).div_ceil(l) - 1]).collect()
}

/// 1 + the number of bounds strictly below `value` (bounds are sorted).
fn level_of<T>(bounds: &[T], value: &T, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) -> u8 {
    let below = bounds.partition_point(|bound| cmp(bound, value).is_lt());
    // At most 9 bounds, so the count fits in a u8.
    below as u8 + 1
}

/// Cuts the bounds and scores every person, in input order.
pub fn score_persons(
    values: &[RfmValues],
    levels: ScoreLevels,
) -> Result<(RfmThresholds, Vec<RfmScores>), ChurnError> {
    let thresholds = RfmThresholds::from_values(values, levels)?;
    let scores = values.iter().map(|value| thresholds.score(value)).collect();
    Ok((thresholds, scores))
}
