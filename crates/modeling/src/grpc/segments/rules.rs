//! A segment rule between the contract and the service: each condition the service can take,
//! a violation naming each part it cannot, and the stored rule back as the contract has it.

use touchline_analytics::lifecycle::LifecycleStage;
use touchline_proto::common::v1 as common;
use touchline_proto::modeling::v1 as pb;

use super::segment_name;
use crate::grpc::attribution::{model_request, pb_model};
use crate::grpc::journeys::{
    filter, funnel_query, matcher, ms, pb_funnel, span, span_ms, timestamp_ms,
};
use crate::journeys::attribution::query::AttributionQuery;
use crate::journeys::query::{FunnelOrder, FunnelQuery, Scope, Violations};
use crate::journeys::segments::{
    Aggregation, Attributed, ChurnTest, Comparison, DropOff, EventAggregate, IdentifierHeld, Rule,
    Window,
};

fn comparison(
    c: Option<&pb::NumberComparison>,
    path: &str,
    problems: &mut Violations,
) -> Comparison {
    let Some(c) = c else {
        problems.add(path, "REQUIRED", "a comparison is required");
        return Comparison::AtLeast(0.0);
    };
    match common::FilterOperator::try_from(c.operator) {
        Ok(common::FilterOperator::Equals) => Comparison::Equals(c.value),
        Ok(common::FilterOperator::NotEquals) => Comparison::NotEquals(c.value),
        Ok(common::FilterOperator::GreaterThan) => Comparison::Greater(c.value),
        Ok(common::FilterOperator::GreaterThanOrEqual) => Comparison::AtLeast(c.value),
        Ok(common::FilterOperator::LessThan) => Comparison::Less(c.value),
        Ok(common::FilterOperator::LessThanOrEqual) => Comparison::AtMost(c.value),
        Ok(common::FilterOperator::Between) => Comparison::Between(c.value, c.upper_value),
        _ => {
            problems.add(
                format!("{path}.operator"),
                "INVALID_OPERATOR",
                "EQUALS, NOT_EQUALS, GREATER_THAN, GREATER_THAN_OR_EQUAL, LESS_THAN, LESS_THAN_OR_EQUAL or BETWEEN",
            );
            Comparison::AtLeast(0.0)
        }
    }
}

fn aggregation(number: i32, field: &str, path: &str, problems: &mut Violations) -> Aggregation {
    let aggregation = match pb::EventAggregation::try_from(number) {
        Ok(pb::EventAggregation::Unspecified | pb::EventAggregation::Count) => Aggregation::Count,
        Ok(pb::EventAggregation::Sum) => Aggregation::Sum,
        Ok(pb::EventAggregation::Average) => Aggregation::Average,
        Ok(pb::EventAggregation::Min) => Aggregation::Min,
        Ok(pb::EventAggregation::Max) => Aggregation::Max,
        Ok(pb::EventAggregation::DistinctDays) => Aggregation::DistinctDays,
        Err(_) => {
            problems.add(
                format!("{path}.aggregation"),
                "UNKNOWN_VALUE",
                "an unknown aggregation",
            );
            Aggregation::Count
        }
    };
    let numeric = !matches!(aggregation, Aggregation::Count | Aggregation::DistinctDays);
    match (numeric, field) {
        (false, "") | (true, "value") => {}
        (false, _) => problems.add(
            format!("{path}.field"),
            "FIELD_NOT_USED",
            "COUNT and DISTINCT_DAYS take no field",
        ),
        (true, "") => problems.add(
            format!("{path}.field"),
            "REQUIRED",
            "name the field to aggregate: `value`",
        ),
        (true, _) => problems.add(
            format!("{path}.field"),
            "NOT_ANALYSABLE",
            "only `value` (the event's monetary value, the dictionary's value property) can be aggregated yet / 目前只能汇总 `value`（事件金额）",
        ),
    }
    aggregation
}

fn window(
    window: Option<&pb::event_aggregate_condition::Window>,
    path: &str,
    problems: &mut Violations,
) -> Window {
    match window {
        Some(pb::event_aggregate_condition::Window::WithinLast(d)) => {
            Window::Last { ms: span_ms(d) }
        }
        Some(pb::event_aggregate_condition::Window::TimeRange(range)) => {
            match (range.start_time.as_ref(), range.end_time.as_ref()) {
                (Some(start), Some(end)) => Window::Range {
                    start_ms: ms(start),
                    end_ms: ms(end),
                },
                _ => {
                    problems.add(
                        format!("{path}.time_range"),
                        "REQUIRED",
                        "a fixed range needs both its start and its end",
                    );
                    Window::Last { ms: 1_000 }
                }
            }
        }
        None => {
            problems.add(
                format!("{path}.window"),
                "REQUIRED",
                "set within_last or time_range",
            );
            Window::Last { ms: 1_000 }
        }
    }
}

