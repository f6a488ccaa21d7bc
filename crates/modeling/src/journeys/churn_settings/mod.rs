//! The tenant's model settings (lifecycle, RFM, churn) as the service holds them, the rules
//! they must meet, the field mask that changes them and the effective values after defaults.
//!
//! Rules chosen where the contract leaves room:
//! - Purchases are the projection's events; their value is the dictionary's value property
//!   (what the projection keeps), so `value_field` must stay empty: another field cannot be
//!   read yet and is refused rather than silently ignored.
//! - Inactivity rules are tried in order and the first whose segment holds the person applies;
//!   the rule without a segment (the default) may only come last. A list without one ends
//!   with the implicit default rule (suggested threshold, 90th percentile), so every person
//!   has a rule. A segment rule's threshold, when not fixed, is suggested from the gaps of the
//!   purchasers the rule applies to.
//! - Durations the contract counts in whole days (thresholds) must be whole days; the other
//!   spans are taken to the second.
//! - The probability-alive model is stored as chosen (unset stays unset), so a tenant who never
//!   chose follows `DEFAULT_CHURN_MODEL`, and one who chose keeps their choice.

use chrono_tz::Tz;
use touchline_analytics::churn::bgnbd::{BetaGeoModel, BgNbdParams};
use touchline_analytics::churn::inactivity::{
    DEFAULT_SUGGESTION_PERCENTILE, InactivityThreshold, MAX_THRESHOLD_DAYS, SECONDS_PER_DAY,
};
use touchline_analytics::churn::rfm::{RfmSegmentRule, ScoreLevels};

use super::query::{Matcher, Violations, check_matcher};

mod mask;
mod rfm;

pub use mask::{MASK_PATHS, apply_mask};
pub use rfm::{default_segment_rules, rfm_options};

/// The default period expected purchases are predicted for, in days.
pub const DEFAULT_PREDICTION_DAYS: u32 = 30;
/// The longest prediction period, in days.
pub const MAX_PREDICTION_DAYS: i64 = 366;
/// The most inactivity rules a tenant may set: each segment rule reads the segment's members
/// whenever the scores are computed.
pub const MAX_INACTIVITY_RULES: usize = 20;
/// The default fit window: three years of 365 days.
pub const DEFAULT_FIT_WINDOW_SECS: i64 = 3 * 365 * SECONDS_PER_DAY;
/// The default refit interval: a day.
pub const DEFAULT_REFIT_SECS: i64 = SECONDS_PER_DAY;
/// The shortest refit interval: an hour.
pub const MIN_REFIT_SECS: i64 = 3_600;
/// The longest fit window accepted: 30 years.
pub const MAX_FIT_WINDOW_SECS: i64 = 30 * 366 * SECONDS_PER_DAY;
/// The default RFM lookback: 365 days.
pub const DEFAULT_LOOKBACK_SECS: i64 = 365 * SECONDS_PER_DAY;
/// The longest RFM lookback accepted: 30 years.
pub const MAX_LOOKBACK_SECS: i64 = 30 * 366 * SECONDS_PER_DAY;
/// The default lifecycle K.
pub const DEFAULT_CHURN_INTERVALS: i32 = 3;
/// The contract's `ChurnModel` numbers.
pub const CHURN_MODEL_BG_NBD: i32 = 1;
/// `CHURN_MODEL_MBG_NBD`.
pub const CHURN_MODEL_MBG_NBD: i32 = 2;
/// The probability-alive model of a tenant who did not choose one.
pub const DEFAULT_CHURN_MODEL: BetaGeoModel = BetaGeoModel::MbgNbd;
/// The contract's `ChurnModelEvents` numbers.
pub const CHURN_MODEL_EVENTS_PURCHASES: i32 = 1;
/// `CHURN_MODEL_EVENTS_ANY_EVENT`.
pub const CHURN_MODEL_EVENTS_ANY_EVENT: i32 = 2;
/// What the probability-alive model counts of a tenant who did not choose.
pub const DEFAULT_MODEL_EVENTS: ModelEvents = ModelEvents::Purchases;

/// What the probability-alive model counts as a person's transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelEvents {
    /// Days with a purchase.
    Purchases,
    /// Days with any event.
    AnyEvent,
}

/// The model events of a contract `ChurnModelEvents` number (0: the default).
pub fn model_events(number: i32) -> Option<ModelEvents> {
    match number {
        0 => Some(DEFAULT_MODEL_EVENTS),
        CHURN_MODEL_EVENTS_PURCHASES => Some(ModelEvents::Purchases),
        CHURN_MODEL_EVENTS_ANY_EVENT => Some(ModelEvents::AnyEvent),
        _ => None,
    }
}

