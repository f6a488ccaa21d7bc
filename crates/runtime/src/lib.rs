//! Server bootstrap shared by every touchline service: typed configuration
//! (defaults → optional file → `TOUCHLINE_` environment), the gRPC server
//! with its limits, health reporting, reflection, and the shutdown sequence.

pub mod client;
pub mod codes;
pub mod config;
pub mod gate;
pub mod metadata;
pub mod server;
pub mod shutdown;

pub use server::{HealthHandle, ServerLimits};
pub use shutdown::Shutdown;
