//! Bad input is handled precisely: what collection cannot store is refused per
//! event with the field named; bad content is stored and quarantined by
//! governance with a typed reason, so nothing is lost; an oversized request is
//! refused with the limit named.

use std::time::Duration;

use touchline_e2e::sample_event;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::collection::v1::{IngestEventsRequest, IngestStatus};
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::governance::v1::{ListQuarantinedRequest, QuarantineReason};
use touchline_testkit::{TestApp, eventually, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstorable_events_are_refused_and_bad_content_is_quarantined() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("acme", &["events:write", "quarantine:read"]);
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let good = sample_event("ok-1", 1, "view", 1_795_507_200_000);
    let mut empty_name = sample_event("bad-name", 1, "", 1_795_507_200_000);
    empty_name.event = String::new();
    let nul_name = sample_event("bad-nul-name", 1, "vi\0ew", 1_795_507_200_000);
    let mut nul = sample_event("bad-nul", 1, "view", 1_795_507_200_000);
    nul.properties = Some(prost_types::Struct {
        fields: [(
            "page".to_owned(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("home\0x".into())),
            },
        )]
        .into(),
    });
    let mut bad_time = sample_event("bad-time", 1, "view", 0);
    bad_time.original_timestamp = "next tuesday".into();
    let good2 = sample_event("ok-2", 2, "view", 1_795_507_200_000);
    let response = collection
        .ingest_events(IngestEventsRequest {
            events: vec![good, empty_name, nul_name, nul, bad_time, good2],
        })
        .await?
        .into_inner();
    let statuses: Vec<IngestStatus> = response.results.iter().map(|r| r.status()).collect();
    assert_eq!(
        statuses,
        vec![
            IngestStatus::Accepted,
            IngestStatus::Rejected,
            IngestStatus::Rejected,
            IngestStatus::Accepted,
            IngestStatus::Accepted,
            IngestStatus::Accepted
        ]
    );
    let field = |i: usize| {
        response.results[i]
            .violations
            .first()
            .map(|v| (v.field.clone(), v.reason.clone()))
    };
    assert_eq!(field(1), Some(("event".into(), "EMPTY".into())));
    assert_eq!(field(2), Some(("event".into(), "NUL_BYTE".into())));
    assert_eq!(response.accepted_count, 4);
    assert_eq!(response.rejected_count, 2);

    // The stored bad content ends in quarantine with its reason.
    let governance = GovernanceServiceClient::new(app.channel(&token)?);
    let quarantined = eventually(Duration::from_secs(30), || {
        let mut governance = governance.clone();
        async move {
            let page = governance
                .list_quarantined(ListQuarantinedRequest {
                    parent: "tenants/acme".into(),
                    page_size: 100,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok((page.quarantined_events.len() >= 2).then_some(page.quarantined_events))
        }
    })
    .await?;
    let reason_of = |id: &str| {
        quarantined
            .iter()
            .find(|q| q.event.as_ref().is_some_and(|e| e.message_id == id))
            .map(|q| q.reason())
    };
    assert_eq!(
        reason_of("bad-time"),
        Some(QuarantineReason::InvalidTimestamp)
    );
    assert!(
        matches!(
            reason_of("bad-nul"),
            Some(QuarantineReason::InvalidPropertyValue | QuarantineReason::MalformedPayload)
        ),
        "{:?}",
        reason_of("bad-nul")
    );
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_name_the_limit() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let mut collection =
        CollectionServiceClient::new(app.channel(&token("acme", &["events:write"]))?);
    // More bytes than the 4 MiB message limit.
    let mut big = sample_event("big", 1, "view", 1_795_507_200_000);
    big.event = "x".repeat(200);
    big.anonymous_id = "y".repeat(5 * 1024 * 1024);
    let status = collection
        .ingest_events(IngestEventsRequest { events: vec![big] })
        .await
        .expect_err("too large");
    assert!(
        status.message().contains(&(4 * 1024 * 1024).to_string()),
        "{status:?}"
    );

    // More events than the per-call limit.
    let events = (0..1_001)
        .map(|i| sample_event(&format!("m{i}"), 1, "view", 1_795_507_200_000))
        .collect();
    let status = collection
        .ingest_events(IngestEventsRequest { events })
        .await
        .expect_err("too many");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("1000"), "{}", status.message());
    app.stop().await;
    Ok(())
}
