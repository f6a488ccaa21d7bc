//! The identity service: joins identifiers seen together (one set per event)
//! into persons, and answers which person an identifier belongs to.
//!
//! This is the exact-match graph: an identifier (type, scope, value) belongs
//! to at most one person per tenant, a set of identifiers resolves to the
//! oldest person any of them already belongs to, and identifiers never move
//! between persons (merges, rules, splits and erasure come later).
//!
//! `domain` normalises and plans without knowing about gRPC, SQL or Redis;
//! `store` holds all SQL; `cache` is the Redis cache-aside for identifier →
//! person lookups; `service` owns transactions and the cache protocol;
//! `grpc` is the thin adapter. PostgreSQL is the system of record: Redis only
//! ever saves a round trip and its failures never fail a call.

pub mod cache;
pub mod config;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod service;
pub mod store;

pub use cache::IdentityCache;
pub use config::IdentityConfig;
pub use error::IdentityError;
pub use grpc::IdentityApi;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "identity";

/// Migrations of the `identity` schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
