//! The cleaning worker: tails collection's raw log from the cursors stored
//! here, cleans each batch under the tenant's active dictionary, and commits
//! clean records, quarantined records, the outcome ledger and the cursor
//! together.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message as _;
use sqlx::PgPool;
use touchline_proto::collection::v1::{RawEvent, TailRawEventsResponse};
use touchline_proto::common::v1::{PartitionCursor, TailSelector};
use touchline_proto::governance::v1::QuarantineReason;
use touchline_runtime::Shutdown;
use tracing::Instrument as _;

use crate::domain::clean::{Inputs, Quarantine, Violation, clean, from_timestamp_pb};
use crate::domain::dictionary::Dictionary;
use crate::domain::pii::{PrivacySettings, TenantKey};
use crate::sources::{SourceLookup, SourceRegistry};
use crate::store::publish::{Processed, Verdict, commit_batch};
use crate::store::{self, tenant};
use crate::upstream::Collection;

/// Why a worker session ended.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The raw log stream or the source registry failed.
    #[error("collection call: {0}")]
    Upstream(#[from] tonic::Status),
    /// Committing failed.
    #[error("committing clean events: {0}")]
    Store(#[from] sqlx::Error),
}

/// Governance settings that are not per tenant (config section `governance`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GovernanceSettings {
    /// Country calling code for phones without one, unless a tenant sets its own.
    pub default_country_code: String,
}

impl Default for GovernanceSettings {
    fn default() -> Self {
        Self {
            default_country_code: "86".to_owned(),
        }
    }
}

/// What cleaning one tenant's events depends on, loaded once per batch.
#[derive(Debug, Clone)]
pub struct TenantState {
    /// Active dictionary; `None` for pass-through.
    pub dictionary: Option<Arc<Dictionary>>,
    /// Privacy settings.
    pub privacy: PrivacySettings,
    /// Current key.
    pub key: TenantKey,
}

/// Loads tenant state, keeping parsed dictionaries per (tenant, version).
#[derive(Debug, Clone, Default)]
pub struct TenantStates {
    dictionaries: Arc<Mutex<HashMap<String, Arc<Dictionary>>>>,
}

impl TenantStates {
    /// The state of `tenant` under its active dictionary, or under `version`
    /// when it is non-zero (`None` when that version does not exist).
    pub async fn load(
        &self,
        pool: &PgPool,
        tenant_id: &str,
        version: i64,
        settings: &GovernanceSettings,
    ) -> Result<Option<TenantState>, sqlx::Error> {
        let active = tenant::active_version(pool, tenant_id).await?;
        let wanted = if version > 0 { version } else { active };
        let dictionary = if wanted == 0 {
            None
        } else {
            let cached = self
                .dictionaries
                .lock()
                .ok()
                .and_then(|c| c.get(tenant_id).filter(|d| d.version == wanted).cloned());
            match cached {
                Some(d) => Some(d),
                None => {
                    let Some(d) = tenant::dictionary(pool, tenant_id, wanted).await? else {
                        return Ok(None);
                    };
                    let d = Arc::new(d);
                    if wanted == active
                        && let Ok(mut c) = self.dictionaries.lock()
                    {
                        c.insert(tenant_id.to_owned(), d.clone());
                    }
                    Some(d)
                }
            }
        };
        Ok(Some(TenantState {
            dictionary,
            privacy: tenant::privacy_settings(pool, tenant_id, &settings.default_country_code)
                .await?,
            key: tenant::current_key(pool, tenant_id).await?,
        }))
    }
}

