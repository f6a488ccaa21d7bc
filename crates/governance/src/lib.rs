//! The governance service: turns raw events into canonical clean events (or
//! quarantined ones with a typed reason) and publishes the clean event log,
//! which the modeling stage tails.
//!
//! Identity's and modeling's shape: `grpc` is the thin adapter (authorise,
//! convert), `service` the transport-free layer (the dictionary's draft and
//! versions, privacy settings, quarantine listing and replay, reprocess jobs,
//! the quality ledger), `domain` the pure cleaning logic (dictionary, time,
//! PII, mapping, natural keys) and the request rules, `store` all SQL, and
//! `error` the one mapping to gRPC codes. The pipeline side: `upstream` is the
//! typed client of collection (raw log, source registry, ingest counters),
//! `sources` caches the source settings cleaning needs, `worker` tails
//! collection's raw log, `replay` re-cleans quarantined events and `reprocess`
//! re-cleans a range of raw events to report the difference.

pub mod domain;
pub mod error;
pub mod grpc;
pub mod ingest;
pub mod replay;
pub mod reprocess;
pub mod service;
pub mod sources;
pub mod store;
pub mod upstream;
pub mod worker;

pub use error::GovernanceError;
pub use grpc::GovernanceApi;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "governance";

/// Notified (payload: tenant) whenever a tenant's clean log grows.
pub const CLEAN_LOG_CHANNEL: &str = "touchline_governance_clean_log";

/// The cursor name under which the cleaning worker records its progress.
pub const RAW_LOG_CONSUMER: &str = "governance.clean";

/// Migrations of the `governance` schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
