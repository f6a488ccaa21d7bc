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
//!
//! Entries carry the identifier's version (it grows on every merge, split
//! or erasure that moves the identifier). Invalidations, relayed from the
//! outbox after commit, replace an entry by a tombstone of the new version;
//! a refill is only written when Redis holds nothing newer, so a lookup
//! that read the graph before a move can never put the old owner back.
//!
//! In front of Redis sits a bounded in-process layer ([`local`]) holding
//! the same versioned entries, kept in step across processes by the
//! invalidation channel ([`listener`]).

mod health;
mod keys;
pub mod listener;
pub mod local;

pub use keys::{cache_key, parse_entry};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use uuid::Uuid;

use crate::config::IdentityConfig;
use crate::domain::{IdentifierKey, KeyMap};
use health::Health;
use local::{Entry, LocalLayer};

/// How long the cache stands aside after failing, before it is tried again.
pub const COOL_DOWN: Duration = Duration::from_secs(1);
/// Failures in a row that make the cache stand aside. One slow reply under
/// a burst is not an outage; a dead Redis fails this many calls at once.
pub const FAILURES_BEFORE_COOL_DOWN: u64 = 3;
/// Least time between two warnings about Redis failures.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// Bound on establishing a connection (the per-call timeout bounds each call).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Keys per MGET. A batch's lookups are split into commands of this size and
/// sent together on the multiplexed connection (pipelined): one huge MGET
/// keeps Redis busy for one long slice, and its reply must be parsed whole
/// before anything else moves.
pub const MGET_CHUNK: usize = 100;

/// What the cache answered since it was created, for benchmarks and
/// metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Keys found live in the in-process layer (no Redis call).
    pub local_hits: u64,
    /// Keys found live in Redis.
    pub hits: u64,
    /// Keys asked and not found (or tombstoned).
    pub misses: u64,
    /// Keys not asked, or whose answer was lost, because Redis failed,
    /// timed out or was cooling down (PostgreSQL answered instead).
    pub fallbacks: u64,
}

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
    /// The store's epoch could not be read.
    #[error("the identity store's epoch could not be read")]
    Store(#[source] sqlx::Error),
}

/// The identity cache: `{prefix}:identity:{tenant}:{type}:{scope}:{value}` →
/// `p:{person}:{version}` (or a tombstone `t:{version}`), with a jittered TTL.
#[derive(Clone)]
pub struct IdentityCache {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    fill_timeout: Duration,
    ttl_secs: u64,
    local: Option<Arc<LocalLayer>>,
    channel: String,
    health: Arc<Health>,
    script: Arc<redis::Script>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    local_hits: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    fallbacks: AtomicU64,
}

