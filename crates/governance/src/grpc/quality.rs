//! The quality report RPC: the service's counts per source and day as the contract's rows.

use touchline_proto::governance::v1 as pb;

use crate::domain::ranges;
use crate::error::GovernanceError;
use crate::service::Governance;
use crate::store::quality::DayCounts;

/// `GetQualityReport`: see [`Governance::quality_counts`] for what is counted.
pub async fn report(
    governance: &Governance,
    tenant: &str,
    req: &pb::GetQualityReportRequest,
) -> Result<pb::GetQualityReportResponse, GovernanceError> {
    let days = ranges::report_days(&req.time_zone, &req.start_day, &req.end_day)?;
    let counts = governance
        .quality_counts(tenant, days, &req.sources)
        .await?;
    let row = |c: &DayCounts| row(c, counts.complete);
    Ok(pb::GetQualityReportResponse {
        rows: counts.rows.iter().map(row).collect(),
        source_totals: counts.by_source.iter().map(row).collect(),
        total: Some(row(&counts.total)),
    })
}

fn row(c: &DayCounts, complete: bool) -> pb::QualityReportRow {
    // Collection counts every valid arrival, duplicates included; before
    // governance has caught up, its count runs ahead of the outcomes.
    let received = match c.ingest_received {
        Some(n) if complete => n,
        _ => c.seen,
    };
    let duplicates_message_id =
        c.duplicates_message_id + if complete { c.ingest_duplicates } else { 0 };
    let duplicates = duplicates_message_id + c.duplicates_natural_key + c.restatements;
    #[allow(
        clippy::cast_precision_loss,
        reason = "a share of counts far below 2^52"
    )]
    let share = if c.clean == 0 {
        0.0
    } else {
        c.identified as f64 / c.clean as f64
    };
    pb::QualityReportRow {
        source: c.source.clone(),
        day: c
            .day
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        received,
        clean: c.clean,
        quarantined: c.quarantined,
        quarantined_by_reason: c
            .by_reason
            .iter()
            .map(|(reason, count)| pb::ReasonCount {
                reason: *reason,
                count: *count,
            })
            .collect(),
        duplicates,
        duplicates_message_id,
        duplicates_natural_key: c.duplicates_natural_key,
        restatements: c.restatements,
        late_events: c.late,
        timestamps_corrected: c.corrected,
        with_identifier: c.identified,
        identified_share: share,
        flagged: 0,
        identifiers_blocked: c.blocked_ids,
        identifiers_invalid: c.invalid_ids,
        includes_ingest_duplicates: complete,
    }
}
