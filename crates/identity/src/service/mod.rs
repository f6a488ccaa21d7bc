//! The service layer: the cache protocol and the transactions, free of any
//! transport. `write` holds one transaction's writes once a plan holds.
//!
//! Resolving a batch: every identifier is looked up in Redis with one MGET;
//! an item whose identifiers are all cached and agree is answered from
//! there (following the batch's own merges), unless it carries a phone with
//! its instant: that use must be recorded, and who the number names depends
//! on the instant (see `timeline`). The rest is planned against PostgreSQL:
//! first optimistically without locks (most batches change nothing and
//! stop there), otherwise in a transaction that locks the persons involved,
//! re-reads their part of the graph, plans again and writes links, merges,
//! the change log, the audit and the cache invalidations (outbox) together. A concurrent writer
//! that got in between makes the transaction roll back and plan again. Only
//! after commit is the cache refilled, with versions that keep a slow refill
//! from undoing a later move.

mod admin;
mod planner;
mod relay;
mod write;

pub use admin::*;
pub use relay::{OutboxRelay, SingleFlight};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio::sync::Notify;
use touchline_db::DbErrorKind;
use uuid::Uuid;

use crate::cache::IdentityCache;
use crate::domain::{self, IdentifierKey, KeyMap, ResolveItem};
use crate::error::IdentityError;
use crate::graph::{self, GraphPlan, GraphView, Options, Outcome};
use crate::rules::{CompiledRules, Rules};
use crate::store;
use crate::timeline;
use planner::Planner;

/// How many times a batch is re-planned after losing a race before the call
/// gives up with ABORTED.
pub const MAX_ATTEMPTS: u32 = 8;

/// Who made a change, for the audit and the change log.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// The token subject (`pipeline` for automatic decisions is implied by
    /// the rule, not by this field).
    pub subject: String,
    /// Source system named by the call.
    pub source: String,
    /// Reason given by the caller.
    pub reason: String,
    /// W3C trace context of the call.
    pub traceparent: String,
}

/// The identity service's state shared by every call.
#[derive(Debug, Clone)]
pub struct Identity {
    pool: PgPool,
    cache: Option<IdentityCache>,
    relay_wake: Arc<Notify>,
    flights: Arc<SingleFlight>,
}

/// A batch's answers and the decisions behind them.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// One per item.
    pub outcomes: Vec<Outcome>,
    /// What was decided (empty when answered from the cache).
    pub plan: GraphPlan,
    /// Audit record ids, one per merge then one per refusal of the plan.
    pub decisions: Vec<Uuid>,
    /// Review items opened or fed, per refusal of the plan.
    pub review_items: Vec<Option<Uuid>>,
    /// Owners and versions read by a read-only plan (what the cache may be
    /// refilled with); `None` after writes, whose results are re-read.
    pub versions: Option<HashMap<IdentifierKey, store::Owner>>,
}

impl Identity {
    /// The service over `pool` (migrated), with Redis in front when `cache`
    /// is given.
    pub fn new(pool: PgPool, cache: Option<IdentityCache>) -> Self {
        Self {
            pool,
            cache,
            relay_wake: Arc::new(Notify::new()),
            flights: Arc::new(SingleFlight::default()),
        }
    }

    /// The database pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The relay that carries this service's cache invalidations to Redis.
    pub fn relay(&self) -> OutboxRelay {
        OutboxRelay::new(
            self.pool.clone(),
            self.cache.clone(),
            Arc::clone(&self.relay_wake),
        )
    }

    /// The tenant's rules, or the defaults.
    pub async fn rules(&self, tenant: &str) -> Result<Rules, IdentityError> {
        let mut conn = self.pool.acquire().await?;
        Ok(store::admin::load_rules(&mut conn, tenant)
            .await?
            .unwrap_or_default())
    }

