//! Log heads: the newest sequence of each tenant's partition of a log. Every service with a
//! log keeps them in a `(tenant_id, last_sequence, updated_at)` table whose row lock also
//! orders appends; tailers read them to know what there is to read.

use sqlx::{PgConnection, PgPool};

/// A `(tenant_id text, last_sequence bigint, updated_at timestamptz)` heads table. The name is
/// written into SQL, so it is only ever one of the services' constants.
#[derive(Debug, Clone, Copy)]
pub struct HeadTable {
    table: &'static str,
}

impl HeadTable {
    /// The heads table `schema.table`.
    pub const fn named(table: &'static str) -> Self {
        HeadTable { table }
    }

    /// Moves the tenant's head `count` sequences on and returns the first of the sequences
    /// reserved. The head row stays locked until the caller's transaction ends: that is what
    /// orders a tenant's appends, so sequences become visible in order and a tailer never
    /// skips a lower one that commits late.
    pub async fn reserve(
        &self,
        conn: &mut PgConnection,
        tenant: &str,
        count: usize,
    ) -> Result<i64, sqlx::Error> {
        let count = i64::try_from(count).map_err(|err| sqlx::Error::Protocol(err.to_string()))?;
        let sql = format!(
            "INSERT INTO {table} AS h (tenant_id, last_sequence) VALUES ($1, $2)
             ON CONFLICT (tenant_id) DO UPDATE
               SET last_sequence = h.last_sequence + EXCLUDED.last_sequence, updated_at = now()
             RETURNING last_sequence",
            table = self.table
        );
        let last: i64 = sqlx::query_scalar(&sql)
            .bind(tenant)
            .bind(count)
            .fetch_one(conn)
            .await?;
        Ok(last - count + 1)
    }

    /// The newest sequence of each tenant (all tenants, or the named ones), by tenant.
    pub async fn read(
        &self,
        pool: &PgPool,
        tenants: Option<&[String]>,
    ) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let all = format!(
            "SELECT tenant_id, last_sequence FROM {} ORDER BY tenant_id",
            self.table
        );
        let named = format!(
            "SELECT tenant_id, last_sequence FROM {} WHERE tenant_id = ANY($1) ORDER BY tenant_id",
            self.table
        );
        match tenants {
            None => sqlx::query_as(&all).fetch_all(pool).await,
            Some(tenants) => sqlx::query_as(&named).bind(tenants).fetch_all(pool).await,
        }
    }
}
