//! Fresh databases, principals and request builders shared by the tests.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt as _;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, PgConnection, PgPool};
use tonic::Request;
use touchline_auth::Principal;
use touchline_identity::{IdentityApi, IdentityCache, IdentityConfig};
use touchline_proto::common::v1::{Identifier, PartitionCursor, TailSelector};
use touchline_proto::identity::v1 as pb;
use touchline_proto::identity::v1::identity_service_server::IdentityService as _;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A migrated database of its own, dropped by [`TestDb::drop`].
pub struct TestDb {
    pub pool: PgPool,
    name: String,
}

impl TestDb {
    /// Creates and migrates a database with a random name.
    pub async fn new(max_connections: u32) -> TestDb {
        Self::migrated_through(max_connections, i64::MAX).await
    }

    /// Creates a database with a random name, migrated through migration `version` only (as a
    /// database of an older release); [`TestDb::migrate`] brings it up to date.
    pub async fn migrated_through(max_connections: u32, version: i64) -> TestDb {
        let name = format!("identity_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(ADMIN_URL)
            .await
            .expect("connect to postgres");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        admin.close().await.expect("close admin connection");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(&format!("{SERVER_URL}/{name}"))
            .await
            .expect("connect to test database");
        let older = sqlx::migrate::Migrator {
            migrations: touchline_identity::MIGRATOR
                .migrations
                .iter()
                .filter(|m| m.version <= version)
                .cloned()
                .collect(),
            ignore_missing: false,
            locking: true,
            no_tx: false,
        };
        touchline_db::migrate(&pool, touchline_identity::SCHEMA, &older)
            .await
            .expect("migrate");
        TestDb { pool, name }
    }

    /// Applies every migration not applied yet.
    pub async fn migrate(&self) {
        touchline_db::migrate(
            &self.pool,
            touchline_identity::SCHEMA,
            &touchline_identity::MIGRATOR,
        )
        .await
        .expect("migrate");
    }

    /// Closes the pool and drops the database.
    pub async fn drop(self) {
        self.pool.close().await;
        let mut admin = PgConnection::connect(ADMIN_URL)
            .await
            .expect("connect to postgres");
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .expect("drop database");
        admin.close().await.expect("close admin connection");
    }

    /// How many persons and identifiers `tenant` has.
    pub async fn counts(&self, tenant: &str) -> (i64, i64) {
        let persons: i64 =
            sqlx::query_scalar("SELECT count(*) FROM identity.persons WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(&self.pool)
                .await
                .expect("count persons");
        let identifiers: i64 =
            sqlx::query_scalar("SELECT count(*) FROM identity.identifiers WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(&self.pool)
                .await
                .expect("count identifiers");
        (persons, identifiers)
    }
}

/// A cache on the local Redis under a random prefix, with a timeout generous
/// enough that a busy machine never turns a healthy Redis into a miss.
pub async fn local_cache() -> (IdentityCache, String) {
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let config = local_config(&prefix);
    let cache = IdentityCache::connect(&config)
        .await
        .expect("valid cache config")
        .expect("a cache when a url is set");
    (cache, prefix)
}

/// A cache configuration on the local Redis under `prefix`.
pub fn local_config(prefix: &str) -> IdentityConfig {
    IdentityConfig {
        redis_url: Some(REDIS_URL.to_owned()),
        key_prefix: prefix.to_owned(),
        redis_timeout_ms: 5_000,
        cache_ttl_secs: 600,
        ..IdentityConfig::default()
    }
}

/// A tenant-scoped caller.
pub fn caller(tenant: &str) -> Principal {
    Principal {
        subject: "svc-governance".to_owned(),
        tenant: tenant.to_owned(),
        roles: Vec::new(),
        scopes: BTreeSet::from(["identity:resolve".to_owned()]),
    }
}

/// An identifier as governance hands it on: a value that is a phone or an
/// email in clear becomes a pseudonym (`k1:<64 hex>`, stable for the same
/// trimmed, lower-cased value), like governance's keyed HMAC would make it.
pub fn id(id_type: &str, value: &str) -> Identifier {
    clear_id(id_type, &as_governance_sends(value))
}

/// An identifier exactly as given, clear values included (what a caller
/// bypassing governance would send).
pub fn clear_id(id_type: &str, value: &str) -> Identifier {
    Identifier {
        r#type: id_type.to_owned(),
        value: value.to_owned(),
        scope: String::new(),
    }
}

/// `value`, pseudonymised when it is a clear phone or email.
pub fn as_governance_sends(value: &str) -> String {
    if touchline_identity::clear::looks_clear(value).is_none() {
        return value.to_owned();
    }
    pseudonym(&value.trim().to_lowercase())
}

/// A stable stand-in for governance's HMAC of `normalised`.
pub fn pseudonym(normalised: &str) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let digest: String = (0u8..4)
        .map(|round| {
            let mut hasher = std::hash::DefaultHasher::new();
            (round, normalised).hash(&mut hasher);
            format!("{:016x}", hasher.finish())
        })
        .collect();
    format!("k1:{digest}")
}

pub fn item(identifiers: Vec<Identifier>) -> pb::ResolveItem {
    pb::ResolveItem {
        identifiers,
        ..Default::default()
    }
}

/// Calls BatchResolve as `principal`.
pub async fn resolve_as(
    api: &IdentityApi,
    principal: Principal,
    parent: &str,
    items: Vec<pb::ResolveItem>,
) -> Result<Vec<pb::ResolveResult>, tonic::Status> {
    let mut request = Request::new(pb::BatchResolveRequest {
        parent: parent.to_owned(),
        items,
    });
    request.extensions_mut().insert(principal);
    Ok(api.batch_resolve(request).await?.into_inner().results)
}

/// Calls BatchResolve for `tenant` and expects success.
pub async fn resolve(
    api: &IdentityApi,
    tenant: &str,
    items: Vec<pb::ResolveItem>,
) -> Vec<pb::ResolveResult> {
    resolve_as(api, caller(tenant), "", items)
        .await
        .expect("batch resolve")
}

/// A tenant-scoped caller with every identity scope.
pub fn admin(tenant: &str) -> Principal {
    Principal {
        subject: "ops-alice".to_owned(),
        tenant: tenant.to_owned(),
        roles: Vec::new(),
        scopes: BTreeSet::from(
            [
                "identity:resolve",
                "identity:read",
                "identity:write",
                "identity:erase",
                "pipeline:read",
            ]
            .map(str::to_owned),
        ),
    }
}

/// A request carrying `principal`, as the auth layer would pass it on.
pub fn req<T>(principal: Principal, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.extensions_mut().insert(principal);
    request
}

/// An identifier with a scope.
pub fn scoped(id_type: &str, scope: &str, value: &str) -> Identifier {
    Identifier {
        r#type: id_type.to_owned(),
        value: value.to_owned(),
        scope: scope.to_owned(),
    }
}

/// An item with evidence.
pub fn event(message_id: &str, identifiers: Vec<Identifier>) -> pb::ResolveItem {
    pb::ResolveItem {
        identifiers,
        evidence_message_id: message_id.to_owned(),
        ..Default::default()
    }
}

/// Resolves one identifier now through the Resolve RPC.
pub async fn who(api: &IdentityApi, tenant: &str, identifier: Identifier) -> Option<String> {
    let request = req(
        admin(tenant),
        pb::ResolveRequest {
            identifier: Some(identifier),
            ..Default::default()
        },
    );
    match api.resolve(request).await {
        Ok(reply) => Some(reply.into_inner().person_id),
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => panic!("resolve failed: {status:?}"),
    }
}

/// Every decision of the tenant, newest first.
pub async fn merges(api: &IdentityApi, tenant: &str) -> Vec<pb::MergeRecord> {
    api.list_merges(req(
        admin(tenant),
        pb::ListMergesRequest {
            page_size: 1_000,
            ..Default::default()
        },
    ))
    .await
    .expect("list merges")
    .into_inner()
    .merges
}

/// Distinct person ids of `results`.
pub fn distinct(results: &[pb::ResolveResult]) -> std::collections::HashSet<String> {
    results.iter().map(|r| r.person_id.clone()).collect()
}

/// A private redis-server on a free port, killed on drop.
pub struct OwnRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    /// Starts a redis-server without persistence on a free port.
    pub async fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind a free port")
            .local_addr()
            .expect("local address")
            .port();
        let mut redis = OwnRedis { port, child: None };
        redis.restart().await;
        redis
    }

