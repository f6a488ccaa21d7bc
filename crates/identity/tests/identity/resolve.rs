//! BatchResolve against PostgreSQL: linking, concurrency, tenancy, validation.

use std::collections::HashSet;

use tonic_types::StatusExt as _;
use touchline_auth::{PLATFORM_TENANT, Principal};
use touchline_identity::IdentityApi;

use crate::helpers::{TestDb, caller, id, item, local_cache, resolve, resolve_as};

#[tokio::test]
async fn new_identifiers_create_one_person() {
    let db = TestDb::new(4).await;
    let api = IdentityApi::new(db.pool.clone(), None);

    let first = resolve(
        &api,
        "t1",
        vec![item(vec![
            id("email", " Ann@Example.com"),
            id("phone", "+8613800000001"),
        ])],
    )
    .await;
    assert_eq!(first.len(), 1);
    assert!(first[0].created);
    let person = uuid::Uuid::parse_str(&first[0].person_id).expect("a uuid");
    assert_eq!(person.get_version_num(), 7);
    assert_eq!(db.counts("t1").await, (1, 2));

    // The same identifiers again, normalised differently: same person, nothing new.
    let again = resolve(
        &api,
        "t1",
        vec![item(vec![id("EMAIL", "ann@example.COM ")])],
    )
    .await;
    assert_eq!(again[0].person_id, first[0].person_id);
    assert!(!again[0].created);
    assert_eq!(db.counts("t1").await, (1, 2));
    db.drop().await;
}

#[tokio::test]
async fn identifiers_seen_together_join_the_oldest_person() {
    let db = TestDb::new(4).await;
    let api = IdentityApi::new(db.pool.clone(), None);

    let ann = resolve(&api, "t1", vec![item(vec![id("email", "ann@x.io")])]).await[0]
        .person_id
        .clone();
    let linked = resolve(
        &api,
        "t1",
        vec![item(vec![id("email", "ann@x.io"), id("device_id", "d-1")])],
    )
    .await;
    assert_eq!(linked[0].person_id, ann);
    assert!(!linked[0].created);
    let device_alone = resolve(&api, "t1", vec![item(vec![id("device_id", "d-1")])]).await;
    assert_eq!(device_alone[0].person_id, ann);

    // A younger person's identifier seen with ann's: the persons merge into
    // ann (the oldest) and the new identifier joins her.
    let bob = resolve(&api, "t1", vec![item(vec![id("phone", "+8613800000002")])]).await[0]
        .person_id
        .clone();
    assert_ne!(bob, ann);
    let both = resolve(
        &api,
        "t1",
        vec![item(vec![
            id("phone", "+8613800000002"),
            id("crm_id", "c-9"),
            id("device_id", "d-1"),
        ])],
    )
    .await;
    assert_eq!(both[0].person_id, ann);
    let singles = resolve(
        &api,
        "t1",
        vec![
            item(vec![id("crm_id", "c-9")]),
            item(vec![id("phone", "+8613800000002")]),
        ],
    )
    .await;
    assert_eq!(singles[0].person_id, ann);
    assert_eq!(singles[1].person_id, ann, "bob was merged into ann");
    // bob's row stays, marked merged, so his id can be redirected.
    assert_eq!(db.counts("t1").await, (2, 4));
    db.drop().await;
}

#[tokio::test]
async fn items_of_one_call_see_each_others_links() {
    let db = TestDb::new(4).await;
    let api = IdentityApi::new(db.pool.clone(), None);
    let results = resolve(
        &api,
        "t1",
        vec![
            item(vec![id("anonymous_id", "a-1")]),
            item(vec![id("anonymous_id", "a-1"), id("user_id", "u-1")]),
            item(vec![id("user_id", "u-1")]),
            item(vec![id("anonymous_id", "a-2")]),
        ],
    )
    .await;
    assert_eq!(results[0].person_id, results[1].person_id);
    assert_eq!(results[0].person_id, results[2].person_id);
    assert_ne!(results[0].person_id, results[3].person_id);
    assert!(results.iter().all(|r| r.created));
    assert_eq!(db.counts("t1").await, (2, 3));
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_sightings_make_exactly_one_person() {
    let db = TestDb::new(10).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));

    // Twenty: the default rules let a person hold at most 20 device ids.
    let calls = (0..20).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            resolve(
                &api,
                "t1",
                vec![item(vec![
                    id("anonymous_id", "brand-new"),
                    id("device_id", &format!("d-{i}")),
                ])],
            )
            .await
        })
    });
    let results: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|joined| joined.expect("task finished").remove(0))
        .collect();

    let persons: HashSet<&str> = results.iter().map(|r| r.person_id.as_str()).collect();
    assert_eq!(persons.len(), 1, "every call resolved to the same person");
    assert_eq!(results.iter().filter(|r| r.created).count(), 1);
    // Losers rolled back, so no orphan person was left behind, and every
    // call's own device joined the one person.
    assert_eq!(db.counts("t1").await, (1, 21));
    db.drop().await;
}

