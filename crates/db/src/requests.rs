//! Idempotency keys: a write that carries a `request_id` acts once, and its
//! retries get the first reply back.
//!
//! A keyed call *claims* its key before acting: it inserts a row with no
//! reply, which is "in flight" to every other call with the same key, and
//! fills the reply in when it is done. Looking the reply up first and
//! storing it afterwards is not enough: two duplicates arriving together
//! both miss the lookup and both act.
//!
//! Two ways to use it:
//! - a call that does its work in one transaction claims and completes
//!   inside that transaction ([`RequestTable::claim`] and
//!   [`RequestTable::complete`] on the transaction). A duplicate's claim
//!   then waits on the row until the first commits and reads its reply,
//!   or takes the key over if the first rolled back;
//! - a call spread over several transactions runs under
//!   [`RequestTable::run`], which claims on its own connection, completes
//!   or releases afterwards, and releases the key if the call is dropped
//!   half-way (the client went away).
//!
//! Every service keeps its keys in a table of its own schema shaped
//! `(tenant_id text, request_id text, method text, response bytea NULL,
//! created_at timestamptz)` with a unique key on (tenant_id, request_id,
//! method).

use std::future::Future;
use std::time::Duration;

use sqlx::{PgConnection, PgPool};

/// How long a key is remembered.
pub const RETENTION_HOURS: i32 = 24;

/// A claim older than this without a reply is taken to be left by a
/// crashed process: the calls keyed this way finish in seconds.
pub const STALE_CLAIM_SECONDS: i32 = 60;

/// How often keys past their retention are deleted.
pub const EXPIRE_EVERY: Duration = Duration::from_secs(600);

/// Deletes the keys past their retention in `tables` now and every
/// [`EXPIRE_EVERY`], until `stop` completes. One process doing it is enough;
/// replicas doing it too only delete nothing.
pub async fn expire_until(pool: PgPool, tables: Vec<RequestTable>, stop: impl Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    loop {
        for table in &tables {
            match table.expire(&pool).await {
                Ok(0) => {}
                Ok(expired) => {
                    tracing::debug!(table = table.table, expired, "expired idempotency keys")
                }
                Err(err) => {
                    tracing::warn!(table = table.table, error = %err, "expiring idempotency keys failed")
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(EXPIRE_EVERY) => {}
            () = &mut stop => return,
        }
    }
}

/// What a call finds when it claims its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is this call's: it acts, then completes or releases it.
    Owned,
    /// Another call with the key is acting now.
    InFlight,
    /// An earlier call finished; its reply.
    Done(Vec<u8>),
}

/// What [`RequestTable::run`] did with a keyed call.
#[derive(Debug)]
pub enum Run<R> {
    /// The key was this call's; the call ran and this is its result.
    Acted(R),
    /// An earlier call with the key finished; its stored reply.
    Replayed(Vec<u8>),
    /// Another call with the key is acting now; the caller should retry
    /// shortly.
    InFlight,
}

/// One call's key: whose, which, and for what method.
#[derive(Debug, Clone, Copy)]
pub struct RequestKey<'a> {
    /// The tenant making the call.
    pub tenant: &'a str,
    /// The caller's `request_id`, already checked to be well formed.
    pub request_id: &'a str,
    /// The method (or method and resource) the key is for: one id sent to
    /// two methods is two keys.
    pub method: &'a str,
}

/// A service's idempotency-key table. The name is written into SQL, so it
/// is only ever one of the services' constants.
#[derive(Debug, Clone, Copy)]
pub struct RequestTable {
    table: &'static str,
}

impl RequestTable {
    /// The key table `schema.table`.
    pub const fn named(table: &'static str) -> Self {
        RequestTable { table }
    }

