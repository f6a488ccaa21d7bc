//! Resolving a batch: the cache protocol and the transactions, free of any
//! transport.
//!
//! Cache-aside: every identifier of the batch is looked up in Redis with one
//! MGET; an item whose identifiers are all cached and agree is answered from
//! there. The rest is planned against PostgreSQL (one batched read) and
//! written in one transaction (one batched statement). If a concurrent call
//! claimed one of the identifiers in between, the unique key makes our insert
//! skip it, the transaction is rolled back (so no orphan person survives) and
//! the batch is planned again on fresh data. Only after commit are the
//! resolved identifiers written to Redis.

use std::collections::HashMap;

use chrono::Utc;
use sqlx::{Connection as _, PgPool};
use touchline_db::DbErrorKind;
use uuid::Uuid;

use crate::cache::IdentityCache;
use crate::domain::{self, Plan, Resolution, ResolveItem};
use crate::error::IdentityError;
use crate::store::{self, LinkRow};

/// How many times a batch is re-planned after losing a race before the call
/// gives up with ABORTED. Each loss means another call committed the
/// identifiers meanwhile, so the next plan sees them; losing five times in a
/// row takes a storm of writers on the very same identifiers.
pub const MAX_ATTEMPTS: u32 = 5;

/// Resolves `items` for `tenant`, one result per item in order.
pub async fn batch_resolve(
    pool: &PgPool,
    cache: Option<&IdentityCache>,
    tenant: &str,
    items: &[ResolveItem],
) -> Result<Vec<Resolution>, IdentityError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let cached = match cache {
        Some(cache) => cache.get_many(tenant, &domain::distinct_keys(items)).await,
        None => HashMap::new(),
    };
    let mut results: Vec<Option<Resolution>> = items
        .iter()
        .map(|item| {
            domain::cached_answer(item, &cached).map(|person_id| Resolution {
                person_id,
                created: false,
            })
        })
        .collect();
    let pending: Vec<usize> = (0..items.len()).filter(|&i| results[i].is_none()).collect();
    tracing::Span::current().record("cache_hits", items.len() - pending.len());

    if !pending.is_empty() {
        let pending_items: Vec<&ResolveItem> =
            pending.iter().filter_map(|&i| items.get(i)).collect();
        let plan = resolve_in_store(pool, tenant, &pending_items).await?;
        for (&i, resolution) in pending.iter().zip(&plan.results) {
            results[i] = Some(*resolution);
        }
        if let Some(cache) = cache {
            let stale = plan
                .owners
                .iter()
                .filter(|(key, owner)| cached.get(*key) != Some(*owner))
                .map(|(key, owner)| (key, *owner));
            cache.put_many(tenant, stale).await;
        }
    }
    // Every slot is filled above: cached answers first, then one plan result
    // per pending item.
    Ok(results.into_iter().flatten().collect())
}

/// Plans `items` against PostgreSQL and writes the plan, re-planning when a
/// concurrent call won a race for one of the identifiers.
async fn resolve_in_store(
    pool: &PgPool,
    tenant: &str,
    items: &[&ResolveItem],
) -> Result<Plan, IdentityError> {
    let keys = domain::distinct_keys(items.iter().copied());
    let mut conn = pool.acquire().await.map_err(IdentityError::Store)?;
    for attempt in 1..=MAX_ATTEMPTS {
        let known = store::lookup(&mut conn, tenant, &keys)
            .await
            .map_err(IdentityError::Store)?;
        let plan = domain::plan(items.iter().copied(), known, Uuid::now_v7);
        if plan.new_links.is_empty() {
            // Everything was known: a read-only call.
            return Ok(plan);
        }
        let links: Vec<LinkRow<'_>> = plan
            .new_links
            .iter()
            .map(|link| {
                let item = items.get(link.item);
                LinkRow {
                    key: &link.key,
                    person_id: link.person_id,
                    observed_at: item.and_then(|item| item.observed_at),
                    evidence_message_id: item.map_or("", |item| item.evidence_message_id.as_str()),
                }
            })
            .collect();
        let mut tx = conn.begin().await.map_err(IdentityError::Store)?;
        match store::create_and_link(&mut tx, tenant, &plan.new_persons, &links, Utc::now()).await {
            Ok(written) if written == links.len() => {
                tx.commit().await.map_err(IdentityError::Store)?;
                return Ok(plan);
            }
            Ok(written) => {
                tx.rollback().await.map_err(IdentityError::Store)?;
                tracing::debug!(
                    attempt,
                    planned = links.len(),
                    written,
                    "identifiers claimed concurrently; planning again"
                );
            }
            Err(err) if retryable(&err) => {
                tx.rollback().await.map_err(IdentityError::Store)?;
                tracing::debug!(attempt, error = %err, "transaction lost a race; planning again");
            }
            Err(err) => return Err(IdentityError::Store(err)),
        }
    }
    Err(IdentityError::Contention {
        attempts: MAX_ATTEMPTS,
    })
}

fn retryable(err: &sqlx::Error) -> bool {
    match touchline_db::classify(err) {
        DbErrorKind::Deadlock | DbErrorKind::SerializationFailure => true,
        DbErrorKind::UniqueViolation
        | DbErrorKind::ForeignKeyViolation
        | DbErrorKind::ConstraintViolation
        | DbErrorKind::QueryCanceled
        | DbErrorKind::ConnectionLost
        | DbErrorKind::PoolExhausted
        | DbErrorKind::InsufficientResources
        | DbErrorKind::Other => false,
    }
}
