//! The named RFM segments and the map from scores to them.
//!
//! The default map is the ten-segment table of the R package `rfm` (its `rfm_segment` example:
//! Champions, Loyal Customers, Potential Loyalist, New Customers, Promising, Need Attention,
//! About To Sleep, At Risk, Can't Lose Them, Lost, each a range of R, F and M scores), with two
//! changes, written down here:
//! - That package lets a later row overwrite an earlier one; our contract says first match wins,
//!   so the table is listed in reverse, which gives every score the same segment.
//! - In that package's order the Loyal Customers row (R 2–5, F 3–5, M 3–5) comes after and
//!   covers the Champions row, so nobody could be a champion; here Champions is tried before
//!   Loyal, so R 4–5, F 4–5, M 4–5 are champions.
//! - Its "Lost" row (R 1–2, F 1–2, M 1–2) is split in two so the contract's eleventh segment
//!   exists: R = 1 stays `Lost`, R = 2 becomes `Hibernating` (bought long ago, little and
//!   rarely, but not the longest ago).
//!
//! Scores no rule matches get `Other`. The default map is written for 5 levels; with another
//! level count L a score s is first mapped linearly onto 1..=5, `1 + round(4·(s−1)/(L−1))` with
//! halves rounded up (so level 1 stays 1 and level L becomes 5), and custom maps see the raw
//! scores.

use super::score::{RfmScores, ScoreLevels};
use crate::churn::error::ChurnError;

/// A named RFM segment; the code is the contract's enum number and never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum RfmSegment {
    /// Bought recently, buy often and spend the most.
    Champions = 1,
    /// Buy regularly and spend well.
    Loyal = 2,
    /// Recent customers with average frequency.
    PotentialLoyalist = 3,
    /// Bought most recently, but not often.
    NewCustomers = 4,
    /// Recent shoppers who have not spent much.
    Promising = 5,
    /// Middling recency, frequency and monetary value.
    NeedAttention = 6,
    /// Below-average recency and frequency.
    AboutToSleep = 7,
    /// Spent and bought often, but long ago.
    AtRisk = 8,
    /// Used to be among the best, have not come back for long.
    CannotLose = 9,
    /// Bought long ago, few orders, low spend.
    Hibernating = 10,
    /// Lowest recency with low frequency and spend.
    Lost = 11,
    /// Matched no rule.
    Other = 12,
}

impl RfmSegment {
    /// Every segment, by code.
    pub const ALL: [Self; 12] = [
        Self::Champions,
        Self::Loyal,
        Self::PotentialLoyalist,
        Self::NewCustomers,
        Self::Promising,
        Self::NeedAttention,
        Self::AboutToSleep,
        Self::AtRisk,
        Self::CannotLose,
        Self::Hibernating,
        Self::Lost,
        Self::Other,
    ];

    /// The stable code (the contract's `RfmSegment` number).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The segment with `code`, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// The English display name.
    pub fn name_en(self) -> &'static str {
        match self {
            Self::Champions => "Champions",
            Self::Loyal => "Loyal",
            Self::PotentialLoyalist => "Potential loyalist",
            Self::NewCustomers => "New customers",
            Self::Promising => "Promising",
            Self::NeedAttention => "Need attention",
            Self::AboutToSleep => "About to sleep",
            Self::AtRisk => "At risk",
            Self::CannotLose => "Cannot lose",
            Self::Hibernating => "Hibernating",
            Self::Lost => "Lost",
            Self::Other => "Other",
        }
    }

    /// The simplified-Chinese display name.
    pub fn name_zh_cn(self) -> &'static str {
        match self {
            Self::Champions => "冠军客户",
            Self::Loyal => "忠诚客户",
            Self::PotentialLoyalist => "潜在忠诚客户",
            Self::NewCustomers => "新客户",
            Self::Promising => "有潜力客户",
            Self::NeedAttention => "需要关注客户",
            Self::AboutToSleep => "即将沉睡客户",
            Self::AtRisk => "流失风险客户",
            Self::CannotLose => "不能失去的客户",
            Self::Hibernating => "休眠客户",
            Self::Lost => "已流失客户",
            Self::Other => "其他",
        }
    }
}

