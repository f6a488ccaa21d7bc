//! Multi-touch attribution through the service: on a tenant's stored events (journeys read
//! from its view) and on paths the caller supplies. The models themselves live in the pure
//! analytics crate; this module checks requests, builds the path table and names the results.

pub mod channels;
pub mod collect;
pub mod model_request;
pub mod models;
pub mod on_paths;
pub mod per_person;
pub mod query;
pub mod recorded;
pub mod unidentified;

use touchline_analytics::attribution::AttributionError;

use super::RunContext;
use super::funnel::Computation;
use super::query::Violations;
use super::view::TenantView;
use models::{ModelFigures, ModelsError, Summary};
use query::ValidAttribution;

/// Attribution results on stored events.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFigures {
    /// Totals.
    pub summary: Summary,
    /// One per model, in request order.
    pub results: Vec<ModelFigures>,
    /// What it was computed from.
    pub computation: Computation,
}

/// Why attribution on stored events could not answer.
#[derive(Debug)]
pub enum StoredError {
    /// Names the tenant's data does not know.
    Invalid(Violations),
    /// See [`ModelsError`].
    Models(ModelsError),
}

/// A view's journeys, read and not yet credited.
#[derive(Debug)]
pub struct Journeys {
    collected: collect::Collected,
    computation: Computation,
}

/// Reads the journeys of `query` from `view`.
pub fn read_journeys(
    view: &TenantView,
    query: &ValidAttribution,
    run: &RunContext,
) -> Result<Journeys, StoredError> {
    let plan = collect::Plan::new(view, query, run).map_err(StoredError::Invalid)?;
    let collected = collect::collect(view, &plan, run)
        .map_err(|err: AttributionError| StoredError::Models(ModelsError::Model(err)))?;
    Ok(Journeys {
        computation: Computation {
            positions: view.positions,
            range: query.range,
            persons_considered: collected.persons,
        },
        collected,
    })
}

/// Runs the models of `query` over `journeys`, with `recorded` — `(channel, conversions,
/// value)` of conversions stored without a person — credited to their channel (see
/// [`recorded`]); `costs` are the channels' costs by name (empty: no ROI).
pub fn credit(
    journeys: Journeys,
    query: &ValidAttribution,
    costs: &[(String, f64)],
    recorded: &[(String, f64, f64)],
    threads: usize,
) -> Result<StoredFigures, StoredError> {
    let Journeys {
        collected,
        computation,
    } = journeys;
    let (summary, results) =
        recorded::run_models(collected, &query.models, recorded, costs, threads)
            .map_err(StoredError::Models)?;
    Ok(StoredFigures {
        summary,
        results,
        computation,
    })
}

#[cfg(test)]
mod tests;
