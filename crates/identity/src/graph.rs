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

use uuid::Uuid;

use crate::domain::{IdentifierKey, ResolveItem};
use crate::rules::CompiledRules;
use crate::timeline;

#[path = "graph_types.rs"]
mod types;

pub use types::*;

/// A set of identifiers of the item that would join as one.
#[derive(Debug, Clone)]
struct Component {
    rank: u32,
    person: Option<Uuid>,
    keys: Vec<IdentifierKey>,
    /// Known only through phones its person has not used for long.
    stale: bool,
    /// Known only through weak values seen with other persons too.
    contested: bool,
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
        let outcome = if options.reassignment {
            let (outcome, what) = crate::reassign::record(
                index, item, &mut view, &redirect, rules, &mut mint, &mut out,
            );
            out.reassignments.push(what);
            outcome
        } else {
            plan_item(
                index,
                item,
                &mut view,
                &mut redirect,
                rules,
                options,
                &mut mint,
                &mut out,
            )
        };
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

/// The person `person` ended in after the merges planned so far.
pub(crate) fn find(redirect: &HashMap<Uuid, Uuid>, mut person: Uuid) -> Uuid {
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
#[expect(
    clippy::too_many_lines,
    reason = "the linking rules of one item in the order they apply (blocked, shared, unique conflicts, as-of phones, merges); each rule needs what the earlier ones decided"
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
                    contested: true,
                });
                component.rank = component.rank.min(limits.rank);
                component.keys.push(key.clone());
                component.stale &= stale;
                component.contested &= timeline::is_contested(key, known, owner, redirect, rules);
            }
            None => components.push(Component {
                rank: limits.rank,
                person: None,
                keys: vec![key.clone()],
                stale: false,
                contested: false,
            }),
        }
    }
    components.extend(by_person.into_values());
    // A weak value already seen with another person than its holder (a
    // second card holder on a family phone, under a limit that lets it be
    // shared by a few) still names its holder alone, but never brings the
    // event's other identifiers to the holder: which of them is there is
    // unknown. It only counts the event's person as seen with it.
    let mut bypassed: Vec<IdentifierKey> = Vec::new();
    if components.iter().any(|c| !c.contested) {
        for component in components.iter().filter(|c| c.contested) {
            bypassed.extend(component.keys.iter().cloned());
        }
        components.retain(|c| !c.contested);
    }
    // Strongest first; at equal rank existing persons (oldest first) before
    // new identifiers, so an event goes with who it already knows. Persons
    // known only through a number they have not used for long come last,
    // whatever its rank: the silent number is the weakest evidence on the
    // event, so where it conflicts with the event's other identifiers it is
    // the number that changes hands (see `timeline`), not the others that
    // are refused from their own person.
    components.sort_by(|a, b| {
        (a.stale, a.rank, a.person.is_none(), a.person, &a.keys).cmp(&(
            b.stale,
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
    for key in &bypassed {
        mark_seen(key, person, index, view, redirect, rules, out);
    }
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
                timeline::hand_over(&component.keys, other, person, item, view, out);
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
    timeline::record_use(&item.keys, person, item, view, redirect, out);
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
    // In type order, so the reason reported (and whether a review item is
    // opened) never depends on a hash map's order.
    let mut counts: Vec<(String, u32)> = component_counts(component, view).into_iter().collect();
    counts.sort();
    for (id_type, n) in counts {
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
pub(crate) mod tests;
