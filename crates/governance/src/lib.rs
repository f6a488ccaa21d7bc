//! The governance service: turns raw events into canonical clean events (or
//! quarantined ones with a typed reason) and publishes the clean event log,
//! which the modeling stage tails.
//!
//! `clean` is the pure cleaning step, `store` holds all SQL, `worker` tails
//! collection's raw log, `grpc` is the thin adapter.

pub mod clean;
pub mod grpc;
pub mod store;
pub mod worker;

pub use grpc::GovernanceApi;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "governance";

/// Notified (payload: tenant) whenever a tenant's clean log grows.
pub const CLEAN_LOG_CHANNEL: &str = "touchline_governance_clean_log";

/// The cursor name under which the cleaning worker records its progress.
pub const RAW_LOG_CONSUMER: &str = "governance.clean";

/// Migrations of the `governance` schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