/// Cleans one raw event under `state`, fetching its source.
pub async fn process_raw(
    sources: &SourceRegistry,
    tenant_id: &str,
    state: &TenantState,
    raw: &RawEvent,
) -> Result<Processed, tonic::Status> {
    let event = raw.event.clone().unwrap_or_default();
    let received_at = raw.received_at.as_ref().and_then(from_timestamp_pb);
    let source_id = event.source.trim().to_owned();
    let verdict = match received_at {
        None => Verdict::Quarantined(single(
            QuarantineReason::MalformedPayload,
            "received_at",
            "the raw record lacks its receive time",
        )),
        Some(received_at) => match sources
            .get(tenant_id, &source_id, raw.source_revision)
            .await?
        {
            SourceLookup::Unknown(detail) => {
                Verdict::Quarantined(single(QuarantineReason::UnknownSource, "source", detail))
            }
            SourceLookup::Found(spec) => match clean(Inputs {
                event: &event,
                received_at,
                source: &spec,
                dictionary: state.dictionary.as_deref(),
                privacy: &state.privacy,
                key: &state.key,
            }) {
                Ok(c) => Verdict::Clean(Box::new(c)),
                Err(q) => Verdict::Quarantined(q),
            },
        },
    };
    Ok(Processed {
        raw_sequence: raw.sequence,
        message_id: event.message_id.clone(),
        source: source_id,
        source_event_name: event.event.clone(),
        received_at: received_at.unwrap_or_default(),
        source_revision: raw.source_revision,
        dictionary_version: state.dictionary.as_ref().map_or(0, |d| d.version),
        raw_event: event.encode_to_vec(),
        traceparent: touchline_telemetry::current_traceparent(),
        verdict,
    })
}

/// Quarantined events by reason, for the metrics (a batch refused by the store and committed
/// event by event may add a few more, counted where they are set aside).
fn count_quarantined(tenant: &str, reasons: &[QuarantineReason]) {
    let metrics = touchline_telemetry::metrics::pipeline();
    for reason in reasons {
        metrics.count_quarantined(tenant, reason.as_str_name(), 1);
    }
}

fn single(reason: QuarantineReason, field: &str, detail: impl Into<String>) -> Quarantine {
    Quarantine {
        violations: vec![Violation {
            reason,
            field: field.to_owned(),
            detail: detail.into(),
        }],
    }
}

/// Cleans the raw log into the clean log, for every tenant.
#[derive(Debug, Clone)]
pub struct CleaningWorker {
    pool: PgPool,
    collection: Collection,
    sources: SourceRegistry,
    states: TenantStates,
    settings: GovernanceSettings,
    batch_size: i32,
    status: touchline_pipeline::status::PipelineStatus,
}

impl CleaningWorker {
    /// A worker writing to `pool` and reading raw events and sources from
    /// `collection`.
    pub fn new(pool: PgPool, collection: Collection, settings: GovernanceSettings) -> Self {
        Self {
            pool,
            sources: SourceRegistry::new(collection.clone()),
            collection,
            states: TenantStates::default(),
            settings,
            batch_size: 500,
            status: touchline_pipeline::status::PipelineStatus::new(),
        }
    }

    /// Reports positions and errors into `status` (the process's shared one).
    pub fn with_status(mut self, status: touchline_pipeline::status::PipelineStatus) -> Self {
        self.status = status;
        self
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        touchline_pipeline::consumer::run(crate::RAW_LOG_CONSUMER, shutdown, &self.status, || {
            self.session()
        })
        .await;
    }

    async fn session(&self) -> Result<(), WorkerError> {
        let cursors = store::load_cursors(&self.pool, crate::RAW_LOG_CONSUMER)
            .await?
            .into_iter()
            .map(|(tenant, after_sequence)| PartitionCursor {
                tenant,
                after_sequence,
            })
            .collect();
        let mut stream = self
            .collection
            .tail_raw(TailSelector {
                cursors,
                all_tenants: true,
                max_batch_size: self.batch_size,
            })
            .await?;
        while let Some(batch) = stream.message().await? {
            self.process(batch).await?;
        }
        Ok(())
    }

