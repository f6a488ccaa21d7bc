//! Conversions of the segment calls: the contract's rules into the service's, stored rows
//! and changes into replies, and the page tokens. Rules live in `journeys::segments`; this
//! only changes shapes, and names the conditions the service cannot take yet.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use touchline_analytics::lifecycle::LifecycleStage;
use touchline_proto::common::v1 as common;
use touchline_proto::modeling::v1 as pb;
use uuid::Uuid;

use super::journeys::{matcher, ms, timestamp_ms};
use crate::error::ModelingError;
use crate::journeys::query::Violations;
use crate::journeys::segments::{Aggregation, ChurnTest, Comparison, EventAggregate, Rule, Window};
use crate::service::{ChangesPage, MembersPage, Preview, SegmentInput, SegmentReply};
use crate::store::segments::{SegmentRow, StoredChange};

/// The id in `tenants/{tenant}/segments/{id}`, with the tenant part; `None` when malformed.
pub(super) fn segment_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("tenants/")?;
    let (tenant, id) = rest.split_once("/segments/")?;
    (!tenant.is_empty() && !id.is_empty() && !id.contains('/'))
        .then(|| (&name[..8 + tenant.len()], id))
}

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
        Some(pb::event_aggregate_condition::Window::WithinLast(d)) => Window::Last {
            ms: d
                .seconds
                .saturating_mul(1_000)
                .saturating_add(i64::from(d.nanos) / 1_000_000),
        },
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

fn not_available(path: &str, what: &str, problems: &mut Violations) -> Rule {
    problems.add(
        path,
        "CONDITION_NOT_AVAILABLE",
        format!(
            "{what} conditions are not available yet; use event_aggregate, churn, lifecycle_stage, rfm_segment, segment_membership, all_of, any_of, negation / 暂不支持该条件"
        ),
    );
    Rule::AllOf(Vec::new())
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
        R::Trait(_) => not_available(&format!("{path}.trait"), "trait", problems),
        R::LifecycleStage(c) => Rule::Lifecycle(lifecycle_stages(&c.stages, path, problems)),
        R::RfmSegment(c) => Rule::Rfm(rfm_segments(&c.segments, path, problems)),
        R::FunnelDropOff(_) => not_available(
            &format!("{path}.funnel_drop_off"),
            "funnel_drop_off",
            problems,
        ),
        R::AttributedChannel(_) => not_available(
            &format!("{path}.attributed_channel"),
            "attributed_channel",
            problems,
        ),
        R::Identifier(_) => not_available(&format!("{path}.identifier"), "identifier", problems),
        R::AllOf(_) | R::AnyOf(_) | R::Negation(_) => {
            problems.add(path, "INTERNAL", "a group is not a condition");
            Rule::AllOf(Vec::new())
        }
    }
}

/// The service's rule for the contract's, with a violation for each part it cannot take.
pub(super) fn rule(
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
    super::churn::pb_matcher(m)
}

fn pb_rule(tenant: &str, rule: &Rule) -> pb::SegmentRule {
    use pb::segment_rule::Rule as R;
    let inner = match rule {
        Rule::AllOf(rules) => R::AllOf(pb::SegmentRuleGroup {
            rules: rules.iter().map(|r| pb_rule(tenant, r)).collect(),
        }),
        Rule::AnyOf(rules) => R::AnyOf(pb::SegmentRuleGroup {
            rules: rules.iter().map(|r| pb_rule(tenant, r)).collect(),
        }),
        Rule::Not(r) => R::Negation(Box::new(pb_rule(tenant, r))),
        Rule::Events(e) => R::EventAggregate(pb::EventAggregateCondition {
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
                Window::Last { ms } => {
                    pb::event_aggregate_condition::Window::WithinLast(prost_types::Duration {
                        seconds: ms.div_euclid(1_000),
                        nanos: i32::try_from(ms.rem_euclid(1_000) * 1_000_000).unwrap_or(0),
                    })
                }
                Window::Range { start_ms, end_ms } => {
                    pb::event_aggregate_condition::Window::TimeRange(common::TimeRange {
                        start_time: Some(timestamp_ms(start_ms)),
                        end_time: Some(timestamp_ms(end_ms)),
                    })
                }
            }),
        }),
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
    };
    pb::SegmentRule { rule: Some(inner) }
}

fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    timestamp_ms(at.timestamp_millis())
}

/// The contract's segment for a stored one.
pub(super) fn segment(tenant: &str, row: &SegmentRow) -> pb::Segment {
    let state = if row.built_rule_revision == Some(row.rule_revision) {
        pb::SegmentState::Active
    } else {
        pb::SegmentState::Building
    };
    pb::Segment {
        name: format!("tenants/{tenant}/segments/{}", row.id),
        display_name: row.definition.display_name.clone(),
        description: row.definition.description.clone(),
        rule: Some(pb_rule(tenant, &row.definition.rule)),
        state: state as i32,
        member_count: row.member_count,
        last_change_sequence: row.last_change_sequence,
        reevaluation_interval: Some(prost_types::Duration {
            seconds: row.definition.reevaluation_secs,
            nanos: 0,
        }),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        etag: row.revision.to_string(),
    }
}

/// The fields a create or update sends.
pub(super) fn input(tenant: &str, segment: Option<&pb::Segment>) -> SegmentInput {
    let mut problems = Violations::default();
    let Some(s) = segment else {
        problems.add("segment", "REQUIRED", "a segment is required");
        return SegmentInput {
            problems,
            ..SegmentInput::default()
        };
    };
    let rule = s
        .rule
        .as_ref()
        .map(|r| rule(tenant, Some(r), "segment.rule", 1, &mut problems));
    SegmentInput {
        display_name: s.display_name.clone(),
        description: s.description.clone(),
        rule,
        reevaluation_secs: s.reevaluation_interval.map(|d| d.seconds),
        problems,
    }
}

/// A preview for the reply.
pub(super) fn preview(tenant: &str, preview: Option<Preview>) -> Option<pb::SegmentPreview> {
    preview.map(|p| pb::SegmentPreview {
        member_count: p.member_count,
        sample_persons: p
            .sample
            .iter()
            .map(|id| format!("tenants/{tenant}/persons/{id}"))
            .collect(),
        as_of_revision: p.as_of_revision,
    })
}

/// The segment and its preview as a create reply.
pub(super) fn created(tenant: &str, reply: SegmentReply) -> pb::CreateSegmentResponse {
    pb::CreateSegmentResponse {
        segment: Some(segment(tenant, &reply.segment)),
        preview: preview(tenant, reply.preview),
    }
}

/// Identifier types are not exported yet: asking for them is refused rather than answered
/// with members that silently lack them.
pub(super) fn check_identifier_types(types: &[String]) -> Result<(), ModelingError> {
    if types.is_empty() {
        Ok(())
    } else {
        Err(ModelingError::invalid(
            "identifier_types",
            "NOT_AVAILABLE_YET",
            "members and changes do not carry identifiers yet; match on the person id / 成员与变更暂不附带标识符，请按 person id 匹配",
        ))
    }
}

fn encode(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn decode(token: &str, prefix: &str) -> Result<String, ModelingError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(prefix).map(str::to_owned))
        .ok_or_else(|| {
            ModelingError::invalid(
                "page_token",
                "INVALID_PAGE_TOKEN",
                "not a token this call gave",
            )
        })
}

/// The id a segments page continues after.
pub(super) fn segments_after(token: &str) -> Result<String, ModelingError> {
    if token.is_empty() {
        Ok(String::new())
    } else {
        decode(token, "segments:")
    }
}

/// The token of the segments page after `id`.
pub(super) fn segments_token(id: &str) -> String {
    encode(&format!("segments:{id}"))
}

