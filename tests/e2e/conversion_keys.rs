//! One order, one conversion, through the real services: the app's SDK reports an order as
//! `submit_order` and the web shop's log as `purchase` (both conversions in the retail
//! dictionary), so without a conversion key every order counts twice and the second report
//! shows as a direct conversion. With `conversion_key_field = properties.order_id` a person's
//! reports of one order count once.

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

const TENANT: &str = "conversion-keys";
const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "dictionary:read",
    "dictionary:write",
    "segments:write",
];
/// 2026-09-07 00:00 UTC.
const T0: i64 = 1_788_739_200_000;
const MINUTE: i64 = 60_000;

/// An event of `person` on the web at `ms`, with `order_id` when given.
fn web_event(
    id: &str,
    person: u64,
    name: &str,
    ms: i64,
    order: Option<&str>,
) -> touchline_proto::common::v1::Event {
    let mut event = sample_event(id, person, name, ms);
    event.channel = "web".to_owned();
    if let Some(order) = order {
        event.properties = Some(touchline_e2e::properties([(
            "order_id",
            prost_types::value::Kind::StringValue(order.to_owned()),
        )]));
    }
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_reported_twice_is_one_conversion_with_a_conversion_key() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_retail_dictionary(app.channel(&token)?, "").await?;
    let mut collection: touchline_e2e::Collection =
        CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: touchline_e2e::Modeling = ModelingServiceClient::new(app.channel(&token)?);
    touchline_e2e::mark_analysable(&mut modeling, TENANT, &["properties.order_id"]).await?;
    // Three buyers: a page view, the SDK's order, the web shop's record of it; the third
    // then views again and orders once more, reported by the SDK alone.
    let mut events = Vec::new();
    for person in 1..=3u64 {
        let t = T0 + i64::try_from(person)? * 60 * MINUTE;
        let order = format!("W-{person}");
        events.extend([
            web_event(&format!("v{person}"), person, "page_view", t, None),
            web_event(
                &format!("s{person}"),
                person,
                "submit_order",
                t + 10 * MINUTE,
                Some(&order),
            ),
            web_event(
                &format!("p{person}"),
                person,
                "purchase",
                t + 12 * MINUTE,
                Some(&order),
            ),
        ]);
    }
    events.extend([
        web_event("v3b", 3, "page_view", T0 + 5 * 60 * MINUTE, None),
        web_event(
            "s3b",
            3,
            "submit_order",
            T0 + 5 * 60 * MINUTE + 5 * MINUTE,
            Some("W-3b"),
        ),
    ]);
    let stored = touchline_e2e::ingest_and_store(&mut collection, &mut modeling, events).await?;
    anyhow::ensure!(stored.len() == 11, "{} stored", stored.len());
    let request = |key: &str| RunAttributionRequest {
        models: vec![AttributionModel {
            r#type: AttributionModelType::LastTouch.into(),
            ..AttributionModel::default()
        }],
        conversion_key_field: key.to_owned(),
        lookback_window: Some(prost_types::Duration {
            seconds: 86_400,
            nanos: 0,
        }),
        scope: Some(AnalysisScope {
            time_range: Some(TimeRange {
                start_time: Some(at(T0)),
                end_time: Some(at(T0 + 24 * 60 * MINUTE)),
            }),
            ..AnalysisScope::default()
        }),
        ..RunAttributionRequest::default()
    };
    let summary = |reply: &touchline_proto::modeling::v1::RunAttributionResponse| {
        reply.summary.clone().unwrap_or_default()
    };
    let web_credit = |reply: &touchline_proto::modeling::v1::RunAttributionResponse| {
        reply
            .results
            .first()
            .and_then(|r| r.channels.iter().find(|c| c.channel == "web"))
            .map_or(0.0, |c| c.conversions)
    };
    let twice = modeling.run_attribution(request("")).await?.into_inner();
    let once = modeling
        .run_attribution(request("properties.order_id"))
        .await?
        .into_inner();
    let (
        AttributionSummary {
            conversions: all,
            direct_conversions: direct,
            ..
        },
        AttributionSummary {
            conversions: keyed,
            direct_conversions: keyed_direct,
            ..
        },
    ) = (summary(&twice), summary(&once));
    // Without the key the web shop's three records are three more conversions, each direct
    // (its touches went to the SDK's report minutes before).
    assert_eq!((direct, keyed_direct), (3.0, 0.0), "{twice:?}\n{once:?}");
    assert_eq!(
        (all, keyed),
        (4.0, 4.0),
        "journeys with touches: {twice:?}\n{once:?}"
    );
    assert_eq!((web_credit(&twice), web_credit(&once)), (4.0, 4.0));
    app.stop().await;
    Ok(())
}
