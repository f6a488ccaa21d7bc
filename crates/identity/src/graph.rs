//! The resolution rule with merges, decided without gRPC, SQL or Redis.
//!
//! One item is the set of identifiers one event (or one assertion) showed
//! together. Its identifiers are split into components: each person already
//! owning some of them, and each identifier not yet known. Components are
//! taken strongest first (by the tenant's identifier priority) and folded
//! into one cluster as long as the rules allow: joining two known persons is
//! a merge into the oldest, joining an unknown identifier is a link. A
//! component the rules refuse stays apart (an unknown identifier refused goes
//! to a second new person), the refusal is recorded, and the identifiers
//! left on another person than the item's are remembered as "seen with" it:
//! a value seen with more persons than its type allows stops linking at all
//! (a store iPad, a shared browser, a family phone).
//!
//! Blocked values never link; identifiers of erased persons (suppressed) are
//! ignored. An item made only of those resolves to no person. So does an
//! item made only of shared values: a value seen with more persons than its
//! type allows says nothing about which of them is there, so an event
//! carrying nothing else (the anonymous screen before a customer logs in on
//! a store iPad) belongs to nobody, while an event carrying a personal
//! identifier next to it goes with that identifier's person. The moment a
//! value becomes shared is reported (`GraphPlan::newly_shared`), so the
//! events resolved through it while it still looked personal can be
//! detached from its owner.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{IdentifierKey, ResolveItem};
use crate::rules::CompiledRules;
use crate::timeline;

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
}

impl GraphPlan {
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

/// A set of identifiers of the item that would join as one.
#[derive(Debug, Clone)]
struct Component {
    rank: u32,
    person: Option<Uuid>,
    keys: Vec<IdentifierKey>,
    /// Known only through phones its person has not used for long.
    stale: bool,
}

#[derive(Debug, Default)]
struct Cluster {
    persons: Vec<Uuid>,
    fresh: Vec<IdentifierKey>,
    counts: HashMap<String, u32>,
    mergeable: bool,
}

/// Applies the rules to `items` in order over `view`. Later items see what
/// earlier ones decided, exactly as if resolved one by one. `mint` makes
/// new person ids (UUID v7: younger than every existing person).
pub fn plan<'a>(
    items: impl IntoIterator<Item = &'a ResolveItem>,
    mut view: GraphView,
    rules: &CompiledRules,
    options: Options,
    mut mint: impl FnMut() -> Uuid,
) -> GraphPlan {
    let mut out = GraphPlan::default();
    let mut redirect: HashMap<Uuid, Uuid> = HashMap::new();
    let mut created: HashSet<Uuid> = HashSet::new();
    for (index, item) in items.into_iter().enumerate() {
        let outcome = plan_item(
            index,
            item,
            &mut view,
            &mut redirect,
            rules,
            options,
            &mut mint,
            &mut out,
        );
        if let Some(person) = outcome.person_id
            && outcome.created
        {
            created.insert(person);
        }
        out.results.push(outcome);
    }
    // Handovers name the persons the batch's merges leave, which is where
    // the merges (applied before them) leave the value.
    for handover in &mut out.handovers {
        handover.from = find(&redirect, handover.from);
        handover.to = find(&redirect, handover.to);
    }
    // Report where each item ended after every merge of the batch.
    for result in &mut out.results {
        if let Some(person) = result.person_id {
            let last = find(&redirect, person);
            result.person_id = Some(last);
            result.created = created.contains(&person) || created.contains(&last);
        }
    }
    out
}

fn find(redirect: &HashMap<Uuid, Uuid>, mut person: Uuid) -> Uuid {
    while let Some(next) = redirect.get(&person) {
        person = *next;
    }
    person
}

/// Whether a linked value is shared: seen with more persons than its type
/// allows, so that alone it names none of them.
pub fn is_shared(key: &IdentifierKey, known: &Known, rules: &CompiledRules) -> bool {
    saturated(key, known, known.person_id, rules)
}

fn saturated(key: &IdentifierKey, known: &Known, owner: Uuid, rules: &CompiledRules) -> bool {
    let others = known
        .seen_with
        .iter()
        .filter(|p| **p != owner && **p != known.person_id)
        .collect::<HashSet<_>>()
        .len();
    let limit = rules.limits(&key.id_type).max_persons_per_value;
    1 + u32::try_from(others).unwrap_or(u32::MAX) > limit
}

