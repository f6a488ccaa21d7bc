//! Idempotency keys: a keyed call claims its key before acting, so a
//! duplicate never acts beside it, and a retry gets the first reply. The
//! key's life cycle is tested with the shared table code in touchline-db.

use std::time::Duration;

use touchline_identity::IdentityApi;
use touchline_proto::identity::v1 as pb;
use touchline_proto::identity::v1::identity_service_server::IdentityService as _;

use crate::helpers::{TestDb, admin, event, id, req, resolve};

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
