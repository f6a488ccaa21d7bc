//! Attribution through the real services. On stored events: six persons whose journeys are
//! worked out by hand (a visit of several events is one touch, a touch outside the lookback
//! window or before an earlier conversion does not count, a conversion without touches is
//! direct, touches after the last conversion make a non-converting journey). The Markov and
//! Shapley figures on stored events equal those of RunAttributionOnPaths on the same paths
//! written as text, and the textbook three-path example gives its known removal effects.
//! Bad input is refused with a field violation naming each problem.

use std::collections::BTreeMap;
use touchline_e2e::at;

use touchline_e2e::{Collection, Modeling, sample_event};
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::TimeRange;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    AggregatedPath, AggregatedPaths, AnalysisScope, AttributionModel, AttributionModelResult,
    AttributionModelType as T, ChannelCost, CostEvents, CostInput, EventMatcher,
    RunAttributionOnPathsRequest, RunAttributionRequest, ShapleyGame, SuppliedCosts, cost_input,
    run_attribution_on_paths_request::PathsInput,
};
use touchline_testkit::{TestApp, token};

const TENANT: &str = "attribution";
/// 2026-09-07 00:00 UTC.
const T0: i64 = 1_788_739_200_000;
const DAY: i64 = 86_400_000;

fn model(kind: T) -> AttributionModel {
    AttributionModel {
        r#type: kind.into(),
        ..AttributionModel::default()
    }
}

fn markov(order: i32) -> AttributionModel {
    AttributionModel {
        markov_order: order,
        ..model(T::Markov)
    }
}

fn shapley(game: ShapleyGame) -> AttributionModel {
    AttributionModel {
        shapley_game: game.into(),
        ..model(T::Shapley)
    }
}

/// Conversions credited per channel.
fn credits(result: &AttributionModelResult) -> BTreeMap<String, f64> {
    result
        .channels
        .iter()
        .map(|c| (c.channel.clone(), c.conversions))
        .collect()
}

fn assert_close(actual: &BTreeMap<String, f64>, expected: &[(&str, f64)], what: &str) {
    for (channel, want) in expected {
        let got = actual.get(*channel).copied().unwrap_or(f64::NAN);
        assert!(
            (got - want).abs() < 1e-9,
            "{what}: {channel} got {got}, want {want} ({actual:?})"
        );
    }
}

