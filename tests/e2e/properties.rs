//! Analysable properties through the real services. Events carry a campaign (top level), an
//! amount (a number, sometimes fractional, sometimes absent) and a nested medium. Before the
//! tenant marks them analysable, a filter on one is refused by name; after, funnels filter
//! and break down by them and attribution credits campaigns, and every figure equals a
//! deliberately naive computation here over what was sent, joined to the stored persons.
//! A segment defined by a property ("paid over 100") limits a funnel to its members.

use std::collections::BTreeMap;
use touchline_e2e::at;

use prost_types::value::Kind;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use touchline_e2e::{field_violations, sample_event};
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::{FilterOperator, PropertyFilter, TimeRange};
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    AnalysisScope, AttributionModel, AttributionModelType, Breakdown, CreateSegmentRequest,
    EventAggregateCondition, EventAggregation, EventMatcher, FunnelBreakdown, FunnelDefinition,
    FunnelStep, NumberComparison, RunAttributionRequest, RunFunnelRequest, RunRetentionRequest,
    Segment, SegmentRule, event_aggregate_condition, segment_rule,
};
use touchline_testkit::{TestApp, token};

const TENANT: &str = "properties";
const SCOPES: &[&str] = &["events:write", "models:read", "segments:write"];
/// 2026-09-07 00:00 UTC.
const T0: i64 = 1_788_739_200_000;
const DAY: i64 = 86_400_000;
const WINDOW: i64 = 7 * DAY;
const CAMPAIGNS: [&str; 4] = ["618", "双十一", "new_year", ""];
const STEPS: [&str; 3] = ["view", "add_to_cart", "pay"];

/// What one sent event carried, as the naive computations read it.
#[derive(Debug, Clone)]
struct Sent {
    time_ms: i64,
    sequence: i64,
    step: usize,
    campaign: Option<String>,
    amount: Option<f64>,
    medium: Option<String>,
    /// The stored event's channel.
    channel: String,
}

fn value(kind: Kind) -> prost_types::Value {
    prost_types::Value { kind: Some(kind) }
}

fn filter(field: &str, operator: FilterOperator, values: Vec<Kind>) -> PropertyFilter {
    PropertyFilter {
        field: field.to_owned(),
        operator: operator.into(),
        values: values.into_iter().map(value).collect(),
    }
}

fn matcher(name: &str, filters: Vec<PropertyFilter>) -> Option<EventMatcher> {
    Some(EventMatcher {
        event_name: name.to_owned(),
        filters,
    })
}

fn scope() -> Option<AnalysisScope> {
    Some(AnalysisScope {
        time_range: Some(TimeRange {
            start_time: Some(at(T0 - DAY)),
            end_time: Some(at(T0 + 60 * DAY)),
        }),
        ..AnalysisScope::default()
    })
}

/// step 1 `view` of a listed campaign → `add_to_cart` → `pay` over 100, broken down by the
/// campaign of the first step.
fn funnel(names: &[String]) -> RunFunnelRequest {
    let steps = vec![
        matcher(
            &names[0],
            vec![filter(
                "properties.utm_campaign",
                FilterOperator::Equals,
                vec![
                    Kind::StringValue("618".to_owned()),
                    Kind::StringValue("双十一".to_owned()),
                ],
            )],
        ),
        matcher(&names[1], Vec::new()),
        matcher(
            &names[2],
            vec![filter(
                "properties.amount",
                FilterOperator::GreaterThan,
                vec![Kind::NumberValue(100.0)],
            )],
        ),
    ];
    RunFunnelRequest {
        parent: String::new(),
        funnel: Some(FunnelDefinition {
            steps: steps
                .into_iter()
                .map(|event| FunnelStep {
                    label: String::new(),
                    event,
                })
                .collect(),
            conversion_window: Some(prost_types::Duration {
                seconds: WINDOW / 1_000,
                nanos: 0,
            }),
            breakdown: Some(FunnelBreakdown {
                breakdown: Some(Breakdown {
                    field: "properties.utm_campaign".to_owned(),
                    limit: 10,
                }),
                ..FunnelBreakdown::default()
            }),
            scope: scope(),
            ..FunnelDefinition::default()
        }),
    }
}

