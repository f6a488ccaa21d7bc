//! Who a channel is credited for, person by person: each person's converting journeys (read
//! as RunAttribution reads them) credited under one model that credits a journey on its own
//! (first or last touch, linear, position based, time decay). A segment's attributed-channel
//! condition selects with this; Markov and Shapley credit all journeys together and have no
//! per-person answer.

use std::collections::HashSet;

use touchline_analytics::attribution::{
    AttributionError, ChannelCredits, Journey, PathTableBuilder, heuristic_credits,
    time_decay_credits,
};
use touchline_projection::PersonEvents;
use uuid::Uuid;

use super::collect::{Plan, walk};
use super::query::{Model, ValidAttribution};
use crate::journeys::query::Violations;
use crate::journeys::{RunContext, TenantView};

/// One person's converting journeys as channel codes and touch times, each with its
/// conversion time and value (the journeys a per-person credit reads).
#[derive(Debug, Default)]
pub struct PersonJourneys {
    /// Channel codes of every journey, one after the other.
    pub channels: Vec<u32>,
    /// Touch times, as `channels`.
    pub times: Vec<i64>,
    /// (first index, touches, conversion time, value) per converting journey.
    pub journeys: Vec<(usize, usize, i64, f64)>,
}

impl PersonJourneys {
    /// The journeys as the attribution models take them.
    pub fn as_journeys(&self) -> Vec<Journey<'_>> {
        self.journeys
            .iter()
            .map(|&(start, len, end_ms, value)| Journey {
                channels: &self.channels[start..start + len],
                touch_times_ms: &self.times[start..start + len],
                end_ms,
                converted: true,
                value,
            })
            .collect()
    }
}

impl Plan {
    /// The converting journeys of one person (conversions in the range).
    pub fn converting_journeys(&self, person: PersonEvents<'_>) -> PersonJourneys {
        let mut found = PersonJourneys::default();
        let mut touches = Vec::new();
        let walked = walk::<std::convert::Infallible>(
            self,
            person,
            &mut touches,
            |touches, end_ms, converted, value| {
                if converted {
                    let start = found.channels.len();
                    found.channels.extend(touches.iter().map(|t| t.channel));
                    found.times.extend(touches.iter().map(|t| t.first_ms));
                    found.journeys.push((start, touches.len(), end_ms, value));
                }
                Ok(())
            },
        );
        match walked {
            Ok(()) => found,
            Err(never) => match never {},
        }
    }
}

/// What one person's conversions credit, under `model`, over `channels` channels.
fn credits(
    plan: &Plan,
    model: Model,
    journeys: &[Journey<'_>],
) -> Result<Option<ChannelCredits>, AttributionError> {
    Ok(Some(match model {
        Model::Heuristic(heuristic) => {
            let mut builder = PathTableBuilder::with_channels(plan.channel_names().to_vec());
            for (index, journey) in journeys.iter().enumerate() {
                builder.add_journey(index, journey)?;
            }
            heuristic_credits(&builder.finish(), heuristic)?
        }
        Model::TimeDecay { half_life_ms } => {
            time_decay_credits(journeys, plan.channel_names().len(), half_life_ms)?
        }
        Model::Markov { .. } | Model::Shapley { .. } => return Ok(None),
    }))
}

/// The persons whose conversions in `valid`'s range credit `channel`, under `valid`'s first
/// model, with at least `min_share` of those conversions (any credit above 0 when
/// `min_share` is 0). A conversion without touches counts as a conversion crediting no
/// channel.
pub fn crediting(
    view: &TenantView,
    valid: &ValidAttribution,
    channel: &str,
    min_share: f64,
    run: &RunContext,
) -> Result<HashSet<Uuid>, Violations> {
    let plan = Plan::new(view, valid, run)?;
    let Some(code) = plan.channel_names().iter().position(|name| name == channel) else {
        return Ok(HashSet::new());
    };
    let Some(model) = valid.models.first().copied() else {
        return Ok(HashSet::new());
    };
    let found = view
        .projection
        .scan(run.threads, Vec::new, |found, person| {
            if run.cancel.is_cancelled() {
                return Ok(());
            }
            let key = person.person();
            let mine = plan.converting_journeys(person);
            if mine.journeys.is_empty() {
                return Ok(());
            }
            let journeys = mine.as_journeys();
            let Some(credited) = credits(&plan, model, &journeys)? else {
                return Ok(());
            };
            let credit = credited.conversions.get(code).copied().unwrap_or(0.0);
            let share = credit / journeys.len() as f64;
            // A share equal to the bound holds despite rounding in the credit's sum.
            let held = if min_share > 0.0 {
                share >= min_share - 1e-12
            } else {
                credit > 0.0
            };
            if held && let Some(id) = view.persons.id(key) {
                found.push(id);
            }
            Ok::<(), AttributionError>(())
        });
    match found {
        Ok(parts) => Ok(parts.into_iter().flatten().collect()),
        Err(err) => {
            tracing::warn!(error = %err, "an attributed-channel condition could not be evaluated");
            Ok(HashSet::new())
        }
    }
}
