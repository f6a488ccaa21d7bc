//! Test support (feature `testing`): a fresh PostgreSQL database per test, created from the
//! admin URL in `DATABASE_URL` and dropped when the test is done. Lives here rather than in
//! the application-level test kit so a service's own store tests can use it without depending
//! on the binary crate.

use anyhow::Context as _;
use sqlx::Connection as _;

/// The admin database URL tests create their databases from.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
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

    /// A pool on this database with `schema` migrated by `migrator`.
    pub async fn migrated_pool(
        &self,
        schema: &str,
        migrator: &sqlx::migrate::Migrator,
    ) -> anyhow::Result<sqlx::PgPool> {
        let pool = sqlx::PgPool::connect(&self.url).await?;
        crate::migrate(&pool, schema, migrator)
            .await
            .with_context(|| format!("migrating schema {schema}"))?;
        Ok(pool)
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
