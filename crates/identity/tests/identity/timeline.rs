//! Phones over time through the service, with the Redis cache in front: a
//! family's phone never merges its card holders, a recycled number is
//! attributed by time (before the handover to its first holder, after it to
//! the second), whether the answer could come from the cache or not.

use touchline_identity::IdentityApi;
use touchline_proto::identity::v1 as pb;

use crate::helpers::{TestDb, feed, id, local_cache, resolve};

const DAY: i64 = 86_400;
const T0: i64 = 1_780_000_000;

fn at(day: i64, identifiers: Vec<touchline_proto::common::v1::Identifier>) -> pb::ResolveItem {
    pb::ResolveItem {
        identifiers,
        observed_at: Some(prost_types::Timestamp {
            seconds: T0 + day * DAY,
            nanos: 0,
        }),
        evidence_message_id: format!("m-{day}"),
    }
}

#[tokio::test]
async fn a_recycled_number_is_attributed_by_time_even_through_the_cache() {
    let db = TestDb::new(4).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));
    let phone = || id("phone", "+8613912345678");
    let first = resolve(
        &api,
        "t1",
        vec![at(0, vec![id("member_card", "m-a"), phone()])],
    )
    .await[0]
        .person_id
        .clone();
    // Cached now: a later answer may come from Redis.
    assert_eq!(
        resolve(&api, "t1", vec![at(1, vec![phone()])]).await[0].person_id,
        first
    );
    // Forty days unused, then shown with another member card: a new holder.
    let second = resolve(
        &api,
        "t1",
        vec![at(41, vec![id("member_card", "m-b"), phone()])],
    )
    .await[0]
        .person_id
        .clone();
    assert_ne!(second, first, "the two holders are not merged");
    // The change log tells consumers the number is the second holder's now.
    let links = feed(&api, "t1", 0, 2).await;
    let link = pb::IdentityChangeKind::Link as i32;
    let holders_of_phone: Vec<&str> = links
        .iter()
        .filter(|c| c.kind == link && c.moved_identifiers.iter().any(|i| i.r#type == "phone"))
        .map(|c| c.person_id.as_str())
        .collect();
    assert_eq!(holders_of_phone, vec![first.as_str(), second.as_str()]);
    for _ in 0..2 {
        let answers = resolve(
            &api,
            "t1",
            vec![
                at(42, vec![phone()]),
                at(5, vec![phone()]),
                at(43, vec![phone(), id("anonymous_id", "b-web")]),
            ],
        )
        .await;
        assert_eq!(answers[0].person_id, second, "after the handover");
        assert_eq!(answers[1].person_id, first, "before it, as of its time");
        assert_eq!(answers[2].person_id, second);
    }
    db.drop().await;
}

#[tokio::test]
async fn a_family_phone_used_by_two_card_holders_merges_nobody() {
    let db = TestDb::new(4).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));
    let phone = || id("phone", "+8613912345678");
    let answers = resolve(
        &api,
        "t1",
        vec![
            // One customer first uses the phone with nothing unique, then
            // with her card; her husband uses it with his card in between.
            at(0, vec![phone(), id("anonymous_id", "a-web")]),
            at(2, vec![id("member_card", "m-a"), phone()]),
            at(3, vec![id("member_card", "m-b"), phone()]),
            at(4, vec![phone(), id("anonymous_id", "b-app")]),
            at(
                5,
                vec![id("member_card", "m-b"), id("anonymous_id", "b-app")],
            ),
        ],
    )
    .await;
    let (a, b) = (&answers[1].person_id, &answers[2].person_id);
    assert_ne!(a, b, "two card holders are two persons");
    assert_eq!(&answers[0].person_id, a);
    assert!(answers[3].unresolved || &answers[3].person_id != a);
    assert_eq!(&answers[4].person_id, b, "his app id went to nobody else");
    db.drop().await;
}

#[tokio::test]
async fn a_family_phone_a_tenant_lets_three_persons_share_bridges_nobody() {
    let db = TestDb::new(4).await;
    let mut rules = touchline_identity::rules::Rules::default();
    for rule in rules.types.iter_mut().filter(|r| r.id_type == "phone") {
        rule.max_persons_per_value = 3;
    }
    let mut conn = db.pool.acquire().await.expect("a connection");
    touchline_identity::store::admin::save_rules(&mut conn, "t1", &rules, 0, chrono::Utc::now())
        .await
        .expect("rules saved")
        .expect("no concurrent edit");
    drop(conn);
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));
    let phone = || id("phone", "+8613912345678");
    let answers = resolve(
        &api,
        "t1",
        vec![
            at(0, vec![id("member_card", "m-a"), phone()]),
            at(1, vec![id("member_card", "m-b"), phone()]),
            at(2, vec![phone(), id("anonymous_id", "b-app")]),
            at(
                3,
                vec![id("member_card", "m-b"), id("anonymous_id", "b-app")],
            ),
            at(4, vec![phone()]),
        ],
    )
    .await;
    let (a, b) = (&answers[0].person_id, &answers[1].person_id);
    assert_ne!(a, b);
    assert_ne!(
        &answers[2].person_id, a,
        "the phone brought his app id to her"
    );
    assert_eq!(&answers[3].person_id, b, "his app id is his");
    assert_eq!(
        &answers[4].person_id, a,
        "alone, the phone names its holder"
    );
    db.drop().await;
}

/// A phone's use is recorded even when the cache alone could answer the event: the first
/// card holder keeps using the family phone (day 25, answered from the cache otherwise), so
/// the second card holder showing it on day 40 shares it, as without a cache, instead of
/// taking it over from a holder who seemed silent since day 0.
#[tokio::test]
async fn a_use_answered_from_the_cache_still_counts_as_a_use() {
    let mut outcomes = Vec::new();
    for cached in [false, true] {
        let db = TestDb::new(4).await;
        let cache = if cached {
            Some(local_cache().await.0)
        } else {
            None
        };
        let api = IdentityApi::new(db.pool.clone(), cache);
        let phone = || id("phone", "+8613912345678");
        let card_a = || id("member_card", "m-a");
        let a = resolve(&api, "t1", vec![at(0, vec![card_a(), phone()])]).await[0]
            .person_id
            .clone();
        assert_eq!(
            resolve(&api, "t1", vec![at(25, vec![card_a(), phone()])]).await[0].person_id,
            a
        );
        let b = resolve(
            &api,
            "t1",
            vec![at(40, vec![id("member_card", "m-b"), phone()])],
        )
        .await[0]
            .person_id
            .clone();
        assert_ne!(a, b, "the card holders are not merged");
        let alone = resolve(&api, "t1", vec![at(41, vec![phone()])]).await[0].clone();
        outcomes.push((cached, alone.unresolved, alone.person_id == b));
        db.drop().await;
    }
    // Shared by two card holders in use at once: alone it names nobody, with or without
    // the cache.
    assert_eq!(
        outcomes,
        vec![(false, true, false), (true, true, false)],
        "(cached, unresolved, names the second holder)"
    );
}
