//! Erasure (ForgetPerson) and consent.

use touchline_identity::IdentityApi;
use touchline_proto::identity::v1 as pb;
use touchline_proto::identity::v1::identity_service_server::IdentityService as _;
use uuid::Uuid;

use crate::helpers::{TestDb, admin, event, id, local_cache, req, resolve, who};

/// Rows of identity tables that still mention any of `persons`.
async fn rows_about(db: &TestDb, persons: &[Uuid]) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for (table, sql) in [
        (
            "persons",
            "SELECT count(*) FROM identity.persons WHERE tenant_id = 't1'
               AND (person_id = ANY($1) OR merged_into = ANY($1))",
        ),
        (
            "identifiers",
            "SELECT count(*) FROM identity.identifiers WHERE tenant_id = 't1'
               AND person_id = ANY($1)",
        ),
        (
            "identifier_history",
            "SELECT count(*) FROM identity.identifier_history WHERE tenant_id = 't1'
               AND person_id = ANY($1)",
        ),
        (
            "review_items",
            "SELECT count(*) FROM identity.review_items WHERE tenant_id = 't1'
               AND (person_a = ANY($1) OR person_b = ANY($1))",
        ),
        (
            "separations",
            "SELECT count(*) FROM identity.separations WHERE tenant_id = 't1'
               AND (person_a = ANY($1) OR person_b = ANY($1))",
        ),
        (
            "changes with identifiers",
            "SELECT count(*) FROM identity.changes WHERE tenant_id = 't1'
               AND (person_id = ANY($1) OR other_person_ids && $1) AND moved <> '[]'",
        ),
    ] {
        let count: i64 = sqlx::query_scalar(sql)
            .bind(persons)
            .fetch_one(&db.pool)
            .await
            .expect("count");
        out.push((table, count));
    }
    out
}

