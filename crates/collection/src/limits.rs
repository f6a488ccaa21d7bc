//! Back-pressure and fairness for ingest: per-tenant and per-source event
//! rates, and a bound on the events being ingested at once, so memory stays
//! bounded whatever callers do.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::CollectionConfig;

/// Keys kept by a limiter before idle ones are evicted.
const MAX_TRACKED_KEYS: usize = 10_000;

/// Why a batch was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The tenant or one of its sources is over its rate.
    #[error("{scope} is over its ingest rate; retry later")]
    RateExceeded {
        /// `tenant` or `source {id}`.
        scope: String,
        /// When the batch would fit.
        retry_after: Duration,
    },
    /// The server is ingesting as much as it may hold at once.
    #[error("the server is busy; retry later")]
    Busy {
        /// A hint for the retry.
        retry_after: Duration,
    },
}

/// Admission control shared by every ingest call.
#[derive(Debug)]
pub struct IngestLimits {
    tenants: DefaultKeyedRateLimiter<String>,
    sources: DefaultKeyedRateLimiter<(String, String)>,
    in_flight: Arc<Semaphore>,
    max_in_flight: u32,
    admission_wait: Duration,
}

fn quota(rate: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(rate.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl IngestLimits {
    /// Limits as configured.
    pub fn new(config: &CollectionConfig) -> Self {
        let max_in_flight = u32::try_from(config.max_in_flight_events.max(1)).unwrap_or(u32::MAX);
        Self {
            tenants: RateLimiter::keyed(quota(
                config.tenant_events_per_second,
                config.tenant_burst_events,
            )),
            sources: RateLimiter::keyed(quota(
                config.source_events_per_second,
                config.source_burst_events,
            )),
            in_flight: Arc::new(Semaphore::new(max_in_flight as usize)),
            max_in_flight,
            admission_wait: Duration::from_millis(config.admission_wait_ms),
        }
    }

    /// Charges `count` events of `tenant` (and of each source in
    /// `per_source`) against the rates.
    pub fn check_rates(
        &self,
        tenant: &str,
        count: usize,
        per_source: &HashMap<&str, usize>,
    ) -> Result<(), LimitError> {
        if self.tenants.len() > MAX_TRACKED_KEYS {
            self.tenants.retain_recent();
        }
        if self.sources.len() > MAX_TRACKED_KEYS {
            self.sources.retain_recent();
        }
        check(&self.tenants, &tenant.to_owned(), count, || {
            "tenant".to_owned()
        })?;
        for (source, n) in per_source {
            check(
                &self.sources,
                &(tenant.to_owned(), (*source).to_owned()),
                *n,
                || format!("source {source:?}"),
            )?;
        }
        Ok(())
    }

    /// Reserves room for `count` events being ingested, waiting a little
    /// when the server is full.
    pub async fn admit(&self, count: usize) -> Result<OwnedSemaphorePermit, LimitError> {
        let wanted = u32::try_from(count)
            .unwrap_or(u32::MAX)
            .clamp(1, self.max_in_flight);
        let acquire = Arc::clone(&self.in_flight).acquire_many_owned(wanted);
        match tokio::time::timeout(self.admission_wait, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(LimitError::Busy {
                retry_after: Duration::from_millis(250),
            }),
        }
    }
}

fn check<K: Clone + std::hash::Hash + Eq>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    count: usize,
    scope: impl FnOnce() -> String,
) -> Result<(), LimitError> {
    let Some(n) = NonZeroU32::new(u32::try_from(count).unwrap_or(u32::MAX)) else {
        return Ok(());
    };
    match limiter.check_key_n(key, n) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(LimitError::RateExceeded {
            scope: scope(),
            retry_after: not_until
                .wait_time_from(DefaultClock::default().now())
                .max(Duration::from_millis(1)),
        }),
        // More events in one batch than the burst allows: it can never fit,
        // so the caller should send smaller batches; a second is the
        // honest hint for a rate this low.
        Err(_) => Err(LimitError::RateExceeded {
            scope: scope(),
            retry_after: Duration::from_secs(1),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rates_are_per_tenant_and_per_source() {
        let config = CollectionConfig {
            tenant_events_per_second: 10,
            tenant_burst_events: 10,
            source_events_per_second: 4,
            source_burst_events: 4,
            ..CollectionConfig::default()
        };
        let limits = IngestLimits::new(&config);
        let a = HashMap::from([("pos", 4)]);
        assert!(limits.check_rates("t1", 4, &a).is_ok());
        let err = limits.check_rates("t1", 4, &a);
        assert!(
            matches!(err, Err(LimitError::RateExceeded { ref scope, retry_after }) if scope.contains("pos") && retry_after > Duration::ZERO),
            "{err:?}"
        );
        // Another tenant is not affected.
        assert!(limits.check_rates("t2", 4, &a).is_ok());
        // The tenant budget runs out across sources.
        let b = HashMap::from([("web", 2)]);
        assert!(matches!(
            limits.check_rates("t1", 8, &b),
            Err(LimitError::RateExceeded { ref scope, .. }) if scope == "tenant"
        ));
    }

    #[tokio::test]
    async fn in_flight_events_are_bounded() {
        let config = CollectionConfig {
            max_in_flight_events: 10,
            admission_wait_ms: 10,
            ..CollectionConfig::default()
        };
        let limits = IngestLimits::new(&config);
        let held = limits.admit(8).await;
        assert!(held.is_ok());
        assert!(matches!(
            limits.admit(5).await,
            Err(LimitError::Busy { .. })
        ));
        drop(held);
        assert!(limits.admit(5).await.is_ok());
    }
}
