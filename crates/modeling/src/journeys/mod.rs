//! Journey analytics: funnels over an in-memory projection of each tenant's event store.
//!
//! PostgreSQL stays the system of record. A tenant's projection is built from one snapshot
//! of `modeling.events` the first time the tenant is queried, then, before every query,
//! moved forward by what changed since the revision it reflects (migration 0009 gives every
//! change a revision in commit order): new and restated events, merges and splits (an event
//! moved to another person is a removal and an addition), retractions and erasures. A query
//! therefore reflects every change committed before it started; there is no background lag
//! to wait out. Queries run on the blocking pool under a read lock, on every core; a
//! catch-up takes the write lock for the time it takes to apply the changes.
//!
//! - `query`: the requests as the service takes them and the rules they must meet;
//! - `compile`: a valid request bound to a tenant's dictionaries;
//! - `view`: a tenant's projection, built and moved forward;
//! - `funnel`: running a funnel and shaping its figures;
//! - `encode`, `persons`: stored events and person ids as the projection keys them;
//! - `properties`: the event properties a tenant marks analysable, kept as text.

pub mod attribution;
mod budget;
mod cancel;
pub mod churn;
pub mod churn_pages;
pub mod churn_settings;
mod compile;
pub mod dropoffs;
mod encode;
pub mod funnel;
mod funnel_query;
pub mod lifecycle;
pub mod listings;
pub mod paths;
mod persons;
pub mod properties;
pub mod query;
pub mod retention;
pub mod segments;
mod view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

pub use cancel::Cancel;
pub use view::TenantView;

use crate::error::ModelingError;
use crate::store::journal::{self, JournalEvent};

/// Most changed rows one catch-up applies; past this the view is rebuilt instead.
const MAX_CATCH_UP: i64 = 200_000;
/// A view not moved forward for this long is rebuilt (removals are kept a day).
const REBUILD_AFTER: Duration = Duration::from_secs(6 * 3_600);
/// How long removals are kept in the store.
const KEEP_REMOVALS: Duration = Duration::from_secs(86_400);

#[derive(Debug, Default)]
struct Freshness {
    refreshed_at: Option<Instant>,
}

#[derive(Debug)]
struct Slot {
    view: Arc<RwLock<Option<TenantView>>>,
    refresh: tokio::sync::Mutex<Freshness>,
}

/// The projections of the tenants queried so far.
#[derive(Debug, Clone)]
pub struct Journeys {
    pool: PgPool,
    /// Person listings paged over one computation.
    pub listings: listings::Listings,
    tenants: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
    threads: usize,
    pruned_at: Arc<Mutex<Option<Instant>>>,
}

/// What a query runs with besides its view.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// The event names the tenant's dictionary defines (read only when the query names one
    /// the view has never stored).
    pub defined: Vec<String>,
    /// Threads the query may use.
    pub threads: usize,
    /// Raised when the caller is gone.
    pub cancel: Cancel,
    /// When the scope names a segment: the keys of its members the view knows.
    pub persons: Option<Arc<std::collections::HashSet<u64>>>,
}

impl RunContext {
    /// Whether the query looks at the person `key` (every person, unless the scope names a
    /// segment).
    pub fn admits(&self, key: u64) -> bool {
        self.persons
            .as_ref()
            .is_none_or(|members| members.contains(&key))
    }
}

/// A tenant's view, read-locked for one query.
pub type ViewGuard = OwnedRwLockReadGuard<Option<TenantView>, TenantView>;