pub(crate) async fn violations(
    result: Result<tonic::Response<impl Sized>, tonic::Status>,
) -> Vec<(String, String)> {
    let Err(status) = result else {
        panic!("the request was accepted");
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    touchline_e2e::field_violations(&status)
}

/// (person, channel, source event name, time, revenue)
type Planned = (u64, &'static str, &'static str, i64, Option<f64>);

fn plan() -> Vec<Planned> {
    vec![
        // p1: web, then an app visit of two events, then the order: web > app.
        (1, "web", "view_item", T0 + DAY, None),
        (1, "app", "view_item", T0 + 2 * DAY, None),
        (1, "app", "add_to_cart", T0 + 2 * DAY + 600_000, None),
        (1, "app", "submit_order", T0 + 3 * DAY, Some(100.0)),
        // p2: a web visit, no order, but long before the last 7 days of the range: no
        // journey at all.
        (2, "web", "view_item", T0 + DAY, None),
        // p3: an order without any touch: direct.
        (3, "app", "submit_order", T0 + 5 * DAY, Some(50.0)),
        // p4: an app touch 9 days before an order (outside the 7-day lookback): direct;
        // then web and mini-program before a second order: web > mini_program.
        (4, "app", "view_item", T0 + DAY, None),
        (4, "app", "submit_order", T0 + 10 * DAY, Some(30.0)),
        (4, "web", "view_item", T0 + 11 * DAY, None),
        (4, "mini_program", "view_item", T0 + 12 * DAY, None),
        (4, "mini_program", "submit_order", T0 + 13 * DAY, Some(70.0)),
        // p5: a mini-program touch before the range, an order in it; a touch after the
        // range is never read.
        (5, "mini_program", "view_item", T0 - 2 * DAY, None),
        (5, "mini_program", "submit_order", T0 + DAY, Some(20.0)),
        (5, "app", "view_item", T0 + 35 * DAY, None),
        // p6: web before an order, then web again: web converting, web not converting.
        (6, "web", "view_item", T0 + 20 * DAY, None),
        (6, "web", "submit_order", T0 + 21 * DAY, Some(10.0)),
        (6, "web", "view_item", T0 + 25 * DAY, None),
    ]
}

/// Sends the planned events; returns the canonical names of `view_item` and `submit_order`.
pub(crate) async fn send(
    collection: &mut Collection,
    modeling: &mut Modeling,
) -> anyhow::Result<(String, String)> {
    let events: Vec<_> = plan()
        .iter()
        .enumerate()
        .map(|(i, (person, channel, name, time, revenue))| {
            let mut event = sample_event(&format!("a{i}"), *person, name, *time);
            event.channel = (*channel).to_owned();
            if let Some(revenue) = revenue {
                event.properties = Some(touchline_e2e::properties([(
                    "revenue",
                    prost_types::value::Kind::NumberValue(*revenue),
                )]));
            }
            event
        })
        .collect();
    // Rows of an ad platform's daily report: aggregates without a person, for ROI from cost
    // events, each with the channel it records and the channel its ad account bills
    // (`ad_channel`). In the analysed range (days 0–30): 40 and 50 on web, and 30 recorded by
    // the app but billed to web; outside it, 500 the day before and 1,000 the day after, which
    // no cost of the range may include.
    let mut events = events;
    let reports = [
        (40.0, "web", "web", T0 + DAY),
        (50.0, "web", "web", T0 + DAY),
        (30.0, "app", "web", T0 + 2 * DAY),
        (500.0, "web", "web", T0 - DAY),
        (1_000.0, "app", "app", T0 + 31 * DAY),
    ];
    for (i, (spend, channel, billed, day)) in reports.into_iter().enumerate() {
        let mut report = sample_event(&format!("cost{i}"), 0, "ad_daily_report", day);
        report.anonymous_id = String::new();
        report.identifiers = Vec::new();
        report.channel = channel.to_owned();
        report.properties = Some(touchline_e2e::properties([
            ("spend", prost_types::value::Kind::NumberValue(spend)),
            (
                "ad_channel",
                prost_types::value::Kind::StringValue(billed.to_owned()),
            ),
        ]));
        events.push(report);
    }
    let stored = touchline_e2e::ingest_and_store(collection, modeling, events.clone()).await?;
    assert_eq!(stored.len(), events.len(), "every event is stored");
    let canonical = |source: &str| {
        let id = events
            .iter()
            .find(|e| e.event == source)
            .map(|e| e.message_id.clone())
            .unwrap_or_default();
        stored
            .iter()
            .find(|s| s.message_id == id)
            .map(|s| s.event_name.clone())
            .unwrap_or_default()
    };
    Ok((canonical("view_item"), canonical("submit_order")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribution_on_stored_events_matches_hand_worked_journeys() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(
        TENANT,
        &[
            "events:write",
            "models:read",
            "dictionary:read",
            "dictionary:write",
        ],
    );
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling = ModelingServiceClient::new(app.channel(&token)?);
    // The retail dictionary: `submit_order` is a conversion whose value is `revenue`.
    touchline_e2e::publish_retail_dictionary(
        app.channel(&token)?,
        "5b0f4c1e-8d2a-4f6b-9c3e-7a1d2e3f4a5b",
    )
    .await?;
    let (_, order) = send(&mut collection, &mut modeling).await?;

    let matcher = |name: &str| EventMatcher {
        event_name: name.to_owned(),
        filters: Vec::new(),
    };
    let models = vec![
        model(T::FirstTouch),
        model(T::LastTouch),
        model(T::Linear),
        AttributionModel {
            time_decay_half_life: Some(prost_types::Duration {
                seconds: 86_400,
                nanos: 0,
            }),
            ..model(T::TimeDecay)
        },
        markov(1),
        markov(2),
        shapley(ShapleyGame::Conversions),
        shapley(ShapleyGame::ConversionRate),
        shapley(ShapleyGame::Uplift),
    ];
    let request = RunAttributionRequest {
        conversion_event: Some(matcher(&order)),
        // Every event but the order is a touch (an empty name matches every event).
        touchpoint_events: vec![matcher("")],
        lookback_window: Some(prost_types::Duration {
            seconds: 7 * 86_400,
            nanos: 0,
        }),
        models: models.clone(),
        costs: Some(CostInput {
            costs: Some(cost_input::Costs::SuppliedCosts(SuppliedCosts {
                channel_costs: vec![ChannelCost {
                    channel: "web".to_owned(),
                    cost: 90.0,
                }],
            })),
            currency: "CNY".to_owned(),
        }),
        scope: Some(AnalysisScope {
            time_range: Some(TimeRange {
                start_time: Some(at(T0)),
                end_time: Some(at(T0 + 30 * DAY)),
            }),
            ..AnalysisScope::default()
        }),
        ..RunAttributionRequest::default()
    };
    let ran = modeling
        .run_attribution(request.clone())
        .await?
        .into_inner();
    let summary = ran.summary.clone().unwrap_or_default();
    assert_eq!(summary.conversions, 4.0, "{summary:?}");
    assert_eq!(summary.direct_conversions, 2.0, "{summary:?}");
    assert_eq!(summary.non_converting_journeys, 1.0, "{summary:?}");
    assert_eq!(summary.channel_count, 3);
    assert_eq!(summary.path_count, 4);
    assert_eq!(
        summary.value, 200.0,
        "the dictionary's value property: {summary:?}"
    );
    assert_eq!(summary.direct_value, 80.0);
    assert_eq!(
        ran.computation.as_ref().map(|c| c.persons_considered),
        Some(5),
        "persons with a journey or a direct conversion"
    );
    assert_eq!(
        ran.results.len(),
        models.len(),
        "one result per model, in order"
    );

    assert_close(
        &credits(&ran.results[0]),
        &[("web", 3.0), ("mini_program", 1.0), ("app", 0.0)],
        "first touch",
    );
    assert_close(
        &credits(&ran.results[1]),
        &[("web", 1.0), ("mini_program", 2.0), ("app", 1.0)],
        "last touch",
    );
    assert_close(
        &credits(&ran.results[2]),
        &[("web", 2.0), ("mini_program", 1.5), ("app", 0.5)],
        "linear",
    );
    assert_close(
        &credits(&ran.results[3]),
        &[
            ("web", 5.0 / 3.0),
            ("mini_program", 5.0 / 3.0),
            ("app", 2.0 / 3.0),
        ],
        "time decay, half-life 1 day",
    );
    // The same journeys read by another channel field: by the recording source every touch
    // is the SDK's; by touchpoint, `{channel}/{touchpoint}` splits each channel's credit.
    let last_touch_by = |field: &str| RunAttributionRequest {
        channel_field: field.to_owned(),
        models: vec![model(T::LastTouch)],
        costs: None,
        ..request.clone()
    };
    let by_source = modeling
        .run_attribution(last_touch_by("source"))
        .await?
        .into_inner();
    assert_eq!(
        credits(&by_source.results[0]),
        BTreeMap::from([("sdk-app".to_owned(), 4.0)]),
        "by source"
    );
    let by_touchpoint = modeling
        .run_attribution(last_touch_by("touchpoint"))
        .await?
        .into_inner();
    let mut per_channel: BTreeMap<String, f64> = BTreeMap::new();
    for (name, credit) in credits(&by_touchpoint.results[0]) {
        let (channel, touchpoint) = name
            .split_once('/')
            .ok_or_else(|| anyhow::anyhow!("{name} is not channel/touchpoint"))?;
        assert!(!touchpoint.is_empty(), "{name}");
        *per_channel.entry(channel.to_owned()).or_default() += credit;
    }
    assert_close(
        &per_channel,
        &[("web", 1.0), ("mini_program", 2.0), ("app", 1.0)],
        "by touchpoint, summed per channel",
    );

    // The uplift game answers with its own values (incremental conversions, finite), and its
    // credits split the four conversions with touches.
    let uplift = &ran.results[models.len() - 1];
    let details = uplift.shapley.clone().unwrap_or_default();
    assert_eq!(details.game, i32::from(ShapleyGame::Uplift));
    assert!(
        details.values.iter().all(|v| v.value.is_finite()),
        "{details:?}"
    );
    let credited: f64 = credits(uplift).values().sum();
    assert!((credited - 4.0).abs() < 1e-9, "{uplift:?}");
    // ROI on the last-touch model: web's one conversion of value 10 cost 90.
    let web = ran.results[1]
        .channels
        .iter()
        .find(|c| c.channel == "web")
        .cloned()
        .unwrap_or_default();
    assert_eq!(web.cost, 90.0);
    assert!((web.cost_per_conversion - 90.0).abs() < 1e-9);
    assert!((web.return_on_spend - 10.0 / 90.0).abs() < 1e-9);
    assert_eq!(web.value, 10.0);
    assert_eq!(
        ran.results[0].channels.first().map(|c| c.channel.as_str()),
        Some("web"),
        "most attributed first"
    );

    // ROI from the stored cost reports: web's 90 as supplied above, and the app's 30.
    // By the channel each row records, and by the channel a property of it names.
    for (channel_field, web, app) in [("", 90.0, 30.0), ("properties.ad_channel", 120.0, 0.0)] {
        let from_reports = modeling
            .run_attribution(RunAttributionRequest {
                costs: Some(CostInput {
                    costs: Some(cost_input::Costs::CostEvents(CostEvents {
                        event: Some(matcher("ad_report")),
                        cost_field: "properties.spend".to_owned(),
                        channel_field: channel_field.to_owned(),
                    })),
                    currency: "CNY".to_owned(),
                }),
                ..request.clone()
            })
            .await?
            .into_inner();
        assert_eq!(
            (from_reports.cost_rows, from_reports.cost_rows_left_out),
            (3, 0)
        );
        let cost_of = |channel: &str| {
            from_reports.results[1]
                .channels
                .iter()
                .find(|c| c.channel == channel)
                .map(|c| c.cost)
        };
        assert_eq!(
            (cost_of("web"), cost_of("app")),
            (Some(web), Some(app)),
            "costs by {channel_field:?}"
        );
    }

    // The same journeys as supplied paths: every model but time decay answers the same.
    let text = "path;conversions;value;nulls\n\
                web > app;1;100;0\n\
                web;1;10;1\n\
                web > mini_program;1;70;0\n\
                mini_program;1;20;0\n";
    let on_paths = modeling
        .run_attribution_on_paths(RunAttributionOnPathsRequest {
            paths_input: Some(PathsInput::PathsText(text.to_owned())),
            models: models
                .iter()
                .filter(|m| m.r#type != i32::from(T::TimeDecay))
                .cloned()
                .collect(),
            ..RunAttributionOnPathsRequest::default()
        })
        .await?
        .into_inner();
    let stored_results: Vec<_> = ran
        .results
        .iter()
        .filter(|r| r.model.as_ref().map(|m| m.r#type) != Some(T::TimeDecay.into()))
        .collect();
    for (stored, supplied) in stored_results.iter().zip(&on_paths.results) {
        let supplied_credits = credits(supplied);
        let expected: Vec<(&str, f64)> = supplied_credits
            .iter()
            .map(|(c, v)| (c.as_str(), *v))
            .collect();
        assert_close(&credits(stored), &expected, &format!("{:?}", stored.model));
        if let (Some(a), Some(b)) = (&stored.markov, &supplied.markov) {
            assert!((a.conversion_probability - b.conversion_probability).abs() < 1e-12);
            assert_eq!(a.transitions.len(), b.transitions.len());
        }
    }

    // Unset, the conversion is every event the dictionary flags as one: the retail
    // dictionary flags submit_order and purchase, and nobody made a purchase here.
    let by_dictionary = modeling
        .run_attribution(RunAttributionRequest {
            conversion_event: None,
            ..request.clone()
        })
        .await?
        .into_inner();
    assert_eq!(by_dictionary.summary, ran.summary);
    assert_eq!(
        credits(&by_dictionary.results[4]),
        credits(&ran.results[4]),
        "markov"
    );

    // A conversion event nobody sent and the dictionary lacks is named, with its field.
    let unknown = modeling
        .run_attribution(RunAttributionRequest {
            conversion_event: Some(matcher("submit_ordr")),
            ..request.clone()
        })
        .await;
    let found = violations(unknown).await;
    assert!(
        found.contains(&(
            "conversion_event.event_name".to_owned(),
            "UNKNOWN_EVENT_NAME".to_owned()
        )),
        "{found:?}"
    );
    // Every problem of a request in one answer.
    let bad = modeling
        .run_attribution(RunAttributionRequest {
            lookback_window: Some(prost_types::Duration {
                seconds: 0,
                nanos: 0,
            }),
            channel_field: "utm_source".to_owned(),
            models: vec![markov(4), AttributionModel::default()],
            conversion_event: Some(matcher("")),
            ..request.clone()
        })
        .await;
    let found = violations(bad).await;
    for expected in [
        ("lookback_window", "OUT_OF_RANGE"),
        ("channel_field", "UNKNOWN_FIELD"),
        ("models[0].markov_order", "OUT_OF_RANGE"),
        ("models[1].type", "REQUIRED"),
        ("conversion_event.event_name", "REQUIRED"),
    ] {
        assert!(
            found.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {found:?}"
        );
    }
    let too_long = modeling
        .run_attribution(RunAttributionRequest {
            lookback_window: Some(prost_types::Duration {
                seconds: 367 * 86_400,
                nanos: 0,
            }),
            ..request.clone()
        })
        .await;
    assert_eq!(
        violations(too_long).await,
        vec![("lookback_window".to_owned(), "OUT_OF_RANGE".to_owned())]
    );
    // A property the model settings do not mark analysable is refused by name.
    let unmarked = modeling
        .run_attribution(RunAttributionRequest {
            channel_field: "properties.utm_source".to_owned(),
            ..request.clone()
        })
        .await;
    assert_eq!(
        violations(unmarked).await,
        vec![("channel_field".to_owned(), "NOT_ANALYSABLE".to_owned())]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribution_on_paths_gives_known_answers_and_names_bad_input() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, &["models:read"]);
    let mut modeling = ModelingServiceClient::new(app.channel(&token)?);
    let run = |text: &str, models: Vec<AttributionModel>| RunAttributionOnPathsRequest {
        paths_input: Some(PathsInput::PathsText(text.to_owned())),
        models,
        ..RunAttributionOnPathsRequest::default()
    };

    // The textbook example: c1 > c2 > c3 converts, c1 and c2 > c3 do not. Removal effects
    // 0.5, 1, 1; the one conversion splits 0.2, 0.4, 0.4.
    let known = modeling
        .run_attribution_on_paths(run(
            "c1 > c2 > c3;1;0;0\nc1;0;0;1\nc2 > c3;0;0;1",
            vec![markov(1)],
        ))
        .await?
        .into_inner();
    let result = &known.results[0];
    assert_close(
        &credits(result),
        &[("c1", 0.2), ("c2", 0.4), ("c3", 0.4)],
        "markov",
    );
    let effects: BTreeMap<String, f64> = result
        .markov
        .as_ref()
        .map(|m| {
            m.removal_effects
                .iter()
                .map(|r| (r.channel.clone(), r.removal_effect))
                .collect()
        })
        .unwrap_or_default();
    assert_close(
        &effects,
        &[("c1", 0.5), ("c2", 1.0), ("c3", 1.0)],
        "removal effects",
    );
    assert!(
        (result
            .markov
            .as_ref()
            .map_or(0.0, |m| m.conversion_probability)
            - 1.0 / 3.0)
            .abs()
            < 1e-12
    );

    // Position-based 40/20/40 (one touch takes all, two split 50/50) and linear per
    // occurrence and per distinct channel, side by side in one call.
    let shares = modeling
        .run_attribution_on_paths(run(
            "a > b > c;1;0;0\nd;1;0;0\na > d;1;0;0\na > b > a;1;0;0",
            vec![
                model(T::PositionBased),
                model(T::Linear),
                AttributionModel {
                    linear_distinct_channels: true,
                    ..model(T::Linear)
                },
            ],
        ))
        .await?
        .into_inner();
    // a > b > c: a 0.4, b 0.2, c 0.4; d: d 1; a > d: 0.5 each; a > b > a: a 0.4 + 0.4, b 0.2.
    assert_close(
        &credits(&shares.results[0]),
        &[("a", 1.7), ("b", 0.4), ("c", 0.4), ("d", 1.5)],
        "position-based",
    );
    // Per occurrence a > b > a gives a two thirds; per distinct channel a half.
    assert_close(
        &credits(&shares.results[1]),
        &[
            ("a", 1.0 / 3.0 + 0.5 + 2.0 / 3.0),
            ("b", 1.0 / 3.0 + 1.0 / 3.0),
            ("c", 1.0 / 3.0),
            ("d", 1.5),
        ],
        "linear",
    );
    assert_close(
        &credits(&shares.results[2]),
        &[
            ("a", 1.0 / 3.0 + 0.5 + 0.5),
            ("b", 1.0 / 3.0 + 0.5),
            ("c", 1.0 / 3.0),
            ("d", 1.5),
        ],
        "linear per distinct channel",
    );

    // Structured rows with the same path add up.
    let rows = modeling
        .run_attribution_on_paths(RunAttributionOnPathsRequest {
            paths_input: Some(PathsInput::Paths(AggregatedPaths {
                paths: vec![
                    AggregatedPath {
                        channels: vec!["a".to_owned(), "b".to_owned()],
                        conversions: 2.0,
                        value: 20.0,
                        nulls: 1.0,
                    },
                    AggregatedPath {
                        channels: vec!["a".to_owned(), "b".to_owned()],
                        conversions: 1.0,
                        value: 10.0,
                        nulls: 0.0,
                    },
                ],
            })),
            models: vec![model(T::LastTouch)],
            ..RunAttributionOnPathsRequest::default()
        })
        .await?
        .into_inner();
    let summary = rows.summary.unwrap_or_default();
    assert_eq!(
        (summary.path_count, summary.conversions, summary.value),
        (1, 3.0, 30.0)
    );
    assert_close(
        &credits(&rows.results[0]),
        &[("b", 3.0), ("a", 0.0)],
        "rows add up",
    );

    // No conversion at all: a defined answer of zeros, never NaN.
    let none = modeling
        .run_attribution_on_paths(run(
            "a > b;0;0;5\nb;0;0;2",
            vec![
                markov(2),
                shapley(ShapleyGame::ConversionRate),
                model(T::Linear),
            ],
        ))
        .await?
        .into_inner();
    for result in &none.results {
        for channel in &result.channels {
            assert_eq!(
                (channel.conversions, channel.share),
                (0.0, 0.0),
                "{result:?}"
            );
        }
        if let Some(m) = &result.markov {
            assert!(m.removal_effects.iter().all(|r| r.removal_effect == 0.0));
            assert_eq!(m.conversion_probability, 0.0);
        }
    }

    // Malformed lines, each named by its number.
    let bad = modeling
        .run_attribution_on_paths(run(
            "a >> b;1;0;0\n;1;0;0\nx;abc;0;0\ny;-1;0;0\nz;1;5",
            vec![model(T::FirstTouch)],
        ))
        .await;
    let found = violations(bad).await;
    for line in 1..=5 {
        assert!(
            found
                .iter()
                .any(|(field, _)| field.starts_with(&format!("paths_text.line[{line}]"))),
            "line {line} in {found:?}"
        );
    }
    // Time decay needs times; no model; a model without a type.
    let found = violations(
        modeling
            .run_attribution_on_paths(run("a;1;0;0", vec![model(T::TimeDecay)]))
            .await,
    )
    .await;
    assert_eq!(
        found,
        vec![("models[0].type".to_owned(), "UNSUPPORTED".to_owned())]
    );
    let found = violations(
        modeling
            .run_attribution_on_paths(run("a;1;0;0", vec![]))
            .await,
    )
    .await;
    assert_eq!(found, vec![("models".to_owned(), "REQUIRED".to_owned())]);

    // 21 channels: the conversion-rate game is refused without the approximation flag, and
    // estimated, flagged, with it; the conversions game stays exact.
    let wide: String = (0..21)
        .map(|i| format!("c{i} > c{};1;0;3\n", (i + 1) % 21))
        .collect();
    // The refusal names the model that needs the flag by its index.
    let refused = modeling
        .run_attribution_on_paths(run(
            &wide,
            vec![model(T::FirstTouch), shapley(ShapleyGame::ConversionRate)],
        ))
        .await;
    assert_eq!(
        violations(refused).await,
        vec![(
            "models[1].allow_approximation".to_owned(),
            "TOO_MANY_CHANNELS".to_owned()
        )]
    );
    let estimated = modeling
        .run_attribution_on_paths(run(
            &wide,
            vec![
                AttributionModel {
                    allow_approximation: true,
                    shapley_samples: 200,
                    ..shapley(ShapleyGame::ConversionRate)
                },
                shapley(ShapleyGame::Conversions),
            ],
        ))
        .await?
        .into_inner();
    let details = |i: usize| estimated.results[i].shapley.clone().unwrap_or_default();
    assert!(details(0).approximate);
    assert_eq!(details(0).samples, 200);
    assert!(!details(1).approximate);
    let total: f64 = estimated.results[1]
        .channels
        .iter()
        .map(|c| c.conversions)
        .sum();
    assert!((total - 21.0).abs() < 1e-9);
    Ok(())
}
