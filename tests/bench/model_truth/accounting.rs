//! Where the accepted events went: governance's quality report (clean, quarantined by first
//! reason, duplicates by kind) next to what the event store holds and what it set aside, so
//! a difference between two runs of the same seed can be placed at a stage.

use std::collections::BTreeMap;

use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::governance::v1::{GetQualityReportRequest, QuarantineReason};
use touchline_proto::modeling::v1::ListDeadLettersRequest;

use super::Modeling;

/// A channel to governance with the run's credentials.
pub(crate) type Governance = tonic::service::interceptor::InterceptedService<
    tonic::transport::Channel,
    touchline_runtime::client::CallCredentials,
>;

/// Prints the fate of every event governance received, and the store's side of the clean ones.
pub(crate) async fn print(
    governance: Governance,
    modeling: &mut Modeling,
    stored: i64,
) -> anyhow::Result<()> {
    let mut governance = GovernanceServiceClient::new(governance);
    let total = governance
        .get_quality_report(GetQualityReportRequest::default())
        .await?
        .into_inner()
        .total
        .unwrap_or_default();
    let reasons: Vec<String> = total
        .quarantined_by_reason
        .iter()
        .map(|r| {
            let name = QuarantineReason::try_from(r.reason)
                .map_or_else(|_| r.reason.to_string(), |n| n.as_str_name().to_owned());
            format!("{name} {}", r.count)
        })
        .collect();
    println!(
        "where they went: {} received, {} clean, {} quarantined ({}), {} duplicates ({} by message id, {} by natural key, {} restatements)",
        total.received,
        total.clean,
        total.quarantined,
        reasons.join(", "),
        total.duplicates,
        total.duplicates_message_id,
        total.duplicates_natural_key,
        total.restatements
    );
    let mut letters: BTreeMap<String, i64> = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = modeling
            .list_dead_letters(ListDeadLettersRequest {
                page_size: 1_000,
                page_token,
                ..ListDeadLettersRequest::default()
            })
            .await?
            .into_inner();
        for letter in page.dead_letters {
            *letters.entry(letter.reason).or_default() += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let set_aside: i64 = letters.values().sum();
    let letters: Vec<String> = letters.iter().map(|(r, n)| format!("{r} {n}")).collect();
    println!(
        "  the store: {stored} stored, {set_aside} set aside ({}), {} clean events in neither",
        letters.join(", "),
        total.clean - stored - set_aside
    );
    Ok(())
}
