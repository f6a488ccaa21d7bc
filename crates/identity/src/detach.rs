//! Which events lose their person when values become shared, decided
//! without gRPC, SQL or Redis.
//!
//! While a value looked personal, events carrying nothing else were resolved
//! to its owner. Once it is seen with more persons than its type allows it
//! names nobody, so those events must be detached from the owner. The change
//! log says so with one DETACH per owner and batch, naming every value of
//! the owner that is shared once the batch is written: an event made of two
//! shared values (an anonymous id and the device it was seen on) is only
//! "nothing but shared values" when both are listed together, even if the
//! first became shared in an earlier batch.

use std::collections::HashMap;

use uuid::Uuid;

use crate::domain::IdentifierKey;
use crate::graph::{GraphPlan, Known, is_shared};
use crate::rules::CompiledRules;

/// A person whose events made only of `keys` belong to nobody any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detach {
    /// The person the values were attached to.
    pub person_id: Uuid,
    /// Every shared value of the person, in key order.
    pub keys: Vec<IdentifierKey>,
}

/// The persons owning the values `plan` made shared, after every merge of
/// the plan (a merge later in the batch moves the owner's events to the
/// survivor, and the change log carries merges first), in order of first
/// sharing.
pub fn owners(plan: &GraphPlan) -> Vec<Uuid> {
    let redirect: HashMap<Uuid, Uuid> = plan
        .merges
        .iter()
        .flat_map(|m| m.absorbed.iter().map(move |a| (*a, m.survivor)))
        .collect();
    let mut out = Vec::new();
    for shared in &plan.newly_shared {
        let owner = follow(&redirect, shared.owner);
        if !out.contains(&owner) {
            out.push(owner);
        }
    }
    out
}

fn follow(redirect: &HashMap<Uuid, Uuid>, mut person: Uuid) -> Uuid {
    // A merge chain is at most as long as the plan's merges; the bound
    // guards against a malformed plan looping.
    for _ in 0..=redirect.len() {
        match redirect.get(&person) {
            Some(next) => person = *next,
            None => break,
        }
    }
    person
}

/// One DETACH per owner of `plan`'s newly shared values. `contested` holds,
/// after the batch's writes, the identifiers of those owners that were seen
/// with other persons. An owner none of whose newly shared values is still
/// shared (a later merge of the batch joined the persons it was seen with)
/// gets none.
pub fn detachments(
    plan: &GraphPlan,
    contested: &[(IdentifierKey, Known)],
    rules: &CompiledRules,
) -> Vec<Detach> {
    let newly: Vec<&IdentifierKey> = plan.newly_shared.iter().map(|s| &s.key).collect();
    owners(plan)
        .into_iter()
        .filter_map(|person| {
            let mut keys: Vec<IdentifierKey> = contested
                .iter()
                .filter(|(key, known)| known.person_id == person && is_shared(key, known, rules))
                .map(|(key, _)| key.clone())
                .collect();
            keys.sort();
            keys.dedup();
            keys.iter().any(|k| newly.contains(&k)).then_some(Detach {
                person_id: person,
                keys,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Merge, NewlyShared};
    use crate::rules::Rules;

    fn p(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn key(t: &str, v: &str) -> IdentifierKey {
        IdentifierKey::normalise(t, "", v)
    }

    fn known(person: u128, seen: &[u128]) -> Known {
        Known {
            person_id: p(person),
            seen_with: seen.iter().map(|s| p(*s)).collect(),
            ..Known::default()
        }
    }

    fn shared(t: &str, v: &str, owner: u128) -> NewlyShared {
        NewlyShared {
            key: key(t, v),
            owner: p(owner),
            item: 0,
        }
    }

    fn rules() -> CompiledRules {
        CompiledRules::new(&Rules::default())
    }

    #[test]
    fn values_shared_earlier_are_listed_with_the_new_one() {
        let plan = GraphPlan {
            newly_shared: vec![shared("device_id", "ipad", 1)],
            ..GraphPlan::default()
        };
        let contested = [
            (key("device_id", "ipad"), known(1, &[2])),
            (key("anonymous_id", "anon"), known(1, &[3])),
            // Seen only with its own person: still personal.
            (key("user_id", "u1"), known(1, &[1])),
        ];
        assert_eq!(
            detachments(&plan, &contested, &rules()),
            vec![Detach {
                person_id: p(1),
                keys: vec![key("anonymous_id", "anon"), key("device_id", "ipad")],
            }]
        );
    }

    #[test]
    fn the_owner_is_followed_through_the_batchs_merges() {
        let plan = GraphPlan {
            newly_shared: vec![shared("device_id", "d", 5), shared("anonymous_id", "a", 1)],
            merges: vec![
                Merge {
                    survivor: p(3),
                    absorbed: vec![p(5)],
                    item: 1,
                    keys: Vec::new(),
                },
                Merge {
                    survivor: p(1),
                    absorbed: vec![p(3)],
                    item: 2,
                    keys: Vec::new(),
                },
            ],
            ..GraphPlan::default()
        };
        assert_eq!(owners(&plan), vec![p(1)]);
        let contested = [
            (key("device_id", "d"), known(1, &[7])),
            (key("anonymous_id", "a"), known(1, &[8])),
        ];
        let got = detachments(&plan, &contested, &rules());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].person_id, p(1));
        assert_eq!(got[0].keys.len(), 2);
    }

    #[test]
    fn a_value_no_longer_shared_after_the_batch_detaches_nothing() {
        let plan = GraphPlan {
            newly_shared: vec![shared("device_id", "d", 1)],
            ..GraphPlan::default()
        };
        // The person it was seen with was merged into its owner.
        let contested = [(key("device_id", "d"), known(1, &[]))];
        assert!(detachments(&plan, &contested, &rules()).is_empty());
        assert!(detachments(&plan, &[], &rules()).is_empty());
    }
}