/// The contract's `ChurnModelEvents` number.
pub fn model_events_number(events: ModelEvents) -> i32 {
    match events {
        ModelEvents::Purchases => CHURN_MODEL_EVENTS_PURCHASES,
        ModelEvents::AnyEvent => CHURN_MODEL_EVENTS_ANY_EVENT,
    }
}
/// Interval numbers of the contract (`Interval`).
pub const INTERVAL_HOUR: i32 = 1;
/// `INTERVAL_WEEK`.
pub const INTERVAL_WEEK: i32 = 3;
/// `INTERVAL_MONTH`.
pub const INTERVAL_MONTH: i32 = 4;

/// A span as the contract carries it: seconds and nanoseconds.
pub type Span = (i64, i32);

/// One inactivity rule as set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSettings {
    /// The segment's name; empty for the default rule.
    pub segment: String,
    /// N, when set.
    pub threshold: Option<Span>,
    /// The gap percentile of the suggestion; 0 means the default 0.9.
    pub suggestion_percentile: f64,
}

/// The BG/NBD settings as set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BgNbdSettings {
    /// The fit window, when set.
    pub fit_window: Option<Span>,
    /// The refit interval, when set.
    pub refit_interval: Option<Span>,
    /// `[r, α, a, b]`, when fixed.
    pub fixed_parameters: Option<[f64; 4]>,
    /// The period expected purchases are predicted for, when set.
    pub prediction_period: Option<Span>,
}

/// One RFM segment rule as set: the contract's segment number and its six bounds
/// (min/max recency, frequency, monetary; 0 open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentRuleSettings {
    /// The contract's `RfmSegment` number.
    pub segment: i32,
    /// Min and max recency, frequency and monetary scores.
    pub bounds: [i32; 6],
}

/// The RFM settings as set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RfmSettings {
    /// The lookback, when set.
    pub lookback: Option<Span>,
    /// Score levels; 0 means 5.
    pub score_levels: i32,
    /// The segment map; empty means the default.
    pub segment_rules: Vec<SegmentRuleSettings>,
}

/// The lifecycle settings as set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LifecycleSettings {
    /// The contract's `Interval` number; 0 means weeks.
    pub interval: i32,
    /// Qualifying events; empty means every event.
    pub qualifying: Vec<Matcher>,
    /// K; 0 means 3.
    pub churn_intervals: i32,
}

/// The churn settings as set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChurnSettings {
    /// Inactivity rules; empty means one default rule with the suggested threshold.
    pub inactivity_rules: Vec<RuleSettings>,
    /// Activity for inactivity rules; empty means the purchase event.
    pub qualifying: Vec<Matcher>,
    /// The contract's `ChurnModel` number; 0 means `DEFAULT_CHURN_MODEL`.
    pub model: i32,
    /// The contract's `ChurnModelEvents` number; 0 means `DEFAULT_MODEL_EVENTS`.
    pub model_events: i32,
    /// The probability-alive model's fit (either model: both have r, α, a, b).
    pub bg_nbd: BgNbdSettings,
}

/// A tenant's model settings as set (unset fields take their defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelSettings {
    /// IANA time zone; empty means UTC.
    pub time_zone: String,
    /// The contract's `Weekday` number; 0 means Monday.
    pub week_start: i32,
    /// What a purchase is; `None` means the dictionary's conversion events.
    pub purchase_event: Option<Matcher>,
    /// The value field; must be empty (see the module docs).
    pub value_field: String,
    /// Lifecycle.
    pub lifecycle: LifecycleSettings,
    /// Churn.
    pub churn: ChurnSettings,
    /// RFM.
    pub rfm: RfmSettings,
    /// The event properties journey analyses may read (`properties.{name}` paths).
    pub analysable_properties: Vec<String>,
}

/// Stored settings with their version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionedSettings {
    /// The settings.
    pub settings: ModelSettings,
    /// The etag: the stored revision as text ("0" before the first change).
    pub etag: String,
    /// When they last changed (ms); `None` before the first change.
    pub update_ms: Option<i64>,
}

/// The RFM options after defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RfmOptions {
    /// Lookback, seconds.
    pub lookback_secs: i64,
    /// Score levels.
    pub levels: ScoreLevels,
    /// A custom segment map; `None` uses the default map.
    pub rules: Option<Vec<RfmSegmentRule>>,
}

