//! Weak identifiers over time: a phone, an email, a device or an anonymous id
//! may belong to one person for a while and to another afterwards (a
//! recycled phone number), or to several persons at once (a family phone).
//! Decided without gRPC, SQL or Redis; `graph` applies it.
//!
//! The rule, for a weak value (a type the rules do not mark unique) shown on
//! an event with a unique identifier (member card, CRM id, UnionID, user id:
//! whatever the tenant's rules mark unique) of a type its holder holds a
//! different value of, which is the evidence of two different persons:
//!
//! - **Concurrent use is sharing.** If the holder used the value within
//!   [`HANDOVER_GAP`] of the event, both persons use it: the link is refused
//!   (audited; a review item when two existing persons meet) and the value is
//!   counted as seen with the other person. Past its type's limit (one person
//!   for phones by default) it is shared and names nobody, so a family's
//!   phone never merges the family, and an event carrying only it resolves
//!   to no one. Where a tenant lets a few persons share a value (a higher
//!   `max_persons_per_value`), a value seen with a second person still
//!   names its holder when alone, but no longer brings an event's other
//!   identifiers to the holder (`is_contested`).
//! - **Handover.** If the holder has not used it for at least the gap, and
//!   the value is of a type that changes hands ([`RECYCLED_TYPES`]: a phone
//!   number the carrier gave out again), it now belongs to the event's
//!   person, from the event's instant on. The persons are not merged; the
//!   refusal is audited without a review item. Events observed before the
//!   handover still resolve to the previous holder (as of their time),
//!   events after it to the new one.
//!
//! Without a unique identifier of a conflicting type on the event nothing
//! changes: a returning customer's phone still joins what it is seen with.
//! Without an `observed_at` on the event nothing is stale and nothing is
//! handed over: time is the only evidence of a handover.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::domain::{IdentifierKey, ResolveItem};
use crate::graph::{GraphPlan, GraphView, Handover, Known};
use crate::rules::CompiledRules;

/// The types whose values change hands: carriers give a phone number out
/// again. Devices, cookies and anonymous ids do not change hands, they are
/// shared (a store iPad), which "seen with" limits already handle: handing
/// them over would let a shared device hop from customer to customer.
pub const RECYCLED_TYPES: [&str; 1] = ["phone"];

/// How long a weak value must go unused by its holder before another
/// person's unique identifier can take it over (carriers keep a number
/// unused for at least this long before giving it out again).
pub const HANDOVER_GAP: TimeDelta = TimeDelta::days(30);

/// How far an event must be past a value's recorded last use before the
/// last use is written again: keeps repeated events of a day read-only.
pub const LAST_SEEN_STEP: TimeDelta = TimeDelta::days(1);

/// Whether `known` (held by a person who holds a unique identifier, as
/// `holder_has_unique` says) went unused long enough before `at` that it
/// may have changed hands. Only a unique-type conflict on the event decides
/// that it did.
pub fn stale(
    key: &IdentifierKey,
    known: &Known,
    at: Option<DateTime<Utc>>,
    holder_has_unique: bool,
    rules: &CompiledRules,
) -> bool {
    let limits = rules.limits(&key.id_type);
    if !RECYCLED_TYPES.contains(&key.id_type.as_str())
        || limits.unique
        || limits.never_merge
        || !holder_has_unique
    {
        return false;
    }
    match (known.last_seen, at) {
        (Some(last), Some(at)) => at - last >= HANDOVER_GAP,
        _ => false,
    }
}

/// The person `known` named at `at`: its previous holder for an event
/// observed before it was handed over, its holder otherwise. The flag says
/// whether the previous holder was chosen.
pub fn holder_at(known: &Known, at: Option<DateTime<Utc>>) -> (Uuid, bool) {
    match (known.held_since, known.previous, at) {
        (Some(since), Some(previous), Some(at)) if at < since => (previous, true),
        _ => (known.person_id, false),
    }
}