/// Whether the naive funnel's step `step` takes `event`.
fn takes(step: usize, event: &Sent) -> bool {
    event.step == step
        && match step {
            0 => matches!(event.campaign.as_deref(), Some("618" | "双十一")),
            2 => event.amount.is_some_and(|a| a > 100.0),
            _ => true,
        }
}

/// The furthest step an ordered funnel reaches over one timeline (every step-1 event tried
/// with the earliest fitting later event for each next step), and the first campaign any
/// event meeting a step carries (the first-touch breakdown value: as in PostHog, the first
/// event with a value, not the first event).
fn naive_funnel(timeline: &[Sent]) -> (usize, String) {
    let mut furthest = 0;
    for (start, first) in timeline.iter().enumerate() {
        if !takes(0, first) {
            continue;
        }
        let (mut reached, mut last) = (1, first.time_ms);
        for event in &timeline[start + 1..] {
            if event.time_ms - first.time_ms > WINDOW {
                break;
            }
            if reached < 3 && takes(reached, event) && event.time_ms > last {
                reached += 1;
                last = event.time_ms;
            }
        }
        furthest = furthest.max(reached);
    }
    let value = timeline
        .iter()
        .filter(|e| (0..3).any(|step| takes(step, e)))
        .find_map(|e| e.campaign.clone().filter(|c| !c.is_empty()))
        .unwrap_or_default();
    (furthest, value)
}

/// Last-touch conversions per campaign: each `pay` in the range goes to the latest `view`
/// carrying a campaign after the person's previous `pay` and within the 30-day lookback.
/// Last-touch conversions per channel, a touch's channel read by `channel_of` (`None`: not a
/// touch).
fn naive_last_touch(
    timelines: &BTreeMap<String, Vec<Sent>>,
    channel_of: impl Fn(&Sent) -> Option<String>,
) -> BTreeMap<String, f64> {
    let lookback = 30 * DAY;
    let mut credit: BTreeMap<String, f64> = BTreeMap::new();
    for timeline in timelines.values() {
        let mut since = i64::MIN;
        for (index, event) in timeline.iter().enumerate() {
            if event.step != 2 {
                continue;
            }
            let touch = timeline[..index].iter().rev().find_map(|t| {
                (t.step == 0 && t.time_ms > since && t.time_ms >= event.time_ms - lookback)
                    .then(|| channel_of(t))
                    .flatten()
            });
            if let Some(channel) = touch {
                *credit.entry(channel).or_default() += 1.0;
            }
            since = event.time_ms;
        }
    }
    credit
}

/// A touch's campaign, when it has one.
fn campaign_of(sent: &Sent) -> Option<String> {
    sent.campaign.clone().filter(|c| !c.is_empty())
}

/// Last-touch conversions per channel of one attribution request.
/// Last-touch attribution of `conversion` events over `touch` events in the scope's range.
fn last_touch(conversion: &str, touch: &str) -> RunAttributionRequest {
    RunAttributionRequest {
        conversion_event: matcher(conversion, Vec::new()),
        touchpoint_events: vec![EventMatcher {
            event_name: touch.to_owned(),
            filters: Vec::new(),
        }],
        models: vec![AttributionModel {
            r#type: AttributionModelType::LastTouch.into(),
            ..AttributionModel::default()
        }],
        scope: scope(),
        ..RunAttributionRequest::default()
    }
}