/// The settings after defaults, every rule checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// Time zone days are cut in.
    pub time_zone: Tz,
    /// What a purchase is; `None` means the dictionary's conversion events.
    pub purchase_event: Option<Matcher>,
    /// Activity for the inactivity rule; empty means purchases.
    pub qualifying: Vec<Matcher>,
    /// The inactivity rules in order, the last one the default rule (no segment).
    pub rules: Vec<EffectiveRule>,
    /// The fit window, seconds.
    pub fit_window_secs: i64,
    /// The refit interval, seconds.
    pub refit_secs: i64,
    /// The probability-alive model.
    pub model: BetaGeoModel,
    /// What that model counts as transactions.
    pub model_events: ModelEvents,
    /// Fixed model parameters, when set.
    pub fixed_parameters: Option<BgNbdParams>,
    /// The period expected purchases are predicted for, whole days.
    pub prediction_days: u32,
    /// RFM.
    pub rfm: RfmOptions,
}

/// One inactivity rule after defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveRule {
    /// The segment (`tenants/{tenant}/segments/{id}`) whose members it applies to; `None` for
    /// the default rule, which applies to everyone no earlier rule took.
    pub segment: Option<String>,
    /// The fixed threshold, when set; otherwise the suggestion applies.
    pub threshold: Option<InactivityThreshold>,
    /// The suggestion's percentile.
    pub suggestion_percentile: f64,
}

impl EffectiveRule {
    /// The default rule with the suggested threshold at the default percentile.
    pub fn suggested_default() -> Self {
        Self {
            segment: None,
            threshold: None,
            suggestion_percentile: DEFAULT_SUGGESTION_PERCENTILE,
        }
    }
}

/// Whole seconds of a span, refusing negative, zero and fractional-second spans.
fn positive_secs(span: Span, field: &str, problems: &mut Violations) -> Option<i64> {
    let (seconds, nanos) = span;
    if seconds < 0 || nanos < 0 || (seconds == 0 && nanos == 0) {
        problems.add(field, "OUT_OF_RANGE", "must be positive");
        return None;
    }
    if nanos != 0 {
        problems.add(field, "OUT_OF_RANGE", "must be whole seconds");
        return None;
    }
    Some(seconds)
}

/// A whole-day threshold from 1 to 1,095 days.
fn threshold(span: Span, field: &str, problems: &mut Violations) -> Option<InactivityThreshold> {
    let secs = positive_secs(span, field, problems)?;
    if secs % SECONDS_PER_DAY != 0 {
        problems.add(field, "OUT_OF_RANGE", "must be whole days");
        return None;
    }
    let days = u32::try_from(secs / SECONDS_PER_DAY).unwrap_or(u32::MAX);
    match InactivityThreshold::from_days(days) {
        Ok(threshold) => Some(threshold),
        Err(_) => {
            problems.add(
                field,
                "OUT_OF_RANGE",
                format!("from 1 to {MAX_THRESHOLD_DAYS} days"),
            );
            None
        }
    }
}

/// The model of a contract `ChurnModel` number (0: the default).
pub fn churn_model(number: i32) -> Option<BetaGeoModel> {
    match number {
        0 => Some(DEFAULT_CHURN_MODEL),
        CHURN_MODEL_BG_NBD => Some(BetaGeoModel::BgNbd),
        CHURN_MODEL_MBG_NBD => Some(BetaGeoModel::MbgNbd),
        _ => None,
    }
}

/// The contract's `ChurnModel` number of a model.
pub fn churn_model_number(model: BetaGeoModel) -> i32 {
    match model {
        BetaGeoModel::BgNbd => CHURN_MODEL_BG_NBD,
        BetaGeoModel::MbgNbd => CHURN_MODEL_MBG_NBD,
    }
}

/// Checks a purchase matcher's filters, naming problems under `path`.
pub fn check_purchase(matcher: &Matcher, path: &str, problems: &mut Violations) {
    check_matcher(Some(matcher), path, problems);
}

fn matchers(list: &[Matcher], path: &str, problems: &mut Violations) {
    for (index, matcher) in list.iter().enumerate() {
        check_matcher(Some(matcher), &format!("{path}[{index}]"), problems);
    }
}

