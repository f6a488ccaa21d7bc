//! Numbers the carrier gave out again, decided without gRPC, SQL or Redis.
//!
//! Time alone cannot tell a recycled number's new subscriber from its first
//! holder coming back after a silence: when the newcomer shows nothing but
//! the number and an account the first holder never had, every rule of
//! `timeline` joins them. The carrier knows: a reassigned-number check
//! answers with the date the current subscriber got the number. Recorded
//! here, that date splits the number's uses by time like a handover
//! `timeline` found by itself: uses before it keep naming the earlier
//! holder (as of their instant), uses from it on name a new person that
//! joins whatever the number is next seen with.
//!
//! A number identity has not seen yet gets two new persons, one holding it
//! before the date and one since, so its uses name the right one whichever
//! arrives first. A holder who used the number at or after the date
//! (identity keeps last uses to the day) leaves the record unapplied: the
//! persons formed through those uses stand, and the caller is told.

use std::collections::HashMap;

use uuid::Uuid;

use crate::domain::ResolveItem;
use crate::graph::{GraphPlan, GraphView, Known, NewLink, Outcome, Reassigned, Unresolved, find};
use crate::rules::CompiledRules;
use crate::timeline;

/// Records one item (one phone key, observed at the instant its current
/// subscriber got it) over `view`; the outcome names the holder from that
/// instant on.
pub(crate) fn record(
    index: usize,
    item: &ResolveItem,
    view: &mut GraphView,
    redirect: &HashMap<Uuid, Uuid>,
    rules: &CompiledRules,
    mint: &mut impl FnMut() -> Uuid,
    out: &mut GraphPlan,
) -> (Outcome, Reassigned) {
    let ignored = |why| Outcome {
        person_id: None,
        created: false,
        refused: false,
        unresolved: Some(why),
    };
    // The adapter sends one phone key with its instant; anything else
    // records nothing.
    let (Some(at), [key]) = (item.observed_at, item.keys.as_slice()) else {
        return (ignored(Unresolved::Blocked), Reassigned::Ignored);
    };
    if rules.is_blocked(key) {
        return (ignored(Unresolved::Blocked), Reassigned::Ignored);
    }
    if view.suppressed.contains(key) {
        return (ignored(Unresolved::Suppressed), Reassigned::Ignored);
    }
    let (holder, fresh) = match view.owners.get(key) {
        Some(known) => {
            let holder = find(redirect, known.person_id);
            if known.held_since.is_some_and(|since| since >= at) {
                return (Outcome::resolved(holder), Reassigned::AlreadyRecorded);
            }
            if known.last_seen.is_some_and(|last| last >= at) {
                let outcome = Outcome {
                    refused: true,
                    ..Outcome::resolved(holder)
                };
                return (outcome, Reassigned::UsedSince);
            }
            (holder, false)
        }
        None => {
            // Its earlier holder is not known yet: a person of its own
            // takes the uses before the instant.
            let earlier = mint();
            out.new_persons.push(earlier);
            out.new_links.push(NewLink {
                key: key.clone(),
                person_id: earlier,
                item: index,
                seen_with: Vec::new(),
            });
            view.owners.insert(
                key.clone(),
                Known {
                    person_id: earlier,
                    ..Known::default()
                },
            );
            view.type_counts
                .entry(earlier)
                .or_default()
                .insert(key.id_type.clone(), 1);
            (earlier, true)
        }
    };
    let since = mint();
    out.new_persons.push(since);
    timeline::hand_over(std::slice::from_ref(key), holder, since, item, view, out);
    let outcome = Outcome {
        created: true,
        ..Outcome::resolved(since)
    };
    let what = if fresh {
        Reassigned::RecordedUnseen
    } else {
        Reassigned::HandedOver
    };
    (outcome, what)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::domain::IdentifierKey;
    use crate::graph::tests::minter;
    use crate::graph::{Options, plan};
    use crate::rules::Rules;

    fn at(days: i64) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_780_000_000 + days * 86_400, 0)
    }

    fn key(t: &str, v: &str) -> IdentifierKey {
        IdentifierKey::normalise(t, "", v)
    }

    fn item(day: i64, keys: &[(&str, &str)]) -> ResolveItem {
        ResolveItem {
            keys: keys.iter().map(|(t, v)| key(t, v)).collect(),
            observed_at: at(day),
            evidence_message_id: String::new(),
        }
    }

    const NOTICE: Options = Options {
        explicit: false,
        override_split: false,
        reassignment: true,
    };

    /// A number held by person 1 (with a UnionID), last used on `last_day`.
    fn held(last_day: i64) -> GraphView {
        let mut view = GraphView::default();
        let holder = Uuid::from_u128(1);
        for (t, v, last) in [
            ("phone", "k1:aa", at(last_day)),
            ("wechat_unionid", "u1", None),
        ] {
            view.owners.insert(
                key(t, v),
                Known {
                    person_id: holder,
                    last_seen: last,
                    ..Known::default()
                },
            );
            view.type_counts
                .entry(holder)
                .or_default()
                .insert(t.to_owned(), 1);
        }
        view
    }

    /// Plans `notices` then `sightings` over `view` (as two calls would),
    /// returning each sighting's person.
    fn after(view: GraphView, notices: &[ResolveItem], sightings: &[ResolveItem]) -> Vec<Uuid> {
        let rules = CompiledRules::new(&Rules::default());
        let mut mint = minter();
        let recorded = plan(notices, view.clone(), &rules, NOTICE, &mut mint);
        let mut view = view;
        apply(&mut view, &recorded);
        let seen = plan(sightings, view, &rules, Options::default(), &mut mint);
        seen.results.iter().filter_map(|o| o.person_id).collect()
    }

    /// What a store write of `plan` leaves for the next call to read.
    fn apply(view: &mut GraphView, plan: &GraphPlan) {
        for link in &plan.new_links {
            view.owners.insert(
                link.key.clone(),
                Known {
                    person_id: link.person_id,
                    ..Known::default()
                },
            );
        }
        for h in &plan.handovers {
            view.owners.insert(
                h.key.clone(),
                Known {
                    person_id: h.to,
                    last_seen: Some(h.at),
                    held_since: Some(h.at),
                    previous: Some(h.from),
                    ..Known::default()
                },
            );
        }
    }

    #[test]
    fn a_reassigned_number_names_its_new_subscriber_even_without_other_evidence() {
        // Without the record, the newcomer (the number, an app login the
        // holder never had) joins the holder: nothing on the event tells
        // them apart.
        let newcomer = item(95, &[("phone", "k1:aa"), ("user_id", "app-2")]);
        let before = item(10, &[("phone", "k1:aa")]);
        let plain = after(held(20), &[], &[newcomer.clone(), before.clone()]);
        assert_eq!(plain, vec![Uuid::from_u128(1), Uuid::from_u128(1)]);
        // With it, the number from day 60 on is someone else's; a use
        // before still names the holder.
        let recorded = after(
            held(20),
            &[item(60, &[("phone", "k1:aa")])],
            &[newcomer, before],
        );
        assert_ne!(recorded[0], Uuid::from_u128(1));
        assert_eq!(recorded[1], Uuid::from_u128(1));
    }

    #[test]
    fn an_unseen_number_splits_its_uses_whichever_arrives_first() {
        let notice = item(60, &[("phone", "k1:bb")]);
        let late_first = item(95, &[("phone", "k1:bb"), ("user_id", "app-2")]);
        let early = item(10, &[("phone", "k1:bb"), ("member_card", "m-1")]);
        for order in [
            vec![late_first.clone(), early.clone()],
            vec![early.clone(), late_first.clone()],
        ] {
            let persons = after(GraphView::default(), std::slice::from_ref(&notice), &order);
            assert_ne!(persons[0], persons[1], "{order:?}");
        }
    }

    #[test]
    fn a_holder_who_used_the_number_since_keeps_it_and_repeats_change_nothing() {
        let rules = CompiledRules::new(&Rules::default());
        let notice = [item(60, &[("phone", "k1:aa")])];
        let used = plan(&notice, held(61), &rules, NOTICE, minter());
        assert_eq!(used.reassignments, vec![Reassigned::UsedSince]);
        assert!(used.is_read_only());
        let handed = plan(&notice, held(20), &rules, NOTICE, minter());
        assert_eq!(handed.reassignments, vec![Reassigned::HandedOver]);
        let mut view = held(20);
        apply(&mut view, &handed);
        let again = plan(&notice, view, &rules, NOTICE, minter());
        assert_eq!(again.reassignments, vec![Reassigned::AlreadyRecorded]);
        assert!(again.is_read_only());
        let unseen = plan(&notice, GraphView::default(), &rules, NOTICE, minter());
        assert_eq!(unseen.reassignments, vec![Reassigned::RecordedUnseen]);
        assert_eq!(unseen.new_persons.len(), 2);
    }
}
