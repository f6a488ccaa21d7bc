//! Table upkeep: VACUUM and ANALYZE of the services' own schemas when
//! PostgreSQL's autovacuum is off.
//!
//! The graph, the logs and the outboxes are rewritten all the time (every
//! identity merge writes new versions of identifier and person rows, every
//! relayed invalidation deletes an outbox row). Without VACUUM the dead
//! versions pile up in tables and indexes, and without ANALYZE the planner
//! never learns the tables grew: on a server with autovacuum off a graph
//! build that starts at 10,000 events/s is down to about 1,300 after five
//! minutes, and one manual `VACUUM ANALYZE` brings it back to 16,000.
//! Servers run for CI or by a cautious DBA do switch autovacuum off, so in
//! the default mode (`auto`) the service looks after its own tables when
//! PostgreSQL does not, and stays out of the way when it does.
//!
//! Which tables need what is a pure decision ([`needed`]); the loop that
//! reads `pg_stat_user_tables` and runs the statements is [`Upkeep`].
//! Replicas running it at once do not queue behind each other: VACUUM
//! runs with `SKIP_LOCKED`, so a table another replica is vacuuming is
//! skipped this round.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use sqlx::{ConnectOptions as _, PgPool};
use tracing::log;

/// When the service vacuums and analyses its own tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpkeepMode {
    /// Only when PostgreSQL's autovacuum is off (checked at start).
    #[default]
    Auto,
    /// Always, beside autovacuum.
    Always,
    /// Never.
    Off,
}

/// Table upkeep settings (`database.upkeep`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpkeepConfig {
    /// Whether upkeep runs.
    pub mode: UpkeepMode,
    /// Time between two looks at the tables' statistics.
    pub interval_ms: u64,
    /// The thresholds a table is judged by.
    pub thresholds: Thresholds,
    /// The upkeep connection's `vacuum_cost_delay`, in milliseconds: VACUUM and ANALYZE pause
    /// this long each time they have done `vacuum_cost_limit` worth of page work, as
    /// autovacuum does (its default is 2 ms). Unthrottled, the service's passes over a
    /// fast-growing database take a core for seconds at a time, and every call waits behind
    /// them. 0 turns the pause off.
    pub cost_delay_ms: u32,
}

impl Default for UpkeepConfig {
    fn default() -> Self {
        Self {
            mode: UpkeepMode::Auto,
            interval_ms: 10_000,
            thresholds: Thresholds::default(),
            cost_delay_ms: 2,
        }
    }
}

/// When a table is due. Tighter than autovacuum's defaults (20 % dead, 10 %
/// changed), because the tables that churn here are small and hot: a few
/// thousand dead versions of a person row are already felt by every lookup.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Rows dead or changed below this never make a table due.
    pub min_rows: i64,
    /// VACUUM (with ANALYZE) when dead rows exceed `min_rows` plus this
    /// share of the live rows.
    pub dead_fraction: f64,
    /// ANALYZE when rows changed since the last ANALYZE exceed `min_rows`
    /// plus this share of the live rows.
    pub changed_fraction: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            min_rows: 1_000,
            dead_fraction: 0.1,
            changed_fraction: 0.05,
        }
    }
}

/// What `pg_stat_user_tables` says of one table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TableStats {
    /// `schema.table`, each part quoted as an identifier.
    pub name: String,
    /// Live rows (estimate).
    pub live: i64,
    /// Dead row versions not yet vacuumed.
    pub dead: i64,
    /// Rows inserted, updated or deleted since the last ANALYZE.
    pub changed: i64,
}

/// The work a table is due for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// `VACUUM (ANALYZE)`: reclaims dead versions and refreshes statistics.
    VacuumAnalyze,
    /// `ANALYZE` alone: the table grew or changed without leaving much dead.
    Analyze,
}