/// The time zone of a name (empty: UTC).
pub fn time_zone(name: &str, field: &str, problems: &mut Violations) -> Tz {
    if name.is_empty() {
        return Tz::UTC;
    }
    name.parse::<Tz>().unwrap_or_else(|_| {
        problems.add(
            field,
            "INVALID_TIME_ZONE",
            format!("{name:?} is not an IANA time zone"),
        );
        Tz::UTC
    })
}

impl ModelSettings {
    /// Checks every rule, naming each problem under `prefix` (e.g. `model_settings.`), and
    /// gives the effective values.
    pub fn validate(&self, prefix: &str) -> Result<Effective, Violations> {
        let mut problems = Violations::default();
        let time_zone = time_zone(
            &self.time_zone,
            &format!("{prefix}time_zone"),
            &mut problems,
        );
        if !(0..=7).contains(&self.week_start) {
            problems.add(
                format!("{prefix}week_start"),
                "OUT_OF_RANGE",
                "an unknown weekday",
            );
        }
        if let Some(purchase) = &self.purchase_event {
            check_matcher(
                Some(purchase),
                &format!("{prefix}purchase_event"),
                &mut problems,
            );
        }
        if !self.value_field.is_empty() {
            problems.add(
                format!("{prefix}value_field"),
                "UNSUPPORTED",
                "purchase values come from the dictionary's value property; leave value_field empty",
            );
        }
        self.check_lifecycle(prefix, &mut problems);
        let churn = &self.churn;
        matchers(
            &churn.qualifying,
            &format!("{prefix}churn.qualifying_events"),
            &mut problems,
        );
        let rules = self.rules(prefix, &mut problems);
        let model = churn_model(churn.model).unwrap_or_else(|| {
            problems.add(
                format!("{prefix}churn.model"),
                "OUT_OF_RANGE",
                "an unknown churn model",
            );
            DEFAULT_CHURN_MODEL
        });
        let events = model_events(churn.model_events).unwrap_or_else(|| {
            problems.add(
                format!("{prefix}churn.model_events"),
                "OUT_OF_RANGE",
                "unknown model events",
            );
            DEFAULT_MODEL_EVENTS
        });
        let (fit_window_secs, refit_secs, fixed_parameters) = self.bg_nbd(prefix, &mut problems);
        let prediction_days = self.prediction_days(prefix, &mut problems);
        let rfm = rfm_options(&self.rfm, &format!("{prefix}rfm"), &mut problems);
        crate::journeys::properties::check_analysable(
            &self.analysable_properties,
            &format!("{prefix}analysable_properties"),
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Effective {
            time_zone,
            purchase_event: self.purchase_event.clone(),
            qualifying: churn.qualifying.clone(),
            rules,
            fit_window_secs,
            refit_secs,
            model,
            model_events: events,
            fixed_parameters,
            prediction_days,
            rfm,
        })
    }

    /// The prediction period in whole days (1–366), after its default.
    fn prediction_days(&self, prefix: &str, problems: &mut Violations) -> u32 {
        let Some(span) = self.churn.bg_nbd.prediction_period else {
            return DEFAULT_PREDICTION_DAYS;
        };
        let field = format!("{prefix}churn.bg_nbd.prediction_period");
        let Some(secs) = positive_secs(span, &field, problems) else {
            return DEFAULT_PREDICTION_DAYS;
        };
        let days = secs / SECONDS_PER_DAY;
        if secs % SECONDS_PER_DAY != 0 || !(1..=MAX_PREDICTION_DAYS).contains(&days) {
            problems.add(field, "OUT_OF_RANGE", "whole days, from 1 to 366");
            return DEFAULT_PREDICTION_DAYS;
        }
        u32::try_from(days).unwrap_or(DEFAULT_PREDICTION_DAYS)
    }

