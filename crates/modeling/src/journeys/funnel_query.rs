//! The funnel request as the service takes it, and the rules it must meet before it touches
//! any data (shared pieces — fields, filters, scopes, ranges — are in `query`).

use super::query::{
    DAY_MS, DEFAULT_RANGE_MS, Field, FieldFilter, Matcher, OpenStart, Scope, Violations,
    breakdown_of, check_matcher, resolve_range,
};

/// Most steps of a funnel.
pub const MAX_STEPS: usize = 20;
/// Most exclusions of a funnel.
pub const MAX_EXCLUSIONS: usize = 10;
/// The default conversion window: 14 days.
pub const DEFAULT_WINDOW_MS: i64 = 14 * DAY_MS;
/// The longest conversion window: 366 days.
pub const MAX_WINDOW_MS: i64 = 366 * DAY_MS;
/// The order of a funnel's steps.
pub use touchline_analytics::funnel::FunnelOrder;

/// Which event puts a person into a breakdown value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakdownAttribution {
    /// The earliest value.
    FirstTouch,
    /// The latest value.
    LastTouch,
    /// The value on a 1-based step of the counted attempt (0 when the request gave none).
    Step(i32),
    /// Every value of the attempt.
    AllEvents,
}

/// A funnel's breakdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelBreakdown {
    /// The field path.
    pub field: String,
    /// Most values returned (0: the default).
    pub limit: i32,
    /// Which event's value counts.
    pub attribution: BreakdownAttribution,
}

/// One exclusion of a funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelExclusion {
    /// The excluded events.
    pub event: Option<Matcher>,
    /// 1-based step after which it applies (0: the default, 1).
    pub from_step: i32,
    /// 1-based step before which it applies (0: the default, the last).
    pub to_step: i32,
}

/// One step of a funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelStep {
    /// A label for people (empty: the event name).
    pub label: String,
    /// The events that fill it.
    pub event: Option<Matcher>,
}

/// A funnel as a caller defined it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelQuery {
    /// The steps.
    pub steps: Vec<FunnelStep>,
    /// The conversion window in ms (`None`: the default).
    pub window_ms: Option<i64>,
    /// The order.
    pub order: FunnelOrder,
    /// The exclusions.
    pub exclusions: Vec<FunnelExclusion>,
    /// The breakdown.
    pub breakdown: Option<FunnelBreakdown>,
    /// The scope.
    pub scope: Scope,
}

impl ValidFunnel {
    /// The event names its steps and exclusions name.
    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        self.steps
            .iter()
            .map(|(_, matcher)| matcher)
            .chain(self.exclusions.iter().map(|(matcher, _, _)| matcher))
            .map(|matcher| matcher.event_name.as_str())
            .filter(|name| !name.is_empty())
    }
}

/// A funnel whose every rule holds: defaults applied, ranges resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidFunnel {
    /// Labels and matchers of the steps.
    pub steps: Vec<(String, Matcher)>,
    /// The conversion window in ms.
    pub window_ms: i64,
    /// The order.
    pub order: FunnelOrder,
    /// Exclusions with 1-based step ranges.
    pub exclusions: Vec<(Matcher, usize, usize)>,
    /// The breakdown field, its size and its attribution.
    pub breakdown: Option<(Field, usize, BreakdownAttribution)>,
    /// The range `[start, end)` in ms.
    pub range: (i64, i64),
    /// The scope's event conditions.
    pub event_filters: Vec<FieldFilter>,
}

