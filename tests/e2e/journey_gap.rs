//! A pause ends a journey, through the real services: with `journey_gap`, the touches before
//! a pause longer than the gap are a journey that did not convert, and an order after the
//! pause has no touch; without it, every touch since the previous order is the order's.

use touchline_e2e::at;
use touchline_e2e::sample_event;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::TimeRange;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    AnalysisScope, AttributionModel, AttributionModelType, AttributionSummary,
    RunAttributionRequest,
};
use touchline_testkit::{TestApp, token};

use crate::attribution::violations;

const TENANT: &str = "journey-gap";
const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "dictionary:read",
    "dictionary:write",
];
/// 2026-09-07 00:00 UTC.
const T0: i64 = 1_788_739_200_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn days(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: n * 86_400,
        nanos: 0,
    })
}

fn event(
    id: &str,
    person: u64,
    channel: &str,
    name: &str,
    ms: i64,
) -> touchline_proto::common::v1::Event {
    let mut event = sample_event(id, person, name, ms);
    channel.clone_into(&mut event.channel);
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_longer_than_the_journey_gap_ends_a_journey() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_retail_dictionary(app.channel(&token)?, "").await?;
    let mut collection: touchline_e2e::Collection =
        CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: touchline_e2e::Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let events = vec![
        // Person 1: a web visit, five quiet days, an app visit and an order an hour later.
        event("a1", 1, "web", "page_view", T0 + HOUR),
        event("a2", 1, "app", "screen_view", T0 + 5 * DAY + HOUR),
        event("a3", 1, "app", "submit_order", T0 + 5 * DAY + 2 * HOUR),
        // Person 2: a web visit, then an order four days later with nothing between.
        event("b1", 2, "web", "page_view", T0 + 2 * HOUR),
        event("b2", 2, "web", "submit_order", T0 + 4 * DAY + 2 * HOUR),
        // Person 3: two spells of interest without an order, a week apart.
        event("c1", 3, "app", "screen_view", T0 + 3 * HOUR),
        event("c2", 3, "web", "page_view", T0 + 7 * DAY + 3 * HOUR),
    ];
    let stored = touchline_e2e::ingest_and_store(&mut collection, &mut modeling, events).await?;
    anyhow::ensure!(stored.len() == 7, "{} stored", stored.len());
    let request = |gap: Option<prost_types::Duration>| RunAttributionRequest {
        models: vec![AttributionModel {
            r#type: AttributionModelType::FirstTouch.into(),
            ..AttributionModel::default()
        }],
        journey_gap: gap,
        scope: Some(AnalysisScope {
            time_range: Some(TimeRange {
                start_time: Some(at(T0)),
                end_time: Some(at(T0 + 10 * DAY)),
            }),
            ..AnalysisScope::default()
        }),
        ..RunAttributionRequest::default()
    };
    let credit = |reply: &touchline_proto::modeling::v1::RunAttributionResponse, channel: &str| {
        reply
            .results
            .first()
            .and_then(|r| r.channels.iter().find(|c| c.channel == channel))
            .map_or(0.0, |c| c.conversions)
    };

    let whole = modeling.run_attribution(request(None)).await?.into_inner();
    let AttributionSummary {
        conversions,
        direct_conversions,
        non_converting_journeys,
        path_count,
        ..
    } = whole.summary.clone().unwrap_or_default();
    // Person 1's order gets `web > app`, person 2's `web`; person 3 is one journey.
    assert_eq!(
        (conversions, direct_conversions, non_converting_journeys),
        (2.0, 0.0, 1.0),
        "{whole:?}"
    );
    assert_eq!(path_count, 3, "{whole:?}");
    assert_eq!((credit(&whole, "web"), credit(&whole, "app")), (2.0, 0.0));

    let split = modeling
        .run_attribution(request(days(2)))
        .await?
        .into_inner();
    let AttributionSummary {
        conversions,
        direct_conversions,
        non_converting_journeys,
        ..
    } = split.summary.clone().unwrap_or_default();
    // Person 1: `web` did not convert, `app` did. Person 2: `web` did not convert, the order
    // is direct. Person 3: two journeys, `app` and `web`.
    assert_eq!(
        (conversions, direct_conversions, non_converting_journeys),
        (1.0, 1.0, 4.0),
        "{split:?}"
    );
    assert_eq!((credit(&split, "web"), credit(&split, "app")), (0.0, 1.0));

    // A gap longer than every pause changes nothing.
    let long = modeling
        .run_attribution(request(days(9)))
        .await?
        .into_inner();
    assert_eq!(long.summary, whole.summary);
    // Up to the lookback window: 40 days pass with a window of 60.
    let wide = modeling
        .run_attribution(RunAttributionRequest {
            lookback_window: days(60),
            ..request(days(40))
        })
        .await?
        .into_inner();
    assert_eq!(wide.summary, whole.summary);

    for (gap, why) in [
        (
            Some(prost_types::Duration {
                seconds: 30 * 60,
                nanos: 0,
            }),
            "shorter than an hour",
        ),
        (
            days(31),
            "longer than the lookback window, 30 days by default",
        ),
        (
            Some(prost_types::Duration {
                seconds: -86_400,
                nanos: 0,
            }),
            "negative",
        ),
    ] {
        let refused = modeling.run_attribution(request(gap)).await;
        assert_eq!(
            violations(refused).await,
            vec![("journey_gap".to_owned(), "OUT_OF_RANGE".to_owned())],
            "{why}"
        );
    }
    app.stop().await;
    Ok(())
}
