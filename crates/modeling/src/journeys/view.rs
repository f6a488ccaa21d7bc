//! One tenant's projection with the person keys and store positions it reflects: built from
//! a snapshot of the store, then moved forward by the changes since its revision.

use std::collections::HashMap;

use touchline_projection::{
    Dictionaries, Loader, NewEvent, Projection, ProjectionConfig, ProjectionError, Touch,
};

use super::encode::{Unprojectable, encode};
use super::persons::PersonKeys;
use crate::store::journal::{Changes, JournalEvent, Positions};

/// The projection layout the service uses: 16 partitions (a few per core on the machines it
/// runs on, so compactions stay short and threads balanced) and a slot per analysable
/// property.
pub fn config(properties: usize) -> ProjectionConfig {
    ProjectionConfig {
        property_slots: properties.min(touchline_projection::MAX_PROPERTIES),
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
    /// The analysable paths (`properties.…`, `traits.…`) the view keeps, by slot.
    pub properties: Vec<String>,
}

/// What stored events are encoded into: a projection, or a loader building one.
trait Target {
    fn dictionaries(&mut self) -> &mut Dictionaries;
    fn touch(&mut self, touch: Touch) -> Result<u16, ProjectionError>;
}

impl Target for Projection {
    fn dictionaries(&mut self) -> &mut Dictionaries {
        self.dictionaries_mut()
    }
    fn touch(&mut self, touch: Touch) -> Result<u16, ProjectionError> {
        self.intern_touch(touch)
    }
}

impl Target for Loader {
    fn dictionaries(&mut self) -> &mut Dictionaries {
        self.dictionaries_mut()
    }
    fn touch(&mut self, touch: Touch) -> Result<u16, ProjectionError> {
        self.intern_touch(touch)
    }
}

/// Encodes `stored` into `batch`, setting aside (logged, counted) each event the projection
/// cannot hold, so the rest of the batch is never refused because of one of them.
fn encode_all(
    target: &mut impl Target,
    persons: &mut PersonKeys,
    properties: &[String],
    stored: &[JournalEvent],
    batch: &mut Vec<NewEvent>,
) -> u64 {
    let mut skipped = 0;
    for event in stored {
        let encoded = encode(target.dictionaries(), persons, properties, event).and_then(|new| {
            target.touch(new.event.touch).map_err(Unprojectable::from)?;
            Ok(new)
        });
        match encoded {
            Ok(new) => batch.push(new),
            Err(err) => {
                skipped += 1;
                tracing::warn!(
                    sequence = event.sequence,
                    reason = err.reason(),
                    error = %err,
                    "a stored event was left out of the journey projection"
                );
            }
        }
    }
    skipped
}

impl TenantView {
    /// Builds a view keeping the analysable `properties` (paths, at most
    /// [`touchline_projection::MAX_PROPERTIES`]) from chunks of a store snapshot (see
    /// `store::journal::load`), on up to `threads` threads.
    pub fn build(
        chunks: impl Iterator<Item = Vec<JournalEvent>>,
        properties: Vec<String>,
        threads: usize,
    ) -> Result<Self, ProjectionError> {
        let mut loader = Projection::new(config(properties.len()))?.loader(threads);
        let mut persons = PersonKeys::building();
        let mut set_aside = 0;
        let mut batch = Vec::new();
        for chunk in chunks {
            batch.clear();
            set_aside += encode_all(&mut loader, &mut persons, &properties, &chunk, &mut batch);
            loader.push(&batch)?;
        }
        persons.compact();
        Ok(Self {
            projection: loader.finish(),
            persons,
            positions: Positions::default(),
            set_aside,
            properties,
        })
    }

    /// Applies what changed since the view's revision: every added or changed event is
    /// encoded first (so a refusal leaves the view as it was), then each removal takes the
    /// event from the person who held it (a no-op when the view never had it), then the
    /// events enter under their current persons. Returns the events that entered. After an
    /// error the view must be rebuilt: the append is refused whole, but removals were done.
    pub fn apply(&mut self, changes: Changes) -> Result<usize, ProjectionError> {
        let mut batch: Vec<NewEvent> = Vec::with_capacity(changes.events.len());
        self.set_aside += encode_all(
            &mut self.projection,
            &mut self.persons,
            &self.properties,
            &changes.events,
            &mut batch,
        );
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
        self.projection.append(&batch)?;
        self.positions = changes.positions;
        Ok(batch.len())
    }
}
