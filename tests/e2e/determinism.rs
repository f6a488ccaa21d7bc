//! The same input in the same order gives the same persons: the generated data set (with
//! family phones and recycled numbers planted) sent five times, each time to a fresh application,
//! groups the stored events into identical persons, whatever the pipeline's concurrency.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use touchline_proto::governance::v1::GetQualityReportRequest;
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::modeling::v1::CountEventsRequest;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_sim::{SendOptions, SimConfig, TemplateKind};
use touchline_testkit::{TestApp, eventually, token};

const SCOPES: &[&str] = &[
    "events:write",
    "sources:write",
    "sources:read",
    "models:read",
    "quality:read",
];

/// The stored events grouped by person: each group the sorted message ids of one person.
async fn persons_of_one_run() -> anyhow::Result<BTreeSet<Vec<String>>> {
    let app = TestApp::spawn().await?;
    let token = token("sim", SCOPES);
    let mut opts = SendOptions::new(app.addr().to_string(), token.clone());
    opts.progress_every = None;
    // Many households share or pass on a phone, so the order in which identity sees them
    // decides who holds what.
    let mut cfg = SimConfig::new(TemplateKind::Retail, 300, 11);
    cfg.phones.family = 0.10;
    cfg.phones.recycled = 0.10;
    let sent = touchline_sim::send(cfg, &opts).await?;
    let governance = GovernanceServiceClient::new(app.channel(&token)?);
    let clean = eventually(Duration::from_secs(120), || {
        let mut governance = governance.clone();
        async move {
            let total = governance
                .get_quality_report(GetQualityReportRequest::default())
                .await?
                .into_inner()
                .total
                .unwrap_or_default();
            let accounted = total.clean + total.quarantined + total.duplicates;
            Ok(
                (total.received >= sent.accepted as i64 && accounted >= total.received)
                    .then_some(total.clean - total.restatements),
            )
        }
    })
    .await?;
    let modeling = ModelingServiceClient::new(app.channel(&token)?);
    eventually(Duration::from_secs(120), || {
        let mut modeling = modeling.clone();
        async move {
            let stored = modeling
                .count_events(CountEventsRequest::default())
                .await?
                .into_inner()
                .total_events;
            Ok((stored >= clean).then_some(()))
        }
    })
    .await?;
    let mut modeling = modeling;
    let mut by_person: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in touchline_e2e::stored_events(&mut modeling).await? {
        by_person
            .entry(event.person_id)
            .or_default()
            .push(event.message_id);
    }
    app.stop().await;
    Ok(by_person
        .into_iter()
        .filter(|(person, _)| !person.is_empty())
        .map(|(_, mut ids)| {
            ids.sort();
            ids
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_input_gives_the_same_persons_run_after_run() -> anyhow::Result<()> {
    crate::init();
    // Five runs, as the acceptance asks: each a fresh application fed the same input.
    let first = persons_of_one_run().await?;
    assert!(first.len() > 100, "{} persons", first.len());
    for run in 2..=5 {
        let again = persons_of_one_run().await?;
        let differing = first.symmetric_difference(&again).count();
        assert_eq!(
            differing, 0,
            "{differing} person groups differ between run 1 and run {run}"
        );
    }
    Ok(())
}
