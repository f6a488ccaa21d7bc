//! Events travel collection → governance → identity → modeling exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::modeling::v1::ListEventsRequest;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::reporting::v1::GetEventCountsRequest;
use touchline_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use touchline_testkit::{TestApp, eventually, token};

const TOTAL: usize = 10_000;
const BATCH: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_arrive_exactly_once_and_resends_are_duplicates() -> anyhow::Result<()>
{
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("acme", &["events:write", "models:read", "reports:read"]);
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let events: Vec<_> = (0..TOTAL)
        .map(|i| {
            sample_event(
                &format!("msg-{i:05}"),
                (i % 700) as u64,
                ["view", "add_to_cart", "submit_order"][i % 3],
                1_795_507_200_000 + i as i64 * 1_000,
            )
        })
        .collect();
    for chunk in events.chunks(BATCH) {
        let response = collection
            .ingest_events(IngestEventsRequest {
                events: chunk.to_vec(),
            })
            .await?
            .into_inner();
        assert_eq!(response.accepted_count as usize, chunk.len());
    }

    let mut modeling = ModelingServiceClient::new(app.channel(&token)?);
    let ids = eventually(Duration::from_secs(60), || {
        let mut modeling = modeling.clone();
        async move {
            let ids = list_all(&mut modeling).await?;
            Ok((ids.len() >= TOTAL).then_some(ids))
        }
    })
    .await?;
    let expected: BTreeSet<String> = events.iter().map(|e| e.message_id.clone()).collect();
    let stored: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), TOTAL, "no event stored twice");
    assert_eq!(stored, expected, "exactly the sent message ids");

    // Sending everything again stores nothing new and says so.
    for chunk in events.chunks(BATCH) {
        let response = collection
            .ingest_events(IngestEventsRequest {
                events: chunk.to_vec(),
            })
            .await?
            .into_inner();
        assert_eq!(response.duplicate_count as usize, chunk.len());
        assert_eq!(response.accepted_count, 0);
    }
    let mut reporting = ReportingServiceClient::new(app.channel(&token)?);
    let counts = reporting
        .get_event_counts(GetEventCountsRequest::default())
        .await?
        .into_inner();
    assert_eq!(counts.total_events as usize, TOTAL);
    assert_eq!(counts.total_persons, 700, "one person per anonymous id");
    assert_eq!(
        counts.by_channel.iter().map(|r| r.events).sum::<i64>() as usize,
        TOTAL
    );
    assert_eq!(list_all(&mut modeling).await?.len(), TOTAL);
    app.stop().await;
    Ok(())
}

async fn list_all(
    modeling: &mut ModelingServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            touchline_runtime::client::CallCredentials,
        >,
    >,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = modeling
            .list_events(ListEventsRequest {
                parent: String::new(),
                page_size: 1_000,
                page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        ids.extend(page.events.into_iter().map(|e| e.message_id));
        if page.next_page_token.is_empty() {
            return Ok(ids);
        }
        page_token = page.next_page_token;
    }
}