impl std::fmt::Debug for IdentityCache {
    // The connection's own Debug prints the client, which may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityCache")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("fill_timeout", &self.fill_timeout)
            .field("ttl_secs", &self.ttl_secs)
            .field("local", &self.local)
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
        if config.local_capacity > 0 && config.local_ttl_secs == 0 {
            return Err(CacheError::InvalidSetting(
                "local_ttl_secs must be positive when local_capacity is",
            ));
        }
        let client = redis::Client::open(url).map_err(CacheError::InvalidUrl)?;
        let timeout = Duration::from_millis(config.redis_timeout_ms);
        // Fills are best effort and write through a script: a longer bound
        // than reads, never shorter.
        let fill_timeout = Duration::from_millis(config.redis_fill_timeout_ms).max(timeout);
        // Few reconnect retries: while Redis is down the cool-down keeps
        // callers away, and a fresh attempt starts after each failure anyway.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT.max(timeout)))
            .set_number_of_retries(1)
            .set_max_delay(COOL_DOWN);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(CacheError::InvalidUrl)?;
        let local = (config.local_capacity > 0).then(|| {
            let layer = Arc::new(LocalLayer::new(
                config.local_capacity,
                Duration::from_secs(config.local_ttl_secs),
            ));
            listener::spawn(client, conn.clone(), &config.key_prefix, &layer);
            layer
        });
        Ok(Some(Self {
            conn,
            prefix: config.key_prefix.clone(),
            timeout,
            fill_timeout,
            ttl_secs: config.cache_ttl_secs,
            local,
            channel: listener::channel(&config.key_prefix),
            health: Arc::new(Health::new()),
            script: Arc::new(redis::Script::new(VERSIONED_SET)),
            counters: Arc::new(Counters::default()),
        }))
    }

    /// The cache `config` describes for the identity store behind `pool`: its keys live
    /// under the configured prefix followed by the store's epoch, so a cache never answers
    /// with entries written against another database (one dropped and created again, with
    /// person ids that do not exist here). Replicas over one database share the entries.
    pub async fn connect_to_store(
        config: &IdentityConfig,
        pool: &sqlx::PgPool,
    ) -> Result<Option<Self>, CacheError> {
        let epoch = crate::store::store_epoch(pool)
            .await
            .map_err(CacheError::Store)?;
        let mut config = config.clone();
        config.key_prefix = format!("{}:{}", config.key_prefix, epoch.simple());
        Self::connect(&config).await
    }

    /// The prefix every key of this cache starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Lookups answered so far by this cache (shared by its clones).
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            local_hits: self.counters.local_hits.load(Ordering::Relaxed),
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            fallbacks: self.counters.fallbacks.load(Ordering::Relaxed),
        }
    }

    fn count(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts lookups for the process metrics (`touchline.identity.cache.lookups`).
    fn record(hit: bool, n: usize) {
        if n > 0 {
            touchline_telemetry::metrics::pipeline()
                .cache_lookup(hit, u64::try_from(n).unwrap_or(u64::MAX));
        }
    }

    /// The in-process layer, when configured (for metrics and tests).
    pub fn local(&self) -> Option<&LocalLayer> {
        self.local.as_deref()
    }

    /// The cached owners of those of `keys` that are cached: the in-process
    /// layer first, then Redis for the rest, whose live answers are kept in
    /// the layer. Redis being slow, down or cooling down only costs its
    /// part of the answer; tombstones read as misses. Redis is asked in
    /// pipelined MGETs of [`MGET_CHUNK`], all bounded by one timeout.
    #[expect(
        clippy::too_many_lines,
        reason = "one MGET and the checks of every answer (version, tenant, shape) that keep a stale or foreign entry out"
    )]
    pub async fn get_many<'k>(&self, tenant: &str, keys: &[&'k IdentifierKey]) -> KeyMap<'k, Uuid> {
        let mut found = KeyMap::with_capacity_and_hasher(keys.len(), Default::default());
        if keys.is_empty() {
            return found;
        }
        let layer = self.local.as_deref().filter(|layer| layer.trusted());
        let mut remote: Vec<(&IdentifierKey, String)> = Vec::with_capacity(keys.len());
        let mut moved = 0;
        for &key in keys {
            let name = cache_key(&self.prefix, tenant, key);
            match layer.and_then(|layer| layer.get(&name)) {
                Some(Entry::Live { person, .. }) => {
                    found.insert(key, person);
                }
                // Known to have moved: PostgreSQL answers.
                Some(Entry::Tombstone { .. }) => moved += 1,
                None => remote.push((key, name)),
            }
        }
        Self::count(&self.counters.local_hits, found.len());
        Self::count(&self.counters.misses, moved);
        Self::record(true, found.len());
        Self::record(false, moved);
        if remote.is_empty() {
            // Answered without a single await that could wait: give the
            // runtime its turn, or a caller looping on hits starves every
            // other task on its thread (timers and the invalidation
            // listener included). A big batch is a millisecond of work, so
            // it yields every time; small ones when their budget runs out.
            if keys.len() >= MGET_CHUNK {
                tokio::task::yield_now().await;
            } else {
                tokio::task::consume_budget().await;
            }
            return found;
        }
        if self.health.cooling_down() {
            Self::count(&self.counters.fallbacks, remote.len());
            return found;
        }
        let lookups = remote.chunks(MGET_CHUNK).map(|chunk| {
            let mut cmd = redis::cmd("MGET");
            for (_, name) in chunk {
                cmd.arg(name);
            }
            let mut conn = self.conn.clone();
            async move { cmd.query_async::<Vec<Option<String>>>(&mut conn).await }
        });
        let reply = tokio::time::timeout(self.timeout, futures::future::join_all(lookups)).await;
        let Ok(replies) = reply else {
            Self::count(&self.counters.fallbacks, remote.len());
            self.health.failed("mget", "timed out");
            return found;
        };
        let mut hits = 0;
        let mut failed = false;
        for (chunk, reply) in remote.chunks(MGET_CHUNK).zip(replies) {
            let values = match reply {
                Ok(values) if values.len() == chunk.len() => values,
                Ok(values) => {
                    failed = true;
                    Self::count(&self.counters.fallbacks, chunk.len());
                    self.health.failed(
                        "mget",
                        &format!("{} replies for {} keys", values.len(), chunk.len()),
                    );
                    continue;
                }
                Err(err) => {
                    failed = true;
                    Self::count(&self.counters.fallbacks, chunk.len());
                    self.health.failed("mget", &err.to_string());
                    continue;
                }
            };
            for ((key, name), value) in chunk.iter().zip(values) {
                // Anything but a live entry we wrote is a miss: PostgreSQL
                // answers and the refill overwrites it.
                match value.as_deref().and_then(parse_entry) {
                    Some((person, version)) => {
                        hits += 1;
                        found.insert(*key, person);
                        if let Some(layer) = layer {
                            layer.offer(name.clone(), Entry::Live { person, version });
                        }
                    }
                    None => {
                        Self::count(&self.counters.misses, 1);
                        Self::record(false, 1);
                    }
                }
            }
        }
        if !failed {
            self.health.succeeded();
        }
        Self::count(&self.counters.hits, hits);
        Self::record(true, hits);
        found
    }

    /// Caches `entries` (identifier, person, version read from PostgreSQL),
    /// each with the TTL jittered by ±10 %. An entry is only written when
    /// nothing newer is held: a live entry of the same or a later version,
    /// or a tombstone of a later version (a move committed after this
    /// caller read the graph). Best effort: failures are logged.
    pub async fn fill_many<'a>(
        &self,
        tenant: &str,
        entries: impl IntoIterator<Item = (&'a IdentifierKey, Uuid, i64)>,
    ) {
        let entries: Vec<(String, Uuid, i64)> = entries
            .into_iter()
            .map(|(key, person, version)| (cache_key(&self.prefix, tenant, key), person, version))
            .collect();
        if entries.is_empty() {
            return;
        }
        if let Some(layer) = &self.local {
            for (name, person, version) in &entries {
                layer.offer(
                    name.clone(),
                    Entry::Live {
                        person: *person,
                        version: *version,
                    },
                );
            }
        }
        if self.health.cooling_down() {
            return;
        }
        let (keys, args) = self.script_args(
            entries
                .into_iter()
                .map(|(name, person, version)| (name, format!("p:{person}:{version}")))
                .collect(),
        );
        if let Err(error) = self.run_script("fill", keys, args, self.fill_timeout).await {
            self.health.failed("fill", &error);
        }
    }

    /// Replaces entries by tombstones of the given versions (tenant,
    /// identifier, version after the change), here, in Redis and, through
    /// the invalidation channel, in every other process's layer. Unlike
    /// fills, the caller must learn about failures: the outbox keeps the
    /// rows and retries.
    pub async fn invalidate_many<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a str, &'a IdentifierKey, i64)>,
    ) -> Result<(), String> {
        let entries: Vec<(String, i64)> = entries
            .into_iter()
            .map(|(tenant, key, version)| (cache_key(&self.prefix, tenant, key), version))
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        // The own layer first and unconditionally: a tombstone only ever
        // sends an answer to PostgreSQL.
        if let Some(layer) = &self.local {
            for (name, version) in &entries {
                layer.offer(name.clone(), Entry::Tombstone { version: *version });
            }
        }
        if self.health.cooling_down() {
            return Err("redis is cooling down after a failure".to_owned());
        }
        let (keys, args) = self.script_args(
            entries
                .into_iter()
                .map(|(name, version)| (name, format!("t:{version}")))
                .collect(),
        );
        self.run_script("invalidate", keys, args, self.timeout)
            .await
            .inspect_err(|error| self.health.failed("invalidate", error))
    }

    /// Key names and script arguments (value, TTL per key) with jittered
    /// TTLs. Kept out of the async path: the thread-local RNG must not live
    /// across an await.
    fn script_args(&self, entries: Vec<(String, String)>) -> (Vec<String>, Vec<String>) {
        let mut rng = rand::rng();
        let spread = (self.ttl_secs / 10).max(1);
        let shortest = self.ttl_secs.saturating_sub(spread).max(1);
        let longest = self.ttl_secs.saturating_add(spread);
        let mut keys = Vec::with_capacity(entries.len());
        let mut args = Vec::with_capacity(entries.len() * 2);
        for (name, value) in entries {
            keys.push(name);
            args.push(value);
            args.push(rng.random_range(shortest..=longest).to_string());
        }
        (keys, args)
    }

    /// Runs the script over `keys` in pipelined invocations of
    /// [`MGET_CHUNK`] keys (a long script blocks Redis for its whole run),
    /// all bounded by one `timeout`.
    async fn run_script(
        &self,
        mode: &str,
        keys: Vec<String>,
        args: Vec<String>,
        timeout: Duration,
    ) -> Result<(), String> {
        let calls = keys
            .chunks(MGET_CHUNK)
            .zip(args.chunks(MGET_CHUNK * 2))
            .map(|(keys, args)| {
                let mut invocation = self.script.prepare_invoke();
                invocation.arg(mode).arg(&self.channel);
                for key in keys {
                    invocation.key(key);
                }
                for arg in args {
                    invocation.arg(arg);
                }
                let mut conn = self.conn.clone();
                async move { invocation.invoke_async::<i64>(&mut conn).await }
            });
        match tokio::time::timeout(timeout, futures::future::join_all(calls)).await {
            Ok(replies) => match replies.into_iter().find_map(Result::err) {
                Some(err) => Err(err.to_string()),
                None => {
                    self.health.succeeded();
                    Ok(())
                }
            },
            Err(_) => Err("timed out".to_owned()),
        }
    }
}

