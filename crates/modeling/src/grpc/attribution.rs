//! Conversions of the attribution calls: the contract's requests into the service's queries,
//! figures into replies. Rules live in `journeys::attribution::query`; this only changes
//! shapes.

use touchline_analytics::attribution::{HeuristicModel, ShapleyGame};
use touchline_proto::modeling::v1 as pb;

use super::journeys::{computation, matcher, scope, span, span_ms};
use crate::journeys::attribution::models::{ModelFigures, Summary};
use crate::journeys::attribution::on_paths::{
    AttributionFigures, OnPathsQuery, PathsInput, SuppliedPath,
};
use crate::journeys::attribution::query::{
    AttributionQuery, CostRequest, GameChoice, Model, ModelRequest, ModelType, UnidentifiedChoice,
};
use crate::service::Attribution;

pub(super) fn model_request(model: &pb::AttributionModel) -> ModelRequest {
    use pb::AttributionModelType as T;
    let kind = match T::try_from(model.r#type) {
        Ok(T::FirstTouch) => ModelType::FirstTouch,
        Ok(T::LastTouch) => ModelType::LastTouch,
        Ok(T::Linear) => ModelType::Linear,
        Ok(T::PositionBased) => ModelType::PositionBased,
        Ok(T::TimeDecay) => ModelType::TimeDecay,
        Ok(T::Markov) => ModelType::Markov,
        Ok(T::Shapley) => ModelType::Shapley,
        Ok(T::Unspecified) | Err(_) => ModelType::Unknown,
    };
    let shapley_game = match pb::ShapleyGame::try_from(model.shapley_game) {
        Ok(pb::ShapleyGame::Unspecified) => GameChoice::Default,
        Ok(pb::ShapleyGame::Conversions) => GameChoice::Game(ShapleyGame::Conversions),
        Ok(pb::ShapleyGame::ConversionRate) => GameChoice::Game(ShapleyGame::ConversionRate),
        Ok(pb::ShapleyGame::Uplift) => GameChoice::Game(ShapleyGame::Uplift),
        Err(_) => GameChoice::Unknown,
    };
    ModelRequest {
        kind,
        linear_distinct_channels: model.linear_distinct_channels,
        position_first_share: model.position_first_share,
        position_last_share: model.position_last_share,
        half_life_ms: model.time_decay_half_life.as_ref().map(span_ms),
        markov_order: model.markov_order,
        shapley_game,
        allow_approximation: model.allow_approximation,
        shapley_samples: model.shapley_samples,
    }
}

/// The contract's model of a request for one (what a stored segment condition answers with).
pub(super) fn pb_model(model: &ModelRequest) -> pb::AttributionModel {
    use pb::AttributionModelType as T;
    pb::AttributionModel {
        r#type: match model.kind {
            ModelType::FirstTouch => T::FirstTouch,
            ModelType::LastTouch => T::LastTouch,
            ModelType::Linear => T::Linear,
            ModelType::PositionBased => T::PositionBased,
            ModelType::TimeDecay => T::TimeDecay,
            ModelType::Markov => T::Markov,
            ModelType::Shapley => T::Shapley,
            ModelType::Unknown => T::Unspecified,
        } as i32,
        linear_distinct_channels: model.linear_distinct_channels,
        position_first_share: model.position_first_share,
        position_last_share: model.position_last_share,
        time_decay_half_life: model.half_life_ms.map(span),
        markov_order: model.markov_order,
        ..pb::AttributionModel::default()
    }
}