    /// Resolves `items` for `tenant`, one outcome per item in order.
    pub async fn batch_resolve(
        &self,
        tenant: &str,
        items: &[ResolveItem],
        options: Options,
        actor: &Actor,
    ) -> Result<Resolved, IdentityError> {
        if items.is_empty() {
            return Ok(Resolved::default());
        }
        let cached = match (&self.cache, options.explicit) {
            (Some(cache), false) => {
                let answerable = items.iter().filter(|item| !timeline::records_use(item));
                cache
                    .get_many(tenant, &domain::distinct_keys(answerable))
                    .await
            }
            _ => KeyMap::default(),
        };
        let mut results: Vec<Option<Outcome>> = items
            .iter()
            .map(|item| {
                if timeline::records_use(item) {
                    return None;
                }
                domain::cached_answer(item, &cached).map(Outcome::resolved)
            })
            .collect();
        let pending: Vec<usize> = (0..items.len()).filter(|&i| results[i].is_none()).collect();
        tracing::Span::current().record("cache_hits", items.len() - pending.len());
        let mut resolved = Resolved::default();
        if !pending.is_empty() {
            let pending_items: Vec<&ResolveItem> =
                pending.iter().filter_map(|&i| items.get(i)).collect();
            resolved = self
                .resolve_in_store(tenant, &pending_items, options, actor)
                .await?;
            // An answer the cache gave names the person the batch's own
            // merges leave it in, like every planned answer.
            let survivors = resolved.plan.survivors();
            for outcome in results.iter_mut().flatten() {
                if let Some(survivor) = outcome.person_id.and_then(|p| survivors.get(&p)) {
                    outcome.person_id = Some(*survivor);
                }
            }
            for (&i, outcome) in pending.iter().zip(&resolved.outcomes) {
                results[i] = Some(*outcome);
            }
            let versions = resolved.versions.take();
            self.refill(
                tenant,
                &domain::distinct_keys(pending_items.iter().copied()),
                &cached,
                versions,
            )
            .await;
        }
        resolved.outcomes = results.into_iter().flatten().collect();
        Ok(resolved)
    }

    /// Caches the owners of `keys` that differ from what Redis returned:
    /// those a read-only plan read, or (after writes) re-read after commit.
    async fn refill(
        &self,
        tenant: &str,
        keys: &[&IdentifierKey],
        cached: &KeyMap<'_, Uuid>,
        versions: Option<HashMap<IdentifierKey, store::Owner>>,
    ) {
        let Some(cache) = &self.cache else { return };
        let owners = match versions {
            Some(versions) => Ok(versions),
            None => match self.pool.acquire().await {
                Ok(mut conn) => store::lookup(&mut conn, tenant, keys).await.map(|found| {
                    found
                        .into_iter()
                        .map(|(key, (known, version))| {
                            let owner = store::Owner {
                                person_id: known.person_id,
                                version,
                                contested: is_contested(&known),
                            };
                            (key, owner)
                        })
                        .collect()
                }),
                Err(err) => Err(err),
            },
        };
        match owners {
            Ok(owners) => {
                // A contested value stays out of the cache: whether it
                // still names its owner is the rules' call (a shared device
                // names nobody).
                let entries = owners
                    .iter()
                    .filter(|(_, owner)| !owner.contested)
                    .filter(|(key, owner)| cached.get(*key) != Some(&owner.person_id))
                    .map(|(key, owner)| (key, owner.person_id, owner.version));
                cache.fill_many(tenant, entries).await;
                // A value this call found cached but contested (it just
                // became shared) is dropped now rather than when the outbox
                // relay gets to it, so the next call cannot be answered
                // with its former owner. The relay's tombstone is the same.
                let stale = owners
                    .iter()
                    .filter(|(key, owner)| owner.contested && cached.contains_key(*key))
                    .map(|(key, owner)| (tenant, key, owner.version));
                if let Err(error) = cache.invalidate_many(stale).await {
                    tracing::debug!(error = %error, "early invalidation skipped; the relay will do it");
                }
            }
            Err(err) => tracing::debug!(error = %err, "cache refill skipped"),
        }
    }

    /// Drops `keys` from the cache now, at the versions PostgreSQL holds,
    /// rather than when the outbox relay gets to them (a value with a
    /// holding history is never cached again). Best effort: the relay's
    /// tombstones are the same.
    async fn drop_cached(&self, tenant: &str, keys: &[&IdentifierKey]) {
        let Some(cache) = &self.cache else { return };
        if keys.is_empty() {
            return;
        }
        let found = match self.pool.acquire().await {
            Ok(mut conn) => store::lookup(&mut conn, tenant, keys).await,
            Err(err) => Err(err),
        };
        match found {
            Ok(found) => {
                let stale = found
                    .iter()
                    .map(|(key, (_, version))| (tenant, key, *version));
                if let Err(error) = cache.invalidate_many(stale).await {
                    tracing::debug!(error = %error, "early invalidation skipped; the relay will do it");
                }
            }
            Err(err) => tracing::debug!(error = %err, "early invalidation skipped"),
        }
    }