    /// Claims `key`. A key past its retention, or claimed more than
    /// [`STALE_CLAIM_SECONDS`] ago without a reply, is claimed afresh.
    /// Inside a transaction, a claim by another open transaction is waited
    /// for.
    pub async fn claim(
        &self,
        conn: &mut PgConnection,
        key: &RequestKey<'_>,
    ) -> Result<Claim, sqlx::Error> {
        let claim = format!(
            "INSERT INTO {table} AS r (tenant_id, request_id, method, response)
             VALUES ($1, $2, $3, NULL)
             ON CONFLICT (tenant_id, request_id, method) DO UPDATE
                SET response = NULL, created_at = now()
              WHERE r.created_at < now() - make_interval(hours => $4)
                 OR (r.response IS NULL AND r.created_at < now() - make_interval(secs => $5))
             RETURNING 1",
            table = self.table
        );
        let claimed: Option<i32> = sqlx::query_scalar(&claim)
            .bind(key.tenant)
            .bind(key.request_id)
            .bind(key.method)
            .bind(RETENTION_HOURS)
            .bind(f64::from(STALE_CLAIM_SECONDS))
            .fetch_optional(&mut *conn)
            .await?;
        if claimed.is_some() {
            return Ok(Claim::Owned);
        }
        let read = format!(
            "SELECT response FROM {table}
              WHERE tenant_id = $1 AND request_id = $2 AND method = $3",
            table = self.table
        );
        let held: Option<Option<Vec<u8>>> = sqlx::query_scalar(&read)
            .bind(key.tenant)
            .bind(key.request_id)
            .bind(key.method)
            .fetch_optional(&mut *conn)
            .await?;
        // Gone since the insert: its owner failed and released it. Reporting
        // it in flight sends the caller back, and its retry claims it.
        Ok(match held.flatten() {
            Some(reply) => Claim::Done(reply),
            None => Claim::InFlight,
        })
    }

    /// Stores the reply of the call holding `key`.
    pub async fn complete(
        &self,
        conn: &mut PgConnection,
        key: &RequestKey<'_>,
        reply: &[u8],
    ) -> Result<(), sqlx::Error> {
        let sql = format!(
            "UPDATE {table} SET response = $4
              WHERE tenant_id = $1 AND request_id = $2 AND method = $3 AND response IS NULL",
            table = self.table
        );
        keyed(&sql, key).bind(reply).execute(conn).await?;
        Ok(())
    }

    /// Gives up the claim of a call that failed, so its retry acts afresh.
    pub async fn release(&self, pool: &PgPool, key: &RequestKey<'_>) -> Result<(), sqlx::Error> {
        let sql = format!(
            "DELETE FROM {table}
              WHERE tenant_id = $1 AND request_id = $2 AND method = $3 AND response IS NULL",
            table = self.table
        );
        keyed(&sql, key).execute(pool).await?;
        Ok(())
    }

    /// Forgets keys past their retention, for every tenant.
    pub async fn expire(&self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        let sql = format!(
            "DELETE FROM {table} WHERE created_at < now() - make_interval(hours => $1)",
            table = self.table
        );
        Ok(sqlx::query(&sql)
            .bind(RETENTION_HOURS)
            .execute(pool)
            .await?
            .rows_affected())
    }

    /// Runs `call` once per key. The key is claimed before the call; a
    /// successful result is stored (as `encode` writes it) for retries, and
    /// a failed one releases the key so a retry acts afresh, as does
    /// dropping the returned future before it finishes. Only the claim's
    /// own failure is an `Err`; storing or releasing afterwards is logged,
    /// since the call has happened either way.
    pub async fn run<T, E, F>(
        &self,
        pool: &PgPool,
        key: &RequestKey<'_>,
        call: F,
        encode: impl FnOnce(&T) -> Vec<u8>,
    ) -> Result<Run<Result<T, E>>, sqlx::Error>
    where
        F: Future<Output = Result<T, E>>,
    {
        let claim = {
            let mut conn = pool.acquire().await?;
            self.claim(&mut conn, key).await?
        };
        match claim {
            Claim::Done(reply) => return Ok(Run::Replayed(reply)),
            Claim::InFlight => return Ok(Run::InFlight),
            Claim::Owned => {}
        }
        let mut guard = ReleaseOnDrop {
            table: *self,
            pool: pool.clone(),
            key: OwnedKey::from(key),
            armed: true,
        };
        let result = call.await;
        guard.armed = false;
        match &result {
            Ok(value) => {
                let reply = encode(value);
                let stored = match pool.acquire().await {
                    Ok(mut conn) => self.complete(&mut conn, key, &reply).await,
                    Err(err) => Err(err),
                };
                if let Err(err) = stored {
                    tracing::warn!(error = %err, method = key.method, "storing an idempotent reply failed");
                }
            }
            Err(_) => {
                if let Err(err) = self.release(pool, key).await {
                    tracing::warn!(error = %err, method = key.method, "releasing an idempotency key failed");
                }
            }
        }
        Ok(Run::Acted(result))
    }
}

/// A statement about one key, its first three parameters bound to it.
fn keyed<'q>(
    sql: &'q str,
    key: &RequestKey<'q>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(key.tenant)
        .bind(key.request_id)
        .bind(key.method)
}

#[derive(Debug, Default)]
struct OwnedKey {
    tenant: String,
    request_id: String,
    method: String,
}