fn supplied(costs: Option<&pb::SuppliedCosts>) -> Vec<(String, f64)> {
    costs
        .map(|c| {
            c.channel_costs
                .iter()
                .map(|c| (c.channel.clone(), c.cost))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn attribution_query(request: &pb::RunAttributionRequest) -> AttributionQuery {
    use pb::cost_input::Costs as C;
    let costs = match request.costs.as_ref().and_then(|c| c.costs.as_ref()) {
        None => CostRequest::None,
        Some(C::SuppliedCosts(costs)) => CostRequest::Supplied(supplied(Some(costs))),
        Some(C::CostEvents(events)) => CostRequest::Events {
            event: matcher(events.event.as_ref()),
            cost_field: events.cost_field.clone(),
            channel_field: events.channel_field.clone(),
        },
    };
    AttributionQuery {
        conversion: matcher(request.conversion_event.as_ref()),
        value_field: request.value_field.clone(),
        touchpoints: request
            .touchpoint_events
            .iter()
            .filter_map(|m| matcher(Some(m)))
            .collect(),
        channel_field: request.channel_field.clone(),
        referrer_field: request.referrer_field.clone(),
        conversion_key_field: request.conversion_key_field.clone(),
        lookback_ms: request.lookback_window.as_ref().map(span_ms),
        journey_gap_ms: request.journey_gap.as_ref().map(span_ms),
        unidentified: match pb::UnidentifiedConversions::try_from(request.unidentified_conversions)
        {
            Ok(pb::UnidentifiedConversions::Unspecified | pb::UnidentifiedConversions::Apart) => {
                UnidentifiedChoice::Apart
            }
            Ok(pb::UnidentifiedConversions::RecordingChannel) => {
                UnidentifiedChoice::RecordingChannel
            }
            Err(_) => UnidentifiedChoice::Unknown,
        },
        models: request.models.iter().map(model_request).collect(),
        costs,
        scope: scope(request.scope.as_ref()),
    }
}

pub(super) fn on_paths_query(request: pb::RunAttributionOnPathsRequest) -> OnPathsQuery {
    use pb::run_attribution_on_paths_request::PathsInput as P;
    let paths = match request.paths_input {
        None => PathsInput::Missing,
        Some(P::PathsText(text)) => PathsInput::Text(text),
        Some(P::Paths(paths)) => PathsInput::Rows(
            paths
                .paths
                .into_iter()
                .map(|p| SuppliedPath {
                    channels: p.channels,
                    conversions: p.conversions,
                    value: p.value,
                    nulls: p.nulls,
                })
                .collect(),
        ),
    };
    OnPathsQuery {
        paths,
        separator: request.separator,
        models: request.models.iter().map(model_request).collect(),
        costs: supplied(request.costs.as_ref()),
    }
}

fn model(model: Model) -> pb::AttributionModel {
    use pb::AttributionModelType as T;
    let mut reply = pb::AttributionModel::default();
    match model {
        Model::Heuristic(HeuristicModel::FirstTouch) => reply.r#type = T::FirstTouch.into(),
        Model::Heuristic(HeuristicModel::LastTouch) => reply.r#type = T::LastTouch.into(),
        Model::Heuristic(HeuristicModel::Linear { distinct_channels }) => {
            reply.r#type = T::Linear.into();
            reply.linear_distinct_channels = distinct_channels;
        }
        Model::Heuristic(HeuristicModel::PositionBased {
            first_share,
            last_share,
        }) => {
            reply.r#type = T::PositionBased.into();
            reply.position_first_share = first_share;
            reply.position_last_share = last_share;
        }
        Model::TimeDecay { half_life_ms } => {
            reply.r#type = T::TimeDecay.into();
            reply.time_decay_half_life = Some(prost_types::Duration {
                seconds: half_life_ms.div_euclid(1_000),
                nanos: i32::try_from(half_life_ms.rem_euclid(1_000) * 1_000_000).unwrap_or(0),
            });
        }
        Model::Markov { order } => {
            reply.r#type = T::Markov.into();
            reply.markov_order = i32::try_from(order).unwrap_or(1);
        }
        Model::Shapley {
            game,
            allow_approximation,
            samples,
        } => {
            reply.r#type = T::Shapley.into();
            reply.shapley_game = game_number(game);
            reply.allow_approximation = allow_approximation;
            reply.shapley_samples = i32::try_from(samples).unwrap_or(i32::MAX);
        }
    }
    reply
}

fn game_number(game: ShapleyGame) -> i32 {
    match game {
        ShapleyGame::Conversions => pb::ShapleyGame::Conversions.into(),
        ShapleyGame::ConversionRate => pb::ShapleyGame::ConversionRate.into(),
        ShapleyGame::Uplift => pb::ShapleyGame::Uplift.into(),
    }
}

fn result(figures: ModelFigures) -> pb::AttributionModelResult {
    pb::AttributionModelResult {
        model: Some(model(figures.model)),
        channels: figures
            .channels
            .into_iter()
            .map(|c| pb::ChannelAttribution {
                channel: c.channel,
                conversions: c.conversions,
                value: c.value,
                share: c.share,
                cost: c.cost,
                cost_per_conversion: c.cost_per_conversion,
                return_on_spend: c.return_on_spend,
            })
            .collect(),
        markov: figures.markov.map(|m| pb::MarkovDetails {
            conversion_probability: m.conversion_probability,
            value_per_journey: m.value_per_journey,
            removal_effects: m
                .removal_effects
                .into_iter()
                .map(|r| pb::RemovalEffect {
                    channel: r.channel,
                    removal_effect: r.effect.removal_effect,
                    conversion_probability_without: r.effect.conversion_probability_without,
                    value_removal_effect: r.effect.value_removal_effect,
                    value_per_journey_without: r.effect.value_per_journey_without,
                })
                .collect(),
            transitions: m
                .transitions
                .into_iter()
                .map(|t| pb::MarkovTransition {
                    from_state: t.from,
                    to_state: t.to,
                    count: t.count,
                    probability: t.probability,
                })
                .collect(),
        }),
        shapley: figures.shapley.map(|s| pb::ShapleyDetails {
            game: game_number(s.game),
            values: s
                .values
                .into_iter()
                .map(|(channel, value)| pb::ShapleyValue { channel, value })
                .collect(),
            approximate: s.approximate,
            samples: i32::try_from(s.samples).unwrap_or(i32::MAX),
        }),
    }
}

fn summary(summary: Summary) -> pb::AttributionSummary {
    pb::AttributionSummary {
        conversions: summary.conversions,
        value: summary.value,
        non_converting_journeys: summary.non_converting,
        channel_count: i32::try_from(summary.channels).unwrap_or(i32::MAX),
        path_count: i64::try_from(summary.paths).unwrap_or(i64::MAX),
        direct_conversions: summary.direct_conversions,
        direct_value: summary.direct_value,
        unidentified_conversions: 0.0,
        unidentified_value: 0.0,
        unidentified_by_channel: Vec::new(),
        unidentified_credited: 0.0,
        unidentified_credited_value: 0.0,
    }
}

pub(super) fn attribution_reply(attribution: Attribution) -> pb::RunAttributionResponse {
    let figures = attribution.figures;
    let (cost_rows, cost_rows_left_out) = attribution
        .cost_reports
        .map_or((0, 0), |c| (c.rows, c.rows_left_out));
    let unidentified = attribution.unidentified;
    let (credited, credited_value) = unidentified
        .recorded
        .iter()
        .fold((0.0, 0.0), |(n, v), (_, conversions, value)| {
            (n + conversions, v + value)
        });
    pb::RunAttributionResponse {
        summary: Some(pb::AttributionSummary {
            unidentified_credited: credited,
            unidentified_credited_value: credited_value,
            unidentified_conversions: unidentified.conversions,
            unidentified_value: unidentified.value,
            unidentified_by_channel: unidentified
                .by_channel
                .into_iter()
                .map(|(channel, conversions, value)| pb::ChannelConversions {
                    channel,
                    conversions,
                    value,
                })
                .collect(),
            ..summary(figures.summary)
        }),
        results: figures.results.into_iter().map(result).collect(),
        computation: Some(computation(figures.computation)),
        cost_rows: i64::try_from(cost_rows).unwrap_or(i64::MAX),
        cost_rows_left_out: i64::try_from(cost_rows_left_out).unwrap_or(i64::MAX),
    }
}

pub(super) fn on_paths_reply(figures: AttributionFigures) -> pb::RunAttributionOnPathsResponse {
    pb::RunAttributionOnPathsResponse {
        summary: Some(summary(figures.summary)),
        results: figures.results.into_iter().map(result).collect(),
    }
}
