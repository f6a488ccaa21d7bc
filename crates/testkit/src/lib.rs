//! Test-only helpers shared by the integration and end-to-end suites: a
//! fresh PostgreSQL database per test, a random Redis key prefix, tokens
//! minted with the test secret, and the real application started on port 0.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use secrecy::SecretString;
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

pub use touchline_db::testing::{TestDatabase, admin_url};

/// The Redis URL tests use.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
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
    // Test receivers listen on loopback over plain HTTP; production refuses both.
    config.webhooks.allow_plain_http = true;
    config.webhooks.allow_loopback = true;
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
