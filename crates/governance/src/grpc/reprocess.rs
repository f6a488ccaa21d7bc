//! `ReprocessRange` and `GetReprocessJob`.

use touchline_proto::governance::v1 as pb;

use crate::domain::clean::{from_timestamp_pb, timestamp_pb};
use crate::domain::{names, ranges};
use crate::error::GovernanceError;
use crate::reprocess::JobSpec;
use crate::service::Governance;
use crate::store::reprocess::JobRow;

/// `ReprocessRange`.
pub async fn start(
    governance: &Governance,
    tenant: &str,
    creator: &str,
    req: &pb::ReprocessRangeRequest,
) -> Result<pb::ReprocessRangeResponse, GovernanceError> {
    let spec = job_spec(creator, req)?;
    let job = governance.start_reprocess(tenant, spec).await?;
    Ok(pb::ReprocessRangeResponse {
        reprocess_job: Some(to_pb(tenant, &job)),
    })
}

/// The request as a job, checked.
fn job_spec(creator: &str, req: &pb::ReprocessRangeRequest) -> Result<JobSpec, GovernanceError> {
    let range = req.received_time.unwrap_or_default();
    let (start, end) = ranges::reprocess_range(
        range.start_time.as_ref().and_then(from_timestamp_pb),
        range.end_time.as_ref().and_then(from_timestamp_pb),
    )?;
    if req.dictionary_version < 0 {
        return Err(GovernanceError::invalid(
            "dictionary_version",
            "INVALID_VERSION",
            "must not be negative",
        ));
    }
    let apply = match pb::ReprocessMode::try_from(req.mode) {
        Ok(pb::ReprocessMode::Unspecified | pb::ReprocessMode::DryRun) => false,
        Ok(pb::ReprocessMode::Apply) => true,
        Err(_) => {
            return Err(GovernanceError::invalid(
                "mode",
                "INVALID_MODE",
                "not a reprocess mode",
            ));
        }
    };
    let request_id = req.request_id.trim();
    if !request_id.is_empty() && uuid::Uuid::parse_str(request_id).is_err() {
        return Err(GovernanceError::invalid(
            "request_id",
            "INVALID_REQUEST_ID",
            "not a UUID",
        ));
    }
    let mut sources: Vec<String> = req
        .sources
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    sources.sort();
    sources.dedup();
    Ok(JobSpec {
        start,
        end,
        sources,
        dictionary_version: req.dictionary_version,
        apply,
        creator: creator.to_owned(),
        request_id: (!request_id.is_empty()).then(|| request_id.to_owned()),
    })
}

/// `GetReprocessJob`.
pub async fn get(
    governance: &Governance,
    tenant: &str,
    req: &pb::GetReprocessJobRequest,
) -> Result<pb::GetReprocessJobResponse, GovernanceError> {
    let id = names::reprocess_job_id(tenant, &req.name)?;
    let job = governance
        .reprocess_job(tenant, id)
        .await?
        .ok_or_else(|| GovernanceError::NotFound(req.name.clone()))?;
    Ok(pb::GetReprocessJobResponse {
        reprocess_job: Some(to_pb(tenant, &job)),
    })
}

fn to_pb(tenant: &str, job: &JobRow) -> pb::ReprocessJob {
    use prost::Message as _;
    pb::ReprocessJob {
        name: format!("tenants/{tenant}/reprocessJobs/{}", job.job_id),
        state: i32::from(job.state),
        mode: i32::from(job.mode),
        received_time: Some(touchline_proto::common::v1::TimeRange {
            start_time: Some(timestamp_pb(job.range_start)),
            end_time: Some(timestamp_pb(job.range_end)),
        }),
        sources: job.sources.clone(),
        dictionary_version: job.dictionary_version,
        total_events: job.total_events,
        examined_events: job.examined_events,
        diff: job
            .diff
            .as_deref()
            .and_then(|b| pb::ReprocessDiff::decode(b).ok()),
        error: job.error.clone(),
        create_time: Some(timestamp_pb(job.created_at)),
        complete_time: job.completed_at.map(timestamp_pb),
        creator: job.creator.clone(),
    }
}
