//! Retention over a tenant's view: the request's rules, the cohort grid it asks for, and
//! the tables the model returns with their breakdown values as text.

use touchline_analytics::calendar::{Interval, IntervalGrid};
use touchline_analytics::retention::{
    CohortType, MAX_COHORTS, MAX_PERIODS, RetentionModel, RetentionOptions, RetentionTable,
    ReturnMode,
};
use touchline_projection::query::RetentionSpec;

use super::RunContext;
use super::compile::{self, Known};
use super::funnel::{Computation, RunError};
use super::query::{
    Field, Matcher, OpenStart, Scope, Violations, breakdown_of, calendar, resolve_range,
};
use super::view::TenantView;

/// A retention as a caller asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionQuery {
    /// The cohorting event.
    pub start: Option<Matcher>,
    /// The return event (`None`: the start event).
    pub returning: Option<Matcher>,
    /// First-time or recurring.
    pub cohort_type: CohortType,
    /// On or on-or-after.
    pub return_mode: ReturnMode,
    /// The interval (`None`: weeks).
    pub interval: Option<Interval>,
    /// Periods per cohort (0: the default, 11).
    pub periods: i32,
    /// The breakdown field and size.
    pub breakdown: Option<(String, i32)>,
    /// The scope.
    pub scope: Scope,
}

/// A retention whose every rule holds.
#[derive(Debug, Clone)]
pub struct ValidRetention {
    start: Matcher,
    /// `None`: the start event.
    returning: Option<Matcher>,
    model: RetentionModel,
    breakdown: Option<(Field, usize)>,
    /// The cohort range asked for (or defaulted).
    range: (i64, i64),
    /// Returns are looked for up to here.
    data_end_ms: i64,
    /// The scope's event conditions.
    event_filters: Vec<super::query::FieldFilter>,
}

/// The tables of a retention, breakdown values as text.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionFigures {
    /// Per breakdown value (empty text without a breakdown), the tables.
    pub tables: Vec<(String, RetentionTable)>,
    /// Values past the limit.
    pub omitted_values: usize,
    /// What it was computed from.
    pub computation: Computation,
}

impl RetentionQuery {
    /// Applies defaults and checks every rule; `now_ms` caps the data and ends the default
    /// range.
    pub fn validate(&self, now_ms: i64) -> Result<ValidRetention, Violations> {
        let mut problems = Violations::default();
        let start = self.start.clone().unwrap_or_else(|| {
            problems.add("start_event", "REQUIRED", "a start event is required");
            Matcher::default()
        });
        let returning = self.returning.clone();
        let periods = match self.periods {
            0 => touchline_analytics::retention::DEFAULT_PERIODS,
            n if n > 0 && n as usize <= MAX_PERIODS => n as usize,
            _ => {
                problems.add(
                    "periods",
                    "OUT_OF_RANGE",
                    format!("from 1 to {MAX_PERIODS}"),
                );
                1
            }
        };
        let interval = self.interval.unwrap_or(Interval::Week);
        let calendar = calendar(&self.scope, interval, "scope.", &mut problems);
        let breakdown = self
            .breakdown
            .as_ref()
            .map(|(field, limit)| breakdown_of(field, *limit, "breakdown", &mut problems));
        // The default range: the `periods` intervals ending with the one holding now.
        let default_from = calendar
            .interval_start(now_ms)
            .ok()
            .and_then(|mut start| {
                for _ in 1..periods {
                    start = calendar.previous_start(start).ok()?;
                }
                Some(start)
            })
            .unwrap_or(now_ms);
        let range = resolve_range(
            &self.scope,
            now_ms,
            now_ms - default_from,
            OpenStart::DefaultLength,
            "scope",
            &mut problems,
        );
        let model = if problems.is_empty() {
            IntervalGrid::starting_in(&calendar, range.0, range.1, MAX_COHORTS)
                .map_err(|err| err.to_string())
                .and_then(|grid| {
                    let options = RetentionOptions {
                        cohort_type: self.cohort_type,
                        return_mode: self.return_mode,
                        periods,
                        breakdown: breakdown.is_some(),
                    };
                    RetentionModel::new(&calendar, &grid, options).map_err(|err| err.to_string())
                })
                .map_err(|reason| {
                    problems.add(
                        "scope.time_range",
                        "OUT_OF_RANGE",
                        format!("{reason} (at most {MAX_COHORTS} cohort intervals)"),
                    );
                })
                .ok()
        } else {
            None
        };
        match model {
            Some(model) if problems.is_empty() => Ok(ValidRetention {
                start,
                returning,
                model,
                breakdown,
                range,
                data_end_ms: now_ms,
                event_filters: self.scope.event_filters.clone(),
            }),
            _ => Err(problems),
        }
    }
}

impl ValidRetention {
    /// The event names it names.
    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&self.start)
            .chain(self.returning.as_ref())
            .map(|m| m.event_name.as_str())
            .filter(|n| !n.is_empty())
    }
}

/// Runs `retention` over `view` on up to `threads` threads.
pub fn run(
    view: &TenantView,
    retention: &ValidRetention,
    run: &RunContext,
) -> Result<RetentionFigures, RunError> {
    let projection = &view.projection;
    let known = Known::new(view, &run.defined);
    let mut problems = Violations::default();
    let start = compile::condition(known, &retention.start, "start_event", &mut problems);
    let returning = match &retention.returning {
        Some(matcher) => compile::condition(known, matcher, "return_event", &mut problems),
        None => start.clone(),
    };
    let spec = RetentionSpec {
        start,
        returning,
        breakdown: retention.breakdown.as_ref().and_then(|(field, _)| {
            compile::breakdown_dimension(known, field, "breakdown", &mut problems)
        }),
    };
    if !problems.is_empty() {
        return Err(RunError::Invalid(problems));
    }
    // Every start event counts, before the range too: a first-time cohort needs the first.
    let cells = (retention.model.cohorts() as u64 + 1)
        .saturating_mul(retention.model.options().periods as u64);
    super::budget::retention(view, cells, spec.breakdown, run.threads)
        .map_err(RunError::TooLarge)?;
    let scope = compile::ScopeFor::new(known, None, &retention.event_filters, run)
        .map_err(RunError::Invalid)?;
    let accumulator = projection
        .retention(&retention.model, &spec, &scope.scope(), run.threads)
        .map_err(RunError::Projection)?;
    let limit = retention.breakdown.as_ref().map_or(1, |(_, limit)| *limit);
    let result = accumulator.result(retention.data_end_ms, usize::MAX);
    // Ties between values go by their text, never their codes (codes follow arrival order).
    let texts = retention
        .breakdown
        .as_ref()
        .map(|(field, _)| compile::Texts::for_view(view, field));
    let mut sized: Vec<(u64, String, RetentionTable)> = result
        .tables
        .into_iter()
        .map(|table| {
            let size = table.cohorts.iter().map(|c| c.size).sum::<u64>();
            let text = texts
                .as_ref()
                .map_or_else(String::new, |t| t.get(table.breakdown).to_owned());
            (size, text, table)
        })
        .collect();
    sized.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut tables: Vec<(String, RetentionTable)> = sized
        .into_iter()
        .map(|(_, text, table)| (text, table))
        .collect();
    let omitted_values = tables.len().saturating_sub(limit);
    tables.truncate(limit);
    Ok(RetentionFigures {
        tables,
        omitted_values,
        computation: Computation {
            positions: view.positions,
            range: retention.range,
            persons_considered: result.persons_considered,
        },
    })
}
