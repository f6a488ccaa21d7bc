//! Clear phones and emails, under any identifier type, never reach
//! identity's tables or Redis key names: BatchResolve leaves an item carrying
//! one unresolved (NOT_PSEUDONYMISED) and resolves the others, LinkIdentifiers
//! and SetConsent refuse them with NOT_PSEUDONYMISED, pseudonyms pass.

use touchline_identity::IdentityApi;
use touchline_proto::identity::v1 as pb;
use touchline_proto::identity::v1::identity_service_server::IdentityService as _;

use crate::helpers::{
    REDIS_URL, TestDb, admin, caller, clear_id, id, item, local_cache, req, resolve, resolve_as,
    violations,
};

/// Every Redis key name under `prefix`.
async fn redis_keys(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(REDIS_URL).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis");
    // SCAN in steps, not KEYS: a long-lived Redis shared by many test runs holds millions of
    // keys, and one KEYS over them outlasts the client's response timeout.
    let mut found = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .expect("scan");
        found.extend(keys);
        if next == 0 {
            return found;
        }
        cursor = next;
    }
}

/// Every stored identifier value of `tenant`.
async fn stored_values(db: &TestDb, tenant: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT id_value FROM identity.identifiers WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(&db.pool)
        .await
        .expect("identifier values")
}

#[tokio::test]
async fn batch_resolve_leaves_items_with_clear_values_unresolved_and_resolves_the_rest() {
    let db = TestDb::new(4).await;
    let (cache, prefix) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));
    let answers = resolve(
        &api,
        "t1",
        vec![
            item(vec![id("member_card", "m-1")]),
            item(vec![
                clear_id("user_id", "someone@example.cn"),
                id("crm_id", "c-1"),
            ]),
            item(vec![clear_id("anonymous_id", "139 1234 5678")]),
            item(vec![clear_id("phone", "+8613912345678")]),
            item(vec![clear_id("email", "Ann@Example.com")]),
            item(vec![id("member_card", "m-2")]),
        ],
    )
    .await;
    let reasons: Vec<(bool, pb::UnresolvedReason)> = answers
        .iter()
        .map(|r| (r.unresolved, r.unresolved_reason()))
        .collect();
    let clear = (true, pb::UnresolvedReason::NotPseudonymised);
    let resolved = (false, pb::UnresolvedReason::Unspecified);
    assert_eq!(
        reasons,
        vec![resolved, clear, clear, clear, clear, resolved]
    );
    assert!(answers[0].created && answers[5].created);
    assert!(answers[1..5].iter().all(|r| r.person_id.is_empty()));
    // Nothing of a refused item is stored, not even its pseudonymous crm id.
    assert_eq!(db.counts("t1").await, (2, 2), "the two cards only");
    let keys = redis_keys(&prefix).await;
    assert_eq!(keys.len(), 2, "{keys:?}");

    // A clear value beside another problem: the call is refused as a whole,
    // naming both.
    let refused = resolve_as(
        &api,
        caller("t1"),
        "",
        vec![
            item(vec![id("member_card", "m-3")]),
            item(vec![clear_id("phone", "+8613912345678"), clear_id("", "x")]),
        ],
    )
    .await
    .expect_err("an empty type is the call's problem");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        violations(&refused),
        vec![
            (
                "items[1].identifiers[1].type".to_owned(),
                "EMPTY".to_owned()
            ),
            (
                "items[1].identifiers[0].value".to_owned(),
                "NOT_PSEUDONYMISED".to_owned()
            ),
        ]
    );
    assert_eq!(db.counts("t1").await, (2, 2), "nothing of that call");

    // The same identifiers pseudonymised resolve, and neither the tables
    // nor the key names hold a clear value.
    let ok = resolve(
        &api,
        "t1",
        vec![item(vec![
            id("user_id", "someone@example.cn"),
            id("anonymous_id", "139 1234 5678"),
            id("crm_id", "c-1"),
        ])],
    )
    .await;
    assert!(ok[0].created);
    let values = stored_values(&db, "t1").await;
    let keys = redis_keys(&prefix).await;
    for clear in ["someone@example.cn", "139 1234 5678", "13912345678"] {
        assert!(!values.iter().any(|v| v.contains(clear)), "{values:?}");
        assert!(!keys.iter().any(|k| k.contains(clear)), "{keys:?}");
    }
    db.drop().await;
}

#[tokio::test]
async fn link_identifiers_and_set_consent_refuse_clear_values() {
    let db = TestDb::new(4).await;
    let api = IdentityApi::new(db.pool.clone(), None);
    let link = api
        .link_identifiers(req(
            admin("t1"),
            pb::LinkIdentifiersRequest {
                identifiers: vec![id("crm_id", "c-1"), clear_id("user_id", "ann@example.cn")],
                reason: "the customer showed both".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("a clear email is refused");
    assert_eq!(link.code(), tonic::Code::InvalidArgument);
    // LinkIdentifiers names its identifiers like one resolve item.
    assert!(
        violations(&link).iter().any(|(field, reason)| {
            field.ends_with("identifiers[1].value") && reason == "NOT_PSEUDONYMISED"
        }),
        "{:?}",
        violations(&link)
    );
    let consent = api
        .set_consent(req(
            admin("t1"),
            pb::SetConsentRequest {
                person_ref: Some(pb::set_consent_request::PersonRef::Identifier(clear_id(
                    "phone",
                    "139-1234-5678",
                ))),
                marketing_opt_out: true,
                ..Default::default()
            },
        ))
        .await
        .expect_err("a clear phone is refused");
    assert_eq!(consent.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        violations(&consent),
        vec![(
            "identifier.value".to_owned(),
            "NOT_PSEUDONYMISED".to_owned()
        )]
    );
    assert_eq!(db.counts("t1").await, (0, 0), "nothing is stored");

    // The pseudonym of the same phone is remembered with its opt-out.
    let ok = api
        .set_consent(req(
            admin("t1"),
            pb::SetConsentRequest {
                person_ref: Some(pb::set_consent_request::PersonRef::Identifier(id(
                    "phone",
                    "139-1234-5678",
                ))),
                marketing_opt_out: true,
                ..Default::default()
            },
        ))
        .await
        .expect("a pseudonym is accepted");
    assert!(!ok.into_inner().person_id.is_empty());
    db.drop().await;
}
