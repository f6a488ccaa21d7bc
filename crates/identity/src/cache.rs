//! The Redis cache-aside for identifier → person lookups.
//!
//! Redis only ever saves PostgreSQL a round trip. Every call is bounded by a
//! timeout; a timeout or an error turns into "nothing cached" (reads) or
//! "nothing written" (writes), is logged at warn (at most once per
//! [`WARN_EVERY`]), and makes the cache stand aside for [`COOL_DOWN`] so a
//! dead Redis does not add its timeout to every call. One reconnecting
//! multiplexed connection serves the whole service; a call abandoned on
//! timeout cannot desynchronise it, because the multiplexer pairs replies with
//! requests itself.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use uuid::Uuid;

use crate::config::IdentityConfig;
use crate::domain::IdentifierKey;

/// How long the cache stands aside after a failure before it is tried again.
pub const COOL_DOWN: Duration = Duration::from_secs(1);
/// Least time between two warnings about Redis failures.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// Bound on establishing a connection (the per-call timeout bounds each call).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the cache could not be set up. An unreachable Redis is not one of
/// them: the connection is made lazily and its failures are tolerated.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The URL does not parse.
    #[error("the redis url is invalid")]
    InvalidUrl(#[source] redis::RedisError),
    /// A setting is out of range.
    #[error("invalid identity cache setting: {0}")]
    InvalidSetting(&'static str),
}

/// The identity cache: `{prefix}:identity:{tenant}:{type}:{scope}:{value}` →
/// person id, with a jittered TTL.
#[derive(Clone)]
pub struct IdentityCache {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    ttl_secs: u64,
    health: Arc<Health>,
}

impl std::fmt::Debug for IdentityCache {
    // The connection's own Debug prints the client, which may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCache")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl IdentityCache {
    /// The cache `config` describes, or `None` when it names no Redis.
    ///
    /// Does not wait for Redis: the connection is made on first use, so the
    /// service starts (and serves from PostgreSQL) while Redis is down. Must
    /// be called inside a Tokio runtime, which the reconnecting connection
    /// uses for its background work.
    pub async fn connect(config: &IdentityConfig) -> Result<Option<Self>, CacheError> {
        let Some(url) = config
            .redis_url
            .as_deref()
            .filter(|url| !url.trim().is_empty())
        else {
            return Ok(None);
        };
        if config.redis_timeout_ms == 0 {
            return Err(CacheError::InvalidSetting(
                "redis_timeout_ms must be positive",
            ));
        }
        if config.cache_ttl_secs == 0 {
            return Err(CacheError::InvalidSetting(
                "cache_ttl_secs must be positive",
            ));
        }
        if config.key_prefix.is_empty() {
            return Err(CacheError::InvalidSetting("key_prefix must not be empty"));
        }
        let client = redis::Client::open(url).map_err(CacheError::InvalidUrl)?;
        let timeout = Duration::from_millis(config.redis_timeout_ms);
        // Few reconnect retries: while Redis is down the cool-down keeps
        // callers away, and a fresh attempt starts after each failure anyway.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT.max(timeout)))
            .set_number_of_retries(1)
            .set_max_delay(COOL_DOWN);
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(CacheError::InvalidUrl)?;
        Ok(Some(Self {
            conn,
            prefix: config.key_prefix.clone(),
            timeout,
            ttl_secs: config.cache_ttl_secs,
            health: Arc::new(Health::new()),
        }))
    }

    /// The cached owners of those of `keys` that are cached. Empty when Redis
    /// is slow, down or cooling down.
    pub async fn get_many(
        &self,
        tenant: &str,
        keys: &[IdentifierKey],
    ) -> HashMap<IdentifierKey, Uuid> {
        if keys.is_empty() || self.health.cooling_down() {
            return HashMap::new();
        }
        let names: Vec<String> = keys
            .iter()
            .map(|key| cache_key(&self.prefix, tenant, key))
            .collect();
        let mut cmd = redis::cmd("MGET");
        cmd.arg(&names);
        let mut conn = self.conn.clone();
        let reply = tokio::time::timeout(
            self.timeout,
            cmd.query_async::<Vec<Option<String>>>(&mut conn),
        )
        .await;
        let values = match reply {
            Ok(Ok(values)) if values.len() == keys.len() => values,
            Ok(Ok(values)) => {
                self.health.failed(
                    "mget",
                    &format!("{} replies for {} keys", values.len(), keys.len()),
                );
                return HashMap::new();
            }
            Ok(Err(err)) => {
                self.health.failed("mget", &err.to_string());
                return HashMap::new();
            }
            Err(_) => {
                self.health.failed("mget", "timed out");
                return HashMap::new();
            }
        };
        keys.iter()
            .zip(values)
            .filter_map(|(key, value)| {
                // A value that is not a UUID was not written by us; treat it
                // as a miss and let PostgreSQL answer (and overwrite it).
                let person = Uuid::parse_str(value?.as_str()).ok()?;
                Some((key.clone(), person))
            })
            .collect()
    }

    /// Caches `entries`, each with the TTL jittered by ±10 % so entries
    /// written together do not expire together. Best effort: failures are
    /// logged, never returned.
    pub async fn put_many<'a>(
        &self,
        tenant: &str,
        entries: impl IntoIterator<Item = (&'a IdentifierKey, Uuid)>,
    ) {
        if self.health.cooling_down() {
            return;
        }
        let (pipe, count) = self.set_pipeline(tenant, entries);
        if count == 0 {
            return;
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => self.health.failed("set", &err.to_string()),
            Err(_) => self.health.failed("set", "timed out"),
        }
    }
    /// SETs with jittered TTLs for `entries`, and how many there are. Kept
    /// out of the async path: the thread-local RNG must not live across an
    /// await.
    fn set_pipeline<'a>(
        &self,
        tenant: &str,
        entries: impl IntoIterator<Item = (&'a IdentifierKey, Uuid)>,
    ) -> (redis::Pipeline, usize) {
        let mut pipe = redis::pipe();
        let mut count = 0usize;
        let mut rng = rand::rng();
        let spread = (self.ttl_secs / 10).max(1);
        let shortest = self.ttl_secs.saturating_sub(spread).max(1);
        let longest = self.ttl_secs.saturating_add(spread);
        for (key, person) in entries {
            pipe.cmd("SET")
                .arg(cache_key(&self.prefix, tenant, key))
                .arg(person.to_string())
                .arg("EX")
                .arg(rng.random_range(shortest..=longest))
                .ignore();
            count += 1;
        }
        (pipe, count)
    }
}

/// The Redis key of `key` in `tenant`. Each part has `%` and `:` escaped, so
/// a value containing `:` can never collide with another identifier's key.
pub fn cache_key(prefix: &str, tenant: &str, key: &IdentifierKey) -> String {
    format!(
        "{prefix}:identity:{}:{}:{}:{}",
        escape(tenant),
        escape(&key.id_type),
        escape(&key.scope),
        escape(&key.value)
    )
}

fn escape(part: &str) -> Cow<'_, str> {
    if part.contains(['%', ':']) {
        Cow::Owned(part.replace('%', "%25").replace(':', "%3A"))
    } else {
        Cow::Borrowed(part)
    }
}

