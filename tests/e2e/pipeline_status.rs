//! A stuck stage is seen in seconds: GetPipelineStatus reports each consumer's head, cursor,
//! lag and last error per tenant, and the pipeline service's health entry turns NOT_SERVING
//! while a consumer is stuck.

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use touchline::ServiceName;
use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::pipeline::v1::pipeline_service_client::PipelineServiceClient;
use touchline_proto::pipeline::v1::{ConsumerState, GetPipelineStatusRequest};
use touchline_testkit::{TestApp, TestDatabase, eventually, token};

const SCOPES: &[&str] = &["events:write", "pipeline:read"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_report_their_position_per_tenant() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let acme = token("acme", SCOPES);
    CollectionServiceClient::new(app.channel(&acme)?)
        .ingest_events(IngestEventsRequest {
            events: (0..5)
                .map(|i| sample_event(&format!("s-{i}"), i, "view", 1_795_507_200_000))
                .collect(),
        })
        .await?;
    let status = PipelineServiceClient::new(app.channel(&acme)?);
    let caught_up = eventually(Duration::from_secs(30), || {
        let mut status = status.clone();
        async move {
            let reply = status
                .get_pipeline_status(GetPipelineStatusRequest::default())
                .await?
                .into_inner();
            let done = ["governance.clean", "modeling.events"].iter().all(|c| {
                reply.consumers.iter().any(|s| {
                    &s.consumer == c
                        && s.head_sequence >= 5
                        && s.lag_events == 0
                        && s.state() == ConsumerState::CaughtUp
                })
            });
            Ok(done.then_some(reply))
        }
    })
    .await?;
    assert!(!caught_up.stuck);
    assert!(
        caught_up.consumers.iter().all(|c| c.tenant == "acme"),
        "only the caller's tenant"
    );
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_consumer_shows_in_status_and_readiness_within_ten_seconds() -> anyhow::Result<()> {
    crate::init();
    let db = TestDatabase::create().await?;
    // Identity is configured at an address where nothing answers: modeling cannot resolve.
    let app = TestApp::spawn_with(db, |config| {
        config.services = vec![
            ServiceName::Collection,
            ServiceName::Governance,
            ServiceName::Modeling,
            ServiceName::Reporting,
        ];
        config
            .pipeline
            .upstream
            .insert(ServiceName::Identity, "http://127.0.0.1:9".to_owned());
    })
    .await?;
    let platform = token("*", &["pipeline:read", touchline_auth::PLATFORM_SCOPE]);
    let status = PipelineServiceClient::new(app.channel(&platform)?);
    let reply = eventually(Duration::from_secs(10), || {
        let mut status = status.clone();
        async move {
            let reply = status
                .get_pipeline_status(GetPipelineStatusRequest::default())
                .await?
                .into_inner();
            Ok(reply.stuck.then_some(reply))
        }
    })
    .await?;
    let stuck = reply
        .consumers
        .iter()
        .find(|c| c.state() == ConsumerState::Stuck)
        .ok_or_else(|| anyhow::anyhow!("no stuck consumer in {reply:?}"))?;
    assert!(stuck.consumer.starts_with("modeling."), "{stuck:?}");
    assert!(
        !stuck.last_error.is_empty() && stuck.failing_since.is_some(),
        "{stuck:?}"
    );
    // Readiness follows within the next second of the status.
    let channel = touchline_runtime::client::lazy_channel(&format!("http://{}", app.addr()))?;
    let health = HealthClient::new(channel);
    eventually(Duration::from_secs(3), || {
        let mut health = health.clone();
        async move {
            let reply = health
                .check(HealthCheckRequest {
                    service: "touchline.pipeline.v1.PipelineService".to_owned(),
                })
                .await?
                .into_inner();
            Ok((reply.status == ServingStatus::NotServing as i32).then_some(()))
        }
    })
    .await?;
    app.stop().await;
    Ok(())
}
