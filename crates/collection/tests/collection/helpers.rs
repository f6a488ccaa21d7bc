//! Set-up shared by the collection crate's database tests.

use sqlx::PgPool;
use touchline_db::testing::TestDatabase;

/// A migrated database of the test's own; it is dropped with the guard.
pub async fn fresh_pool() -> anyhow::Result<(TestDatabase, PgPool)> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(
            touchline_collection::SCHEMA,
            &touchline_collection::MIGRATOR,
        )
        .await?;
    Ok((db, pool))
}
