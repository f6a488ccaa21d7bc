//! The journey queries as the service takes them, free of gRPC, and the rules a query must
//! meet before it touches any data. Each rule that fails adds a field violation, so one
//! answer names every problem of a request.

use touchline_analytics::calendar::{Calendar, Interval};
use touchline_error::FieldViolation;

/// Most steps of a funnel.
pub const MAX_STEPS: usize = 20;
/// Most exclusions of a funnel.
pub const MAX_EXCLUSIONS: usize = 10;
/// Most filters of a matcher or a scope.
pub const MAX_FILTERS: usize = 20;
/// The default conversion window: 14 days.
pub const DEFAULT_WINDOW_MS: i64 = 14 * DAY_MS;
/// The longest conversion window: 366 days.
pub const MAX_WINDOW_MS: i64 = 366 * DAY_MS;
/// The default breakdown size, and the largest.
pub const DEFAULT_BREAKDOWN_LIMIT: usize = 25;
/// The largest breakdown size.
pub const MAX_BREAKDOWN_LIMIT: usize = 100;
/// The default range of a funnel: the last 30 days.
pub const DEFAULT_RANGE_MS: i64 = 30 * DAY_MS;
const DAY_MS: i64 = 86_400_000;

/// A column of the projection a filter or a breakdown names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `event_name`.
    EventName,
    /// `channel`.
    Channel,
    /// `touchpoint`.
    Touchpoint,
    /// `source`.
    Source,
    /// `touchpoint_type`.
    TouchpointType,
    /// `department` (the touchpoint's owning department).
    Department,
}

impl Field {
    /// The field a path names, when the projection holds it.
    pub fn parse(path: &str) -> Result<Self, &'static str> {
        Ok(match path {
            "event_name" => Field::EventName,
            "channel" => Field::Channel,
            "touchpoint" => Field::Touchpoint,
            "source" => Field::Source,
            "touchpoint_type" => Field::TouchpointType,
            "department" | "owning_department" => Field::Department,
            p if p.starts_with("properties.") || p.starts_with("traits.") => {
                return Err("NOT_ANALYSABLE");
            }
            _ => return Err("UNKNOWN_FIELD"),
        })
    }
}

/// How a filter compares (the contract's `FilterOperator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// Equal to one of the values.
    Equals,
    /// Equal to none of them.
    NotEquals,
    /// Contains the value.
    Contains,
    /// Does not contain it.
    NotContains,
    /// Present and not empty.
    IsSet,
    /// Missing or empty.
    IsNotSet,
    /// An operator the projection's text columns do not support (regex, comparisons).
    Unsupported(i32),
}

/// A condition on one column; values already as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldFilter {
    /// The field path as given.
    pub field: String,
    /// The comparison.
    pub operator: Operator,
    /// The values, as text.
    pub values: Vec<String>,
}

/// Which events fill a step or an exclusion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    /// The canonical event; empty for every event.
    pub event_name: String,
    /// Further conditions.
    pub filters: Vec<FieldFilter>,
}

/// The data an analysis reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// First included instant, when given.
    pub start_ms: Option<i64>,
    /// First excluded instant, when given.
    pub end_ms: Option<i64>,
    /// Conditions every considered event meets.
    pub event_filters: Vec<FieldFilter>,
    /// A segment, when the scope names one.
    pub segment: String,
    /// The IANA time zone intervals are cut in (empty: UTC).
    pub time_zone: String,
    /// The week start as the contract numbers it (0: Monday).
    pub week_start: i32,
}

/// The calendar of a scope: `interval` cut in its time zone with its week start.
pub fn calendar(
    scope: &Scope,
    interval: Interval,
    prefix: &str,
    problems: &mut Violations,
) -> Calendar {
    use chrono::Weekday;
    let week_start = match scope.week_start {
        0 | 1 => Weekday::Mon,
        2 => Weekday::Tue,
        3 => Weekday::Wed,
        4 => Weekday::Thu,
        5 => Weekday::Fri,
        6 => Weekday::Sat,
        7 => Weekday::Sun,
        _ => {
            problems.add(
                format!("{prefix}week_start"),
                "OUT_OF_RANGE",
                "an unknown weekday",
            );
            Weekday::Mon
        }
    };
    let zone = if scope.time_zone.is_empty() {
        "UTC"
    } else {
        scope.time_zone.as_str()
    };
    Calendar::from_zone_name(interval, zone, week_start).unwrap_or_else(|_| {
        problems.add(
            format!("{prefix}time_zone"),
            "UNKNOWN_TIME_ZONE",
            format!("{zone:?} is not an IANA time zone such as Asia/Shanghai"),
        );
        Calendar::new(interval, chrono_tz::UTC, week_start)
    })
}

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

/// A breakdown's field and size after defaults; `path` names the `Breakdown` message.
pub fn breakdown_of(
    field: &str,
    limit: i32,
    path: &str,
    problems: &mut Violations,
) -> (Field, usize) {
    let field = Field::parse(field).unwrap_or_else(|reason| {
        problems.add(
            format!("{path}.field"),
            reason,
            format!(
                "cannot break down by {field:?}: use event_name, channel, touchpoint, source, touchpoint_type or department"
            ),
        );
        Field::Channel
    });
    let limit = match limit {
        0 => DEFAULT_BREAKDOWN_LIMIT,
        n if n > 0 && n as usize <= MAX_BREAKDOWN_LIMIT => n as usize,
        _ => {
            problems.add(
                format!("{path}.limit"),
                "OUT_OF_RANGE",
                format!("from 1 to {MAX_BREAKDOWN_LIMIT}, or 0 for {DEFAULT_BREAKDOWN_LIMIT}"),
            );
            DEFAULT_BREAKDOWN_LIMIT
        }
    };
    (field, limit)
}

