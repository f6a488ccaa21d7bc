//! What an operator does with a webhook destination, through the real services to a receiver
//! that verifies with Python's Standard Webhooks library: a test delivery reaches the endpoint
//! signed, beside the queue and outside the ledger, and one to a closed port says why it
//! failed; a replay from a time sends again exactly the triggers of that time or later; a
//! replay from both a sequence and a time is refused; a subscriber to an empty trigger log
//! hears at once that it is connected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use touchline_e2e::{Modeling, sample_event};
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    CreateWebhookDestinationRequest, ListWebhookDeliveriesRequest, ResumeWebhookDestinationRequest,
    SubscribeTriggersRequest, TestWebhookDestinationRequest, TriggerType, WebhookDestination,
};
use touchline_testkit::{TestApp, token};
use touchline_webhooks::SigningSecret;
use touchline_webhooks::testing::PythonReceiver;

use super::webhook_concurrency::purchases_at_least;

const TENANT: &str = "operator";
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

fn workspace_root() -> anyhow::Result<PathBuf> {
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?)
}

fn destination(id: &str, url: String, secret: &SigningSecret) -> CreateWebhookDestinationRequest {
    CreateWebhookDestinationRequest {
        webhook_destination_id: id.into(),
        webhook_destination: Some(WebhookDestination {
            url,
            signing_secret: secret.to_string(),
            max_batch_size: 10,
            types: vec![TriggerType::SegmentEntered as i32],
            ..WebhookDestination::default()
        }),
        ..CreateWebhookDestinationRequest::default()
    }
}