async fn last_touch_credit(
    modeling: &mut touchline_e2e::Modeling,
    request: RunAttributionRequest,
) -> anyhow::Result<BTreeMap<String, f64>> {
    let attribution = match modeling.run_attribution(request).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => anyhow::bail!("refused: {:?}", field_violations(&status)),
    };
    Ok(attribution
        .results
        .first()
        .map(|r| {
            r.channels
                .iter()
                .filter(|c| c.conversions > 0.0)
                .map(|c| (c.channel.clone(), c.conversions))
                .collect()
        })
        .unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysable_properties_filter_break_down_and_name_channels() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    let mut collection: touchline_e2e::Collection =
        CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: touchline_e2e::Modeling = ModelingServiceClient::new(app.channel(&token)?);

    // 150 persons, each a random walk over the three steps with random properties.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut events = Vec::new();
    let mut sent: BTreeMap<String, Sent> = BTreeMap::new();
    for person in 0..150u64 {
        let mut time = T0 + rng.random_range(0..20 * DAY);
        for _ in 0..rng.random_range(1..8) {
            let step = rng.random_range(0..3usize);
            let id = format!("p{}", events.len());
            let mut event = sample_event(&id, person, STEPS[step], time);
            let campaign = rng
                .random_bool(0.8)
                .then(|| CAMPAIGNS[rng.random_range(0..CAMPAIGNS.len())].to_owned());
            let amount = rng
                .random_bool(0.8)
                .then(|| f64::from(rng.random_range(0..4_000u32)) / 20.0);
            let medium = rng
                .random_bool(0.5)
                .then(|| ["cpc", "social"][rng.random_range(0..2)].to_owned());
            let mut properties = prost_types::Struct::default();
            if let Some(campaign) = &campaign {
                properties.fields.insert(
                    "utm_campaign".to_owned(),
                    value(Kind::StringValue(campaign.clone())),
                );
            }
            if let Some(amount) = amount {
                properties
                    .fields
                    .insert("amount".to_owned(), value(Kind::NumberValue(amount)));
            }
            if let Some(medium) = &medium {
                let utm = prost_types::Struct {
                    fields: [(
                        "medium".to_owned(),
                        value(Kind::StringValue(medium.clone())),
                    )]
                    .into(),
                };
                properties
                    .fields
                    .insert("utm".to_owned(), value(Kind::StructValue(utm)));
            }
            event.properties = Some(properties);
            sent.insert(
                id,
                Sent {
                    time_ms: time,
                    sequence: 0,
                    step,
                    campaign,
                    amount,
                    medium,
                    channel: String::new(),
                },
            );
            events.push(event);
            time += rng.random_range(60_000..3 * DAY);
        }
    }
    let mut stored = Vec::new();
    for chunk in events.chunks(300) {
        stored =
            touchline_e2e::ingest_and_store(&mut collection, &mut modeling, chunk.to_vec()).await?;
    }
    assert_eq!(stored.len(), events.len(), "every event is stored");
    let mut names = vec![String::new(); 3];
    let mut timelines: BTreeMap<String, Vec<Sent>> = BTreeMap::new();
    for event in &stored {
        let Some(mine) = sent.get(&event.message_id) else {
            anyhow::bail!("an event nobody sent: {}", event.message_id);
        };
        names[mine.step].clone_from(&event.event_name);
        timelines
            .entry(event.person_id.clone())
            .or_default()
            .push(Sent {
                sequence: event.sequence,
                channel: event.channel.clone(),
                ..mine.clone()
            });
    }
    for timeline in timelines.values_mut() {
        timeline.sort_by_key(|e| (e.time_ms, e.sequence));
    }

    // Not analysable yet: refused by name, in the step and in the breakdown.
    let refused = modeling
        .run_funnel(funnel(&names))
        .await
        .err()
        .map(|status| (status.code(), field_violations(&status)));
    let not_analysable = |field: &str| (field.to_owned(), "NOT_ANALYSABLE".to_owned());
    assert_eq!(
        refused,
        Some((
            tonic::Code::InvalidArgument,
            vec![
                not_analysable("funnel.steps[0].event.filters[0].field"),
                not_analysable("funnel.steps[2].event.filters[0].field"),
                not_analysable("funnel.breakdown.breakdown.field"),
            ]
        ))
    );

    // Marked: the next query rebuilds the projection with the three properties.
    let bad = touchline_e2e::mark_analysable(&mut modeling, TENANT, &["utm_campaign"])
        .await
        .err()
        .map(|status| field_violations(&status));
    assert_eq!(
        bad,
        Some(vec![(
            "model_settings.analysable_properties[0]".to_owned(),
            "INVALID_PATH".to_owned()
        )])
    );
    let marked = touchline_e2e::mark_analysable(
        &mut modeling,
        TENANT,
        &[
            "properties.utm_campaign",
            "properties.amount",
            "properties.utm.medium",
        ],
    )
    .await?;
    assert_eq!(marked.analysable_properties.len(), 3);

    let mut expected = vec![0i64; 3];
    let mut expected_by_campaign: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for timeline in timelines.values() {
        let (furthest, campaign) = naive_funnel(timeline);
        for count in expected.iter_mut().take(furthest) {
            *count += 1;
        }
        if furthest > 0 {
            let row = expected_by_campaign
                .entry(campaign)
                .or_insert_with(|| vec![0; 3]);
            for count in row.iter_mut().take(furthest) {
                *count += 1;
            }
        }
    }
    assert!(
        expected[2] > 0,
        "the data reaches the last step: {expected:?}"
    );
    let ran = modeling.run_funnel(funnel(&names)).await?.into_inner();
    let counts: Vec<i64> = ran.steps.iter().map(|s| s.count).collect();
    assert_eq!(counts, expected, "the funnel equals the naive count");
    let by_campaign: BTreeMap<String, Vec<i64>> = ran
        .breakdown_results
        .iter()
        .map(|row| {
            (
                row.value.clone(),
                row.steps.iter().map(|s| s.count).collect(),
            )
        })
        .collect();
    assert_eq!(by_campaign, expected_by_campaign, "by first-touch campaign");

    // A nested property in the scope, a number compared as a number (BETWEEN), and a
    // breakdown by amount that prints whole numbers without a fraction.
    let mut scoped = funnel(&names);
    if let Some(definition) = scoped.funnel.as_mut() {
        definition.steps[0].event = matcher(&names[0], Vec::new());
        definition.steps[2].event = matcher(&names[2], Vec::new());
        if let Some(scope) = definition.scope.as_mut() {
            scope.event_filters = vec![
                filter(
                    "properties.utm.medium",
                    FilterOperator::Equals,
                    vec![Kind::StringValue("cpc".to_owned())],
                ),
                filter(
                    "properties.amount",
                    FilterOperator::Between,
                    vec![Kind::NumberValue(5.0), Kind::NumberValue(150.0)],
                ),
            ];
        }
        definition.breakdown = Some(FunnelBreakdown {
            breakdown: Some(Breakdown {
                field: "properties.amount".to_owned(),
                limit: 100,
            }),
            ..FunnelBreakdown::default()
        });
    }
    let in_scope = |e: &Sent| {
        e.medium.as_deref() == Some("cpc") && e.amount.is_some_and(|a| (5.0..=150.0).contains(&a))
    };
    let mut expected_scoped = vec![0i64; 3];
    for timeline in timelines.values() {
        let kept: Vec<Sent> = timeline
            .iter()
            .filter(|e| in_scope(e))
            .map(|e| Sent {
                campaign: Some("618".to_owned()),
                amount: Some(1_000.0),
                ..e.clone()
            })
            .collect();
        let (furthest, _) = naive_funnel(&kept);
        for count in expected_scoped.iter_mut().take(furthest) {
            *count += 1;
        }
    }
    let scoped_run = modeling.run_funnel(scoped).await?.into_inner();
    let counts: Vec<i64> = scoped_run.steps.iter().map(|s| s.count).collect();
    assert_eq!(
        counts, expected_scoped,
        "the scoped funnel equals the naive count"
    );
    assert!(
        scoped_run
            .breakdown_results
            .iter()
            .all(|row| !row.value.ends_with(".0") && row.value.parse::<f64>().is_ok()),
        "amounts print as analysts read them: {:?}",
        scoped_run
            .breakdown_results
            .iter()
            .map(|r| &r.value)
            .collect::<Vec<_>>()
    );

    // Retention broken down by campaign answers with the campaigns as values.
    let retention = modeling
        .run_retention(RunRetentionRequest {
            start_event: matcher(&names[0], Vec::new()),
            breakdown: Some(Breakdown {
                field: "properties.utm_campaign".to_owned(),
                limit: 10,
            }),
            scope: scope(),
            ..RunRetentionRequest::default()
        })
        .await?
        .into_inner();
    let values: Vec<&str> = retention
        .tables
        .iter()
        .map(|r| r.breakdown_value.as_str())
        .collect();
    assert!(
        values.contains(&"618") && values.contains(&"双十一"),
        "{values:?}"
    );

    // Attribution by campaign: last touch equals the naive reading.
    let by_campaign = RunAttributionRequest {
        channel_field: "properties.utm_campaign".to_owned(),
        ..last_touch(&names[2], &names[0])
    };
    let credited = last_touch_credit(&mut modeling, by_campaign.clone()).await?;
    assert_eq!(
        credited,
        naive_last_touch(&timelines, campaign_of),
        "last touch by campaign"
    );
    // The campaign read as what referred a touch: a touch with one is credited to it, one
    // without to its own channel.
    let referred = RunAttributionRequest {
        channel_field: String::new(),
        referrer_field: "properties.utm_campaign".to_owned(),
        ..by_campaign.clone()
    };
    let credited = last_touch_credit(&mut modeling, referred).await?;
    assert_eq!(
        credited,
        naive_last_touch(&timelines, |t| campaign_of(t)
            .or_else(|| Some(t.channel.clone()))),
        "last touch by referrer, else channel"
    );
    // The referrer and the conversion key name analysable properties, or are refused.
    let refused = |at: &str, field: &str| {
        let mut request = by_campaign.clone();
        if at == "referrer_field" {
            request.referrer_field = field.to_owned();
        } else {
            request.conversion_key_field = field.to_owned();
        }
        request
    };
    for at in ["referrer_field", "conversion_key_field"] {
        for (field, reason) in [
            ("utm_campaign", "UNKNOWN_FIELD"),
            ("properties.utm_source", "NOT_ANALYSABLE"),
        ] {
            let status = modeling.run_attribution(refused(at, field)).await.err();
            assert_eq!(
                status.map(|s| (s.code(), field_violations(&s))),
                Some((
                    tonic::Code::InvalidArgument,
                    vec![(at.to_owned(), reason.to_owned())]
                )),
                "{at} {field}"
            );
        }
    }
    // A segment of the persons who paid over 100 limits the funnel to them, once built.
    let big_spender = |timeline: &Vec<Sent>| {
        timeline
            .iter()
            .any(|e| e.step == 2 && e.amount.is_some_and(|a| a > 100.0))
    };
    let mut expected_members = vec![0i64; 3];
    let mut members = 0;
    for timeline in timelines.values().filter(|t| big_spender(t)) {
        members += 1;
        let (furthest, _) = naive_funnel(timeline);
        for count in expected_members.iter_mut().take(furthest) {
            *count += 1;
        }
    }
    let rule = SegmentRule {
        rule: Some(segment_rule::Rule::EventAggregate(
            EventAggregateCondition {
                event: matcher(
                    &names[2],
                    vec![filter(
                        "properties.amount",
                        FilterOperator::GreaterThan,
                        vec![Kind::NumberValue(100.0)],
                    )],
                ),
                aggregation: EventAggregation::Count as i32,
                field: String::new(),
                comparison: Some(NumberComparison {
                    operator: FilterOperator::GreaterThanOrEqual as i32,
                    value: 1.0,
                    upper_value: 0.0,
                }),
                window: Some(event_aggregate_condition::Window::WithinLast(
                    prost_types::Duration {
                        seconds: 1_000 * 86_400,
                        nanos: 0,
                    },
                )),
            },
        )),
    };
    let created = modeling
        .create_segment(CreateSegmentRequest {
            segment_id: "big-spenders".to_owned(),
            segment: Some(Segment {
                display_name: "paid over 100 / 单笔消费超过 100".to_owned(),
                rule: Some(rule),
                ..Segment::default()
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..CreateSegmentRequest::default()
        })
        .await;
    if let Err(status) = &created {
        anyhow::bail!("the segment was refused: {:?}", field_violations(status));
    }
    let mut in_segment = funnel(&names);
    if let Some(scope) = in_segment.funnel.as_mut().and_then(|f| f.scope.as_mut()) {
        scope.segment = format!("tenants/{TENANT}/segments/big-spenders");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let scoped = loop {
        let ran = modeling.run_funnel(in_segment.clone()).await?.into_inner();
        let considered = ran.computation.as_ref().map_or(0, |c| c.persons_considered);
        if considered == members || std::time::Instant::now() > deadline {
            break ran;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(members > 0, "some persons paid over 100");
    assert_eq!(
        scoped.computation.as_ref().map(|c| c.persons_considered),
        Some(members),
        "the segment's members"
    );
    let counts: Vec<i64> = scoped.steps.iter().map(|s| s.count).collect();
    assert_eq!(counts, expected_members, "the funnel within the segment");
    let mut foreign = in_segment.clone();
    if let Some(scope) = foreign.funnel.as_mut().and_then(|f| f.scope.as_mut()) {
        scope.segment = "tenants/someone-else/segments/big-spenders".to_owned();
    }
    let unknown = modeling
        .run_funnel(foreign)
        .await
        .err()
        .map(|status| field_violations(&status));
    assert_eq!(
        unknown,
        Some(vec![(
            "funnel.scope.segment".to_owned(),
            "UNKNOWN_SEGMENT".to_owned()
        )])
    );
    Ok(())
}

/// An ad visit tagged by its platform alone (a click id, no `utm_*` parameter) is credited to
/// the platform when attribution reads `utm_source` as the referrer, and a visit whose landing
/// URL carries the tags to the source they name; a source tagged by hand wins over a click id,
/// and an untagged visit keeps its own channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_click_ids_and_landing_urls_name_the_source_attribution_credits() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    let mut collection: touchline_e2e::Collection =
        CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: touchline_e2e::Modeling = ModelingServiceClient::new(app.channel(&token)?);

    // Person 0 (app) lands with a Tencent Ads click id, person 1 (mini-program) with a Google
    // click id and a source tagged by hand, person 2 (web) with neither, person 3 (pos) on a
    // URL whose query tags the source and a campaign; each pays a day later.
    let landings: [&[(&str, &str)]; 4] = [
        &[("gdt_vid", "wx0a1b2c")],
        &[("gclid", "Cj0KCQ"), ("utm_source", "newsletter")],
        &[],
        &[(
            "url",
            "https://shop.example/l?utm_source=wechat_oa&utm_campaign=%E5%8F%8C%E5%8D%81%E4%B8%80",
        )],
    ];
    let mut events = Vec::new();
    for (person, tags) in landings.iter().enumerate() {
        let person = person as u64;
        let mut landing = sample_event(&format!("land-{person}"), person, "view", T0 + DAY);
        landing.properties = Some(prost_types::Struct {
            fields: tags
                .iter()
                .map(|(name, text)| {
                    (
                        (*name).to_owned(),
                        value(Kind::StringValue((*text).to_owned())),
                    )
                })
                .collect(),
        });
        events.push(landing);
        events.push(sample_event(
            &format!("pay-{person}"),
            person,
            "pay",
            T0 + 2 * DAY,
        ));
    }
    let stored = touchline_e2e::ingest_and_store(&mut collection, &mut modeling, events).await?;
    assert_eq!(stored.len(), 8, "every event is stored");
    let text_of = |message: &str, field: &str| {
        stored
            .iter()
            .find(|e| e.message_id == message)
            .and_then(|e| e.properties.as_ref()?.fields.get(field)?.kind.clone())
    };
    assert_eq!(
        (
            text_of("land-0", "utm_source"),
            text_of("land-0", "utm_medium"),
            text_of("land-0", "gdt_vid")
        ),
        (
            Some(Kind::StringValue("tencent_ads".to_owned())),
            Some(Kind::StringValue("cpc".to_owned())),
            Some(Kind::StringValue("wx0a1b2c".to_owned()))
        ),
        "the click id names source and medium, and stays"
    );
    assert_eq!(
        text_of("land-3", "utm_campaign"),
        Some(Kind::StringValue("双十一".to_owned())),
        "the landing URL's tags, decoded"
    );
    let name_of = |message: &str| {
        stored
            .iter()
            .find(|e| e.message_id == message)
            .map(|e| e.event_name.clone())
            .unwrap_or_default()
    };
    touchline_e2e::mark_analysable(&mut modeling, TENANT, &["properties.utm_source"]).await?;
    let credited = last_touch_credit(
        &mut modeling,
        RunAttributionRequest {
            referrer_field: "properties.utm_source".to_owned(),
            ..last_touch(&name_of("pay-0"), &name_of("land-0"))
        },
    )
    .await?;
    let want: BTreeMap<String, f64> = [
        ("tencent_ads", 1.0),
        ("newsletter", 1.0),
        ("web", 1.0),
        ("wechat_oa", 1.0),
    ]
    .into_iter()
    .map(|(channel, n)| (channel.to_owned(), n))
    .collect();
    assert_eq!(credited, want);
    Ok(())
}
