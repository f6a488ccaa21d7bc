//! The typed client of collection's ingest counters: what arrived per source
//! and UTC hour, including the message-id duplicates collection recognised
//! at ingest (they never reach the raw log, so governance cannot count them
//! itself). Used by the quality report.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tonic::Code;
use touchline_proto::collection::v1::{GetIngestCountsRequest, IngestCount};

use crate::domain::clean::{from_timestamp_pb, timestamp_pb};
use crate::worker::CollectionClient;

const DEADLINE: Duration = Duration::from_secs(10);
const ATTEMPTS: u32 = 3;
/// The longest range one call may ask for (collection allows 31 days).
const WINDOW: TimeDelta = TimeDelta::days(30);

/// What arrived from one source in one UTC hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourCount {
    /// Source id as events carried it.
    pub source: String,
    /// Start of the hour.
    pub hour: DateTime<Utc>,
    /// Valid events received (accepted plus duplicates).
    pub received: i64,
    /// Message-id duplicates recognised at ingest.
    pub duplicates: i64,
}

/// Reads ingest counters through a collection client carrying the
/// pipeline token.
#[derive(Debug, Clone)]
pub struct IngestCounts {
    client: CollectionClient,
}

impl IngestCounts {
    /// Counters read through `client`.
    pub fn new(client: CollectionClient) -> Self {
        Self { client }
    }

    /// The counters of `tenant` for hours in `[start, end)`, only `sources`
    /// when not empty; split into calls of at most 30 days.
    pub async fn read(
        &self,
        tenant: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        sources: &[String],
    ) -> Result<Vec<HourCount>, tonic::Status> {
        let mut out = Vec::new();
        let mut from = start;
        while from < end {
            let to = (from + WINDOW).min(end);
            for c in self.call(tenant, from, to, sources).await? {
                let Some(hour) = c.hour.as_ref().and_then(from_timestamp_pb) else {
                    continue;
                };
                out.push(HourCount {
                    source: c.source,
                    hour,
                    received: c.received_count,
                    duplicates: c.duplicate_count,
                });
            }
            from = to;
        }
        Ok(out)
    }

    async fn call(
        &self,
        tenant: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        sources: &[String],
    ) -> Result<Vec<IngestCount>, tonic::Status> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = tonic::Request::new(GetIngestCountsRequest {
                parent: format!("tenants/{tenant}"),
                start_time: Some(timestamp_pb(start)),
                end_time: Some(timestamp_pb(end)),
                sources: sources.to_vec(),
            });
            request.set_timeout(DEADLINE);
            match self.client.clone().get_ingest_counts(request).await {
                Ok(r) => return Ok(r.into_inner().counts),
                Err(status)
                    if attempt < ATTEMPTS
                        && matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) =>
                {
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(status) => return Err(status),
            }
        }
    }
}
