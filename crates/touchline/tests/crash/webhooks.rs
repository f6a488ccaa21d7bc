//! The real binary killed with SIGKILL ten times while it publishes segment entries and
//! delivers them as webhooks, restarted each time: every trigger reaches the receiver at
//! least once, and a receiver that deduplicates on `webhook-id` sees each exactly once. Two
//! destinations share the receiver: one in sequence order, one per person with four
//! deliveries in flight (acknowledged out of order, so a kill finds several half done).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::{Event, EventType, FilterOperator};
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::governance::v1::{
    CanonicalEvent, CreateCanonicalEventRequest, PublishDictionaryVersionRequest,
};
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    CreateSegmentRequest, CreateWebhookDestinationRequest, EventAggregateCondition,
    EventAggregation, EventMatcher, GetWebhookDestinationRequest, NumberComparison, Segment,
    SegmentRule, SubscribeTriggersRequest, TriggerType, WebhookDestination, WebhookOrdering,
    event_aggregate_condition, segment_rule,
};
use touchline_runtime::client::{CallCredentials, lazy_channel};
use touchline_testkit::{TestDatabase, eventually, token};
use touchline_webhooks::SigningSecret;
use touchline_webhooks::testing::PythonReceiver;

use super::{free_port, start, wait_serving};

const KILLS: usize = 10;
const PER_ROUND: u64 = 30;

fn workspace_root() -> anyhow::Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()?)
}

fn purchase(person: u64) -> Event {
    Event {
        message_id: format!("hook-{person:05}"),
        r#type: EventType::Track as i32,
        event: "purchase".into(),
        anonymous_id: format!("buyer-{person}"),
        original_timestamp: chrono::Utc::now().timestamp_millis().to_string(),
        channel: "app".into(),
        ..Default::default()
    }
}

fn buyers() -> CreateSegmentRequest {
    let condition = EventAggregateCondition {
        event: Some(EventMatcher {
            event_name: "purchase".into(),
            filters: Vec::new(),
        }),
        aggregation: EventAggregation::Count as i32,
        field: String::new(),
        comparison: Some(NumberComparison {
            operator: FilterOperator::GreaterThanOrEqual as i32,
            value: 1.0,
            upper_value: 0.0,
        }),
        window: Some(event_aggregate_condition::Window::WithinLast(
            prost_types::Duration {
                seconds: 86_400,
                nanos: 0,
            },
        )),
    };
    CreateSegmentRequest {
        segment_id: "buyers".into(),
        segment: Some(Segment {
            rule: Some(SegmentRule {
                rule: Some(segment_rule::Rule::EventAggregate(condition)),
            }),
            ..Segment::default()
        }),
        ..CreateSegmentRequest::default()
    }
}

/// What the receiver reported: deliveries by webhook id (id → its sequences), and how many
/// arrived in all.
#[derive(Debug, Default)]
struct Reports {
    by_id: BTreeMap<String, Vec<i64>>,
    arrivals: usize,
    problems: Vec<String>,
}

