//! Carrying cache invalidations from the outbox to Redis, and sharing
//! concurrent cache misses.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use sqlx::{Connection as _, PgPool};
use tokio::sync::Notify;
use touchline_runtime::Shutdown;

use crate::cache::IdentityCache;
use crate::store::outbox::Locked;
use crate::store::{self, Owner};

/// Rows relayed per transaction.
const RELAY_BATCH: i64 = 500;
/// How often the relay looks even without a wake-up (rows left by a
/// crashed process, or by another replica).
const RELAY_POLL: Duration = Duration::from_secs(1);
/// Pause after a first failure before trying again; it doubles with each failure after it.
const RELAY_BACKOFF: Duration = Duration::from_millis(250);
/// The longest pause between attempts while Redis or PostgreSQL stays down.
const RELAY_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The relay's run of failures: the pause before the next attempt grows from
/// [`RELAY_BACKOFF`] to [`RELAY_MAX_BACKOFF`], and the run is logged when it starts, at
/// every tenth failure, and when it ends — never once per attempt.
#[derive(Debug, Default)]
struct Failures {
    count: u32,
    pause: Duration,
}

impl Failures {
    fn after(&mut self, outcome: Result<(), RelayError>) -> Duration {
        match outcome {
            Ok(()) => {
                if self.count > 0 {
                    tracing::info!(
                        failed_attempts = self.count,
                        "cache invalidation relay works again"
                    );
                }
                *self = Self::default();
                RELAY_POLL
            }
            Err(err) => {
                self.count += 1;
                self.pause = if self.count == 1 {
                    RELAY_BACKOFF
                } else {
                    (self.pause * 2).min(RELAY_MAX_BACKOFF)
                };
                if self.count == 1 || self.count.is_multiple_of(10) {
                    tracing::warn!(error = %err, failed_attempts = self.count, retry_in_ms = self.pause.as_millis() as u64, "cache invalidation relay failed; retrying with backoff");
                }
                self.pause
            }
        }
    }
}

/// Relays the outbox: claims queued invalidations, writes their tombstones
/// to Redis and deletes them, in one transaction per batch. A row is only
/// deleted after Redis took it, so a crash or an outage delays an
/// invalidation but never skips it.
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    cache: Option<IdentityCache>,
    wake: Arc<Notify>,
}

impl OutboxRelay {
    pub(super) fn new(pool: PgPool, cache: Option<IdentityCache>, wake: Arc<Notify>) -> Self {
        Self { pool, cache, wake }
    }

    /// Relays until shutdown.
    pub async fn run(self, shutdown: Shutdown) {
        let mut failures = Failures::default();
        loop {
            // Rows another replica holds are its business (and come back
            // on a later pass if it gives them up): no waiting here.
            let outcome = self.relay_available().await;
            let pause = failures.after(outcome.map(|_| ()));
            if failures.count > 0 {
                // While failing, new writes do not cut the pause short: each wake-up would
                // be another attempt against a dependency that is down.
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shutdown.wait() => return,
                }
                continue;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                () = shutdown.wait() => return,
            }
        }
    }

    /// Relays everything queued now; returns how many rows were relayed
    /// by this call. Rows another relay is working on count as queued: the
    /// call returns only once that relay has settled them (or relays them
    /// itself if it gave them back), so when it returns, every invalidation
    /// committed before the call has reached Redis. Fails when PostgreSQL
    /// or Redis does (the rows stay queued).
    pub async fn drain(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            total += self.relay_available().await?;
            // Nothing left that is free: wait out the batches other relays
            // hold. Skipping them would report an empty queue while their
            // tombstones may not have been written yet (or never will be,
            // if that relay fails and rolls back).
            match self.relay_batch(Locked::Wait).await? {
                0 => return Ok(total),
                relayed => total += relayed,
            }
        }
    }

    /// Relays queued rows no other relay holds, batch after batch, until
    /// none is left; returns how many rows were relayed.
    async fn relay_available(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            match self.relay_batch(Locked::Skip).await? {
                0 => return Ok(total),
                relayed => total += relayed,
            }
        }
    }

    /// Claims one batch, writes its tombstones and deletes it, in one
    /// transaction; returns how many rows it relayed.
    async fn relay_batch(&self, locked: Locked) -> Result<usize, RelayError> {
        let mut conn = self.pool.acquire().await.map_err(RelayError::Store)?;
        let mut tx = conn.begin().await.map_err(RelayError::Store)?;
        let rows = store::outbox::claim(&mut tx, RELAY_BATCH, locked)
            .await
            .map_err(RelayError::Store)?;
        if rows.is_empty() {
            tx.commit().await.map_err(RelayError::Store)?;
            return Ok(0);
        }
        if let Some(cache) = &self.cache {
            cache
                .invalidate_many(rows.iter().map(|r| (r.tenant.as_str(), &r.key, r.version)))
                .await
                .map_err(RelayError::Cache)?;
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        store::outbox::delete(&mut tx, &ids)
            .await
            .map_err(RelayError::Store)?;
        tx.commit().await.map_err(RelayError::Store)?;
        Ok(rows.len())
    }

    /// How many invalidations wait in the outbox.
    pub async fn pending(&self) -> Result<i64, RelayError> {
        let mut conn = self.pool.acquire().await.map_err(RelayError::Store)?;
        store::outbox::pending(&mut conn)
            .await
            .map_err(RelayError::Store)
    }
}

/// Why relaying stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// PostgreSQL failed.
    #[error("reading the outbox failed")]
    Store(#[source] sqlx::Error),
    /// Redis refused or timed out.
    #[error("redis invalidation failed: {0}")]
    Cache(String),
}

type FlightResult = Result<Option<Owner>, Arc<sqlx::Error>>;
type Flight = Shared<BoxFuture<'static, FlightResult>>;

/// One PostgreSQL lookup per identifier at a time: concurrent misses for
/// the same identifier wait on the first one's result. A caller that is
/// cancelled leaves the lookup to the others (a shared future runs while
/// anyone polls it).
#[derive(Default)]
pub struct SingleFlight {
    inflight: Mutex<HashMap<String, Flight>>,
}

impl std::fmt::Debug for SingleFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight").finish_non_exhaustive()
    }
}

impl SingleFlight {
    /// Runs `lookup` for `key` unless one is in flight, then shares its result.
    pub async fn run(
        &self,
        key: String,
        lookup: impl Future<Output = FlightResult> + Send + 'static,
    ) -> FlightResult {
        let flight = {
            let mut inflight = self
                .inflight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            inflight
                .entry(key.clone())
                .or_insert_with(|| lookup.boxed().shared())
                .clone()
        };
        let result = flight.clone().await;
        let mut inflight = self
            .inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if inflight.get(&key).is_some_and(|f| f.ptr_eq(&flight)) {
            inflight.remove(&key);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_to_the_cap_and_a_success_resets() {
        let mut failures = Failures::default();
        let down = || Err(RelayError::Cache("timed out".to_owned()));
        let pauses: Vec<Duration> = (0..10).map(|_| failures.after(down())).collect();
        assert_eq!(pauses[0], RELAY_BACKOFF);
        assert_eq!(pauses[1], RELAY_BACKOFF * 2);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]), "{pauses:?}");
        assert_eq!(pauses[9], RELAY_MAX_BACKOFF);
        assert_eq!(failures.after(Ok(())), RELAY_POLL);
        assert_eq!(failures.count, 0);
        assert_eq!(
            failures.after(down()),
            RELAY_BACKOFF,
            "a new run starts small"
        );
    }
}
