//! Conversions stored without a person, credited to the channel that recorded them: each is a
//! converting journey of one touch, that channel at the conversion's instant.
//!
//! Models that share out conversions (the heuristics, time decay, Markov, the conversions
//! game) read them like any journey. The conversion-rate and uplift games do not: they weigh
//! journeys that converted against journeys that did not, and a walk-in who leaves without
//! buying leaves no record, so the recording channel would read as converting every time.
//! Those games run on the journeys without them.

use touchline_analytics::attribution::{
    AttributionError, ChannelCredits, PathTableBuilder, ShapleyGame,
};

use super::collect::Collected;
use super::models::{self, ModelFigures, ModelsError, Summary};
use super::query::Model;

/// Whether `model` compares converting with non-converting journeys.
fn weighs_rates(model: &Model) -> bool {
    matches!(
        model,
        Model::Shapley {
            game: ShapleyGame::ConversionRate | ShapleyGame::Uplift,
            ..
        }
    )
}

/// Runs `models` over `collected` with `recorded` (`(channel, conversions, value)`) added
/// as journeys of one touch, except under the games that weigh conversion rates; results in
/// `models`' order, the summary over every journey the others read.
pub fn run_models(
    mut collected: Collected,
    models: &[Model],
    recorded: &[(String, f64, f64)],
    costs: &[(String, f64)],
    threads: usize,
) -> Result<(Summary, Vec<ModelFigures>), ModelsError> {
    let run = |collected: &Collected, models: &[Model]| {
        let by_code = models::costs_by_code(&collected.table, costs);
        models::run(
            &collected.table,
            models,
            &collected.decay,
            &by_code,
            threads,
        )
    };
    if recorded.is_empty() {
        return run(&collected, models);
    }
    let (rates, shares): (Vec<usize>, Vec<usize>) =
        (0..models.len()).partition(|i| weighs_rates(&models[*i]));
    let pick = |indices: &[usize]| indices.iter().map(|i| models[*i]).collect::<Vec<_>>();
    // The rate games read the journeys as they are; the index of a model a game refuses is
    // its index in the request.
    let on_journeys = if rates.is_empty() {
        Vec::new()
    } else {
        run(&collected, &pick(&rates))
            .map_err(|err| renumber(err, &rates))?
            .1
    };
    add_recorded(&mut collected, recorded).map_err(ModelsError::Model)?;
    let (summary, with_recorded) =
        run(&collected, &pick(&shares)).map_err(|err| renumber(err, &shares))?;
    let mut results: Vec<Option<ModelFigures>> = vec![None; models.len()];
    for (index, figures) in rates
        .iter()
        .zip(on_journeys)
        .chain(shares.iter().zip(with_recorded))
    {
        results[*index] = Some(figures);
    }
    Ok((summary, results.into_iter().flatten().collect()))
}

/// `err` with the model index of a refusal mapped back to the request's.
fn renumber(err: ModelsError, indices: &[usize]) -> ModelsError {
    match err {
        ModelsError::TooManyChannels { model, channels } => ModelsError::TooManyChannels {
            model: indices.get(model).copied().unwrap_or(model),
            channels,
        },
        other => other,
    }
}