/// Reads the receiver's verdicts as they come (its output pipe must never fill, or it stops
/// answering) into `reports`.
fn listen(mut receiver: PythonReceiver, reports: Arc<Mutex<Reports>>) {
    tokio::spawn(async move {
        while let Ok(verdict) = receiver.verdict().await {
            let mut reports = reports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            reports.arrivals += 1;
            if verdict["verified"] != true {
                reports.problems.push(format!("not verified: {verdict}"));
            }
            if verdict["status"] != 204 {
                continue;
            }
            let body: serde_json::Value =
                serde_json::from_str(verdict["body"].as_str().unwrap_or_default())
                    .unwrap_or_default();
            let sequences: Vec<i64> = body["triggers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["sequence"].as_str()?.parse().ok())
                .collect();
            let id = verdict["webhook_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if reports
                .by_id
                .get(&id)
                .is_some_and(|before| before != &sequences)
            {
                reports
                    .problems
                    .push(format!("one webhook-id, two bodies: {id}"));
            }
            reports.by_id.insert(id, sequences);
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_loses_no_trigger_and_duplicates_keep_their_id()
-> anyhow::Result<()> {
    let db = TestDatabase::create().await?;
    let prefix = format!("touchline-test-{}", uuid::Uuid::new_v4().simple());
    let addr = free_port()?;
    let mut child = start(addr, &db, &prefix)?;
    wait_serving(addr).await?;
    let token = token(
        "hooks",
        &[
            "events:write",
            "models:read",
            "dictionary:write",
            "segments:write",
            "activation:read",
            "activation:write",
        ],
    );
    let credentials = CallCredentials::bearer(&token)?;
    let channel = lazy_channel(&format!("http://{addr}"))?;
    let mut governance =
        GovernanceServiceClient::with_interceptor(channel.clone(), credentials.clone());
    governance
        .create_canonical_event(CreateCanonicalEventRequest {
            canonical_event_id: "purchase".into(),
            canonical_event: Some(CanonicalEvent {
                conversion: true,
                ..CanonicalEvent::default()
            }),
            ..Default::default()
        })
        .await?;
    governance
        .publish_dictionary_version(PublishDictionaryVersionRequest::default())
        .await?;
    let mut modeling =
        ModelingServiceClient::with_interceptor(channel.clone(), credentials.clone());
    let mut collection = CollectionServiceClient::with_interceptor(channel, credentials);
    let secret = SigningSecret::generate();
    let receiver = PythonReceiver::start(&workspace_root()?, &[&secret]).await?;
    let url = receiver.url("/hooks");
    let reports = Arc::new(Mutex::new(Reports::default()));
    listen(receiver, reports.clone());
    modeling.create_segment(buyers()).await?;
    for (id, ordering, concurrency) in [
        ("crm", WebhookOrdering::Sequence, 1),
        ("lanes", WebhookOrdering::PerPerson, 4),
    ] {
        modeling
            .create_webhook_destination(CreateWebhookDestinationRequest {
                webhook_destination_id: id.into(),
                webhook_destination: Some(WebhookDestination {
                    url: url.clone(),
                    signing_secret: secret.to_string(),
                    max_batch_size: 5,
                    types: vec![TriggerType::SegmentEntered as i32],
                    ordering: ordering as i32,
                    max_concurrency: concurrency,
                    ..WebhookDestination::default()
                }),
                ..CreateWebhookDestinationRequest::default()
            })
            .await?;
    }

    let mut acknowledged = 0u64;
    for round in 0..KILLS as u64 {
        let events = (round * PER_ROUND..(round + 1) * PER_ROUND)
            .map(purchase)
            .collect();
        collection
            .ingest_events(IngestEventsRequest { events })
            .await?;
        acknowledged += PER_ROUND;
        // Kill at a random moment while entries are being published and delivered.
        let pause = rand::rng().random_range(50..600);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        child.start_kill()?;
        child.wait().await?;
        child = start(addr, &db, &prefix)?;
        wait_serving(addr).await?;
    }

    // Every acknowledged purchase becomes an entry trigger, and both destinations catch up.
    let expected: Vec<i64> = eventually(Duration::from_secs(120), || {
        let mut modeling = modeling.clone();
        async move {
            let mut caught_up = true;
            for id in ["crm", "lanes"] {
                let d = modeling
                    .get_webhook_destination(GetWebhookDestinationRequest {
                        name: format!("tenants/hooks/webhookDestinations/{id}"),
                    })
                    .await?
                    .into_inner()
                    .webhook_destination
                    .unwrap_or_default();
                caught_up &= d.delivered_sequence == d.head_sequence;
            }
            let mut stream = modeling
                .subscribe_triggers(SubscribeTriggersRequest {
                    types: vec![TriggerType::SegmentEntered as i32],
                    max_batch_size: 1_000,
                    ..SubscribeTriggersRequest::default()
                })
                .await?
                .into_inner();
            let entries: Vec<i64> = stream
                .message()
                .await?
                .map(|batch| batch.triggers.iter().map(|t| t.sequence).collect())
                .unwrap_or_default();
            let done = entries.len() as u64 == acknowledged && caught_up;
            Ok(done.then_some(entries))
        }
    })
    .await?;
    let reports = eventually(Duration::from_secs(30), || {
        let reports = reports.clone();
        let expected = expected.clone();
        async move {
            let reports = reports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let covered = ["msg_crm_", "msg_lanes_"].iter().all(|prefix| {
                let seen: BTreeSet<i64> = reports
                    .by_id
                    .iter()
                    .filter(|(id, _)| id.starts_with(prefix))
                    .flat_map(|(_, sequences)| sequences.iter().copied())
                    .collect();
                expected.iter().all(|s| seen.contains(s))
            });
            Ok(covered.then(|| {
                (
                    reports.by_id.clone(),
                    reports.arrivals,
                    reports.problems.clone(),
                )
            }))
        }
    })
    .await?;
    let (by_id, arrivals, problems) = reports;
    assert!(problems.is_empty(), "{problems:?}");
    // Deduplicated on webhook-id, each trigger is there exactly once per destination.
    for prefix in ["msg_crm_", "msg_lanes_"] {
        let mut sequences: Vec<i64> = by_id
            .iter()
            .filter(|(id, _)| id.starts_with(prefix))
            .flat_map(|(_, sequences)| sequences.iter().copied())
            .collect();
        sequences.sort_unstable();
        assert_eq!(
            sequences, expected,
            "{prefix}: each trigger once after deduplication"
        );
    }
    eprintln!(
        "{KILLS} kills: {} triggers to two destinations in {} batches, {arrivals} deliveries arrived (the extra ones are redeliveries of a batch whose acknowledgement the kill cut off)",
        expected.len(),
        by_id.len()
    );
    child.start_kill()?;
    child.wait().await?;
    Ok(())
}
