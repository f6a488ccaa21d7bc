//! Unit tests of the resolution rule.

use super::*;
use chrono::{DateTime, Utc};

use crate::rules::{BlockedValue, Rules};

fn key(t: &str, v: &str) -> IdentifierKey {
    IdentifierKey::normalise(t, "", v)
}

fn item(keys: &[(&str, &str)]) -> ResolveItem {
    ResolveItem {
        keys: keys.iter().map(|(t, v)| key(t, v)).collect(),
        observed_at: None,
        evidence_message_id: String::new(),
    }
}

pub(crate) fn minter() -> impl FnMut() -> Uuid {
    let mut next = 100u128;
    move || {
        next += 1;
        Uuid::from_u128(next)
    }
}

fn p(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// A view where each (person, keys) owns its keys.
fn view(persons: &[(u128, &[(&str, &str)])]) -> GraphView {
    let mut view = GraphView::default();
    for (person, keys) in persons {
        let counts = view.type_counts.entry(p(*person)).or_default();
        for (t, v) in *keys {
            *counts.entry((*t).to_owned()).or_insert(0) += 1;
            view.owners.insert(
                key(t, v),
                Known {
                    person_id: p(*person),
                    ..Known::default()
                },
            );
        }
    }
    view
}

fn defaults() -> CompiledRules {
    CompiledRules::new(&Rules::default())
}

#[test]
fn unknown_identifiers_make_one_new_person() {
    let plan = plan(
        &[item(&[("phone", "1"), ("email", "a@x")])],
        GraphView::default(),
        &defaults(),
        Options::default(),
        minter(),
    );
    assert_eq!(plan.new_persons, vec![p(101)]);
    assert_eq!(plan.new_links.len(), 2);
    assert_eq!(plan.results[0].person_id, Some(p(101)));
    assert!(plan.results[0].created);
}

#[test]
fn anonymous_then_login_merges_into_the_oldest() {
    // p1 browsed anonymously; p2 logged in elsewhere; the login event on
    // p1's browser shows both.
    let view = view(&[(1, &[("anonymous_id", "a")]), (2, &[("user_id", "u")])]);
    let plan = plan(
        &[item(&[
            ("anonymous_id", "a"),
            ("user_id", "u"),
            ("phone", "k1:aa"),
        ])],
        view,
        &defaults(),
        Options::default(),
        minter(),
    );
    assert_eq!(
        plan.merges,
        vec![Merge {
            survivor: p(1),
            absorbed: vec![p(2)],
            item: 0,
            keys: item(&[("anonymous_id", "a"), ("user_id", "u"), ("phone", "k1:aa")]).keys,
        }]
    );
    assert_eq!(plan.results[0].person_id, Some(p(1)));
    assert_eq!(plan.new_links.len(), 1);
    assert!(plan.refusals.is_empty());
}

#[test]
fn a_shared_device_is_refused_once_then_inert() {
    let rules = defaults();
    let items = [
        item(&[("device_id", "ipad"), ("user_id", "u1")]),
        item(&[("device_id", "ipad"), ("user_id", "u2")]),
        item(&[("device_id", "ipad"), ("phone", "k1:p3")]),
        item(&[("device_id", "ipad"), ("user_id", "u4"), ("phone", "k1:p4")]),
    ];
    let plan = plan(
        &items,
        GraphView::default(),
        &rules,
        Options::default(),
        minter(),
    );
    let persons: HashSet<Uuid> = plan.results.iter().filter_map(|r| r.person_id).collect();
    assert_eq!(persons.len(), 4, "{:?}", plan.results);
    assert!(plan.merges.is_empty());
    assert!(plan.results[1].refused);
    // After the refusal the device is inert: later events do not even try.
    assert!(!plan.results[2].refused);
    assert_eq!(plan.refusals.len(), 1);
}

#[test]
fn a_shared_value_alone_names_nobody_and_its_sharing_is_reported() {
    let items = [
        item(&[("anonymous_id", "s"), ("user_id", "u1")]),
        item(&[("anonymous_id", "s")]),
        item(&[("anonymous_id", "s"), ("user_id", "u2")]),
        item(&[("anonymous_id", "s")]),
        item(&[("anonymous_id", "s"), ("user_id", "u1")]),
    ];
    let plan = plan(
        &items,
        GraphView::default(),
        &defaults(),
        Options::default(),
        minter(),
    );
    let first = plan.results[0].person_id;
    // Before the second customer it looked personal.
    assert_eq!(plan.results[1].person_id, first);
    assert_ne!(plan.results[2].person_id, first);
    assert_eq!(
        plan.newly_shared,
        vec![NewlyShared {
            key: key("anonymous_id", "s"),
            owner: p(101),
            item: 2,
        }]
    );
    // After it, alone it is nobody's; next to a personal id it follows it.
    assert_eq!(plan.results[3].person_id, None);
    assert_eq!(plan.results[3].unresolved, Some(Unresolved::Shared));
    assert_eq!(plan.results[4].person_id, first);
    assert_eq!(plan.results[4].unresolved, None);
}

#[test]
fn erased_identifiers_win_over_shared_ones() {
    let mut view = view(&[(1, &[("device_id", "d")])]);
    if let Some(known) = view.owners.get_mut(&key("device_id", "d")) {
        known.seen_with = vec![p(2)];
    }
    view.suppressed.insert(key("phone", "k1:gone"));
    let plan = plan(
        &[
            item(&[("device_id", "d")]),
            item(&[("device_id", "d"), ("phone", "k1:gone")]),
        ],
        view,
        &defaults(),
        Options::default(),
        minter(),
    );
    assert_eq!(plan.results[0].unresolved, Some(Unresolved::Shared));
    assert_eq!(plan.results[1].unresolved, Some(Unresolved::Suppressed));
    assert!(plan.is_read_only());
}

#[test]
fn different_unique_ids_are_not_merged_and_go_to_review() {
    let view = view(&[
        (1, &[("crm_id", "c1"), ("phone", "k1:p")]),
        (2, &[("crm_id", "c2"), ("email", "k1:e")]),
    ]);
    let plan = plan(
        &[item(&[("phone", "k1:p"), ("email", "k1:e")])],
        view,
        &defaults(),
        Options::default(),
        minter(),
    );
    assert!(plan.merges.is_empty());
    assert_eq!(plan.refusals.len(), 1);
    let refusal = &plan.refusals[0];
    assert_eq!(refusal.reason, RefusalReason::UniqueTypeConflict);
    assert!(refusal.review);
    assert_eq!(refusal.person_id, Some(p(1)));
    assert_eq!(refusal.others, vec![p(2)]);
}

#[test]
fn blocked_values_never_link() {
    let mut rules = Rules::default();
    rules.blocked.push(BlockedValue {
        key: key("phone", "k1:placeholder"),
        reason: "placeholder".to_owned(),
    });
    let rules = CompiledRules::new(&rules);
    let items = [
        item(&[("phone", "k1:placeholder"), ("user_id", "u1")]),
        item(&[("phone", "k1:placeholder"), ("user_id", "u2")]),
        item(&[("phone", "k1:placeholder")]),
    ];
    let plan = plan(
        &items,
        GraphView::default(),
        &rules,
        Options::default(),
        minter(),
    );
    assert!(plan.merges.is_empty());
    assert!(plan.new_links.iter().all(|l| l.key.id_type != "phone"));
    assert_ne!(plan.results[0].person_id, plan.results[1].person_id);
    assert_eq!(plan.results[2].person_id, None);
    assert_eq!(plan.results[2].unresolved, Some(Unresolved::Blocked));
    assert!(plan.results[0].refused);
}

#[test]
fn separated_persons_rejoin_only_explicitly() {
    let mut view = view(&[(1, &[("phone", "k1:p")]), (2, &[("email", "k1:e")])]);
    view.separations.insert(pair(p(1), p(2)));
    let items = [item(&[("phone", "k1:p"), ("email", "k1:e")])];
    let auto = plan(
        &items,
        view.clone(),
        &defaults(),
        Options::default(),
        minter(),
    );
    assert!(auto.merges.is_empty());
    assert_eq!(auto.refusals[0].reason, RefusalReason::PreviouslySplit);
    let explicit = Options {
        explicit: true,
        override_split: true,
        ..Options::default()
    };
    let forced = plan(&items, view, &defaults(), explicit, minter());
    assert_eq!(forced.merges.len(), 1);
}

#[test]
fn suppressed_identifiers_are_ignored() {
    let mut view = GraphView::default();
    view.suppressed.insert(key("phone", "k1:gone"));
    let items = [
        item(&[("phone", "k1:gone")]),
        item(&[("phone", "k1:gone"), ("anonymous_id", "a")]),
    ];
    let plan = plan(&items, view, &defaults(), Options::default(), minter());
    assert_eq!(plan.results[0].person_id, None);
    assert!(plan.results[1].person_id.is_some());
    assert!(plan.new_links.iter().all(|l| l.key.id_type != "phone"));
}

#[test]
fn later_items_see_merges_of_earlier_ones() {
    let view = view(&[(1, &[("anonymous_id", "a")]), (2, &[("user_id", "u")])]);
    let items = [
        item(&[("user_id", "u")]),
        item(&[("anonymous_id", "a"), ("user_id", "u")]),
        item(&[("user_id", "u"), ("email", "k1:e")]),
    ];
    let plan = plan(&items, view, &defaults(), Options::default(), minter());
    // Every item reports the person after the batch's merges.
    assert!(plan.results.iter().all(|r| r.person_id == Some(p(1))));
    assert_eq!(plan.new_links[0].person_id, p(1));
}

#[test]
fn a_run_of_merges_ends_each_absorbed_person_at_the_last_survivor_of_its_chain() {
    let [a, b, c, d, e] = [1u128, 2, 3, 4, 5].map(Uuid::from_u128);
    // b into a, then c into a, then a into d (d older); e into itself is no merge.
    let (bs, cs, as_, es) = ([b], [c], [a], [e]);
    let merges: Vec<(Uuid, &[Uuid])> = vec![(a, &bs), (a, &cs), (d, &as_), (e, &es)];
    let (absorbed, survivors) = super::final_survivors(&merges);
    assert_eq!(absorbed, vec![b, c, a]);
    assert_eq!(survivors, vec![d, d, d]);
    let (none, _) = super::final_survivors(&[]);
    assert!(none.is_empty());
}

fn at_day(day: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(1_780_000_000 + day * 86_400, 0)
}

fn item_at(day: i64, keys: &[(&str, &str)]) -> ResolveItem {
    ResolveItem {
        observed_at: at_day(day),
        ..item(keys)
    }
}

/// Person 1 holds member card `m-a` and phone `p`, last used on day 0.
fn card_holder_with_phone() -> GraphView {
    let mut view = view(&[(1, &[("member_card", "m-a"), ("phone", "p")])]);
    if let Some(known) = view.owners.get_mut(&key("phone", "p")) {
        known.last_seen = at_day(0);
    }
    view
}

#[test]
fn a_family_phone_in_use_by_both_card_holders_is_shared_not_merged() {
    let plan = plan(
        &[
            item_at(1, &[("member_card", "m-b"), ("phone", "p")]),
            item_at(2, &[("phone", "p")]),
            item_at(3, &[("phone", "p"), ("anonymous_id", "b-app")]),
        ],
        card_holder_with_phone(),
        &defaults(),
        Options::default(),
        minter(),
    );
    assert!(plan.merges.is_empty() && plan.handovers.is_empty());
    let b = plan.results[0].person_id.expect("the second card holder");
    assert_ne!(b, p(1));
    assert_eq!(plan.refusals[0].reason, RefusalReason::UniqueTypeConflict);
    assert_eq!(plan.newly_shared[0].key, key("phone", "p"));
    // Alone the phone names nobody, and it bridges nothing to its holder.
    assert_eq!(plan.results[1].unresolved, Some(Unresolved::Shared));
    let app = plan.results[2].person_id.expect("the app id's own person");
    assert!(app != p(1) && app != b);
}

#[test]
fn a_recycled_phone_changes_hands_after_the_gap_and_earlier_events_keep_their_holder() {
    let plan = plan(
        &[
            item_at(40, &[("member_card", "m-b"), ("phone", "p")]),
            item_at(41, &[("phone", "p")]),
            // A late event from before the handover.
            item_at(-3, &[("phone", "p"), ("anonymous_id", "a-web")]),
        ],
        card_holder_with_phone(),
        &defaults(),
        Options::default(),
        minter(),
    );
    let b = plan.results[0].person_id.expect("the new holder");
    assert_ne!(b, p(1));
    assert!(plan.merges.is_empty(), "the holders are not merged");
    assert_eq!(
        plan.handovers,
        vec![Handover {
            key: key("phone", "p"),
            from: p(1),
            to: b,
            at: at_day(40).expect("a time"),
        }]
    );
    assert!(plan.newly_shared.is_empty(), "a handover is not sharing");
    assert_eq!(plan.results[1].person_id, Some(b), "after: the new holder");
    assert_eq!(plan.results[2].person_id, Some(p(1)), "before: the old one");
    assert!(
        plan.new_links
            .iter()
            .any(|l| l.key == key("anonymous_id", "a-web") && l.person_id == p(1))
    );
}

#[test]
fn a_recycled_phone_goes_to_the_person_a_weaker_identifier_names() {
    // The new holder's app install is known with their own card; the event carries only it
    // and the number: the number, silent since day 0, is the weaker evidence and changes
    // hands, instead of the app id being refused from its own person for review.
    let mut view = card_holder_with_phone();
    for (t, v) in [("member_card", "m-b"), ("anonymous_id", "b-app")] {
        view.owners.insert(
            key(t, v),
            Known {
                person_id: p(2),
                ..Known::default()
            },
        );
        *view
            .type_counts
            .entry(p(2))
            .or_default()
            .entry(t.to_owned())
            .or_insert(0) += 1;
    }
    let plan = plan(
        &[item_at(40, &[("phone", "p"), ("anonymous_id", "b-app")])],
        view,
        &defaults(),
        Options::default(),
        minter(),
    );
    assert_eq!(plan.results[0].person_id, Some(p(2)));
    assert!(plan.merges.is_empty());
    assert_eq!(plan.handovers.len(), 1);
    assert_eq!((plan.handovers[0].from, plan.handovers[0].to), (p(1), p(2)));
    assert!(plan.refusals.iter().all(|r| !r.review), "no review item");
}

#[test]
fn without_a_time_or_within_the_gap_nothing_changes_hands() {
    for observed in [None, at_day(29)] {
        let mut first = item(&[("member_card", "m-b"), ("phone", "p")]);
        first.observed_at = observed;
        let plan = plan(
            &[first],
            card_holder_with_phone(),
            &defaults(),
            Options::default(),
            minter(),
        );
        assert!(plan.handovers.is_empty(), "{observed:?}");
        assert_eq!(plan.refusals[0].reason, RefusalReason::UniqueTypeConflict);
    }
}
