//! `ReprocessRange` and `GetReprocessJob`.

use touchline_error::FieldViolation;
use touchline_proto::governance::v1 as pb;

use crate::domain::clean::{from_timestamp_pb, timestamp_pb};
use crate::error::GovernanceError;
use crate::reprocess::{JobSpec, Reprocessor};
use crate::store::reprocess::{self as store, JobRow};

/// The longest range one job may cover.
const MAX_DAYS: i64 = 400;

fn invalid(field: &str, reason: &'static str, description: &str) -> GovernanceError {
    GovernanceError::Invalid(vec![FieldViolation::new(field, reason, description)])
}

/// `ReprocessRange`.
pub async fn start(
    reprocessor: &Reprocessor,
    tenant: &str,
    creator: &str,
    req: &pb::ReprocessRangeRequest,
) -> Result<pb::ReprocessRangeResponse, GovernanceError> {
    let range = req.received_time.unwrap_or_default();
    let bound = |ts: Option<&prost_types::Timestamp>, field: &str| {
        ts.and_then(from_timestamp_pb).ok_or_else(|| {
            invalid(
                &format!("received_time.{field}"),
                "REQUIRED",
                "both ends of the range are required",
            )
        })
    };
    let start = bound(range.start_time.as_ref(), "start_time")?;
    let end = bound(range.end_time.as_ref(), "end_time")?;
    if end <= start {
        return Err(invalid(
            "received_time.end_time",
            "INVALID_RANGE",
            "must be after start_time",
        ));
    }
    if end - start > chrono::TimeDelta::days(MAX_DAYS) {
        return Err(invalid(
            "received_time",
            "RANGE_TOO_LONG",
            "at most 400 days",
        ));
    }
    if req.dictionary_version < 0 {
        return Err(invalid(
            "dictionary_version",
            "INVALID_VERSION",
            "must not be negative",
        ));
    }
    let apply = match pb::ReprocessMode::try_from(req.mode) {
        Ok(pb::ReprocessMode::Unspecified | pb::ReprocessMode::DryRun) => false,
        Ok(pb::ReprocessMode::Apply) => true,
        Err(_) => return Err(invalid("mode", "INVALID_MODE", "not a reprocess mode")),
    };
    let request_id = req.request_id.trim();
    if !request_id.is_empty() && uuid::Uuid::parse_str(request_id).is_err() {
        return Err(invalid("request_id", "INVALID_REQUEST_ID", "not a UUID"));
    }
    let mut sources: Vec<String> = req
        .sources
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    sources.sort();
    sources.dedup();
    let job = reprocessor
        .start(
            tenant,
            JobSpec {
                start,
                end,
                sources,
                dictionary_version: req.dictionary_version,
                apply,
                creator: creator.to_owned(),
                request_id: (!request_id.is_empty()).then(|| request_id.to_owned()),
            },
        )
        .await?;
    Ok(pb::ReprocessRangeResponse {
        reprocess_job: Some(to_pb(tenant, &job)),
    })
}

/// `GetReprocessJob`.
pub async fn get(
    pool: &sqlx::PgPool,
    tenant: &str,
    req: &pb::GetReprocessJobRequest,
) -> Result<pb::GetReprocessJobResponse, GovernanceError> {
    let id = req
        .name
        .strip_prefix(&format!("tenants/{tenant}/reprocessJobs/"))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            invalid(
                "name",
                "INVALID_NAME",
                "expected tenants/{tenant}/reprocessJobs/{reprocess_job}",
            )
        })?;
    let job = store::get(pool, tenant, id, crate::reprocess::ORPHANED_AFTER)
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
