//! SQL of the cache-invalidation outbox.

use sqlx::PgConnection;

use super::KeyRow;

use crate::domain::IdentifierKey;

/// One queued invalidation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    /// Row id (for deletion).
    pub id: i64,
    /// Tenant.
    pub tenant: String,
    /// The identifier.
    pub key: IdentifierKey,
    /// Its version after the change.
    pub version: i64,
}

/// An outbox row, as [`claim`] reads it.
#[derive(sqlx::FromRow)]
struct InvalidationRow {
    id: i64,
    tenant_id: String,
    #[sqlx(flatten)]
    key: KeyRow,
    version: i64,
}

impl From<InvalidationRow> for Invalidation {
    fn from(row: InvalidationRow) -> Self {
        Self {
            id: row.id,
            tenant: row.tenant_id,
            key: row.key.into(),
            version: row.version,
        }
    }
}

/// What [`claim`] does with rows another relay holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// Skip them: relays share the queue without waiting for each other.
    Skip,
    /// Wait until their holder commits or rolls back: rows it relayed and
    /// deleted are gone, rows it gave back are claimed here.
    Wait,
}

/// Claims up to `limit` queued invalidations, oldest first. The outbox is a
/// platform-wide work queue, so this one statement reads every tenant's
/// rows.
pub async fn claim(
    conn: &mut PgConnection,
    limit: i64,
    locked: Locked,
) -> Result<Vec<Invalidation>, sqlx::Error> {
    let sql = match locked {
        Locked::Skip => {
            "SELECT id, tenant_id, id_type, id_scope, id_value, version FROM identity.outbox
              ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
        }
        Locked::Wait => {
            "SELECT id, tenant_id, id_type, id_scope, id_value, version FROM identity.outbox
              ORDER BY id LIMIT $1 FOR UPDATE"
        }
    };
    let rows = sqlx::query_as::<_, InvalidationRow>(sql)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(Invalidation::from).collect())
}

/// Deletes relayed invalidations.
pub async fn delete(conn: &mut PgConnection, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM identity.outbox WHERE id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// How many invalidations wait.
pub async fn pending(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM identity.outbox")
        .fetch_one(conn)
        .await
}
