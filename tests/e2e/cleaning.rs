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
