//! PostgreSQL for every touchline service: the connection pool, per-service
//! schema migrations embedded in the binary, SQLSTATE classification, and the
//! LISTEN/NOTIFY fan-out that wakes log tailers, and the upkeep of the
//! services' tables where autovacuum is off.
//!
//! Each service owns one schema and keeps its own `_sqlx_migrations` table in
//! it, so the five migration histories never collide in a shared database.

pub mod classify;
pub mod cursors;
pub mod heads;
pub mod notify;
mod pool;
pub mod requests;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod upkeep;
pub mod watchdog;

pub use classify::{DbErrorKind, classify};
pub use cursors::CursorTable;
pub use heads::HeadTable;
pub use notify::{LogNotifier, wake_tailers};
pub use pool::{DbConfig, connect, migrate};
pub use requests::{Claim, RequestKey, RequestTable, Run};
pub use sqlx;
pub use upkeep::{Upkeep, UpkeepConfig, UpkeepMode};
