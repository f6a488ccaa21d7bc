//! Health says SERVING once ready and NOT_SERVING while shutting down;
//! reflection lists what is mounted.

use std::time::Duration;

use tokio_stream::StreamExt as _;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use touchline_testkit::{TestApp, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_readiness_and_shutdown() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let channel = touchline_runtime::client::lazy_channel(&format!("http://{}", app.addr()))?;
    let mut health = HealthClient::new(channel.clone());
    for service in [
        "",
        "touchline.collection.v1.CollectionService",
        "touchline.reporting.v1.ReportingService",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service}");
    }
    let shutdown = app.shutdown.clone();
    shutdown.trigger();
    eventually(Duration::from_secs(5), || {
        let mut health = health.clone();
        async move {
            let status = health
                .check(HealthCheckRequest::default())
                .await?
                .into_inner()
                .status();
            Ok((status == ServingStatus::NotServing).then_some(()))
        }
    })
    .await?;
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_mounted_services() -> anyhow::Result<()> {
    crate::init();
    let db = touchline_testkit::TestDatabase::create().await?;
    let app = TestApp::spawn_with(db, |config| {
        config.services = vec![
            touchline::ServiceName::Collection,
            touchline::ServiceName::Identity,
        ];
    })
    .await?;
    let channel = touchline_runtime::client::lazy_channel(&format!("http://{}", app.addr()))?;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::once(request))
        .await?
        .into_inner();
    let mut names = Vec::new();
    while let Some(response) = responses.next().await {
        if let Some(MessageResponse::ListServicesResponse(list)) = response?.message_response {
            names.extend(list.service.into_iter().map(|s| s.name));
        }
    }
    names.sort();
    assert_eq!(
        names,
        vec![
            "grpc.health.v1.Health",
            "touchline.collection.v1.CollectionService",
            "touchline.identity.v1.IdentityService",
            // Every process serves the status of its own pipeline consumers.
            "touchline.pipeline.v1.PipelineService",
        ]
    );
    app.stop().await;
    Ok(())
}
