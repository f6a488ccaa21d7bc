//! Running checked models over one path table and shaping what they credit for the reply:
//! channels by name, most attributed conversions first, with ROI when costs are known.

use std::collections::HashMap;

use touchline_analytics::attribution::{
    AttributionError, ChannelCredits, MarkovOptions, PathTable, RemovalEffect, ShapleyGame,
    ShapleyOptions, channel_roi, heuristic_credits, markov_attribution, shapley_attribution,
};

use super::query::Model;

/// What one model credits to one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelFigures {
    /// The channel's name.
    pub channel: String,
    /// Attributed conversions.
    pub conversions: f64,
    /// Attributed value.
    pub value: f64,
    /// Share of all attributed conversions.
    pub share: f64,
    /// The channel's cost (0 without costs).
    pub cost: f64,
    /// cost / attributed conversions (0 when either is 0).
    pub cost_per_conversion: f64,
    /// attributed value / cost (0 when the cost is 0).
    pub return_on_spend: f64,
}

/// One channel's removal effects.
#[derive(Debug, Clone, PartialEq)]
pub struct RemovalFigures {
    /// The channel.
    pub channel: String,
    /// The effects.
    pub effect: RemovalEffect,
}

/// One transition of a Markov chain, states named.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionFigures {
    /// The state left.
    pub from: String,
    /// The state entered.
    pub to: String,
    /// Journeys making it.
    pub count: f64,
    /// Its probability.
    pub probability: f64,
}

/// The chain behind a Markov result.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkovFigures {
    /// P(conversion) of the full chain.
    pub conversion_probability: f64,
    /// Expected value per journey of the full chain.
    pub value_per_journey: f64,
    /// Per channel, in the order of the result's channels.
    pub removal_effects: Vec<RemovalFigures>,
    /// Every transition with a non-zero count, ordered by (from, to) state.
    pub transitions: Vec<TransitionFigures>,
}

/// The values behind a Shapley result.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapleyFigures {
    /// The game.
    pub game: ShapleyGame,
    /// The raw value per channel, in the order of the result's channels.
    pub values: Vec<(String, f64)>,
    /// Whether the values are an estimate.
    pub approximate: bool,
    /// Orders sampled (0 when exact).
    pub samples: usize,
}

/// One model's result.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFigures {
    /// The model with its defaults.
    pub model: Model,
    /// Credit per channel, most attributed conversions first (ties by name).
    pub channels: Vec<ChannelFigures>,
    /// Markov only.
    pub markov: Option<MarkovFigures>,
    /// Shapley only.
    pub shapley: Option<ShapleyFigures>,
}

/// Totals over the journeys or paths analysed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    /// Converting journeys.
    pub conversions: f64,
    /// Their value.
    pub value: f64,
    /// Non-converting journeys.
    pub non_converting: f64,
    /// Distinct channels on the paths.
    pub channels: usize,
    /// Distinct paths.
    pub paths: usize,
    /// Conversions without a touch.
    pub direct_conversions: f64,
    /// Their value.
    pub direct_value: f64,
}

/// Why the models could not run.
#[derive(Debug)]
pub enum ModelsError {
    /// A model needs more channels computed exactly than it may, and no estimate was accepted.
    TooManyChannels {
        /// Index of the model in the request.
        model: usize,
        /// Channels taking part.
        channels: usize,
    },
    /// A model refused the table (a bug: models and tables were checked).
    Model(AttributionError),
}

/// The channel codes that occur on some path, by code.
fn present_channels(table: &PathTable) -> Vec<bool> {
    let mut present = vec![false; table.channel_count()];
    for row in table.rows() {
        for &code in row.channels {
            present[code as usize] = true;
        }
    }
    present
}

/// Totals of `table`, whose channels on some path are `present`.
fn summary(table: &PathTable, present: &[bool]) -> Summary {
    Summary {
        conversions: table.total_conversions(),
        value: table.total_value(),
        non_converting: table.total_nulls(),
        channels: present.iter().filter(|p| **p).count(),
        paths: table.len(),
        direct_conversions: table.direct_conversions(),
        direct_value: table.direct_value(),
    }
}

/// Costs by channel code from costs by name; names the table lacks are dropped.
pub fn costs_by_code(table: &PathTable, costs: &[(String, f64)]) -> Vec<f64> {
    let codes: HashMap<&str, usize> = table
        .channel_names()
        .iter()
        .enumerate()
        .map(|(code, name)| (name.as_str(), code))
        .collect();
    let mut by_code = vec![0.0; table.channel_count()];
    for (name, cost) in costs {
        if let Some(&code) = codes.get(name.trim()) {
            by_code[code] += cost;
        }
    }
    by_code
}

