//! The modeling service: the unified event store (every clean event with
//! the person it belongs to) and the journey models computed over it.
//!
//! Identity's shape: `grpc` is the thin adapter (authorise, convert), `service` the
//! transport-free layer (reads, the read-your-writes wait, dead-letter replay), `domain` the
//! request rules, `store` all SQL, `error` the one mapping to gRPC codes. The pipeline side:
//! `worker` tails governance's clean log and stores each batch, resolving persons through
//! `resolve` (one tenant's batches in turn, see `turns`); `identity_changes` applies identity's
//! merges, splits, erasures and consent changes (`merges`, `split`) to the stored history.
//! `upstream` holds the typed clients of governance and identity. `journeys` keeps each
//! queried tenant's in-memory projection current and runs the journey models over it.

pub mod domain;
pub mod error;
pub mod grpc;
pub mod identity_changes;
pub mod journeys;
pub mod merges;
pub mod resolve;
pub mod service;
pub mod split;
pub mod store;
mod turns;
pub mod upstream;
pub mod worker;

pub use error::ModelingError;
pub use grpc::ModelingApi;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "modeling";

/// The largest request the modeling service decodes: attribution on supplied paths takes a
/// paths text of up to 32 MiB (about a million distinct paths), beyond the platform's
/// default message limit.
pub const MAX_REQUEST_BYTES: usize =
    journeys::attribution::on_paths::MAX_PATHS_TEXT_BYTES + (8 << 20);

/// The cursor name under which the event-store worker records its progress.
pub const CLEAN_LOG_CONSUMER: &str = "modeling.events";

/// Migrations of the `modeling` schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
