//! Merges, splits, the change feed and resolution as of a past time.

use std::time::Duration;

use touchline_identity::IdentityApi;
use touchline_proto::identity::v1 as pb;
use touchline_proto::identity::v1::identity_service_server::IdentityService as _;

use crate::helpers::{TestDb, admin, event, feed, id, local_cache, merges, req, resolve, who};

#[tokio::test]
async fn a_wrong_merge_is_split_back_and_the_feed_tells_modeling() {
    let db = TestDb::new(4).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));

    // Two customers, each with a few events.
    let ann = resolve(
        &api,
        "t1",
        vec![event(
            "a-1",
            vec![
                id("user_id", "ann"),
                id("anonymous_id", "ann-web"),
                id("phone", "k1:aaaaaaaaaaaaaaaa"),
            ],
        )],
    )
    .await[0]
        .person_id
        .clone();
    let bob = resolve(
        &api,
        "t1",
        vec![event(
            "b-1",
            vec![
                id("anonymous_id", "bob-web"),
                id("email", "k1:bbbbbbbbbbbbbbbb"),
            ],
        )],
    )
    .await[0]
        .person_id
        .clone();
    assert_ne!(ann, bob);
    let before_merge = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(5)).await;

    // A mistaken event joins bob's browser to ann's account: merge into ann.
    let merged = resolve(
        &api,
        "t1",
        vec![event(
            "oops-1",
            vec![id("user_id", "ann"), id("anonymous_id", "bob-web")],
        )],
    )
    .await;
    assert_eq!(merged[0].person_id, ann);
    api.relay().drain().await.expect("relay");
    assert_eq!(
        who(&api, "t1", id("email", "k1:bbbbbbbbbbbbbbbb")).await,
        Some(ann.clone())
    );

    // As of before the merge, bob's email was bob's (and bob is ann today).
    let as_of = api
        .resolve(req(
            admin("t1"),
            pb::ResolveRequest {
                identifier: Some(id("email", "k1:bbbbbbbbbbbbbbbb")),
                as_of: Some(prost_types::Timestamp {
                    seconds: before_merge.timestamp(),
                    nanos: i32::try_from(before_merge.timestamp_subsec_nanos()).unwrap_or(0),
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("as of")
        .into_inner();
    assert_eq!(as_of.as_of_person_id, bob);
    assert_eq!(as_of.person_id, ann);

    // Split bob's identifiers back out.
    let split = api
        .split_person(req(
            admin("t1"),
            pb::SplitPersonRequest {
                name: format!("tenants/t1/persons/{ann}"),
                identifiers: vec![
                    id("anonymous_id", "bob-web"),
                    id("email", "k1:bbbbbbbbbbbbbbbb"),
                ],
                reason: "ticket 42: two customers".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .expect("split")
        .into_inner();
    assert_eq!(split.person_id, ann);
    let new_bob = split.new_person_id.clone();
    api.relay().drain().await.expect("relay");
    // The partition is restored: ann's identifiers on ann, bob's together
    // on the new person.
    for (identifier, owner) in [
        (id("user_id", "ann"), &ann),
        (id("anonymous_id", "ann-web"), &ann),
        (id("phone", "k1:aaaaaaaaaaaaaaaa"), &ann),
        (id("anonymous_id", "bob-web"), &new_bob),
        (id("email", "k1:bbbbbbbbbbbbbbbb"), &new_bob),
    ] {
        assert_eq!(who(&api, "t1", identifier).await.as_ref(), Some(owner));
    }
    // The same wrong evidence does not merge them again automatically.
    let replay = resolve(
        &api,
        "t1",
        vec![event(
            "oops-1",
            vec![id("user_id", "ann"), id("anonymous_id", "bob-web")],
        )],
    )
    .await;
    assert!(replay[0].refused);
    assert_eq!(
        who(&api, "t1", id("email", "k1:bbbbbbbbbbbbbbbb")).await,
        Some(new_bob.clone())
    );

    // The feed carries the merge then the split, in order, with what moved;
    // then, as the replay showed bob's browser id with ann's account, that
    // id names nobody any more and bob's events made only of it lose him.
    let all = feed(&api, "t1", 0, 5).await;
    assert_eq!(all.len(), 5, "{all:?}");
    // First the links of each customer's first identifiers, as they became theirs.
    let link = pb::IdentityChangeKind::Link as i32;
    let linked: Vec<(i32, &str, usize)> = all[..2]
        .iter()
        .map(|c| (c.kind, c.person_id.as_str(), c.moved_identifiers.len()))
        .collect();
    assert_eq!(
        linked,
        vec![(link, ann.as_str(), 3), (link, bob.as_str(), 2)]
    );
    assert!(
        all[1]
            .moved_identifiers
            .contains(&id("email", "k1:bbbbbbbbbbbbbbbb"))
    );
    let changes = &all[2..];
    let (merge, split_change) = (&changes[0], &changes[1]);
    assert_eq!(changes[2].kind, pb::IdentityChangeKind::Detach as i32);
    assert_eq!(changes[2].person_id, new_bob);
    assert_eq!(
        changes[2].moved_identifiers,
        vec![id("anonymous_id", "bob-web")]
    );
    assert_eq!(merge.kind, pb::IdentityChangeKind::Merge as i32);
    assert_eq!(merge.person_id, ann);
    assert_eq!(merge.other_person_ids, vec![bob.clone()]);
    assert_eq!(split_change.kind, pb::IdentityChangeKind::Split as i32);
    assert!(split_change.sequence > merge.sequence);
    assert_eq!(split_change.person_id, ann);
    assert_eq!(split_change.other_person_ids, vec![new_bob.clone()]);
    let mut moved: Vec<(String, String)> = split_change
        .moved_identifiers
        .iter()
        .map(|i| (i.r#type.clone(), i.value.clone()))
        .collect();
    moved.sort();
    assert_eq!(
        moved,
        vec![
            ("anonymous_id".to_owned(), "bob-web".to_owned()),
            ("email".to_owned(), "k1:bbbbbbbbbbbbbbbb".to_owned()),
        ]
    );
    // Resumable: from the merge's cursor only the split follows.
    let resumed = feed(&api, "t1", merge.sequence, 1).await;
    assert_eq!(resumed[0].sequence, split_change.sequence);
    assert_eq!(resumed[0].kind, pb::IdentityChangeKind::Split as i32);

    // The audit has the merge (with its evidence) and the split (with its
    // actor and reason), newest first.
    let audit = merges(&api, "t1").await;
    let kinds: Vec<i32> = audit.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        vec![
            pb::MergeKind::Refusal as i32,
            pb::MergeKind::Split as i32,
            pb::MergeKind::Merge as i32,
        ]
    );
    assert_eq!(audit[2].evidence_message_id, "oops-1");
    assert_eq!(audit[2].actor, "svc-governance");
    assert_eq!(audit[2].change_sequence, merge.sequence);
    assert_eq!(audit[1].actor, "ops-alice");
    assert_eq!(audit[1].reason, "ticket 42: two customers");
    assert_eq!(
        audit[0].refusal_reason,
        pb::RefusalReason::PreviouslySplit as i32
    );
    db.drop().await;
}

#[tokio::test]
async fn splits_are_checked() {
    let db = TestDb::new(2).await;
    let api = IdentityApi::new(db.pool.clone(), None);
    let person = resolve(
        &api,
        "t1",
        vec![event(
            "m",
            vec![id("user_id", "u"), id("anonymous_id", "a")],
        )],
    )
    .await[0]
        .person_id
        .clone();
    let split = |identifiers| {
        req(
            admin("t1"),
            pb::SplitPersonRequest {
                name: format!("tenants/t1/persons/{person}"),
                identifiers,
                reason: "test".to_owned(),
                ..Default::default()
            },
        )
    };
    let all = api
        .split_person(split(vec![id("user_id", "u"), id("anonymous_id", "a")]))
        .await
        .expect_err("cannot move everything");
    assert_eq!(all.code(), tonic::Code::FailedPrecondition);
    let foreign = api
        .split_person(split(vec![id("user_id", "someone-else")]))
        .await
        .expect_err("not the person's");
    assert_eq!(foreign.code(), tonic::Code::FailedPrecondition);
    // A retried split (same idempotency key) returns the first reply
    // instead of failing on identifiers that already moved.
    let keyed = || {
        req(
            admin("t1"),
            pb::SplitPersonRequest {
                name: format!("tenants/t1/persons/{person}"),
                identifiers: vec![id("anonymous_id", "a")],
                reason: "test".to_owned(),
                request_id: "0b5f1c4e-8a36-4b57-9a51-2f1f0d8e7a10".to_owned(),
            },
        )
    };
    let first = api.split_person(keyed()).await.expect("split").into_inner();
    let retry = api.split_person(keyed()).await.expect("retry").into_inner();
    assert_eq!(first, retry);
    let unkeyed = api
        .split_person(split(vec![id("anonymous_id", "a")]))
        .await
        .expect_err("already moved");
    assert_eq!(unkeyed.code(), tonic::Code::FailedPrecondition);
    let other_tenant = api
        .split_person(req(
            admin("t2"),
            pb::SplitPersonRequest {
                name: format!("tenants/t1/persons/{person}"),
                identifiers: vec![id("user_id", "u")],
                reason: "test".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("other tenant");
    assert_eq!(other_tenant.code(), tonic::Code::PermissionDenied);
    db.drop().await;
}

#[tokio::test]
async fn explicit_links_merge_and_report_what_they_did() {
    let db = TestDb::new(4).await;
    let api = IdentityApi::new(db.pool.clone(), None);
    let kim = resolve(&api, "t1", vec![event("k-1", vec![id("user_id", "kim")])]).await[0]
        .person_id
        .clone();
    let card = resolve(
        &api,
        "t1",
        vec![event("k-2", vec![id("member_card", "mc-kim")])],
    )
    .await[0]
        .person_id
        .clone();
    let link = |identifiers| {
        req(
            admin("t1"),
            pb::LinkIdentifiersRequest {
                identifiers,
                reason: "store clerk checked the card".to_owned(),
                source: "pos".to_owned(),
                ..Default::default()
            },
        )
    };
    let merged = api
        .link_identifiers(link(vec![
            id("user_id", "kim"),
            id("member_card", "mc-kim"),
        ]))
        .await
        .expect("link")
        .into_inner();
    assert_eq!(merged.outcome, pb::LinkOutcome::Merged as i32);
    assert_eq!(merged.person_id, kim);
    assert_eq!(merged.merged_person_ids, vec![card]);
    let again = api
        .link_identifiers(link(vec![
            id("user_id", "kim"),
            id("member_card", "mc-kim"),
        ]))
        .await
        .expect("link again")
        .into_inner();
    assert_eq!(again.outcome, pb::LinkOutcome::AlreadyLinked as i32);
    let attached = api
        .link_identifiers(link(vec![
            id("user_id", "kim"),
            id("email", "k1:eeeeeeeeeeeeeeee"),
        ]))
        .await
        .expect("attach")
        .into_inner();
    assert_eq!(attached.outcome, pb::LinkOutcome::Linked as i32);
    let refused = api
        .link_identifiers(link(vec![id("user_id", "kim"), id("user_id", "kim-2")]))
        .await
        .expect("refused link")
        .into_inner();
    assert_eq!(refused.outcome, pb::LinkOutcome::Refused as i32);
    assert_eq!(
        refused.refusal_reason,
        pb::RefusalReason::UniqueTypeConflict as i32
    );
    assert!(refused.person_id.is_empty());
    let audit = merges(&api, "t1").await;
    let explicit = audit
        .iter()
        .find(|m| m.kind == pb::MergeKind::Merge as i32)
        .expect("merge audited");
    assert_eq!(explicit.rule, pb::MergeRule::ExplicitLink as i32);
    assert_eq!(explicit.actor, "ops-alice");
    assert_eq!(explicit.source, "pos");
    assert_eq!(explicit.reason, "store clerk checked the card");
    let too_few = api
        .link_identifiers(link(vec![id("user_id", "kim")]))
        .await
        .expect_err("one identifier");
    assert_eq!(too_few.code(), tonic::Code::InvalidArgument);
    db.drop().await;
}