/// The work `table` is due for under `thresholds`, if any.
pub fn needed(table: &TableStats, thresholds: &Thresholds) -> Option<Work> {
    let bound = |fraction: f64| thresholds.min_rows as f64 + fraction * table.live.max(0) as f64;
    if table.dead as f64 > bound(thresholds.dead_fraction) {
        Some(Work::VacuumAnalyze)
    } else if table.changed as f64 > bound(thresholds.changed_fraction) {
        Some(Work::Analyze)
    } else {
        None
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Tables vacuumed and analysed.
    pub vacuumed: Vec<String>,
    /// Tables analysed only.
    pub analysed: Vec<String>,
}

/// The upkeep of some schemas of one database.
#[derive(Debug, Clone)]
pub struct Upkeep {
    pool: PgPool,
    /// One connection of its own, opened when first needed: VACUUM of a big
    /// table takes seconds, which must neither hold a connection the
    /// service's calls wait for nor be logged as a slow statement of theirs.
    vacuum_pool: PgPool,
    schemas: Vec<String>,
    config: UpkeepConfig,
}

impl Upkeep {
    /// Upkeep of `schemas` through `pool`.
    pub fn new(pool: PgPool, schemas: Vec<String>, config: UpkeepConfig) -> Self {
        let options = (*pool.connect_options())
            .clone()
            .options([(
                "vacuum_cost_delay",
                format!("{}ms", config.cost_delay_ms.min(100)),
            )])
            .log_slow_statements(log::LevelFilter::Off, Duration::ZERO);
        let vacuum_pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(options);
        Self {
            pool,
            vacuum_pool,
            schemas,
            config,
        }
    }

    /// Whether this server needs the service to do it: always or never when
    /// the mode says so, otherwise when autovacuum is off.
    pub async fn wanted(&self) -> Result<bool, sqlx::Error> {
        match self.config.mode {
            UpkeepMode::Always => Ok(true),
            UpkeepMode::Off => Ok(false),
            UpkeepMode::Auto => {
                let autovacuum: bool =
                    sqlx::query_scalar("SELECT current_setting('autovacuum')::bool")
                        .fetch_one(&self.pool)
                        .await?;
                Ok(!autovacuum)
            }
        }
    }

    /// Runs passes every `interval_ms` until `stop` completes; returns at
    /// once when upkeep is not wanted. A failed pass is logged and the next
    /// one tried.
    pub async fn run_until(self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let wanted = tokio::select! {
            wanted = self.wanted() => wanted,
            () = &mut stop => return,
        };
        match wanted {
            Ok(true) => tracing::info!(
                schemas = ?self.schemas,
                mode = ?self.config.mode,
                "PostgreSQL's autovacuum is off or upkeep is forced: this service vacuums and analyses its own tables"
            ),
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot read the autovacuum setting; table upkeep not started");
                return;
            }
        }
        let interval = Duration::from_millis(self.config.interval_ms.max(100));
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = &mut stop => return,
            }
            // A pass is not interrupted: VACUUM holds no lock that stops
            // the service's own statements, and the connection must not be
            // handed back mid-statement.
            if let Err(error) = self.pass().await {
                tracing::warn!(%error, "table upkeep pass failed; trying again next interval");
            }
        }
    }

    /// Reads the statistics of the schemas' tables and vacuums or analyses
    /// those due.
    pub async fn pass(&self) -> Result<PassReport, sqlx::Error> {
        let due: Vec<(TableStats, Work)> = self
            .stats()
            .await?
            .into_iter()
            .filter_map(|table| needed(&table, &self.config.thresholds).map(|work| (table, work)))
            .collect();
        let mut report = PassReport::default();
        if due.is_empty() {
            return Ok(report);
        }
        for (table, work) in due {
            let statement = match work {
                Work::VacuumAnalyze => format!("VACUUM (ANALYZE, SKIP_LOCKED) {}", table.name),
                Work::Analyze => format!("ANALYZE (SKIP_LOCKED) {}", table.name),
            };
            let started = Instant::now();
            // The simple protocol: VACUUM may not run inside the implicit
            // transaction a pipelined extended-protocol exchange can open.
            sqlx::raw_sql(&statement).execute(&self.vacuum_pool).await?;
            tracing::debug!(
                table = %table.name,
                live = table.live,
                dead = table.dead,
                changed = table.changed,
                elapsed_ms = started.elapsed().as_millis() as u64,
                ?work,
                "table upkeep"
            );
            match work {
                Work::VacuumAnalyze => report.vacuumed.push(table.name),
                Work::Analyze => report.analysed.push(table.name),
            }
        }
        Ok(report)
    }

    /// The upkeep connection's `vacuum_cost_delay`, as the server reports it.
    #[cfg(test)]
    async fn cost_delay(&self) -> Result<String, sqlx::Error> {
        sqlx::query_scalar("SHOW vacuum_cost_delay")
            .fetch_one(&self.vacuum_pool)
            .await
    }

    async fn stats(&self) -> Result<Vec<TableStats>, sqlx::Error> {
        sqlx::query_as(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(relname) AS name,
                    n_live_tup AS live, n_dead_tup AS dead, n_mod_since_analyze AS changed
               FROM pg_stat_user_tables
              WHERE schemaname = ANY($1)
              ORDER BY schemaname, relname",
        )
        .bind(&self.schemas)
        .fetch_all(&self.pool)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(live: i64, dead: i64, changed: i64) -> TableStats {
        TableStats {
            name: "s.t".to_owned(),
            live,
            dead,
            changed,
        }
    }

    #[test]
    fn a_quiet_table_is_left_alone() {
        let t = Thresholds::default();
        assert_eq!(needed(&table(0, 0, 0), &t), None);
        assert_eq!(needed(&table(1_000_000, 50_000, 40_000), &t), None);
    }

    #[test]
    fn dead_rows_beyond_the_bound_call_for_vacuum() {
        let t = Thresholds::default();
        // 1,000 + 10 % of 100,000 = 11,000.
        assert_eq!(needed(&table(100_000, 11_000, 0), &t), None);
        assert_eq!(
            needed(&table(100_000, 11_001, 0), &t),
            Some(Work::VacuumAnalyze)
        );
        // A small table is judged by the floor alone.
        assert_eq!(needed(&table(10, 1_002, 0), &t), Some(Work::VacuumAnalyze));
    }

    #[test]
    fn change_without_dead_rows_calls_for_analyze_only() {
        let t = Thresholds::default();
        // An insert-only log: nothing dead, 1,000 + 5 % of 100,000 = 6,000.
        assert_eq!(needed(&table(100_000, 0, 6_000), &t), None);
        assert_eq!(needed(&table(100_000, 0, 6_001), &t), Some(Work::Analyze));
        // A freshly filled table whose statistics were never gathered.
        assert_eq!(needed(&table(0, 0, 5_000), &t), Some(Work::Analyze));
    }

    #[test]
    fn vacuum_wins_when_both_are_due() {
        let t = Thresholds::default();
        assert_eq!(
            needed(&table(10_000, 5_000, 50_000), &t),
            Some(Work::VacuumAnalyze)
        );
    }

    #[test]
    fn negative_estimates_count_as_empty() {
        // pg_stat reports -1 for never-counted tables in some versions.
        let t = Thresholds::default();
        assert_eq!(needed(&table(-1, 1_001, 0), &t), Some(Work::VacuumAnalyze));
    }
}

