//! Conversions of the journey calls: the contract's requests into the service's queries,
//! figures into replies. Rules live in `journeys::query`; this only changes shapes.

use prost_types::value::Kind;
use touchline_proto::common::v1 as common;
use touchline_proto::modeling::v1 as pb;

use crate::journeys::dropoffs::DropOffPage;
use crate::journeys::funnel::{Computation, FunnelFigures, StepFigures};
use crate::journeys::properties;
use crate::journeys::query::{
    BreakdownAttribution, FieldFilter, FunnelBreakdown, FunnelExclusion, FunnelOrder, FunnelQuery,
    FunnelStep, Matcher, Operator, Scope,
};

pub(super) fn ms(at: &prost_types::Timestamp) -> i64 {
    at.seconds
        .saturating_mul(1_000)
        .saturating_add(i64::from(at.nanos) / 1_000_000)
}

/// A contract time, to the nanosecond.
pub(super) fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A time from the contract; `None` when it is out of range.
pub(super) fn datetime(at: &prost_types::Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    let nanos = u32::try_from(at.nanos).ok()?;
    chrono::DateTime::from_timestamp(at.seconds, nanos)
}

pub(super) fn timestamp_ms(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1_000),
        nanos: i32::try_from(ms.rem_euclid(1_000) * 1_000_000).unwrap_or(0),
    }
}

/// A contract duration in whole ms (saturating).
pub(super) fn span_ms(duration: &prost_types::Duration) -> i64 {
    duration
        .seconds
        .saturating_mul(1_000)
        .saturating_add(i64::from(duration.nanos) / 1_000_000)
}

/// Whole ms as a contract duration.
pub(super) fn span(ms: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ms.div_euclid(1_000),
        nanos: i32::try_from(ms.rem_euclid(1_000) * 1_000_000).unwrap_or(0),
    }
}

pub(super) fn duration_ms(ms: f64) -> prost_types::Duration {
    let whole = ms.floor();
    prost_types::Duration {
        seconds: (whole / 1_000.0).floor() as i64,
        nanos: (((whole.rem_euclid(1_000.0)) * 1_000_000.0) + (ms - whole) * 1_000_000.0) as i32,
    }
}

/// A filter value as the text a column is compared with, as analysable properties keep
/// theirs (`0`, not `0.0`; `true`/`false`); null is the missing value, and an object or a
/// list (or a number that is not finite) a text no column holds, so it matches nothing.
fn value_text(value: &prost_types::Value) -> String {
    match &value.kind {
        Some(Kind::NullValue(_)) | None => String::new(),
        Some(kind) => properties::value_text(kind).unwrap_or_else(|| String::from("\u{0}")),
    }
}

fn operator(number: i32) -> Operator {
    match common::FilterOperator::try_from(number) {
        Ok(common::FilterOperator::Equals) => Operator::Equals,
        Ok(common::FilterOperator::NotEquals) => Operator::NotEquals,
        Ok(common::FilterOperator::Contains) => Operator::Contains,
        Ok(common::FilterOperator::NotContains) => Operator::NotContains,
        Ok(common::FilterOperator::IsSet) => Operator::IsSet,
        Ok(common::FilterOperator::IsNotSet) => Operator::IsNotSet,
        Ok(common::FilterOperator::GreaterThan) => Operator::GreaterThan,
        Ok(common::FilterOperator::GreaterThanOrEqual) => Operator::GreaterOrEqual,
        Ok(common::FilterOperator::LessThan) => Operator::LessThan,
        Ok(common::FilterOperator::LessThanOrEqual) => Operator::LessOrEqual,
        Ok(common::FilterOperator::Between) => Operator::Between,
        _ => Operator::Unsupported(number),
    }
}

/// The service's filter of a contract filter.
pub(super) fn filter(f: &common::PropertyFilter) -> FieldFilter {
    FieldFilter {
        field: f.field.clone(),
        operator: operator(f.operator),
        values: f.values.iter().map(value_text).collect(),
    }
}

