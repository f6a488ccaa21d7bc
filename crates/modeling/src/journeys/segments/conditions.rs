//! The segment conditions that read more than a person's own events and outputs: a funnel
//! drop-off and an attributed channel (each computed over the whole view, then a member set)
//! and a person attribute (a trait, or when the person was first and last seen).

use std::collections::HashSet;
use std::sync::Arc;

use touchline_analytics::funnel::{ListedPerson, PersonSelection};
use uuid::Uuid;

use super::evaluate::{ViewAt, earliest};
use super::rule::MIN_WINDOW_MS;
use crate::journeys::attribution::per_person;
use crate::journeys::attribution::query::{AttributionQuery, ModelType, ValidAttribution};
use crate::journeys::funnel::{self, RunError};
use crate::journeys::funnel_query::{FunnelQuery, ValidFunnel};
use crate::journeys::query::{FieldFilter, Operator, Violations};

/// Adds `found` to `problems`, each field under `path`.
pub(super) fn report_under(path: &str, problems: &mut Violations, found: Violations) {
    for mut violation in found.0 {
        violation.field = format!("{path}.{}", violation.field);
        problems.0.push(violation);
    }
}

/// The longest rolling window of a funnel drop-off condition: 366 days.
pub const MAX_DROP_OFF_WINDOW_MS: i64 = 366 * 86_400_000;

/// A condition on a funnel: among the attempts starting in the rolling window, the person's
/// furthest step is `step − 1` (they dropped before step `step`). A person who completes
/// step `step` later in the window is no longer selected.
#[derive(Debug, Clone, PartialEq)]
pub struct DropOff {
    /// The funnel; its breakdown and its scope's time range are not used.
    pub funnel: FunnelQuery,
    /// The step k ≥ 2 the person dropped at.
    pub step: i32,
    /// Attempts starting this long before the evaluation count; `None`: the funnel's
    /// conversion window.
    pub within_ms: Option<i64>,
    /// Only persons who reached step − 1 at least this long ago (0: at once).
    pub idle_ms: i64,
}

/// The longest a drop-off condition may wait for the next step: 90 days.
pub const MAX_IDLE_MS: i64 = 90 * 86_400_000;

impl DropOff {
    /// The funnel as evaluated at `now_ms`: its window's attempts, no breakdown.
    pub fn funnel_at(&self, now_ms: i64) -> Result<ValidFunnel, Violations> {
        let mut funnel = self.funnel.validate(now_ms)?;
        let within = self.within_ms.unwrap_or(funnel.window_ms);
        funnel.range = (now_ms.saturating_sub(within), now_ms);
        funnel.breakdown = None;
        Ok(funnel)
    }

    pub(super) fn check(&self, path: &str, problems: &mut Violations) {
        // The funnel's own rules, under this condition's path (`funnel.steps` becomes
        // `{path}.funnel.steps`).
        if let Err(found) = self.funnel.validate(0) {
            report_under(path, problems, found);
        }
        let steps = self.funnel.steps.len() as i32;
        if !(2..=steps.max(2)).contains(&self.step) {
            problems.add(
                format!("{path}.step"),
                "OUT_OF_RANGE",
                format!("the step persons dropped at, from 2 to {steps}"),
            );
        }
        if self
            .within_ms
            .is_some_and(|ms| !(MIN_WINDOW_MS..=MAX_DROP_OFF_WINDOW_MS).contains(&ms))
        {
            problems.add(
                format!("{path}.within_last"),
                "OUT_OF_RANGE",
                "from 1 second to 366 days",
            );
        }
        if !(0..=MAX_IDLE_MS).contains(&self.idle_ms) {
            problems.add(
                format!("{path}.idle_for"),
                "OUT_OF_RANGE",
                "from 0 to 90 days",
            );
        }
        if !self.funnel.scope.segment.is_empty() {
            problems.add(
                format!("{path}.funnel.scope.segment"),
                "UNSUPPORTED",
                "a drop-off condition cannot limit its funnel to a segment: combine it with segment_membership instead",
            );
        }
    }
}

/// The default rolling window of an attributed-channel condition: 30 days.
pub const DEFAULT_ATTRIBUTED_WITHIN_MS: i64 = 30 * 86_400_000;

/// A condition on attribution: the person's conversions in a rolling window credit a
/// channel, under one model, with at least a share of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Attributed {
    /// The conversion, channel field, lookback and the one model (as RunAttribution takes
    /// them; the scope is not used).
    pub query: AttributionQuery,
    /// The channel.
    pub channel: String,
    /// The share of the person's conversions the channel must be credited, 0–1; 0 means any
    /// credit above 0.
    pub min_share: f64,
    /// Conversions this long before the evaluation count; `None`: 30 days.
    pub within_ms: Option<i64>,
}

impl Attributed {
    /// The attribution as evaluated at `now_ms`: conversions of the rolling window.
    pub fn attribution_at(&self, now_ms: i64) -> Result<ValidAttribution, Violations> {
        let mut valid = self.query.validate(now_ms)?;
        let within = self.within_ms.unwrap_or(DEFAULT_ATTRIBUTED_WITHIN_MS);
        valid.range = (now_ms.saturating_sub(within), now_ms);
        Ok(valid)
    }

