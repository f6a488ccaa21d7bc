//! One tenant's projection with the person keys and store positions it reflects: built from
//! a snapshot of the store, then moved forward by the changes since its revision.

use std::collections::HashMap;

use touchline_projection::{NewEvent, Projection, ProjectionConfig};

use super::encode::{Unprojectable, encode};
use super::persons::PersonKeys;
use crate::store::journal::{Changes, JournalEvent, Positions};

/// The projection layout the service uses: 16 partitions (a few per core on the machines it
/// runs on, so compactions stay short and threads balanced), no property slots yet.
pub fn config() -> ProjectionConfig {
    ProjectionConfig {
        property_slots: 0,
        ..ProjectionConfig::default()
    }
}

/// A tenant's journeys as the models read them.
#[derive(Debug)]
pub struct TenantView {
    /// The events.
    pub projection: Projection,
    /// Person ids and their keys.
    pub persons: PersonKeys,
    /// What the view reflects.
    pub positions: Positions,
    /// Stored events the projection could not take, since the view was built.
    pub set_aside: u64,
}

fn set_aside(stored: &JournalEvent, err: &Unprojectable) {
    tracing::warn!(
        sequence = stored.sequence,
        reason = err.reason(),
        error = %err,
        "a stored event was left out of the journey projection"
    );
}

impl TenantView {
    /// An empty view.
    pub fn empty() -> Result<Self, touchline_projection::ProjectionError> {
        Ok(Self {
            projection: Projection::new(config())?,
            persons: PersonKeys::default(),
            positions: Positions::default(),
            set_aside: 0,
        })
    }

    /// Builds a view from chunks of a store snapshot (see `store::journal::load`), on up to
    /// `threads` threads.
    pub fn build(
        chunks: impl Iterator<Item = Vec<JournalEvent>>,
        threads: usize,
    ) -> Result<Self, touchline_projection::ProjectionError> {
        let mut loader = Projection::new(config())?.loader(threads);
        let mut persons = PersonKeys::default();
        let mut skipped = 0;
        let mut batch = Vec::new();
        for chunk in chunks {
            batch.clear();
            for stored in &chunk {
                match encode(loader.dictionaries_mut(), &mut persons, stored) {
                    Ok(event) => batch.push(event),
                    Err(err) => {
                        skipped += 1;
                        set_aside(stored, &err);
                    }
                }
            }
            loader.push(&batch)?;
        }
        Ok(Self {
            projection: loader.finish(),
            persons,
            positions: Positions::default(),
            set_aside: skipped,
        })
    }

    /// Applies what changed since the view's revision: each removal takes the event from the
    /// person who held it (a no-op when the view never had it), then every added or changed
    /// event enters under its current person. Returns the events that entered.
    pub fn apply(
        &mut self,
        changes: Changes,
    ) -> Result<usize, touchline_projection::ProjectionError> {
        let mut removed: HashMap<u64, Vec<u64>> = HashMap::new();
        for removal in &changes.removals {
            let (Some(person), Ok(seq)) = (
                self.persons.get(&removal.person_id),
                u64::try_from(removal.sequence),
            ) else {
                continue;
            };
            removed.entry(person).or_default().push(seq);
        }
        for (person, seqs) in removed {
            self.projection.remove_events(person, &seqs);
        }
        let mut batch: Vec<NewEvent> = Vec::with_capacity(changes.events.len());
        for stored in &changes.events {
            match encode(
                self.projection.dictionaries_mut(),
                &mut self.persons,
                stored,
            ) {
                Ok(event) => batch.push(event),
                Err(err) => {
                    self.set_aside += 1;
                    set_aside(stored, &err);
                }
            }
        }
        self.projection.append(&batch)?;
        self.positions = changes.positions;
        Ok(batch.len())
    }
}
