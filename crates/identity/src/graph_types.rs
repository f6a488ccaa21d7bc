//! What the resolution rule decides: the view of the graph it reads, and the
//! plan (answers, links, merges, refusals, handovers) it hands to `store`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::IdentifierKey;

/// Why a link or merge was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The value was seen with more persons than its type allows.
    MaxPersonsPerValue,
    /// The person would hold too many values of a type.
    MaxValuesPerPerson,
    /// Both persons hold a different value of a unique type.
    UniqueTypeConflict,
    /// The value is blocked.
    BlockedValue,
    /// The persons were split apart before.
    PreviouslySplit,
    /// Only never-merge types connect the persons.
    TypeCannotMerge,
}

impl RefusalReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::MaxPersonsPerValue => "max_persons_per_value",
            RefusalReason::MaxValuesPerPerson => "max_values_per_person",
            RefusalReason::UniqueTypeConflict => "unique_type_conflict",
            RefusalReason::BlockedValue => "blocked_value",
            RefusalReason::PreviouslySplit => "previously_split",
            RefusalReason::TypeCannotMerge => "type_cannot_merge",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            RefusalReason::MaxPersonsPerValue,
            RefusalReason::MaxValuesPerPerson,
            RefusalReason::UniqueTypeConflict,
            RefusalReason::BlockedValue,
            RefusalReason::PreviouslySplit,
            RefusalReason::TypeCannotMerge,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }
}

/// What the graph knows about one identifier of the batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Known {
    /// Its person.
    pub person_id: Uuid,
    /// Other persons it was seen with on refused events.
    pub seen_with: Vec<Uuid>,
    /// When its person last used it (to the day), if known.
    pub last_seen: Option<DateTime<Utc>>,
    /// When it was handed over to its person (see `timeline`).
    pub held_since: Option<DateTime<Utc>>,
    /// Who held it before the handover (the live person that id stands for).
    pub previous: Option<Uuid>,
}

/// The part of the graph a batch touches, read inside its transaction.
#[derive(Debug, Clone, Default)]
pub struct GraphView {
    /// Owners of the batch's known identifiers.
    pub owners: HashMap<IdentifierKey, Known>,
    /// How many identifiers of each type every owning person holds.
    pub type_counts: HashMap<Uuid, HashMap<String, u32>>,
    /// Pairs of persons a split separated, smaller id first.
    pub separations: HashSet<(Uuid, Uuid)>,
    /// Identifiers of erased persons.
    pub suppressed: HashSet<IdentifierKey>,
}

/// How the links of a batch were asserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// An explicit assertion (LinkIdentifiers) rather than events.
    pub explicit: bool,
    /// Join persons even if a split separated them.
    pub override_split: bool,
    /// Each item is a number the carrier gave out again, with the instant
    /// its current subscriber got it (see `reassign`), not a sighting.
    pub reassignment: bool,
}

/// An identifier to link to a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    /// The identifier.
    pub key: IdentifierKey,
    /// Its person.
    pub person_id: Uuid,
    /// The item that showed it.
    pub item: usize,
    /// Persons it was seen with already (refused with the item's person).
    pub seen_with: Vec<Uuid>,
}

/// Persons joined into the oldest of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    /// The surviving (oldest) person.
    pub survivor: Uuid,
    /// The persons merged into it.
    pub absorbed: Vec<Uuid>,
    /// The item that showed the evidence.
    pub item: usize,
    /// The identifiers of that item.
    pub keys: Vec<IdentifierKey>,
}

/// A link or merge a rule refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The person the item went with (none when nothing resolved).
    pub person_id: Option<Uuid>,
    /// The persons not joined to it.
    pub others: Vec<Uuid>,
    /// Why.
    pub reason: RefusalReason,
    /// The identifiers of the item.
    pub keys: Vec<IdentifierKey>,
    /// The item.
    pub item: usize,
    /// Whether a human should look at it (two existing persons in conflict).
    pub review: bool,
}