const STAGES: [(LifecycleStage, pb::LifecycleStage); 5] = [
    (LifecycleStage::New, pb::LifecycleStage::New),
    (LifecycleStage::Active, pb::LifecycleStage::Active),
    (LifecycleStage::Returning, pb::LifecycleStage::Returning),
    (LifecycleStage::Dormant, pb::LifecycleStage::Dormant),
    (LifecycleStage::Churned, pb::LifecycleStage::Churned),
];

fn lifecycle_stages(numbers: &[i32], path: &str, problems: &mut Violations) -> Vec<LifecycleStage> {
    let mut stages = Vec::new();
    for (index, number) in numbers.iter().enumerate() {
        match STAGES.iter().find(|(_, n)| *n as i32 == *number) {
            Some((stage, _)) => stages.push(*stage),
            None => problems.add(
                format!("{path}.lifecycle_stage.stages[{index}]"),
                "UNKNOWN_VALUE",
                "an unknown lifecycle stage",
            ),
        }
    }
    stages
}

fn rfm_segments(numbers: &[i32], path: &str, problems: &mut Violations) -> Vec<u8> {
    let mut segments = Vec::new();
    for (index, number) in numbers.iter().enumerate() {
        match pb::RfmSegment::try_from(*number) {
            Ok(segment) if segment != pb::RfmSegment::Unspecified => {
                segments.push(u8::try_from(*number).unwrap_or_default());
            }
            _ => problems.add(
                format!("{path}.rfm_segment.segments[{index}]"),
                "UNKNOWN_VALUE",
                "an unknown RFM segment",
            ),
        }
    }
    segments
}

/// An attributed-channel condition as the service takes it (a missing model is an unset
/// one, which the rule check names).
fn attributed(c: &pb::AttributedChannelCondition) -> Rule {
    Rule::AttributedChannel(Box::new(Attributed {
        query: AttributionQuery {
            conversion: matcher(c.conversion_event.as_ref()),
            channel_field: c.channel_field.clone(),
            referrer_field: c.referrer_field.clone(),
            conversion_key_field: c.conversion_key_field.clone(),
            lookback_ms: c.lookback_window.as_ref().map(span_ms),
            journey_gap_ms: c.journey_gap.as_ref().map(span_ms),
            models: vec![c.model.as_ref().map(model_request).unwrap_or_default()],
            touchpoints: c
                .touchpoint_events
                .iter()
                .filter_map(|m| matcher(Some(m)))
                .collect(),
            ..AttributionQuery::default()
        },
        channel: c.channel.clone(),
        min_share: c.min_share,
        within_ms: c.within_last.as_ref().map(span_ms),
    }))
}

/// A funnel drop-off condition as the service takes it.
fn drop_off(c: &pb::FunnelDropOffCondition, path: &str, problems: &mut Violations) -> Rule {
    let funnel = funnel_query(c.funnel.as_ref()).unwrap_or_else(|| {
        problems.add(
            format!("{path}.funnel_drop_off.funnel"),
            "REQUIRED",
            "define the funnel",
        );
        FunnelQuery {
            steps: Vec::new(),
            window_ms: None,
            order: FunnelOrder::Ordered,
            exclusions: Vec::new(),
            breakdown: None,
            scope: Scope::default(),
        }
    });
    Rule::FunnelDropOff(DropOff {
        funnel,
        step: c.step,
        within_ms: c.within_last.as_ref().map(span_ms),
        idle_ms: c.idle_for.as_ref().map_or(0, span_ms),
    })
}

