//! Lifecycle over a tenant's view: the counts per interval, and one person's stage and
//! history.

use touchline_analytics::calendar::{Interval, IntervalGrid};
use touchline_analytics::lifecycle::{
    DEFAULT_CHURN_INTERVALS, LifecycleIntervalCounts, LifecycleModel, LifecyclePerson,
    MAX_REPORTED_INTERVALS, PersonInterval, PersonStage,
};
use touchline_projection::query::{FirstSeen, LifecycleSpec, Scope as ProjectionScope};
use uuid::Uuid;

use super::compile::{self, Known};
use super::funnel::{Computation, RunError};
use super::query::{Matcher, Scope, Violations, calendar, resolve_range};
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

/// The model over `count` intervals ending with the one holding `end_ms`.
fn model(
    options: &LifecycleOptions,
    scope: &Scope,
    range: Option<(i64, i64)>,
    now_ms: i64,
    count: usize,
    problems: &mut Violations,
) -> Option<(LifecycleModel, (i64, i64))> {
    let calendar = calendar(
        scope,
        options.interval.unwrap_or(Interval::Week),
        "scope",
        problems,
    );
    let k = churn_intervals(options.churn_intervals, problems);
    if !problems.is_empty() {
        return None;
    }
    let grid = match range {
        Some((from, to)) => IntervalGrid::starting_in(&calendar, from, to, MAX_REPORTED_INTERVALS),
        None => calendar
            .interval_start(now_ms)
            .and_then(|end| {
                let mut start = end;
                for _ in 1..count {
                    start = calendar.previous_start(start)?;
                }
                Ok(start)
            })
            .and_then(|start| IntervalGrid::from_instant(&calendar, start, count)),
    };
    let built = grid.map_err(|err| err.to_string()).and_then(|grid| {
        let range = (grid.start(0), grid.start(grid.len()));
        LifecycleModel::new(&calendar, &grid, k)
            .map(|model| (model, range))
            .map_err(|err| err.to_string())
    });
    match built {
        Ok(built) => Some(built),
        Err(reason) => {
            let field = if reason.contains("churn") {
                "options.churn_intervals"
            } else if reason.contains("interval") && reason.contains("day, week or month") {
                "options.interval"
            } else {
                "scope.time_range"
            };
            problems.add(field, "OUT_OF_RANGE", reason);
            None
        }
    }
}

impl LifecycleQuery {
    /// Applies defaults and checks every rule.
    pub fn validate(&self, now_ms: i64) -> Result<ValidLifecycle, Violations> {
        let mut problems = Violations::default();
        let explicit = (self.scope.start_ms.is_some() || self.scope.end_ms.is_some())
            .then(|| resolve_range(&self.scope, now_ms, 0, "scope", &mut problems));
        if explicit.is_none() {
            // Filters and segment are checked even without a range.
            resolve_range(&self.scope, now_ms, 1, "scope", &mut problems);
        }
        let built = model(
            &self.options,
            &self.scope,
            explicit,
            now_ms,
            DEFAULT_INTERVALS,
            &mut problems,
        );
        match built {
            Some((model, range)) if problems.is_empty() => Ok(ValidLifecycle {
                qualifying: self.options.qualifying.clone(),
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
    defined: &[String],
    now_ms: i64,
    threads: usize,
) -> Result<LifecycleFigures, RunError> {
    let projection = &view.projection;
    let known = Known {
        projection,
        defined,
    };
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
    let accumulator = projection
        .lifecycle(
            &lifecycle.model,
            &spec,
            &ProjectionScope::default(),
            threads,
        )
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
    let built = model(
        &query.options,
        &query.scope,
        None,
        as_of,
        history,
        &mut problems,
    );
    let projection = &view.projection;
    let known = Known {
        projection,
        defined,
    };
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