fn filters(filters: &[common::PropertyFilter]) -> Vec<FieldFilter> {
    filters.iter().map(filter).collect()
}

pub(super) fn matcher(event: Option<&pb::EventMatcher>) -> Option<Matcher> {
    event.map(|e| Matcher {
        event_name: e.event_name.clone(),
        filters: filters(&e.filters),
    })
}

pub(super) fn scope(scope: Option<&pb::AnalysisScope>) -> Scope {
    let Some(scope) = scope else {
        return Scope::default();
    };
    let range = scope.time_range.as_ref();
    Scope {
        start_ms: range.and_then(|r| r.start_time.as_ref()).map(ms),
        end_ms: range.and_then(|r| r.end_time.as_ref()).map(ms),
        event_filters: filters(&scope.event_filters),
        segment: scope.segment.clone(),
        time_zone: scope.time_zone.clone(),
        week_start: scope.week_start,
    }
}

/// The service's funnel query of a request's definition (`None` when it has none).
pub(super) fn funnel_query(definition: Option<&pb::FunnelDefinition>) -> Option<FunnelQuery> {
    let definition = definition?;
    let order = match pb::FunnelOrderType::try_from(definition.order_type) {
        Ok(pb::FunnelOrderType::Strict) => FunnelOrder::Strict,
        Ok(pb::FunnelOrderType::Unordered) => FunnelOrder::Unordered,
        _ => FunnelOrder::Ordered,
    };
    let breakdown = definition.breakdown.as_ref().map(|b| {
        let inner = b.breakdown.clone().unwrap_or_default();
        FunnelBreakdown {
            field: inner.field,
            limit: inner.limit,
            attribution: match pb::FunnelBreakdownAttribution::try_from(b.attribution) {
                Ok(pb::FunnelBreakdownAttribution::LastTouch) => BreakdownAttribution::LastTouch,
                Ok(pb::FunnelBreakdownAttribution::Step) => BreakdownAttribution::Step(b.step),
                Ok(pb::FunnelBreakdownAttribution::AllEvents) => BreakdownAttribution::AllEvents,
                _ => BreakdownAttribution::FirstTouch,
            },
        }
    });
    Some(FunnelQuery {
        steps: definition
            .steps
            .iter()
            .map(|step| FunnelStep {
                label: step.label.clone(),
                event: matcher(step.event.as_ref()),
            })
            .collect(),
        window_ms: definition.conversion_window.as_ref().map(span_ms),
        order,
        exclusions: definition
            .exclusions
            .iter()
            .map(|e| FunnelExclusion {
                event: matcher(e.event.as_ref()),
                from_step: e.from_step,
                to_step: e.to_step,
            })
            .collect(),
        breakdown,
        scope: scope(definition.scope.as_ref()),
    })
}

/// A funnel query as the contract has it (what a stored drop-off condition answers with):
/// steps, window, order, exclusions and the scope's event filters.
pub(super) fn pb_funnel(query: &FunnelQuery) -> pb::FunnelDefinition {
    let matcher = |m: &Option<Matcher>| m.as_ref().map(super::churn::pb_matcher);
    pb::FunnelDefinition {
        steps: query
            .steps
            .iter()
            .map(|step| pb::FunnelStep {
                label: step.label.clone(),
                event: matcher(&step.event),
            })
            .collect(),
        conversion_window: query.window_ms.map(span),
        order_type: match query.order {
            FunnelOrder::Ordered => pb::FunnelOrderType::Ordered,
            FunnelOrder::Strict => pb::FunnelOrderType::Strict,
            FunnelOrder::Unordered => pb::FunnelOrderType::Unordered,
        } as i32,
        exclusions: query
            .exclusions
            .iter()
            .map(|e| pb::FunnelExclusion {
                event: matcher(&e.event),
                from_step: e.from_step,
                to_step: e.to_step,
            })
            .collect(),
        breakdown: None,
        scope: (!query.scope.event_filters.is_empty()).then(|| pb::AnalysisScope {
            event_filters: super::churn::pb_matcher(&Matcher {
                event_name: String::new(),
                filters: query.scope.event_filters.clone(),
            })
            .filters,
            ..pb::AnalysisScope::default()
        }),
    }
}

