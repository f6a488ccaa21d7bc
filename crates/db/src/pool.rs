//! Pool construction and schema migrations.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// How to reach PostgreSQL.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DbConfig {
    /// `postgres://user@host:port/database`; may carry a password.
    #[serde(serialize_with = "serialize_redacted")]
    pub url: SecretString,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
    /// How long a caller waits for a pooled connection.
    pub acquire_timeout_ms: u64,
    /// Statements slower than this are logged at warn.
    pub slow_statement_ms: u64,
    /// VACUUM and ANALYZE of the services' own tables when PostgreSQL's
    /// autovacuum is off.
    pub upkeep: crate::UpkeepConfig,
}

fn serialize_redacted<S: serde::Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("[redacted]")
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/touchline"),
            max_connections: 16,
            acquire_timeout_ms: 5_000,
            slow_statement_ms: 1_000,
            upkeep: crate::UpkeepConfig::default(),
        }
    }
}

impl DbConfig {
    /// Parsed connect options; the URL is never logged.
    pub fn connect_options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        let options: PgConnectOptions = self.url.expose_secret().parse()?;
        Ok(options.application_name("touchline").log_slow_statements(
            tracing::log::LevelFilter::Warn,
            Duration::from_millis(self.slow_statement_ms),
        ))
    }
}

/// Opens a pool; fails fast when the database cannot be reached.
pub async fn connect(config: &DbConfig) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .connect_with(config.connect_options()?)
        .await
}

/// Applies `migrator` inside `schema`, creating the schema first. The
/// migration history lives in `<schema>._sqlx_migrations`. The connection used
/// is closed afterwards so its `search_path` never leaks into the pool.
pub async fn migrate(pool: &PgPool, schema: &str, migrator: &Migrator) -> Result<(), sqlx::Error> {
    if schema.is_empty() || !schema.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(sqlx::Error::Configuration(
            format!("invalid schema name {schema:?}").into(),
        ));
    }
    let mut conn = pool.acquire().await?.detach();
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("SET search_path TO {schema}"))
        .execute(&mut conn)
        .await?;
    let outcome = migrator.run_direct(&mut conn).await;
    conn.close().await?;
    outcome.map_err(|err| sqlx::Error::Migrate(Box::new(err)))
}
