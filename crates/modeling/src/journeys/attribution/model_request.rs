//! The models a caller asks for and the rules each must meet: shares of position-based
//! credit, time-decay half-lives, Shapley games and samples, how many models in one call.

use touchline_analytics::attribution::{
    DEFAULT_HALF_LIFE_MS, HeuristicModel, MIN_HALF_LIFE_MS, SHAPLEY_EXACT_CHANNEL_LIMIT,
    ShapleyGame,
};

use super::query::{DEFAULT_SHAPLEY_SAMPLES, MAX_HALF_LIFE_MS, MAX_MODELS, MAX_SHAPLEY_SAMPLES};
use crate::journeys::query::Violations;

/// A model type as the caller named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelType {
    /// First touch.
    FirstTouch,
    /// Last touch.
    LastTouch,
    /// Linear.
    Linear,
    /// Position based.
    PositionBased,
    /// Time decay.
    TimeDecay,
    /// Markov.
    Markov,
    /// Shapley.
    Shapley,
    /// Unset, or a number the contract does not define.
    #[default]
    Unknown,
}

/// The Shapley game as the caller named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GameChoice {
    /// Unset: the conversions game.
    #[default]
    Default,
    /// One of the games.
    Game(ShapleyGame),
    /// A number the contract does not define.
    Unknown,
}

/// One model as requested, before defaults and checks.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ModelRequest {
    /// Which model.
    pub kind: ModelType,
    /// LINEAR: a share per distinct channel.
    pub linear_distinct_channels: bool,
    /// POSITION_BASED: the first touch's share (0: 0.4).
    pub position_first_share: f64,
    /// POSITION_BASED: the last touch's share (0: 0.4).
    pub position_last_share: f64,
    /// TIME_DECAY: the half-life in ms, when given.
    pub half_life_ms: Option<i64>,
    /// MARKOV: the order (0: 1).
    pub markov_order: i32,
    /// SHAPLEY: the game.
    pub shapley_game: GameChoice,
    /// SHAPLEY: whether an estimate is acceptable past the exact limit.
    pub allow_approximation: bool,
    /// SHAPLEY: orders sampled for an estimate (0: 1,000).
    pub shapley_samples: i32,
}

/// A model with its defaults filled in, ready to run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// First touch, last touch, linear or position based.
    Heuristic(HeuristicModel),
    /// Time decay with its half-life.
    TimeDecay {
        /// The half-life in ms.
        half_life_ms: i64,
    },
    /// Markov of an order.
    Markov {
        /// 1–3.
        order: usize,
    },
    /// Shapley.
    Shapley {
        /// The game.
        game: ShapleyGame,
        /// Whether an estimate is acceptable past [`SHAPLEY_EXACT_CHANNEL_LIMIT`] channels.
        allow_approximation: bool,
        /// Orders sampled for an estimate.
        samples: usize,
    },
}

impl Model {
    /// Whether the model needs more channels computed exactly than `channels` allows, with
    /// no estimate accepted.
    pub fn refuses(&self, channels: usize) -> bool {
        matches!(
            self,
            Model::Shapley {
                game: ShapleyGame::ConversionRate,
                allow_approximation: false,
                ..
            }
        ) && channels > SHAPLEY_EXACT_CHANNEL_LIMIT
    }
}

fn share(value: f64, default: f64, field: String, problems: &mut Violations) -> f64 {
    if value == 0.0 {
        return default;
    }
    if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
        problems.add(field, "OUT_OF_RANGE", "a share from 0 to 1");
        return default;
    }
    value
}

fn position_based(request: &ModelRequest, at: &str, problems: &mut Violations) -> Model {
    let first_share = share(
        request.position_first_share,
        0.4,
        format!("{at}.position_first_share"),
        problems,
    );
    let last_share = share(
        request.position_last_share,
        0.4,
        format!("{at}.position_last_share"),
        problems,
    );
    if first_share + last_share > 1.0 + 1e-12 {
        problems.add(
            format!("{at}.position_last_share"),
            "OUT_OF_RANGE",
            "the first and last shares together must not exceed 1",
        );
    }
    Model::Heuristic(HeuristicModel::PositionBased {
        first_share,
        last_share,
    })
}