/// An inclusive score range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScoreRange {
    /// Lowest score, inclusive.
    pub min: u8,
    /// Highest score, inclusive.
    pub max: u8,
}

impl ScoreRange {
    /// The range `min..=max`.
    pub const fn new(min: u8, max: u8) -> Self {
        Self { min, max }
    }

    /// A range from the contract's bounds, where 0 means open.
    pub fn from_bounds(min: u32, max: u32, levels: ScoreLevels) -> Result<Self, ChurnError> {
        let top = u32::from(levels.get());
        let min = if min == 0 { 1 } else { min };
        let max = if max == 0 { top } else { max };
        if max > top || min > max {
            return Err(ChurnError::invalid(
                "segment_rules",
                format!("score range {min}..={max} is empty or above {top}"),
            ));
        }
        // Both ends are now at most 10, so the casts are exact.
        Ok(Self {
            min: min as u8,
            max: max as u8,
        })
    }

    /// True when `score` is in the range.
    pub fn contains(self, score: u8) -> bool {
        (self.min..=self.max).contains(&score)
    }
}

/// Persons whose scores fall in all three ranges get `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RfmSegmentRule {
    /// The segment.
    pub segment: RfmSegment,
    /// Recency scores.
    pub recency: ScoreRange,
    /// Frequency scores.
    pub frequency: ScoreRange,
    /// Monetary scores.
    pub monetary: ScoreRange,
}

impl RfmSegmentRule {
    /// True when the scores fall in all three ranges.
    pub fn matches(&self, scores: RfmScores) -> bool {
        self.recency.contains(scores.recency)
            && self.frequency.contains(scores.frequency)
            && self.monetary.contains(scores.monetary)
    }
}

const fn rule(segment: RfmSegment, r: (u8, u8), f: (u8, u8), m: (u8, u8)) -> RfmSegmentRule {
    RfmSegmentRule {
        segment,
        recency: ScoreRange::new(r.0, r.1),
        frequency: ScoreRange::new(f.0, f.1),
        monetary: ScoreRange::new(m.0, m.1),
    }
}

/// The default map for 5 levels, first match wins (see the module docs for its source).
pub const DEFAULT_SEGMENT_RULES: [RfmSegmentRule; 11] = [
    rule(RfmSegment::Lost, (1, 1), (1, 2), (1, 2)),
    rule(RfmSegment::Hibernating, (2, 2), (1, 2), (1, 2)),
    rule(RfmSegment::CannotLose, (1, 1), (4, 5), (4, 5)),
    rule(RfmSegment::AtRisk, (1, 2), (2, 5), (2, 5)),
    rule(RfmSegment::AboutToSleep, (2, 3), (1, 2), (1, 2)),
    rule(RfmSegment::NeedAttention, (2, 3), (2, 3), (2, 3)),
    rule(RfmSegment::Promising, (3, 4), (1, 1), (1, 1)),
    rule(RfmSegment::NewCustomers, (4, 5), (1, 1), (1, 1)),
    rule(RfmSegment::PotentialLoyalist, (3, 5), (1, 3), (1, 3)),
    rule(RfmSegment::Champions, (4, 5), (4, 5), (4, 5)),
    rule(RfmSegment::Loyal, (2, 5), (3, 5), (3, 5)),
];

/// The segment of the first matching rule, `Other` when none matches.
pub fn classify(rules: &[RfmSegmentRule], scores: RfmScores) -> RfmSegment {
    rules
        .iter()
        .find(|rule| rule.matches(scores))
        .map_or(RfmSegment::Other, |rule| rule.segment)
}

/// The default map's segment for scores on `levels` levels (mapped onto 1..=5 first).
pub fn classify_default(scores: RfmScores, levels: ScoreLevels) -> RfmSegment {
    let steps = levels.get() - 1;
    // round(4·(s−1)/steps) = ⌊(8·(s−1) + steps) / (2·steps)⌋; scores are at most 10, so no overflow.
    let to_five = |score: u8| 1 + (8 * score.saturating_sub(1) + steps) / (2 * steps);
    let rescaled = RfmScores {
        recency: to_five(scores.recency),
        frequency: to_five(scores.frequency),
        monetary: to_five(scores.monetary),
    };
    classify(&DEFAULT_SEGMENT_RULES, rescaled)
}
