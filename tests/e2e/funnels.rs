//! Funnels and paths through the real services: events sent to collection, cleaned, joined
//! into persons and stored, then RunFunnel and RunPaths over them. The figures equal a
//! deliberately naive funnel and path count computed here from the stored events
//! (ListEvents), and identity's changes show in the next answer: an erased person leaves the
//! funnel, two persons linked into one reach the step neither reached alone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::{FilterOperator, Identifier, PropertyFilter, TimeRange};
use touchline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use touchline_proto::identity::v1::{ForgetPersonRequest, LinkIdentifiersRequest};
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    AnalysisScope, Breakdown, CountEventsRequest, EventMatcher, FunnelBreakdown, FunnelDefinition,
    FunnelPersonSelection, FunnelStep, ListFunnelDropOffsRequest, PathItemKind, RunFunnelRequest,
    RunFunnelResponse, RunPathsRequest,
};
use touchline_testkit::{TestApp, token};

use touchline_e2e::Modeling;

const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "identity:write",
    "identity:erase",
];
const TENANT: &str = "funnels";
const SOURCE_NAMES: [&str; 4] = ["view", "add_to_cart", "submit_order", "pay"];
const START_MS: i64 = 1_788_000_000_000;
const WINDOW_MS: i64 = 3 * 86_400_000;

/// A stored event as the naive funnel reads it.
#[derive(Debug, Clone)]
struct Stored {
    time_ms: i64,
    sequence: i64,
    step: Option<usize>,
    channel: String,
    name: String,
}

/// The furthest step (1-based, 0 for none) of an ordered funnel over one person's events,
/// tried from every step-1 event with the earliest fitting event for each next step (which
/// reaches furthest), and the channel of the person's first event matching any step.
fn naive_person(events: &[Stored]) -> (usize, String) {
    let mut furthest = 0;
    for (start, first) in events.iter().enumerate() {
        if first.step != Some(0) {
            continue;
        }
        let (mut reached, mut last) = (1, first.time_ms);
        for event in &events[start + 1..] {
            if event.time_ms - first.time_ms > WINDOW_MS {
                break;
            }
            if event.step == Some(reached) && event.time_ms > last {
                reached += 1;
                last = event.time_ms;
            }
        }
        furthest = furthest.max(reached);
    }
    let channel = events
        .iter()
        .find(|e| e.step.is_some())
        .map(|e| e.channel.clone())
        .unwrap_or_default();
    (furthest, channel)
}

fn counts(response: &RunFunnelResponse) -> Vec<i64> {
    response.steps.iter().map(|s| s.count).collect()
}

