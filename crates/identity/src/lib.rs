//! The identity service: joins identifiers seen together (one set per event)
//! into persons, and answers which person an identifier belongs to.
//!
//! An identifier (type, scope, value) belongs to at most one person per
//! tenant. Identifiers seen together join their persons (merging into the
//! oldest) as far as the tenant's rules allow; refusals are audited and
//! conflicts between strong identifiers go to a review queue. Merges,
//! splits, detachments of shared values, erasures and consent changes are
//! appended to a per-tenant change log that modeling tails to move event
//! histories.
//!
//! `domain` validates identifiers (`clear` refuses phones and emails in
//! clear) and `graph` decides links and merges (`rules` holds the per-tenant
//! rules, `detach` which events shared values take off their owner,
//! `timeline` how a phone changes hands over time), without knowing about
//! gRPC, SQL or Redis; `store`
//! holds all SQL; `cache` is the Redis cache-aside for identifier → person
//! lookups; `service` owns transactions, the outbox relay and the cache
//! protocol; `grpc` is the thin adapter. PostgreSQL is the system of record:
//! Redis only ever saves a round trip and its failures never fail a call.

pub mod cache;
pub mod clear;
pub mod config;
pub mod detach;
pub mod domain;
pub mod error;
pub mod graph;
pub mod grpc;
pub mod reassign;
pub mod rules;
pub mod service;
pub mod store;
pub mod timeline;

pub use cache::IdentityCache;
pub use config::IdentityConfig;
pub use error::IdentityError;
pub use grpc::IdentityApi;
pub use service::{Identity, OutboxRelay};
pub use store::log::CHANGES_CHANNEL;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "identity";

/// Migrations of the `identity` schema.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