/// Failure bookkeeping shared by all clones of a cache.
struct Health {
    epoch: Instant,
    /// Milliseconds since `epoch` until which the cache stands aside.
    cool_until_ms: AtomicU64,
    /// Milliseconds since `epoch` of the last warning, plus one (0 = never).
    last_warn_ms: AtomicU64,
    /// Failures not warned about since the last warning.
    suppressed: AtomicU64,
}

impl Health {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            cool_until_ms: AtomicU64::new(0),
            last_warn_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn cooling_down(&self) -> bool {
        self.now_ms() < self.cool_until_ms.load(Ordering::Relaxed)
    }

    fn failed(&self, operation: &'static str, error: &str) {
        let now = self.now_ms();
        let cool_down = u64::try_from(COOL_DOWN.as_millis()).unwrap_or(u64::MAX);
        self.cool_until_ms
            .store(now.saturating_add(cool_down), Ordering::Relaxed);
        let warn_every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_add(1).saturating_sub(last) >= warn_every;
        // Only the caller that wins the swap warns; the others count.
        if due
            && self
                .last_warn_ms
                .compare_exchange(
                    last,
                    now.saturating_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                operation,
                error,
                suppressed,
                cool_down_ms = cool_down,
                "redis call failed; serving from postgresql"
            );
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_layout_and_never_collide() {
        let plain = IdentifierKey::normalise("email", "", "a@x.io");
        assert_eq!(
            cache_key("tl", "t1", &plain),
            "tl:identity:t1:email::a@x.io"
        );
        let a = IdentifierKey {
            id_type: "x".to_owned(),
            scope: "a:b".to_owned(),
            value: "c".to_owned(),
        };
        let b = IdentifierKey {
            id_type: "x".to_owned(),
            scope: "a".to_owned(),
            value: "b:c".to_owned(),
        };
        assert_ne!(cache_key("tl", "t1", &a), cache_key("tl", "t1", &b));
        let percent = IdentifierKey {
            id_type: "x".to_owned(),
            scope: "a%3Ab".to_owned(),
            value: "c".to_owned(),
        };
        assert_ne!(cache_key("tl", "t1", &a), cache_key("tl", "t1", &percent));
    }

    #[test]
    fn a_failure_starts_a_cool_down_and_warnings_are_spaced() {
        let health = Health::new();
        assert!(!health.cooling_down());
        health.failed("mget", "timed out");
        assert!(health.cooling_down());
        health.failed("mget", "timed out");
        assert_eq!(health.suppressed.load(Ordering::Relaxed), 1);
    }
}
