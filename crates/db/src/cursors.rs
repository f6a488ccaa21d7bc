//! Consumer cursors: how far a stage has consumed another stage's log, per tenant. Every
//! consuming service keeps them in a `consumer_cursors` table of its own schema, and moves
//! them in the same transaction as the output they account for.

use sqlx::PgConnection;

/// A schema that holds a `consumer_cursors (consumer, tenant_id, last_sequence, updated_at)`
/// table. The name is written into SQL, so it is only ever one of the services' constants.
#[derive(Debug, Clone, Copy)]
pub struct CursorTable {
    schema: &'static str,
}

impl CursorTable {
    /// The cursor table of `schema`.
    pub const fn in_schema(schema: &'static str) -> Self {
        CursorTable { schema }
    }

    /// The cursors `consumer` has committed, per tenant.
    pub async fn load(
        &self,
        conn: &mut PgConnection,
        consumer: &str,
    ) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let sql = format!(
            "SELECT tenant_id, last_sequence FROM {}.consumer_cursors WHERE consumer = $1",
            self.schema
        );
        sqlx::query_as(&sql).bind(consumer).fetch_all(conn).await
    }

    /// Moves `consumer`'s cursor for `tenant` forward to `consumed_through`; never backwards,
    /// so a replayed older batch cannot rewind it.
    pub async fn advance(
        &self,
        conn: &mut PgConnection,
        consumer: &str,
        tenant: &str,
        consumed_through: i64,
    ) -> Result<(), sqlx::Error> {
        let sql = format!(
            "INSERT INTO {s}.consumer_cursors (consumer, tenant_id, last_sequence) VALUES ($1, $2, $3)
             ON CONFLICT (consumer, tenant_id) DO UPDATE
               SET last_sequence = GREATEST({s}.consumer_cursors.last_sequence, EXCLUDED.last_sequence),
                   updated_at = now()",
            s = self.schema
        );
        sqlx::query(&sql)
            .bind(consumer)
            .bind(tenant)
            .bind(consumed_through)
            .execute(conn)
            .await?;
        Ok(())
    }
}
