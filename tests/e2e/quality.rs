//! The quality report end to end: per source and day, received = clean +
//! quarantined + duplicates, counting message-id duplicates recognised at
//! ingest and cross-source duplicates recognised by natural key.

use std::time::Duration;

use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::Event;
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::governance::v1::{
    CanonicalEvent, CreateCanonicalEventRequest, GetQualityReportRequest,
    PublishDictionaryVersionRequest, QualityReportRow, QuarantineReason,
};
use touchline_proto::prost_types::{Struct, Value};
use touchline_testkit::{TestApp, eventually, token};

use crate::dictionary::{SCOPES, recent_ms};

fn order(message_id: &str, source: &str, at: i64) -> Event {
    let mut event = sample_event(message_id, 3, "purchase", at);
    event.source = source.to_owned();
    event.properties = Some(Struct {
        fields: [
            ("order_id".to_owned(), Value::from("O-1".to_owned())),
            ("amount".to_owned(), Value::from(129.0)),
        ]
        .into_iter()
        .collect(),
    });
    event
}

fn balanced(row: &QualityReportRow) -> bool {
    row.received == row.clean + row.quarantined + row.duplicates
        && row.duplicates
            == row.duplicates_message_id + row.duplicates_natural_key + row.restatements
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_received_event_is_clean_quarantined_or_a_counted_duplicate() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("qual", SCOPES);
    let mut governance = GovernanceServiceClient::new(app.channel(&token)?);
    governance
        .create_canonical_event(CreateCanonicalEventRequest {
            canonical_event_id: "purchase".to_owned(),
            canonical_event: Some(CanonicalEvent {
                natural_key_properties: vec!["order_id".to_owned()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    governance
        .publish_dictionary_version(PublishDictionaryVersionRequest::default())
        .await?;

    let mut collection = CollectionServiceClient::new(app.channel(&token)?);
    let at = recent_ms();
    let first = vec![
        order("qual-pos", "pos", at),
        sample_event("qual-odd", 3, "not_in_the_dictionary", at),
    ];
    for batch in [
        first.clone(),
        // A retry of the first batch: both are message-id duplicates.
        first,
        // The same order exported by the CRM: a cross-source duplicate.
        vec![order("qual-crm", "crm", at + 5_000)],
    ] {
        collection
            .ingest_events(IngestEventsRequest { events: batch })
            .await?;
    }

    let report = eventually(Duration::from_secs(60), || {
        let mut governance = governance.clone();
        async move {
            let report = governance
                .get_quality_report(GetQualityReportRequest::default())
                .await?
                .into_inner();
            let settled = report
                .total
                .as_ref()
                .is_some_and(|t| t.clean + t.quarantined + t.duplicates_natural_key == 3);
            Ok(settled.then_some(report))
        }
    })
    .await?;

    for row in report.rows.iter().chain(&report.source_totals) {
        assert!(balanced(row), "unbalanced row {row:?}");
        assert!(row.includes_ingest_duplicates);
    }
    let total = report.total.clone().unwrap_or_default();
    assert!(balanced(&total), "{total:?}");
    assert_eq!(total.received, 5);
    let pos: Vec<&QualityReportRow> = report.rows.iter().filter(|r| r.source == "pos").collect();
    assert_eq!(pos.len(), 1, "{:?}", report.rows);
    assert_eq!(
        (pos[0].received, pos[0].clean, pos[0].duplicates_message_id),
        (2, 1, 1)
    );
    let crm: Vec<&QualityReportRow> = report.rows.iter().filter(|r| r.source == "crm").collect();
    assert_eq!(
        (crm[0].received, crm[0].clean, crm[0].duplicates_natural_key),
        (1, 0, 1)
    );
    let sdk: Vec<&QualityReportRow> = report
        .rows
        .iter()
        .filter(|r| r.source == "sdk-app")
        .collect();
    assert_eq!(
        (
            sdk[0].received,
            sdk[0].quarantined,
            sdk[0].duplicates_message_id
        ),
        (2, 1, 1)
    );
    assert_eq!(
        sdk[0]
            .quarantined_by_reason
            .first()
            .map(|r| (r.reason, r.count)),
        Some((QuarantineReason::UnknownEvent as i32, 1))
    );
    Ok(())
}
