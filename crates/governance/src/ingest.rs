//! The typed client of collection's ingest counters: what arrived per source
//! and UTC hour, including the message-id duplicates collection recognised
//! at ingest (they never reach the raw log, so governance cannot count them
//! itself). Used by the quality report.

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::clean::{from_timestamp_pb, timestamp_pb};
use crate::upstream::Collection;
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
    client: Collection,
}

impl IngestCounts {
    /// Counters read through `client`.
    pub fn new(client: Collection) -> Self {
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
            let counts = self
                .client
                .ingest_counts(tenant, timestamp_pb(from), timestamp_pb(to), sources)
                .await?;
            for c in counts {
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
}