/// Adds each `(channel, conversions, value)` as converting journeys of one touch: a path of
/// its own in the table, and full credit under every time-decay model (its one touch is at
/// the conversion's instant).
fn add_recorded(
    collected: &mut Collected,
    recorded: &[(String, f64, f64)],
) -> Result<(), AttributionError> {
    let table = std::mem::take(&mut collected.table);
    let mut builder = PathTableBuilder::from_table(table);
    for (index, (channel, conversions, value)) in recorded.iter().enumerate() {
        let code = builder.channel_code(channel);
        builder.add_path(index, &[code], *conversions, *value, 0.0)?;
        let mut one = ChannelCredits::zeros(code as usize + 1);
        one.conversions[code as usize] = *conversions;
        one.value[code as usize] = *value;
        for credits in &mut collected.decay {
            credits.merge(&one);
        }
    }
    collected.table = builder.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Against a table built from scratch with the one-touch paths in it, model by model, on
    //! random journeys and random person-less conversions (some on a channel no journey has).

    use rand::{Rng as _, SeedableRng as _};
    use rand_chacha::ChaCha8Rng;
    use touchline_analytics::attribution::{HeuristicModel, PathTable};

    use super::*;

    const CHANNELS: [&str; 4] = ["ads", "web", "pos", "app"];
    const RECORDING: [&str; 3] = ["pos", "web", "kiosk"];

    fn models_in_random_order(rng: &mut ChaCha8Rng) -> Vec<Model> {
        let mut models = vec![
            Model::Heuristic(HeuristicModel::LastTouch),
            Model::Heuristic(HeuristicModel::FirstTouch),
            Model::TimeDecay {
                half_life_ms: 86_400_000,
            },
            Model::Markov { order: 1 },
            Model::Shapley {
                game: ShapleyGame::Conversions,
                allow_approximation: false,
                samples: 1_000,
            },
            Model::Shapley {
                game: ShapleyGame::ConversionRate,
                allow_approximation: false,
                samples: 1_000,
            },
            Model::Shapley {
                game: ShapleyGame::Uplift,
                allow_approximation: false,
                samples: 1_000,
            },
        ];
        for i in (1..models.len()).rev() {
            models.swap(i, rng.random_range(0..=i));
        }
        models.truncate(rng.random_range(1..=models.len()));
        models
    }

    /// Random paths over [`CHANNELS`] with conversions, values and nulls.
    fn random_paths(rng: &mut ChaCha8Rng) -> Vec<(Vec<&'static str>, f64, f64, f64)> {
        (0..rng.random_range(1..12))
            .map(|_| {
                let path: Vec<&str> = (0..rng.random_range(1..4))
                    .map(|_| CHANNELS[rng.random_range(0..CHANNELS.len())])
                    .collect();
                let conversions = f64::from(rng.random_range(0..5u32));
                let value = if conversions > 0.0 {
                    f64::from(rng.random_range(0..500u32))
                } else {
                    0.0
                };
                (
                    path,
                    conversions,
                    value,
                    f64::from(rng.random_range(0..9u32)),
                )
            })
            .collect()
    }

    fn table_of(paths: &[(Vec<&str>, f64, f64, f64)]) -> PathTable {
        let mut builder =
            PathTableBuilder::with_channels(CHANNELS.iter().map(|c| (*c).to_owned()).collect());
        for (i, (path, conversions, value, nulls)) in paths.iter().enumerate() {
            builder
                .add_named_path(i, path, *conversions, *value, *nulls)
                .unwrap_or_else(|err| panic!("path {i}: {err}"));
        }
        builder.finish()
    }

    #[test]
    fn credited_conversions_are_one_touch_journeys_except_under_the_rate_games() {
        let mut rng = ChaCha8Rng::seed_from_u64(29);
        for case in 0..300 {
            let paths = random_paths(&mut rng);
            let recorded: Vec<(String, f64, f64)> = (0..rng.random_range(1..3))
                .map(|i| {
                    let channel = RECORDING[(i + rng.random_range(0..3)) % 3].to_owned();
                    let n = f64::from(rng.random_range(1..6u32));
                    (channel, n, f64::from(rng.random_range(0..300u32)))
                })
                .collect();
            let models = models_in_random_order(&mut rng);
            let decay = ChannelCredits {
                conversions: vec![1.5, 0.5, 2.0, 0.0],
                value: vec![10.0, 5.0, 20.0, 0.0],
            };
            let decays = |models: &[Model]| {
                let count = models
                    .iter()
                    .filter(|m| matches!(m, Model::TimeDecay { .. }))
                    .count();
                vec![decay.clone(); count]
            };
            let collected = Collected {
                table: table_of(&paths),
                decay: decays(&models),
                persons: 0,
            };
            let (summary, results) = run_models(collected, &models, &recorded, &[], 1)
                .unwrap_or_else(|err| panic!("case {case}: {err:?}"));

            // From scratch: the walk-in sales as paths of their own.
            let mut augmented = paths.clone();
            let mut with_decay = decay.clone();
            for (channel, n, value) in &recorded {
                let name: &'static str = RECORDING
                    .iter()
                    .find(|r| **r == channel.as_str())
                    .copied()
                    .unwrap_or("kiosk");
                augmented.push((vec![name], *n, *value, 0.0));
                // The one channel no journey has comes after theirs.
                let code = CHANNELS
                    .iter()
                    .position(|c| *c == name)
                    .unwrap_or(CHANNELS.len());
                let mut one = ChannelCredits::zeros(code + 1);
                one.conversions[code] = *n;
                one.value[code] = *value;
                with_decay.merge(&one);
            }
            let full = table_of(&augmented);
            let plain = table_of(&paths);
            assert_eq!(summary.conversions, full.total_conversions(), "case {case}");
            for (model, got) in models.iter().zip(&results) {
                // By the contract, not by the function under test.
                let rate_game = matches!(
                    model,
                    Model::Shapley {
                        game: ShapleyGame::ConversionRate | ShapleyGame::Uplift,
                        ..
                    }
                );
                let (table, decay) = if rate_game {
                    (&plain, decay.clone())
                } else {
                    (&full, with_decay.clone())
                };
                let want = models::run(table, &[*model], &[decay], &[], 1)
                    .unwrap_or_else(|err| panic!("case {case}: {err:?}"))
                    .1;
                assert_eq!(Some(got), want.first(), "case {case}: {model:?}");
            }
        }
    }
}
