//! Which stored events follow identifiers split off a person: an event moves when it carries at
//! least one moved identifier and nothing that stays. An event carrying both is the evidence
//! that linked them; it stays with the original person, who keeps the other identifiers.

use std::collections::HashSet;

use touchline_proto::common::v1::Identifier;

/// An identifier's identity within a tenant.
fn key(id: &Identifier) -> (&str, &str, &str) {
    (id.r#type.as_str(), id.scope.as_str(), id.value.as_str())
}

/// The sequences of `events` (sequence, identifiers) that belong to the split-off person.
pub fn events_to_move<'a>(
    events: impl IntoIterator<Item = (i64, &'a [Identifier])>,
    moved: &[Identifier],
) -> Vec<i64> {
    let moved: HashSet<(&str, &str, &str)> = moved.iter().map(key).collect();
    events
        .into_iter()
        .filter(|(_, ids)| {
            ids.iter().any(|id| moved.contains(&key(id)))
                && ids.iter().all(|id| moved.contains(&key(id)))
        })
        .map(|(sequence, _)| sequence)
        .collect()
}

/// Whether an event with `identifiers` is made only of `detached` ones (and so names nobody).
pub fn only_detached(identifiers: &[Identifier], detached: &[Identifier]) -> bool {
    let detached: HashSet<(&str, &str, &str)> = detached.iter().map(key).collect();
    !identifiers.is_empty() && identifiers.iter().all(|id| detached.contains(&key(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(t: &str, v: &str) -> Identifier {
        Identifier {
            r#type: t.to_owned(),
            value: v.to_owned(),
            scope: String::new(),
        }
    }

    #[test]
    fn only_events_wholly_of_the_moved_identifiers_move() {
        let moved = [id("device_id", "d2"), id("phone", "k1:b")];
        let a = [id("device_id", "d1")];
        let b = [id("device_id", "d2")];
        let both = [id("device_id", "d1"), id("device_id", "d2")];
        let b_phone = [id("device_id", "d2"), id("phone", "k1:b")];
        let none: [Identifier; 0] = [];
        let events = [
            (1, &a[..]),
            (2, &b[..]),
            (3, &both[..]),
            (4, &b_phone[..]),
            (5, &none[..]),
        ];
        assert_eq!(events_to_move(events, &moved), vec![2, 4]);
    }

    #[test]
    fn the_scope_is_part_of_an_identifier() {
        let mut scoped = id("wechat_openid", "o1");
        scoped.scope = "wxapp".to_owned();
        let other = id("wechat_openid", "o1");
        let events = [(1, std::slice::from_ref(&other))];
        assert!(events_to_move(events, &[scoped]).is_empty());
    }
}