/// Whether a weak `key` (held by `owner`) was seen with another person:
/// under a limit of more than one person it still names its holder, but no
/// longer bridges (see `graph`). Unique types are never contested this way.
pub fn is_contested(
    key: &IdentifierKey,
    known: &Known,
    owner: Uuid,
    redirect: &HashMap<Uuid, Uuid>,
    rules: &CompiledRules,
) -> bool {
    !rules.limits(&key.id_type).unique
        && known
            .seen_with
            .iter()
            .any(|p| crate::graph::find(redirect, *p) != owner)
}

/// Whether `item` is a use of a value that changes hands: a phone with the
/// instant it was seen. Such an item is always planned, never answered from
/// the cache alone, because its use must be recorded (it is what tells a
/// family still sharing the number from a holder who gave it up) and
/// because who the number names depends on that instant.
pub fn records_use(item: &ResolveItem) -> bool {
    item.observed_at.is_some()
        && item
            .keys
            .iter()
            .any(|k| RECYCLED_TYPES.contains(&k.id_type.as_str()))
}

/// Whether a sighting at `at` should be written as the value's last use.
pub fn advances(known: &Known, at: Option<DateTime<Utc>>) -> bool {
    match (known.last_seen, at) {
        (None, Some(_)) => true,
        (Some(last), Some(at)) => at - last >= LAST_SEEN_STEP,
        _ => false,
    }
}

/// Whether a person with these per-type counts holds a unique identifier.
pub fn holds_unique<'a>(
    counts: impl IntoIterator<Item = (&'a String, &'a u32)>,
    rules: &CompiledRules,
) -> bool {
    counts
        .into_iter()
        .any(|(id_type, n)| *n > 0 && rules.limits(id_type).unique)
}

/// Hands `keys` (stale phones of `from`) over to `person` as of the item's
/// instant.
pub(crate) fn hand_over(
    keys: &[IdentifierKey],
    from: Uuid,
    person: Uuid,
    item: &ResolveItem,
    view: &mut GraphView,
    out: &mut GraphPlan,
) {
    let Some(at) = item.observed_at else { return };
    for key in keys {
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

/// Records the later use of the item's phones that stayed with `person`.
pub(crate) fn record_use(
    touched: &[IdentifierKey],
    person: Uuid,
    item: &ResolveItem,
    view: &mut GraphView,
    redirect: &HashMap<Uuid, Uuid>,
    out: &mut GraphPlan,
) {
    let Some(at) = item.observed_at else { return };
    // Only the types that change hands need their last use: a write per
    // value and day, not per identifier of every event.
    for key in touched
        .iter()
        .filter(|k| RECYCLED_TYPES.contains(&k.id_type.as_str()))
    {
        if let Some(known) = view.owners.get_mut(key)
            && crate::graph::find(redirect, known.person_id) == person
            && advances(known, Some(at))
        {
            known.last_seen = Some(at);
            out.last_seen.push((key.clone(), at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Rules;

    fn at(days: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_780_000_000 + days * 86_400, 0)
    }

    #[test]
    fn only_weak_values_of_unique_holders_go_stale_after_the_gap() {
        let rules = CompiledRules::new(&Rules::default());
        let phone = IdentifierKey::normalise("phone", "", "k1:00");
        let card = IdentifierKey::normalise("member_card", "", "m-1");
        let known = Known {
            person_id: Uuid::from_u128(1),
            last_seen: at(0),
            ..Known::default()
        };
        assert!(stale(&phone, &known, at(30), true, &rules));
        assert!(!stale(&phone, &known, at(29), true, &rules));
        assert!(
            !stale(&phone, &known, at(30), false, &rules),
            "weak-only holder"
        );
        assert!(
            !stale(&card, &known, at(90), true, &rules),
            "unique types stay"
        );
        assert!(
            !stale(&phone, &known, None, true, &rules),
            "no time, no evidence"
        );
    }

    #[test]
    fn events_before_a_handover_name_the_previous_holder() {
        let known = Known {
            person_id: Uuid::from_u128(2),
            previous: Some(Uuid::from_u128(1)),
            held_since: at(10),
            ..Known::default()
        };
        assert_eq!(holder_at(&known, at(9)), (Uuid::from_u128(1), true));
        assert_eq!(holder_at(&known, at(10)), (Uuid::from_u128(2), false));
        assert_eq!(holder_at(&known, None), (Uuid::from_u128(2), false));
    }
}
