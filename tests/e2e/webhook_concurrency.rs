//! Several deliveries of one destination in flight, through the real services to endpoints in
//! the test that note how many requests they hold at once and in which order they acknowledge
//! triggers: an unordered destination keeps up to its concurrency in flight and a sequence one
//! never more than one; a failing batch holds back only its own lane of a per-person
//! destination, whose every person still gets their triggers in order, and nothing of an
//! unordered one, while a sequence destination holds everything behind it; bad settings are
//! refused field by field.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use touchline_e2e::{Modeling, sample_event};
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::FilterOperator;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    CreateSegmentRequest, CreateWebhookDestinationRequest, EventAggregateCondition,
    EventAggregation, EventMatcher, GetWebhookDestinationRequest, NumberComparison, Segment,
    SegmentRule, TriggerType, WebhookDestination, WebhookOrdering, event_aggregate_condition,
    segment_rule,
};
use touchline_testkit::{TestApp, eventually, token};

const TENANT: &str = "lanes";
/// Deliveries in flight per destination in the failing-batch test.
const CONCURRENCY: i32 = 4;
const SCOPES: &[&str] = &[
    "events:write",
    "dictionary:read",
    "dictionary:write",
    "models:read",
    "segments:read",
    "segments:write",
    "activation:read",
    "activation:write",
];

/// A segment of persons with at least `n` purchases in the last 30 days.
pub(crate) fn purchases_at_least(id: &str, n: f64) -> CreateSegmentRequest {
    let condition = EventAggregateCondition {
        event: Some(EventMatcher {
            event_name: "purchase".into(),
            filters: Vec::new(),
        }),
        aggregation: EventAggregation::Count as i32,
        field: String::new(),
        comparison: Some(NumberComparison {
            operator: FilterOperator::GreaterThanOrEqual as i32,
            value: n,
            upper_value: 0.0,
        }),
        window: Some(event_aggregate_condition::Window::WithinLast(
            prost_types::Duration {
                seconds: 30 * 86_400,
                nanos: 0,
            },
        )),
    };
    CreateSegmentRequest {
        segment_id: id.into(),
        segment: Some(Segment {
            rule: Some(SegmentRule {
                rule: Some(segment_rule::Rule::EventAggregate(condition)),
            }),
            ..Segment::default()
        }),
        ..CreateSegmentRequest::default()
    }
}

fn destination(
    id: &str,
    url: &str,
    ordering: WebhookOrdering,
    concurrency: i32,
    batch: i32,
) -> CreateWebhookDestinationRequest {
    CreateWebhookDestinationRequest {
        webhook_destination_id: id.into(),
        webhook_destination: Some(WebhookDestination {
            url: url.into(),
            max_batch_size: batch,
            types: vec![TriggerType::SegmentEntered as i32],
            ordering: ordering as i32,
            max_concurrency: concurrency,
            ..WebhookDestination::default()
        }),
        ..CreateWebhookDestinationRequest::default()
    }
}

/// One answered request, in the order the endpoint answered.
#[derive(Debug, Clone)]
struct Answered {
    webhook_id: String,
    status: u16,
    /// The triggers' (sequence, person).
    triggers: Vec<(i64, String)>,
}

/// What an endpoint has seen.
#[derive(Debug, Default)]
struct Log {
    answered: Vec<Answered>,
    in_flight: usize,
    most_in_flight: usize,
    failures_left: usize,
}

impl Log {
    /// Every trigger acknowledged, each once, in the order of its first acknowledgement.
    fn acknowledged(&self) -> Vec<(i64, String)> {
        let mut seen = std::collections::HashSet::new();
        self.answered
            .iter()
            .filter(|a| a.status == 204 && seen.insert(a.webhook_id.clone()))
            .flat_map(|a| a.triggers.iter().cloned())
            .collect()
    }
}

