//! Running a valid funnel over a tenant's view and shaping its figures for the reply.

use touchline_analytics::funnel::{
    FunnelAccumulator, ListedPerson, PersonQuery, PersonSelection, StepSummary,
};

use super::RunContext;
use super::compile;
use super::query::{ValidFunnel, Violations};
use super::view::TenantView;
use crate::store::journal::Positions;

/// One step's figures with its label.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFigures {
    /// The step's label.
    pub label: String,
    /// Counts, rates and times.
    pub summary: StepSummary,
}

/// What a result was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Computation {
    /// Store positions the view reflected.
    pub positions: Positions,
    /// The range used, `[start, end)` in ms.
    pub range: (i64, i64),
    /// Persons considered.
    pub persons_considered: u64,
}

/// A funnel's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelFigures {
    /// Over every person.
    pub steps: Vec<StepFigures>,
    /// Per breakdown value (its text), the largest first.
    pub breakdown: Vec<(String, Vec<StepFigures>)>,
    /// The values past the limit, folded together.
    pub other: Option<Vec<StepFigures>>,
    /// How many values were folded.
    pub omitted_values: usize,
    /// What it was computed from.
    pub computation: Computation,
}

fn labelled(funnel: &ValidFunnel, summaries: Vec<StepSummary>) -> Vec<StepFigures> {
    summaries
        .into_iter()
        .map(|summary| StepFigures {
            label: funnel
                .steps
                .get(summary.step.saturating_sub(1))
                .map(|(label, _)| label.clone())
                .unwrap_or_default(),
            summary,
        })
        .collect()
}

/// Errors of a funnel run: names the data does not know, or the projection's refusal.
#[derive(Debug)]
pub enum RunError {
    /// Fields naming what the tenant's data does not hold.
    Invalid(Violations),
    /// The projection refused the compiled query (a bug: the query was checked).
    Projection(touchline_projection::ProjectionError),
    /// The query could hold more memory than a query may.
    TooLarge(super::budget::TooLarge),
}

/// The funnel's accumulator over `view`, with the person index when `keep_persons`.
fn accumulate(
    view: &TenantView,
    funnel: &ValidFunnel,
    run: &RunContext,
    keep_persons: bool,
) -> Result<FunnelAccumulator, RunError> {
    let projection = &view.projection;
    let known = compile::Known::new(view, &run.defined);
    let spec = compile::funnel(known, funnel).map_err(RunError::Invalid)?;
    super::budget::funnel(view, funnel, run.threads, keep_persons).map_err(RunError::TooLarge)?;
    let scope = compile::ScopeFor::new(known, Some(funnel.range), &funnel.event_filters, run)
        .map_err(RunError::Invalid)?;
    projection
        .funnel(&spec, &scope.scope(), run.threads, keep_persons)
        .map_err(RunError::Projection)
}

/// The persons whose furthest step is `step − 1` (2 ≤ `step` ≤ the last), with `value` as
/// text when the funnel has a breakdown, by person key.
pub fn dropped_at(
    view: &TenantView,
    funnel: &ValidFunnel,
    run: &RunContext,
    step: usize,
    value: Option<&str>,
) -> Result<(Vec<ListedPerson>, Computation), RunError> {
    listed(view, funnel, run, PersonSelection::DroppedAt(step), value)
}

/// The persons `selection` picks (reached a step, or dropped at one), with `value` as text
/// when the funnel has a breakdown, by person key.
pub fn listed(
    view: &TenantView,
    funnel: &ValidFunnel,
    run: &RunContext,
    selection: PersonSelection,
    value: Option<&str>,
) -> Result<(Vec<ListedPerson>, Computation), RunError> {
    let accumulator = accumulate(view, funnel, run, true)?;
    let (report, index) = accumulator.finish(0);
    let computation = Computation {
        positions: view.positions,
        range: funnel.range,
        persons_considered: report.persons_considered,
    };
    let code = match (&funnel.breakdown, value) {
        (Some((field, _, _)), Some(text)) => {
            let code = compile::view_dimension(view, field)
                .and_then(|dimension| compile::code_of(&view.projection, field, dimension, text));
            match code {
                Some(code) => Some(code),
                // A value no event carries has no persons.
                None => return Ok((Vec::new(), computation)),
            }
        }
        _ => None,
    };
    let persons = index.map_or_else(Vec::new, |index| {
        index
            .list(&PersonQuery {
                selection,
                value: code,
                after: None,
                limit: usize::MAX,
            })
            .persons
    });
    Ok((persons, computation))
}