impl FunnelQuery {
    /// Applies defaults and checks every rule; `now_ms` ends the default range.
    pub fn validate(&self, now_ms: i64) -> Result<ValidFunnel, Violations> {
        let mut problems = Violations::default();
        let count = self.steps.len();
        if !(2..=MAX_STEPS).contains(&count) {
            problems.add(
                "funnel.steps",
                "STEP_COUNT",
                format!("a funnel has 2 to {MAX_STEPS} steps, not {count}"),
            );
        }
        let steps = self
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let matcher = check_matcher(
                    step.event.as_ref(),
                    &format!("funnel.steps[{index}].event"),
                    &mut problems,
                );
                let label = if step.label.is_empty() {
                    matcher.event_name.clone()
                } else {
                    step.label.clone()
                };
                (label, matcher)
            })
            .collect();
        let window_ms = self.window_ms.unwrap_or(DEFAULT_WINDOW_MS);
        if !(1_000..=MAX_WINDOW_MS).contains(&window_ms) {
            problems.add(
                "funnel.conversion_window",
                "OUT_OF_RANGE",
                "the conversion window is at least 1 second and at most 366 days",
            );
        }
        if self.exclusions.len() > MAX_EXCLUSIONS {
            problems.add(
                "funnel.exclusions",
                "TOO_MANY_EXCLUSIONS",
                format!("at most {MAX_EXCLUSIONS} exclusions"),
            );
        }
        let exclusions = self.valid_exclusions(count, &mut problems);
        let breakdown = self.valid_breakdown(count, &mut problems);
        let range = resolve_range(
            &self.scope,
            now_ms,
            DEFAULT_RANGE_MS,
            OpenStart::Earliest,
            "funnel.scope",
            &mut problems,
        );
        if problems.is_empty() {
            Ok(ValidFunnel {
                steps,
                window_ms,
                order: self.order,
                exclusions,
                breakdown,
                range,
                event_filters: self.scope.event_filters.clone(),
            })
        } else {
            Err(problems)
        }
    }

    fn valid_exclusions(
        &self,
        count: usize,
        problems: &mut Violations,
    ) -> Vec<(Matcher, usize, usize)> {
        self
            .exclusions
            .iter()
            .enumerate()
            .map(|(index, exclusion)| {
                let path = format!("funnel.exclusions[{index}]");
                let matcher = check_matcher(exclusion.event.as_ref(), &format!("{path}.event"), problems);
                let from = if exclusion.from_step == 0 { 1 } else { exclusion.from_step };
                let to = if exclusion.to_step == 0 { count as i32 } else { exclusion.to_step };
                if from < 1 || to > count as i32 || from >= to {
                    problems.add(
                        format!("{path}.to_step"),
                        "INVALID_STEP_RANGE",
                        format!(
                            "an exclusion applies between steps 1 ≤ from_step < to_step ≤ {count}; got {from} to {to}"
                        ),
                    );
                }
                (matcher, from.max(1) as usize, to.max(1) as usize)
            })
            .collect()
    }

    fn valid_breakdown(
        &self,
        count: usize,
        problems: &mut Violations,
    ) -> Option<(Field, usize, BreakdownAttribution)> {
        self.breakdown.as_ref().map(|breakdown| {
            let (field, limit) = breakdown_of(
                &breakdown.field,
                breakdown.limit,
                "funnel.breakdown.breakdown",
                problems,
            );
            if let BreakdownAttribution::Step(step) = breakdown.attribution
                && (step < 1 || step > count as i32)
            {
                problems.add(
                    "funnel.breakdown.step",
                    "INVALID_STEP",
                    format!("STEP attribution names a step from 1 to {count}"),
                );
            }
            (field, limit, breakdown.attribution)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journeys::query::{MIN_REQUEST_MS, Scope};

    fn funnel(scope: Scope) -> FunnelQuery {
        let step = |name: &str| FunnelStep {
            label: String::new(),
            event: Some(Matcher {
                event_name: name.to_owned(),
                filters: Vec::new(),
            }),
        };
        FunnelQuery {
            steps: vec![step("a"), step("b")],
            window_ms: None,
            order: FunnelOrder::Ordered,
            exclusions: Vec::new(),
            breakdown: None,
            scope,
        }
    }

    fn fields(problems: &Violations) -> Vec<&str> {
        problems.0.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn ranges_default_to_the_last_30_days_and_refuse_times_a_timestamp_cannot_hold() {
        let now = 1_800_000_000_000;
        let valid = funnel(Scope::default()).validate(now).map_err(|p| p.0);
        assert_eq!(valid.map(|f| f.range), Ok((now - DEFAULT_RANGE_MS, now)));
        let end_only = funnel(Scope {
            end_ms: Some(now),
            ..Scope::default()
        });
        assert_eq!(
            end_only.validate(now).map(|f| f.range).map_err(|p| p.0),
            Ok((MIN_REQUEST_MS, now)),
            "an open start is the earliest data"
        );
        for start in [MIN_REQUEST_MS - 1, -8_334_601_315_200_000, i64::MIN] {
            let far = funnel(Scope {
                start_ms: Some(start),
                ..Scope::default()
            });
            let problems = far.validate(now).err().unwrap_or_default();
            assert_eq!(fields(&problems), ["funnel.scope.time_range"]);
        }
        let backwards = funnel(Scope {
            start_ms: Some(now),
            end_ms: Some(now - 1),
            ..Scope::default()
        });
        let problems = backwards.validate(now).err().unwrap_or_default();
        assert_eq!(problems.0.first().map(|v| v.reason), Some("EMPTY_RANGE"));
    }

    #[test]
    fn every_problem_of_a_funnel_is_named_at_once() {
        let mut query = funnel(Scope {
            segment: "segments/s".to_owned(),
            time_zone: "Mars/Olympus".to_owned(),
            ..Scope::default()
        });
        query.steps.truncate(1);
        query.window_ms = Some(0);
        query.exclusions.push(FunnelExclusion {
            event: None,
            from_step: 2,
            to_step: 1,
        });
        query.breakdown = Some(FunnelBreakdown {
            field: "properties.".to_owned(),
            limit: 101,
            attribution: BreakdownAttribution::Step(3),
        });
        let problems = query.validate(0).err().unwrap_or_default();
        assert_eq!(
            fields(&problems),
            [
                "funnel.steps",
                "funnel.conversion_window",
                "funnel.exclusions[0].event",
                "funnel.exclusions[0].to_step",
                "funnel.breakdown.breakdown.field",
                "funnel.breakdown.breakdown.limit",
                "funnel.breakdown.step",
                "funnel.scope.segment",
            ]
        );
    }
}