#[allow(
    clippy::too_many_arguments,
    reason = "the planner's state is threaded explicitly to keep it pure"
)]
fn plan_item(
    index: usize,
    item: &ResolveItem,
    view: &mut GraphView,
    redirect: &mut HashMap<Uuid, Uuid>,
    rules: &CompiledRules,
    options: Options,
    mint: &mut impl FnMut() -> Uuid,
    out: &mut GraphPlan,
) -> Outcome {
    let mut refused = false;
    let mut blocked = Vec::new();
    let mut suppressed = false;
    let mut shared = false;
    let mut by_person: HashMap<Uuid, Component> = HashMap::new();
    let mut components: Vec<Component> = Vec::new();
    for key in &item.keys {
        let limits = rules.limits(&key.id_type);
        if rules.is_blocked(key) {
            blocked.push(key.clone());
            continue;
        }
        if view.suppressed.contains(key) {
            suppressed = true;
            continue;
        }
        match view.owners.get(key) {
            Some(known) => {
                let (holder, as_of) = timeline::holder_at(known, item.observed_at);
                let owner = find(redirect, holder);
                if !as_of && saturated(key, known, owner, rules) {
                    // Shared: evidence of nobody in particular.
                    shared = true;
                    continue;
                }
                // A phone its holder has not used for long may have changed
                // hands (see `timeline`).
                let stale =
                    !as_of && !options.explicit && is_stale(key, known, owner, item, view, rules);
                let component = by_person.entry(owner).or_insert_with(|| Component {
                    rank: limits.rank,
                    person: Some(owner),
                    keys: Vec::new(),
                    stale: true,
                });
                component.rank = component.rank.min(limits.rank);
                component.keys.push(key.clone());
                component.stale &= stale;
            }
            None => components.push(Component {
                rank: limits.rank,
                person: None,
                keys: vec![key.clone()],
                stale: false,
            }),
        }
    }
    components.extend(by_person.into_values());
    // Strongest first; at equal rank existing persons (oldest first) before
    // new identifiers, so an event goes with who it already knows.
    components.sort_by(|a, b| {
        (a.rank, a.person.is_none(), a.person, &a.keys).cmp(&(
            b.rank,
            b.person.is_none(),
            b.person,
            &b.keys,
        ))
    });
    if !blocked.is_empty() && !components.is_empty() {
        refused = true;
    }

    let mut cluster = Cluster::default();
    let mut rejected: Vec<(Component, RefusalReason)> = Vec::new();
    for component in components {
        match check(&cluster, &component, view, rules, options) {
            Ok(()) => absorb(&mut cluster, component, view, rules),
            Err(reason) => rejected.push((component, reason)),
        }
    }

    // The item's person: the oldest known person of the cluster, or a new
    // one for its new identifiers, or nobody (nothing linkable).
    let mut new_person = false;
    let person = if let Some(oldest) = cluster.persons.iter().min().copied() {
        Some(oldest)
    } else if !cluster.fresh.is_empty() {
        new_person = true;
        let p = mint();
        out.new_persons.push(p);
        Some(p)
    } else {
        None
    };
    let Some(person) = person else {
        let why = if suppressed {
            Unresolved::Suppressed
        } else if shared {
            Unresolved::Shared
        } else {
            Unresolved::Blocked
        };
        return Outcome {
            person_id: None,
            created: false,
            refused: refused || !blocked.is_empty(),
            unresolved: Some(why),
        };
    };
    commit_cluster(&cluster, person, index, item, view, redirect, out);
    // Refusals of the item come after the uses are recorded below, so a
    // value handed over is recorded once, by the handover.

    // Refused new identifiers make a second person among themselves.
    let mut second = Cluster::default();
    let mut second_refused = Vec::new();
    for (component, reason) in rejected {
        refused = true;
        match component.person {
            Some(other)
                if reason == RefusalReason::UniqueTypeConflict
                    && component.stale
                    && item.observed_at.is_some() =>
            {
                // Not a family sharing the phone (then its holder would have
                // used it lately) but a number that changed hands.
                hand_over(&component, other, person, item, view, out);
                out.refusals.push(Refusal {
                    person_id: Some(person),
                    others: vec![other],
                    reason,
                    keys: item.keys.clone(),
                    item: index,
                    review: false,
                });
            }
            Some(other) => {
                let review = reason == RefusalReason::UniqueTypeConflict
                    && !cluster.persons.is_empty()
                    && !options.explicit;
                out.refusals.push(Refusal {
                    person_id: Some(person),
                    others: vec![other],
                    reason,
                    keys: item.keys.clone(),
                    item: index,
                    review,
                });
                for key in &component.keys {
                    mark_seen(key, person, index, view, redirect, rules, out);
                }
            }
            None => {
                // A refused new identifier the second person cannot take
                // either stays unlinked.
                if check(&second, &component, view, rules, options).is_ok() {
                    absorb(&mut second, component, view, rules);
                }
                second_refused.push(reason);
            }
        }
    }
    if !second.fresh.is_empty() {
        let other = mint();
        out.new_persons.push(other);
        // The refused values are new: they name their own person, and are
        // not shared because a stronger identifier of another person was
        // on the same event (the refusal keeps that evidence).
        for key in &second.fresh {
            out.new_links.push(NewLink {
                key: key.clone(),
                person_id: other,
                item: index,
                seen_with: Vec::new(),
            });
            view.owners.insert(
                key.clone(),
                Known {
                    person_id: other,
                    last_seen: item.observed_at,
                    ..Known::default()
                },
            );
        }
        view.type_counts.insert(other, second.counts.clone());
        out.refusals.push(Refusal {
            person_id: Some(person),
            others: vec![other],
            reason: second_refused
                .first()
                .copied()
                .unwrap_or(RefusalReason::MaxValuesPerPerson),
            keys: item.keys.clone(),
            item: index,
            review: false,
        });
    }
    record_use(&item.keys, person, item, view, redirect, out);
    if !blocked.is_empty() {
        out.refusals.push(Refusal {
            person_id: Some(person),
            others: Vec::new(),
            reason: RefusalReason::BlockedValue,
            keys: blocked,
            item: index,
            review: false,
        });
    }
    Outcome {
        person_id: Some(person),
        created: new_person,
        refused,
        unresolved: None,
    }
}

