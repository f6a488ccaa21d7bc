//! Read your writes, and the dead letters a person can list and replay.
//!
//! A caller that passes the raw-log position collection acknowledged gets an answer that
//! already holds its events — without polling — even when its last event was quarantined;
//! a position nobody wrote yet ends at the caller's deadline. A dead letter is listed without
//! its payload, and a replay stores it under the person its identifiers name.

use std::time::Duration;

use prost::Message as _;
use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::governance::v1::CleanEvent;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    CountEventsRequest, DeadLetterOutcome, ListDeadLettersRequest, ListEventsRequest,
    ReplayDeadLettersRequest,
};
use touchline_testkit::{TestApp, token};

const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "quarantine:read",
    "quarantine:write",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_at_the_acknowledged_position_holds_the_callers_events() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("ryw", SCOPES);
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling = ModelingServiceClient::new(app.channel(&token)?);

    for round in 0..5 {
        let mut events: Vec<_> = (0..40)
            .map(|i| {
                sample_event(
                    &format!("r{round}-{i}"),
                    i % 7,
                    "view",
                    1_795_507_200_000 + i64::from(round * 100 + i as i32),
                )
            })
            .collect();
        // The last event of the batch is quarantined: the position still becomes visible.
        let mut bad = sample_event(&format!("r{round}-bad"), 1, "view", 0);
        bad.original_timestamp = "not a time".to_owned();
        events.push(bad);
        let acked = collection
            .ingest_events(IngestEventsRequest { events })
            .await?
            .into_inner();
        assert_eq!(acked.accepted_count, 41);
        let position = acked.results.iter().map(|r| r.sequence).max().unwrap_or(0);

        let counts = modeling
            .count_events(CountEventsRequest {
                min_raw_sequence: position,
                ..CountEventsRequest::default()
            })
            .await?
            .into_inner();
        assert_eq!(
            counts.total_events,
            i64::from(40 * (round + 1)),
            "every clean event acknowledged so far is counted, round {round}"
        );
        assert!(counts.clean_sequence > 0);
        let page = modeling
            .list_events(ListEventsRequest {
                page_size: 1_000,
                min_raw_sequence: position,
                ..ListEventsRequest::default()
            })
            .await?
            .into_inner();
        let prefix = format!("r{round}-");
        let mine = page
            .events
            .iter()
            .filter(|e| e.message_id.starts_with(&prefix))
            .count();
        assert_eq!(mine, 40, "the round's clean events are listed at once");
        assert!(page.clean_sequence >= counts.clean_sequence);
    }

    // A negative position is refused; one nobody wrote ends at the caller's deadline.
    let refused = modeling
        .count_events(CountEventsRequest {
            min_raw_sequence: -1,
            ..CountEventsRequest::default()
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(refused, Some(tonic::Code::InvalidArgument));
    let mut far = tonic::Request::new(CountEventsRequest {
        min_raw_sequence: 1_000_000,
        ..CountEventsRequest::default()
    });
    far.set_timeout(Duration::from_millis(400));
    let waited = modeling.count_events(far).await.err().map(|s| s.code());
    assert_eq!(waited, Some(tonic::Code::DeadlineExceeded));
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_and_a_replay_stores_it_once() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("dl", SCOPES);
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling = ModelingServiceClient::new(app.channel(&token)?);
    let acked = collection
        .ingest_events(IngestEventsRequest {
            events: vec![sample_event("dl-1", 3, "submit_order", 1_795_507_200_000)],
        })
        .await?
        .into_inner();
    let page = modeling
        .list_events(ListEventsRequest {
            min_raw_sequence: acked.results[0].sequence,
            ..ListEventsRequest::default()
        })
        .await?
        .into_inner();
    let [stored] = page.events.as_slice() else {
        anyhow::bail!("one event stored, got {:?}", page.events);
    };

    // The state after identity refused an event of the same person (its rules since fixed):
    // a letter holding the clean event, set aside in the same store.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&app.db.url).await?;
    let payload: Vec<u8> = sqlx::query_scalar(
        "SELECT payload FROM modeling.events WHERE tenant_id = 'dl' AND message_id = 'dl-1'",
    )
    .fetch_one(&mut db)
    .await?;
    let mut letter = CleanEvent::decode(payload.as_slice())?;
    letter.message_id = "dl-2".to_owned();
    letter.sequence = stored.sequence + 1_000;
    sqlx::query(
        "INSERT INTO modeling.dead_letters (tenant_id, sequence, message_id, reason, detail, payload)
         VALUES ('dl', $1, 'dl-2', 'IDENTIFIERS_REFUSED', 'identity answered InvalidArgument', $2)",
    )
    .bind(letter.sequence)
    .bind(letter.encode_to_vec())
    .execute(&mut db)
    .await?;

    let listed = modeling
        .list_dead_letters(ListDeadLettersRequest::default())
        .await?
        .into_inner();
    let [listed_letter] = listed.dead_letters.as_slice() else {
        anyhow::bail!("one letter listed, got {:?}", listed.dead_letters);
    };
    assert_eq!(listed_letter.message_id, "dl-2");
    assert_eq!(listed_letter.reason, "IDENTIFIERS_REFUSED");
    assert_eq!(listed_letter.event_name, "submit_order");
    assert!(listed_letter.set_aside_time.is_some());

    // Another tenant sees none of it.
    let other = ModelingServiceClient::new(app.channel(&other())?)
        .list_dead_letters(ListDeadLettersRequest::default())
        .await?
        .into_inner();
    assert!(other.dead_letters.is_empty());

    let replay = modeling
        .replay_dead_letters(ReplayDeadLettersRequest {
            sequences: vec![letter.sequence],
            ..ReplayDeadLettersRequest::default()
        })
        .await?
        .into_inner();
    assert_eq!(replay.stored_count, 1, "{replay:?}");
    assert_eq!(replay.results[0].outcome(), DeadLetterOutcome::Stored);
    let events = modeling
        .list_events(ListEventsRequest::default())
        .await?
        .into_inner()
        .events;
    let replayed = events
        .iter()
        .find(|e| e.message_id == "dl-2")
        .ok_or_else(|| anyhow::anyhow!("the replayed event is stored"))?;
    assert_eq!(
        replayed.person_id, stored.person_id,
        "the replayed event belongs to the person its identifiers name"
    );
    let left = modeling
        .list_dead_letters(ListDeadLettersRequest::default())
        .await?
        .into_inner();
    assert!(left.dead_letters.is_empty());

    // Replaying again finds nothing and changes nothing; too many sequences are refused.
    let again = modeling
        .replay_dead_letters(ReplayDeadLettersRequest {
            sequences: vec![letter.sequence],
            ..ReplayDeadLettersRequest::default()
        })
        .await?
        .into_inner();
    assert!(again.results.is_empty());
    let too_many = modeling
        .replay_dead_letters(ReplayDeadLettersRequest {
            sequences: (1..=1_001).collect(),
            ..ReplayDeadLettersRequest::default()
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(too_many, Some(tonic::Code::InvalidArgument));
    app.stop().await;
    Ok(())
}

fn other() -> String {
    token("someone-else", SCOPES)
}
