//! Segments across the stages on random data: random persons with random events (odd but
//! valid Unicode in a property and a trait, fractional amounts), sent through collection,
//! cleaning, identity and the event store; random rule trees (event counts and sums in
//! rolling windows, filtered by the property, trait conditions, negation, all_of, any_of)
//! created as segments. Every segment's bootstrap must equal a deliberately naive reading of
//! the same rule here, over what was sent, joined to the stored persons. Times sit half a day
//! away from every window edge, so the answer cannot change while the test runs.

use std::collections::{BTreeMap, BTreeSet};

use prost_types::value::Kind;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use touchline_e2e::{Modeling, sample_event};
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::{FilterOperator, PropertyFilter};
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    CreateSegmentRequest, EventAggregateCondition, EventAggregation, EventMatcher,
    GetSegmentRequest, ListSegmentMembersRequest, NumberComparison, Segment, SegmentRule,
    SegmentRuleGroup, SegmentState, TraitCondition, event_aggregate_condition, segment_rule,
};
use touchline_testkit::{TestApp, token};

const TENANT: &str = "segments-fuzz";
const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "dictionary:write",
    "segments:read",
    "segments:write",
];
const DAY: i64 = 86_400_000;
/// Odd but valid texts a property and a trait take.
const TAGS: [&str; 6] = [
    "🎁",
    "漢字 テスト",
    "a b",
    "ünïcödé",
    "x\u{200b}y",
    "RTL\u{202e}",
];
const LEVELS: [&str; 3] = ["gold", "silver", "金卡"];

/// One sent event as the naive reading sees it.
#[derive(Debug, Clone)]
struct Sent {
    days_ago: i64,
    /// When it happened, ms.
    at: i64,
    purchase: bool,
    amount: f64,
    tag: Option<&'static str>,
    level: Option<&'static str>,
}

/// A rule as the test writes it and reads it.
#[derive(Debug, Clone)]
enum Rule {
    /// Count (or, with `sum`, the sum of amounts) of events within `days`, compared.
    Events {
        purchase: Option<bool>,
        tag: Option<&'static str>,
        sum: bool,
        days: i64,
        operator: FilterOperator,
        value: f64,
    },
    /// The latest level equals one of `levels`.
    Level(Vec<&'static str>),
    All(Vec<Rule>),
    Any(Vec<Rule>),
    Not(Box<Rule>),
}

fn compare(operator: FilterOperator, left: f64, right: f64) -> bool {
    match operator {
        FilterOperator::Equals => left == right,
        FilterOperator::NotEquals => left != right,
        FilterOperator::GreaterThan => left > right,
        FilterOperator::GreaterThanOrEqual => left >= right,
        FilterOperator::LessThan => left < right,
        _ => left <= right,
    }
}

impl Rule {
    fn random(rng: &mut ChaCha8Rng, depth: u32) -> Rule {
        if depth >= 2 || rng.random_bool(0.55) {
            if rng.random_bool(0.2) {
                let count = rng.random_range(1..=2);
                return Rule::Level((0..count).map(|_| LEVELS[rng.random_range(0..3)]).collect());
            }
            let sum = rng.random_bool(0.3);
            let operators = [
                FilterOperator::Equals,
                FilterOperator::NotEquals,
                FilterOperator::GreaterThan,
                FilterOperator::GreaterThanOrEqual,
                FilterOperator::LessThan,
                FilterOperator::LessThanOrEqual,
            ];
            return Rule::Events {
                purchase: if sum {
                    Some(true)
                } else {
                    [None, Some(true), Some(false)][rng.random_range(0..3)]
                },
                tag: rng
                    .random_bool(0.4)
                    .then(|| TAGS[rng.random_range(0..TAGS.len())]),
                sum,
                days: [7, 14, 30, 90][rng.random_range(0..4)],
                operator: operators[rng.random_range(0..operators.len())],
                value: if sum {
                    f64::from(rng.random_range(0..40u32)) * 12.5
                } else {
                    f64::from(rng.random_range(0..4u32))
                },
            };
        }
        let children = (0..rng.random_range(1..=3))
            .map(|_| Rule::random(rng, depth + 1))
            .collect();
        match rng.random_range(0..3) {
            0 => Rule::All(children),
            1 => Rule::Any(children),
            _ => Rule::Not(Box::new(Rule::random(rng, depth + 1))),
        }
    }

