//! StreamEvents acknowledges each batch in order with the same semantics
//! as IngestEvents, and GetIngestCounts reconciles with what was sent.

use touchline_e2e::sample_event;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::collection::v1::stream_events_response::Response as Answer;
use touchline_proto::collection::v1::{
    GetIngestCountsRequest, IngestEventsRequest, IngestStatus, StreamEventsRequest,
};
use touchline_proto::common::v1::Event;
use touchline_proto::prost_types::Timestamp;
use touchline_testkit::{TestApp, TestDatabase, token};

fn batch(id: &str, events: Vec<Event>) -> StreamEventsRequest {
    StreamEventsRequest {
        batch_id: id.to_owned(),
        events,
        return_all_results: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_batches_are_acknowledged_in_order_and_counted() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let writer = token("acme", &["events:write", "pipeline:read"]);
    let mut client = CollectionServiceClient::new(app.channel(&writer)?);
    let events = |from: usize, to: usize| -> Vec<Event> {
        (from..to)
            .map(|i| sample_event(&format!("s-{i}"), i as u64, "view", 1_795_507_200_000))
            .collect()
    };
    let mut bad = sample_event("s-bad", 1, "", 1_795_507_200_000);
    bad.event.clear();
    let mut third = events(200, 300);
    third.push(bad);
    third.push(sample_event("s-0", 0, "view", 1_795_507_200_000));
    let requests = vec![
        batch("b1", events(0, 100)),
        batch("b2", events(100, 200)),
        batch("b3", third),
    ];
    let mut answers = client
        .stream_events(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let mut acks = Vec::new();
    let mut summary = None;
    while let Some(answer) = answers.message().await? {
        match answer.response {
            Some(Answer::Ack(ack)) => acks.push(ack),
            Some(Answer::Summary(s)) => summary = Some(s),
            None => anyhow::bail!("empty answer"),
        }
    }
    let ids: Vec<&str> = acks.iter().map(|a| a.batch_id.as_str()).collect();
    assert_eq!(ids, ["b1", "b2", "b3"], "acknowledged in batch order");
    assert_eq!(acks[0].accepted_count, 100);
    assert!(acks[0].results.is_empty(), "accepted results are left out");
    assert!(acks[1].last_sequence > acks[0].last_sequence);
    assert_eq!(acks[2].accepted_count, 100);
    assert_eq!(acks[2].rejected_count, 1);
    assert_eq!(acks[2].duplicate_count, 1);
    let statuses: Vec<IngestStatus> = acks[2].results.iter().map(|r| r.status()).collect();
    assert_eq!(statuses, [IngestStatus::Rejected, IngestStatus::Duplicate]);
    assert_eq!(acks[2].results[0].index, 100);
    let summary = summary.unwrap_or_default();
    assert_eq!(summary.batch_count, 3);
    assert_eq!(summary.accepted_count, 300);

    // A batch without an id ends the stream with INVALID_ARGUMENT after
    // the acknowledgements before it.
    let mut answers = client
        .stream_events(tokio_stream::iter(vec![
            batch("c1", events(300, 310)),
            batch("", events(310, 320)),
        ]))
        .await?
        .into_inner();
    let first = answers.message().await?;
    assert!(matches!(
        first.and_then(|a| a.response),
        Some(Answer::Ack(ack)) if ack.accepted_count == 10
    ));
    let err = answers.message().await.expect_err("no batch id");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // The counters hold what arrived, per source and hour.
    client
        .ingest_events(IngestEventsRequest {
            events: events(0, 5),
        })
        .await?;
    let counts = client
        .get_ingest_counts(GetIngestCountsRequest {
            parent: "tenants/acme".to_owned(),
            start_time: Some(Timestamp {
                seconds: chrono::Utc::now().timestamp() - 3_600,
                nanos: 0,
            }),
            end_time: None,
            sources: vec!["sdk-app".to_owned()],
        })
        .await?
        .into_inner()
        .counts;
    let accepted: i64 = counts.iter().map(|c| c.accepted_count).sum();
    let duplicates: i64 = counts.iter().map(|c| c.duplicate_count).sum();
    let rejected: i64 = counts.iter().map(|c| c.rejected_count).sum();
    let received: i64 = counts.iter().map(|c| c.received_count).sum();
    assert_eq!(accepted, 310);
    assert_eq!(duplicates, 1 + 5);
    assert_eq!(rejected, 1);
    assert_eq!(received, accepted + duplicates);
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_over_their_rate_get_resource_exhausted_with_a_retry_hint() -> anyhow::Result<()> {
    crate::init();
    let db = TestDatabase::create().await?;
    let app = TestApp::spawn_with(db, |config| {
        config.collection.tenant_events_per_second = 10;
        config.collection.tenant_burst_events = 20;
    })
    .await?;
    let mut client = CollectionServiceClient::new(app.channel(&token("acme", &["events:write"]))?);
    let events: Vec<Event> = (0..15)
        .map(|i| sample_event(&format!("r-{i}"), 1, "view", 1_795_507_200_000))
        .collect();
    client
        .ingest_events(IngestEventsRequest {
            events: events.clone(),
        })
        .await?;
    let status = client
        .ingest_events(IngestEventsRequest { events })
        .await
        .expect_err("over the rate");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let details = String::from_utf8_lossy(status.details()).into_owned();
    assert!(details.contains("google.rpc.RetryInfo"), "{details}");
    // Another tenant is not affected.
    let mut other = CollectionServiceClient::new(app.channel(&token("globex", &["events:write"]))?);
    let response = other
        .ingest_events(IngestEventsRequest {
            events: vec![sample_event("g-1", 1, "view", 1_795_507_200_000)],
        })
        .await?
        .into_inner();
    assert_eq!(response.accepted_count, 1);
    app.stop().await;
    Ok(())
}

/// A batch refused as a whole ends the stream, and no batch sent after it is stored: the
/// stream used to commit a later batch it never acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_after_a_refused_batch_is_stored() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let writer = token("acme", &["events:write", "pipeline:read"]);
    let mut client = CollectionServiceClient::new(app.channel(&writer)?);
    let events = |from: usize, to: usize| -> Vec<Event> {
        (from..to)
            .map(|i| sample_event(&format!("r-{i}"), i as u64, "view", 1_795_507_200_000))
            .collect()
    };
    let over_limit = 1_001; // the default max_batch_events is 1,000
    let requests = vec![
        batch("first", events(0, 10)),
        batch("too-big", events(10, 10 + over_limit)),
        batch("after", events(20_000, 20_010)),
    ];
    let mut answers = client
        .stream_events(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let mut acked = Vec::new();
    let status = loop {
        match answers.message().await {
            Ok(Some(answer)) => {
                if let Some(Answer::Ack(ack)) = answer.response {
                    acked.push(ack.batch_id);
                }
            }
            Ok(None) => anyhow::bail!("the stream ended without refusing the oversized batch"),
            Err(status) => break status,
        }
    };
    assert_eq!(
        acked,
        ["first"],
        "the batch before the refused one is answered"
    );
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db.url).await?;
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM collection.raw_events WHERE tenant_id = 'acme' AND message_id LIKE 'r-2____'",
    )
    .fetch_one(&mut db)
    .await?;
    assert_eq!(stored, 0, "the batch after the refused one is not stored");
    app.stop().await;
    Ok(())
}

/// A message id repeats only what the batch stores: when its first occurrence is rejected, a
/// later valid event with the same id is accepted, not called a duplicate of nothing (found by
/// the cross-stage fuzz run). Sources are stored trimmed, as governance reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_of_a_rejected_event_is_judged_on_its_own() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let writer = token("acme", &["events:write"]);
    let mut client = CollectionServiceClient::new(app.channel(&writer)?);
    let mut bad = sample_event("same-id", 1, "view", 1_795_507_200_000);
    bad.channel = "a\u{0}b".to_owned();
    let mut good = sample_event("same-id", 1, "view", 1_795_507_200_000);
    good.source = "  sdk-app \t".to_owned();
    let reply = client
        .ingest_events(IngestEventsRequest {
            events: vec![bad, good],
        })
        .await?
        .into_inner();
    assert_eq!(reply.results[0].status(), IngestStatus::Rejected);
    assert_eq!(reply.results[1].status(), IngestStatus::Accepted);
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db.url).await?;
    let source: String = sqlx::query_scalar(
        "SELECT source FROM collection.raw_events WHERE tenant_id = 'acme' AND message_id = 'same-id'",
    )
    .fetch_one(&mut db)
    .await?;
    assert_eq!(source, "sdk-app");
    app.stop().await;
    Ok(())
}