/// One condition (a leaf of the rule tree) as the service takes it.
fn condition(
    tenant: &str,
    leaf: &pb::segment_rule::Rule,
    path: &str,
    problems: &mut Violations,
) -> Rule {
    use pb::segment_rule::Rule as R;
    match leaf {
        R::EventAggregate(c) => {
            let at = format!("{path}.event_aggregate");
            let matcher = matcher(c.event.as_ref()).unwrap_or_else(|| {
                problems.add(format!("{at}.event"), "REQUIRED", "name the events");
                Default::default()
            });
            Rule::Events(EventAggregate {
                matcher,
                aggregation: aggregation(c.aggregation, &c.field, &at, problems),
                comparison: comparison(
                    c.comparison.as_ref(),
                    &format!("{at}.comparison"),
                    problems,
                ),
                window: window(c.window.as_ref(), &at, problems),
            })
        }
        R::Churn(c) => match c.condition {
            Some(pb::churn_condition::Condition::Score(s)) => Rule::Churn(ChurnTest::Score(
                comparison(Some(&s), &format!("{path}.churn.score"), problems),
            )),
            Some(pb::churn_condition::Condition::Churned(flag)) => {
                Rule::Churn(ChurnTest::Churned(flag))
            }
            None => {
                problems.add(format!("{path}.churn"), "REQUIRED", "set score or churned");
                Rule::AllOf(Vec::new())
            }
        },
        R::SegmentMembership(m) => match segment_name(&m.segment) {
            Some((parent, id)) if parent == format!("tenants/{tenant}") => {
                Rule::Member(id.to_owned())
            }
            _ => {
                problems.add(
                    format!("{path}.segment_membership.segment"),
                    "INVALID_NAME",
                    "a segment of the same tenant, as tenants/{tenant}/segments/{segment}",
                );
                Rule::Member(String::new())
            }
        },
        R::Trait(c) => match c.filter.as_ref() {
            Some(f) => Rule::Trait(filter(f)),
            None => {
                problems.add(
                    format!("{path}.trait.filter"),
                    "REQUIRED",
                    "a filter on the trait",
                );
                Rule::AllOf(Vec::new())
            }
        },
        R::LifecycleStage(c) => Rule::Lifecycle(lifecycle_stages(&c.stages, path, problems)),
        R::RfmSegment(c) => Rule::Rfm(rfm_segments(&c.segments, path, problems)),
        R::FunnelDropOff(c) => drop_off(c, path, problems),
        R::AttributedChannel(c) => attributed(c),
        R::Identifier(c) => Rule::Identifier(IdentifierHeld {
            id_type: c.r#type.trim().to_owned(),
            scope: c.scope.clone(),
        }),
        R::AllOf(_) | R::AnyOf(_) | R::Negation(_) => {
            problems.add(path, "INTERNAL", "a group is not a condition");
            Rule::AllOf(Vec::new())
        }
    }
}

/// The service's rule for the contract's, with a violation for each part it cannot take.
pub(crate) fn rule(
    tenant: &str,
    given: Option<&pb::SegmentRule>,
    path: &str,
    depth: usize,
    problems: &mut Violations,
) -> Rule {
    use pb::segment_rule::Rule as R;
    let Some(inner) = given.and_then(|r| r.rule.as_ref()) else {
        problems.add(path, "REQUIRED", "set exactly one kind of rule");
        return Rule::AllOf(Vec::new());
    };
    if depth > crate::journeys::segments::rule::MAX_DEPTH {
        problems.add(path, "RULE_TOO_DEEP", "rules nest at most 10 levels");
        return Rule::AllOf(Vec::new());
    }
    let group = |rules: &[pb::SegmentRule], kind: &str, problems: &mut Violations| {
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                rule(
                    tenant,
                    Some(r),
                    &format!("{path}.{kind}.rules[{i}]"),
                    depth + 1,
                    problems,
                )
            })
            .collect()
    };
    match inner {
        R::AllOf(g) => Rule::AllOf(group(&g.rules, "all_of", problems)),
        R::AnyOf(g) => Rule::AnyOf(group(&g.rules, "any_of", problems)),
        R::Negation(r) => Rule::Not(Box::new(rule(
            tenant,
            Some(r),
            &format!("{path}.negation"),
            depth + 1,
            problems,
        ))),
        leaf => condition(tenant, leaf, path, problems),
    }
}

fn pb_comparison(c: Comparison) -> pb::NumberComparison {
    use common::FilterOperator as Op;
    let (operator, value, upper_value) = match c {
        Comparison::Equals(v) => (Op::Equals, v, 0.0),
        Comparison::NotEquals(v) => (Op::NotEquals, v, 0.0),
        Comparison::Greater(v) => (Op::GreaterThan, v, 0.0),
        Comparison::AtLeast(v) => (Op::GreaterThanOrEqual, v, 0.0),
        Comparison::Less(v) => (Op::LessThan, v, 0.0),
        Comparison::AtMost(v) => (Op::LessThanOrEqual, v, 0.0),
        Comparison::Between(a, b) => (Op::Between, a, b),
    };
    pb::NumberComparison {
        operator: operator as i32,
        value,
        upper_value,
    }
}

fn pb_matcher(m: &crate::journeys::query::Matcher) -> pb::EventMatcher {
    crate::grpc::churn::pb_matcher(m)
}