fn funnel_request(canonical: &[String]) -> RunFunnelRequest {
    RunFunnelRequest {
        parent: String::new(),
        funnel: Some(FunnelDefinition {
            steps: canonical
                .iter()
                .map(|name| FunnelStep {
                    label: String::new(),
                    event: Some(EventMatcher {
                        event_name: name.clone(),
                        filters: Vec::new(),
                    }),
                })
                .collect(),
            conversion_window: Some(prost_types::Duration {
                seconds: WINDOW_MS / 1_000,
                nanos: 0,
            }),
            breakdown: Some(FunnelBreakdown {
                breakdown: Some(Breakdown {
                    field: "channel".to_owned(),
                    limit: 10,
                }),
                ..FunnelBreakdown::default()
            }),
            scope: Some(AnalysisScope {
                time_range: Some(TimeRange {
                    start_time: Some(prost_types::Timestamp {
                        seconds: START_MS / 1_000 - 86_400,
                        nanos: 0,
                    }),
                    end_time: Some(prost_types::Timestamp {
                        seconds: START_MS / 1_000 + 40 * 86_400,
                        nanos: 0,
                    }),
                }),
                ..AnalysisScope::default()
            }),
            ..FunnelDefinition::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funnels_and_paths_equal_naive_counts_and_follow_identity_changes() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling = ModelingServiceClient::new(app.channel(&token)?);
    let mut identity = IdentityServiceClient::new(app.channel(&token)?);

    // 120 persons, each a random walk down the funnel with gaps of up to two days, some
    // walks restarting; persons 1000 and 1001 are the two halves of one shopper.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut events = Vec::new();
    let mut message = 0;
    let mut push = |events: &mut Vec<_>, person: u64, step: usize, at: i64| {
        message += 1;
        events.push(sample_event(
            &format!("f{message}"),
            person,
            SOURCE_NAMES[step],
            at,
        ));
    };
    for person in 0..120u64 {
        let mut at = START_MS + rng.random_range(0..20 * 86_400_000);
        let mut step = 0;
        for _ in 0..rng.random_range(1..7) {
            push(&mut events, person, step, at);
            at += rng.random_range(1_000..2 * 86_400_000);
            step = if rng.random_bool(0.7) && step < 3 {
                step + 1
            } else {
                rng.random_range(0..4)
            };
        }
    }
    push(&mut events, 1_000, 0, START_MS + 1_000);
    push(&mut events, 1_000, 1, START_MS + 2_000);
    push(&mut events, 1_001, 2, START_MS + 3_000);
    push(&mut events, 1_001, 3, START_MS + 4_000);
    let mut position = 0;
    for chunk in events.chunks(200) {
        let acked = collection
            .ingest_events(IngestEventsRequest {
                events: chunk.to_vec(),
            })
            .await?
            .into_inner();
        position = position.max(acked.results.iter().map(|r| r.sequence).max().unwrap_or(0));
    }
    modeling
        .count_events(CountEventsRequest {
            min_raw_sequence: position,
            ..CountEventsRequest::default()
        })
        .await?;

    // The stored events, as the naive funnel reads them.
    let stored = touchline_e2e::stored_events(&mut modeling).await?;
    assert_eq!(stored.len(), events.len(), "every event is stored");
    let source_of: BTreeMap<&str, &str> = events
        .iter()
        .map(|e| (e.message_id.as_str(), e.event.as_str()))
        .collect();
    let mut canonical = vec![String::new(); 4];
    for event in &stored {
        let source = source_of
            .get(event.message_id.as_str())
            .copied()
            .unwrap_or_default();
        if let Some(step) = SOURCE_NAMES.iter().position(|n| *n == source) {
            canonical[step].clone_from(&event.event_name);
        }
    }
    let mut timelines: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    for event in &stored {
        let time = event.event_time.unwrap_or_default();
        timelines
            .entry(event.person_id.clone())
            .or_default()
            .push(Stored {
                time_ms: time.seconds * 1_000 + i64::from(time.nanos) / 1_000_000,
                sequence: event.sequence,
                step: canonical.iter().position(|n| *n == event.event_name),
                channel: event.channel.clone(),
                name: event.event_name.clone(),
            });
    }
    let mut expected = vec![0i64; 4];
    let mut expected_by_channel: BTreeMap<String, i64> = BTreeMap::new();
    let mut dropped_at_2: Vec<String> = Vec::new();
    let mut reached: Vec<Vec<String>> = vec![Vec::new(); 4];
    for (person, timeline) in &mut timelines {
        timeline.sort_by_key(|e| (e.time_ms, e.sequence));
        let (furthest, channel) = naive_person(timeline);
        if furthest == 1 {
            dropped_at_2.push(person.clone());
        }
        for persons in reached.iter_mut().take(furthest) {
            persons.push(person.clone());
        }
        for count in expected.iter_mut().take(furthest) {
            *count += 1;
        }
        if furthest > 0 {
            *expected_by_channel.entry(channel).or_default() += 1;
        }
    }

    let request = funnel_request(&canonical);
    let ran = modeling.run_funnel(request.clone()).await?.into_inner();
    assert_eq!(counts(&ran), expected, "the funnel equals the naive count");
    let by_channel: BTreeMap<String, i64> = ran
        .breakdown_results
        .iter()
        .map(|row| (row.value.clone(), row.steps.first().map_or(0, |s| s.count)))
        .collect();
    assert_eq!(by_channel, expected_by_channel, "first-touch channels");
    assert_eq!(
        ran.computation.as_ref().map(|c| c.persons_considered),
        Some(timelines.len() as i64)
    );

    // The persons who dropped at step 2, paged 10 at a time, are the naive ones, by id.
    let mut listed = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = modeling
            .list_funnel_drop_offs(ListFunnelDropOffsRequest {
                funnel: request.funnel.clone(),
                step: 2,
                page_size: 10,
                page_token,
                ..ListFunnelDropOffsRequest::default()
            })
            .await?
            .into_inner();
        assert_eq!(page.total_size, ran.steps[1].drop_off);
        assert_eq!(page.opted_out_count, 0);
        listed.extend(page.persons.into_iter().map(|p| p.person_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    dropped_at_2.sort();
    assert_eq!(listed, dropped_at_2, "drop-offs at step 2");

    // The persons who reached each step, listed in one page, are the naive ones.
    for (index, mut expected) in reached.into_iter().enumerate() {
        let page = modeling
            .list_funnel_drop_offs(ListFunnelDropOffsRequest {
                funnel: request.funnel.clone(),
                step: index as i32 + 1,
                page_size: 1_000,
                selection: FunnelPersonSelection::Reached as i32,
                ..ListFunnelDropOffsRequest::default()
            })
            .await?
            .into_inner();
        assert_eq!(
            page.total_size,
            ran.steps[index].count,
            "step {}",
            index + 1
        );
        let listed: Vec<String> = page.persons.into_iter().map(|p| p.person_id).collect();
        expected.sort();
        assert_eq!(listed, expected, "persons who reached step {}", index + 1);
    }
    let beyond = modeling
        .list_funnel_drop_offs(ListFunnelDropOffsRequest {
            funnel: request.funnel.clone(),
            step: 5,
            ..ListFunnelDropOffsRequest::default()
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(beyond, Some(tonic::Code::InvalidArgument));

    // Paths: the transitions of every session's first three events equal a naive count.
    let gap_ms = 86_400_000;
    let mut expected_edges: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut sessions = 0;
    for timeline in timelines.values() {
        let mut session: Vec<&Stored> = Vec::new();
        let mut close = |session: &mut Vec<&Stored>| {
            if !session.is_empty() {
                sessions += 1;
            }
            for (position, pair) in session
                .iter()
                .take(3)
                .collect::<Vec<_>>()
                .windows(2)
                .enumerate()
            {
                let key = (
                    format!("{}_{}", position + 1, pair[0].name),
                    format!("{}_{}", position + 2, pair[1].name),
                );
                *expected_edges.entry(key).or_default() += 1;
            }
            session.clear();
        };
        for event in timeline {
            if session
                .last()
                .is_some_and(|last| event.time_ms - last.time_ms > gap_ms)
            {
                close(&mut session);
            }
            session.push(event);
        }
        close(&mut session);
    }
    let paths = modeling
        .run_paths(RunPathsRequest {
            session_gap: Some(prost_types::Duration {
                seconds: gap_ms / 1_000,
                nanos: 0,
            }),
            max_steps: 3,
            max_edges: 1_000,
            scope: request.funnel.as_ref().and_then(|f| f.scope.clone()),
            ..RunPathsRequest::default()
        })
        .await?
        .into_inner();
    let edges: BTreeMap<(String, String), i64> = paths
        .edges
        .iter()
        .map(|e| {
            (
                (e.source_key.clone(), e.target_key.clone()),
                e.transition_count,
            )
        })
        .collect();
    assert_eq!(edges, expected_edges, "path edges equal a naive count");
    assert_eq!(paths.session_count, sessions);
    let weights: Vec<i64> = paths.edges.iter().map(|e| e.transition_count).collect();
    assert!(
        weights.windows(2).all(|w| w[0] >= w[1]),
        "heaviest first: {weights:?}"
    );

    // The scope's event filters hold for paths too: only the store's touchpoints remain.
    let pos_only = modeling
        .run_paths(RunPathsRequest {
            item_kind: PathItemKind::Touchpoint as i32,
            session_gap: Some(prost_types::Duration {
                seconds: gap_ms / 1_000,
                nanos: 0,
            }),
            scope: request
                .funnel
                .as_ref()
                .and_then(|f| f.scope.clone())
                .map(|mut scope| {
                    scope.event_filters = vec![PropertyFilter {
                        field: "channel".to_owned(),
                        operator: FilterOperator::Equals as i32,
                        values: vec![prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue("pos".to_owned())),
                        }],
                    }];
                    scope
                }),
            ..RunPathsRequest::default()
        })
        .await?
        .into_inner();
    assert!(!pos_only.nodes.is_empty());
    assert!(
        pos_only.nodes.iter().all(|n| n.item.starts_with("pos/")),
        "{:?}",
        pos_only.nodes
    );

    // Linking the shopper's two devices makes one person who reaches the last step.
    let link = identity
        .link_identifiers(LinkIdentifiersRequest {
            identifiers: [1_000, 1_001]
                .map(|p| Identifier {
                    r#type: "device_id".to_owned(),
                    value: format!("device-{p}"),
                    scope: String::new(),
                })
                .to_vec(),
            reason: "the same shopper signed in on both".to_owned(),
            source: "support".to_owned(),
            ..LinkIdentifiersRequest::default()
        })
        .await?
        .into_inner();
    assert!(!link.person_id.is_empty(), "linked: {link:?}");
    let before = counts(&ran);
    let started = Instant::now();
    // Before: the first half reached step 2, the second half no step (it has no step-1
    // event). Linked, the one person reaches step 4.
    let merged = wait_for(&mut modeling, &request, |c| {
        c == [before[0], before[1], before[2] + 1, before[3] + 1]
    })
    .await?;
    println!("merge reflected after {:?}", started.elapsed());
    assert_eq!(
        merged.computation.as_ref().map(|c| c.persons_considered),
        Some(timelines.len() as i64 - 1)
    );

    // Erasing that person takes them out of every step.
    identity
        .forget_person(ForgetPersonRequest {
            name: format!("tenants/{TENANT}/persons/{}", link.person_id),
            reason: "erasure request 42".to_owned(),
            request_id: String::new(),
        })
        .await?;
    let started = Instant::now();
    wait_for(&mut modeling, &request, |c| {
        c == [before[0] - 1, before[1] - 1, before[2], before[3]]
    })
    .await?;
    println!("erasure reflected after {:?}", started.elapsed());

    // A bad definition is refused naming the field; an unknown step offers the nearest names.
    let mut bad = request.clone();
    if let Some(funnel) = bad.funnel.as_mut() {
        funnel.conversion_window = Some(prost_types::Duration {
            seconds: 0,
            nanos: 0,
        });
    }
    let violations = refused(&mut modeling, bad).await?;
    assert_eq!(
        violations
            .iter()
            .map(|v| v.field.as_str())
            .collect::<Vec<_>>(),
        ["funnel.conversion_window"]
    );
    let mut misspelt = request.clone();
    if let Some(event) = misspelt
        .funnel
        .as_mut()
        .and_then(|f| f.steps[1].event.as_mut())
    {
        event.event_name = format!("{}x", canonical[1]);
    }
    let violations = refused(&mut modeling, misspelt).await?;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "funnel.steps[1].event.event_name");
    assert!(
        violations[0]
            .description
            .contains(&format!("nearest: {}", canonical[1])),
        "{}",
        violations[0].description
    );
    app.stop().await;
    Ok(())
}

/// The field violations of a refused funnel.
async fn refused(
    modeling: &mut Modeling,
    request: RunFunnelRequest,
) -> anyhow::Result<Vec<tonic_types::FieldViolation>> {
    let status = modeling
        .run_funnel(request)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("the funnel must be refused"))?;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let details = tonic_types::StatusExt::get_error_details(&status);
    Ok(details
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default())
}

/// Runs the funnel until `done` accepts its counts (every 50 ms, up to 30 s).
async fn wait_for(
    modeling: &mut Modeling,
    request: &RunFunnelRequest,
    done: impl Fn(&[i64]) -> bool,
) -> anyhow::Result<RunFunnelResponse> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ran = modeling.run_funnel(request.clone()).await?.into_inner();
        if done(&counts(&ran)) {
            return Ok(ran);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "not reflected: {:?}",
            counts(&ran)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