    async fn resolve_in_store(
        &self,
        tenant: &str,
        items: &[&ResolveItem],
        options: Options,
        actor: &Actor,
    ) -> Result<Resolved, IdentityError> {
        let keys: Vec<IdentifierKey> = domain::distinct_keys(items.iter().copied())
            .into_iter()
            .cloned()
            .collect();
        let mut conn = self.pool.acquire().await?;
        let rules = CompiledRules::new(
            &store::admin::load_rules(&mut conn, tenant)
                .await?
                .unwrap_or_default(),
        );
        let planner = Planner::new(items, rules, options);
        for attempt in 1..=MAX_ATTEMPTS {
            // Optimistic pass: most batches only read.
            let (view, versions) = read_view(&mut conn, tenant, &keys, items).await?;
            let plan = planner.plan(view).await?;
            if plan.is_read_only() {
                return Ok(Resolved {
                    outcomes: plan.results.clone(),
                    plan,
                    versions: Some(versions),
                    ..Resolved::default()
                });
            }
            let mut tx = conn.begin().await?;
            match self
                .write_plan(&mut tx, tenant, items, &keys, &planner, actor)
                .await
            {
                Ok(Some(resolved)) => {
                    tx.commit().await?;
                    self.relay_wake.notify_one();
                    return Ok(resolved);
                }
                Ok(None) => {
                    tx.rollback().await?;
                    tracing::debug!(attempt, "graph changed concurrently; planning again");
                }
                Err(IdentityError::Store(err)) if retryable(&err) => {
                    tx.rollback().await?;
                    tracing::debug!(attempt, error = %err, "transaction lost a race; planning again");
                }
                Err(err) => return Err(err),
            }
        }
        Err(IdentityError::Contention {
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Records numbers the carrier gave out again (see `reassign`): each
    /// item one phone key, observed at the instant its current subscriber
    /// got it. One answer per item, in order: who holds the number from
    /// that instant on, and what the record did.
    pub async fn record_reassigned_numbers(
        &self,
        tenant: &str,
        items: &[ResolveItem],
        actor: &Actor,
    ) -> Result<Vec<(Outcome, graph::Reassigned)>, IdentityError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let options = Options {
            reassignment: true,
            ..Options::default()
        };
        let items: Vec<&ResolveItem> = items.iter().collect();
        // Never answered from the cache: a record reads the number's last
        // use, which only PostgreSQL keeps.
        let resolved = self
            .resolve_in_store(tenant, &items, options, actor)
            .await?;
        // The outbox relay invalidates the numbers handed over, but a lookup
        // before it gets there must not name the earlier holder.
        let handed: Vec<&IdentifierKey> = resolved.plan.handovers.iter().map(|h| &h.key).collect();
        self.drop_cached(tenant, &handed).await;
        Ok(resolved
            .outcomes
            .into_iter()
            .zip(resolved.plan.reassignments)
            .collect())
    }

    /// The current owner of one identifier: Redis first, then PostgreSQL
    /// with one lookup per identifier in flight (concurrent misses share
    /// it), refilling the cache.
    pub async fn resolve_one(
        &self,
        tenant: &str,
        key: &IdentifierKey,
    ) -> Result<Option<Uuid>, IdentityError> {
        if let Some(cache) = &self.cache
            && let Some(person) = cache.get_many(tenant, &[key]).await.get(key)
        {
            return Ok(Some(*person));
        }
        let pool = self.pool.clone();
        let cache = self.cache.clone();
        let tenant_owned = tenant.to_owned();
        let key_owned = key.clone();
        let flight_key = crate::cache::cache_key("", tenant, key);
        let owner = self
            .flights
            .run(flight_key, async move {
                let mut conn = pool.acquire().await.map_err(Arc::new)?;
                let owner = store::owner(&mut conn, &tenant_owned, &key_owned)
                    .await
                    .map_err(Arc::new)?;
                drop(conn);
                if let (Some(cache), Some(owner)) = (&cache, owner.filter(|o| !o.contested)) {
                    cache
                        .fill_many(
                            &tenant_owned,
                            [(&key_owned, owner.person_id, owner.version)],
                        )
                        .await;
                }
                Ok(owner)
            })
            .await
            .map_err(|err| IdentityError::Store(unshare(&err)))?;
        Ok(owner.map(|o| o.person_id))
    }

    /// Who owned `key` at `at`: (the person id then, the live person now).
    pub async fn resolve_as_of(
        &self,
        tenant: &str,
        key: &IdentifierKey,
        at: chrono::DateTime<Utc>,
    ) -> Result<Option<(Uuid, Uuid)>, IdentityError> {
        let mut conn = self.pool.acquire().await?;
        let Some(then) = store::owner_at(&mut conn, tenant, key, at).await? else {
            return Ok(None);
        };
        Ok(store::current_person(&mut conn, tenant, then)
            .await?
            .map(|now| (then, now)))
    }
}

/// The part of the graph `keys` touch, and the versions of the known
/// identifiers. Limits and separations are only read when some item could
/// join anything (an unknown identifier, or identifiers of two persons):
/// repeated events of known persons cost one lookup.
async fn read_view(
    conn: &mut PgConnection,
    tenant: &str,
    keys: &[IdentifierKey],
    items: &[&ResolveItem],
) -> Result<(GraphView, HashMap<IdentifierKey, store::Owner>), IdentityError> {
    let mut versions = HashMap::with_capacity(keys.len());
    let mut owners: HashMap<IdentifierKey, graph::Known> = HashMap::with_capacity(keys.len());
    for (key, (known, version)) in store::lookup(conn, tenant, keys).await? {
        versions.insert(
            key.clone(),
            store::Owner {
                person_id: known.person_id,
                version,
                contested: is_contested(&known),
            },
        );
        owners.insert(key, known);
    }
    let may_join = items.iter().any(|item| {
        let mut first = None;
        item.keys.iter().any(|key| match owners.get(key) {
            None => true,
            Some(known) => *first.get_or_insert(known.person_id) != known.person_id,
        })
    });
    let unknown: Vec<IdentifierKey> = keys
        .iter()
        .filter(|k| !owners.contains_key(*k))
        .cloned()
        .collect();
    let mut view = GraphView {
        suppressed: store::suppressed(conn, tenant, &unknown).await?,
        ..GraphView::default()
    };
    if may_join {
        let persons: Vec<Uuid> = owners
            .values()
            .map(|k| k.person_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        view.type_counts = store::type_counts(conn, tenant, &persons).await?;
        view.separations = store::separations(conn, tenant, &persons).await?;
    }
    view.owners = owners;
    Ok((view, versions))
}

/// Whether a value stays out of the cache: one seen with other persons
/// (whether it still names its owner is the rules' call), or one handed over
/// (it names its holder as of the event's time, which a cached owner cannot
/// say).
fn is_contested(known: &graph::Known) -> bool {
    !known.seen_with.is_empty() || known.held_since.is_some()
}

/// Identifiers as the audit keeps them: (type, scope, masked value).
pub fn masked(keys: &[IdentifierKey]) -> Vec<(String, String, String)> {
    keys.iter()
        .map(|k| (k.id_type.clone(), k.scope.clone(), domain::mask(&k.value).0))
        .collect()
}

fn unshare(err: &sqlx::Error) -> sqlx::Error {
    match err {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

fn retryable(err: &sqlx::Error) -> bool {
    match touchline_db::classify(err) {
        DbErrorKind::Deadlock
        | DbErrorKind::SerializationFailure
        | DbErrorKind::UniqueViolation => true,
        DbErrorKind::ForeignKeyViolation
        | DbErrorKind::ConstraintViolation
        | DbErrorKind::QueryCanceled
        | DbErrorKind::ConnectionLost
        | DbErrorKind::PoolExhausted
        | DbErrorKind::InsufficientResources
        | DbErrorKind::DataException
        | DbErrorKind::Other => false,
    }
}