impl From<&RequestKey<'_>> for OwnedKey {
    fn from(key: &RequestKey<'_>) -> Self {
        OwnedKey {
            tenant: key.tenant.to_owned(),
            request_id: key.request_id.to_owned(),
            method: key.method.to_owned(),
        }
    }
}

/// Releases a claimed key when the call holding it is dropped mid-way, so
/// the client's retry is not refused until the claim goes stale.
struct ReleaseOnDrop {
    table: RequestTable,
    pool: PgPool,
    key: OwnedKey,
    armed: bool,
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (table, pool) = (self.table, self.pool.clone());
        let key = std::mem::take(&mut self.key);
        runtime.spawn(async move {
            let borrowed = RequestKey {
                tenant: &key.tenant,
                request_id: &key.request_id,
                method: &key.method,
            };
            if let Err(err) = table.release(&pool, &borrowed).await {
                tracing::warn!(error = %err, method = key.method, "releasing a cancelled call's idempotency key failed");
            }
        });
    }
}

/// Against the real server, in a database of its own per test.
#[cfg(test)]
mod database_tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::testing::TestDatabase;

    const TABLE: RequestTable = RequestTable::named("keys_test.requests");

    async fn keyed_pool() -> (TestDatabase, PgPool) {
        let database = TestDatabase::create()
            .await
            .expect("creating the test database");
        let pool = PgPool::connect(&database.url)
            .await
            .expect("connecting to PostgreSQL");
        sqlx::raw_sql(
            "CREATE SCHEMA keys_test;
             CREATE TABLE keys_test.requests (
                tenant_id text NOT NULL, request_id text NOT NULL, method text NOT NULL,
                response bytea, created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (tenant_id, request_id, method));",
        )
        .execute(&pool)
        .await
        .expect("creating the key table");
        (database, pool)
    }

    fn key<'a>(tenant: &'a str, method: &'a str) -> RequestKey<'a> {
        RequestKey {
            tenant,
            request_id: "5f0c7a52-8d7e-4b7e-9a55-0d7f6c0c1a01",
            method,
        }
    }

    async fn claim(pool: &PgPool, key: &RequestKey<'_>) -> Claim {
        let mut conn = pool.acquire().await.expect("a connection");
        TABLE.claim(&mut conn, key).await.expect("claiming")
    }

    async fn age(pool: &PgPool, seconds: i32) {
        sqlx::query("UPDATE keys_test.requests SET created_at = now() - make_interval(secs => $1)")
            .bind(f64::from(seconds))
            .execute(pool)
            .await
            .expect("ageing the keys");
    }

    #[tokio::test]
    async fn a_key_is_claimed_once_completed_released_and_taken_over_when_stale() {
        let (_database, pool) = keyed_pool().await;
        let link = key("acme", "Link");
        assert_eq!(claim(&pool, &link).await, Claim::Owned);
        assert_eq!(claim(&pool, &link).await, Claim::InFlight);
        // The same id is another key for another tenant or method.
        assert_eq!(claim(&pool, &key("other", "Link")).await, Claim::Owned);
        assert_eq!(claim(&pool, &key("acme", "Split")).await, Claim::Owned);

        TABLE.release(&pool, &link).await.expect("releasing");
        assert_eq!(claim(&pool, &link).await, Claim::Owned);
        let mut conn = pool.acquire().await.expect("a connection");
        TABLE
            .complete(&mut conn, &link, b"first")
            .await
            .expect("completing");
        TABLE
            .complete(&mut conn, &link, b"second")
            .await
            .expect("completing again");
        drop(conn);
        assert_eq!(claim(&pool, &link).await, Claim::Done(b"first".to_vec()));
        // Releasing a completed key changes nothing.
        TABLE.release(&pool, &link).await.expect("releasing");
        assert_eq!(claim(&pool, &link).await, Claim::Done(b"first".to_vec()));

        // A claim left without a reply past the stale bound is taken over;
        // a reply is kept until the retention ends.
        age(&pool, STALE_CLAIM_SECONDS + 1).await;
        assert_eq!(claim(&pool, &key("other", "Link")).await, Claim::Owned);
        assert_eq!(claim(&pool, &link).await, Claim::Done(b"first".to_vec()));
        age(&pool, RETENTION_HOURS * 3600 + 1).await;
        assert_eq!(TABLE.expire(&pool).await.expect("expiring"), 3);
        assert_eq!(claim(&pool, &link).await, Claim::Owned);
    }

    #[tokio::test]
    async fn inside_a_transaction_a_duplicate_waits_for_the_first_and_reads_its_reply() {
        let (_database, pool) = keyed_pool().await;
        let create = key("acme", "CreateSource");
        let mut first = pool.begin().await.expect("a transaction");
        assert_eq!(
            TABLE.claim(&mut first, &create).await.expect("claiming"),
            Claim::Owned
        );
        let duplicate = tokio::spawn({
            let pool = pool.clone();
            async move {
                let mut second = pool.begin().await.expect("a transaction");
                let found = TABLE
                    .claim(&mut second, &key("acme", "CreateSource"))
                    .await
                    .expect("claiming");
                second.commit().await.expect("committing");
                found
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!duplicate.is_finished(), "the duplicate did not wait");
        TABLE
            .complete(&mut first, &create, b"created")
            .await
            .expect("completing");
        first.commit().await.expect("committing");
        assert_eq!(
            duplicate.await.expect("the duplicate"),
            Claim::Done(b"created".to_vec())
        );

        // A rolled-back first call leaves the key to the duplicate.
        let update = key("acme", "UpdateSource");
        let mut first = pool.begin().await.expect("a transaction");
        TABLE.claim(&mut first, &update).await.expect("claiming");
        let duplicate = tokio::spawn({
            let pool = pool.clone();
            async move {
                let mut second = pool.begin().await.expect("a transaction");
                TABLE
                    .claim(&mut second, &key("acme", "UpdateSource"))
                    .await
                    .expect("claiming")
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        first.rollback().await.expect("rolling back");
        assert_eq!(duplicate.await.expect("the duplicate"), Claim::Owned);
    }

    #[tokio::test]
    #[expect(
        clippy::too_many_lines,
        reason = "a concurrency scenario told step by step"
    )]
    async fn concurrent_runs_of_one_key_act_once_and_failures_and_cancellations_release_it() {
        let (_database, pool) = keyed_pool().await;
        let acted = Arc::new(AtomicUsize::new(0));
        let mut runs = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (pool, acted) = (pool.clone(), acted.clone());
            runs.spawn(async move {
                TABLE
                    .run(
                        &pool,
                        &key("acme", "Replay"),
                        async {
                            acted.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            Ok::<_, ()>(7_u8)
                        },
                        |n| vec![*n],
                    )
                    .await
                    .expect("running")
            });
        }
        let outcomes = runs.join_all().await;
        assert_eq!(acted.load(Ordering::SeqCst), 1, "{outcomes:?}");
        // The rest were refused while it acted, or (on a slow machine)
        // arrived after it and got its reply.
        let acted_runs = outcomes
            .iter()
            .filter(|o| matches!(o, Run::Acted(Ok(7))))
            .count();
        assert_eq!(acted_runs, 1, "{outcomes:?}");
        assert!(
            outcomes.iter().all(|o| match o {
                Run::Acted(result) => *result == Ok(7),
                Run::Replayed(reply) => *reply == [7],
                Run::InFlight => true,
            }),
            "{outcomes:?}"
        );
        assert!(matches!(
            TABLE
                .run(&pool, &key("acme", "Replay"), async { Ok::<_, ()>(9_u8) }, |n| vec![*n])
                .await
                .expect("running"),
            Run::Replayed(reply) if reply == [7]
        ));

        // A failed call gives its key back: the retry acts.
        let failed = TABLE
            .run(
                &pool,
                &key("acme", "Fails"),
                async { Err::<u8, _>("no") },
                |n| vec![*n],
            )
            .await
            .expect("running");
        assert!(matches!(failed, Run::Acted(Err("no"))));
        assert!(matches!(
            TABLE
                .run(
                    &pool,
                    &key("acme", "Fails"),
                    async { Ok::<_, ()>(1_u8) },
                    |n| vec![*n]
                )
                .await
                .expect("running"),
            Run::Acted(Ok(1))
        ));

        // So does a call dropped half-way.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(100),
            TABLE.run(
                &pool,
                &key("acme", "Cancelled"),
                async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok::<_, ()>(1_u8)
                },
                |n| vec![*n],
            ),
        )
        .await;
        assert!(cancelled.is_err(), "the call was not cut short");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut conn = pool.acquire().await.expect("a connection");
            match TABLE
                .claim(&mut conn, &key("acme", "Cancelled"))
                .await
                .expect("claiming")
            {
                Claim::Owned => break,
                other => assert!(
                    std::time::Instant::now() < deadline,
                    "the cancelled call's key was never released: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
