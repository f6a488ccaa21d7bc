//! RFM: recency, frequency and monetary value scored by quantiles and mapped to named segments.
//!
//! `values` turns a person's purchases into their RFM values, `score` cuts the quantile bounds
//! and scores persons, `segment` names the score combinations, `report` totals a run per segment
//! and per score cell.

pub mod report;
pub mod score;
pub mod segment;
pub mod values;

pub use report::{RfmReport, ScoreCell, SegmentSummary};
pub use score::{RfmScores, RfmThresholds, RfmValues, ScoreLevels, score_persons};
pub use segment::{
    DEFAULT_SEGMENT_RULES, RfmSegment, RfmSegmentRule, ScoreRange, classify, classify_default,
};
pub use values::{Purchase, rfm_values};
