//! Sales no one can be named for, through the real services. A store's till is used by two
//! members' logins, so identity stops linking it; the sales it then records alone are stored
//! without a person. Attribution cannot put them on a journey, and says so: they are counted
//! apart (once per order with a conversion key), never in the conversions the models credit
//! unless the request credits each to the channel that recorded it, and a request scoped to a
//! segment counts none of them.

use prost_types::value::Kind;
use touchline_e2e::{at, sample_event};
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::{Event, Identifier, TimeRange};
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    AnalysisScope, AttributionModel, AttributionModelType, AttributionSummary,
    CreateSegmentRequest, RunAttributionRequest, Segment, ShapleyGame, UnidentifiedConversions,
};
use touchline_testkit::{TestApp, token};

const TENANT: &str = "unidentified-conversions";
/// 2026-09-07 00:00 UTC.
const T0: i64 = 1_788_739_200_000;
const HOUR: i64 = 3_600_000;

fn id(kind: &str, value: &str) -> Identifier {
    Identifier {
        r#type: kind.to_owned(),
        value: value.to_owned(),
        scope: String::new(),
    }
}

/// A store event at `ms` carrying exactly `identifiers`, with a revenue and an order id
/// when given.
fn store_event(
    message: &str,
    name: &str,
    ms: i64,
    identifiers: Vec<Identifier>,
    sale: Option<(f64, &str)>,
) -> Event {
    let mut event = sample_event(message, 0, name, ms);
    event.channel = "pos".to_owned();
    event.anonymous_id = String::new();
    event.identifiers = identifiers;
    if let Some((revenue, order)) = sale {
        let mut fields = vec![("revenue", Kind::NumberValue(revenue))];
        if !order.is_empty() {
            fields.push(("order_id", Kind::StringValue(order.to_owned())));
        }
        event.properties = Some(touchline_e2e::properties(fields));
    }
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_stored_without_a_person_are_counted_apart() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(
        TENANT,
        &[
            "events:write",
            "models:read",
            "dictionary:read",
            "dictionary:write",
            "segments:write",
        ],
    );
    touchline_e2e::publish_retail_dictionary(app.channel(&token)?, "").await?;
    let mut collection: touchline_e2e::Collection =
        CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: touchline_e2e::Modeling = ModelingServiceClient::new(app.channel(&token)?);
    touchline_e2e::mark_analysable(&mut modeling, TENANT, &["properties.order_id"]).await?;

    let till = || id("device_id", "till-7");
    // Two members log in on the store's till: the second login makes it a shared device.
    let logins = vec![
        store_event(
            "login-a",
            "page_view",
            T0 - 48 * HOUR,
            vec![id("user_id", "member-a"), till()],
            None,
        ),
        store_event(
            "login-b",
            "page_view",
            T0 - 47 * HOUR,
            vec![id("user_id", "member-b"), till()],
            None,
        ),
    ];
    touchline_e2e::ingest_and_store(&mut collection, &mut modeling, logins).await?;
    let sales = vec![
        // Member A's own order: a store visit, then the sale on her id.
        store_event(
            "visit-a",
            "page_view",
            T0 + HOUR,
            vec![id("user_id", "member-a")],
            None,
        ),
        store_event(
            "sale-a",
            "submit_order",
            T0 + 2 * HOUR,
            vec![id("user_id", "member-a")],
            Some((100.0, "S-A")),
        ),
        // Walk-in sales the till records alone: one order reported twice, one without an
        // order id, one before the range, and a page view that is no sale.
        store_event(
            "till-1",
            "submit_order",
            T0 + 3 * HOUR,
            vec![till()],
            Some((30.0, "S-1")),
        ),
        store_event(
            "till-1-again",
            "submit_order",
            T0 + 3 * HOUR + 60_000,
            vec![till()],
            Some((30.0, "S-1")),
        ),
        store_event(
            "till-2",
            "submit_order",
            T0 + 5 * HOUR,
            vec![till()],
            Some((20.0, "")),
        ),
        store_event(
            "till-early",
            "submit_order",
            T0 - 5 * HOUR,
            vec![till()],
            Some((99.0, "S-0")),
        ),
        store_event("till-view", "page_view", T0 + 6 * HOUR, vec![till()], None),
    ];
    let stored = touchline_e2e::ingest_and_store(&mut collection, &mut modeling, sales).await?;
    let without_person: Vec<&str> = stored
        .iter()
        .filter(|s| s.person_id.is_empty())
        .map(|s| s.message_id.as_str())
        .collect();
    assert_eq!(
        without_person.len(),
        5,
        "the till's own events have no person: {stored:?}"
    );

    let request = |key: &str, segment: &str| RunAttributionRequest {
        models: vec![AttributionModel {
            r#type: AttributionModelType::LastTouch.into(),
            ..AttributionModel::default()
        }],
        conversion_key_field: key.to_owned(),
        scope: Some(AnalysisScope {
            time_range: Some(TimeRange {
                start_time: Some(at(T0)),
                end_time: Some(at(T0 + 24 * HOUR)),
            }),
            segment: segment.to_owned(),
            ..AnalysisScope::default()
        }),
        ..RunAttributionRequest::default()
    };
    let summary = |reply: tonic::Response<
        touchline_proto::modeling::v1::RunAttributionResponse,
    >| { reply.into_inner().summary.unwrap_or_default() };
    let every_report = summary(modeling.run_attribution(request("", "")).await?);
    let AttributionSummary {
        conversions,
        value,
        direct_conversions,
        unidentified_conversions,
        unidentified_value,
        ..
    } = every_report;
    assert_eq!(
        (conversions, value, direct_conversions),
        (1.0, 100.0, 0.0),
        "member A's order is the one conversion on a journey: {every_report:?}"
    );
    assert_eq!(
        (unidentified_conversions, unidentified_value),
        (3.0, 80.0),
        "the till's three sales in the range, each report counted: {every_report:?}"
    );
    let by_channel: Vec<(&str, f64, f64)> = every_report
        .unidentified_by_channel
        .iter()
        .map(|c| (c.channel.as_str(), c.conversions, c.value))
        .collect();
    assert_eq!(
        by_channel,
        vec![("pos", 3.0, 80.0)],
        "all at the store's till"
    );

    let keyed = summary(
        modeling
            .run_attribution(request("properties.order_id", ""))
            .await?,
    );
    assert_eq!(
        (
            keyed.conversions,
            keyed.unidentified_conversions,
            keyed.unidentified_value
        ),
        (1.0, 2.0, 50.0),
        "order S-1 counts once with the key: {keyed:?}"
    );

    // Credited to the channel that recorded them: the two keyed walk-in sales join member
    // A's order as journeys of one touch at the till.
    let credit = RunAttributionRequest {
        unidentified_conversions: UnidentifiedConversions::RecordingChannel.into(),
        ..request("properties.order_id", "")
    };
    let credited = modeling.run_attribution(credit.clone()).await?.into_inner();
    let credited_summary = credited.summary.clone().unwrap_or_default();
    assert_eq!(
        (
            credited_summary.conversions,
            credited_summary.value,
            credited_summary.direct_conversions,
            credited_summary.unidentified_conversions,
            credited_summary.unidentified_credited,
            credited_summary.unidentified_credited_value,
        ),
        (3.0, 150.0, 0.0, 2.0, 2.0, 50.0),
        "the walk-in sales enter the conversions and stay counted apart too: {credited:?}"
    );
    let last_touch: Vec<(&str, f64, f64)> = credited
        .results
        .first()
        .map(|r| {
            r.channels
                .iter()
                .map(|c| (c.channel.as_str(), c.conversions, c.value))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        last_touch,
        vec![("pos", 3.0, 150.0)],
        "the store is credited with its own walk-in sales"
    );

    // The conversion-rate game weighs converting journeys against the rest, which no
    // walk-in without a purchase leaves: it reads the journeys as they are.
    let rate_game = |mode: UnidentifiedConversions| RunAttributionRequest {
        models: vec![AttributionModel {
            r#type: AttributionModelType::Shapley.into(),
            shapley_game: ShapleyGame::ConversionRate.into(),
            ..AttributionModel::default()
        }],
        unidentified_conversions: mode.into(),
        ..request("properties.order_id", "")
    };
    let apart = modeling
        .run_attribution(rate_game(UnidentifiedConversions::Apart))
        .await?
        .into_inner();
    let credited = modeling
        .run_attribution(rate_game(UnidentifiedConversions::RecordingChannel))
        .await?
        .into_inner();
    assert_eq!(
        apart.results, credited.results,
        "the conversion-rate game is the same either way"
    );

    // A choice the API does not define is refused, not read as the default.
    let unknown = RunAttributionRequest {
        unidentified_conversions: 7,
        ..request("", "")
    };
    assert_eq!(
        crate::attribution::violations(modeling.run_attribution(unknown).await).await,
        vec![(
            "unidentified_conversions".to_owned(),
            "UNKNOWN_VALUE".to_owned()
        )]
    );

    // The buyers on record: member A alone. Within the segment no sale of the till counts.
    let rule = touchline_e2e::did_within("submit_order", 1_000);
    modeling
        .create_segment(CreateSegmentRequest {
            segment_id: "buyers".to_owned(),
            segment: Some(Segment {
                display_name: "buyers / 购买过的会员".to_owned(),
                rule: Some(rule),
                ..Segment::default()
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..CreateSegmentRequest::default()
        })
        .await?;
    let in_segment = request("", &format!("tenants/{TENANT}/segments/buyers"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let scoped = loop {
        let ran = modeling
            .run_attribution(in_segment.clone())
            .await?
            .into_inner();
        let considered = ran.computation.as_ref().map_or(0, |c| c.persons_considered);
        if considered == 1 || std::time::Instant::now() > deadline {
            break ran;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        scoped.computation.as_ref().map(|c| c.persons_considered),
        Some(1),
        "member A is the segment: {scoped:?}"
    );
    let scoped = scoped.summary.unwrap_or_default();
    assert_eq!(
        (scoped.conversions, scoped.unidentified_conversions),
        (1.0, 0.0),
        "no segment holds a sale without a person: {scoped:?}"
    );
    let scoped_credit = RunAttributionRequest {
        unidentified_conversions: UnidentifiedConversions::RecordingChannel.into(),
        ..in_segment
    };
    let scoped_credit = summary(modeling.run_attribution(scoped_credit).await?);
    assert_eq!(
        (
            scoped_credit.conversions,
            scoped_credit.unidentified_conversions,
            scoped_credit.unidentified_credited
        ),
        (1.0, 0.0, 0.0),
        "nor is one credited within it: {scoped_credit:?}"
    );

    app.stop().await;
    Ok(())
}