/// Whether `key` (held by `owner`) went unused long enough before the item
/// that it may have changed hands.
fn is_stale(
    key: &IdentifierKey,
    known: &Known,
    owner: Uuid,
    item: &ResolveItem,
    view: &GraphView,
    rules: &CompiledRules,
) -> bool {
    let holder_has_unique = view
        .type_counts
        .get(&owner)
        .is_some_and(|counts| timeline::holds_unique(counts, rules));
    timeline::stale(key, known, item.observed_at, holder_has_unique, rules)
}

/// Hands the values of `component` (stale phones of `from`) over to
/// `person` as of the item's instant (see `timeline`).
fn hand_over(
    component: &Component,
    from: Uuid,
    person: Uuid,
    item: &ResolveItem,
    view: &mut GraphView,
    out: &mut GraphPlan,
) {
    let Some(at) = item.observed_at else { return };
    for key in &component.keys {
        for (who, delta) in [(from, -1i64), (person, 1)] {
            let count = view
                .type_counts
                .entry(who)
                .or_default()
                .entry(key.id_type.clone())
                .or_insert(0);
            *count = u32::try_from((i64::from(*count) + delta).max(0)).unwrap_or(0);
        }
        view.owners.insert(
            key.clone(),
            Known {
                person_id: person,
                seen_with: Vec::new(),
                last_seen: Some(at),
                held_since: Some(at),
                previous: Some(from),
            },
        );
        out.handovers.push(Handover {
            key: key.clone(),
            from,
            to: person,
            at,
        });
    }
}

/// Writes the later use of the item's values that stayed with `person`.
fn record_use(
    touched: &[IdentifierKey],
    person: Uuid,
    item: &ResolveItem,
    view: &mut GraphView,
    redirect: &HashMap<Uuid, Uuid>,
    out: &mut GraphPlan,
) {
    let Some(at) = item.observed_at else { return };
    for key in touched {
        if let Some(known) = view.owners.get_mut(key)
            && find(redirect, known.person_id) == person
            && timeline::advances(known, Some(at))
        {
            known.last_seen = Some(at);
            out.last_seen.push((key.clone(), at));
        }
    }
}

fn check(
    cluster: &Cluster,
    component: &Component,
    view: &GraphView,
    rules: &CompiledRules,
    options: Options,
) -> Result<(), RefusalReason> {
    if cluster.persons.is_empty() && cluster.fresh.is_empty() {
        return Ok(());
    }
    if let Some(other) = component.person
        && !cluster.persons.is_empty()
    {
        let joins = component
            .keys
            .iter()
            .any(|k| !rules.limits(&k.id_type).never_merge);
        if !joins || !cluster.mergeable {
            return Err(RefusalReason::TypeCannotMerge);
        }
        if !options.override_split
            && cluster
                .persons
                .iter()
                .any(|p| view.separations.contains(&pair(*p, other)))
        {
            return Err(RefusalReason::PreviouslySplit);
        }
    }
    for (id_type, n) in component_counts(component, view) {
        let limits = rules.limits(&id_type);
        let have = cluster.counts.get(&id_type).copied().unwrap_or(0);
        if have.saturating_add(n) > limits.max_values_per_person {
            return Err(if limits.unique {
                RefusalReason::UniqueTypeConflict
            } else {
                RefusalReason::MaxValuesPerPerson
            });
        }
    }
    Ok(())
}

