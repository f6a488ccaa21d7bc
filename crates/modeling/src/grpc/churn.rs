//! Conversions of the model-settings, RFM and churn calls: the contract's messages into the
//! service's types and back. Rules live in `journeys::churn_settings` and `journeys::churn`;
//! this only changes shapes (output-only fields sent by callers are ignored).

use std::sync::Arc;

use touchline_analytics::churn::rfm::RfmSegment;
use touchline_proto::common::v1 as common;
use touchline_proto::modeling::v1 as pb;

use super::journeys::{matcher, ms, timestamp_ms};
use crate::journeys::churn::{ChurnRow, ChurnTable, PersonRfm, RuleOutcome};
use crate::journeys::churn_pages::{ChurnListQuery, ChurnOrder};
use crate::journeys::churn_settings::{
    BgNbdSettings, ChurnSettings, DEFAULT_CHURN_INTERVALS, DEFAULT_CHURN_MODEL,
    DEFAULT_FIT_WINDOW_SECS, DEFAULT_LOOKBACK_SECS, DEFAULT_MODEL_EVENTS, DEFAULT_PREDICTION_DAYS,
    DEFAULT_REFIT_SECS, INTERVAL_WEEK, LifecycleSettings, ModelSettings, RfmSettings, RuleSettings,
    SegmentRuleSettings, Span, VersionedSettings, churn_model_number, default_segment_rules,
    model_events_number,
};
use crate::journeys::query::Matcher;
use crate::service::{ChurnScores, ChurnScoresPage, RfmPage, RfmQuery, SettingsUpdate};

fn span(duration: Option<&prost_types::Duration>) -> Option<Span> {
    duration.map(|d| (d.seconds, d.nanos))
}

fn duration_secs(secs: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: secs,
        nanos: 0,
    }
}

fn duration_of_ms(ms: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ms.div_euclid(1_000),
        nanos: i32::try_from(ms.rem_euclid(1_000) * 1_000_000).unwrap_or(0),
    }
}

fn matchers(list: &[pb::EventMatcher]) -> Vec<Matcher> {
    list.iter().filter_map(|m| matcher(Some(m))).collect()
}

fn rfm_settings(rfm: Option<&pb::RfmSettings>) -> RfmSettings {
    let Some(pb::RfmSettings {
        lookback,
        score_levels,
        segment_rules,
    }) = rfm
    else {
        return RfmSettings::default();
    };
    RfmSettings {
        lookback: span(lookback.as_ref()),
        score_levels: *score_levels,
        segment_rules: segment_rules
            .iter()
            .map(|r| SegmentRuleSettings {
                segment: r.segment,
                bounds: [
                    r.min_recency_score,
                    r.max_recency_score,
                    r.min_frequency_score,
                    r.max_frequency_score,
                    r.min_monetary_score,
                    r.max_monetary_score,
                ],
            })
            .collect(),
    }
}

/// The service's settings of the contract's (output-only fields dropped).
pub(super) fn settings(settings: Option<&pb::ModelSettings>) -> ModelSettings {
    let Some(pb::ModelSettings {
        name: _,
        time_zone,
        week_start,
        purchase_event,
        value_field,
        lifecycle,
        churn,
        rfm,
        update_time: _,
        etag: _,
        analysable_properties,
    }) = settings
    else {
        return ModelSettings::default();
    };
    let lifecycle = lifecycle
        .as_ref()
        .map_or_else(LifecycleSettings::default, |l| LifecycleSettings {
            interval: l.interval,
            qualifying: matchers(&l.qualifying_events),
            churn_intervals: l.churn_intervals,
        });
    let churn = churn.as_ref().map_or_else(ChurnSettings::default, |c| {
        let bg = c.bg_nbd.as_ref();
        ChurnSettings {
            inactivity_rules: c
                .inactivity_rules
                .iter()
                .map(|r| RuleSettings {
                    segment: r.segment.clone(),
                    threshold: span(r.threshold.as_ref()),
                    suggestion_percentile: r.suggestion_percentile,
                })
                .collect(),
            qualifying: matchers(&c.qualifying_events),
            model: c.model,
            model_events: c.model_events,
            bg_nbd: BgNbdSettings {
                fit_window: bg.and_then(|b| span(b.fit_window.as_ref())),
                refit_interval: bg.and_then(|b| span(b.refit_interval.as_ref())),
                fixed_parameters: bg
                    .and_then(|b| b.fixed_parameters.as_ref())
                    .map(|p| [p.r, p.alpha, p.a, p.b]),
                prediction_period: bg.and_then(|b| span(b.prediction_period.as_ref())),
            },
        }
    });
    ModelSettings {
        time_zone: time_zone.clone(),
        week_start: *week_start,
        purchase_event: matcher(purchase_event.as_ref()),
        value_field: value_field.clone(),
        lifecycle,
        churn,
        rfm: rfm_settings(rfm.as_ref()),
        analysable_properties: analysable_properties.clone(),
    }
}

