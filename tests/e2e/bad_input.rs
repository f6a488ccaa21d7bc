//! Bad input is refused precisely: per event, with the field named; an
//! oversized request is refused with the limit named.

use touchline_e2e::sample_event;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::collection::v1::{IngestEventsRequest, IngestStatus};
use touchline_testkit::{TestApp, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_rejected_one_by_one_and_the_rest_accepted() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let mut collection =
        CollectionServiceClient::new(app.channel(&token("acme", &["events:write"]))?);
    let good = sample_event("ok-1", 1, "view", 1_795_507_200_000);
    let mut empty_name = sample_event("bad-name", 1, "", 1_795_507_200_000);
    empty_name.event = String::new();
    let mut nul = sample_event("bad-nul", 1, "view", 1_795_507_200_000);
    nul.anonymous_id = "anon\0x".into();
    let mut bad_time = sample_event("bad-time", 1, "view", 0);
    bad_time.original_timestamp = "next tuesday".into();
    let good2 = sample_event("ok-2", 2, "view", 1_795_507_200_000);
    let response = collection
        .ingest_events(IngestEventsRequest {
            events: vec![good, empty_name, nul, bad_time, good2],
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
            IngestStatus::Rejected,
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
    assert_eq!(field(2), Some(("anonymous_id".into(), "NUL_BYTE".into())));
    assert_eq!(
        field(3),
        Some(("original_timestamp".into(), "UNPARSEABLE_TIMESTAMP".into()))
    );
    assert_eq!(response.accepted_count, 2);
    assert_eq!(response.rejected_count, 3);
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