    /// Starts (again) on the same port and waits until it answers.
    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let url = self.url();
        for _ in 0..200 {
            if let Ok(client) = redis::Client::open(url.as_str())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Kills the server (as a crash would) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cache on `url` under a random prefix with the given timeout.
pub async fn cache_at(url: &str, timeout_ms: u64) -> (IdentityCache, String) {
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    (cache_under(url, &prefix, timeout_ms).await, prefix)
}

/// A cache on `url` under `prefix`: two of them share their entries the way
/// two replicas of the service do.
pub async fn cache_under(url: &str, prefix: &str, timeout_ms: u64) -> IdentityCache {
    let config = IdentityConfig {
        redis_url: Some(url.to_owned()),
        key_prefix: prefix.to_owned(),
        redis_timeout_ms: timeout_ms,
        cache_ttl_secs: 600,
        ..IdentityConfig::default()
    };
    IdentityCache::connect(&config)
        .await
        .expect("valid cache config")
        .expect("a cache when a url is set")
}

/// Waits until the cache's in-process layer serves (its invalidation
/// channel is up).
pub async fn layer_trusted(cache: &IdentityCache) {
    for _ in 0..400 {
        if cache.local().is_some_and(|layer| layer.trusted()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the in-process layer never became trusted");
}

/// Reads the feed of `tenant` after `after` until `want` changes arrived.
pub async fn feed(
    api: &IdentityApi,
    tenant: &str,
    after: i64,
    want: usize,
) -> Vec<pb::IdentityChange> {
    let request = req(
        admin(tenant),
        pb::TailIdentityChangesRequest {
            selector: Some(TailSelector {
                cursors: vec![PartitionCursor {
                    tenant: tenant.to_owned(),
                    after_sequence: after,
                }],
                ..Default::default()
            }),
        },
    );
    let mut stream = api
        .tail_identity_changes(request)
        .await
        .expect("tail")
        .into_inner();
    let mut changes = Vec::new();
    while changes.len() < want {
        let batch = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("changes arrive")
            .expect("stream open")
            .expect("batch");
        assert_eq!(batch.tenant, tenant);
        changes.extend(batch.changes);
    }
    changes
}

/// The tenant's changes after `after` other than LINK (which every new identifier makes), read
/// until at least `want` of them arrived.
pub async fn feed_without_links(
    api: &IdentityApi,
    tenant: &str,
    after: i64,
    want: usize,
) -> Vec<pb::IdentityChange> {
    let link = pb::IdentityChangeKind::Link as i32;
    let mut kept: Vec<pb::IdentityChange> = Vec::new();
    let mut cursor = after;
    while kept.len() < want {
        let batch = feed(api, tenant, cursor, 1).await;
        cursor = batch.last().map_or(cursor, |c| c.sequence);
        kept.extend(batch.into_iter().filter(|c| c.kind != link));
    }
    kept
}

/// The (field, reason) pairs of a refused call.
pub fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    tonic_types::StatusExt::get_error_details(status)
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.reason.clone()))
                .collect()
        })
        .unwrap_or_default()
}