/// The trigger sequences of the receiver's next deliveries, until `count` have come.
async fn next_sequences(receiver: &mut PythonReceiver, count: usize) -> anyhow::Result<Vec<i64>> {
    let mut sequences = Vec::new();
    while sequences.len() < count {
        let verdict = receiver.verdict().await?;
        anyhow::ensure!(verdict["verified"] == true, "{verdict}");
        let body: serde_json::Value =
            serde_json::from_str(verdict["body"].as_str().unwrap_or_default())?;
        sequences.extend(
            body["triggers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["sequence"].as_str()?.parse::<i64>().ok()),
        );
    }
    Ok(sequences)
}

/// How many attempts the ledger holds for destination `id`.
async fn ledger_size(modeling: &mut Modeling, id: &str) -> anyhow::Result<usize> {
    Ok(modeling
        .list_webhook_deliveries(ListWebhookDeliveriesRequest {
            parent: format!("tenants/{TENANT}/webhookDestinations/{id}"),
            page_size: 100,
            ..ListWebhookDeliveriesRequest::default()
        })
        .await?
        .into_inner()
        .attempts
        .len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_delivery_and_a_replay_from_a_time() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    modeling
        .create_segment(purchases_at_least("buyers", 1.0))
        .await?;
    // A subscriber to an empty log hears at once that it is connected, and the head.
    let mut empty = modeling
        .subscribe_triggers(SubscribeTriggersRequest::default())
        .await?
        .into_inner();
    let hello = tokio::time::timeout(Duration::from_secs(5), empty.message())
        .await??
        .unwrap_or_default();
    assert!(
        hello.triggers.is_empty() && hello.head_sequence == 0,
        "{hello:?}"
    );
    drop(empty);
    let secret = SigningSecret::generate();
    let mut receiver = PythonReceiver::start(&workspace_root()?, &[&secret]).await?;
    modeling
        .create_webhook_destination(destination("crm", receiver.url("/hooks"), &secret))
        .await?;

    // A test delivery: signed like any other, with the test body, and not in the ledger.
    let sent = modeling
        .test_webhook_destination(TestWebhookDestinationRequest {
            name: format!("tenants/{TENANT}/webhookDestinations/crm"),
        })
        .await?
        .into_inner();
    assert!(sent.delivered, "{sent:?}");
    assert_eq!(sent.http_status, 204);
    assert!(sent.webhook_id.starts_with("msg_test_"), "{sent:?}");
    let verdict = receiver.verdict().await?;
    assert_eq!(verdict["verified"], true, "{verdict}");
    assert_eq!(verdict["webhook_id"], sent.webhook_id.as_str());
    let body: serde_json::Value =
        serde_json::from_str(verdict["body"].as_str().unwrap_or_default())?;
    assert_eq!(body, serde_json::json!({"triggers": [], "test": true}));
    assert_eq!(ledger_size(&mut modeling, "crm").await?, 0);

    // One to a closed port says why it failed, and leaves the destination as it was.
    modeling
        .create_webhook_destination(destination(
            "closed",
            "http://127.0.0.1:9/hooks".into(),
            &secret,
        ))
        .await?;
    let failed = modeling
        .test_webhook_destination(TestWebhookDestinationRequest {
            name: format!("tenants/{TENANT}/webhookDestinations/closed"),
        })
        .await?
        .into_inner();
    assert!(!failed.delivered && failed.http_status == 0, "{failed:?}");
    assert!(!failed.error.is_empty());
    assert_eq!(ledger_size(&mut modeling, "closed").await?, 0);
    let missing = modeling
        .test_webhook_destination(TestWebhookDestinationRequest {
            name: format!("tenants/{TENANT}/webhookDestinations/nobody"),
        })
        .await
        .expect_err("no such destination");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // Two rounds of buyers, a second apart; each round's entries are delivered.
    let now = chrono::Utc::now().timestamp_millis();
    let first = (1..=3)
        .map(|n| sample_event(&format!("a-{n}"), n, "purchase", now))
        .collect();
    touchline_e2e::ingest_and_store(&mut collection, &mut modeling, first).await?;
    let early = next_sequences(&mut receiver, 3).await?;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let since = chrono::Utc::now();
    let second = (4..=6)
        .map(|n| sample_event(&format!("b-{n}"), n, "purchase", now))
        .collect();
    touchline_e2e::ingest_and_store(&mut collection, &mut modeling, second).await?;
    let late = next_sequences(&mut receiver, 3).await?;
    assert!(early.iter().all(|e| late.iter().all(|l| e < l)));

    // The log's own view of which entries are of that time or later.
    let mut stream = modeling
        .subscribe_triggers(SubscribeTriggersRequest {
            types: vec![TriggerType::SegmentEntered as i32],
            ..SubscribeTriggersRequest::default()
        })
        .await?
        .into_inner();
    let logged = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await??
        .unwrap_or_default()
        .triggers;
    let expected: Vec<i64> = logged
        .iter()
        .filter(|t| {
            t.trigger_time.as_ref().is_some_and(|at| {
                (at.seconds, at.nanos)
                    >= (
                        since.timestamp(),
                        i32::try_from(since.timestamp_subsec_nanos()).unwrap_or(0),
                    )
            })
        })
        .map(|t| t.sequence)
        .collect();
    assert_eq!(expected, late);

    // A replay from that time sends exactly those again.
    modeling
        .resume_webhook_destination(ResumeWebhookDestinationRequest {
            name: format!("tenants/{TENANT}/webhookDestinations/crm"),
            replay_from_time: Some(prost_types::Timestamp {
                seconds: since.timestamp(),
                nanos: i32::try_from(since.timestamp_subsec_nanos())?,
            }),
            ..ResumeWebhookDestinationRequest::default()
        })
        .await?;
    assert_eq!(next_sequences(&mut receiver, 3).await?, late);

    // A sequence and a time at once is refused.
    let both = modeling
        .resume_webhook_destination(ResumeWebhookDestinationRequest {
            name: format!("tenants/{TENANT}/webhookDestinations/crm"),
            after_sequence: 1,
            replay_from_time: Some(prost_types::Timestamp::default()),
        })
        .await
        .expect_err("both a sequence and a time");
    assert_eq!(both.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        touchline_e2e::field_violations(&both),
        vec![(
            "replay_from_time".to_owned(),
            "CONFLICTING_START".to_owned()
        )]
    );
    app.stop().await;
    Ok(())
}
