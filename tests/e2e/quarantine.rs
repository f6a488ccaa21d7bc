//! Quarantine and replay end to end: an event the strict dictionary does
//! not know is quarantined, the dictionary is fixed (alias added and
//! published), and a replay releases the event into the clean log exactly
//! once; a dry-run reprocessing reports the same fix without applying it.

use std::time::Duration;

use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1::TimeRange;
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::governance::v1::{
    CanonicalEvent, CreateCanonicalEventRequest, EventAlias, ListQuarantinedRequest,
    PublishDictionaryVersionRequest, QuarantineFilter, QuarantineReason, QuarantineState,
    QuarantinedEventNames, ReplayOutcome, ReplayQuarantinedRequest, ReprocessRangeRequest,
    UpdateCanonicalEventRequest, replay_quarantined_request::Selection,
};
use touchline_proto::prost_types::FieldMask;
use touchline_testkit::{TestApp, eventually, token};

use crate::dictionary::{SCOPES, clean_log_until, recent_ms};
use crate::reprocess_apply::{Governance, hour_around_now, run_job};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_dictionary_releases_a_quarantined_event_exactly_once() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("quar", SCOPES);
    let mut governance = strict_dictionary_with_two_events(&app, &token, "q").await?;

    // The unknown name waits in quarantine with its reason.
    let filter = QuarantineFilter {
        reasons: vec![QuarantineReason::UnknownEvent as i32],
        source_event_name: "begin_checkout".to_owned(),
        ..Default::default()
    };
    let listed = eventually(Duration::from_secs(60), || {
        let mut governance = governance.clone();
        let filter = filter.clone();
        async move {
            let page = governance
                .list_quarantined(ListQuarantinedRequest {
                    filter: Some(filter),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok((page.total_size > 0).then_some(page))
        }
    })
    .await?;
    assert_eq!(listed.total_size, 1);
    let quarantined = &listed.quarantined_events[0];
    assert_eq!(quarantined.reason, QuarantineReason::UnknownEvent as i32);
    assert_eq!(quarantined.state, QuarantineState::Quarantined as i32);
    assert_eq!(
        quarantined.event.as_ref().map(|e| e.message_id.as_str()),
        Some("q-unknown")
    );
    let name = quarantined.name.clone();
    let by_name = |validate_only: bool| ReplayQuarantinedRequest {
        selection: Some(Selection::Names(QuarantinedEventNames {
            names: vec![name.clone()],
        })),
        validate_only,
        ..Default::default()
    };

    // Before the fix a replay changes nothing.
    let still = governance
        .replay_quarantined(by_name(false))
        .await?
        .into_inner();
    assert_eq!(still.still_quarantined_count, 1);
    assert_eq!(
        still.results[0].reason,
        QuarantineReason::UnknownEvent as i32
    );

    // Fix: the source's name becomes an alias, published as version 2.
    governance
        .update_canonical_event(UpdateCanonicalEventRequest {
            canonical_event: Some(CanonicalEvent {
                name: "tenants/quar/canonicalEvents/checkout_started".to_owned(),
                aliases: vec![EventAlias {
                    source_event_name: "begin_checkout".to_owned(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["aliases".to_owned()],
            }),
            ..Default::default()
        })
        .await?;
    governance
        .publish_dictionary_version(PublishDictionaryVersionRequest::default())
        .await?;

    // A dry run by filter sees the same event, without per-event results.
    let by_filter = governance
        .replay_quarantined(ReplayQuarantinedRequest {
            selection: Some(Selection::Filter(filter.clone())),
            validate_only: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!((by_filter.examined_count, by_filter.released_count), (1, 1));
    assert!(by_filter.results.is_empty());
    assert!(by_filter.next_page_token.is_empty());

    // A dry run says it would be released and changes nothing.
    let dry = governance
        .replay_quarantined(by_name(true))
        .await?
        .into_inner();
    assert_eq!(dry.released_count, 1);
    assert_eq!(dry.results[0].clean_sequence, 0);

    // Duplicates of one keyed replay sent together act once: each is
    // answered with the first call's reply or told to retry shortly.
    let keyed = ReplayQuarantinedRequest {
        request_id: "6f1c1f0e-2b7a-4c55-9d0e-4f7c1f2a9b10".to_owned(),
        ..by_name(false)
    };
    let mut duplicates = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (mut governance, keyed) = (governance.clone(), keyed.clone());
        duplicates.spawn(async move { governance.replay_quarantined(keyed).await });
    }
    let mut replies = Vec::new();
    for answer in duplicates.join_all().await {
        match answer {
            Ok(reply) => replies.push(reply.into_inner()),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Aborted, "{status:?}");
                let details = tonic_types::StatusExt::get_error_details(&status);
                assert!(details.retry_info().is_some(), "{status:?}");
            }
        }
    }
    let released = replies.first().cloned().expect("one duplicate acted");
    assert!(replies.iter().all(|reply| *reply == released));
    // A retry with the same key gets the first answer back.
    let retried = eventually(Duration::from_secs(10), || {
        let (mut governance, keyed) = (governance.clone(), keyed.clone());
        async move {
            match governance.replay_quarantined(keyed).await {
                Ok(reply) => Ok(Some(reply.into_inner())),
                Err(status) if status.code() == tonic::Code::Aborted => Ok(None),
                Err(status) => Err(status.into()),
            }
        }
    })
    .await?;
    assert_eq!(retried, released);
    assert_eq!(released.released_count, 1);
    assert_eq!(released.results[0].outcome, ReplayOutcome::Released as i32);
    assert!(released.results[0].clean_sequence > 0);
    let again = governance
        .replay_quarantined(by_name(false))
        .await?
        .into_inner();
    assert_eq!(again.released_count, 0);
    assert_eq!(again.results[0].outcome, ReplayOutcome::NotFound as i32);

    let log = clean_log_until(&app, &token, "quar", |latest| {
        latest.contains_key("q-unknown") && latest.contains_key("q-known")
    })
    .await?;
    let copies: Vec<_> = log.iter().filter(|e| e.message_id == "q-unknown").collect();
    assert_eq!(copies.len(), 1, "released exactly once");
    assert_eq!(copies[0].event_name, "checkout_started");
    assert_eq!(copies[0].source_event_name, "begin_checkout");
    assert_eq!(copies[0].dictionary_version, 2);
    assert_eq!(copies[0].sequence, released.results[0].clean_sequence);

    // It is no longer listed as quarantined, but as released.
    let open = governance
        .list_quarantined(ListQuarantinedRequest::default())
        .await?
        .into_inner();
    assert_eq!(open.total_size, 0);
    let done = governance
        .list_quarantined(ListQuarantinedRequest {
            states: vec![QuarantineState::Released as i32],
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(done.total_size, 1);
    assert_eq!(done.quarantined_events[0].replay_count, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reprocessing_reports_what_a_new_version_would_change() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("repro", SCOPES);
    let mut governance = strict_dictionary_with_two_events(&app, &token, "r").await?;
    clean_log_until(&app, &token, "repro", |latest| {
        latest.contains_key("r-known")
    })
    .await?;
    eventually(Duration::from_secs(60), || {
        let mut governance = governance.clone();
        async move {
            let page = governance
                .list_quarantined(ListQuarantinedRequest::default())
                .await?
                .into_inner();
            Ok((page.total_size == 1).then_some(()))
        }
    })
    .await?;
    governance
        .update_canonical_event(UpdateCanonicalEventRequest {
            canonical_event: Some(CanonicalEvent {
                name: "tenants/repro/canonicalEvents/checkout_started".to_owned(),
                aliases: vec![EventAlias {
                    source_event_name: "begin_checkout".to_owned(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec!["aliases".to_owned()],
            }),
            ..Default::default()
        })
        .await?;
    governance
        .publish_dictionary_version(PublishDictionaryVersionRequest::default())
        .await?;

    let range = hour_around_now();
    let open = governance
        .reprocess_range(ReprocessRangeRequest {
            received_time: Some(TimeRange {
                end_time: None,
                ..range
            }),
            ..Default::default()
        })
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(open, Some(tonic::Code::InvalidArgument));
    let done = run_job(
        &mut governance,
        ReprocessRangeRequest {
            received_time: Some(range),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(done.dictionary_version, 2);
    assert_eq!((done.total_events, done.examined_events), (2, 2));
    let diff = done.diff.unwrap_or_default();
    assert_eq!((diff.newly_clean_count, diff.unchanged_count), (1, 1));
    assert_eq!(diff.quarantined_before.len(), 1);
    assert_eq!(
        diff.quarantined_before[0].reason,
        QuarantineReason::UnknownEvent as i32
    );
    assert!(diff.quarantined_after.is_empty());
    assert_eq!(diff.samples.len(), 1);
    assert_eq!(diff.samples[0].message_id, "r-unknown");
    assert_eq!(diff.samples[0].event_name_after, "checkout_started");

    // A dry run changes nothing: the event is still quarantined.
    let still = governance
        .list_quarantined(ListQuarantinedRequest::default())
        .await?
        .into_inner();
    assert_eq!(still.total_size, 1);
    Ok(())
}

/// Publishes a dictionary knowing only `checkout_started`, then sends `{prefix}-known` under
/// that name and `{prefix}-unknown` as `begin_checkout`, which the dictionary does not know.
async fn strict_dictionary_with_two_events(
    app: &TestApp,
    token: &str,
    prefix: &str,
) -> anyhow::Result<Governance> {
    let mut governance = GovernanceServiceClient::new(app.channel(token)?);
    governance
        .create_canonical_event(CreateCanonicalEventRequest {
            canonical_event_id: "checkout_started".to_owned(),
            canonical_event: Some(CanonicalEvent::default()),
            ..Default::default()
        })
        .await?;
    governance
        .publish_dictionary_version(PublishDictionaryVersionRequest::default())
        .await?;
    let mut collection = CollectionServiceClient::new(app.channel(token)?);
    let at = recent_ms();
    collection
        .ingest_events(IngestEventsRequest {
            events: vec![
                sample_event(&format!("{prefix}-known"), 1, "checkout_started", at),
                sample_event(
                    &format!("{prefix}-unknown"),
                    1,
                    "begin_checkout",
                    at + 1_000,
                ),
            ],
        })
        .await?;
    Ok(governance)
}