fn component_counts(component: &Component, view: &GraphView) -> HashMap<String, u32> {
    match component.person {
        Some(person) => view.type_counts.get(&person).cloned().unwrap_or_default(),
        None => component
            .keys
            .iter()
            .map(|k| (k.id_type.clone(), 1))
            .collect(),
    }
}

fn absorb(cluster: &mut Cluster, component: Component, view: &GraphView, rules: &CompiledRules) {
    for (id_type, n) in component_counts(&component, view) {
        *cluster.counts.entry(id_type).or_insert(0) += n;
    }
    match component.person {
        Some(person) => {
            cluster.mergeable |= component
                .keys
                .iter()
                .any(|k| !rules.limits(&k.id_type).never_merge);
            cluster.persons.push(person);
        }
        None => cluster.fresh.extend(component.keys),
    }
}

/// The persons a run of merges (survivor, absorbed) absorbs, each with the survivor it ends
/// at: a survivor absorbed by a later merge hands on what it took, so applying the pairs at
/// once leaves what applying the merges in order leaves. A survivor is never absorbed by
/// itself, and a cycle (which the planner never produces) stops at the person it returns to.
pub fn final_survivors(merges: &[(Uuid, &[Uuid])]) -> (Vec<Uuid>, Vec<Uuid>) {
    let mut into: HashMap<Uuid, Uuid> = HashMap::new();
    let mut order: Vec<Uuid> = Vec::new();
    for (survivor, absorbed) in merges {
        for person in absorbed.iter().filter(|p| *p != survivor) {
            if into.insert(*person, *survivor).is_none() {
                order.push(*person);
            }
        }
    }
    let end_of = |start: Uuid| {
        let mut at = start;
        for _ in 0..=into.len() {
            match into.get(&at) {
                Some(next) if *next != start => at = *next,
                _ => break,
            }
        }
        at
    };
    let survivors: Vec<Uuid> = order.iter().map(|p| end_of(*p)).collect();
    order
        .into_iter()
        .zip(survivors)
        .filter(|(absorbed, survivor)| absorbed != survivor)
        .unzip()
}

fn commit_cluster(
    cluster: &Cluster,
    person: Uuid,
    index: usize,
    item: &ResolveItem,
    view: &mut GraphView,
    redirect: &mut HashMap<Uuid, Uuid>,
    out: &mut GraphPlan,
) {
    let mut absorbed: Vec<Uuid> = cluster
        .persons
        .iter()
        .copied()
        .filter(|p| *p != person)
        .collect();
    absorbed.sort();
    if !absorbed.is_empty() {
        for other in &absorbed {
            redirect.insert(*other, person);
            view.type_counts.remove(other);
        }
        out.merges.push(Merge {
            survivor: person,
            absorbed,
            item: index,
            keys: item.keys.clone(),
        });
    }
    view.type_counts.insert(person, cluster.counts.clone());
    for key in &cluster.fresh {
        out.new_links.push(NewLink {
            key: key.clone(),
            person_id: person,
            item: index,
            seen_with: Vec::new(),
        });
        view.owners.insert(
            key.clone(),
            Known {
                person_id: person,
                last_seen: item.observed_at,
                ..Known::default()
            },
        );
    }
}

fn mark_seen(
    key: &IdentifierKey,
    person: Uuid,
    item: usize,
    view: &mut GraphView,
    redirect: &HashMap<Uuid, Uuid>,
    rules: &CompiledRules,
    out: &mut GraphPlan,
) {
    if let Some(known) = view.owners.get_mut(key)
        && !known.seen_with.contains(&person)
    {
        let owner = find(redirect, known.person_id);
        let was_shared = saturated(key, known, owner, rules);
        known.seen_with.push(person);
        out.seen_with.push((key.clone(), person));
        if !was_shared && saturated(key, known, owner, rules) {
            out.newly_shared.push(NewlyShared {
                key: key.clone(),
                owner,
                item,
            });
        }
    }
}

/// A pair of persons, smaller id first.
pub fn pair(a: Uuid, b: Uuid) -> (Uuid, Uuid) {
    if a <= b { (a, b) } else { (b, a) }
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
