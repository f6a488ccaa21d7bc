//! Who reached a step and who dropped at it, in a stable order for paginated listings.
//!
//! Only counted persons are recorded (excluded persons are in no step). Each record keeps the
//! person's furthest step, the counted attempt's start and furthest-step times, and their
//! breakdown values; the index is sorted by person id so pages are stable and resumable from
//! the last id returned.

use super::evaluate::PersonOutcome;

/// One counted person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PersonRecord {
    person: u64,
    furthest: usize,
    start_time: i64,
    furthest_time: i64,
    values_at: usize,
    values_len: usize,
}

/// The persons a partition counted, in the order they came.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PersonLog {
    records: Vec<PersonRecord>,
    values: Vec<u32>,
}

impl PersonLog {
    pub(crate) fn record(&mut self, person: u64, outcome: &PersonOutcome) {
        let times = outcome.counted_step_times();
        let (Some(first), Some(last)) = (times.first(), times.last()) else {
            return;
        };
        self.records.push(PersonRecord {
            person,
            furthest: times.len(),
            start_time: *first,
            furthest_time: *last,
            values_at: self.values.len(),
            values_len: outcome.values.len(),
        });
        self.values.extend_from_slice(&outcome.values);
    }

    pub(crate) fn merge(&mut self, other: PersonLog) {
        let offset = self.values.len();
        self.values.extend_from_slice(&other.values);
        self.records
            .extend(other.records.into_iter().map(|r| PersonRecord {
                values_at: r.values_at + offset,
                ..r
            }));
    }

    pub(crate) fn into_index(mut self) -> PersonIndex {
        self.records.sort_by_key(|r| (r.person, r.start_time));
        PersonIndex { log: self }
    }
}

/// Which persons a listing asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PersonSelection {
    /// Persons whose furthest step is at least this 1-based step.
    Reached(usize),
    /// Persons whose furthest step is exactly this 1-based step minus one (step ≥ 2).
    DroppedAt(usize),
}

/// A listing request: the selection, an optional breakdown value, and the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersonQuery {
    /// Reached or dropped at a step.
    pub selection: PersonSelection,
    /// Only persons counted under this breakdown code.
    pub value: Option<u32>,
    /// Only persons with a larger id (the last id of the previous page).
    pub after: Option<u64>,
    /// Most persons to return.
    pub limit: usize,
}

/// A person in a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedPerson {
    /// The person id.
    pub person: u64,
    /// Their furthest step.
    pub furthest_step: usize,
    /// Time of the counted attempt's step-1 event.
    pub start_time: i64,
    /// Time of its furthest step's event.
    pub furthest_step_time: i64,
}

/// A page of persons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonPage {
    /// Up to `limit` persons, by ascending id.
    pub persons: Vec<ListedPerson>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_after: Option<u64>,
    /// All persons matching the selection and value, over every page.
    pub total: u64,
}

/// The counted persons of a funnel, sorted by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonIndex {
    log: PersonLog,
}

impl PersonIndex {
    /// Number of counted persons.
    pub fn len(&self) -> usize {
        self.log.records.len()
    }

    /// Whether no person was counted.
    pub fn is_empty(&self) -> bool {
        self.log.records.is_empty()
    }

    /// One page of the persons the query selects.
    pub fn list(&self, query: &PersonQuery) -> PersonPage {
        let selected = |r: &&PersonRecord| {
            let in_step = match query.selection {
                PersonSelection::Reached(step) => r.furthest >= step,
                PersonSelection::DroppedAt(step) => step >= 2 && r.furthest + 1 == step,
            };
            in_step
                && query.value.is_none_or(|v| {
                    self.log.values[r.values_at..r.values_at + r.values_len].contains(&v)
                })
        };
        let total = self.log.records.iter().filter(selected).count() as u64;
        let start = query.after.map_or(0, |after| {
            self.log.records.partition_point(|r| r.person <= after)
        });
        let mut matching = self.log.records[start..].iter().filter(selected);
        let persons: Vec<ListedPerson> = matching
            .by_ref()
            .take(query.limit)
            .map(|r| ListedPerson {
                person: r.person,
                furthest_step: r.furthest,
                start_time: r.start_time,
                furthest_step_time: r.furthest_time,
            })
            .collect();
        let more = matching.next().is_some();
        let next_after = if more {
            persons.last().map(|p| p.person)
        } else {
            None
        };
        PersonPage {
            persons,
            next_after,
            total,
        }
    }
}
