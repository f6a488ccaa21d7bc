//! Webhooks through the real services to a receiver that verifies every delivery with
//! Python's Standard Webhooks library: segment entries arrive signed, batched and in order;
//! a failed delivery is retried with the same id and body; a dead endpoint delays only
//! itself; every attempt is in the ledger; a replay sends the log again; bad destinations are
//! refused with a violation per problem.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use touchline_e2e::{Modeling, sample_event};
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use touchline_proto::identity::v1::{SetConsentRequest, set_consent_request};
use touchline_proto::modeling::v1::DeleteWebhookDestinationRequest;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    ChurnSettings, CreateSegmentRequest, CreateWebhookDestinationRequest,
    GetWebhookDestinationRequest, InactivityRule, ListSegmentChangesRequest,
    ListWebhookDeliveriesRequest, ModelSettings, ResumeWebhookDestinationRequest,
    RotateWebhookSecretRequest, Segment, SubscribeTriggersRequest, TriggerType,
    UpdateModelSettingsRequest, WebhookAttemptOutcome, WebhookDestination, WebhookState,
};
use touchline_testkit::{TestApp, token};
use touchline_webhooks::SigningSecret;
use touchline_webhooks::testing::PythonReceiver;

const TENANT: &str = "hooks";
const SCOPES: &[&str] = &[
    "events:write",
    "dictionary:read",
    "dictionary:write",
    "models:read",
    "segments:read",
    "segments:write",
    "activation:read",
    "activation:write",
    "identity:write",
];

fn workspace_root() -> anyhow::Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?)
}

fn buyers() -> CreateSegmentRequest {
    CreateSegmentRequest {
        segment_id: "buyers".into(),
        segment: Some(Segment {
            rule: Some(touchline_e2e::did_within("purchase", 30)),
            ..Segment::default()
        }),
        ..CreateSegmentRequest::default()
    }
}

fn destination(id: &str, url: String, secret: &str, batch: i32) -> CreateWebhookDestinationRequest {
    CreateWebhookDestinationRequest {
        webhook_destination_id: id.to_owned(),
        webhook_destination: Some(WebhookDestination {
            url,
            signing_secret: secret.to_owned(),
            max_batch_size: batch,
            types: vec![
                TriggerType::SegmentEntered as i32,
                TriggerType::SegmentExited as i32,
            ],
            segments: vec![format!("tenants/{TENANT}/segments/buyers")],
            ..WebhookDestination::default()
        }),
        ..CreateWebhookDestinationRequest::default()
    }
}

/// One delivery as the receiver saw it.
#[derive(Debug)]
struct Seen {
    id: String,
    verified: bool,
    status: i64,
    sequences: Vec<i64>,
    persons: Vec<String>,
    kinds: Vec<String>,
    reasons: Vec<String>,
    /// Per trigger, its identifiers as (type, value).
    identifiers: Vec<Vec<(String, String)>>,
}

