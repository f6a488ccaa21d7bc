//! GetIngestCounts.

use chrono::{DateTime, TimeDelta, Utc};
use tonic::{Request, Response, Status};
use touchline_error::to_status;
use touchline_proto::collection::v1 as pb;

use super::{CollectionApi, timestamp};
use crate::committer::hour_of;
use crate::error::CollectionError;
use crate::store::counts;

/// Longest range one call may read.
const MAX_RANGE: TimeDelta = TimeDelta::days(31);

fn instant(field: &str, ts: &prost_types::Timestamp) -> Result<DateTime<Utc>, CollectionError> {
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
        .ok_or_else(|| CollectionError::invalid(field, "OUT_OF_RANGE", "not a valid instant"))
}

pub(super) async fn get_ingest_counts(
    api: &CollectionApi,
    request: Request<pb::GetIngestCountsRequest>,
) -> Result<Response<pb::GetIngestCountsResponse>, Status> {
    let principal = touchline_auth::principal(&request)?;
    let request = request.into_inner();
    let tenant = principal.tenant_for(&request.parent)?;
    let counts = read(api, &tenant, &request)
        .await
        .map_err(|err| to_status(&err))?;
    Ok(Response::new(pb::GetIngestCountsResponse { counts }))
}

async fn read(
    api: &CollectionApi,
    tenant: &str,
    request: &pb::GetIngestCountsRequest,
) -> Result<Vec<pb::IngestCount>, CollectionError> {
    let start = request
        .start_time
        .as_ref()
        .ok_or_else(|| CollectionError::invalid("start_time", "REQUIRED", "required"))
        .and_then(|ts| instant("start_time", ts))?;
    let end = match &request.end_time {
        Some(ts) => instant("end_time", ts)?,
        None => Utc::now(),
    };
    if end < start {
        return Err(CollectionError::invalid(
            "end_time",
            "BEFORE_START",
            "must not be before start_time",
        ));
    }
    if end - start > MAX_RANGE {
        return Err(CollectionError::invalid(
            "end_time",
            "RANGE_TOO_LONG",
            "at most 31 days after start_time",
        ));
    }
    let rows = counts::read(&api.pool, tenant, hour_of(start), end, &request.sources).await?;
    Ok(rows
        .into_iter()
        .map(|row| pb::IngestCount {
            source: row.delta.source,
            hour: Some(timestamp(row.hour)),
            received_count: row.delta.accepted + row.delta.duplicates,
            duplicate_count: row.delta.duplicates,
            accepted_count: row.delta.accepted,
            rejected_count: row.delta.rejected,
        })
        .collect())
}
