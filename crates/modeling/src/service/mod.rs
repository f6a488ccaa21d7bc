//! The service layer: what each call does, free of any transport. It owns the reads of the
//! event store, the read-your-writes wait and the replay of dead letters; the gRPC adapter only
//! authorises and converts.

mod activation;
mod attribution;
mod churn;
mod exports;
mod journeys;
mod outputs;
mod replay;
mod resource_id;
mod segments;
mod visibility;

pub use activation::{
    DefinitionInput, DeliveryWorker, DestinationView, NewDefinition, NewDestination, Replay,
    TestDelivery, WebhookOptions,
};
pub use attribution::Attribution;
pub use churn::{ChurnScores, ChurnScoresPage, RfmPage, RfmQuery, SettingsUpdate};
pub use exports::{MAX_EXPORT_TYPES, check_export_types};
pub use replay::{ReplayOutcome, ReplayResult};
pub use segments::{
    ChangesPage, MembersPage, NewSegment, Preview, SegmentInput, SegmentReply, SegmentSignals,
    SegmentUpdate, SegmentWorker,
};
pub use visibility::MAX_WAIT;

use sqlx::PgPool;

use crate::error::ModelingError;
use crate::journeys::Journeys;
use crate::resolve::Resolver;
use crate::store::dead_letters::{self, StoredDeadLetter};
use crate::store::{self, Counts, StoredEvent};
use crate::upstream::{Governance, Identity};

/// Per-channel and per-event counts with their totals.
#[derive(Debug, Clone, Default)]
pub struct EventCounts {
    /// Stored events.
    pub total_events: i64,
    /// Distinct persons among them.
    pub total_persons: i64,
    /// Per channel.
    pub by_channel: Counts,
    /// Per canonical event.
    pub by_event: Counts,
}

/// The raw-log position a read must reflect, and how long its caller will wait for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Freshness {
    /// The position, when the read must wait for one.
    pub min_raw: Option<i64>,
    /// What is left of the caller's deadline, when it has one.
    pub deadline: Option<std::time::Duration>,
}

/// A read and the clean-log position it reflects.
#[derive(Debug, Clone)]
pub struct AtPosition<T> {
    /// What was read.
    pub value: T,
    /// Every clean event up to this sequence was applied or set aside when it was read.
    pub clean_sequence: i64,
}

/// The modeling service's state shared by every call.
#[derive(Debug, Clone)]
pub struct Modeling {
    pool: PgPool,
    governance: Option<Governance>,
    resolver: Option<Resolver>,
    identity: Option<Identity>,
    journeys: Journeys,
    churn: churn::ChurnCache,
    segment_signals: SegmentSignals,
    webhooks: WebhookOptions,
}

impl Modeling {
    /// A service over `pool` alone: reads that wait for a position, and replays, answer
    /// UNAVAILABLE until [`Modeling::with_upstreams`] gives it governance and identity.
    pub fn new(pool: PgPool) -> Self {
        Self {
            journeys: Journeys::new(pool.clone()),
            pool,
            governance: None,
            resolver: None,
            identity: None,
            churn: churn::ChurnCache::default(),
            segment_signals: SegmentSignals::default(),
            webhooks: WebhookOptions::default(),
        }
    }

    /// Reads positions from `governance` and resolves replayed events through `identity`.
    pub fn with_upstreams(mut self, governance: Governance, identity: Identity) -> Self {
        self.governance = Some(governance);
        self.resolver = Some(Resolver::new(identity.clone()));
        self.identity = Some(identity);
        self
    }

    /// Calls webhook endpoints as `options` allow.
    pub fn with_webhooks(mut self, options: WebhookOptions) -> Self {
        self.webhooks = options;
        self
    }

    /// The worker that delivers this service's webhooks.
    pub fn delivery_worker(&self) -> DeliveryWorker {
        DeliveryWorker::new(self.clone())
    }

    /// The worker that keeps this service's segments current.
    pub fn segment_worker(&self) -> SegmentWorker {
        SegmentWorker::new(self.clone())
    }

    /// The tenant's counts, once the store reflects `min_raw` when given.
    pub async fn count_events(
        &self,
        tenant: &str,
        fresh: Freshness,
    ) -> Result<AtPosition<EventCounts>, ModelingError> {
        let clean_sequence = self.reflecting(tenant, fresh).await?;
        let (total_events, total_persons, by_channel, by_event) =
            store::count_events(&self.pool, tenant).await?;
        Ok(AtPosition {
            value: EventCounts {
                total_events,
                total_persons,
                by_channel,
                by_event,
            },
            clean_sequence,
        })
    }

    /// Up to `limit` stored events after `after`, once the store reflects `min_raw` when given.
    pub async fn list_events(
        &self,
        tenant: &str,
        after: i64,
        limit: i64,
        fresh: Freshness,
    ) -> Result<AtPosition<Vec<StoredEvent>>, ModelingError> {
        let clean_sequence = self.reflecting(tenant, fresh).await?;
        let events = store::list_events(&self.pool, tenant, after, limit).await?;
        Ok(AtPosition {
            value: events,
            clean_sequence,
        })
    }

    /// Up to `limit` dead letters after `after`, oldest first.
    pub async fn list_dead_letters(
        &self,
        tenant: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredDeadLetter>, ModelingError> {
        Ok(dead_letters::list(&self.pool, tenant, after, limit).await?)
    }

    /// Where the store stands: waits for the position first when one is given.
    async fn reflecting(&self, tenant: &str, fresh: Freshness) -> Result<i64, ModelingError> {
        match fresh.min_raw {
            Some(raw) => {
                let governance = self.governance.as_ref().ok_or(ModelingError::Upstream {
                    service: "governance",
                    code: tonic::Code::Unavailable,
                })?;
                visibility::wait_until_reflected(
                    &self.pool,
                    governance,
                    tenant,
                    raw,
                    fresh.deadline,
                )
                .await
            }
            None => Ok(store::cursor(&self.pool, crate::CLEAN_LOG_CONSUMER, tenant).await?),
        }
    }
}