/// Why an item resolved to no person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unresolved {
    /// Some identifier belongs to an erased person (the event must not
    /// recreate them).
    Suppressed,
    /// Every identifier is blocked.
    Blocked,
    /// Every linkable identifier is shared by more persons than allowed.
    Shared,
}

/// The answer for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The person, after every merge of the batch; `None` when no
    /// identifier of the item could name one (see `unresolved`).
    pub person_id: Option<Uuid>,
    /// Whether this batch created the person.
    pub created: bool,
    /// Whether a rule refused part of the item's links.
    pub refused: bool,
    /// Why `person_id` is `None`.
    pub unresolved: Option<Unresolved>,
}

impl Outcome {
    /// An item answered with `person`.
    pub fn resolved(person: Uuid) -> Self {
        Self {
            person_id: Some(person),
            created: false,
            refused: false,
            unresolved: None,
        }
    }
}

/// A value that stopped naming one person: seen with more persons than its
/// type allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewlyShared {
    /// The value.
    pub key: IdentifierKey,
    /// Its owner when it became shared (after the batch's merges so far):
    /// the person whose events made only of shared values must be detached.
    pub owner: Uuid,
    /// The item that showed it with one person too many.
    pub item: usize,
}

/// A weak value that changed hands (see `timeline`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// The value.
    pub key: IdentifierKey,
    /// Its holder until `at`.
    pub from: Uuid,
    /// Its holder from `at`.
    pub to: Uuid,
    /// The instant of the event that showed the new holder.
    pub at: DateTime<Utc>,
}

/// Everything a batch decides: answers and the writes behind them.
#[derive(Debug, Clone, Default)]
pub struct GraphPlan {
    /// One per item, in order.
    pub results: Vec<Outcome>,
    /// Persons to create.
    pub new_persons: Vec<Uuid>,
    /// Identifiers to link.
    pub new_links: Vec<NewLink>,
    /// Merges, in the order they must be applied.
    pub merges: Vec<Merge>,
    /// Refusals to record.
    pub refusals: Vec<Refusal>,
    /// Known identifiers newly seen with a person (key, person).
    pub seen_with: Vec<(IdentifierKey, Uuid)>,
    /// Values this batch made shared, in the order it did.
    pub newly_shared: Vec<NewlyShared>,
    /// Weak values that changed hands, in order.
    pub handovers: Vec<Handover>,
    /// Later uses of known values by their holder (key, instant).
    pub last_seen: Vec<(IdentifierKey, DateTime<Utc>)>,
    /// Under `Options::reassignment`, what each item's record did, in item
    /// order.
    pub reassignments: Vec<Reassigned>,
}

/// What recording that a number changed hands did (see `reassign`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reassigned {
    /// Handed from its holder to a new person as of the instant.
    HandedOver,
    /// Never seen: one new person holds it before the instant, another since.
    RecordedUnseen,
    /// Its holding already starts at or after the instant.
    AlreadyRecorded,
    /// Its holder used it at or after the instant; left as it is.
    UsedSince,
    /// Blocked, or an erased person's: left as it is.
    Ignored,
}

impl GraphPlan {
    /// Where the plan's merges leave each person they absorb (the last
    /// survivor of its chain).
    pub fn survivors(&self) -> HashMap<Uuid, Uuid> {
        let merges: Vec<(Uuid, &[Uuid])> = self
            .merges
            .iter()
            .map(|m| (m.survivor, m.absorbed.as_slice()))
            .collect();
        let (absorbed, survivors) = crate::graph::final_survivors(&merges);
        absorbed.into_iter().zip(survivors).collect()
    }

    /// Whether the plan writes nothing.
    pub fn is_read_only(&self) -> bool {
        self.new_persons.is_empty()
            && self.new_links.is_empty()
            && self.merges.is_empty()
            && self.refusals.is_empty()
            && self.seen_with.is_empty()
            && self.handovers.is_empty()
            && self.last_seen.is_empty()
    }
}
