//! Lifecycle over a tenant's view: the counts per interval, and one person's stage and
//! history.

use touchline_analytics::calendar::{Calendar, CalendarError, Interval, IntervalGrid};
use touchline_analytics::lifecycle::{
    DEFAULT_CHURN_INTERVALS, LifecycleError, LifecycleIntervalCounts, LifecycleModel,
    LifecyclePerson, LifecycleStage, MAX_REPORTED_INTERVALS, PersonInterval, PersonStage,
};
use touchline_projection::query::{FirstSeen, LifecycleSpec};
use uuid::Uuid;

use super::RunContext;
use super::compile::{self, Known};
use super::funnel::{Computation, RunError};
use super::query::{
    FieldFilter, Matcher, OpenStart, Scope, Violations, calendar, check_instant, resolve_range,
};
use super::view::TenantView;

/// Intervals reported by default.
const DEFAULT_INTERVALS: usize = 8;
/// Person history intervals by default, and at most.
const DEFAULT_HISTORY: usize = 12;

/// The options shared by the report and a person's stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleOptions {
    /// The interval (`None`: weeks).
    pub interval: Option<Interval>,
    /// Qualifying events (none: every event).
    pub qualifying: Vec<Matcher>,
    /// K (0: the default, 3).
    pub churn_intervals: i32,
}

/// A lifecycle report as a caller asked for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleQuery {
    /// Interval, qualifying events, K.
    pub options: LifecycleOptions,
    /// The reported range, time zone and week start.
    pub scope: Scope,
}

/// A person's lifecycle as a caller asked for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonLifecycleQuery {
    /// The person id.
    pub person: String,
    /// Interval, qualifying events, K.
    pub options: LifecycleOptions,
    /// Time zone and week start (the range is unused).
    pub scope: Scope,
    /// Evaluate as of this instant (`None`: now).
    pub as_of_ms: Option<i64>,
    /// Past intervals returned (0: 12).
    pub history_intervals: i32,
}

/// A lifecycle whose every rule holds.
#[derive(Debug, Clone)]
pub struct ValidLifecycle {
    qualifying: Vec<Matcher>,
    event_filters: Vec<FieldFilter>,
    model: LifecycleModel,
    range: (i64, i64),
}

/// The lifecycle counts.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleFigures {
    /// Per interval, oldest first.
    pub intervals: Vec<LifecycleIntervalCounts>,
    /// What they were computed from.
    pub computation: Computation,
    /// Now, to mark the interval still filling.
    pub now_ms: i64,
}

/// One person's lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonLifecycle {
    /// The person (the survivor when the id asked for was merged).
    pub person_id: Uuid,
    /// The stage (`None` without qualifying activity).
    pub stage: Option<PersonStage>,
    /// The person's earliest event.
    pub first_seen_ms: Option<i64>,
    /// The history, oldest first.
    pub history: Vec<PersonInterval>,
    /// What it was computed from.
    pub computation: Computation,
}

fn churn_intervals(asked: i32, problems: &mut Violations) -> u32 {
    match asked {
        0 => DEFAULT_CHURN_INTERVALS,
        n if n > 0 => n.unsigned_abs(),
        _ => {
            problems.add("options.churn_intervals", "OUT_OF_RANGE", "from 1 to 52");
            DEFAULT_CHURN_INTERVALS
        }
    }
}

/// Which intervals a lifecycle reports.
#[derive(Debug, Clone, Copy)]
enum Span {
    /// Those starting in `[from, to)`.
    Range(i64, i64),
    /// `count` intervals, the last holding `at_ms`.
    Ending { at_ms: i64, count: usize },
}

/// Where a lifecycle's violations are reported: the calendar fields' prefix and the field
/// naming the span.
#[derive(Debug, Clone, Copy)]
struct Fields {
    calendar: &'static str,
    span: &'static str,
}

fn grid_of(calendar: &Calendar, span: Span) -> Result<IntervalGrid, CalendarError> {
    match span {
        Span::Range(from, to) => {
            IntervalGrid::starting_in(calendar, from, to, MAX_REPORTED_INTERVALS)
        }
        Span::Ending { at_ms, count } => {
            let mut start = calendar.interval_start(at_ms)?;
            for _ in 1..count {
                start = calendar.previous_start(start)?;
            }
            IntervalGrid::from_instant(calendar, start, count)
        }
    }
}

