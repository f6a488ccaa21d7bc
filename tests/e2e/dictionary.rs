//! The event dictionary end to end: an industry template applied and
//! published, and source names mapped to canonical names in the clean log.

use std::collections::HashMap;
use std::time::Duration;

use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::{PartitionCursor, TailSelector};
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::governance::v1::{
    ApplyIndustryTemplateRequest, ApplyTemplateMode, CleanEvent, ListDictionaryVersionsRequest,
    ListIndustryTemplatesRequest, PublishDictionaryVersionRequest, TailCleanEventsRequest,
};
use touchline_testkit::{TestApp, token};

/// Scopes the governance tests use.
pub(crate) const SCOPES: &[&str] = &[
    "events:write",
    "dictionary:read",
    "dictionary:write",
    "quarantine:read",
    "quarantine:write",
    "quality:read",
    "pipeline:read",
];

/// An epoch-millisecond timestamp a minute ago (inside every accepted range).
pub(crate) fn recent_ms() -> i64 {
    chrono::Utc::now().timestamp_millis() - 60_000
}

/// Every record of `tenant`'s clean log, read until `done` holds for the
/// latest record per message id (fails after a minute of waiting).
pub(crate) async fn clean_log_until(
    app: &TestApp,
    token: &str,
    tenant: &str,
    done: impl Fn(&HashMap<String, CleanEvent>) -> bool,
) -> anyhow::Result<Vec<CleanEvent>> {
    let mut governance = GovernanceServiceClient::new(app.channel(token)?);
    let mut stream = governance
        .tail_clean_events(TailCleanEventsRequest {
            selector: Some(TailSelector {
                cursors: vec![PartitionCursor {
                    tenant: tenant.to_owned(),
                    after_sequence: 0,
                }],
                all_tenants: false,
                max_batch_size: 1_000,
            }),
        })
        .await?
        .into_inner();
    let mut all = Vec::new();
    let mut latest = HashMap::new();
    while !done(&latest) {
        let batch = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .map_err(|_| anyhow::anyhow!("the clean log did not reach the expected state"))??
            .ok_or_else(|| anyhow::anyhow!("the clean log stream ended"))?;
        for event in batch.events {
            latest.insert(event.message_id.clone(), event.clone());
            all.push(event);
        }
    }
    Ok(all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_template_maps_aliases_to_canonical_names() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("dict", SCOPES);
    let mut governance = GovernanceServiceClient::new(app.channel(&token)?);

    let templates = governance
        .list_industry_templates(ListIndustryTemplatesRequest::default())
        .await?
        .into_inner();
    let names: Vec<&str> = templates
        .industry_templates
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    for expected in ["retail", "healthcare", "transport", "manufacturing"] {
        assert!(
            names.contains(&format!("industryTemplates/{expected}").as_str()),
            "{names:?}"
        );
    }

    let applied = governance
        .apply_industry_template(ApplyIndustryTemplateRequest {
            template: "retail".to_owned(),
            mode: ApplyTemplateMode::Merge as i32,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(
        applied
            .added_event_names
            .contains(&"add_to_cart".to_owned())
    );
    let before = governance
        .list_dictionary_versions(ListDictionaryVersionsRequest::default())
        .await?
        .into_inner();
    assert!(
        before.dictionary_versions.is_empty(),
        "applying changes the draft only"
    );

    let publish = PublishDictionaryVersionRequest {
        description: "retail template".to_owned(),
        request_id: "2c9d8e7f-6a5b-4c3d-9e2f-1a0b9c8d7e6f".to_owned(),
        ..Default::default()
    };
    let published = governance
        .publish_dictionary_version(publish.clone())
        .await?
        .into_inner()
        .dictionary_version
        .ok_or_else(|| anyhow::anyhow!("no version in the response"))?;
    assert_eq!(published.version, 1);
    assert!(published.active);
    // A retry with the key gets the version the first call published, where
    // a new call finds nothing to publish.
    let retried = governance
        .publish_dictionary_version(publish)
        .await?
        .into_inner()
        .dictionary_version;
    assert_eq!(retried.as_ref(), Some(&published));
    let unchanged = governance
        .publish_dictionary_version(PublishDictionaryVersionRequest::default())
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(unchanged, Some(tonic::Code::FailedPrecondition));

    let at = recent_ms();
    let mut aliased = sample_event("dict-alias", 1, "AddCart", at);
    aliased.properties = Some(touchline_proto::prost_types::Struct {
        fields: [
            ("sku", "S-STROLL".into()),
            ("quantity", 2.0.into()),
            ("price", 1299.0.into()),
        ]
        .into_iter()
        .map(|(k, v): (&str, touchline_proto::prost_types::Value)| (k.to_owned(), v))
        .collect(),
    });
    let canonical = sample_event("dict-canonical", 1, "add_to_cart", at + 1_000);
    let login = sample_event("dict-login", 2, "signin", at + 2_000);
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let ingested = collection
        .ingest_events(IngestEventsRequest {
            events: vec![aliased, canonical, login],
        })
        .await?
        .into_inner();
    assert_eq!(ingested.accepted_count, 3);

    let ids = ["dict-alias", "dict-canonical", "dict-login"];
    let log = clean_log_until(&app, &token, "dict", |latest| {
        ids.iter().all(|id| latest.contains_key(*id))
    })
    .await?;
    let by_id: HashMap<&str, &CleanEvent> =
        log.iter().map(|e| (e.message_id.as_str(), e)).collect();
    let alias = by_id["dict-alias"];
    assert_eq!(alias.event_name, "add_to_cart");
    assert_eq!(alias.source_event_name, "AddCart");
    assert_eq!(alias.dictionary_version, 1);
    assert_eq!(by_id["dict-canonical"].event_name, "add_to_cart");
    assert_eq!(by_id["dict-login"].event_name, "login");
    assert_eq!(by_id["dict-login"].source_event_name, "signin");
    assert_eq!(log.len(), 3, "one clean record per event");
    Ok(())
}