fn steps(figures: Vec<StepFigures>) -> Vec<pb::FunnelStepResult> {
    figures
        .into_iter()
        .map(|figures| {
            let s = figures.summary;
            pb::FunnelStepResult {
                step: i32::try_from(s.step).unwrap_or(i32::MAX),
                label: figures.label,
                count: i64::try_from(s.count).unwrap_or(i64::MAX),
                drop_off: i64::try_from(s.drop_off).unwrap_or(i64::MAX),
                overall_conversion_rate: s.overall_conversion_rate,
                step_conversion_rate: s.step_conversion_rate,
                mean_conversion_time: s.mean_conversion_ms.map(duration_ms),
                median_conversion_time: s.median_conversion_ms.map(|m| duration_ms(m as f64)),
                mean_time_from_start: s.mean_from_start_ms.map(duration_ms),
            }
        })
        .collect()
}

pub(super) fn computation(computation: Computation) -> pb::ComputationInfo {
    pb::ComputationInfo {
        clean_sequence: computation.positions.clean_sequence,
        identity_sequence: computation.positions.identity_sequence,
        compute_time: Some(timestamp_ms(chrono::Utc::now().timestamp_millis())),
        time_range: Some(common::TimeRange {
            start_time: Some(timestamp_ms(computation.range.0)),
            end_time: Some(timestamp_ms(computation.range.1)),
        }),
        persons_considered: i64::try_from(computation.persons_considered).unwrap_or(i64::MAX),
    }
}

pub(super) fn funnel_reply(figures: FunnelFigures) -> pb::RunFunnelResponse {
    pb::RunFunnelResponse {
        steps: steps(figures.steps),
        breakdown_results: figures
            .breakdown
            .into_iter()
            .map(|(value, figures)| pb::FunnelBreakdownResult {
                value,
                steps: steps(figures),
            })
            .collect(),
        omitted_breakdown_values: i32::try_from(figures.omitted_values).unwrap_or(i32::MAX),
        computation: Some(computation(figures.computation)),
        other: figures.other.map(|figures| pb::FunnelBreakdownResult {
            value: String::new(),
            steps: steps(figures),
        }),
    }
}

pub(super) fn drop_offs_reply(tenant: &str, page: DropOffPage) -> pb::ListFunnelDropOffsResponse {
    pb::ListFunnelDropOffsResponse {
        persons: page
            .persons
            .iter()
            .map(|d| pb::FunnelDropOff {
                person: format!("tenants/{tenant}/persons/{}", d.person),
                person_id: d.person.to_string(),
                furthest_step: i32::try_from(d.furthest_step).unwrap_or(i32::MAX),
                furthest_step_time: Some(timestamp_ms(d.furthest_ms)),
                start_time: Some(timestamp_ms(d.start_ms)),
            })
            .collect(),
        next_page_token: page.next_page_token,
        total_size: i64::try_from(page.total).unwrap_or(i64::MAX),
        opted_out_count: i64::try_from(page.opted_out).unwrap_or(i64::MAX),
        computation: Some(computation(page.computation)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_text_without_a_needless_fraction() {
        let number = |n: f64| prost_types::Value {
            kind: Some(Kind::NumberValue(n)),
        };
        assert_eq!(value_text(&number(0.0)), "0");
        assert_eq!(value_text(&number(-3.0)), "-3");
        assert_eq!(value_text(&number(2.5)), "2.5");
        let flag = prost_types::Value {
            kind: Some(Kind::BoolValue(true)),
        };
        assert_eq!(value_text(&flag), "true");
    }

    #[test]
    fn durations_keep_their_milliseconds() {
        let d = duration_ms(1_500.0);
        assert_eq!((d.seconds, d.nanos), (1, 500_000_000));
        let d = duration_ms(999.25);
        assert_eq!((d.seconds, d.nanos), (0, 999_250_000));
    }
}
