//! Lifecycle over the projection: per person, the instants of qualifying activity and the
//! first-seen time, into the model's accumulator.

use touchline_analytics::lifecycle::{LifecycleAccumulator, LifecycleModel, LifecyclePerson};

use super::{CompiledScope, Condition, Matcher, Plain, PlainRow, Scope, fill_person};
use crate::error::ProjectionError;
use crate::fields::{EventFields, EventVisitor};
use crate::projection::Projection;

/// Where a person's first-seen time comes from.
#[derive(Clone, Copy)]
pub enum FirstSeen<'a> {
    /// The person's earliest event in the projection, of any kind and at any time. Equal to
    /// identity's first-seen time as long as the projection holds the person's whole history.
    EarliestEvent,
    /// A lookup by person key (identity's first-seen times, kept by the service).
    Known(&'a (dyn Fn(u64) -> Option<i64> + Sync)),
}

impl std::fmt::Debug for FirstSeen<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FirstSeen::EarliestEvent => f.write_str("EarliestEvent"),
            FirstSeen::Known(_) => f.write_str("Known(..)"),
        }
    }
}

/// Which events are qualifying activity, and where first-seen times come from.
#[derive(Clone, Debug)]
pub struct LifecycleSpec<'a> {
    /// Qualifying activity.
    pub activity: Condition,
    /// First-seen times (not limited by the scope: [`FirstSeen::EarliestEvent`] reads the
    /// person's whole history).
    pub first_seen: FirstSeen<'a>,
}

impl Projection {
    /// Runs `model` over every person in `scope` on up to `threads` threads.
    pub fn lifecycle<'m>(
        &self,
        model: &'m LifecycleModel,
        spec: &LifecycleSpec<'_>,
        scope: &Scope<'_>,
        threads: usize,
    ) -> Result<LifecycleAccumulator<'m>, ProjectionError> {
        let matcher = Matcher::new(self, &[&spec.activity])?;
        let scope = CompiledScope::new(self, scope)?;
        let plain = Plain::new(self, &matcher, &scope, None);
        let workers = self.scan(
            threads,
            || (model.accumulator(), Vec::new()),
            |(accumulator, activity): &mut (LifecycleAccumulator<'m>, Vec<i64>), person| {
                if !scope.admits_person(person.person()) {
                    return Ok::<(), ProjectionError>(());
                }
                let row = |row: &PlainRow| (row.time_ms, row.mask != 0);
                let general = |activity: &mut Vec<i64>| {
                    activity.clear();
                    let mut visitor = Activity {
                        scope: &scope,
                        matcher: &matcher,
                        activity,
                        considered: false,
                    };
                    person.visit(&mut visitor);
                    visitor.considered.then_some(activity.len())
                };
                let Some(len) = fill_person(&person, plain.as_ref(), activity, 0, row, general)
                else {
                    return Ok(());
                };
                let first_seen_ms = match spec.first_seen {
                    FirstSeen::EarliestEvent => person.iter().next().map(|e| e.time_ms()),
                    FirstSeen::Known(lookup) => lookup(person.person()),
                };
                accumulator.add_person(&LifecyclePerson {
                    first_seen_ms,
                    activity_ms: activity.get(..len).unwrap_or_default(),
                });
                Ok(())
            },
        )?;
        let mut workers = workers.into_iter();
        let mut total = workers
            .next()
            .map_or_else(|| model.accumulator(), |(first, _)| first);
        for (partial, _) in workers {
            total.merge(&partial);
        }
        Ok(total)
    }
}

/// Collects one person's qualifying activity.
struct Activity<'v, 'a> {
    scope: &'v CompiledScope<'a>,
    matcher: &'v Matcher,
    activity: &'v mut Vec<i64>,
    considered: bool,
}

impl EventVisitor for Activity<'_, '_> {
    #[inline(always)]
    fn visit<E: EventFields>(&mut self, event: &E) {
        if self.scope.admits(event) {
            self.considered = true;
            if self.matcher.mask(event) != 0 {
                self.activity.push(event.time_ms());
            }
        }
    }
}
