//! The journey queries as the service takes them, free of gRPC, and the rules a query must
//! meet before it touches any data. Each rule that fails adds a field violation, so one
//! answer names every problem of a request.

use touchline_analytics::calendar::{Calendar, Interval};
use touchline_error::FieldViolation;

/// Most filters of a matcher or a scope.
pub const MAX_FILTERS: usize = 20;
/// The default breakdown size, and the largest.
pub const DEFAULT_BREAKDOWN_LIMIT: usize = 25;
/// The largest breakdown size.
pub const MAX_BREAKDOWN_LIMIT: usize = 100;
/// The default range of a funnel: the last 30 days.
pub const DEFAULT_RANGE_MS: i64 = 30 * DAY_MS;
/// A day in ms.
pub(super) const DAY_MS: i64 = 86_400_000;

/// A column of the projection a filter or a breakdown names.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `properties.{name}`: an event property, readable where the tenant's model settings
    /// mark the path analysable (checked against the tenant's projection, not here).
    Property(String),
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
            p if p.starts_with(super::properties::PROPERTIES_PREFIX) => {
                match super::properties::name_of(p) {
                    Some(name) => Field::Property(name.to_owned()),
                    None => return Err("INVALID_PATH"),
                }
            }
            p if p.starts_with("traits.") => return Err("NOT_ANALYSABLE"),
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
    /// Greater than the value (see `properties` for how text compares).
    GreaterThan,
    /// Greater than or equal to it.
    GreaterOrEqual,
    /// Less than it.
    LessThan,
    /// Less than or equal to it.
    LessOrEqual,
    /// Between two values, both inclusive.
    Between,
    /// An operator the projection's columns do not support (regular expressions).
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
            field_problem(field, reason),
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

/// What is wrong with a field path `Field::parse` refused for `reason`.
fn field_problem(path: &str, reason: &str) -> String {
    if path.starts_with(super::properties::TRAITS_PREFIX) {
        return format!(
            "{path} is an attribute of the person, not of an event: limit the analysis to a segment with a trait condition (scope.segment) / 特征属于用户而非事件，请用带特征条件的分群限定分析范围"
        );
    }
    match reason {
        "NOT_ANALYSABLE" => format!(
            "{path} is not among the fields journey analyses read: event_name, channel, touchpoint, source, touchpoint_type, department, or a property the model settings mark analysable"
        ),
        "INVALID_PATH" => {
            format!("{path:?} is not a property path such as properties.utm_campaign")
        }
        _ => format!(
            "unknown field {path:?}: use event_name, channel, touchpoint, source, touchpoint_type, department or properties.{{name}}"
        ),
    }
}

/// Collects the violations of one request.
#[derive(Clone, Debug, Default)]
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
            problems.add(
                format!("{at}.field"),
                reason,
                field_problem(&filter.field, reason),
            );
        }
        check_operator(filter, &at, problems);
    }
}

/// Checks that `filter`'s operator is supported and has as many values as it takes.
pub fn check_operator(filter: &FieldFilter, at: &str, problems: &mut Violations) {
    match filter.operator {
            Operator::Unsupported(number) => problems.add(
                format!("{at}.operator"),
                "UNSUPPORTED_OPERATOR",
                format!(
                    "operator {number} is not supported on these fields: use EQUALS, NOT_EQUALS, CONTAINS, NOT_CONTAINS, a comparison, BETWEEN, IS_SET or IS_NOT_SET"
                ),
            ),
            Operator::Between if filter.values.len() != 2 => problems.add(
                format!("{at}.values"),
                "BETWEEN_NEEDS_TWO",
                "BETWEEN takes two values, the lower and the upper bound",
            ),
            Operator::GreaterThan
            | Operator::GreaterOrEqual
            | Operator::LessThan
            | Operator::LessOrEqual
                if filter.values.len() != 1 =>
            {
                problems.add(format!("{at}.values"), "ONE_VALUE", "a comparison takes one value")
            }
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

pub(super) fn check_matcher(
    matcher: Option<&Matcher>,
    path: &str,
    problems: &mut Violations,
) -> Matcher {
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
    if !scope.segment.is_empty() && crate::domain::segment_name(&scope.segment).is_none() {
        problems.add(
            format!("{path}.segment"),
            "INVALID_NAME",
            "a segment is named tenants/{tenant}/segments/{segment}",
        );
    }
    range
}

pub use super::funnel_query::{
    BreakdownAttribution, DEFAULT_WINDOW_MS, FunnelBreakdown, FunnelExclusion, FunnelOrder,
    FunnelQuery, FunnelStep, MAX_EXCLUSIONS, MAX_STEPS, MAX_WINDOW_MS, ValidFunnel,
};