    fn holds(&self, events: &[Sent]) -> bool {
        match self {
            Rule::Events {
                purchase,
                tag,
                sum,
                days,
                operator,
                value,
            } => {
                let counted = events.iter().filter(|e| {
                    e.days_ago < *days
                        && purchase.is_none_or(|p| p == e.purchase)
                        && tag.is_none_or(|t| e.tag == Some(t))
                });
                let aggregate = if *sum {
                    counted.map(|e| e.amount).sum::<f64>()
                } else {
                    counted.count() as f64
                };
                compare(*operator, aggregate, *value)
            }
            Rule::Level(levels) => {
                // Oldest first: the latest event carrying a level gives it.
                let mut by_time: Vec<&Sent> = events.iter().collect();
                by_time.sort_by_key(|e| e.at);
                let latest = by_time.iter().rev().find_map(|e| e.level);
                latest.is_some_and(|l| levels.contains(&l))
            }
            Rule::All(rules) => rules.iter().all(|r| r.holds(events)),
            Rule::Any(rules) => rules.iter().any(|r| r.holds(events)),
            Rule::Not(rule) => !rule.holds(events),
        }
    }

    fn proto(&self) -> SegmentRule {
        use segment_rule::Rule as R;
        let text = |t: &str| prost_types::Value {
            kind: Some(Kind::StringValue(t.to_owned())),
        };
        let rule = match self {
            Rule::Events {
                purchase,
                tag,
                sum,
                days,
                operator,
                value,
            } => R::EventAggregate(EventAggregateCondition {
                event: Some(EventMatcher {
                    event_name: match purchase {
                        Some(true) => "purchase",
                        Some(false) => "view",
                        None => "",
                    }
                    .to_owned(),
                    filters: tag
                        .iter()
                        .map(|t| PropertyFilter {
                            field: "properties.tag".to_owned(),
                            operator: FilterOperator::Equals as i32,
                            values: vec![text(t)],
                        })
                        .collect(),
                }),
                aggregation: if *sum {
                    EventAggregation::Sum
                } else {
                    EventAggregation::Count
                } as i32,
                field: if *sum { "value" } else { "" }.to_owned(),
                comparison: Some(NumberComparison {
                    operator: *operator as i32,
                    value: *value,
                    upper_value: 0.0,
                }),
                window: Some(event_aggregate_condition::Window::WithinLast(
                    prost_types::Duration {
                        seconds: days * 86_400,
                        nanos: 0,
                    },
                )),
            }),
            Rule::Level(levels) => R::Trait(TraitCondition {
                filter: Some(PropertyFilter {
                    field: "traits.level".to_owned(),
                    operator: FilterOperator::Equals as i32,
                    values: levels.iter().map(|l| text(l)).collect(),
                }),
            }),
            Rule::All(rules) => R::AllOf(SegmentRuleGroup {
                rules: rules.iter().map(Rule::proto).collect(),
            }),
            Rule::Any(rules) => R::AnyOf(SegmentRuleGroup {
                rules: rules.iter().map(Rule::proto).collect(),
            }),
            Rule::Not(rule) => R::Negation(Box::new(rule.proto())),
        };
        SegmentRule { rule: Some(rule) }
    }
}

/// Every member of a segment, page by page.
async fn members(modeling: &mut Modeling, name: &str) -> anyhow::Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    let mut page_token = String::new();
    loop {
        let page = modeling
            .list_segment_members(ListSegmentMembersRequest {
                parent: name.to_owned(),
                page_size: 500,
                page_token,
                ..ListSegmentMembersRequest::default()
            })
            .await?
            .into_inner();
        found.extend(page.members.into_iter().map(|m| m.person_id));
        if page.next_page_token.is_empty() {
            return Ok(found);
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_segments_over_random_data_equal_a_naive_reading() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    touchline_e2e::mark_analysable(&mut modeling, TENANT, &["properties.tag", "traits.level"])
        .await?;

    // Another seed: SEGMENTS_FUZZ_SEED=<number>.
    let seed = std::env::var("SEGMENTS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5e65_2026_u64);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let now = chrono::Utc::now().timestamp_millis();
    let mut events = Vec::new();
    let mut sent: BTreeMap<String, Sent> = BTreeMap::new();
    for person in 0..80u64 {
        for _ in 0..rng.random_range(1..10) {
            let mut one = Sent {
                days_ago: rng.random_range(0..100),
                at: 0,
                purchase: rng.random_bool(0.4),
                amount: f64::from(rng.random_range(1..=4_000u32)) / 8.0,
                tag: rng
                    .random_bool(0.6)
                    .then(|| TAGS[rng.random_range(0..TAGS.len())]),
                level: rng
                    .random_bool(0.25)
                    .then(|| LEVELS[rng.random_range(0..LEVELS.len())]),
            };
            let id = format!("z{}", events.len());
            // Half a day past the day boundary: no window edge is near any event.
            let at = now - one.days_ago * DAY - DAY / 2 - rng.random_range(0..3_600_000);
            one.at = at;
            let name = if one.purchase { "purchase" } else { "view" };
            let mut event = sample_event(&id, person, name, at);
            let mut properties = prost_types::Struct::default();
            if one.purchase {
                properties.fields.insert(
                    "amount".to_owned(),
                    prost_types::Value {
                        kind: Some(Kind::NumberValue(one.amount)),
                    },
                );
            }
            if let Some(tag) = one.tag {
                properties.fields.insert(
                    "tag".to_owned(),
                    prost_types::Value {
                        kind: Some(Kind::StringValue(tag.to_owned())),
                    },
                );
            }
            event.properties = Some(properties);
            if let Some(level) = one.level {
                let mut traits = prost_types::Struct::default();
                traits.fields.insert(
                    "level".to_owned(),
                    prost_types::Value {
                        kind: Some(Kind::StringValue(level.to_owned())),
                    },
                );
                event.traits = Some(traits);
            }
            sent.insert(id, one);
            events.push(event);
        }
    }
    let stored = touchline_e2e::ingest_and_store(&mut collection, &mut modeling, events).await?;
    assert_eq!(stored.len(), sent.len(), "every event is stored");
    let mut persons: BTreeMap<String, Vec<Sent>> = BTreeMap::new();
    for event in &stored {
        let Some(one) = sent.get(&event.message_id) else {
            anyhow::bail!("an event nobody sent: {}", event.message_id);
        };
        persons
            .entry(event.person_id.clone())
            .or_default()
            .push(one.clone());
    }

    let rules: Vec<Rule> = (0..16).map(|_| Rule::random(&mut rng, 0)).collect();
    let mut expected = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let id = format!("fuzz-{index}");
        modeling
            .create_segment(CreateSegmentRequest {
                segment_id: id.clone(),
                segment: Some(Segment {
                    display_name: format!("fuzz {index} / 随机分群 {index}"),
                    rule: Some(rule.proto()),
                    ..Segment::default()
                }),
                request_id: uuid::Uuid::new_v4().to_string(),
                ..CreateSegmentRequest::default()
            })
            .await
            .map_err(|status| anyhow::anyhow!("segment {index} {rule:?} refused: {status:?}"))?;
        let naive: BTreeSet<String> = persons
            .iter()
            .filter(|(_, events)| rule.holds(events))
            .map(|(person, _)| person.clone())
            .collect();
        expected.push((id, rule, naive));
    }
    let mut nonempty = 0;
    for (id, rule, naive) in &expected {
        let name = format!("tenants/{TENANT}/segments/{id}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let segment = modeling
                .get_segment(GetSegmentRequest { name: name.clone() })
                .await?
                .into_inner()
                .segment
                .unwrap_or_default();
            if segment.state == SegmentState::Active as i32
                && segment.member_count == naive.len() as i64
            {
                break;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "{id} (seed {seed:#x}) {rule:?}: {} members, the naive reading {}",
                segment.member_count,
                naive.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let found = members(&mut modeling, &name).await?;
        assert_eq!(&found, naive, "{id} (seed {seed:#x}) {rule:?}");
        if !naive.is_empty() && naive.len() < persons.len() {
            nonempty += 1;
        }
    }
    assert!(
        nonempty >= 4,
        "the random rules select some but not all persons often enough ({nonempty} of 16)"
    );
    app.stop().await;
    Ok(())
}
