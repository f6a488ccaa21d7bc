//! Settings of the identity service.

use serde::{Deserialize, Serialize};

/// Default Redis key prefix; tests use a random one.
pub const DEFAULT_KEY_PREFIX: &str = "touchline";
/// Default bound on every Redis call; past it the call falls back to PostgreSQL.
/// The bound runs on the service's runtime, so it covers the wait for a
/// worker as well as Redis: a batch's MGETs against a local Redis answer in
/// about a millisecond, but on two busy cores the wait alone reached 40 to
/// 50 ms (release) and past 100 ms (debug), where a 50 ms bound turned a
/// healthy Redis into fallbacks and cool-downs. A dead Redis still costs at
/// most this bound on the few calls before the cool-down.
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 150;
/// Default lifetime of a cached identifier → person entry (jittered ±10 %).
pub const DEFAULT_CACHE_TTL_SECS: u64 = 3_600;
/// Default bound on writing a batch's refills to Redis.
pub const DEFAULT_REDIS_FILL_TIMEOUT_MS: u64 = 250;
/// Default size of the in-process layer in front of Redis, in entries
/// (roughly 150 bytes each).
pub const DEFAULT_LOCAL_CAPACITY: u64 = 500_000;
/// Default lifetime of an in-process entry.
pub const DEFAULT_LOCAL_TTL_SECS: u64 = 300;

/// How the identity service reaches its cache.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// `redis://host:port/db`; `None` runs without a cache (PostgreSQL only).
    /// May carry a password, so it is never printed.
    #[serde(serialize_with = "serialize_redacted")]
    pub redis_url: Option<String>,
    /// First segment of every key: `{prefix}:identity:{tenant}:…`.
    pub key_prefix: String,
    /// Bound on each Redis call, milliseconds.
    pub redis_timeout_ms: u64,
    /// Lifetime of cached entries, seconds, before ±10 % jitter.
    pub cache_ttl_secs: u64,
    /// Bound on writing refills to Redis, milliseconds (never below
    /// `redis_timeout_ms`).
    pub redis_fill_timeout_ms: u64,
    /// Entries the in-process layer holds in front of Redis; 0 turns it off.
    pub local_capacity: u64,
    /// Lifetime of an in-process entry, seconds.
    pub local_ttl_secs: u64,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            redis_timeout_ms: DEFAULT_REDIS_TIMEOUT_MS,
            cache_ttl_secs: DEFAULT_CACHE_TTL_SECS,
            redis_fill_timeout_ms: DEFAULT_REDIS_FILL_TIMEOUT_MS,
            local_capacity: DEFAULT_LOCAL_CAPACITY,
            local_ttl_secs: DEFAULT_LOCAL_TTL_SECS,
        }
    }
}

impl std::fmt::Debug for IdentityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityConfig")
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[redacted]"))
            .field("key_prefix", &self.key_prefix)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .field("cache_ttl_secs", &self.cache_ttl_secs)
            .field("redis_fill_timeout_ms", &self.redis_fill_timeout_ms)
            .field("local_capacity", &self.local_capacity)
            .field("local_ttl_secs", &self.local_ttl_secs)
            .finish()
    }
}

fn serialize_redacted<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(_) => s.serialize_some("[redacted]"),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_url() {
        let config = IdentityConfig {
            redis_url: Some("redis://:hunter2@cache:6379/0".to_owned()),
            ..IdentityConfig::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"));
        assert!(printed.contains("redacted"));
    }
}