#[tokio::test]
async fn forget_person_leaves_nothing_and_is_not_recreated() {
    let db = TestDb::new(4).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));

    // Cleo: two persons merged, a split, a consent, a neighbour.
    let cleo = resolve(
        &api,
        "t1",
        vec![event(
            "c-1",
            vec![id("user_id", "cleo"), id("phone", "k1:cccccccccccccccc")],
        )],
    )
    .await[0]
        .person_id
        .clone();
    let web = resolve(
        &api,
        "t1",
        vec![event("c-2", vec![id("anonymous_id", "cleo-web")])],
    )
    .await[0]
        .person_id
        .clone();
    resolve(
        &api,
        "t1",
        vec![event(
            "c-3",
            vec![
                id("user_id", "cleo"),
                id("anonymous_id", "cleo-web"),
                id("device_id", "d-c"),
            ],
        )],
    )
    .await;
    api.split_person(req(
        admin("t1"),
        pb::SplitPersonRequest {
            name: format!("tenants/t1/persons/{cleo}"),
            identifiers: vec![id("device_id", "d-c")],
            reason: "shared".to_owned(),
            ..Default::default()
        },
    ))
    .await
    .expect("split");
    let dan = resolve(&api, "t1", vec![event("d-1", vec![id("user_id", "dan")])]).await[0]
        .person_id
        .clone();
    // Ask for the merged-away id: the live person is erased.
    let erasure = api
        .forget_person(req(
            admin("t1"),
            pb::ForgetPersonRequest {
                name: format!("tenants/t1/persons/{web}"),
                reason: "DSR-7".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .expect("forget")
        .into_inner()
        .erasure
        .expect("erasure");
    assert_eq!(erasure.state, pb::ErasureState::Propagating as i32);
    let mut erased = erasure.person_ids.clone();
    erased.sort();
    let mut expected = vec![cleo.clone(), web.clone()];
    expected.sort();
    assert_eq!(erased, expected);
    api.relay().drain().await.expect("relay");

    let ids: Vec<Uuid> = erased
        .iter()
        .map(|p| Uuid::parse_str(p).expect("uuid"))
        .collect();
    for (table, count) in rows_about(&db, &ids).await {
        assert_eq!(count, 0, "{table} still mentions the erased person");
    }
    // What is left: the suppression list (pseudonymised values) and the
    // erasure record (no personal data).
    let suppressed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM identity.suppressed WHERE tenant_id = 't1'")
            .fetch_one(&db.pool)
            .await
            .expect("count");
    assert_eq!(suppressed, 3);
    for identifier in [
        id("user_id", "cleo"),
        id("phone", "k1:cccccccccccccccc"),
        id("anonymous_id", "cleo-web"),
    ] {
        assert_eq!(
            who(&api, "t1", identifier).await,
            None,
            "cache and graph forgot"
        );
    }
    assert_eq!(who(&api, "t1", id("user_id", "dan")).await, Some(dan));
    assert!(
        who(&api, "t1", id("device_id", "d-c")).await.is_some(),
        "split off, not erased"
    );

    // A late event with the erased identifiers resolves to nobody; with a
    // new identifier it makes a person that does not hold them.
    let late = resolve(
        &api,
        "t1",
        vec![
            event("late-1", vec![id("user_id", "cleo")]),
            event(
                "late-2",
                vec![
                    id("phone", "k1:cccccccccccccccc"),
                    id("anonymous_id", "new-web"),
                ],
            ),
        ],
    )
    .await;
    assert!(late[0].unresolved);
    assert!(late[0].person_id.is_empty());
    assert!(!late[1].unresolved);
    assert_eq!(who(&api, "t1", id("user_id", "cleo")).await, None);
    assert_eq!(
        who(&api, "t1", id("phone", "k1:cccccccccccccccc")).await,
        None
    );

    // The feed carries the erasure; services confirm it.
    let tail = api
        .tail_identity_changes(req(admin("t1"), pb::TailIdentityChangesRequest::default()))
        .await
        .expect("tail")
        .into_inner();
    let mut tail = std::pin::pin!(tail);
    let batch = futures::StreamExt::next(&mut tail)
        .await
        .expect("a batch")
        .expect("ok");
    let at = batch
        .changes
        .iter()
        .position(|c| c.kind == pb::IdentityChangeKind::Erasure as i32)
        .expect("the erasure is in the feed");
    let (before, after) = batch.changes.split_at(at + 1);
    assert_eq!(before[at].erasure, erasure.name);
    // Every change naming an erased person lost its identifiers; dan's link kept his.
    let mut erased = before[at].other_person_ids.clone();
    erased.push(before[at].person_id.clone());
    let names_erased = |c: &pb::IdentityChange| {
        erased.contains(&c.person_id) || c.other_person_ids.iter().any(|p| erased.contains(p))
    };
    assert!(
        before
            .iter()
            .filter(|c| names_erased(c))
            .all(|c| c.moved_identifiers.is_empty()),
        "scrubbed: {before:?}"
    );
    let kept: Vec<&[touchline_proto::common::v1::Identifier]> = before
        .iter()
        .filter(|c| !names_erased(c))
        .map(|c| c.moved_identifiers.as_slice())
        .collect();
    assert_eq!(kept, vec![&[id("user_id", "dan")][..]]);
    // Only the late event's new person follows, linked to its new identifier alone.
    let link = pb::IdentityChangeKind::Link as i32;
    assert_eq!(
        after
            .iter()
            .map(|c| (c.kind, c.moved_identifiers.clone()))
            .collect::<Vec<_>>(),
        vec![(link, vec![id("anonymous_id", "new-web")])]
    );

    for service in ["collection", "governance", "modeling", "reporting"] {
        api.confirm_erasure(req(
            admin("t1"),
            pb::ConfirmErasureRequest {
                name: erasure.name.clone(),
                service: service.to_owned(),
                removed_records: 2,
                ..Default::default()
            },
        ))
        .await
        .expect("confirm");
    }
    let done = api
        .get_erasure(req(
            admin("t1"),
            pb::GetErasureRequest {
                name: erasure.name.clone(),
            },
        ))
        .await
        .expect("get")
        .into_inner()
        .erasure
        .expect("erasure");
    assert_eq!(done.state, pb::ErasureState::Completed as i32);
    assert!(done.services.iter().all(|s| s.done));
    // Forgetting again returns the same erasure.
    let again = api
        .forget_person(req(
            admin("t1"),
            pb::ForgetPersonRequest {
                name: format!("tenants/t1/persons/{cleo}"),
                reason: "DSR-7".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .expect("forget again")
        .into_inner()
        .erasure
        .expect("erasure");
    assert_eq!(again.name, erasure.name);
    db.drop().await;
}

#[tokio::test]
async fn consent_follows_the_person_and_an_opt_out_wins_on_merge() {
    let db = TestDb::new(4).await;
    let api = IdentityApi::new(db.pool.clone(), None);
    let set = |identifier, opt_out| {
        req(
            admin("t1"),
            pb::SetConsentRequest {
                person_ref: Some(pb::set_consent_request::PersonRef::Identifier(identifier)),
                marketing_opt_out: opt_out,
                source: "sms".to_owned(),
                ..Default::default()
            },
        )
    };
    // An opt-out by an identifier nobody has seen yet.
    let phone = id("phone", "k1:dddddddddddddddd");
    let first = api
        .set_consent(set(phone.clone(), true))
        .await
        .expect("set")
        .into_inner();
    assert!(first.consent.expect("consent").marketing_opt_out);
    // The phone then joins an existing customer: the opt-out stays.
    let eve = resolve(&api, "t1", vec![event("e-1", vec![id("user_id", "eve")])]).await[0]
        .person_id
        .clone();
    let joined = resolve(
        &api,
        "t1",
        vec![event("e-2", vec![id("user_id", "eve"), phone.clone()])],
    )
    .await;
    let profile = api
        .get_profile(req(
            admin("t1"),
            pb::GetProfileRequest {
                name: format!("tenants/t1/persons/{}", joined[0].person_id),
            },
        ))
        .await
        .expect("profile")
        .into_inner()
        .person
        .expect("person");
    assert!(profile.consent.expect("consent").marketing_opt_out);
    assert!(profile.person_id == eve || profile.person_id == first.person_id);
    assert!(
        profile
            .identifiers
            .iter()
            .all(|i| !i.masked_value.contains("dddddddddddddddd"))
    );
    db.drop().await;
}
