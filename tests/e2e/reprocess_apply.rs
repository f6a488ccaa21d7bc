//! Reprocessing in APPLY mode end to end: after a new dictionary version,
//! an event that now fails a rule is retracted from the event store and
//! quarantined, a quarantined one that now passes is released, one whose
//! clean content changed is restated; the quality report still balances,
//! and a second APPLY finds nothing to change.

use std::collections::HashMap;
use std::time::Duration;

use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::TimeRange;
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::governance::v1::{
    CanonicalEvent, CreateCanonicalEventRequest, EventAlias, GetQualityReportRequest,
    GetReprocessJobRequest, ListQuarantinedRequest, PropertySpec, PublishDictionaryVersionRequest,
    QuarantineReason, ReprocessJob, ReprocessJobState, ReprocessMode, ReprocessRangeRequest,
    UpdateCanonicalEventRequest,
};
use touchline_proto::modeling::v1::ListEventsRequest;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::prost_types::FieldMask;
use touchline_testkit::{TestApp, eventually, token};

use crate::dictionary::{SCOPES, recent_ms};

/// The governance client the tests use.
pub(crate) type Governance = GovernanceServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        touchline_runtime::client::CallCredentials,
    >,
>;

/// The event store's events by message id → event name.
async fn stored_events(app: &TestApp, token: &str) -> anyhow::Result<HashMap<String, String>> {
    let mut modeling = ModelingServiceClient::new(app.channel(token)?);
    let page = modeling
        .list_events(ListEventsRequest {
            page_size: 1_000,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(page
        .events
        .into_iter()
        .map(|e| (e.message_id, e.event_name))
        .collect())
}

async fn wait_for_events(
    app: &TestApp,
    token: &str,
    expected: &[(&str, &str)],
) -> anyhow::Result<()> {
    let expected: HashMap<String, String> = expected
        .iter()
        .map(|(m, n)| ((*m).to_owned(), (*n).to_owned()))
        .collect();
    eventually(Duration::from_secs(60), || {
        let expected = expected.clone();
        async move {
            let now = stored_events(app, token).await?;
            Ok((now == expected).then_some(()))
        }
    })
    .await
}

async fn canonical(governance: &mut Governance, id: &str) -> anyhow::Result<()> {
    governance
        .create_canonical_event(CreateCanonicalEventRequest {
            canonical_event_id: id.to_owned(),
            canonical_event: Some(CanonicalEvent::default()),
            ..Default::default()
        })
        .await?;
    Ok(())
}

async fn update(
    governance: &mut Governance,
    event: CanonicalEvent,
    paths: &[&str],
) -> anyhow::Result<()> {
    governance
        .update_canonical_event(UpdateCanonicalEventRequest {
            canonical_event: Some(event),
            update_mask: Some(FieldMask {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            }),
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// Starts a reprocessing job and waits until it succeeded (an error if it failed).
/// Receive times from an hour ago to an hour ahead: every event a test just sent.
pub(crate) fn hour_around_now() -> TimeRange {
    let now = std::time::SystemTime::now();
    TimeRange {
        start_time: Some((now - Duration::from_secs(3_600)).into()),
        end_time: Some((now + Duration::from_secs(3_600)).into()),
    }
}

pub(crate) async fn run_job(
    governance: &mut Governance,
    request: ReprocessRangeRequest,
) -> anyhow::Result<ReprocessJob> {
    let job = governance
        .reprocess_range(request)
        .await?
        .into_inner()
        .reprocess_job
        .ok_or_else(|| anyhow::anyhow!("no job"))?;
    let done = eventually(Duration::from_secs(60), || {
        let mut governance = governance.clone();
        let name = job.name.clone();
        async move {
            let job = governance
                .get_reprocess_job(GetReprocessJobRequest { name })
                .await?
                .into_inner()
                .reprocess_job;
            Ok(job.filter(|j| {
                j.state == ReprocessJobState::Succeeded as i32
                    || j.state == ReprocessJobState::Failed as i32
            }))
        }
    })
    .await?;
    anyhow::ensure!(
        done.state == ReprocessJobState::Succeeded as i32,
        "job failed: {}",
        done.error
    );
    Ok(done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_reprocessing_restates_retracts_and_releases() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let mut scopes = SCOPES.to_vec();
    scopes.push("models:read");
    let token = token("apply", &scopes);
    let mut governance: Governance = GovernanceServiceClient::new(app.channel(&token)?);
    canonical(&mut governance, "checkout_started").await?;
    canonical(&mut governance, "coupon_viewed").await?;
    governance
        .publish_dictionary_version(PublishDictionaryVersionRequest::default())
        .await?;
    let at = recent_ms();
    CollectionServiceClient::new(app.channel(&token)?)
        .ingest_events(IngestEventsRequest {
            events: vec![
                sample_event("a-known", 1, "checkout_started", at),
                sample_event("a-alias", 2, "begin_checkout", at + 1_000),
                sample_event("a-coupon", 3, "coupon_viewed", at + 2_000),
            ],
        })
        .await?;
    wait_for_events(
        &app,
        &token,
        &[
            ("a-known", "checkout_started"),
            ("a-coupon", "coupon_viewed"),
        ],
    )
    .await?;

    // Version 2: begin_checkout is an alias now, checkout_started counts as a
    // conversion, and a coupon view needs the coupon's code.
    update(
        &mut governance,
        CanonicalEvent {
            name: "tenants/apply/canonicalEvents/checkout_started".to_owned(),
            aliases: vec![EventAlias {
                source_event_name: "begin_checkout".to_owned(),
                ..Default::default()
            }],
            conversion: true,
            ..Default::default()
        },
        &["aliases", "conversion"],
    )
    .await?;
    update(
        &mut governance,
        CanonicalEvent {
            name: "tenants/apply/canonicalEvents/coupon_viewed".to_owned(),
            properties: vec![PropertySpec {
                name: "coupon_code".to_owned(),
                required: true,
                ..Default::default()
            }],
            ..Default::default()
        },
        &["properties"],
    )
    .await?;
    governance
        .publish_dictionary_version(PublishDictionaryVersionRequest::default())
        .await?;

    let range = hour_around_now();
    let apply = ReprocessRangeRequest {
        received_time: Some(range),
        mode: ReprocessMode::Apply as i32,
        ..Default::default()
    };
    let stale = governance
        .reprocess_range(ReprocessRangeRequest {
            dictionary_version: 1,
            ..apply.clone()
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(
        stale,
        Some(tonic::Code::FailedPrecondition),
        "APPLY uses the active version only"
    );

    let done = run_job(&mut governance, apply.clone()).await?;
    assert_eq!(done.mode, ReprocessMode::Apply as i32);
    assert_eq!((done.total_events, done.examined_events), (3, 3));
    let diff = done.diff.unwrap_or_default();
    assert_eq!(
        (
            diff.newly_clean_count,
            diff.newly_quarantined_count,
            diff.properties_changed_count,
            diff.unchanged_count
        ),
        (1, 1, 1, 0),
        "{diff:?}"
    );

    // The event store follows: the coupon view is withdrawn, the alias is
    // released under its canonical name.
    wait_for_events(
        &app,
        &token,
        &[
            ("a-known", "checkout_started"),
            ("a-alias", "checkout_started"),
        ],
    )
    .await?;
    let quarantined = governance
        .list_quarantined(ListQuarantinedRequest::default())
        .await?
        .into_inner();
    assert_eq!(quarantined.total_size, 1);
    let coupon = &quarantined.quarantined_events[0];
    assert_eq!(
        coupon.event.as_ref().map(|e| e.message_id.as_str()),
        Some("a-coupon")
    );
    assert_eq!(
        coupon.reason,
        QuarantineReason::MissingRequiredProperty as i32
    );
    let report = governance
        .get_quality_report(GetQualityReportRequest::default())
        .await?
        .into_inner();
    let total = report.total.unwrap_or_default();
    assert_eq!(
        (
            total.received,
            total.clean,
            total.quarantined,
            total.duplicates
        ),
        (3, 2, 1, 0),
        "{total:?}"
    );

    // Applying again finds everything as the first job left it.
    let again = run_job(&mut governance, apply).await?;
    let diff = again.diff.unwrap_or_default();
    assert_eq!(diff.unchanged_count, 3, "{diff:?}");
    assert_eq!(
        stored_events(&app, &token).await?.len(),
        2,
        "nothing is published twice"
    );
    Ok(())
}
