//! Paths over the projection: per person, the sorted items (an event's code in the chosen
//! column), into the paths accumulator.

use touchline_analytics::paths::{PathAccumulator, PathEvent, PathOptions};

use super::{
    CompiledScope, Condition, Dimension, Matcher, Plain, PlainRow, Reader, Scope, fill_person,
};
use crate::error::ProjectionError;
use crate::fields::{EventFields, EventVisitor};
use crate::projection::Projection;

/// Which column names the items, and which events become items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSpec {
    /// The item column: [`Dimension::Event`] for event paths,
    /// [`Dimension::ChannelTouchpoint`] for touchpoint paths. Events whose item is missing
    /// (code 0) are left out, as if they never happened.
    pub item: Dimension,
    /// Only events matching this become items (all events when `None`).
    pub events: Option<Condition>,
}

impl Projection {
    /// Runs paths with `options` over every person in `scope` on up to `threads` threads;
    /// read the graph with [`PathAccumulator::graph`]. Persons without an item add nothing
    /// (paths count persons with a session only).
    pub fn paths(
        &self,
        options: &PathOptions,
        spec: &PathSpec,
        scope: &Scope<'_>,
        threads: usize,
    ) -> Result<PathAccumulator, ProjectionError> {
        options.validate()?;
        let any = Condition::any();
        let matcher = Matcher::new(self, &[spec.events.as_ref().unwrap_or(&any)])?;
        let reader = self.reader(spec.item)?;
        let scope = CompiledScope::new(self, scope)?;
        let plain = Plain::new(self, &matcher, &scope, Some(&reader));
        let workers = self.scan(
            threads,
            || (PathAccumulator::new(options.clone()), Vec::new()),
            |(accumulator, events): &mut (PathAccumulator, Vec<PathEvent>), person| {
                if !scope.admits_person(person.person()) {
                    return Ok(());
                }
                let row = |row: &PlainRow| {
                    let event = PathEvent {
                        time_ms: row.time_ms,
                        seq: row.seq,
                        item: row.column,
                    };
                    (event, row.mask != 0 && row.column != 0)
                };
                let general = |events: &mut Vec<PathEvent>| {
                    events.clear();
                    person.visit(&mut Items {
                        scope: &scope,
                        matcher: &matcher,
                        reader: &reader,
                        events,
                    });
                    Some(events.len())
                };
                let filled = fill_person(&person, plain.as_ref(), events, BLANK, row, general);
                match filled.and_then(|len| events.get(..len)) {
                    Some(items) if !items.is_empty() => accumulator.add_person(items)?,
                    _ => {}
                }
                Ok::<(), ProjectionError>(())
            },
        )?;
        let mut workers = workers.into_iter();
        let mut total = workers
            .next()
            .map_or_else(|| PathAccumulator::new(options.clone()), |(first, _)| first);
        for (partial, _) in workers {
            total.merge(&partial);
        }
        Ok(total)
    }
}

/// The entry of an unused buffer slot.
const BLANK: PathEvent = PathEvent {
    time_ms: 0,
    seq: 0,
    item: 0,
};

/// Turns one person's events into path items.
struct Items<'v, 'a> {
    scope: &'v CompiledScope<'a>,
    matcher: &'v Matcher,
    reader: &'v Reader,
    events: &'v mut Vec<PathEvent>,
}

impl EventVisitor for Items<'_, '_> {
    #[inline(always)]
    fn visit<E: EventFields>(&mut self, event: &E) {
        if !self.scope.admits(event) || self.matcher.mask(event) == 0 {
            return;
        }
        let item = self.reader.read(event);
        if item != 0 {
            self.events.push(PathEvent {
                time_ms: event.time_ms(),
                seq: event.seq(),
                item,
            });
        }
    }
}