fn shapley(request: &ModelRequest, at: &str, problems: &mut Violations) -> Model {
    let game = match request.shapley_game {
        GameChoice::Default => ShapleyGame::Conversions,
        GameChoice::Game(game) => game,
        GameChoice::Unknown => {
            problems.add(
                format!("{at}.shapley_game"),
                "UNKNOWN_VALUE",
                "CONVERSIONS or CONVERSION_RATE",
            );
            ShapleyGame::Conversions
        }
    };
    let samples = match usize::try_from(request.shapley_samples) {
        Ok(0) => DEFAULT_SHAPLEY_SAMPLES,
        Ok(n) if n <= MAX_SHAPLEY_SAMPLES => n,
        _ => {
            problems.add(
                format!("{at}.shapley_samples"),
                "OUT_OF_RANGE",
                format!("from 1 to {MAX_SHAPLEY_SAMPLES}, or 0 for {DEFAULT_SHAPLEY_SAMPLES}"),
            );
            DEFAULT_SHAPLEY_SAMPLES
        }
    };
    Model::Shapley {
        game,
        allow_approximation: request.allow_approximation,
        samples,
    }
}

fn check_model(
    request: &ModelRequest,
    at: &str,
    times: bool,
    problems: &mut Violations,
) -> Option<Model> {
    Some(match request.kind {
        ModelType::FirstTouch => Model::Heuristic(HeuristicModel::FirstTouch),
        ModelType::LastTouch => Model::Heuristic(HeuristicModel::LastTouch),
        ModelType::Linear => Model::Heuristic(HeuristicModel::Linear {
            distinct_channels: request.linear_distinct_channels,
        }),
        ModelType::PositionBased => position_based(request, at, problems),
        ModelType::TimeDecay if !times => {
            problems.add(
                format!("{at}.type"),
                "UNSUPPORTED",
                "supplied paths carry no touch times: time decay runs on stored events only",
            );
            return None;
        }
        ModelType::TimeDecay => {
            let half_life_ms = request.half_life_ms.unwrap_or(DEFAULT_HALF_LIFE_MS);
            if !(MIN_HALF_LIFE_MS..=MAX_HALF_LIFE_MS).contains(&half_life_ms) {
                problems.add(
                    format!("{at}.time_decay_half_life"),
                    "OUT_OF_RANGE",
                    "from 1 minute to 366 days",
                );
            }
            Model::TimeDecay { half_life_ms }
        }
        ModelType::Markov => {
            let order = match request.markov_order {
                0 => 1,
                order @ 1..=3 => order as usize,
                _ => {
                    problems.add(
                        format!("{at}.markov_order"),
                        "OUT_OF_RANGE",
                        "1, 2 or 3, or 0 for 1",
                    );
                    1
                }
            };
            Model::Markov { order }
        }
        ModelType::Shapley => shapley(request, at, problems),
        ModelType::Unknown => {
            problems.add(
                format!("{at}.type"),
                "REQUIRED",
                "a model type: FIRST_TOUCH, LAST_TOUCH, LINEAR, POSITION_BASED, TIME_DECAY, MARKOV or SHAPLEY",
            );
            return None;
        }
    })
}

/// The models after defaults; `times` says whether touch times exist (stored events).
pub fn check_models(
    requests: &[ModelRequest],
    times: bool,
    problems: &mut Violations,
) -> Vec<Model> {
    if requests.is_empty() || requests.len() > MAX_MODELS {
        problems.add(
            "models",
            if requests.is_empty() {
                "REQUIRED"
            } else {
                "TOO_MANY_MODELS"
            },
            format!("from 1 to {MAX_MODELS} models"),
        );
    }
    requests
        .iter()
        .enumerate()
        .filter_map(|(i, request)| check_model(request, &format!("models[{i}]"), times, problems))
        .collect()
}
