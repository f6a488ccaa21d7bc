//! The log pipeline between touchline's stages. Collection's raw log, governance's clean log and
//! identity's change log are each a log split into per-tenant partitions; a downstream stage
//! tails one and commits its output together with the cursor it consumed.
//!
//! What belongs here: the server side of a `Tail…` stream over a [`tail::PartitionedLog`], the
//! consumer loop that keeps a stage's session open ([`consumer`]), where each consumer stands
//! ([`status`]) and the RPC that shows it ([`status_api`]). Server bootstrap and shutdown stay in
//! `touchline-runtime`; what a stage does with a record stays in its service.

pub mod consumer;
pub mod error;
pub mod status;
pub mod status_api;
pub mod tail;

pub use error::LogError;
