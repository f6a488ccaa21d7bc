//! Model-output triggers over more persons than one transaction announces: a look saves and
//! announces its changes a chunk of persons at a time, so the trigger log's head is never held
//! for a whole look. Through the real services: the first look over 1,500 buyers records their
//! states and announces nothing (not even from its later chunks), and 1,200 new buyers after
//! it are each announced exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;

use touchline_e2e::{Collection, Modeling, sample_event};
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{SubscribeTriggersRequest, Trigger, TriggerType};
use touchline_testkit::{TestApp, token};

const TENANT: &str = "model-triggers";
const SCOPES: &[&str] = &[
    "events:write",
    "models:read",
    "dictionary:read",
    "dictionary:write",
    "activation:read",
    "activation:write",
];
/// Events per IngestEvents call.
const CALL: usize = 500;

/// One purchase at `at_ms` for each of `persons`, sent a call at a time, and stored.
async fn buyers(
    collection: &mut Collection,
    modeling: &mut Modeling,
    persons: std::ops::Range<u64>,
    at_ms: i64,
) -> anyhow::Result<()> {
    let events: Vec<_> = persons
        .map(|p| sample_event(&format!("buy-{p}"), p, "purchase", at_ms))
        .collect();
    for call in events.chunks(CALL) {
        touchline_e2e::ingest_and_store(collection, modeling, call.to_vec())
            .await
            .context("storing a call of buyers")?;
    }
    Ok(())
}

/// Every lifecycle-stage trigger in the log so far.
async fn stage_changes(modeling: &mut Modeling) -> anyhow::Result<Vec<Trigger>> {
    let mut stream = modeling
        .subscribe_triggers(SubscribeTriggersRequest {
            types: vec![TriggerType::LifecycleStageChanged as i32],
            ..SubscribeTriggersRequest::default()
        })
        .await
        .context("subscribing to triggers")?
        .into_inner();
    let mut seen = Vec::new();
    // A batch arrives at once while the log holds more; a quiet second means the end.
    while let Ok(batch) = tokio::time::timeout(Duration::from_secs(1), stream.message()).await {
        match batch.context("reading triggers")? {
            Some(batch) => seen.extend(batch.triggers),
            None => break,
        }
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_over_more_persons_than_a_chunk_announces_each_change_once() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(TENANT, SCOPES);
    touchline_e2e::publish_purchase_dictionary(app.channel(&token)?).await?;
    let mut collection: Collection = CollectionServiceClient::new(app.channel(&token)?);
    let mut modeling: Modeling = ModelingServiceClient::new(app.channel(&token)?);
    let day = 86_400_000;
    let now = chrono::Utc::now().timestamp_millis();
    buyers(&mut collection, &mut modeling, 1..1_501, now - 2 * day).await?;
    // A destination turns model-output triggers on for the tenant.
    touchline_e2e::turn_on_model_triggers(&mut modeling).await?;
    let pool = sqlx::PgPool::connect(&app.db.url).await?;
    let recorded = || {
        let pool = pool.clone();
        async move {
            let states: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM modeling.person_model_states WHERE tenant_id = $1",
            )
            .bind(TENANT)
            .fetch_one(&pool)
            .await?;
            let baseline: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM modeling.model_state_baselines WHERE tenant_id = $1)",
            )
            .bind(TENANT)
            .fetch_one(&pool)
            .await?;
            anyhow::Ok((states, baseline))
        }
    };
    touchline_testkit::eventually(Duration::from_secs(60), || async {
        let (states, baseline) = recorded().await?;
        Ok((baseline && states == 1_500).then_some(()))
    })
    .await?;
    let triggers = |kind: Option<TriggerType>| {
        let pool = pool.clone();
        async move {
            let count: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM modeling.triggers
                  WHERE tenant_id = $1 AND ($2::smallint IS NULL OR trigger_type = $2)",
            )
            .bind(TENANT)
            .bind(kind.map(|k| k as i16))
            .fetch_one(&pool)
            .await?;
            anyhow::Ok(count)
        }
    };
    assert_eq!(triggers(None).await?, 0, "the first look announced changes");

    // 1,200 new buyers: the next look announces each one's first stage, once.
    buyers(&mut collection, &mut modeling, 1_501..2_701, now).await?;
    let stage = Some(TriggerType::LifecycleStageChanged);
    touchline_testkit::eventually(Duration::from_secs(90), || async {
        Ok((triggers(stage).await? >= 1_200).then_some(()))
    })
    .await?;
    let announced = stage_changes(&mut modeling).await?;
    let persons: BTreeSet<&str> = announced.iter().map(|t| t.person_id.as_str()).collect();
    assert_eq!(announced.len(), 1_200, "one trigger per new buyer");
    assert_eq!(persons.len(), 1_200, "no buyer announced twice");
    assert!(
        announced.iter().all(|t| t.previous_lifecycle_stage == 0),
        "every one of them had no stage before"
    );
    let (states, _) = recorded().await?;
    assert_eq!(states, 2_700);
    pool.close().await;
    app.stop().await;
    Ok(())
}