fn internal(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> ModelingError {
    move |err| {
        tracing::error!(error = %err, what, "a journey task failed");
        ModelingError::Internal(what)
    }
}

impl Journeys {
    /// Projections over `pool`'s event store; queries use every core.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            listings: listings::Listings::default(),
            tenants: Arc::default(),
            threads: std::thread::available_parallelism().map_or(2, usize::from),
            pruned_at: Arc::default(),
        }
    }

    /// Threads a query runs on.
    pub fn threads(&self) -> usize {
        self.threads
    }

    fn slot(&self, tenant: &str) -> Arc<Slot> {
        let mut tenants = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tenants
            .entry(tenant.to_owned())
            .or_insert_with(|| {
                Arc::new(Slot {
                    view: Arc::new(RwLock::new(None)),
                    refresh: tokio::sync::Mutex::new(Freshness::default()),
                })
            })
            .clone()
    }

    /// The analysable paths (`properties.…`, `traits.…`) the tenant's settings mark.
    async fn analysable(&self, tenant: &str) -> Result<Vec<String>, ModelingError> {
        let mut paths =
            crate::store::model_settings::analysable_properties(&self.pool, tenant).await?;
        paths.retain(|path| properties::is_analysable_path(path));
        paths.truncate(touchline_projection::MAX_PROPERTIES);
        Ok(paths)
    }

    /// The tenant's view, moved forward to everything committed so far, keeping the
    /// properties its settings mark analysable now (a change of them rebuilds it).
    pub async fn current(&self, tenant: &str) -> Result<ViewGuard, ModelingError> {
        let slot = self.slot(tenant);
        {
            let mut freshness = slot.refresh.lock().await;
            let properties = self.analysable(tenant).await?;
            let kept = slot
                .view
                .read()
                .await
                .as_ref()
                .map(|v| v.properties.clone());
            let stale = kept.is_none_or(|kept| kept != properties)
                || freshness
                    .refreshed_at
                    .is_none_or(|at| at.elapsed() > REBUILD_AFTER);
            let caught_up = if stale {
                false
            } else {
                self.catch_up(tenant, &slot).await?
            };
            if !caught_up {
                let view = self.build(tenant, properties).await?;
                *slot.view.write().await = Some(view);
            }
            freshness.refreshed_at = Some(Instant::now());
        }
        self.prune_now_and_then().await;
        let guard = RwLock::read_owned(slot.view.clone()).await;
        OwnedRwLockReadGuard::try_map(guard, Option::as_ref)
            .map_err(|_| ModelingError::Internal("journey view"))
    }

    /// Applies the changes since the view's revision; false when the view must be rebuilt.
    /// A failed apply drops the view (its removals were done, its additions not), so the
    /// next query rebuilds rather than reading or retrying a half-applied change.
    async fn catch_up(&self, tenant: &str, slot: &Slot) -> Result<bool, ModelingError> {
        let Some(revision) = slot
            .view
            .read()
            .await
            .as_ref()
            .map(|v| v.positions.revision)
        else {
            return Ok(false);
        };
        let Some(changes) =
            journal::changes_since(&self.pool, tenant, revision, MAX_CATCH_UP).await?
        else {
            return Ok(false);
        };
        let mut guard = RwLock::write_owned(slot.view.clone()).await;
        tokio::task::spawn_blocking(move || {
            let applied = guard.as_mut().map(|view| view.apply(changes));
            match applied {
                Some(Ok(_)) => Ok(true),
                Some(Err(err)) => {
                    *guard = None;
                    Err(ModelingError::Projection(err))
                }
                None => Ok(false),
            }
        })
        .await
        .map_err(internal("journey catch-up"))?
    }

    /// Builds the tenant's view from one snapshot: the rows stream from PostgreSQL into a
    /// loader on the blocking pool, a few chunks in flight.
    async fn build(
        &self,
        tenant: &str,
        properties: Vec<String>,
    ) -> Result<TenantView, ModelingError> {
        let started = Instant::now();
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<JournalEvent>>(4);
        let threads = self.threads;
        let builder = tokio::task::spawn_blocking(move || {
            TenantView::build(
                std::iter::from_fn(|| receiver.blocking_recv()),
                properties,
                threads,
            )
        });
        let positions = journal::load(&self.pool, tenant, &sender).await;
        drop(sender);
        let built = builder.await.map_err(internal("journey build"))?;
        let mut view = built.map_err(ModelingError::Projection)?;
        view.positions = positions?;
        tracing::info!(
            events = view.projection.events(),
            persons = view.persons.len(),
            set_aside = view.set_aside,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "journey projection built"
        );
        Ok(view)
    }

    /// Forgets old removals, at most every ten minutes per process.
    async fn prune_now_and_then(&self) {
        {
            let mut pruned = self
                .pruned_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if pruned.is_some_and(|at| at.elapsed() < Duration::from_secs(600)) {
                return;
            }
            *pruned = Some(Instant::now());
        }
        if let Err(err) = journal::prune_removals(&self.pool, KEEP_REMOVALS).await {
            tracing::warn!(error = %err, "old event removals could not be pruned");
        }
    }
}