/// The model over `span`, and the range its reported intervals cover.
fn model(
    options: &LifecycleOptions,
    scope: &Scope,
    span: Span,
    fields: Fields,
    problems: &mut Violations,
) -> Option<(LifecycleModel, (i64, i64))> {
    let interval = options.interval.unwrap_or(Interval::Week);
    let calendar = calendar(scope, interval, fields.calendar, problems);
    let k = churn_intervals(options.churn_intervals, problems);
    if !problems.is_empty() {
        return None;
    }
    let grid = match grid_of(&calendar, span) {
        Ok(grid) => grid,
        Err(err) => {
            problems.add(fields.span, "OUT_OF_RANGE", err.to_string());
            return None;
        }
    };
    let range = (grid.start(0), grid.start(grid.len()));
    match LifecycleModel::new(&calendar, &grid, k) {
        Ok(model) => Some((model, range)),
        Err(LifecycleError::InvalidInput { field, reason }) => {
            let field = if field.starts_with("options.") {
                field
            } else {
                fields.span
            };
            problems.add(field, "OUT_OF_RANGE", reason);
            None
        }
        Err(err @ LifecycleError::Calendar(_)) => {
            problems.add(fields.span, "OUT_OF_RANGE", err.to_string());
            None
        }
    }
}

impl LifecycleQuery {
    /// Applies defaults and checks every rule: the reported intervals are those starting in
    /// the scope's range, or the 8 ending with the one holding the range's end (now when
    /// unset).
    pub fn validate(&self, now_ms: i64) -> Result<ValidLifecycle, Violations> {
        let mut problems = Violations::default();
        let (from, to) = resolve_range(
            &self.scope,
            now_ms,
            0,
            OpenStart::DefaultLength,
            "scope",
            &mut problems,
        );
        let span = match self.scope.start_ms {
            Some(_) => Span::Range(from, to),
            None => Span::Ending {
                at_ms: to.saturating_sub(1),
                count: DEFAULT_INTERVALS,
            },
        };
        let fields = Fields {
            calendar: "scope.",
            span: "scope.time_range",
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        match model(&self.options, &self.scope, span, fields, &mut problems) {
            Some((model, range)) if problems.is_empty() => Ok(ValidLifecycle {
                qualifying: self.options.qualifying.clone(),
                event_filters: self.scope.event_filters.clone(),
                model,
                range,
            }),
            _ => Err(problems),
        }
    }
}

impl ValidLifecycle {
    /// The event names it names.
    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        self.qualifying
            .iter()
            .map(|m| m.event_name.as_str())
            .filter(|n| !n.is_empty())
    }
}

/// Counts persons per status per interval over `view`.
pub fn run(
    view: &TenantView,
    lifecycle: &ValidLifecycle,
    now_ms: i64,
    run: &RunContext,
) -> Result<LifecycleFigures, RunError> {
    let projection = &view.projection;
    let known = Known::new(view, &run.defined);
    let mut problems = Violations::default();
    let activity = compile::any_of(
        known,
        &lifecycle.qualifying,
        "options.qualifying_events",
        &mut problems,
    );
    if !problems.is_empty() {
        return Err(RunError::Invalid(problems));
    }
    let spec = LifecycleSpec {
        activity,
        first_seen: FirstSeen::EarliestEvent,
    };
    let scope = compile::ScopeFor::new(known, None, &lifecycle.event_filters, run)
        .map_err(RunError::Invalid)?;
    let accumulator = projection
        .lifecycle(&lifecycle.model, &spec, &scope.scope(), run.threads)
        .map_err(RunError::Projection)?;
    Ok(LifecycleFigures {
        intervals: accumulator.intervals(),
        computation: Computation {
            positions: view.positions,
            range: lifecycle.range,
            persons_considered: accumulator.persons_considered(),
        },
        now_ms,
    })
}

/// Why a person's lifecycle cannot be given.
#[derive(Debug)]
pub enum PersonError {
    /// The request breaks a rule.
    Invalid(Violations),
    /// The view holds no event of the person.
    NotFound,
}

