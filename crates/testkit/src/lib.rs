//! Test-only helpers shared by the integration and end-to-end suites: a
//! fresh PostgreSQL database per test, a random Redis key prefix, tokens
//! minted with the test secret, and the real application started on port 0.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use secrecy::SecretString;
use sqlx::Connection as _;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use touchline::{Application, Config, ServiceName};
use touchline_auth::TokenClaims;
use touchline_runtime::Shutdown;
use touchline_runtime::client::{CallCredentials, lazy_channel};

/// The HS256 secret every test server accepts.
pub const TEST_SECRET: &str = "touchline-test-secret-not-for-production";
/// Issuer and audience of test tokens.
pub const TEST_ISSUER: &str = "touchline";

/// The admin database URL tests create their databases from.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Redis URL tests use.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A database created for one test, dropped when the value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its name.
    pub name: String,
    /// A URL connecting to it.
    pub url: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database with a random name.
    pub async fn create() -> anyhow::Result<Self> {
        let name = format!("touchline_test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .context("PostgreSQL is not reachable; run `make test`, which starts it")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let base = admin
            .rsplit_once('/')
            .map(|(base, _)| base.to_owned())
            .unwrap_or(admin);
        Ok(Self {
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Dropping needs a connection of its own and must not depend on the
        // test's runtime still being alive, so it runs on a short-lived thread.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A configuration for a test: its own database, a random Redis prefix,
/// port 0, the test secret, short shutdown delays.
pub fn test_config(db: &TestDatabase) -> Config {
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Config::default()
    };
    config.database.url = SecretString::from(db.url.clone());
    config.database.max_connections = 8;
    config.identity.redis_url = Some(redis_url());
    config.identity.key_prefix = format!("touchline-test-{}", uuid::Uuid::new_v4().simple());
    config.auth.hs256_secret = Some(SecretString::from(TEST_SECRET));
    config.auth.allow_hs256 = true;
    config.limits.drain_delay_ms = 300;
    config.limits.shutdown_grace_ms = 3_000;
    config
}

/// A running application with its own database.
#[derive(Debug)]
pub struct TestApp {
    /// The application.
    pub app: Application,
    /// Its shutdown handle.
    pub shutdown: Shutdown,
    /// Its database (dropped after the application).
    pub db: TestDatabase,
}

impl TestApp {
    /// Starts all five services on port 0 with a fresh database.
    pub async fn spawn() -> anyhow::Result<Self> {
        let db = TestDatabase::create().await?;
        Self::spawn_with(db, |_| {}).await
    }

    /// Starts with a configuration adjusted by `adjust`.
    pub async fn spawn_with(
        db: TestDatabase,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        let mut config = test_config(&db);
        adjust(&mut config);
        let shutdown = Shutdown::new();
        let app = Application::build(config, shutdown.clone()).await?;
        Ok(Self { app, shutdown, db })
    }

    /// The address every service listens on.
    pub fn addr(&self) -> SocketAddr {
        self.app
            .address_of(ServiceName::Collection)
            .or_else(|| self.app.addresses().values().next().copied())
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// A channel to the application carrying `token`.
    pub fn channel(
        &self,
        token: &str,
    ) -> anyhow::Result<InterceptedService<Channel, CallCredentials>> {
        let channel = lazy_channel(&format!("http://{}", self.addr()))?;
        Ok(InterceptedService::new(
            channel,
            CallCredentials::bearer(token)?,
        ))
    }

    /// Stops the application and waits for it.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.app.stopped().await;
    }
}

/// A token for `tenant` with `scopes`, signed with the test secret.
pub fn token(tenant: &str, scopes: &[&str]) -> String {
    let claims = TokenClaims::new(TEST_ISSUER, TEST_ISSUER, "test-user", tenant)
        .with_scopes(scopes.iter().copied());
    touchline_auth::mint_hs256(TEST_SECRET.as_bytes(), &claims).unwrap_or_default()
}

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
