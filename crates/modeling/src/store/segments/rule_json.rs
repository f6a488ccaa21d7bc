//! A segment rule in this store's own JSON form, so a rename in the service's types never
//! changes what is stored by accident.

use serde::{Deserialize, Serialize};
use touchline_analytics::lifecycle::LifecycleStage;

use crate::journeys::attribution::query::{AttributionQuery, ModelRequest, ModelType};
use crate::journeys::query::{
    FunnelExclusion, FunnelOrder, FunnelQuery, FunnelStep, Matcher, Scope,
};
use crate::journeys::segments::{
    Aggregation, Attributed, ChurnTest, Comparison, DropOff, EventAggregate, IdentifierHeld, Rule,
    Window,
};
use crate::store::model_settings::{StoredMatcher, from_stored, to_stored};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op", content = "v")]
enum StoredComparison {
    Eq(f64),
    Ne(f64),
    Gt(f64),
    Ge(f64),
    Lt(f64),
    Le(f64),
    Between(f64, f64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
enum StoredRule {
    AllOf {
        rules: Vec<StoredRule>,
    },
    AnyOf {
        rules: Vec<StoredRule>,
    },
    Not {
        rule: Box<StoredRule>,
    },
    Events {
        event: StoredMatcher,
        aggregation: String,
        comparison: StoredComparison,
        #[serde(default)]
        within_last_ms: Option<i64>,
        #[serde(default)]
        range_ms: Option<(i64, i64)>,
    },
    ChurnScore {
        comparison: StoredComparison,
    },
    Churned {
        churned: bool,
    },
    Member {
        segment: String,
    },
    Lifecycle {
        stages: Vec<String>,
    },
    Rfm {
        segments: Vec<u8>,
    },
    Trait {
        filter: StoredMatcher,
    },
    Identifier {
        id_type: String,
        #[serde(default)]
        scope: String,
    },
    AttributedChannel {
        conversion: Option<StoredMatcher>,
        #[serde(default)]
        channel_field: String,
        #[serde(default)]
        lookback_ms: Option<i64>,
        model: StoredModel,
        channel: String,
        #[serde(default)]
        min_share: f64,
        #[serde(default)]
        within_last_ms: Option<i64>,
        #[serde(default)]
        touchpoints: Vec<StoredMatcher>,
        #[serde(default)]
        referrer_field: String,
        #[serde(default)]
        conversion_key_field: String,
        #[serde(default)]
        journey_gap_ms: Option<i64>,
    },
    FunnelDropOff {
        funnel: StoredFunnel,
        step: i32,
        #[serde(default)]
        within_last_ms: Option<i64>,
        #[serde(default)]
        idle_ms: i64,
    },
}

/// An attributed-channel condition's model (the per-journey models only).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredModel {
    kind: String,
    #[serde(default)]
    linear_distinct_channels: bool,
    #[serde(default)]
    position_first_share: f64,
    #[serde(default)]
    position_last_share: f64,
    #[serde(default)]
    half_life_ms: Option<i64>,
}

const MODEL_TYPES: [(ModelType, &str); 8] = [
    (ModelType::FirstTouch, "first_touch"),
    (ModelType::LastTouch, "last_touch"),
    (ModelType::Linear, "linear"),
    (ModelType::PositionBased, "position_based"),
    (ModelType::TimeDecay, "time_decay"),
    (ModelType::Markov, "markov"),
    (ModelType::Shapley, "shapley"),
    (ModelType::Unknown, "unknown"),
];

impl From<&ModelRequest> for StoredModel {
    fn from(m: &ModelRequest) -> Self {
        StoredModel {
            kind: MODEL_TYPES
                .iter()
                .find(|(k, _)| *k == m.kind)
                .map_or("unknown", |(_, name)| name)
                .to_owned(),
            linear_distinct_channels: m.linear_distinct_channels,
            position_first_share: m.position_first_share,
            position_last_share: m.position_last_share,
            half_life_ms: m.half_life_ms,
        }
    }
}

impl TryFrom<StoredModel> for ModelRequest {
    type Error = &'static str;