/// Against the real server. VACUUM can only remove rows no open snapshot
/// in the same database may still see, and the rest of the suite runs
/// transactions in parallel, so each test gets a database of its own.
#[cfg(test)]
mod database_tests {
    use sqlx::Connection as _;

    use super::*;
    use crate::testing::{TestDatabase, admin_url};

    async fn fresh_schema(pool: &PgPool) -> String {
        let schema = format!("upkeep_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.churned (id bigint PRIMARY KEY, v text);
             CREATE TABLE {schema}.quiet (id bigint PRIMARY KEY);"
        ))
        .execute(pool)
        .await
        .expect("creating the test schema");
        schema
    }

    /// Statistics reach `pg_stat_user_tables` when a session flushes them;
    /// the session that made the changes forces that before it ends.
    async fn churn(url: &str, schema: &str) {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .expect("connecting to PostgreSQL");
        sqlx::raw_sql(&format!(
            "INSERT INTO {schema}.churned SELECT g, 'x' FROM generate_series(1, 5000) g;
             DELETE FROM {schema}.churned WHERE id > 1000;
             INSERT INTO {schema}.quiet SELECT g FROM generate_series(1, 10) g;"
        ))
        .execute(&mut conn)
        .await
        .expect("churning the table");
        sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(&mut conn)
            .await
            .expect("flushing statistics");
        conn.close().await.expect("closing");
    }

    async fn counts(pool: &PgPool, schema: &str, table: &str) -> (i64, i64, i64) {
        sqlx::query_as(
            "SELECT vacuum_count, analyze_count, n_dead_tup FROM pg_stat_user_tables
              WHERE schemaname = $1 AND relname = $2",
        )
        .bind(schema)
        .bind(table)
        .fetch_one(pool)
        .await
        .expect("reading table statistics")
    }

    #[tokio::test]
    async fn a_pass_vacuums_the_churned_table_and_leaves_the_quiet_one() {
        let database = TestDatabase::create()
            .await
            .expect("creating the test database");
        let url = database.url.clone();
        let pool = PgPool::connect(&url)
            .await
            .expect("connecting to PostgreSQL");
        let schema = fresh_schema(&pool).await;
        churn(&url, &schema).await;
        // The statistics collector may still be publishing; wait for the
        // dead rows to show before judging.
        let deadline = Instant::now() + Duration::from_secs(10);
        while counts(&pool, &schema, "churned").await.2 < 4_000 {
            assert!(Instant::now() < deadline, "dead rows never showed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let upkeep = Upkeep::new(
            pool.clone(),
            vec![schema.clone()],
            UpkeepConfig {
                mode: UpkeepMode::Always,
                ..UpkeepConfig::default()
            },
        );
        assert!(upkeep.wanted().await.expect("reading the mode"));
        assert_eq!(
            upkeep.cost_delay().await.expect("reading the cost delay"),
            "2ms",
            "upkeep is throttled as autovacuum is"
        );
        let report = upkeep.pass().await;
        let vacuumed = counts(&pool, &schema, "churned").await;
        let quiet = counts(&pool, &schema, "quiet").await;
        pool.close().await;
        let report = report.expect("an upkeep pass");
        assert_eq!(report.vacuumed, vec![format!("{schema}.churned")]);
        assert!(report.analysed.is_empty(), "{report:?}");
        assert_eq!(
            (vacuumed.0, vacuumed.1),
            (1, 1),
            "vacuum and analyze counts"
        );
        assert_eq!(vacuumed.2, 0, "dead rows left after VACUUM");
        assert_eq!((quiet.0, quiet.1), (0, 0), "the quiet table was touched");
    }

    #[tokio::test]
    async fn off_is_never_wanted_and_auto_follows_autovacuum() {
        let pool = PgPool::connect(&admin_url())
            .await
            .expect("connecting to PostgreSQL");
        let with = |mode| {
            Upkeep::new(
                pool.clone(),
                Vec::new(),
                UpkeepConfig {
                    mode,
                    ..UpkeepConfig::default()
                },
            )
        };
        assert!(!with(UpkeepMode::Off).wanted().await.expect("off"));
        let autovacuum: bool = sqlx::query_scalar("SELECT current_setting('autovacuum')::bool")
            .fetch_one(&pool)
            .await
            .expect("reading autovacuum");
        assert_eq!(
            with(UpkeepMode::Auto).wanted().await.expect("auto"),
            !autovacuum
        );
    }
}