/// Collects the violations of one request.
#[derive(Debug, Default)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    /// Adds one.
    pub fn add(&mut self, field: impl Into<String>, reason: &'static str, text: impl Into<String>) {
        self.0.push(FieldViolation::new(field, reason, text));
    }

    /// Whether none was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Checks a matcher's shape (its names are checked against the data later).
fn check_filters(filters: &[FieldFilter], path: &str, problems: &mut Violations) {
    if filters.len() > MAX_FILTERS {
        problems.add(
            path,
            "TOO_MANY_FILTERS",
            format!("at most {MAX_FILTERS} filters"),
        );
    }
    for (index, filter) in filters.iter().enumerate() {
        let at = format!("{path}[{index}]");
        if let Err(reason) = Field::parse(&filter.field) {
            let text = match reason {
                "NOT_ANALYSABLE" => format!(
                    "{} is not among the fields journey analyses read (event_name, channel, touchpoint, source, touchpoint_type, department)",
                    filter.field
                ),
                _ => format!("unknown field {:?}", filter.field),
            };
            problems.add(format!("{at}.field"), reason, text);
        }
        match filter.operator {
            Operator::Unsupported(number) => problems.add(
                format!("{at}.operator"),
                "UNSUPPORTED_OPERATOR",
                format!(
                    "operator {number} is not supported on these fields: use EQUALS, NOT_EQUALS, CONTAINS, NOT_CONTAINS, IS_SET or IS_NOT_SET"
                ),
            ),
            Operator::IsSet | Operator::IsNotSet if !filter.values.is_empty() => problems.add(
                format!("{at}.values"),
                "UNEXPECTED_VALUES",
                "IS_SET and IS_NOT_SET take no values",
            ),
            Operator::Equals | Operator::NotEquals | Operator::Contains | Operator::NotContains
                if filter.values.is_empty() =>
            {
                problems.add(format!("{at}.values"), "MISSING_VALUES", "the operator needs a value")
            }
            _ => {}
        }
    }
}

fn check_matcher(matcher: Option<&Matcher>, path: &str, problems: &mut Violations) -> Matcher {
    match matcher {
        Some(matcher) => {
            check_filters(&matcher.filters, &format!("{path}.filters"), problems);
            matcher.clone()
        }
        None => {
            problems.add(path, "REQUIRED", "required");
            Matcher::default()
        }
    }
}

/// The earliest instant a request may name: 0001-01-01T00:00:00Z, the first a
/// `google.protobuf.Timestamp` can hold.
pub const MIN_REQUEST_MS: i64 = -62_135_596_800_000;
/// The latest: 9999-12-31T23:59:59.999Z.
pub const MAX_REQUEST_MS: i64 = 253_402_300_799_999;

/// Whether `ms` is an instant a request may name; adds a violation of `field` when not.
pub fn check_instant(ms: i64, field: &str, problems: &mut Violations) -> bool {
    let fits = (MIN_REQUEST_MS..=MAX_REQUEST_MS).contains(&ms);
    if !fits {
        problems.add(
            field,
            "OUT_OF_RANGE",
            "times run from 0001-01-01 to 9999-12-31 (UTC)",
        );
    }
    fits
}

/// What an unset start of the range means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenStart {
    /// The earliest data (funnels, paths).
    Earliest,
    /// The default length before the end (retention and lifecycle, whose cohorts and
    /// intervals must be few enough to list).
    DefaultLength,
}

/// The scope's range after defaults: unset both → the `default_ms` before `now_ms`; an unset
/// start → per `open_start`; an unset end → now. Also checks the scope's filters and segment.
pub fn resolve_range(
    scope: &Scope,
    now_ms: i64,
    default_ms: i64,
    open_start: OpenStart,
    path: &str,
    problems: &mut Violations,
) -> (i64, i64) {
    let field = format!("{path}.time_range");
    let end = scope.end_ms.unwrap_or(now_ms);
    let start = match (scope.start_ms, open_start) {
        (Some(start), _) => start,
        (None, OpenStart::Earliest) if scope.end_ms.is_some() => MIN_REQUEST_MS,
        (None, _) => end.saturating_sub(default_ms),
    };
    let range = (start, end);
    if check_instant(start, &field, problems)
        && check_instant(end, &field, problems)
        && start >= end
    {
        problems.add(field, "EMPTY_RANGE", "start_time must come before end_time");
    }
    check_filters(
        &scope.event_filters,
        &format!("{path}.event_filters"),
        problems,
    );
    if !scope.segment.is_empty() {
        problems.add(
            format!("{path}.segment"),
            "UNSUPPORTED",
            "journey analyses cannot be limited to a segment yet; leave segment empty",
        );
    }
    range
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
            segment: "tenants/t/segments/s".to_owned(),
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
            field: "properties.size".to_owned(),
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
