//! What reporting composes, free of transport: a tenant's counts read from modeling, with
//! each row's share of the total.

use touchline_proto::modeling::v1::EventCount;
use touchline_proto::reporting::v1 as pb;

use crate::error::ReportingError;
use crate::shares::share;
use crate::upstream::Modeling;

/// The reporting service over its upstream.
#[derive(Debug, Clone)]
pub struct Reporting {
    modeling: Modeling,
}

impl Reporting {
    /// Reporting reading from `modeling`.
    pub fn new(modeling: Modeling) -> Self {
        Self { modeling }
    }

    /// `tenant`'s event counts by channel and by event, each with its share.
    pub async fn event_counts(
        &self,
        tenant: &str,
    ) -> Result<pb::GetEventCountsResponse, ReportingError> {
        let counts = self.modeling.count_events(tenant).await?;
        let total = counts.total_events;
        Ok(pb::GetEventCountsResponse {
            total_events: total,
            total_persons: counts.total_persons,
            by_channel: rows(counts.by_channel, total),
            by_event: rows(counts.by_event, total),
        })
    }
}

fn rows(counts: Vec<EventCount>, total: i64) -> Vec<pb::CountRow> {
    counts
        .into_iter()
        .map(|c| pb::CountRow {
            share: share(c.events, total),
            key: c.key,
            events: c.events,
            persons: c.persons,
        })
        .collect()
}
