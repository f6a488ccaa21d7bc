//! Every implemented RPC refuses bad tokens, missing scopes and other
//! tenants' data, through the real server.

use std::time::Duration;

use touchline_auth::TokenClaims;
use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{CountEventsRequest, ListEventsRequest};
use touchline_proto::reporting::v1::GetEventCountsRequest;
use touchline_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use touchline_testkit::{TEST_ISSUER, TEST_SECRET, TestApp, eventually, token};

fn claims(tenant: &str) -> TokenClaims {
    TokenClaims::new(TEST_ISSUER, TEST_ISSUER, "tester", tenant)
        .with_scopes(["events:write", "models:read"])
}

fn hs(claims: &TokenClaims, secret: &str) -> String {
    touchline_auth::mint_hs256(secret.as_bytes(), claims).unwrap_or_default()
}

fn one_event() -> IngestEventsRequest {
    IngestEventsRequest {
        events: vec![sample_event("auth-1", 1, "view", 1_795_507_200_000)],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_unauthenticated_and_missing_scopes_denied() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let channel = touchline_runtime::client::lazy_channel(&format!("http://{}", app.addr()))?;

    // No token at all.
    let status = CollectionServiceClient::new(channel.clone())
        .ingest_events(one_event())
        .await
        .expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    let now = chrono::Utc::now();
    let mut expired = claims("acme");
    expired.issued_at = Some(now - chrono::Duration::hours(3));
    expired.ttl = Duration::from_secs(3600);
    let mut not_yet = claims("acme");
    not_yet.not_before = Some(now + chrono::Duration::hours(1));
    let mut wrong_issuer = claims("acme");
    wrong_issuer.issuer = "someone-else".into();
    let mut wrong_audience = claims("acme");
    wrong_audience.audience = "another-api".into();
    let forged = hs(&claims("acme"), "not-the-server-secret");
    let garbage = "not.a.jwt".to_owned();
    for (case, token) in [
        ("expired", hs(&expired, TEST_SECRET)),
        ("not yet valid", hs(&not_yet, TEST_SECRET)),
        ("wrong issuer", hs(&wrong_issuer, TEST_SECRET)),
        ("wrong audience", hs(&wrong_audience, TEST_SECRET)),
        ("bad signature", forged),
        ("malformed", garbage),
    ] {
        let status = CollectionServiceClient::new(app.channel(&token)?)
            .ingest_events(one_event())
            .await
            .expect_err(case);
        assert_eq!(
            status.code(),
            tonic::Code::Unauthenticated,
            "{case}: {}",
            status.message()
        );
    }

    // A valid token without the RPC's scope.
    let reader = token("acme", &["models:read"]);
    let status = CollectionServiceClient::new(app.channel(&reader)?)
        .ingest_events(one_event())
        .await
        .expect_err("missing scope");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_is_refused_when_not_enabled() -> anyhow::Result<()> {
    crate::init();
    let db = touchline_testkit::TestDatabase::create().await?;
    // The server trusts only a key set; the pipeline gets its own token.
    let jwks = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/auth/tests/fixtures/test-only-jwks.json");
    let pipeline_token = token("*", &["pipeline:read", "identity:resolve", "models:read"]);
    let app = TestApp::spawn_with(db, |config| {
        config.auth.allow_hs256 = false;
        config.auth.hs256_secret = None;
        config.auth.jwks_file = Some(jwks);
        config.pipeline.token = Some(pipeline_token.into());
    })
    .await?;
    let status = CollectionServiceClient::new(app.channel(&token("acme", &["events:write"]))?)
        .ingest_events(one_event())
        .await
        .expect_err("hs256 not enabled");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_see_each_others_data() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let a = token("tenant-a", &["events:write", "models:read", "reports:read"]);
    let b = token("tenant-b", &["events:write", "models:read", "reports:read"]);
    CollectionServiceClient::new(app.channel(&a)?)
        .ingest_events(one_event())
        .await?;
    let mut modeling_a = ModelingServiceClient::new(app.channel(&a)?);
    eventually(Duration::from_secs(30), || {
        let mut m = modeling_a.clone();
        async move {
            let n = m
                .count_events(CountEventsRequest::default())
                .await?
                .into_inner()
                .total_events;
            Ok((n == 1).then_some(()))
        }
    })
    .await?;
    let _ = &mut modeling_a;

    let mut modeling_b = ModelingServiceClient::new(app.channel(&b)?);
    assert_eq!(
        modeling_b
            .count_events(CountEventsRequest::default())
            .await?
            .into_inner()
            .total_events,
        0
    );
    assert!(
        modeling_b
            .list_events(ListEventsRequest::default())
            .await?
            .into_inner()
            .events
            .is_empty()
    );
    let denied = modeling_b
        .count_events(CountEventsRequest {
            parent: "tenants/tenant-a".into(),
            ..Default::default()
        })
        .await
        .expect_err("other tenant");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let mut reporting_b = ReportingServiceClient::new(app.channel(&b)?);
    assert_eq!(
        reporting_b
            .get_event_counts(GetEventCountsRequest::default())
            .await?
            .into_inner()
            .total_events,
        0
    );
    let denied = reporting_b
        .get_event_counts(GetEventCountsRequest {
            parent: "tenants/tenant-a".into(),
        })
        .await
        .expect_err("other tenant");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    // The tail of another tenant's log is refused too.
    let all = touchline_proto::collection::v1::TailRawEventsRequest {
        selector: Some(touchline_proto::common::v1::TailSelector {
            all_tenants: true,
            ..Default::default()
        }),
    };
    let pipeline_b = token("tenant-b", &["pipeline:read"]);
    let denied = CollectionServiceClient::new(app.channel(&pipeline_b)?)
        .tail_raw_events(all)
        .await
        .expect_err("all tenants");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    app.stop().await;
    Ok(())
}

/// Tenancy is data, not a wildcard: a tenant claim of `*` with an ordinary scope reads
/// nothing, and a tenant claim that is no valid tenant id (a NUL, a `/`) is refused as
/// UNAUTHENTICATED instead of reaching the stores (INTERNAL) or naming another resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_claims_are_validated_and_the_wildcard_needs_the_platform_scope()
-> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    CollectionServiceClient::new(app.channel(&token("acme", &["events:write"]))?)
        .ingest_events(one_event())
        .await?;
    for tenant in ["*", "a\u{0}b", "A/x", "tenants/A", &"t".repeat(65)] {
        let caller = token(tenant, &["models:read", "events:write"]);
        let status = ModelingServiceClient::new(app.channel(&caller)?)
            .list_events(ListEventsRequest {
                parent: "tenants/acme".to_owned(),
                ..Default::default()
            })
            .await
            .expect_err("refused");
        assert_eq!(
            status.code(),
            tonic::Code::Unauthenticated,
            "tenant {tenant:?}"
        );
    }
    // With the explicit platform scope, the wildcard acts for the tenant it names.
    let platform = token("*", &["models:read", touchline_auth::PLATFORM_SCOPE]);
    let mut modeling = ModelingServiceClient::new(app.channel(&platform)?);
    eventually(Duration::from_secs(30), || {
        let mut modeling = modeling.clone();
        async move {
            let page = modeling
                .list_events(ListEventsRequest {
                    parent: "tenants/acme".to_owned(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok((page.events.len() == 1).then_some(()))
        }
    })
    .await?;
    let _ = &mut modeling;
    app.stop().await;
    Ok(())
}