    pub(super) fn check(&self, path: &str, problems: &mut Violations) {
        if self.query.conversion.is_none() {
            problems.add(
                format!("{path}.conversion_event"),
                "REQUIRED",
                "name the conversion event",
            );
        }
        if let Err(mut found) = self.query.validate(0) {
            // The condition has one `model` where the request it borrows has `models`.
            for violation in &mut found.0 {
                violation.field = violation.field.replace("models[0]", "model");
            }
            report_under(path, problems, found);
        }
        if matches!(
            self.query.models.first().map(|m| m.kind),
            Some(ModelType::Markov | ModelType::Shapley)
        ) {
            problems.add(
                format!("{path}.model.type"),
                "NOT_PER_PERSON",
                "MARKOV and SHAPLEY credit all journeys together, not one person's: use FIRST_TOUCH, LAST_TOUCH, LINEAR, POSITION_BASED or TIME_DECAY",
            );
        }
        if self.channel.trim().is_empty() {
            problems.add(format!("{path}.channel"), "REQUIRED", "name the channel");
        }
        if !(0.0..=1.0).contains(&self.min_share) {
            problems.add(
                format!("{path}.min_share"),
                "OUT_OF_RANGE",
                "a share from 0 to 1",
            );
        }
        if self
            .within_ms
            .is_some_and(|ms| !(MIN_WINDOW_MS..=MAX_DROP_OFF_WINDOW_MS).contains(&ms))
        {
            problems.add(
                format!("{path}.within_last"),
                "OUT_OF_RANGE",
                "from 1 second to 366 days",
            );
        }
    }
}

/// The person attributes a trait condition can name besides `traits.{name}`.
pub const SEEN_FIELDS: [&str; 2] = ["first_seen_time", "last_seen_time"];

/// A time a filter on `first_seen_time` or `last_seen_time` names, in ms: RFC 3339.
pub fn time_value(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.timestamp_millis())
}

pub(super) fn check_trait(filter: &FieldFilter, path: &str, problems: &mut Violations) {
    let field = filter.field.as_str();
    let seen = SEEN_FIELDS.contains(&field);
    if !seen && crate::journeys::properties::trait_name_of(field).is_none() {
        problems.add(
            format!("{path}.filter.field"),
            "INVALID_FIELD",
            "traits.{name}, first_seen_time or last_seen_time",
        );
    }
    crate::journeys::query::check_operator(filter, &format!("{path}.filter"), problems);
    if seen {
        if matches!(filter.operator, Operator::Contains | Operator::NotContains) {
            problems.add(
                format!("{path}.filter.operator"),
                "UNSUPPORTED_OPERATOR",
                "times are compared, not searched",
            );
        }
        if filter.values.iter().any(|v| time_value(v).is_none()) {
            problems.add(
                format!("{path}.filter.values"),
                "INVALID_TIME",
                "times are RFC 3339, e.g. 2026-06-18T00:00:00+08:00",
            );
        }
    }
}

/// The persons a drop-off condition selects; problems binding its funnel (unknown event
/// names, properties not analysable) are reported under `path`. `due` is brought forward to
/// the earliest instant time alone could change the answer: a counted attempt leaving the
/// rolling window, or a dropped person's idle time passing.
pub fn dropped_off(
    at: &ViewAt<'_>,
    drop: &DropOff,
    path: &str,
    problems: &mut Violations,
    due: &std::cell::Cell<Option<i64>>,
) -> Arc<HashSet<Uuid>> {
    let found = drop.funnel_at(at.now_ms).and_then(|funnel| {
        let step = usize::try_from(drop.step).unwrap_or(0);
        // Everyone in the funnel, not only who dropped: a person's best attempt decides, and
        // when it leaves the window a later, worse one may make them dropped.
        let selection = PersonSelection::Reached(1);
        match funnel::listed(at.view, &funnel, &at.run(), selection, None) {
            Ok((persons, _)) => {
                let within = funnel.range.1.saturating_sub(funnel.range.0);
                let leaves = persons
                    .iter()
                    .map(|p| p.start_time.saturating_add(within).saturating_add(1))
                    .min();
                let idle_since = at.now_ms.saturating_sub(drop.idle_ms);
                let dropped: Vec<&ListedPerson> = persons
                    .iter()
                    .filter(|p| step >= 2 && p.furthest_step + 1 == step)
                    .collect();
                let idle_ends = dropped
                    .iter()
                    .filter(|p| p.furthest_step_time > idle_since)
                    .map(|p| p.furthest_step_time.saturating_add(drop.idle_ms))
                    .min();
                due.set(earliest(due.get(), earliest(leaves, idle_ends)));
                Ok(at.ids(
                    dropped
                        .iter()
                        .filter(|p| p.furthest_step_time <= idle_since)
                        .map(|p| p.person),
                ))
            }
            Err(RunError::Invalid(found)) => Err(found),
            Err(err) => {
                tracing::warn!(error = ?err, "a funnel drop-off condition could not be evaluated");
                Ok(Arc::default())
            }
        }
    });
    found.unwrap_or_else(|found| {
        report_under(path, problems, found);
        Arc::default()
    })
}

/// The persons an attributed-channel condition selects; problems binding it (unknown event
/// names, properties not analysable) are reported under `path`.
pub fn credited(
    at: &ViewAt<'_>,
    attributed: &Attributed,
    path: &str,
    problems: &mut Violations,
) -> Arc<HashSet<Uuid>> {
    let found = attributed.attribution_at(at.now_ms).and_then(|valid| {
        per_person::crediting(
            at.view,
            &valid,
            &attributed.channel,
            attributed.min_share,
            &at.run(),
        )
    });
    found.map(Arc::new).unwrap_or_else(|found| {
        report_under(path, problems, found);
        Arc::default()
    })
}
