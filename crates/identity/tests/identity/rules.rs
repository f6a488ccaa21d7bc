//! Resolution rules: blocked values, shared devices, merge protection and
//! the review queue, through the gRPC adapter on real PostgreSQL and Redis.

use prost_types::FieldMask;
use touchline_identity::IdentityApi;
use touchline_proto::common::v1::Identifier;
use touchline_proto::identity::v1 as pb;
use touchline_proto::identity::v1::identity_service_server::IdentityService as _;

use crate::helpers::{
    TestDb, admin, distinct, event, feed_without_links, id, local_cache, merges, req, resolve,
    scoped, who,
};

async fn block(api: &IdentityApi, tenant: &str, values: &[(&str, &str)]) {
    let rules = pb::IdentityRules {
        blocked_values: values
            .iter()
            .map(|(t, v)| pb::BlockedValue {
                r#type: (*t).to_owned(),
                value: (*v).to_owned(),
                reason: "placeholder".to_owned(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let updated = api
        .update_identity_rules(req(
            admin(tenant),
            pb::UpdateIdentityRulesRequest {
                identity_rules: Some(rules),
                update_mask: Some(FieldMask {
                    paths: vec!["blocked_values".to_owned()],
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("update rules")
        .into_inner()
        .identity_rules
        .expect("rules");
    assert_eq!(updated.revision, 1);
    assert_eq!(updated.blocked_values.len(), values.len());
    // The other fields kept their defaults.
    assert!(!updated.identifier_types.is_empty());
}

#[tokio::test]
async fn a_clear_phone_cannot_be_blocked_and_changes_nothing() {
    use tonic_types::StatusExt as _;
    let db = TestDb::new(2).await;
    let api = IdentityApi::new(db.pool.clone(), None);
    let refused = api
        .update_identity_rules(req(
            admin("t1"),
            pb::UpdateIdentityRulesRequest {
                identity_rules: Some(pb::IdentityRules {
                    blocked_values: vec![pb::BlockedValue {
                        r#type: "phone".to_owned(),
                        value: "13912345678".to_owned(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["blocked_values".to_owned()],
                }),
                ..Default::default()
            },
        ))
        .await
        .expect_err("a clear phone would never match");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let details = refused.get_error_details();
    let violation = &details
        .bad_request()
        .expect("field violations")
        .field_violations[0];
    assert_eq!(violation.field, "identity_rules.blocked_values[0].value");
    assert_eq!(violation.reason, "NOT_PSEUDONYMISED");
    let stored = api
        .get_identity_rules(req(admin("t1"), pb::GetIdentityRulesRequest::default()))
        .await
        .expect("rules")
        .into_inner()
        .identity_rules
        .expect("rules");
    assert_eq!(stored.revision, 0, "the refused update stored nothing");
    assert!(stored.blocked_values.is_empty());
}

#[tokio::test]
async fn blocked_values_never_merge_anyone() {
    let db = TestDb::new(4).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));
    block(&api, "t1", &[("phone", "k1:00000000000000000000")]).await;

    // Fifty customers each give the placeholder phone with their own ids.
    let items: Vec<_> = (0..50)
        .map(|i| {
            event(
                &format!("m-{i}"),
                vec![
                    id("phone", "k1:00000000000000000000"),
                    id("user_id", &format!("u-{i}")),
                    id("anonymous_id", &format!("a-{i}")),
                ],
            )
        })
        .collect();
    let results = resolve(&api, "t1", items).await;
    assert_eq!(distinct(&results).len(), 50);
    assert!(results.iter().all(|r| r.refused));
    let all = merges(&api, "t1").await;
    let merged = all
        .iter()
        .filter(|m| m.kind == pb::MergeKind::Merge as i32)
        .count();
    assert_eq!(merged, 0, "no merge through a blocked value");
    assert!(
        all.iter()
            .all(|m| m.refusal_reason == pb::RefusalReason::BlockedValue as i32)
    );
    // The placeholder alone resolves to nobody and is never linked.
    let alone = resolve(
        &api,
        "t1",
        vec![event("m-x", vec![id("phone", "k1:00000000000000000000")])],
    )
    .await;
    assert!(alone[0].unresolved);
    assert!(alone[0].person_id.is_empty());
    assert_eq!(
        who(&api, "t1", id("phone", "k1:00000000000000000000")).await,
        None
    );
    db.drop().await;
}

#[tokio::test]
async fn a_shared_device_does_not_merge_its_users() {
    let db = TestDb::new(4).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));

    // Twenty customers log in on a store iPad (each also known from their
    // own phone before), then browse anonymously on it.
    for i in 0..20 {
        let own = resolve(
            &api,
            "t1",
            vec![event(
                &format!("own-{i}"),
                vec![
                    id("user_id", &format!("u-{i}")),
                    id("device_id", &format!("phone-{i}")),
                ],
            )],
        )
        .await;
        let on_ipad = resolve(
            &api,
            "t1",
            vec![event(
                &format!("ipad-{i}"),
                vec![
                    id("device_id", "store-ipad-1"),
                    id("user_id", &format!("u-{i}")),
                    id("phone", &format!("k1:aaaa{i:016}")),
                ],
            )],
        )
        .await;
        assert_eq!(on_ipad[0].person_id, own[0].person_id, "customer {i}");
    }
    let mut persons = std::collections::HashSet::new();
    for i in 0..20 {
        persons.insert(
            who(&api, "t1", id("user_id", &format!("u-{i}")))
                .await
                .expect("known"),
        );
    }
    assert_eq!(persons.len(), 20, "the iPad merged nobody");
    let all = merges(&api, "t1").await;
    assert!(
        all.iter().all(|m| m.kind != pb::MergeKind::Merge as i32),
        "{all:?}"
    );
    // One refusal made the device inert; it did not flood the audit.
    assert_eq!(all.len(), 1, "{all:?}");
    db.drop().await;
}

#[tokio::test]
async fn events_made_only_of_a_shared_device_belong_to_nobody() {
    let db = TestDb::new(4).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));
    let ipad = || vec![id("anonymous_id", "ipad-anon"), id("device_id", "ipad")];
    let with = |user: &str| {
        let mut ids = ipad();
        ids.push(id("user_id", user));
        ids
    };

    // The first customer: an anonymous screen, then a login on the iPad.
    let first = resolve(&api, "t1", vec![event("a-anon", ipad())]).await;
    let a = resolve(&api, "t1", vec![event("a-login", with("u-a"))]).await;
    assert_eq!(a[0].person_id, first[0].person_id, "still looks personal");
    // Asked again, so the device is cached as the first customer's.
    let cached = resolve(&api, "t1", vec![event("a-anon-2", ipad())]).await;
    assert_eq!(cached[0].person_id, a[0].person_id);

    // A second customer logs in on it: the device is now shared.
    let b = resolve(&api, "t1", vec![event("b-login", with("u-b"))]).await;
    assert_ne!(b[0].person_id, a[0].person_id);
    // The feed tells modeling to take the first customer's events made only
    // of the iPad's ids off them, naming the ids as events carry them.
    let detach = pb::IdentityChange {
        kind: pb::IdentityChangeKind::Detach as i32,
        person_id: a[0].person_id.clone(),
        moved_identifiers: ipad(),
        ..Default::default()
    };
    let only = |changes: Vec<pb::IdentityChange>| -> Vec<pb::IdentityChange> {
        changes
            .into_iter()
            .map(|c| pb::IdentityChange {
                kind: c.kind,
                person_id: c.person_id,
                moved_identifiers: c.moved_identifiers,
                ..Default::default()
            })
            .collect()
    };
    assert_eq!(
        only(feed_without_links(&api, "t1", 0, 1).await),
        vec![detach.clone()]
    );

    // Anonymous screens on it name nobody, whoever is holding it, and the
    // cache does not answer for the first customer any more.
    for i in 0..2 {
        let anon = resolve(&api, "t1", vec![event(&format!("anon-{i}"), ipad())]).await;
        assert!(anon[0].person_id.is_empty(), "{anon:?}");
        assert!(anon[0].unresolved);
        assert_eq!(
            anon[0].unresolved_reason,
            pb::UnresolvedReason::Shared as i32
        );
    }
    // Logged-in events on it go with the customer logged in.
    let again = resolve(
        &api,
        "t1",
        vec![
            event("a-again", with("u-a")),
            event("b-again", with("u-b")),
            event("c-new", with("u-c")),
        ],
    )
    .await;
    assert_eq!(again[0].person_id, a[0].person_id);
    assert_eq!(again[1].person_id, b[0].person_id);
    assert!(again[2].created, "{again:?}");
    assert_eq!(distinct(&again).len(), 3);
    assert!(again.iter().all(|r| r.unresolved_reason == 0));
    // Only the moment it became shared detaches anything.
    assert_eq!(
        only(feed_without_links(&api, "t1", 0, 1).await),
        vec![detach]
    );
    db.drop().await;
}

#[tokio::test]
async fn a_detach_names_every_shared_value_of_the_owner() {
    let db = TestDb::new(4).await;
    let api = IdentityApi::new(db.pool.clone(), None);
    let browser = || {
        vec![
            id("anonymous_id", "family-anon"),
            id("device_id", "family-pc"),
        ]
    };
    let mut first = browser();
    first.push(id("user_id", "u-a"));
    let a = resolve(&api, "t1", vec![event("a-login", first)]).await;

    // The anonymous id is seen with a second account, later the device with
    // a third: the second DETACH lists both, so an event made of the two
    // leaves the first customer too.
    let anon_and_b = vec![id("anonymous_id", "family-anon"), id("user_id", "u-b")];
    resolve(&api, "t1", vec![event("b-login", anon_and_b)]).await;
    let device_and_c = vec![id("device_id", "family-pc"), id("user_id", "u-c")];
    resolve(&api, "t1", vec![event("c-login", device_and_c)]).await;
    let changes = feed_without_links(&api, "t1", 0, 2).await;
    let got: Vec<(i32, &str, &[Identifier])> = changes
        .iter()
        .map(|c| (c.kind, c.person_id.as_str(), c.moved_identifiers.as_slice()))
        .collect();
    let detach = pb::IdentityChangeKind::Detach as i32;
    let person = a[0].person_id.as_str();
    assert_eq!(
        got,
        vec![
            (detach, person, &browser()[..1]),
            (detach, person, &browser()[..]),
        ]
    );
    assert!(changes[0].sequence < changes[1].sequence);
    db.drop().await;
}

#[tokio::test]
async fn merge_protection_sends_conflicts_to_review() {
    let db = TestDb::new(4).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));

    // Two CRM records, each with its own CRM id, one phone, one member card.
    let crm = resolve(
        &api,
        "t1",
        vec![
            event(
                "crm-1",
                vec![
                    scoped("crm_id", "sfdc", "c-1"),
                    id("phone", "k1:1111111111111111"),
                    scoped("member_card", "brand", "mc-1"),
                ],
            ),
            event(
                "crm-2",
                vec![
                    scoped("crm_id", "sfdc", "c-2"),
                    id("email", "k1:2222222222222222"),
                ],
            ),
        ],
    )
    .await;
    assert_eq!(distinct(&crm).len(), 2, "a CRM row links its identifiers");
    let (first, second) = (crm[0].person_id.clone(), crm[1].person_id.clone());

    // An event shows the first one's phone with the second one's email.
    let conflict = resolve(
        &api,
        "t1",
        vec![event(
            "evt-9",
            vec![
                id("phone", "k1:1111111111111111"),
                id("email", "k1:2222222222222222"),
            ],
        )],
    )
    .await;
    assert!(conflict[0].refused);
    assert_eq!(conflict[0].person_id, first);
    assert_eq!(
        who(&api, "t1", id("email", "k1:2222222222222222")).await,
        Some(second.clone()),
        "not merged"
    );

    let items = api
        .list_review_items(req(admin("t1"), pb::ListReviewItemsRequest::default()))
        .await
        .expect("list review items")
        .into_inner()
        .review_items;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(
        item.refusal_reason,
        pb::RefusalReason::UniqueTypeConflict as i32
    );
    assert_eq!(item.evidence_message_ids, vec!["evt-9".to_owned()]);
    let mut pair = item.person_ids.clone();
    pair.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(pair, expected);
    // Masked, never the stored value.
    assert!(
        item.identifiers
            .iter()
            .all(|m| !m.masked_value.contains("1111111111111111"))
    );
    let refusal = merges(&api, "t1").await;
    assert_eq!(refusal[0].kind, pb::MergeKind::Refusal as i32);
    assert_eq!(refusal[0].evidence_message_id, "evt-9");
    assert_eq!(refusal[0].review_item, item.name);

    // A stale etag is refused; approving merges into the older person.
    let stale = api
        .resolve_review_item(req(
            admin("t1"),
            pb::ResolveReviewItemRequest {
                name: item.name.clone(),
                decision: pb::ReviewDecision::Approve as i32,
                etag: "999".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("stale etag");
    assert_eq!(stale.code(), tonic::Code::Aborted);
    let approved = api
        .resolve_review_item(req(
            admin("t1"),
            pb::ResolveReviewItemRequest {
                name: item.name.clone(),
                decision: pb::ReviewDecision::Approve as i32,
                note: "same customer, confirmed by phone".to_owned(),
                etag: item.etag.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("approve")
        .into_inner();
    assert_eq!(approved.person_id, first);
    // Cache invalidations leave through the outbox.
    api.relay().drain().await.expect("relay the outbox");
    assert_eq!(
        who(&api, "t1", scoped("crm_id", "sfdc", "c-2")).await,
        Some(first.clone())
    );
    let again = api
        .resolve_review_item(req(
            admin("t1"),
            pb::ResolveReviewItemRequest {
                name: item.name.clone(),
                decision: pb::ReviewDecision::Reject as i32,
                ..Default::default()
            },
        ))
        .await
        .expect_err("already decided");
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    db.drop().await;
}

#[tokio::test]
async fn rules_are_validated_and_versioned() {
    let db = TestDb::new(2).await;
    let api = IdentityApi::new(db.pool.clone(), None);
    let defaults = api
        .get_identity_rules(req(admin("t1"), pb::GetIdentityRulesRequest::default()))
        .await
        .expect("get")
        .into_inner()
        .identity_rules
        .expect("rules");
    assert_eq!(defaults.revision, 0);
    assert_eq!(defaults.default_max_persons_per_value, 1);

    let mut duplicate = defaults.clone();
    duplicate
        .identifier_types
        .push(duplicate.identifier_types[0].clone());
    let refused = api
        .update_identity_rules(req(
            admin("t1"),
            pb::UpdateIdentityRulesRequest {
                identity_rules: Some(duplicate),
                update_mask: Some(FieldMask {
                    paths: vec!["*".to_owned()],
                }),
                ..Default::default()
            },
        ))
        .await
        .expect_err("duplicate type");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    let mut raised = defaults.clone();
    raised.default_max_persons_per_value = 3;
    raised.etag = "0".to_owned();
    let update = |rules: pb::IdentityRules| {
        req(
            admin("t1"),
            pb::UpdateIdentityRulesRequest {
                identity_rules: Some(rules),
                update_mask: Some(FieldMask {
                    paths: vec!["default_max_persons_per_value".to_owned()],
                }),
                ..Default::default()
            },
        )
    };
    let stored = api
        .update_identity_rules(update(raised.clone()))
        .await
        .expect("update")
        .into_inner()
        .identity_rules
        .expect("rules");
    assert_eq!(stored.default_max_persons_per_value, 3);
    assert_eq!(stored.revision, 1);
    // The same etag again is stale now.
    let stale = api
        .update_identity_rules(update(raised.clone()))
        .await
        .expect_err("stale");
    assert_eq!(stale.code(), tonic::Code::Aborted);

    // With a request id, a retry whose first call went through (its reply
    // lost on the way) gets that reply instead of the stale etag.
    raised.etag = stored.etag.clone();
    raised.default_max_persons_per_value = 4;
    let keyed = || {
        let mut call = update(raised.clone());
        call.get_mut().request_id = "7e6d5c4b-3a29-4180-9f8e-7d6c5b4a3928".to_owned();
        call
    };
    let first = api
        .update_identity_rules(keyed())
        .await
        .expect("keyed update")
        .into_inner();
    let retried = api
        .update_identity_rules(keyed())
        .await
        .expect("keyed retry")
        .into_inner();
    assert_eq!(retried, first);
    assert_eq!(first.identity_rules.map(|r| r.revision), Some(2));
    db.drop().await;
}