/// The service's update of a request.
pub(super) fn update(request: &pb::UpdateModelSettingsRequest) -> SettingsUpdate {
    SettingsUpdate {
        incoming: settings(request.model_settings.as_ref()),
        etag: request
            .model_settings
            .as_ref()
            .map(|s| s.etag.clone())
            .unwrap_or_default(),
        paths: request
            .update_mask
            .as_ref()
            .map(|m| m.paths.clone())
            .unwrap_or_default(),
        request_id: request.request_id.clone(),
        validate_only: request.validate_only,
    }
}

pub(super) fn pb_matcher(m: &Matcher) -> pb::EventMatcher {
    pb::EventMatcher {
        event_name: m.event_name.clone(),
        filters: m
            .filters
            .iter()
            .map(|f| common::PropertyFilter {
                field: f.field.clone(),
                operator: operator_number(f.operator),
                values: f
                    .values
                    .iter()
                    .map(|v| prost_types::Value {
                        kind: Some(prost_types::value::Kind::StringValue(v.clone())),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn operator_number(operator: crate::journeys::query::Operator) -> i32 {
    use crate::journeys::query::Operator;
    let known = match operator {
        Operator::Equals => common::FilterOperator::Equals,
        Operator::NotEquals => common::FilterOperator::NotEquals,
        Operator::Contains => common::FilterOperator::Contains,
        Operator::NotContains => common::FilterOperator::NotContains,
        Operator::IsSet => common::FilterOperator::IsSet,
        Operator::IsNotSet => common::FilterOperator::IsNotSet,
        Operator::GreaterThan => common::FilterOperator::GreaterThan,
        Operator::GreaterOrEqual => common::FilterOperator::GreaterThanOrEqual,
        Operator::LessThan => common::FilterOperator::LessThan,
        Operator::LessOrEqual => common::FilterOperator::LessThanOrEqual,
        Operator::Between => common::FilterOperator::Between,
        Operator::Unsupported(number) => return number,
    };
    known as i32
}

fn pb_segment_rules(rules: &[SegmentRuleSettings]) -> Vec<pb::RfmSegmentRule> {
    rules
        .iter()
        .map(|r| pb::RfmSegmentRule {
            segment: r.segment,
            min_recency_score: r.bounds[0],
            max_recency_score: r.bounds[1],
            min_frequency_score: r.bounds[2],
            max_frequency_score: r.bounds[3],
            min_monetary_score: r.bounds[4],
            max_monetary_score: r.bounds[5],
        })
        .collect()
}

fn span_or(span: Option<Span>, default_secs: i64) -> prost_types::Duration {
    let (seconds, nanos) = span.unwrap_or((default_secs, 0));
    prost_types::Duration { seconds, nanos }
}

fn churn_reply(s: &ChurnSettings, table: Option<&Arc<ChurnTable>>) -> pb::ChurnSettings {
    // The table holds one outcome per rule as set (and the implicit default rule last when
    // none was set), in order.
    let outcome = |index: usize| table.and_then(|t| t.rules.get(index));
    let suggested = |(index, rule): (usize, &RuleSettings)| {
        let suggestion = outcome(index).map(|o| o.suggestion);
        pb::InactivityRule {
            segment: rule.segment.clone(),
            threshold: rule
                .threshold
                .map(|(seconds, nanos)| prost_types::Duration { seconds, nanos }),
            suggestion_percentile: if rule.suggestion_percentile > 0.0 {
                rule.suggestion_percentile
            } else {
                touchline_analytics::churn::inactivity::DEFAULT_SUGGESTION_PERCENTILE
            },
            suggested_threshold: suggestion.map(|s| duration_secs(s.threshold.seconds())),
            gap_sample_size: suggestion
                .map_or(0, |s| i64::try_from(s.gap_sample_size).unwrap_or(0)),
        }
    };
    let mut rules: Vec<pb::InactivityRule> = s
        .inactivity_rules
        .iter()
        .enumerate()
        .map(suggested)
        .collect();
    if s.inactivity_rules
        .last()
        .is_none_or(|rule| !rule.segment.is_empty())
    {
        // The implicit default rule, shown so callers see the threshold everyone else has.
        rules.push(suggested((rules.len(), &RuleSettings::default())));
    }
    let bg = &s.bg_nbd;
    let last_fit = table.and_then(|t| t.fit).map(|fit| pb::BgNbdFit {
        model: churn_model_number(fit.model),
        parameters: Some(pb::BgNbdParameters {
            r: fit.params.r,
            alpha: fit.params.alpha,
            a: fit.params.a,
            b: fit.params.b,
        }),
        log_likelihood: fit.log_likelihood,
        person_count: i64::try_from(fit.person_count).unwrap_or(i64::MAX),
        converged: fit.converged,
        fit_time: Some(timestamp_ms(fit.fit_ms)),
    });
    pb::ChurnSettings {
        inactivity_rules: rules,
        qualifying_events: s.qualifying.iter().map(pb_matcher).collect(),
        model: or_default(s.model, churn_model_number(DEFAULT_CHURN_MODEL)),
        model_events: or_default(s.model_events, model_events_number(DEFAULT_MODEL_EVENTS)),
        bg_nbd: Some(pb::BgNbdSettings {
            fit_window: Some(span_or(bg.fit_window, DEFAULT_FIT_WINDOW_SECS)),
            refit_interval: Some(span_or(bg.refit_interval, DEFAULT_REFIT_SECS)),
            fixed_parameters: bg
                .fixed_parameters
                .map(|[r, alpha, a, b]| pb::BgNbdParameters { r, alpha, a, b }),
            last_fit,
            prediction_period: Some(span_or(
                bg.prediction_period,
                i64::from(DEFAULT_PREDICTION_DAYS) * 86_400,
            )),
        }),
    }
}

fn or_default(value: i32, default: i32) -> i32 {
    if value == 0 { default } else { value }
}

/// The contract's settings: defaults filled in, with the table's output-only figures.
pub(super) fn settings_reply(
    tenant: &str,
    versioned: &VersionedSettings,
    table: Option<&Arc<ChurnTable>>,
) -> pb::ModelSettings {
    let s = &versioned.settings;
    pb::ModelSettings {
        name: format!("tenants/{tenant}/modelSettings"),
        time_zone: if s.time_zone.is_empty() {
            "UTC".to_owned()
        } else {
            s.time_zone.clone()
        },
        week_start: or_default(s.week_start, common::Weekday::Monday as i32),
        purchase_event: s.purchase_event.as_ref().map(pb_matcher),
        value_field: s.value_field.clone(),
        lifecycle: Some(pb::LifecycleOptions {
            interval: or_default(s.lifecycle.interval, INTERVAL_WEEK),
            qualifying_events: s.lifecycle.qualifying.iter().map(pb_matcher).collect(),
            churn_intervals: or_default(s.lifecycle.churn_intervals, DEFAULT_CHURN_INTERVALS),
        }),
        churn: Some(churn_reply(&s.churn, table)),
        rfm: Some(pb::RfmSettings {
            lookback: Some(span_or(s.rfm.lookback, DEFAULT_LOOKBACK_SECS)),
            score_levels: or_default(s.rfm.score_levels, 5),
            segment_rules: if s.rfm.segment_rules.is_empty() {
                pb_segment_rules(&default_segment_rules())
            } else {
                pb_segment_rules(&s.rfm.segment_rules)
            },
        }),
        update_time: versioned.update_ms.map(timestamp_ms),
        etag: versioned.etag.clone(),
        analysable_properties: s.analysable_properties.clone(),
    }
}

/// The service's RFM query of a request.
pub(super) fn rfm_query(request: &pb::RunRfmRequest) -> RfmQuery {
    let pb::RunRfmRequest {
        parent: _,
        purchase_event,
        value_field,
        settings,
        as_of,
        segment,
        page_size,
        page_token,
    } = request;
    RfmQuery {
        purchase_event: matcher(purchase_event.as_ref()),
        value_field: value_field.clone(),
        settings: rfm_settings(settings.as_ref()),
        as_of_ms: as_of.as_ref().map(ms),
        segment: segment.clone(),
        page_size: *page_size,
        page_token: page_token.clone(),
    }
}

fn segment_number(segment: RfmSegment) -> i32 {
    i32::from(segment.code())
}

fn person_rfm(tenant: &str, p: &PersonRfm) -> pb::PersonRfm {
    pb::PersonRfm {
        person: format!("tenants/{tenant}/persons/{}", p.person),
        person_id: p.person.to_string(),
        recency: Some(duration_secs(p.values.recency_secs)),
        frequency: i64::try_from(p.values.frequency).unwrap_or(i64::MAX),
        monetary: p.values.monetary,
        recency_score: i32::from(p.scores.recency),
        frequency_score: i32::from(p.scores.frequency),
        monetary_score: i32::from(p.scores.monetary),
        segment: segment_number(p.segment),
    }
}

/// The reply of an RFM run.
pub(super) fn rfm_reply(tenant: &str, page: RfmPage) -> pb::RunRfmResponse {
    let run = &page.run;
    let segments = run
        .report
        .segments()
        .into_iter()
        .map(|s| pb::RfmSegmentSummary {
            segment: segment_number(s.segment),
            person_count: i64::try_from(s.person_count).unwrap_or(i64::MAX),
            share: s.share,
            mean_recency: Some(duration_of_ms((s.mean_recency_secs * 1_000.0) as i64)),
            mean_frequency: s.mean_frequency,
            mean_monetary: s.mean_monetary,
            total_monetary: s.total_monetary,
            display_name_en: s.segment.name_en().to_owned(),
            display_name_zh_cn: s.segment.name_zh_cn().to_owned(),
        })
        .collect();
    let cells = run
        .report
        .cells()
        .into_iter()
        .map(|c| pb::RfmCell {
            recency_score: i32::from(c.scores.recency),
            frequency_score: i32::from(c.scores.frequency),
            monetary_score: i32::from(c.scores.monetary),
            person_count: i64::try_from(c.person_count).unwrap_or(i64::MAX),
        })
        .collect();
    let thresholds = run.thresholds.as_ref().map(|t| pb::RfmThresholds {
        recency_days: t.recency_days(),
        frequency: t.frequency.iter().map(|&f| f as f64).collect(),
        monetary: t.monetary.clone(),
    });
    let start = page
        .as_of_ms
        .saturating_sub(page.options.lookback_secs.saturating_mul(1_000));
    pb::RunRfmResponse {
        segments,
        cells,
        thresholds: Some(thresholds.unwrap_or_default()),
        person_count: i64::try_from(run.report.person_count()).unwrap_or(i64::MAX),
        persons: page.persons.iter().map(|p| person_rfm(tenant, p)).collect(),
        next_page_token: page.next_page_token,
        computation: Some(pb::ComputationInfo {
            clean_sequence: run.positions.clean_sequence,
            identity_sequence: run.positions.identity_sequence,
            compute_time: Some(timestamp_ms(chrono::Utc::now().timestamp_millis())),
            time_range: Some(common::TimeRange {
                start_time: Some(timestamp_ms(start)),
                end_time: Some(timestamp_ms(page.as_of_ms)),
            }),
            persons_considered: i64::try_from(run.persons_considered).unwrap_or(i64::MAX),
        }),
    }
}

fn score(
    tenant: &str,
    row: &ChurnRow,
    opted_out: bool,
    compute_ms: i64,
    rules: &[RuleOutcome],
) -> pb::ChurnScore {
    let rule = rules.get(usize::from(row.rule));
    pb::ChurnScore {
        person: format!("tenants/{tenant}/persons/{}", row.person),
        person_id: row.person.to_string(),
        score: row.score,
        probability_alive: row.probability_alive,
        churned: row.churned,
        inactivity_threshold: rule.map(|r| duration_secs(r.threshold.seconds())),
        inactivity_rule_segment: rule.and_then(|r| r.segment.clone()).unwrap_or_default(),
        inactive_for: row.inactive_for_ms.map(duration_of_ms),
        repeat_purchases: i64::try_from(row.repeat_purchases).unwrap_or(i64::MAX),
        first_purchase_time: row.first_purchase_ms.map(timestamp_ms),
        last_purchase_time: row.last_purchase_ms.map(timestamp_ms),
        marketing_opt_out: opted_out,
        compute_time: Some(timestamp_ms(compute_ms)),
        expected_purchases: row.expected_purchases,
    }
}

/// The reply of GetChurnScores.
pub(super) fn scores_reply(tenant: &str, scores: ChurnScores) -> pb::GetChurnScoresResponse {
    pb::GetChurnScoresResponse {
        scores: scores
            .rows
            .iter()
            .map(|row| {
                let opted_out = scores.opted_out.contains(&row.person);
                score(tenant, row, opted_out, scores.compute_ms, &scores.rules)
            })
            .collect(),
        missing_persons: scores.missing,
    }
}

/// The service's listing of a request.
pub(super) fn list_query(request: &pb::ListChurnScoresRequest) -> ChurnListQuery {
    let pb::ListChurnScoresRequest {
        parent: _,
        page_size,
        page_token,
        min_score,
        churned_only,
        segment,
        order_by,
    } = request;
    ChurnListQuery {
        page_size: *page_size,
        page_token: page_token.clone(),
        min_score: *min_score,
        churned_only: *churned_only,
        segment: segment.clone(),
        order: match pb::ChurnScoreOrder::try_from(*order_by) {
            Ok(pb::ChurnScoreOrder::PersonId) => ChurnOrder::PersonId,
            _ => ChurnOrder::Score,
        },
    }
}

/// The reply of ListChurnScores.
pub(super) fn list_reply(tenant: &str, page: ChurnScoresPage) -> pb::ListChurnScoresResponse {
    pb::ListChurnScoresResponse {
        scores: page
            .page
            .rows
            .iter()
            .map(|row| score(tenant, row, false, page.compute_ms, &page.rules))
            .collect(),
        next_page_token: page.page.next_page_token,
        total_size: i64::try_from(page.page.total).unwrap_or(i64::MAX),
    }
}

/// The tenant part (`tenants/{tenant}`) of a settings name; `None` when malformed. Empty
/// names the caller's tenant.
pub(super) fn settings_parent(name: &str) -> Option<&str> {
    if name.is_empty() {
        return Some("");
    }
    let parent = name.strip_suffix("/modelSettings")?;
    let tenant = parent.strip_prefix("tenants/")?;
    (!tenant.is_empty() && !tenant.contains('/')).then_some(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_names_give_their_tenant() {
        assert_eq!(settings_parent(""), Some(""));
        assert_eq!(
            settings_parent("tenants/acme/modelSettings"),
            Some("tenants/acme")
        );
        assert_eq!(settings_parent("tenants/acme"), None);
        assert_eq!(settings_parent("tenants//modelSettings"), None);
    }
}
