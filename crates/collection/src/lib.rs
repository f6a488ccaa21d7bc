//! The collection service: takes in every channel's events and appends them,
//! durably and exactly once, to the tenant's raw event log, which the
//! governance stage tails; keeps the registry of sources and imports files.
//!
//! `domain` decides what is valid without knowing about gRPC or SQL; `store`
//! holds all SQL; `ingest`, `committer`, `sources` and `imports` are the
//! service layer that owns transactions; `grpc` is the thin adapter.

pub mod append_path;
pub mod committer;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod imports;
pub mod ingest;
pub mod limits;
pub mod sources;
pub mod store;

pub use config::CollectionConfig;
pub use grpc::CollectionApi;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "collection";

/// Notified (payload: tenant) whenever a tenant's raw log grows.
pub const RAW_LOG_CHANNEL: &str = "touchline_collection_raw_log";

/// Migrations of the `collection` schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
