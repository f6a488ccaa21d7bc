//! The modeling service: the unified event store (every clean event with
//! the person it belongs to) and the journey models computed over it.
//!
//! `worker` tails governance's clean log and resolves persons through the
//! identity service; `identity_changes` applies identity's merges, splits,
//! erasures and consent changes to the stored history; `store` holds all SQL; `grpc` is the thin adapter.

pub mod grpc;
pub mod identity_changes;
pub mod merges;
pub mod split;
pub mod store;
pub mod worker;

pub use grpc::ModelingApi;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "modeling";

/// The cursor name under which the event-store worker records its progress.
pub const CLEAN_LOG_CONSUMER: &str = "modeling.events";

/// Migrations of the `modeling` schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
