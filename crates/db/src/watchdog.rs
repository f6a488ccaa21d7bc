//! Is the database answering? A watchdog keeps one connection of its own (outside the pool,
//! so a busy pool is never taken for a dead database) and pings it every second with a short
//! timeout, reporting each change of answer once, with how long the outage lasted.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};

/// How often the database is pinged.
pub const PING_EVERY: Duration = Duration::from_secs(1);
/// How long a ping may take before the database counts as not answering.
pub const PING_TIMEOUT: Duration = Duration::from_millis(900);

/// One connection that pings the database.
#[derive(Debug)]
pub struct Watchdog {
    options: PgConnectOptions,
    conn: Option<PgConnection>,
    down_since: Option<Instant>,
    failures: u64,
}

/// A change of the database's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It stopped answering.
    Down,
    /// It answers again after `outage`, during which `failures` pings failed.
    Up {
        /// How long it did not answer.
        outage: Duration,
        /// Pings that failed meanwhile.
        failures: u64,
    },
}

impl Watchdog {
    /// A watchdog connecting with `options`.
    pub fn new(options: PgConnectOptions) -> Self {
        Self {
            options,
            conn: None,
            down_since: None,
            failures: 0,
        }
    }

    /// Pings once; returns the change this ping saw, if any.
    pub async fn check(&mut self) -> Option<Change> {
        let answered = tokio::time::timeout(PING_TIMEOUT, self.ping())
            .await
            .unwrap_or(false);
        if !answered {
            // A connection that timed out may be mid-statement: never reuse it.
            self.conn = None;
        }
        match (answered, self.down_since) {
            (true, Some(since)) => {
                self.down_since = None;
                let failures = std::mem::take(&mut self.failures);
                Some(Change::Up {
                    outage: since.elapsed(),
                    failures,
                })
            }
            (false, None) => {
                self.down_since = Some(Instant::now());
                self.failures = 1;
                Some(Change::Down)
            }
            (false, Some(_)) => {
                self.failures += 1;
                None
            }
            (true, None) => None,
        }
    }

    async fn ping(&mut self) -> bool {
        if self.conn.is_none() {
            self.conn = self.options.connect().await.ok();
        }
        match &mut self.conn {
            Some(conn) => conn.ping().await.is_ok(),
            None => false,
        }
    }
}