/// A message id sent in an early batch of a stream and again in a later one is stored from the
/// early batch: the later copy is its duplicate, never the other way round, even when the
/// early batch is large and the later one tiny (so the later one would be ready first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streams_batches_commit_in_order() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let writer = token("acme", &["events:write"]);
    let mut client = CollectionServiceClient::new(app.channel(&writer)?);
    for round in 0..15 {
        let big: Vec<Event> = (0..1_000)
            .map(|i| sample_event(&format!("o{round}-{i}"), i, "view", 1_795_507_200_000))
            .collect();
        let small = vec![sample_event(
            &format!("o{round}-999"),
            1,
            "view",
            1_795_507_200_000,
        )];
        let requests = vec![
            StreamEventsRequest {
                return_all_results: true,
                ..batch("big", big)
            },
            StreamEventsRequest {
                return_all_results: true,
                ..batch("small", small)
            },
        ];
        let mut answers = client
            .stream_events(tokio_stream::iter(requests))
            .await?
            .into_inner();
        let mut acks = Vec::new();
        while let Some(answer) = answers.message().await? {
            if let Some(Answer::Ack(ack)) = answer.response {
                acks.push(ack);
            }
        }
        let [big, small] = acks.as_slice() else {
            anyhow::bail!("two acknowledgements, got {}", acks.len());
        };
        assert_eq!(big.accepted_count, 1_000, "round {round}");
        assert_eq!(
            small.results[0].status(),
            IngestStatus::Duplicate,
            "round {round}: the later copy is the duplicate"
        );
    }
    app.stop().await;
    Ok(())
}