    /// Commits a batch the store refused event by event, so that the one record it cannot
    /// take is quarantined with the store's reason and the rest flow on; the cursor moves to
    /// the end of the batch with the last of them. Returns how many were set aside here.
    async fn commit_one_by_one(
        &self,
        tenant: &str,
        processed: Vec<Processed>,
        last: i64,
    ) -> Result<usize, WorkerError> {
        let count = processed.len();
        let mut set_aside = 0;
        for (index, mut p) in processed.into_iter().enumerate() {
            let through = if index + 1 == count {
                last
            } else {
                p.raw_sequence
            };
            let one = std::slice::from_ref(&p);
            match commit_batch(&self.pool, tenant, one, crate::RAW_LOG_CONSUMER, through).await {
                Ok(()) => continue,
                Err(err) if touchline_db::classify(&err).is_about_the_record() => {
                    let code = match &err {
                        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
                        _ => None,
                    };
                    tracing::warn!(tenant, raw_sequence = p.raw_sequence, sqlstate = ?code, "the store refused an event; quarantining it");
                    p.verdict = Verdict::Quarantined(single(
                        QuarantineReason::MalformedPayload,
                        "event",
                        format!(
                            "the event store cannot hold this event (SQLSTATE {})",
                            code.as_deref().unwrap_or("unknown")
                        ),
                    ));
                    set_aside += 1;
                    commit_batch(
                        &self.pool,
                        tenant,
                        std::slice::from_ref(&p),
                        crate::RAW_LOG_CONSUMER,
                        through,
                    )
                    .await?;
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(set_aside)
    }

    #[tracing::instrument(name = "governance.clean_batch", skip_all, fields(service = "governance", tenant = %batch.tenant, events = batch.events.len(), lag))]
    async fn process(&self, batch: TailRawEventsResponse) -> Result<(), WorkerError> {
        let Some(last) = batch.events.last().map(|e| e.sequence) else {
            return Ok(());
        };
        tracing::Span::current().record("lag", batch.head_sequence - last);
        self.status
            .saw_head(crate::RAW_LOG_CONSUMER, &batch.tenant, batch.head_sequence);
        let Some(state) = self
            .states
            .load(&self.pool, &batch.tenant, 0, &self.settings)
            .await?
        else {
            return Err(WorkerError::Store(sqlx::Error::RowNotFound));
        };
        let mut processed = Vec::with_capacity(batch.events.len());
        let mut quarantined = 0usize;
        for raw in &batch.events {
            let span = tracing::info_span!(
                "governance.clean_event",
                service = "governance",
                message_id = tracing::field::Empty
            );
            if !raw.traceparent.is_empty() {
                touchline_telemetry::set_parent_from_traceparent(&span, &raw.traceparent);
            }
            let message_id = raw
                .event
                .as_ref()
                .map(|e| e.message_id.clone())
                .unwrap_or_default();
            span.record("message_id", message_id.as_str());
            let p = process_raw(&self.sources, &batch.tenant, &state, raw)
                .instrument(span)
                .await?;
            if matches!(p.verdict, Verdict::Quarantined(_)) {
                quarantined += 1;
            }
            processed.push(p);
        }
        let processed_reasons: Vec<QuarantineReason> = processed
            .iter()
            .filter_map(|p| match &p.verdict {
                Verdict::Quarantined(q) => Some(q.reason()),
                Verdict::Clean(_) => None,
            })
            .collect();
        match commit_batch(
            &self.pool,
            &batch.tenant,
            &processed,
            crate::RAW_LOG_CONSUMER,
            last,
        )
        .await
        {
            Ok(()) => {}
            Err(err) if touchline_db::classify(&err).is_about_the_record() => {
                tracing::warn!(tenant = %batch.tenant, error = %err, "the store refused a batch; committing its events one by one");
                quarantined += self
                    .commit_one_by_one(&batch.tenant, processed, last)
                    .await?;
            }
            Err(err) => return Err(err.into()),
        }
        count_quarantined(&batch.tenant, &processed_reasons);
        self.status
            .committed(crate::RAW_LOG_CONSUMER, &batch.tenant, last);
        self.status.recovered(crate::RAW_LOG_CONSUMER);
        if quarantined > 0 {
            tracing::info!(tenant = %batch.tenant, quarantined, "events quarantined");
        }
        Ok(())
    }
}