    fn try_from(m: StoredModel) -> Result<Self, Self::Error> {
        Ok(ModelRequest {
            kind: MODEL_TYPES
                .iter()
                .find(|(_, name)| *name == m.kind)
                .map(|(k, _)| *k)
                .ok_or("an unknown attribution model")?,
            linear_distinct_channels: m.linear_distinct_channels,
            position_first_share: m.position_first_share,
            position_last_share: m.position_last_share,
            half_life_ms: m.half_life_ms,
            ..ModelRequest::default()
        })
    }
}

/// A drop-off condition's funnel: what evaluating it reads (no breakdown, no range).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredFunnel {
    steps: Vec<(String, Option<StoredMatcher>)>,
    #[serde(default)]
    window_ms: Option<i64>,
    order: String,
    #[serde(default)]
    exclusions: Vec<(Option<StoredMatcher>, i32, i32)>,
    #[serde(default)]
    event_filters: Option<StoredMatcher>,
}

const ORDERS: [(FunnelOrder, &str); 3] = [
    (FunnelOrder::Ordered, "ordered"),
    (FunnelOrder::Strict, "strict"),
    (FunnelOrder::Unordered, "unordered"),
];

impl From<&FunnelQuery> for StoredFunnel {
    fn from(q: &FunnelQuery) -> Self {
        StoredFunnel {
            steps: q
                .steps
                .iter()
                .map(|s| (s.label.clone(), s.event.as_ref().map(to_stored)))
                .collect(),
            window_ms: q.window_ms,
            order: ORDERS
                .iter()
                .find(|(o, _)| *o == q.order)
                .map_or("ordered", |(_, name)| name)
                .to_owned(),
            exclusions: q
                .exclusions
                .iter()
                .map(|e| (e.event.as_ref().map(to_stored), e.from_step, e.to_step))
                .collect(),
            event_filters: (!q.scope.event_filters.is_empty()).then(|| {
                to_stored(&Matcher {
                    event_name: String::new(),
                    filters: q.scope.event_filters.clone(),
                })
            }),
        }
    }
}

impl TryFrom<StoredFunnel> for FunnelQuery {
    type Error = &'static str;

    fn try_from(f: StoredFunnel) -> Result<Self, Self::Error> {
        Ok(FunnelQuery {
            steps: f
                .steps
                .into_iter()
                .map(|(label, event)| FunnelStep {
                    label,
                    event: event.map(from_stored),
                })
                .collect(),
            window_ms: f.window_ms,
            order: ORDERS
                .iter()
                .find(|(_, name)| *name == f.order)
                .map(|(o, _)| *o)
                .ok_or("an unknown funnel order")?,
            exclusions: f
                .exclusions
                .into_iter()
                .map(|(event, from_step, to_step)| FunnelExclusion {
                    event: event.map(from_stored),
                    from_step,
                    to_step,
                })
                .collect(),
            breakdown: None,
            scope: Scope {
                event_filters: f.event_filters.map(from_stored).unwrap_or_default().filters,
                ..Scope::default()
            },
        })
    }
}

const STAGES: [(LifecycleStage, &str); 5] = [
    (LifecycleStage::New, "new"),
    (LifecycleStage::Active, "active"),
    (LifecycleStage::Returning, "returning"),
    (LifecycleStage::Dormant, "dormant"),
    (LifecycleStage::Churned, "churned"),
];

impl From<Comparison> for StoredComparison {
    fn from(c: Comparison) -> Self {
        match c {
            Comparison::Equals(v) => StoredComparison::Eq(v),
            Comparison::NotEquals(v) => StoredComparison::Ne(v),
            Comparison::Greater(v) => StoredComparison::Gt(v),
            Comparison::AtLeast(v) => StoredComparison::Ge(v),
            Comparison::Less(v) => StoredComparison::Lt(v),
            Comparison::AtMost(v) => StoredComparison::Le(v),
            Comparison::Between(a, b) => StoredComparison::Between(a, b),
        }
    }
}

