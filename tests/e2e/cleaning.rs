//! Cleaning end to end: direct identifiers are pseudonymised, shown masked,
//! and never reach the clean log in clear.

use prost::Message as _;
use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::Identifier;
use touchline_proto::prost;
use touchline_proto::prost_types::{Struct, Value};
use touchline_testkit::{TestApp, token};

use crate::dictionary::{SCOPES, clean_log_until, recent_ms};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_is_pseudonymised_and_masked_and_never_kept_in_clear() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("pii", SCOPES);
    let mut event = sample_event("pii-1", 7, "view_item", recent_ms());
    event.identifiers.push(Identifier {
        r#type: "phone".to_owned(),
        value: "138 1234 5678".to_owned(),
        scope: String::new(),
    });
    event.properties = Some(Struct {
        fields: [
            ("phone".to_owned(), Value::from("13812345678".to_owned())),
            ("sku".to_owned(), Value::from("S-1".to_owned())),
        ]
        .into_iter()
        .collect(),
    });
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    collection
        .ingest_events(IngestEventsRequest {
            events: vec![event],
        })
        .await?;

    let log = clean_log_until(&app, &token, "pii", |latest| latest.contains_key("pii-1")).await?;
    let clean = &log[0];
    let phone = clean
        .identifiers
        .iter()
        .find(|i| i.r#type == "phone")
        .ok_or_else(|| anyhow::anyhow!("the phone identifier is missing"))?;
    assert!(phone.value.starts_with("k1:"), "{}", phone.value);
    assert_eq!(phone.value.len(), "k1:".len() + 64, "hex HMAC-SHA256");
    let masked = clean
        .masked_identifiers
        .iter()
        .find(|m| m.r#type == "phone")
        .ok_or_else(|| anyhow::anyhow!("no masked form"))?;
    assert_eq!(masked.value, phone.value);
    assert!(masked.masked.contains("****"), "{}", masked.masked);
    assert!(masked.masked.ends_with("5678"), "{}", masked.masked);
    assert!(!masked.masked.contains("12345678"));
    let property = clean
        .properties
        .as_ref()
        .and_then(|p| p.fields.get("phone"))
        .and_then(|v| match &v.kind {
            Some(touchline_proto::prost_types::value::Kind::StringValue(s)) => Some(s.clone()),
            _ => None,
        });
    assert_eq!(property.as_deref(), Some(phone.value.as_str()));

    // Not a trace of the number anywhere in the record.
    let bytes = clean.encode_to_vec();
    for clear in ["13812345678", "138 1234 5678", "8613812345678"] {
        assert!(
            !bytes.windows(clear.len()).any(|w| w == clear.as_bytes()),
            "{clear} found in the clean record"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_blocks_a_clear_phone_and_cleaning_drops_it() -> anyhow::Result<()> {
    use tonic_types::StatusExt as _;
    use touchline_proto::governance::v1 as governance;
    use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;

    crate::init();
    let app = TestApp::spawn().await?;
    let scopes: Vec<&str> = SCOPES
        .iter()
        .copied()
        .chain(["privacy:read", "privacy:write"])
        .collect();
    let token = token("blocks", &scopes);
    let mut governance = GovernanceServiceClient::new(app.channel(&token)?);
    let settings = |blocked: Vec<(&str, &str)>| governance::UpdatePrivacySettingsRequest {
        privacy_settings: Some(governance::PrivacySettings {
            blocked_identifiers: blocked
                .into_iter()
                .map(|(t, v)| governance::BlockedIdentifier {
                    r#type: t.to_owned(),
                    value: v.to_owned(),
                })
                .collect(),
            ..Default::default()
        }),
    };

    // A value that cannot be a phone is refused, naming it; nothing is stored.
    let refused = governance
        .update_privacy_settings(settings(vec![("phone", "139 1234 5678"), ("phone", "12")]))
        .await
        .expect_err("an unnormalisable phone");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let details = refused.get_error_details();
    let violation = &details
        .bad_request()
        .ok_or_else(|| anyhow::anyhow!("no field violations"))?
        .field_violations[0];
    assert_eq!(
        violation.field,
        "privacy_settings.blocked_identifiers[1].value"
    );
    assert_eq!(violation.reason, "UNNORMALISABLE");
    let stored = governance
        .get_privacy_settings(governance::GetPrivacySettingsRequest::default())
        .await?
        .into_inner()
        .privacy_settings
        .ok_or_else(|| anyhow::anyhow!("no settings"))?;
    assert!(stored.blocked_identifiers.is_empty());
    assert!(stored.update_time.is_none(), "still the defaults");
    assert_eq!(stored.default_country_code, "86");

    // The front desk's number, blocked in clear, shown back masked.
    let updated = governance
        .update_privacy_settings(settings(vec![("phone", "139 1234 5678")]))
        .await?
        .into_inner()
        .privacy_settings
        .ok_or_else(|| anyhow::anyhow!("no settings"))?;
    assert_eq!(updated.name, "tenants/blocks/privacySettings");
    assert_eq!(updated.blocked_identifiers.len(), 1);
    assert_eq!(updated.blocked_identifiers[0].value, "139****5678");
    assert!(updated.update_time.is_some());

    // Written another way on an event, it is dropped and counted; the
    // event keeps its other identifier.
    let mut event = sample_event("blocks-1", 8, "view_item", recent_ms());
    event.identifiers.push(Identifier {
        r#type: "phone".to_owned(),
        value: "+86 139-1234-5678".to_owned(),
        scope: String::new(),
    });
    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    collection
        .ingest_events(IngestEventsRequest {
            events: vec![event],
        })
        .await?;
    let log = clean_log_until(&app, &token, "blocks", |latest| {
        latest.contains_key("blocks-1")
    })
    .await?;
    let clean = &log[0];
    assert!(
        clean.identifiers.iter().all(|i| i.r#type != "phone"),
        "{:?}",
        clean.identifiers
    );
    assert!(!clean.identifiers.is_empty(), "the other identifier stays");
    assert_eq!(clean.blocked_identifiers, 1);
    Ok(())
}

/// Blocking a value takes effect from the next batch; history cleaned before
/// is put right by an APPLY reprocessing, which restates the events that
/// carried it without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_blocked_later_is_removed_from_history_by_an_applied_reprocessing()
-> anyhow::Result<()> {
    use touchline_proto::governance::v1 as governance;
    use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;

    use crate::reprocess_apply::{hour_around_now, run_job};

    crate::init();
    let app = TestApp::spawn().await?;
    let scopes: Vec<&str> = SCOPES.iter().copied().chain(["privacy:write"]).collect();
    let token = token("lateblock", &scopes);
    let with_phone = |message_id: &str, person: u64, phone: &str| {
        let mut event = sample_event(message_id, person, "view_item", recent_ms());
        event.identifiers.push(Identifier {
            r#type: "phone".to_owned(),
            value: phone.to_owned(),
            scope: String::new(),
        });
        event
    };
    CollectionServiceClient::new(app.channel(&token)?)
        .ingest_events(IngestEventsRequest {
            events: vec![
                // The store's front-desk number, typed in for two customers.
                with_phone("desk-1", 1, "139 1234 5678"),
                with_phone("desk-2", 2, "+86 139-1234-5678"),
                with_phone("own-3", 3, "137 5566 7788"),
            ],
        })
        .await?;
    let phones = |log: &[touchline_proto::governance::v1::CleanEvent], id: &str| {
        log.iter()
            .rev()
            .find(|e| e.message_id == id)
            .map(|e| e.identifiers.iter().filter(|i| i.r#type == "phone").count())
            .unwrap_or(usize::MAX)
    };
    let before = clean_log_until(&app, &token, "lateblock", |latest| latest.len() == 3).await?;
    assert_eq!(
        ["desk-1", "desk-2", "own-3"].map(|id| phones(&before, id)),
        [1, 1, 1]
    );

    let mut governance = GovernanceServiceClient::new(app.channel(&token)?);
    governance
        .update_privacy_settings(governance::UpdatePrivacySettingsRequest {
            privacy_settings: Some(governance::PrivacySettings {
                blocked_identifiers: vec![governance::BlockedIdentifier {
                    r#type: "phone".to_owned(),
                    value: "13912345678".to_owned(),
                }],
                ..Default::default()
            }),
        })
        .await?;
    let done = run_job(
        &mut governance,
        governance::ReprocessRangeRequest {
            received_time: Some(hour_around_now()),
            mode: governance::ReprocessMode::Apply as i32,
            ..Default::default()
        },
    )
    .await?;
    let diff = done.diff.unwrap_or_default();
    assert_eq!(
        (diff.properties_changed_count, diff.unchanged_count),
        (2, 1),
        "{diff:?}"
    );

    // Both front-desk events are restated without the number and count it
    // as blocked; the customer's own number stays.
    let after = clean_log_until(&app, &token, "lateblock", |latest| {
        latest
            .values()
            .filter(|e| e.restatement && e.blocked_identifiers == 1)
            .count()
            == 2
    })
    .await?;
    assert_eq!(
        ["desk-1", "desk-2", "own-3"].map(|id| phones(&after, id)),
        [0, 0, 1]
    );
    assert_eq!(after.len(), 5, "two restatements, nothing else");
    Ok(())
}