/// Channel figures of `credits` over the present channels, ranked.
fn ranked(
    table: &PathTable,
    present: &[bool],
    credits: &ChannelCredits,
    costs: &[f64],
) -> Result<(Vec<u32>, Vec<ChannelFigures>), AttributionError> {
    let names = table.channel_names();
    let roi = channel_roi(credits, costs)?;
    let total: f64 = credits.conversions.iter().sum();
    let mut codes: Vec<u32> = (0..table.channel_count())
        .filter(|&code| present[code])
        .map(|code| code as u32)
        .collect();
    codes.sort_by(|&a, &b| {
        credits.conversions[b as usize]
            .total_cmp(&credits.conversions[a as usize])
            .then_with(|| names[a as usize].cmp(&names[b as usize]))
    });
    let figures = codes
        .iter()
        .map(|&code| {
            let code = code as usize;
            let conversions = credits.conversions[code];
            ChannelFigures {
                channel: names[code].clone(),
                conversions,
                value: credits.value[code],
                share: if total == 0.0 {
                    0.0
                } else {
                    conversions / total
                },
                cost: roi[code].cost,
                cost_per_conversion: roi[code].cost_per_conversion.unwrap_or(0.0),
                return_on_spend: roi[code].return_on_spend.unwrap_or(0.0),
            }
        })
        .collect();
    Ok((codes, figures))
}

/// The totals of `table` and every model run on it, from one pass finding the channels on
/// some path. `decay` holds, in model order, the credits each time-decay model was given by
/// the journeys (time decay needs touch times a path table lacks); `costs` is by channel code.
pub fn run(
    table: &PathTable,
    models: &[Model],
    decay: &[ChannelCredits],
    costs: &[f64],
    threads: usize,
) -> Result<(Summary, Vec<ModelFigures>), ModelsError> {
    let present = present_channels(table);
    let taking_part = present.iter().filter(|p| **p).count();
    if let Some(model) = models.iter().position(|m| m.refuses(taking_part)) {
        return Err(ModelsError::TooManyChannels {
            model,
            channels: taking_part,
        });
    }
    let mut decay = decay.iter();
    let mut results = Vec::with_capacity(models.len());
    for model in models {
        let figures = match *model {
            Model::Heuristic(heuristic) => {
                let credits = heuristic_credits(table, heuristic).map_err(ModelsError::Model)?;
                let (_, channels) =
                    ranked(table, &present, &credits, costs).map_err(ModelsError::Model)?;
                ModelFigures {
                    model: *model,
                    channels,
                    markov: None,
                    shapley: None,
                }
            }
            Model::TimeDecay { .. } => {
                let zeros = ChannelCredits::zeros(table.channel_count());
                let credits = decay.next().unwrap_or(&zeros);
                let (_, channels) =
                    ranked(table, &present, credits, costs).map_err(ModelsError::Model)?;
                ModelFigures {
                    model: *model,
                    channels,
                    markov: None,
                    shapley: None,
                }
            }
            Model::Markov { order } => markov(table, &present, costs, *model, order, threads)?,
            Model::Shapley { game, samples, .. } => {
                shapley(table, &present, costs, *model, game, samples)?
            }
        };
        results.push(figures);
    }
    Ok((summary(table, &present), results))
}

fn markov(
    table: &PathTable,
    present: &[bool],
    costs: &[f64],
    model: Model,
    order: usize,
    threads: usize,
) -> Result<ModelFigures, ModelsError> {
    let names = table.channel_names();
    let result =
        markov_attribution(table, MarkovOptions { order, threads }).map_err(ModelsError::Model)?;
    let (codes, channels) =
        ranked(table, present, &result.credits, costs).map_err(ModelsError::Model)?;
    let state = |index: u32| {
        result
            .states
            .get(index as usize)
            .map(|s| s.name(names))
            .unwrap_or_default()
    };
    let markov = MarkovFigures {
        conversion_probability: result.conversion_probability,
        value_per_journey: result.value_per_journey,
        removal_effects: codes
            .iter()
            .map(|&code| RemovalFigures {
                channel: names[code as usize].clone(),
                effect: result.removal_effects[code as usize],
            })
            .collect(),
        transitions: result
            .transitions
            .iter()
            .map(|t| TransitionFigures {
                from: state(t.from),
                to: state(t.to),
                count: t.count,
                probability: t.probability,
            })
            .collect(),
    };
    Ok(ModelFigures {
        model,
        channels,
        markov: Some(markov),
        shapley: None,
    })
}

fn shapley(
    table: &PathTable,
    present: &[bool],
    costs: &[f64],
    model: Model,
    game: ShapleyGame,
    samples: usize,
) -> Result<ModelFigures, ModelsError> {
    let names = table.channel_names();
    let options = ShapleyOptions {
        game,
        samples,
        seed: 0,
    };
    let result = shapley_attribution(table, options).map_err(ModelsError::Model)?;
    let (codes, channels) =
        ranked(table, present, &result.credits, costs).map_err(ModelsError::Model)?;
    let shapley = ShapleyFigures {
        game,
        values: codes
            .iter()
            .map(|&code| (names[code as usize].clone(), result.values[code as usize]))
            .collect(),
        approximate: result.approximate,
        samples: result.samples,
    };
    Ok(ModelFigures {
        model,
        channels,
        markov: None,
        shapley: Some(shapley),
    })
}