#[tokio::test]
async fn tenants_never_share_persons() {
    let db = TestDb::new(4).await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));

    let a = resolve(
        &api,
        "tenant-a",
        vec![item(vec![id("phone", "+8613800000003")])],
    )
    .await;
    let b = resolve(
        &api,
        "tenant-b",
        vec![item(vec![id("phone", "+8613800000003")])],
    )
    .await;
    assert_ne!(a[0].person_id, b[0].person_id);
    assert!(a[0].created && b[0].created);
    assert_eq!(db.counts("tenant-a").await, (1, 1));
    assert_eq!(db.counts("tenant-b").await, (1, 1));

    // A platform account acts for the tenant it names; a tenant caller may
    // not name another tenant.
    let mut platform = Principal {
        tenant: PLATFORM_TENANT.to_owned(),
        ..caller("")
    };
    platform
        .scopes
        .insert(touchline_auth::PLATFORM_SCOPE.to_owned());
    let as_b = resolve_as(
        &api,
        platform,
        "tenants/tenant-b",
        vec![item(vec![id("phone", "+8613800000003")])],
    )
    .await
    .expect("platform call");
    assert_eq!(as_b[0].person_id, b[0].person_id);
    let denied = resolve_as(
        &api,
        caller("tenant-a"),
        "tenants/tenant-b",
        vec![item(vec![id("phone", "1")])],
    )
    .await
    .expect_err("other tenant");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    db.drop().await;
}

#[tokio::test]
async fn invalid_requests_name_the_field() {
    let db = TestDb::new(2).await;
    let api = IdentityApi::new(db.pool.clone(), None);

    let empty = resolve_as(
        &api,
        caller("t1"),
        "",
        vec![item(vec![id("phone", "1")]), item(Vec::new())],
    )
    .await
    .expect_err("empty item");
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    let details = empty.get_error_details();
    let fields: Vec<&str> = details
        .bad_request()
        .expect("field violations")
        .field_violations
        .iter()
        .map(|v| v.field.as_str())
        .collect();
    assert_eq!(fields, vec!["items[1].identifiers"]);

    let many: Vec<_> = (0..1_001)
        .map(|i| id("device_id", &format!("d-{i}")))
        .collect();
    let too_many = resolve_as(&api, caller("t1"), "", vec![item(many)])
        .await
        .expect_err("over the limit");
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
    assert!(
        too_many.message().contains("1000"),
        "{}",
        too_many.message()
    );
    let details = too_many.get_error_details();
    let violation = &details
        .bad_request()
        .expect("field violations")
        .field_violations[0];
    assert_eq!(violation.field, "items");
    assert!(violation.description.contains("1000"));

    // Nothing was written by refused calls.
    assert_eq!(db.counts("t1").await, (0, 0));

    // Exactly at the limit is fine.
    // (One value each of a thousand tenant-defined types: no per-type
    // limit is reached.)
    let limit: Vec<_> = (0..1_000)
        .map(|i| id(&format!("custom_{i}"), "v"))
        .collect();
    let ok = resolve(&api, "t1", vec![item(limit)]).await;
    assert!(ok[0].created);
    assert_eq!(db.counts("t1").await, (1, 1_000));
    db.drop().await;
}

#[tokio::test]
async fn a_call_without_a_principal_is_unauthenticated() {
    use touchline_proto::identity::v1::identity_service_server::IdentityService as _;
    let db = TestDb::new(2).await;
    let api = IdentityApi::new(db.pool.clone(), None);
    let status = api
        .batch_resolve(tonic::Request::new(Default::default()))
        .await
        .expect_err("no principal");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    db.drop().await;
}