    /// The fit window and refit interval (seconds) and the fixed parameters, after defaults.
    fn bg_nbd(&self, prefix: &str, problems: &mut Violations) -> (i64, i64, Option<BgNbdParams>) {
        let bg = &self.churn.bg_nbd;
        let fit_window_secs = bg
            .fit_window
            .and_then(|span| {
                let field = format!("{prefix}churn.bg_nbd.fit_window");
                let secs = positive_secs(span, &field, problems)?;
                if secs > MAX_FIT_WINDOW_SECS {
                    problems.add(field, "OUT_OF_RANGE", "at most 30 years");
                    return None;
                }
                Some(secs)
            })
            .unwrap_or(DEFAULT_FIT_WINDOW_SECS);
        let refit_secs = bg
            .refit_interval
            .and_then(|span| {
                let field = format!("{prefix}churn.bg_nbd.refit_interval");
                let secs = positive_secs(span, &field, problems)?;
                if secs < MIN_REFIT_SECS {
                    problems.add(field, "OUT_OF_RANGE", "at least 1 hour");
                    return None;
                }
                Some(secs)
            })
            .unwrap_or(DEFAULT_REFIT_SECS);
        let fixed_parameters = bg.fixed_parameters.and_then(|[r, alpha, a, b]| {
            let mut fine = true;
            for (name, value) in [("r", r), ("alpha", alpha), ("a", a), ("b", b)] {
                if !(value.is_finite() && value > 0.0) {
                    problems.add(
                        format!("{prefix}churn.bg_nbd.fixed_parameters.{name}"),
                        "OUT_OF_RANGE",
                        "must be finite and greater than 0",
                    );
                    fine = false;
                }
            }
            fine.then_some(BgNbdParams { r, alpha, a, b })
        });
        (fit_window_secs, refit_secs, fixed_parameters)
    }

    fn check_lifecycle(&self, prefix: &str, problems: &mut Violations) {
        let lifecycle = &self.lifecycle;
        match lifecycle.interval {
            0 | 2..=INTERVAL_MONTH => {}
            INTERVAL_HOUR => problems.add(
                format!("{prefix}lifecycle.interval"),
                "UNSUPPORTED",
                "lifecycle intervals are days, weeks or months",
            ),
            _ => problems.add(
                format!("{prefix}lifecycle.interval"),
                "OUT_OF_RANGE",
                "an unknown interval",
            ),
        }
        if !(0..=52).contains(&lifecycle.churn_intervals) {
            problems.add(
                format!("{prefix}lifecycle.churn_intervals"),
                "OUT_OF_RANGE",
                "from 1 to 52",
            );
        }
        matchers(
            &lifecycle.qualifying,
            &format!("{prefix}lifecycle.qualifying_events"),
            problems,
        );
    }

    /// The inactivity rules after defaults, each problem named: a segment must be a segment
    /// name (`tenants/{tenant}/segments/{id}`, whether it exists is the service's to check),
    /// named by one rule only; the rule without a segment must come last.
    fn rules(&self, prefix: &str, problems: &mut Violations) -> Vec<EffectiveRule> {
        let rules = &self.churn.inactivity_rules;
        let path = format!("{prefix}churn.inactivity_rules");
        if rules.len() > MAX_INACTIVITY_RULES {
            problems.add(
                path.clone(),
                "TOO_MANY",
                format!("at most {MAX_INACTIVITY_RULES} rules"),
            );
        }
        let mut effective = Vec::with_capacity(rules.len() + 1);
        for (index, rule) in rules.iter().enumerate() {
            let at = format!("{path}[{index}]");
            let segment = (!rule.segment.is_empty()).then(|| rule.segment.clone());
            match &segment {
                Some(name) if crate::domain::segment_name(name).is_none() => problems.add(
                    format!("{at}.segment"),
                    "INVALID_NAME",
                    "a segment is named tenants/{tenant}/segments/{segment}",
                ),
                Some(name) if rules[..index].iter().any(|r| r.segment == *name) => problems.add(
                    format!("{at}.segment"),
                    "DUPLICATE_SEGMENT",
                    "an earlier rule names the same segment, so this one would never apply",
                ),
                Some(_) => {}
                None if index + 1 != rules.len() => problems.add(
                    format!("{at}.segment"),
                    "DEFAULT_RULE_NOT_LAST",
                    "the rule without a segment is the default and must come last",
                ),
                None => {}
            }
            let asked = rule.suggestion_percentile;
            let suggestion_percentile = if !(asked.is_finite() && (0.0..=1.0).contains(&asked)) {
                problems.add(
                    format!("{at}.suggestion_percentile"),
                    "OUT_OF_RANGE",
                    "from 0 to 1",
                );
                DEFAULT_SUGGESTION_PERCENTILE
            } else if asked > 0.0 {
                asked
            } else {
                DEFAULT_SUGGESTION_PERCENTILE
            };
            let threshold = rule
                .threshold
                .and_then(|span| threshold(span, &format!("{at}.threshold"), problems));
            effective.push(EffectiveRule {
                segment,
                threshold,
                suggestion_percentile,
            });
        }
        if effective.last().is_none_or(|rule| rule.segment.is_some()) {
            effective.push(EffectiveRule::suggested_default());
        }
        effective
    }
}

#[cfg(test)]
mod tests;