impl From<StoredComparison> for Comparison {
    fn from(c: StoredComparison) -> Self {
        match c {
            StoredComparison::Eq(v) => Comparison::Equals(v),
            StoredComparison::Ne(v) => Comparison::NotEquals(v),
            StoredComparison::Gt(v) => Comparison::Greater(v),
            StoredComparison::Ge(v) => Comparison::AtLeast(v),
            StoredComparison::Lt(v) => Comparison::Less(v),
            StoredComparison::Le(v) => Comparison::AtMost(v),
            StoredComparison::Between(a, b) => Comparison::Between(a, b),
        }
    }
}

const AGGREGATIONS: [(Aggregation, &str); 6] = [
    (Aggregation::Count, "count"),
    (Aggregation::Sum, "sum"),
    (Aggregation::Average, "average"),
    (Aggregation::Min, "min"),
    (Aggregation::Max, "max"),
    (Aggregation::DistinctDays, "distinct_days"),
];

fn to_json_rule(rule: &Rule) -> StoredRule {
    match rule {
        Rule::AllOf(rules) => StoredRule::AllOf {
            rules: rules.iter().map(to_json_rule).collect(),
        },
        Rule::AnyOf(rules) => StoredRule::AnyOf {
            rules: rules.iter().map(to_json_rule).collect(),
        },
        Rule::Not(rule) => StoredRule::Not {
            rule: Box::new(to_json_rule(rule)),
        },
        Rule::Events(events) => StoredRule::Events {
            event: to_stored(&events.matcher),
            aggregation: AGGREGATIONS
                .iter()
                .find(|(a, _)| *a == events.aggregation)
                .map_or("count", |(_, name)| name)
                .to_owned(),
            comparison: events.comparison.into(),
            within_last_ms: match events.window {
                Window::Last { ms } => Some(ms),
                Window::Range { .. } => None,
            },
            range_ms: match events.window {
                Window::Range { start_ms, end_ms } => Some((start_ms, end_ms)),
                Window::Last { .. } => None,
            },
        },
        Rule::Churn(ChurnTest::Score(comparison)) => StoredRule::ChurnScore {
            comparison: (*comparison).into(),
        },
        Rule::Churn(ChurnTest::Churned(churned)) => StoredRule::Churned { churned: *churned },
        Rule::Member(segment) => StoredRule::Member {
            segment: segment.clone(),
        },
        Rule::Lifecycle(stages) => StoredRule::Lifecycle {
            stages: stages
                .iter()
                .filter_map(|s| STAGES.iter().find(|(stage, _)| stage == s))
                .map(|(_, name)| (*name).to_owned())
                .collect(),
        },
        Rule::Rfm(segments) => StoredRule::Rfm {
            segments: segments.clone(),
        },
        Rule::AttributedChannel(a) => StoredRule::AttributedChannel {
            conversion: a.query.conversion.as_ref().map(to_stored),
            channel_field: a.query.channel_field.clone(),
            lookback_ms: a.query.lookback_ms,
            model: a
                .query
                .models
                .first()
                .map_or_else(|| (&ModelRequest::default()).into(), StoredModel::from),
            channel: a.channel.clone(),
            min_share: a.min_share,
            within_last_ms: a.within_ms,
            touchpoints: a.query.touchpoints.iter().map(to_stored).collect(),
            referrer_field: a.query.referrer_field.clone(),
            conversion_key_field: a.query.conversion_key_field.clone(),
            journey_gap_ms: a.query.journey_gap_ms,
        },
        Rule::Identifier(held) => StoredRule::Identifier {
            id_type: held.id_type.clone(),
            scope: held.scope.clone(),
        },
        Rule::Trait(filter) => StoredRule::Trait {
            filter: to_stored(&Matcher {
                event_name: String::new(),
                filters: vec![filter.clone()],
            }),
        },
        Rule::FunnelDropOff(drop) => StoredRule::FunnelDropOff {
            funnel: (&drop.funnel).into(),
            step: drop.step,
            within_last_ms: drop.within_ms,
            idle_ms: drop.idle_ms,
        },
    }
}