async fn next_delivery(receiver: &mut PythonReceiver) -> anyhow::Result<Seen> {
    let verdict = receiver.verdict().await?;
    let body: serde_json::Value =
        serde_json::from_str(verdict["body"].as_str().unwrap_or_default()).unwrap_or_default();
    let triggers = body["triggers"].as_array().cloned().unwrap_or_default();
    for t in &triggers {
        anyhow::ensure!(t["tenant"] == format!("tenants/{TENANT}"), "{t}");
    }
    let text = |t: &serde_json::Value, key: &str| t[key].as_str().unwrap_or_default().to_owned();
    Ok(Seen {
        id: verdict["webhook_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        verified: verdict["verified"] == true,
        status: verdict["status"].as_i64().unwrap_or_default(),
        sequences: triggers
            .iter()
            .filter_map(|t| t["sequence"].as_str()?.parse().ok())
            .collect(),
        persons: triggers
            .iter()
            .filter_map(|t| Some(t["personId"].as_str()?.to_owned()))
            .collect(),
        kinds: triggers.iter().map(|t| text(t, "type")).collect(),
        reasons: triggers
            .iter()
            .map(|t| text(t, "segmentChangeReason"))
            .collect(),
        identifiers: triggers
            .iter()
            .map(|t| {
                t["identifiers"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .map(|i| (text(i, "type"), text(i, "value")))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect(),
    })
}

/// Makes the receiver answer 500 to its next `n` deliveries.
async fn fail_next(receiver: &PythonReceiver, n: u32) -> anyhow::Result<()> {
    let url = receiver.url("");
    let address = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(format!("GET /fail-next/{n} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .await?;
    let mut answer = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_entries_reach_a_standard_webhooks_receiver_signed_retried_and_in_order()
-> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let secret = SigningSecret::generate();
    let mut receiver = PythonReceiver::start(&workspace_root()?, &[&secret]).await?;
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    modeling.create_segment(buyers()).await?;
    let created = modeling
        .create_webhook_destination(destination(
            "crm",
            receiver.url("/hooks"),
            &secret.to_string(),
            2,
        ))
        .await?
        .into_inner();
    assert!(
        created.signing_secret.is_empty(),
        "a given secret is not echoed"
    );
    // A destination nobody answers at: it must hold up only itself.
    modeling
        .create_webhook_destination(destination(
            "dead",
            "http://127.0.0.1:9/hooks".into(),
            "",
            2,
        ))
        .await?;

    let now = chrono::Utc::now().timestamp_millis();
    let purchases = (1..=5)
        .map(|n| {
            sample_event(
                &format!("buy-{n}"),
                n,
                "purchase",
                now - i64::try_from(n).unwrap_or(0) * 60_000,
            )
        })
        .collect();
    touchline_e2e::ingest_and_store(&mut collection, &mut modeling, purchases).await?;

    // Five entries arrive in batches of at most two, in sequence order, each verified.
    let mut sequences = Vec::new();
    let mut persons = BTreeSet::new();
    let mut ids = BTreeSet::new();
    while sequences.len() < 5 {
        let seen = next_delivery(&mut receiver).await?;
        assert!(seen.verified && seen.status == 204, "{seen:?}");
        assert!((1..=2).contains(&seen.sequences.len()), "{seen:?}");
        assert!(
            seen.kinds
                .iter()
                .all(|k| k == "TRIGGER_TYPE_SEGMENT_ENTERED"),
            "{seen:?}"
        );
        assert!(ids.insert(seen.id.clone()), "each batch has its own id");
        sequences.extend(seen.sequences);
        persons.extend(seen.persons);
    }
    let mut sorted = sequences.clone();
    sorted.sort_unstable();
    assert_eq!(sequences, sorted, "in sequence order");
    assert_eq!(persons.len(), 5);

    // A failed delivery is retried with the same id and body, and then verified.
    fail_next(&receiver, 1).await?;
    touchline_e2e::ingest_and_store(
        &mut collection,
        &mut modeling,
        vec![sample_event("buy-6", 6, "purchase", now)],
    )
    .await?;
    let failed = next_delivery(&mut receiver).await?;
    assert!(failed.verified && failed.status == 500, "{failed:?}");
    let retried = next_delivery(&mut receiver).await?;
    assert!(retried.verified && retried.status == 204, "{retried:?}");
    assert_eq!(retried.id, failed.id, "a retry is the same message");
    assert_eq!(retried.sequences, failed.sequences);

    // The receiver answers before the attempt is written down: wait for the ledger's row.
    let ledger = touchline_testkit::eventually(Duration::from_secs(10), || {
        let mut modeling = modeling.clone();
        async move {
            let attempts = modeling
                .list_webhook_deliveries(ListWebhookDeliveriesRequest {
                    parent: format!("tenants/{TENANT}/webhookDestinations/crm"),
                    ..ListWebhookDeliveriesRequest::default()
                })
                .await?
                .into_inner()
                .attempts;
            Ok(attempts
                .first()
                .is_some_and(|a| a.attempt == 2)
                .then_some(attempts))
        }
    })
    .await
    .context("the retry's attempt is the newest in the ledger")?;
    let newest: Vec<(i32, i32, i32)> = ledger
        .iter()
        .take(2)
        .map(|a| (a.attempt, a.outcome, a.http_status))
        .collect();
    assert_eq!(
        newest,
        vec![
            (2, WebhookAttemptOutcome::Delivered as i32, 204),
            (1, WebhookAttemptOutcome::Retrying as i32, 500)
        ]
    );
    assert_eq!(
        ledger.first().map(|a| a.webhook_id.clone()),
        Some(failed.id.clone())
    );

    // The dead endpoint is failing on its own; the live one delivered everything.
    let dead = modeling
        .get_webhook_destination(GetWebhookDestinationRequest {
            name: format!("tenants/{TENANT}/webhookDestinations/dead"),
        })
        .await?
        .into_inner()
        .webhook_destination
        .unwrap_or_default();
    assert_eq!(dead.state, WebhookState::Failing as i32, "{dead:?}");
    assert!(
        dead.consecutive_failures >= 1 && !dead.last_error.is_empty(),
        "{dead:?}"
    );
    assert!(dead.next_attempt_time.is_some());
    // Caught up: the cursor reaches the head as it was once everything was delivered
    // (triggers of other types are stepped over; model outputs may append more meanwhile).
    // The wait is for liveness, not speed: a loaded run of the whole suite once took over
    // 10 s to step over the appended model outputs.
    let head = dead.head_sequence;
    let crm = touchline_testkit::eventually(Duration::from_secs(60), || {
        let mut modeling = modeling.clone();
        async move {
            let crm = modeling
                .get_webhook_destination(GetWebhookDestinationRequest {
                    name: format!("tenants/{TENANT}/webhookDestinations/crm"),
                })
                .await?
                .into_inner()
                .webhook_destination
                .unwrap_or_default();
            Ok((crm.delivered_sequence >= head).then_some(crm))
        }
    })
    .await
    .with_context(|| format!("crm's cursor reaches {head}"))?;
    assert_eq!(crm.state, WebhookState::Active as i32);

    // A replay from a sequence sends the log after it again.
    let replay_from = sorted[2];
    modeling
        .resume_webhook_destination(ResumeWebhookDestinationRequest {
            name: format!("tenants/{TENANT}/webhookDestinations/crm"),
            after_sequence: replay_from,
            ..ResumeWebhookDestinationRequest::default()
        })
        .await?;
    let mut replayed = Vec::new();
    while replayed.len() < 3 {
        let seen = next_delivery(&mut receiver).await?;
        assert!(seen.verified, "{seen:?}");
        replayed.extend(seen.sequences);
    }
    assert_eq!(replayed.first(), Some(&(replay_from + 1)));

    // A rotation: the receiver knows only the old secret, and during the overlap every
    // delivery carries a signature under each, so it keeps verifying. Opting a buyer out
    // publishes their exit, which is the next delivery.
    let rotated = modeling
        .rotate_webhook_secret(RotateWebhookSecretRequest {
            name: format!("tenants/{TENANT}/webhookDestinations/crm"),
            ..RotateWebhookSecretRequest::default()
        })
        .await?
        .into_inner();
    assert!(rotated.signing_secret.starts_with("whsec_"));
    assert!(rotated.previous_secret_expire_time.is_some());
    let leaving = persons.iter().next().cloned().unwrap_or_default();
    IdentityServiceClient::new(app.channel(&token)?)
        .set_consent(SetConsentRequest {
            person_ref: Some(set_consent_request::PersonRef::Person(format!(
                "tenants/{TENANT}/persons/{leaving}"
            ))),
            marketing_opt_out: true,
            ..SetConsentRequest::default()
        })
        .await?;
    let exit = next_delivery(&mut receiver).await?;
    assert!(exit.verified && exit.status == 204, "{exit:?}");
    assert_eq!(exit.persons, vec![leaving]);
    assert_eq!(exit.kinds, vec!["TRIGGER_TYPE_SEGMENT_EXITED"]);
    assert_eq!(exit.reasons, vec!["SEGMENT_CHANGE_REASON_CONSENT_CHANGED"]);

    // The same segment triggers as a stream, from the oldest kept (the log also holds the
    // lifecycle and RFM changes of the new buyers).
    let mut stream = modeling
        .subscribe_triggers(SubscribeTriggersRequest {
            types: vec![
                TriggerType::SegmentEntered as i32,
                TriggerType::SegmentExited as i32,
            ],
            ..SubscribeTriggersRequest::default()
        })
        .await?
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await??
        .unwrap_or_default();
    assert_eq!(first.triggers.len(), 7);
    assert!(
        first
            .triggers
            .iter()
            .all(|t| t.tenant == format!("tenants/{TENANT}"))
    );
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhook_destinations_name_each_problem() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let mut bad = destination(
        "bad",
        "ftp://example.com/hooks".into(),
        "whsec_short",
        5_000,
    );
    if let Some(d) = bad.webhook_destination.as_mut() {
        d.segments = vec![format!("tenants/{TENANT}/segments/nobody")];
        d.types.push(42);
        d.max_deliveries_per_second = 20_000;
    }
    let refused = modeling
        .create_webhook_destination(bad)
        .await
        .expect_err("every field is wrong");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let found = touchline_e2e::field_violations(&refused);
    for (field, reason) in [
        ("webhook_destination.url", "UNSUPPORTED_SCHEME"),
        ("webhook_destination.signing_secret", "INVALID_SECRET"),
        ("webhook_destination.max_batch_size", "OUT_OF_RANGE"),
        ("webhook_destination.segments[0]", "UNKNOWN_SEGMENT"),
        ("webhook_destination.types[2]", "UNKNOWN_VALUE"),
        (
            "webhook_destination.max_deliveries_per_second",
            "OUT_OF_RANGE",
        ),
    ] {
        assert!(
            found.iter().any(|(f, r)| f == field && r == reason),
            "{field} {reason} expected in {found:?}"
        );
    }
    // Private addresses are refused unless the operator allows them (tests allow loopback).
    let private = modeling
        .create_webhook_destination(destination(
            "private",
            "http://10.1.2.3/hooks".into(),
            "",
            0,
        ))
        .await
        .expect_err("a private address");
    assert!(
        touchline_e2e::field_violations(&private)
            .iter()
            .any(|(f, r)| f == "webhook_destination.url" && r == "NON_PUBLIC_ADDRESS"),
        "{:?}",
        touchline_e2e::field_violations(&private)
    );
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_customer_clears_the_churn_flag_and_changes_stage_as_triggers()
-> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    modeling
        .update_model_settings(UpdateModelSettingsRequest {
            model_settings: Some(ModelSettings {
                name: format!("tenants/{TENANT}/modelSettings"),
                churn: Some(ChurnSettings {
                    inactivity_rules: vec![InactivityRule {
                        threshold: Some(prost_types::Duration {
                            seconds: 10 * 86_400,
                            nanos: 0,
                        }),
                        ..InactivityRule::default()
                    }],
                    ..ChurnSettings::default()
                }),
                ..ModelSettings::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["churn.inactivity_rules".to_owned()],
            }),
            ..UpdateModelSettingsRequest::default()
        })
        .await?;
    // p1 last bought 40 days ago (churned, lapsed for weeks); p2 two days ago.
    let now = chrono::Utc::now().timestamp_millis();
    let day = 86_400_000;
    let stored = touchline_e2e::ingest_and_store(
        &mut collection,
        &mut modeling,
        vec![
            sample_event("old-1", 1, "purchase", now - 40 * day),
            sample_event("new-2", 2, "purchase", now - 2 * day),
        ],
    )
    .await?;
    let p1 = stored
        .iter()
        .find(|e| e.message_id == "old-1")
        .map(|e| e.person_id.clone())
        .unwrap_or_default();
    touchline_e2e::turn_on_model_triggers(&mut modeling).await?;
    // The first look records everyone's outputs without announcing them.
    let pool = sqlx::PgPool::connect(&app.db.url).await?;
    touchline_testkit::eventually(Duration::from_secs(30), || {
        let pool = pool.clone();
        async move {
            let baseline: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM modeling.model_state_baselines WHERE tenant_id = $1",
            )
            .bind(TENANT)
            .fetch_optional(&pool)
            .await?;
            Ok(baseline.map(|_| ()))
        }
    })
    .await?;

    touchline_e2e::ingest_and_store(
        &mut collection,
        &mut modeling,
        vec![sample_event("back-1", 1, "purchase", now)],
    )
    .await?;
    let mut stream = modeling
        .subscribe_triggers(SubscribeTriggersRequest {
            types: vec![
                TriggerType::ChurnFlagCleared as i32,
                TriggerType::ChurnFlagRaised as i32,
                TriggerType::LifecycleStageChanged as i32,
            ],
            ..SubscribeTriggersRequest::default()
        })
        .await?
        .into_inner();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let batch = tokio::time::timeout(Duration::from_secs(70), stream.message())
            .await??
            .unwrap_or_default();
        seen.extend(batch.triggers);
    }
    let kinds: BTreeSet<(i32, String)> = seen
        .iter()
        .map(|t| (t.r#type, t.person_id.clone()))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            (TriggerType::LifecycleStageChanged as i32, p1.clone()),
            (TriggerType::ChurnFlagCleared as i32, p1.clone()),
        ]),
        "only the returning customer's flag and stage move"
    );
    let stage = seen
        .iter()
        .find(|t| t.r#type == TriggerType::LifecycleStageChanged as i32)
        .cloned()
        .unwrap_or_default();
    assert_ne!(
        stage.previous_lifecycle_stage, stage.lifecycle_stage,
        "{stage:?}"
    );
    assert_eq!(
        stage.lifecycle_stage,
        touchline_proto::modeling::v1::LifecycleStage::Returning as i32,
        "{stage:?}"
    );
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_endpoint_gets_its_attempts_spaced_by_its_limit() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let secret = SigningSecret::generate();
    let mut receiver = PythonReceiver::start(&workspace_root()?, &[&secret]).await?;
    modeling.create_segment(buyers()).await?;
    let mut slow = destination("slow", receiver.url("/hooks"), &secret.to_string(), 1);
    if let Some(d) = slow.webhook_destination.as_mut() {
        d.max_deliveries_per_second = 5;
    }
    modeling.create_webhook_destination(slow).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let purchases = (1..=6)
        .map(|n| sample_event(&format!("r-{n}"), n, "purchase", now))
        .collect();
    touchline_e2e::ingest_and_store(&mut collection, &mut modeling, purchases).await?;
    for _ in 0..6 {
        let seen = next_delivery(&mut receiver).await?;
        assert!(seen.verified, "{seen:?}");
    }
    let attempts = modeling
        .list_webhook_deliveries(ListWebhookDeliveriesRequest {
            parent: format!("tenants/{TENANT}/webhookDestinations/slow"),
            ..ListWebhookDeliveriesRequest::default()
        })
        .await?
        .into_inner()
        .attempts;
    let times: Vec<i64> = attempts
        .iter()
        .filter_map(|a| a.attempt_time.as_ref())
        .map(|t| t.seconds * 1_000 + i64::from(t.nanos) / 1_000_000)
        .collect();
    assert!(times.len() >= 5, "{attempts:?}");
    for pair in times.windows(2) {
        // Newest first: each attempt starts at least 1/5 s after the one before it.
        assert!(
            pair[0] - pair[1] >= 195,
            "attempts {} ms apart",
            pair[0] - pair[1]
        );
    }
    app.stop().await;
    Ok(())
}

/// An endpoint that answers 204 to every request after `delay`, and counts the requests
/// whose body names trigger sequence `marker`.
async fn slow_endpoint(
    delay: Duration,
) -> anyhow::Result<(String, std::sync::Arc<std::sync::atomic::AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks", listener.local_addr()?);
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65_536];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await;
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    Ok((url, requests))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_in_flight_for_a_deleted_destination_does_not_move_its_successor()
-> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    modeling.create_segment(buyers()).await?;
    let (slow_url, slow_requests) = slow_endpoint(Duration::from_secs(4)).await?;
    let (fast_url, fast_requests) = slow_endpoint(Duration::ZERO).await?;
    modeling
        .create_webhook_destination(destination("crm", slow_url, "", 10))
        .await?;
    let now = chrono::Utc::now().timestamp_millis();
    let purchases = (1..=5)
        .map(|n| sample_event(&format!("g-{n}"), n, "purchase", now))
        .collect();
    touchline_e2e::ingest_and_store(&mut collection, &mut modeling, purchases).await?;
    touchline_testkit::eventually(Duration::from_secs(20), || {
        let n = slow_requests.load(std::sync::atomic::Ordering::SeqCst);
        async move { Ok((n > 0).then_some(())) }
    })
    .await?;
    // While that delivery is held, the destination is replaced under the same id.
    let name = format!("tenants/{TENANT}/webhookDestinations/crm");
    modeling
        .delete_webhook_destination(DeleteWebhookDestinationRequest {
            name: name.clone(),
            ..DeleteWebhookDestinationRequest::default()
        })
        .await?;
    let mut replacement = destination("crm", fast_url, "", 10);
    if let Some(d) = replacement.webhook_destination.as_mut() {
        d.start_after_sequence = 1;
    }
    modeling.create_webhook_destination(replacement).await?;
    // The new destination delivers 2..=5 itself; the old attempt, answered later, moves nothing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let attempts = modeling
        .list_webhook_deliveries(ListWebhookDeliveriesRequest {
            parent: name.clone(),
            ..ListWebhookDeliveriesRequest::default()
        })
        .await?
        .into_inner()
        .attempts;
    let batches: Vec<(i64, i64)> = attempts
        .iter()
        .map(|a| (a.first_sequence, a.last_sequence))
        .collect();
    assert_eq!(batches, vec![(2, 5)], "{attempts:?}");
    assert_eq!(fast_requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_created_late_can_start_from_what_is_retained() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let secret = SigningSecret::generate();
    let mut receiver = PythonReceiver::start(&workspace_root()?, &[&secret]).await?;
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    modeling.create_segment(buyers()).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let purchases = (1..=3)
        .map(|n| sample_event(&format!("early-{n}"), n, "purchase", now - 60_000))
        .collect();
    touchline_e2e::ingest_and_store(&mut collection, &mut modeling, purchases).await?;
    // The three entries are published before any destination exists.
    let entries = touchline_testkit::eventually(Duration::from_secs(30), || {
        let mut modeling = modeling.clone();
        async move {
            let changes = modeling
                .list_segment_changes(ListSegmentChangesRequest {
                    parent: format!("tenants/{TENANT}/segments/buyers"),
                    ..ListSegmentChangesRequest::default()
                })
                .await?
                .into_inner()
                .changes;
            Ok((changes.len() == 3).then_some(changes))
        }
    })
    .await?;

    // Asking for both a start and what is retained is refused by name.
    let mut both = destination("both", receiver.url("/hooks"), &secret.to_string(), 10);
    both.deliver_retained = true;
    if let Some(d) = both.webhook_destination.as_mut() {
        d.start_after_sequence = 1;
    }
    let refused = modeling
        .create_webhook_destination(both)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a start and deliver_retained together are refused"))?;
    assert_eq!(
        touchline_e2e::field_violations(&refused),
        [(
            "webhook_destination.start_after_sequence".to_owned(),
            "CONFLICTING_START".to_owned()
        )]
    );

    // Created now from what is retained, the destination still gets the three entries.
    let mut late = destination("late", receiver.url("/hooks"), &secret.to_string(), 10);
    late.deliver_retained = true;
    let created = modeling
        .create_webhook_destination(late)
        .await?
        .into_inner()
        .webhook_destination
        .unwrap_or_default();
    assert_eq!(
        created.delivered_sequence, 0,
        "nothing of this log was pruned"
    );
    let mut persons = BTreeSet::new();
    let mut sequences = Vec::new();
    while sequences.len() < 3 {
        let seen = next_delivery(&mut receiver).await?;
        assert!(seen.verified && seen.status == 204, "{seen:?}");
        sequences.extend(seen.sequences);
        persons.extend(seen.persons);
    }
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    let entered: BTreeSet<String> = entries.iter().map(|c| c.person_id.clone()).collect();
    assert_eq!(persons, entered, "the entries published before it existed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_carry_the_identifier_types_a_destination_asks_for() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let secret = SigningSecret::generate();
    let mut receiver = PythonReceiver::start(&workspace_root()?, &[&secret]).await?;
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    modeling.create_segment(buyers()).await?;
    let mut request = destination("with-ids", receiver.url("/hooks"), &secret.to_string(), 10);
    if let Some(d) = request.webhook_destination.as_mut() {
        d.identifier_types = vec!["device_id".to_owned()];
    }
    let created = modeling
        .create_webhook_destination(request)
        .await?
        .into_inner()
        .webhook_destination
        .unwrap_or_default();
    assert_eq!(created.identifier_types, ["device_id"]);
    let now = chrono::Utc::now().timestamp_millis();
    let purchases = (1..=3)
        .map(|n| sample_event(&format!("ids-{n}"), n, "purchase", now - 60_000))
        .collect();
    let stored = touchline_e2e::ingest_and_store(&mut collection, &mut modeling, purchases).await?;
    let mut seen = BTreeMap::new();
    while seen.len() < 3 {
        let delivery = next_delivery(&mut receiver).await?;
        anyhow::ensure!(delivery.verified, "signed: {delivery:?}");
        for (person, identifiers) in delivery.persons.iter().zip(&delivery.identifiers) {
            seen.insert(person.clone(), identifiers.clone());
        }
    }
    for n in 1..=3u64 {
        let person = touchline_e2e::person_of(&stored, &format!("ids-{n}"));
        assert_eq!(
            seen.get(&person),
            Some(&vec![("device_id".to_owned(), format!("device-{n}"))]),
            "person {n}"
        );
    }
    let too_many = modeling
        .create_webhook_destination({
            let mut request =
                destination("too-many", receiver.url("/hooks"), &secret.to_string(), 10);
            if let Some(d) = request.webhook_destination.as_mut() {
                d.identifier_types = (0..11).map(|i| format!("type_{i}")).collect();
            }
            request
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("11 identifier types are refused"))?;
    assert_eq!(
        touchline_e2e::field_violations(&too_many),
        [(
            "webhook_destination.identifier_types".to_owned(),
            "TOO_MANY_TYPES".to_owned()
        )]
    );
    drop(receiver);
    app.stop().await;
    Ok(())
}
