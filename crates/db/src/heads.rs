//! Log heads: the newest sequence of each tenant's partition of a log. Every service with a
//! log keeps them in a `(tenant_id, last_sequence)` table whose row lock also orders appends;
//! tailers read them to know what there is to read.

use sqlx::{PgPool, Row};

/// A `(tenant_id text, last_sequence bigint)` heads table. The name is written into SQL, so it
/// is only ever one of the services' constants.
#[derive(Debug, Clone, Copy)]
pub struct HeadTable {
    table: &'static str,
}

impl HeadTable {
    /// The heads table `schema.table`.
    pub const fn named(table: &'static str) -> Self {
        HeadTable { table }
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
        let rows = match tenants {
            None => sqlx::query(&all).fetch_all(pool).await?,
            Some(tenants) => sqlx::query(&named).bind(tenants).fetch_all(pool).await?,
        };
        rows.into_iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }
}