/// Writes entries only when nothing newer is cached (the rule of
/// [`local::replaces`]). Values are `p:{person}:{version}` (live) or
/// `t:{version}` (tombstone); ARGV[1] is the mode, ARGV[2] the invalidation
/// channel, then a value and a TTL per key. An invalidation publishes every
/// key with its version, in this same run, for the other processes'
/// in-process layers.
const VERSIONED_SET: &str = r"
local mode = ARGV[1]
local written = 0
local versions = {}
for i, key in ipairs(KEYS) do
  local value = ARGV[2 * i + 1]
  local ttl = ARGV[2 * i + 2]
  local version = string.match(value, ':(%d+)$')
  versions[i] = version
  version = tonumber(version)
  local current = redis.call('GET', key)
  local write = true
  if current then
    local held = tonumber(string.match(current, ':(%d+)$'))
    if held then
      local tomb = string.sub(current, 1, 2) == 't:'
      if mode == 'fill' and tomb then
        write = held <= version
      else
        write = held < version
      end
    end
  end
  if write then
    redis.call('SET', key, value, 'EX', ttl)
    written = written + 1
  end
end
if mode == 'invalidate' and #KEYS > 0 then
  redis.call('PUBLISH', ARGV[2], cjson.encode({keys = KEYS, versions = versions}))
end
return written
";