fn events_rule(
    event: StoredMatcher,
    aggregation: &str,
    comparison: StoredComparison,
    within_last_ms: Option<i64>,
    range_ms: Option<(i64, i64)>,
) -> Result<Rule, &'static str> {
    Ok(Rule::Events(EventAggregate {
        matcher: from_stored(event),
        aggregation: AGGREGATIONS
            .iter()
            .find(|(_, name)| *name == aggregation)
            .map(|(a, _)| *a)
            .ok_or("an unknown aggregation")?,
        comparison: comparison.into(),
        window: match (within_last_ms, range_ms) {
            (Some(ms), _) => Window::Last { ms },
            (None, Some((start_ms, end_ms))) => Window::Range { start_ms, end_ms },
            (None, None) => return Err("a condition without a window"),
        },
    }))
}

/// The lifecycle stages a stored rule names.
fn lifecycle_stages(names: &[String]) -> Result<Vec<LifecycleStage>, &'static str> {
    names
        .iter()
        .map(|name| {
            STAGES
                .iter()
                .find(|(_, n)| n == name)
                .map(|(stage, _)| *stage)
                .ok_or("an unknown lifecycle stage")
        })
        .collect()
}

fn from_json_rule(rule: StoredRule) -> Result<Rule, &'static str> {
    Ok(match rule {
        StoredRule::AllOf { rules } => Rule::AllOf(
            rules
                .into_iter()
                .map(from_json_rule)
                .collect::<Result<_, _>>()?,
        ),
        StoredRule::AnyOf { rules } => Rule::AnyOf(
            rules
                .into_iter()
                .map(from_json_rule)
                .collect::<Result<_, _>>()?,
        ),
        StoredRule::Not { rule } => Rule::Not(Box::new(from_json_rule(*rule)?)),
        StoredRule::Events {
            event,
            aggregation,
            comparison,
            within_last_ms,
            range_ms,
        } => events_rule(event, &aggregation, comparison, within_last_ms, range_ms)?,
        StoredRule::ChurnScore { comparison } => Rule::Churn(ChurnTest::Score(comparison.into())),
        StoredRule::Churned { churned } => Rule::Churn(ChurnTest::Churned(churned)),
        StoredRule::Member { segment } => Rule::Member(segment),
        StoredRule::Lifecycle { stages } => Rule::Lifecycle(lifecycle_stages(&stages)?),
        StoredRule::Rfm { segments } => Rule::Rfm(segments),
        StoredRule::AttributedChannel {
            conversion,
            channel_field,
            lookback_ms,
            model,
            channel,
            min_share,
            within_last_ms,
            touchpoints,
            referrer_field,
            conversion_key_field,
            journey_gap_ms,
        } => Rule::AttributedChannel(Box::new(Attributed {
            query: AttributionQuery {
                conversion: conversion.map(from_stored),
                channel_field,
                referrer_field,
                conversion_key_field,
                lookback_ms,
                journey_gap_ms,
                models: vec![model.try_into()?],
                touchpoints: touchpoints.into_iter().map(from_stored).collect(),
                ..AttributionQuery::default()
            },
            channel,
            min_share,
            within_ms: within_last_ms,
        })),
        StoredRule::Identifier { id_type, scope } => {
            Rule::Identifier(IdentifierHeld { id_type, scope })
        }
        StoredRule::Trait { filter } => Rule::Trait(
            from_stored(filter)
                .filters
                .pop()
                .ok_or("a trait condition without its filter")?,
        ),
        StoredRule::FunnelDropOff {
            funnel,
            step,
            within_last_ms,
            idle_ms,
        } => Rule::FunnelDropOff(DropOff {
            funnel: funnel.try_into()?,
            step,
            within_ms: within_last_ms,
            idle_ms,
        }),
    })
}

pub(super) fn encode_rule(rule: &Rule) -> Result<serde_json::Value, sqlx::Error> {
    serde_json::to_value(to_json_rule(rule)).map_err(|err| sqlx::Error::Encode(Box::new(err)))
}

pub(super) fn decode_rule(json: serde_json::Value) -> Result<Rule, sqlx::Error> {
    let stored: StoredRule =
        serde_json::from_value(json).map_err(|err| sqlx::Error::Decode(Box::new(err)))?;
    from_json_rule(stored).map_err(|why| sqlx::Error::Decode(why.into()))
}
