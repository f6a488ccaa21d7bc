//! The service layer: what each call does, free of any transport. It owns the orchestration
//! (read the draft, check, write; replay; reprocess; the quality ledger with collection's
//! counters) and every call of `store`; the gRPC adapter only authorises and converts, and the
//! request rules it applies live in `domain`.

mod dictionary;
mod keyed;
mod privacy;
mod quality;
mod quarantine;
mod reprocess;
mod update;

pub use dictionary::{
    CanonicalEvent, EventQuery, EventsPage, PublishRequest, Published, VersionsPage,
};
pub use keyed::WriteKey;
pub use privacy::StoredPrivacy;
pub use quality::QualityCounts;
pub use quarantine::{QuarantinePage, continues_after};
pub use update::EventUpdate;

use sqlx::PgPool;

use crate::error::GovernanceError;
use crate::ingest::IngestCounts;
use crate::replay::Replayer;
use crate::reprocess::Reprocessor;
use crate::sources::SourceRegistry;
use crate::store::{self, StoredCleanEvent};
use crate::upstream::Collection;
use crate::worker::GovernanceSettings;

/// How far cleaning has come for a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanPosition {
    /// Whether every raw event up to the position asked about has been cleaned.
    pub cleaned: bool,
    /// How far the cleaning worker has read the raw log.
    pub raw_cursor: i64,
    /// The tenant's newest clean record.
    pub clean_head: i64,
}

/// The governance service's state shared by every call.
#[derive(Debug, Clone)]
pub struct Governance {
    pool: PgPool,
    ingest: IngestCounts,
    replayer: Replayer,
    reprocessor: Reprocessor,
    /// Phones without a country code take this unless the tenant set one.
    default_country_code: String,
}

impl Governance {
    /// A service over `pool`; `collection` (carrying the pipeline token) serves the source
    /// registry and the ingest counters.
    pub fn new(pool: PgPool, collection: Collection, settings: GovernanceSettings) -> Self {
        let replayer = Replayer::new(
            pool.clone(),
            SourceRegistry::new(collection.clone()),
            settings.clone(),
        );
        let default_country_code = settings.default_country_code.clone();
        let reprocessor = Reprocessor::new(pool.clone(), collection.clone(), settings);
        Self {
            pool,
            ingest: IngestCounts::new(collection),
            replayer,
            reprocessor,
            default_country_code,
        }
    }

    /// Whether the tenant's raw events up to `raw_sequence` are cleaned, and where the clean
    /// log then stands.
    pub async fn clean_position(
        &self,
        tenant: &str,
        raw_sequence: i64,
    ) -> Result<CleanPosition, GovernanceError> {
        if raw_sequence < 0 {
            return Err(GovernanceError::invalid(
                "raw_sequence",
                "OUT_OF_RANGE",
                "must not be negative",
            ));
        }
        let (raw_cursor, clean_head) =
            store::clean_position(&self.pool, crate::RAW_LOG_CONSUMER, tenant).await?;
        Ok(CleanPosition {
            cleaned: raw_cursor >= raw_sequence,
            raw_cursor,
            clean_head,
        })
    }

    /// The newest clean sequence of each tenant (all tenants, or the named ones). The clean
    /// log's tail reports failures in its stream with its own wording, so the driver's error
    /// is handed back as it is.
    pub async fn clean_heads(
        &self,
        tenants: Option<&[String]>,
    ) -> Result<Vec<(String, i64)>, sqlx::Error> {
        store::heads(&self.pool, tenants).await
    }

    /// Up to `limit` clean records of the tenant after `after` (see [`Governance::clean_heads`]
    /// for the error).
    pub async fn clean_after(
        &self,
        tenant: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredCleanEvent>, sqlx::Error> {
        store::read_after(&self.pool, tenant, after, limit).await
    }
}
