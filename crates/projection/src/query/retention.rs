//! Retention over the projection: per person, the events that are a start or a return (with
//! the breakdown code when the model splits by one), into the model's accumulator.
//!
//! Every start event of the person is passed, not only those in the cohort range: a
//! first-time cohort is decided by the person's first-ever start event, and the model needs
//! to see a start before the range to leave the person out.

use touchline_analytics::retention::{
    RETURN, RetentionAccumulator, RetentionEvent, RetentionModel, START,
};

use super::{
    CompiledScope, Condition, Dimension, Matcher, Plain, PlainRow, Reader, Scope, fill_person,
};
use crate::error::{ProjectionError, invalid};
use crate::fields::{EventFields, EventVisitor};
use crate::projection::Projection;

/// Which events start and which return, and the breakdown column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionSpec {
    /// The start (cohorting) event.
    pub start: Condition,
    /// The return event (may equal the start).
    pub returning: Condition,
    /// The breakdown column; required exactly when the model's options ask for a breakdown.
    pub breakdown: Option<Dimension>,
}

impl Projection {
    /// Runs `model` over every person in `scope` on up to `threads` threads.
    pub fn retention<'m>(
        &self,
        model: &'m RetentionModel,
        spec: &RetentionSpec,
        scope: &Scope<'_>,
        threads: usize,
    ) -> Result<RetentionAccumulator<'m>, ProjectionError> {
        let matcher = Matcher::new(self, &[&spec.start, &spec.returning])?;
        let breakdown = match (model.options().breakdown, spec.breakdown) {
            (true, Some(dimension)) => Some(self.reader(dimension)?),
            (false, None) => None,
            (true, None) | (false, Some(_)) => {
                return Err(invalid(
                    "breakdown",
                    "given exactly when the model's options ask for one",
                ));
            }
        };
        let scope = CompiledScope::new(self, scope)?;
        let plain = Plain::new(self, &matcher, &scope, breakdown.as_ref());
        let workers = self.scan(
            threads,
            || (model.accumulator(), Vec::new()),
            |(accumulator, events): &mut (RetentionAccumulator<'m>, Vec<RetentionEvent>),
             person| {
                if !scope.admits_person(person.person()) {
                    return Ok::<(), ProjectionError>(());
                }
                let row = |row: &PlainRow| {
                    let flags = flags(row.mask);
                    let event = RetentionEvent {
                        time_ms: row.time_ms,
                        flags,
                        breakdown: row.column,
                    };
                    (event, flags != 0)
                };
                let general = |events: &mut Vec<RetentionEvent>| {
                    events.clear();
                    let mut visitor = Flags {
                        scope: &scope,
                        matcher: &matcher,
                        breakdown: breakdown.as_ref(),
                        events,
                        considered: false,
                    };
                    person.visit(&mut visitor);
                    visitor.considered.then_some(events.len())
                };
                let filled = fill_person(&person, plain.as_ref(), events, BLANK, row, general);
                if let Some(len) = filled {
                    accumulator.add_person(events.get(..len).unwrap_or_default());
                }
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

/// The entry of an unused buffer slot.
const BLANK: RetentionEvent = RetentionEvent {
    time_ms: 0,
    flags: 0,
    breakdown: 0,
};

/// Condition bits (start, return) as retention flags.
#[inline(always)]
fn flags(mask: u32) -> u8 {
    (if mask & 1 != 0 { START } else { 0 }) | (if mask & 2 != 0 { RETURN } else { 0 })
}

/// Turns one person's events into retention events (starts and returns only).
struct Flags<'v, 'a> {
    scope: &'v CompiledScope<'a>,
    matcher: &'v Matcher,
    breakdown: Option<&'v Reader>,
    events: &'v mut Vec<RetentionEvent>,
    considered: bool,
}

impl EventVisitor for Flags<'_, '_> {
    #[inline(always)]
    fn visit<E: EventFields>(&mut self, event: &E) {
        if !self.scope.admits(event) {
            return;
        }
        self.considered = true;
        let flags = flags(self.matcher.mask(event));
        if flags != 0 {
            self.events.push(RetentionEvent {
                time_ms: event.time_ms(),
                flags,
                breakdown: self.breakdown.map_or(0, |r| r.read(event)),
            });
        }
    }
}
