//! Journey results survive a restart: the same questions asked before and after the whole
//! application is stopped and started again on the same database (the projection rebuilt
//! from the store, the identity cache empty) get the same answers, figure for figure.

use touchline_proto::common::v1::TimeRange;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    AnalysisScope, AttributionModel, AttributionModelType, ComputationInfo, EventMatcher,
    FunnelDefinition, FunnelStep, Interval, LifecycleOptions, RunAttributionRequest,
    RunFunnelRequest, RunLifecycleRequest, RunPathsRequest, RunRetentionRequest,
};
use touchline_testkit::{TestApp, token};

use touchline_e2e::Modeling;

const T0: i64 = 1_788_739_200_000;
const DAY: i64 = 86_400_000;
const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "dictionary:read",
    "dictionary:write",
];

fn scope() -> Option<AnalysisScope> {
    let at = |ms: i64| prost_types::Timestamp {
        seconds: ms / 1_000,
        nanos: 0,
    };
    Some(AnalysisScope {
        time_range: Some(TimeRange {
            start_time: Some(at(T0 - 7 * DAY)),
            end_time: Some(at(T0 + 35 * DAY)),
        }),
        ..AnalysisScope::default()
    })
}

/// When a result was computed is the one field allowed to differ.
fn timeless(computation: &mut Option<ComputationInfo>) {
    if let Some(computation) = computation {
        computation.compute_time = None;
    }
}

/// Asks every journey question once; returns the answers, rendered for comparison.
async fn answers(modeling: &mut Modeling, order: &str) -> anyhow::Result<Vec<String>> {
    let step = |name: &str| FunnelStep {
        event: Some(EventMatcher {
            event_name: name.to_owned(),
            filters: Vec::new(),
        }),
        ..FunnelStep::default()
    };
    let mut funnel = modeling
        .run_funnel(RunFunnelRequest {
            funnel: Some(FunnelDefinition {
                steps: vec![step("view_item"), step(order)],
                scope: scope(),
                ..FunnelDefinition::default()
            }),
            ..RunFunnelRequest::default()
        })
        .await?
        .into_inner();
    timeless(&mut funnel.computation);
    let mut retention = modeling
        .run_retention(RunRetentionRequest {
            start_event: Some(EventMatcher::default()),
            interval: Interval::Week.into(),
            periods: 4,
            scope: scope(),
            ..RunRetentionRequest::default()
        })
        .await?
        .into_inner();
    timeless(&mut retention.computation);
    let mut lifecycle = modeling
        .run_lifecycle(RunLifecycleRequest {
            options: Some(LifecycleOptions {
                interval: Interval::Week.into(),
                ..LifecycleOptions::default()
            }),
            scope: scope(),
            ..RunLifecycleRequest::default()
        })
        .await?
        .into_inner();
    timeless(&mut lifecycle.computation);
    let mut paths = modeling
        .run_paths(RunPathsRequest {
            scope: scope(),
            ..RunPathsRequest::default()
        })
        .await?
        .into_inner();
    timeless(&mut paths.computation);
    let mut attribution = modeling
        .run_attribution(RunAttributionRequest {
            models: [1, 3, 6, 7]
                .into_iter()
                .map(|kind| AttributionModel {
                    r#type: kind,
                    ..AttributionModel::default()
                })
                .collect(),
            scope: scope(),
            ..RunAttributionRequest::default()
        })
        .await?
        .into_inner();
    timeless(&mut attribution.computation);
    assert_eq!(
        attribution.results[2].model.as_ref().map(|m| m.r#type),
        Some(AttributionModelType::Markov.into())
    );
    Ok(vec![
        format!("{funnel:?}"),
        format!("{retention:?}"),
        format!("{lifecycle:?}"),
        format!("{paths:?}"),
        format!("{attribution:?}"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journey_answers_are_identical_across_a_restart() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("restart", SCOPES);
    touchline_e2e::publish_retail_dictionary(
        app.channel(&token)?,
        "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
    )
    .await?;
    let mut collection =
        touchline_proto::collection::v1::collection_service_client::CollectionServiceClient::new(
            app.channel(&token)?,
        );
    let mut modeling = ModelingServiceClient::new(app.channel(&token)?);
    let (_, order) = crate::attribution::send(&mut collection, &mut modeling).await?;
    let before = answers(&mut modeling, &order).await?;

    let TestApp { app, shutdown, db } = app;
    shutdown.trigger();
    app.stopped().await;
    let app = TestApp::spawn_with(db, |_| {}).await?;
    let mut modeling = ModelingServiceClient::new(app.channel(&token)?);
    let after = answers(&mut modeling, &order).await?;
    for (before, after) in before.iter().zip(&after) {
        assert_eq!(before, after);
    }
    assert!(
        before[4].contains("web"),
        "attribution saw the journeys: {}",
        before[4]
    );
    app.stop().await;
    Ok(())
}