/// One person's stage and history over `view`.
pub fn person(
    view: &TenantView,
    query: &PersonLifecycleQuery,
    person: Uuid,
    defined: &[String],
    now_ms: i64,
) -> Result<PersonLifecycle, PersonError> {
    let mut problems = Violations::default();
    let as_of = query.as_of_ms.unwrap_or(now_ms);
    let history = match query.history_intervals {
        0 => DEFAULT_HISTORY,
        n if n > 0 && n as usize <= MAX_REPORTED_INTERVALS => n as usize,
        _ => {
            problems.add(
                "history_intervals",
                "OUT_OF_RANGE",
                format!("from 1 to {MAX_REPORTED_INTERVALS}"),
            );
            DEFAULT_HISTORY
        }
    };
    let fields = Fields {
        calendar: "",
        span: "as_of",
    };
    let built = if check_instant(as_of, "as_of", &mut problems) && problems.is_empty() {
        let span = Span::Ending {
            at_ms: as_of,
            count: history,
        };
        model(&query.options, &query.scope, span, fields, &mut problems)
    } else {
        None
    };
    let projection = &view.projection;
    let known = Known::new(view, defined);
    let activity = compile::any_of(
        known,
        &query.options.qualifying,
        "options.qualifying_events",
        &mut problems,
    );
    let Some((model, range)) = built.filter(|_| problems.is_empty()) else {
        return Err(PersonError::Invalid(problems));
    };
    let key = view.persons.get(&person).ok_or(PersonError::NotFound)?;
    let events = projection.timeline(key);
    if events.is_empty() {
        return Err(PersonError::NotFound);
    }
    let activity_ms: Vec<i64> = events
        .iter()
        .filter(|e| e.time_ms <= as_of && compile::matches(&activity, e))
        .map(|e| e.time_ms)
        .collect();
    let first_seen_ms = events.first().map(|e| e.time_ms);
    let input = LifecyclePerson {
        first_seen_ms,
        activity_ms: &activity_ms,
    };
    let stage = model.person_stage(&input, as_of).ok().flatten();
    Ok(PersonLifecycle {
        person_id: person,
        stage,
        first_seen_ms,
        history: model.person_history(&input),
        computation: Computation {
            positions: view.positions,
            range,
            persons_considered: 1,
        },
    })
}

/// Every person's current stage over `view` as of `as_of_ms` (persons without qualifying
/// activity have none), for rules that select by stage.
pub fn stages(
    view: &TenantView,
    options: &LifecycleOptions,
    scope: &Scope,
    defined: &[String],
    as_of_ms: i64,
    threads: usize,
) -> Result<std::collections::HashMap<Uuid, LifecycleStage>, Violations> {
    let mut problems = Violations::default();
    let fields = Fields {
        calendar: "lifecycle.",
        span: "as_of",
    };
    let span = Span::Ending {
        at_ms: as_of_ms,
        count: DEFAULT_HISTORY,
    };
    let built = model(options, scope, span, fields, &mut problems);
    let known = Known::new(view, defined);
    let activity = compile::any_of(
        known,
        &options.qualifying,
        "lifecycle.qualifying_events",
        &mut problems,
    );
    let Some((model, _)) = built.filter(|_| problems.is_empty()) else {
        return Err(problems);
    };
    let states = view.projection.scan(
        threads,
        || (Vec::new(), Vec::new()),
        |(found, activity_ms): &mut (Vec<(Uuid, LifecycleStage)>, Vec<i64>), person| {
            let Some(id) = view.persons.id(person.person()) else {
                return Ok::<(), ()>(());
            };
            activity_ms.clear();
            let mut first_seen_ms = None;
            for event in person.iter() {
                let event = event.to_event();
                first_seen_ms = first_seen_ms.or(Some(event.time_ms));
                if event.time_ms <= as_of_ms && compile::matches(&activity, &event) {
                    activity_ms.push(event.time_ms);
                }
            }
            let input = LifecyclePerson {
                first_seen_ms,
                activity_ms,
            };
            if let Ok(Some(stage)) = model.person_stage(&input, as_of_ms) {
                found.push((id, stage.stage));
            }
            Ok(())
        },
    );
    Ok(states
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(found, _)| found)
        .collect())
}
