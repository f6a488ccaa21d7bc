//! The RFM settings' rules: the lookback, the score levels and the segment map, after
//! defaults.

use touchline_analytics::churn::rfm::{
    DEFAULT_SEGMENT_RULES, RfmSegment, RfmSegmentRule, ScoreLevels, ScoreRange,
};

use super::{
    DEFAULT_LOOKBACK_SECS, MAX_LOOKBACK_SECS, RfmOptions, RfmSettings, SegmentRuleSettings,
    positive_secs,
};
use crate::journeys::query::Violations;

/// The RFM options of `rfm` after defaults; violations under `path`.
pub fn rfm_options(rfm: &RfmSettings, path: &str, problems: &mut Violations) -> RfmOptions {
    let lookback_secs = match rfm.lookback {
        None => DEFAULT_LOOKBACK_SECS,
        Some(span) => match positive_secs(span, &format!("{path}.lookback"), problems) {
            Some(secs) if secs <= MAX_LOOKBACK_SECS => secs,
            Some(_) => {
                problems.add(
                    format!("{path}.lookback"),
                    "OUT_OF_RANGE",
                    "at most 30 years",
                );
                DEFAULT_LOOKBACK_SECS
            }
            None => DEFAULT_LOOKBACK_SECS,
        },
    };
    let levels = match rfm.score_levels {
        0 => ScoreLevels::FIVE,
        n => match u32::try_from(n).ok().map(ScoreLevels::new) {
            Some(Ok(levels)) => levels,
            _ => {
                problems.add(
                    format!("{path}.score_levels"),
                    "OUT_OF_RANGE",
                    "from 2 to 10",
                );
                ScoreLevels::FIVE
            }
        },
    };
    let rules = if rfm.segment_rules.is_empty() {
        None
    } else {
        Some(segment_rules(&rfm.segment_rules, levels, path, problems))
    };
    RfmOptions {
        lookback_secs,
        levels,
        rules,
    }
}

fn segment_rules(
    rules: &[SegmentRuleSettings],
    levels: ScoreLevels,
    path: &str,
    problems: &mut Violations,
) -> Vec<RfmSegmentRule> {
    let top = i32::from(levels.get());
    let mut out = Vec::with_capacity(rules.len());
    for (index, rule) in rules.iter().enumerate() {
        let at = format!("{path}.segment_rules[{index}]");
        let segment = u8::try_from(rule.segment)
            .ok()
            .and_then(RfmSegment::from_code);
        if segment.is_none() {
            problems.add(
                format!("{at}.segment"),
                "REQUIRED",
                "a named RFM segment is required",
            );
        }
        let names = ["recency", "frequency", "monetary"];
        let mut ranges = [ScoreRange::new(1, 1); 3];
        for (dimension, name) in names.iter().enumerate() {
            let (min, max) = (rule.bounds[2 * dimension], rule.bounds[2 * dimension + 1]);
            let mut fine = true;
            for (bound, value) in [("min", min), ("max", max)] {
                if !(0..=top).contains(&value) {
                    problems.add(
                        format!("{at}.{bound}_{name}_score"),
                        "OUT_OF_RANGE",
                        format!("from 0 (open) to the score levels, {top}"),
                    );
                    fine = false;
                }
            }
            if !fine {
                continue;
            }
            let lower = if min == 0 { 1 } else { min };
            let upper = if max == 0 { top } else { max };
            if lower > upper {
                problems.add(
                    format!("{at}.min_{name}_score"),
                    "OUT_OF_RANGE",
                    "the lower bound exceeds the upper bound",
                );
                continue;
            }
            // Both ends lie in 1..=10 here, so the casts are exact.
            ranges[dimension] = ScoreRange::new(lower as u8, upper as u8);
        }
        if let Some(segment) = segment {
            out.push(RfmSegmentRule {
                segment,
                recency: ranges[0],
                frequency: ranges[1],
                monetary: ranges[2],
            });
        }
    }
    out
}

/// The default map as the contract's rules.
pub fn default_segment_rules() -> Vec<SegmentRuleSettings> {
    DEFAULT_SEGMENT_RULES
        .iter()
        .map(|rule| SegmentRuleSettings {
            segment: i32::from(rule.segment.code()),
            bounds: [
                i32::from(rule.recency.min),
                i32::from(rule.recency.max),
                i32::from(rule.frequency.min),
                i32::from(rule.frequency.max),
                i32::from(rule.monetary.min),
                i32::from(rule.monetary.max),
            ],
        })
        .collect()
}