fn pb_events(e: &EventAggregate) -> pb::EventAggregateCondition {
    pb::EventAggregateCondition {
        event: Some(pb_matcher(&e.matcher)),
        aggregation: match e.aggregation {
            Aggregation::Count => pb::EventAggregation::Count,
            Aggregation::Sum => pb::EventAggregation::Sum,
            Aggregation::Average => pb::EventAggregation::Average,
            Aggregation::Min => pb::EventAggregation::Min,
            Aggregation::Max => pb::EventAggregation::Max,
            Aggregation::DistinctDays => pb::EventAggregation::DistinctDays,
        } as i32,
        field: if matches!(
            e.aggregation,
            Aggregation::Count | Aggregation::DistinctDays
        ) {
            String::new()
        } else {
            "value".to_owned()
        },
        comparison: Some(pb_comparison(e.comparison)),
        window: Some(match e.window {
            Window::Last { ms } => pb::event_aggregate_condition::Window::WithinLast(span(ms)),
            Window::Range { start_ms, end_ms } => {
                pb::event_aggregate_condition::Window::TimeRange(common::TimeRange {
                    start_time: Some(timestamp_ms(start_ms)),
                    end_time: Some(timestamp_ms(end_ms)),
                })
            }
        }),
    }
}

pub(crate) fn pb_rule(tenant: &str, rule: &Rule) -> pb::SegmentRule {
    use pb::segment_rule::Rule as R;
    let inner = match rule {
        Rule::AllOf(rules) => R::AllOf(pb::SegmentRuleGroup {
            rules: rules.iter().map(|r| pb_rule(tenant, r)).collect(),
        }),
        Rule::AnyOf(rules) => R::AnyOf(pb::SegmentRuleGroup {
            rules: rules.iter().map(|r| pb_rule(tenant, r)).collect(),
        }),
        Rule::Not(r) => R::Negation(Box::new(pb_rule(tenant, r))),
        Rule::Events(e) => R::EventAggregate(pb_events(e)),
        Rule::Churn(ChurnTest::Score(c)) => R::Churn(pb::ChurnCondition {
            condition: Some(pb::churn_condition::Condition::Score(pb_comparison(*c))),
        }),
        Rule::Churn(ChurnTest::Churned(flag)) => R::Churn(pb::ChurnCondition {
            condition: Some(pb::churn_condition::Condition::Churned(*flag)),
        }),
        Rule::Member(id) => R::SegmentMembership(pb::SegmentMembershipCondition {
            segment: format!("tenants/{tenant}/segments/{id}"),
        }),
        Rule::Lifecycle(stages) => R::LifecycleStage(pb::LifecycleStageCondition {
            stages: stages
                .iter()
                .filter_map(|s| STAGES.iter().find(|(stage, _)| stage == s))
                .map(|(_, number)| *number as i32)
                .collect(),
        }),
        Rule::Rfm(segments) => R::RfmSegment(pb::RfmSegmentCondition {
            segments: segments.iter().map(|s| i32::from(*s)).collect(),
        }),
        Rule::AttributedChannel(a) => R::AttributedChannel(pb::AttributedChannelCondition {
            conversion_event: a.query.conversion.as_ref().map(pb_matcher),
            model: a.query.models.first().map(pb_model),
            channel: a.channel.clone(),
            channel_field: a.query.channel_field.clone(),
            min_share: a.min_share,
            lookback_window: a.query.lookback_ms.map(span),
            within_last: a.within_ms.map(span),
            touchpoint_events: a.query.touchpoints.iter().map(pb_matcher).collect(),
            referrer_field: a.query.referrer_field.clone(),
            conversion_key_field: a.query.conversion_key_field.clone(),
            journey_gap: a.query.journey_gap_ms.map(span),
        }),
        Rule::Trait(filter) => R::Trait(pb::TraitCondition {
            filter: pb_matcher(&crate::journeys::query::Matcher {
                event_name: String::new(),
                filters: vec![filter.clone()],
            })
            .filters
            .pop(),
        }),
        Rule::Identifier(held) => R::Identifier(pb::IdentifierCondition {
            r#type: held.id_type.clone(),
            scope: held.scope.clone(),
        }),
        Rule::FunnelDropOff(drop) => R::FunnelDropOff(pb::FunnelDropOffCondition {
            funnel: Some(pb_funnel(&drop.funnel)),
            step: drop.step,
            within_last: drop.within_ms.map(span),
            idle_for: (drop.idle_ms > 0).then(|| span(drop.idle_ms)),
        }),
    };
    pb::SegmentRule { rule: Some(inner) }
}
