//! Idempotency keys: a keyed call claims its key before acting, so a
//! duplicate never acts beside it, and a retry gets the first reply.

use std::time::Duration;

use touchline_identity::IdentityApi;
use touchline_identity::store::admin::{Claim, claim_request, complete_request, release_request};
use touchline_proto::identity::v1 as pb;
use touchline_proto::identity::v1::identity_service_server::IdentityService as _;
use uuid::Uuid;

use crate::helpers::{TestDb, admin, event, id, req, resolve};

/// Moves the claim time of tenant t1's key for `method` back by `by`.
async fn age(pool: &sqlx::PgPool, method: &str, by: &str) {
    sqlx::query(
        "UPDATE identity.requests SET created_at = now() - $2::interval
          WHERE tenant_id = 't1' AND method = $1",
    )
    .bind(method)
    .bind(by)
    .execute(pool)
    .await
    .expect("age the key");
}

#[tokio::test]
async fn a_key_is_claimed_once_completed_released_and_taken_over_when_stale() {
    let db = TestDb::new(2).await;
    let pool = &db.pool;
    let key = Uuid::from_u128(1);
    let claim = |tenant: &'static str, method: &'static str| async move {
        claim_request(pool, tenant, key, method)
            .await
            .expect("claim")
    };

    assert_eq!(claim("t1", "LinkIdentifiers").await, Claim::Owned);
    assert_eq!(claim("t1", "LinkIdentifiers").await, Claim::InFlight);
    // Keys are per tenant and per method.
    assert_eq!(claim("t2", "LinkIdentifiers").await, Claim::Owned);
    assert_eq!(claim("t1", "SplitPerson").await, Claim::Owned);
    complete_request(pool, "t1", key, "LinkIdentifiers", b"reply")
        .await
        .expect("complete");
    assert_eq!(
        claim("t1", "LinkIdentifiers").await,
        Claim::Done(b"reply".to_vec())
    );

    // A failed call gives its key back.
    release_request(pool, "t2", key, "LinkIdentifiers")
        .await
        .expect("release");
    assert_eq!(claim("t2", "LinkIdentifiers").await, Claim::Owned);
    // Releasing never drops a finished call's reply.
    release_request(pool, "t1", key, "LinkIdentifiers")
        .await
        .expect("release");
    assert_eq!(
        claim("t1", "LinkIdentifiers").await,
        Claim::Done(b"reply".to_vec())
    );

    // A claim a crashed process left behind is taken over after a minute,
    // and a reply past its retention is forgotten.
    age(pool, "SplitPerson", "2 minutes").await;
    assert_eq!(claim("t1", "SplitPerson").await, Claim::Owned);
    assert_eq!(claim("t1", "SplitPerson").await, Claim::InFlight);
    age(pool, "LinkIdentifiers", "25 hours").await;
    assert_eq!(claim("t1", "LinkIdentifiers").await, Claim::Owned);
    db.drop().await;
}

#[tokio::test]
async fn concurrent_duplicates_of_a_keyed_link_act_once() {
    let db = TestDb::new(8).await;
    let api = IdentityApi::new(db.pool.clone(), None);
    let a = resolve(&api, "t1", vec![event("m-1", vec![id("user_id", "a")])]).await[0]
        .person_id
        .clone();
    let b = resolve(&api, "t1", vec![event("m-2", vec![id("crm_id", "b")])]).await[0]
        .person_id
        .clone();
    assert_ne!(a, b);
    let link = || {
        req(
            admin("t1"),
            pb::LinkIdentifiersRequest {
                identifiers: vec![id("user_id", "a"), id("crm_id", "b")],
                reason: "the customer showed both".to_owned(),
                request_id: "3d0b8a4c-5f7e-4a1b-9c2d-6e8f0a1b2c3d".to_owned(),
                ..Default::default()
            },
        )
    };
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move { api.link_identifiers(link()).await })
        })
        .collect();
    let mut replies = Vec::new();
    let mut refused = 0;
    for call in calls {
        match call.await.expect("join") {
            Ok(reply) => replies.push(reply.into_inner()),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Aborted, "{status:?}");
                refused += 1;
            }
        }
    }
    assert!(!replies.is_empty(), "the first call succeeds");
    assert!(
        replies.windows(2).all(|w| w[0] == w[1]),
        "every reply is the first call's"
    );
    // A retry after the refusals gets that same reply.
    let mut retry = None;
    for _ in 0..50 {
        match api.link_identifiers(link()).await {
            Ok(reply) => {
                retry = Some(reply.into_inner());
                break;
            }
            Err(status) if status.code() == tonic::Code::Aborted => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("retry failed: {status:?}"),
        }
    }
    assert_eq!(retry.as_ref(), replies.first(), "{refused} were refused");
    let merges: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM identity.decisions WHERE tenant_id = 't1' AND kind = 'merge'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count merges");
    assert_eq!(merges, 1, "the link acted once");
    db.drop().await;
}