/// An endpoint on loopback that holds each request for `delay` and answers 500 to its first
/// `failures` requests, 204 after.
struct Endpoint {
    url: String,
    log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Endpoint {
    async fn start(delay: Duration, failures: usize) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hooks", listener.local_addr()?);
        let log = Arc::new(Mutex::new(Log {
            failures_left: failures,
            ..Log::default()
        }));
        let shared = Arc::clone(&log);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let log = Arc::clone(&log);
                        async move { Ok::<_, Infallible>(answer(request, &log, delay).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { url, log, task })
    }

    fn read<T>(&self, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

async fn answer(
    request: Request<Incoming>,
    log: &Mutex<Log>,
    delay: Duration,
) -> Response<Empty<Bytes>> {
    {
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
        log.in_flight += 1;
        log.most_in_flight = log.most_in_flight.max(log.in_flight);
    }
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    tokio::time::sleep(delay).await;
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let triggers = value["triggers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let sequence = t["sequence"].as_str()?.parse().ok()?;
            Some((sequence, t["personId"].as_str()?.to_owned()))
        })
        .collect();
    let webhook_id = parts
        .headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
    log.in_flight -= 1;
    let status = if log.failures_left > 0 {
        log.failures_left -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    log.answered.push(Answered {
        webhook_id,
        status: status.as_u16(),
        triggers,
    });
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    response
}

/// Whether a request was answered 500, and whether the destination went on past it before its
/// retry was acknowledged: either a batch of only later triggers was acknowledged first, or
/// more batches of other persons than the destination's `CONCURRENCY` were (at most
/// `CONCURRENCY − 1` were in flight when the 500 came back, so one of them was sent after it).
/// The second covers a failed batch that already held the last triggers, which no batch can
/// come after.
fn failed_and_overtaken(log: &Log) -> (bool, bool) {
    let Some(at) = log.answered.iter().position(|a| a.status == 500) else {
        return (false, false);
    };
    let failed = &log.answered[at];
    let newest = failed
        .triggers
        .iter()
        .map(|(s, _)| *s)
        .max()
        .unwrap_or_default();
    let before_retry: Vec<&Answered> = log
        .answered
        .iter()
        .take_while(|a| !(a.status == 204 && a.webhook_id == failed.webhook_id))
        .collect();
    let later = before_retry
        .iter()
        .any(|a| a.status == 204 && a.triggers.iter().all(|(s, _)| *s > newest));
    let others_after_the_failure = before_retry
        .iter()
        .skip(at + 1)
        .filter(|a| {
            a.status == 204
                && a.triggers
                    .iter()
                    .all(|(_, p)| failed.triggers.iter().all(|(_, q)| p != q))
        })
        .count();
    (
        true,
        later || others_after_the_failure >= usize::try_from(CONCURRENCY).unwrap_or(usize::MAX),
    )
}

/// Waits until `endpoint` has acknowledged `count` triggers.
async fn acknowledged(endpoint: &Endpoint, count: usize) -> anyhow::Result<Vec<(i64, String)>> {
    eventually(Duration::from_secs(60), || {
        let got = endpoint.read(Log::acknowledged);
        async move { Ok((got.len() >= count).then_some(got)) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_run_side_by_side_up_to_the_destinations_concurrency() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    modeling
        .create_segment(purchases_at_least("buyers", 1.0))
        .await?;
    let wide = Endpoint::start(Duration::from_millis(600), 0).await?;
    let narrow = Endpoint::start(Duration::from_millis(600), 0).await?;
    modeling
        .create_webhook_destination(destination(
            "wide",
            &wide.url,
            WebhookOrdering::Unordered,
            4,
            1,
        ))
        .await?;
    modeling
        .create_webhook_destination(destination(
            "narrow",
            &narrow.url,
            WebhookOrdering::Unspecified,
            0,
            1,
        ))
        .await?;
    let now = chrono::Utc::now().timestamp_millis();
    let purchases = (1..=12)
        .map(|n| sample_event(&format!("w-{n}"), n, "purchase", now))
        .collect();
    touchline_e2e::ingest_and_store(&mut collection, &mut modeling, purchases).await?;
    let wide_got = acknowledged(&wide, 12).await?;
    let narrow_got = acknowledged(&narrow, 12).await?;
    let mut wide_sequences: Vec<i64> = wide_got.iter().map(|(s, _)| *s).collect();
    wide_sequences.sort_unstable();
    let narrow_sequences: Vec<i64> = narrow_got.iter().map(|(s, _)| *s).collect();
    // Both receive the same twelve entries; the sequence destination in order.
    assert_eq!(wide_sequences, {
        let mut sorted = narrow_sequences.clone();
        sorted.sort_unstable();
        sorted
    });
    assert!(
        narrow_sequences.windows(2).all(|w| w[0] < w[1]),
        "{narrow_sequences:?}"
    );
    let (wide_most, narrow_most) = (
        wide.read(|l| l.most_in_flight),
        narrow.read(|l| l.most_in_flight),
    );
    eprintln!("most requests in flight: unordered (4) {wide_most}, sequence {narrow_most}");
    assert!((2..=4).contains(&wide_most), "{wide_most} in flight");
    assert_eq!(narrow_most, 1);
    let stored = modeling
        .get_webhook_destination(GetWebhookDestinationRequest {
            name: format!("tenants/{TENANT}/webhookDestinations/wide"),
        })
        .await?
        .into_inner()
        .webhook_destination
        .unwrap_or_default();
    assert_eq!(stored.ordering, WebhookOrdering::Unordered as i32);
    assert_eq!(stored.max_concurrency, 4);
    let last = wide_sequences.last().copied().unwrap_or_default();
    let caught_up = eventually(Duration::from_secs(10), || {
        let mut modeling = modeling.clone();
        async move {
            let d = modeling
                .get_webhook_destination(GetWebhookDestinationRequest {
                    name: format!("tenants/{TENANT}/webhookDestinations/wide"),
                })
                .await?
                .into_inner()
                .webhook_destination
                .unwrap_or_default();
            Ok((d.delivered_sequence >= last).then_some(d.delivered_sequence))
        }
    })
    .await?;
    assert!(caught_up >= last);
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_holds_back_only_its_lane_and_each_person_keeps_their_order()
-> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    modeling
        .create_segment(purchases_at_least("buyers", 1.0))
        .await?;
    modeling
        .create_segment(purchases_at_least("repeat", 2.0))
        .await?;
    // Each endpoint answers 500 to its first request: that batch waits for its retry.
    let per_person = Endpoint::start(Duration::from_millis(50), 1).await?;
    let in_sequence = Endpoint::start(Duration::from_millis(50), 1).await?;
    let unordered = Endpoint::start(Duration::from_millis(50), 1).await?;
    modeling
        .create_webhook_destination(destination(
            "unordered",
            &unordered.url,
            WebhookOrdering::Unordered,
            CONCURRENCY,
            2,
        ))
        .await?;
    modeling
        .create_webhook_destination(destination(
            "per-person",
            &per_person.url,
            WebhookOrdering::PerPerson,
            CONCURRENCY,
            2,
        ))
        .await?;
    modeling
        .create_webhook_destination(destination(
            "in-sequence",
            &in_sequence.url,
            WebhookOrdering::Sequence,
            1,
            2,
        ))
        .await?;
    // Twelve persons buy, then buy again: each enters "buyers", then "repeat".
    let persons = 12u64;
    for round in 0..2 {
        let now = chrono::Utc::now().timestamp_millis();
        let purchases = (1..=persons)
            .map(|n| sample_event(&format!("p-{round}-{n}"), n, "purchase", now + round))
            .collect();
        touchline_e2e::ingest_and_store(&mut collection, &mut modeling, purchases).await?;
    }
    let everything = usize::try_from(2 * persons)?;
    let lanes = acknowledged(&per_person, everything).await?;
    let strict = acknowledged(&in_sequence, everything).await?;

    // Per person: every trigger once, and each person's in sequence order.
    let mut last: HashMap<&str, i64> = HashMap::new();
    for (sequence, person) in &lanes {
        let before = last.insert(person.as_str(), *sequence);
        assert!(
            before.is_none_or(|b| b < *sequence),
            "{person}: {sequence} after {before:?} in {lanes:?}"
        );
    }
    assert_eq!(last.len(), usize::try_from(persons)?);
    // The failed batch held back its lane only: a later batch of another lane was
    // acknowledged before the failed one was.
    let (failed, overtaken) = per_person.read(failed_and_overtaken);
    assert!(failed, "the first request was answered 500");
    assert!(overtaken, "{:?}", per_person.read(|l| l.answered.clone()));
    // Unordered: the same, and nothing at all waits for the failed batch.
    let mut seen: Vec<i64> = acknowledged(&unordered, everything)
        .await?
        .iter()
        .map(|(s, _)| *s)
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), everything);
    let (failed, overtaken) = unordered.read(failed_and_overtaken);
    assert!(
        failed && overtaken,
        "{:?}",
        unordered.read(|l| l.answered.clone())
    );

    // In sequence: everything in order, so nothing passed the failed batch.
    let sequences: Vec<i64> = strict.iter().map(|(s, _)| *s).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    let held = in_sequence.read(|log| {
        let first_ok = log.answered.iter().position(|a| a.status == 204);
        let failed = log.answered.iter().position(|a| a.status == 500);
        (failed, first_ok)
    });
    assert!(matches!(held, (Some(0), Some(1))), "{held:?}");
    let retried = in_sequence.read(|log| log.answered[0].webhook_id == log.answered[1].webhook_id);
    assert!(retried, "the failed batch is the next one acknowledged");
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_orderings_and_concurrencies_are_refused_by_field() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let url = "http://127.0.0.1:9/hooks";
    let mut unknown = destination("a", url, WebhookOrdering::Unspecified, 0, 1);
    if let Some(d) = unknown.webhook_destination.as_mut() {
        d.ordering = 9;
    }
    let cases = [
        (unknown, "webhook_destination.ordering", "UNKNOWN_VALUE"),
        (
            destination("b", url, WebhookOrdering::Sequence, 4, 1),
            "webhook_destination.max_concurrency",
            "NEEDS_ORDERING",
        ),
        (
            destination("c", url, WebhookOrdering::PerPerson, 51, 1),
            "webhook_destination.max_concurrency",
            "OUT_OF_RANGE",
        ),
        (
            destination("d", url, WebhookOrdering::Unordered, -1, 1),
            "webhook_destination.max_concurrency",
            "OUT_OF_RANGE",
        ),
    ];
    for (request, field, reason) in cases {
        let refused = modeling
            .create_webhook_destination(request)
            .await
            .expect_err("a bad setting");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        let found = touchline_e2e::field_violations(&refused);
        assert_eq!(found, vec![(field.to_owned(), reason.to_owned())]);
    }
    // The default of an ordering with several in flight is 8.
    let created = modeling
        .create_webhook_destination(destination("e", url, WebhookOrdering::PerPerson, 0, 1))
        .await?
        .into_inner()
        .webhook_destination
        .unwrap_or_default();
    assert_eq!(
        (created.ordering, created.max_concurrency),
        (WebhookOrdering::PerPerson as i32, 8)
    );
    app.stop().await;
    Ok(())
}