/// The sequence and person a members page continues after.
pub(super) fn members_after(token: &str) -> Result<Option<(i64, Uuid)>, ModelingError> {
    if token.is_empty() {
        return Ok(None);
    }
    let text = decode(token, "members:")?;
    text.split_once('/')
        .and_then(|(seq, person)| Some((seq.parse().ok()?, person.parse().ok()?)))
        .map(Some)
        .ok_or_else(|| {
            ModelingError::invalid(
                "page_token",
                "INVALID_PAGE_TOKEN",
                "not a token this call gave",
            )
        })
}

/// A members page as a reply.
pub(super) fn members_reply(tenant: &str, page: MembersPage) -> pb::ListSegmentMembersResponse {
    let next_page_token = match page.members.last() {
        Some(last) if page.more => encode(&format!(
            "members:{}/{}",
            page.as_of_sequence, last.person_id
        )),
        _ => String::new(),
    };
    pb::ListSegmentMembersResponse {
        members: page
            .members
            .iter()
            .map(|m| pb::SegmentMember {
                person: format!("tenants/{tenant}/persons/{}", m.person_id),
                person_id: m.person_id.to_string(),
                enter_time: Some(timestamp(m.entered_at)),
                identifiers: Vec::new(),
            })
            .collect(),
        next_page_token,
        total_size: page.total,
        as_of_sequence: page.as_of_sequence,
    }
}

/// The sequence a changes page continues after.
pub(super) fn changes_after(token: &str, after_sequence: i64) -> Result<i64, ModelingError> {
    if token.is_empty() {
        if after_sequence < 0 {
            return Err(ModelingError::invalid(
                "after_sequence",
                "OUT_OF_RANGE",
                "a sequence is 0 or more",
            ));
        }
        return Ok(after_sequence);
    }
    decode(token, "changes:")?.parse().map_err(|_| {
        ModelingError::invalid(
            "page_token",
            "INVALID_PAGE_TOKEN",
            "not a token this call gave",
        )
    })
}

/// One change as the contract has it.
pub(super) fn change(tenant: &str, c: &StoredChange) -> pb::SegmentChange {
    pb::SegmentChange {
        sequence: c.sequence,
        segment: format!("tenants/{tenant}/segments/{}", c.segment_id),
        person: format!("tenants/{tenant}/persons/{}", c.person_id),
        person_id: c.person_id.to_string(),
        kind: i32::from(c.kind),
        reason: i32::from(c.reason),
        change_time: Some(timestamp(c.changed_at)),
        identifiers: Vec::new(),
        change_id: c.change_id.to_string(),
    }
}

/// A changes page as a reply.
pub(super) fn changes_reply(
    tenant: &str,
    after: i64,
    page: ChangesPage,
) -> pb::ListSegmentChangesResponse {
    let last_sequence = page.changes.last().map_or(after, |c| c.sequence);
    pb::ListSegmentChangesResponse {
        changes: page.changes.iter().map(|c| change(tenant, c)).collect(),
        next_page_token: if page.more {
            encode(&format!("changes:{last_sequence}"))
        } else {
            String::new()
        },
        last_sequence,
        head_sequence: page.head_sequence,
    }
}

/// A page size within `default` and `max`.
pub(super) fn size(asked: i32, default: i64, max: i64) -> Result<i64, ModelingError> {
    match i64::from(asked) {
        0 => Ok(default),
        n if (1..=max).contains(&n) => Ok(n),
        _ => Err(ModelingError::invalid(
            "page_size",
            "OUT_OF_RANGE",
            format!("from 0 to {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_split_into_tenant_and_id() {
        assert_eq!(
            segment_name("tenants/acme/segments/vip"),
            Some(("tenants/acme", "vip"))
        );
        assert_eq!(segment_name("tenants/acme/segments/"), None);
        assert_eq!(segment_name("tenants//segments/vip"), None);
        assert_eq!(segment_name("tenants/acme/segments/a/b"), None);
        assert_eq!(segment_name("acme/segments/vip"), None);
    }

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_refused() {
        let token = segments_token("vip");
        assert_eq!(segments_after(&token).ok(), Some("vip".to_owned()));
        assert!(members_after(&token).is_err());
        assert!(changes_after("garbage", 0).is_err());
        assert!(changes_after("", -1).is_err());
    }
}