/// Runs `funnel` over `view` on up to `threads` threads; `defined` holds the event names the
/// tenant's dictionary defines (a step on one of them that nobody did yet counts zero).
pub fn run(
    view: &TenantView,
    funnel: &ValidFunnel,
    run: &RunContext,
) -> Result<FunnelFigures, RunError> {
    let accumulator = accumulate(view, funnel, run, false)?;
    let (field, top) = funnel
        .breakdown
        .as_ref()
        .map_or((None, 0), |(field, limit, _)| (Some(field), *limit));
    // Ties between values go by their text, never their codes (see `finish_ordered`).
    let texts = field.map(|field| compile::Texts::for_view(view, field));
    let (report, _) = match &texts {
        Some(texts) => accumulator.finish_ordered(top, |a, b| texts.get(*a).cmp(texts.get(*b))),
        None => accumulator.finish(top),
    };
    let breakdown = match &texts {
        Some(texts) => report
            .breakdown
            .into_iter()
            .map(|row| (texts.get(row.value).to_owned(), labelled(funnel, row.steps)))
            .collect(),
        None => Vec::new(),
    };
    Ok(FunnelFigures {
        steps: labelled(funnel, report.overall),
        breakdown,
        other: report.other.map(|steps| labelled(funnel, steps)),
        omitted_values: report.omitted_values,
        computation: Computation {
            positions: view.positions,
            range: funnel.range,
            persons_considered: report.persons_considered,
        },
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use prost::Message as _;

    use super::*;
    use crate::journeys::query::{FunnelOrder, FunnelQuery, FunnelStep, Matcher, Scope};
    use crate::store::journal::JournalEvent;

    fn view() -> TenantView {
        let stored: Vec<JournalEvent> = (0..100i64)
            .map(|i| JournalEvent {
                sequence: i + 1,
                person_id: uuid::Uuid::from_u128(u128::from(i as u64 / 2) + 1),
                event_name: if i % 2 == 0 { "view" } else { "buy" }.to_owned(),
                channel: "app".to_owned(),
                event_time: chrono::Utc
                    .timestamp_millis_opt(1_000_000 + i * 1_000)
                    .single()
                    .unwrap_or_default(),
                payload: touchline_proto::governance::v1::CleanEvent::default().encode_to_vec(),
            })
            .collect();
        TenantView::build(std::iter::once(stored), Vec::new(), 2)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    fn funnel() -> ValidFunnel {
        let step = |name: &str| FunnelStep {
            label: String::new(),
            event: Some(Matcher {
                event_name: name.to_owned(),
                filters: Vec::new(),
            }),
        };
        let query = FunnelQuery {
            steps: vec![step("view"), step("buy")],
            window_ms: None,
            order: FunnelOrder::Ordered,
            exclusions: Vec::new(),
            breakdown: None,
            scope: Scope {
                start_ms: Some(0),
                end_ms: Some(10_000_000),
                ..Scope::default()
            },
        };
        query
            .validate(0)
            .unwrap_or_else(|problems| panic!("{problems:?}"))
    }

    #[test]
    fn a_cancelled_query_looks_at_no_more_persons() {
        let view = view();
        let run = RunContext {
            threads: 2,
            ..RunContext::default()
        };
        let counted = super::run(&view, &funnel(), &run).map(|f| f.computation.persons_considered);
        assert_eq!(counted.ok(), Some(50));
        run.cancel.cancel();
        let counted = super::run(&view, &funnel(), &run).map(|f| f.computation.persons_considered);
        assert_eq!(counted.ok(), Some(0));
    }
}
