//! The touchline binary's library: configuration, the application that
//! serves any subset of the five services, and the commands (`serve`,
//! `migrate`, `token`, `demo`, `sim`). `main.rs` only parses and dispatches,
//! so tests can start the real application in-process.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
mod demo_activation;
mod demo_attribution;
mod demo_churn;
mod demo_journeys;
mod demo_receiver;
mod demo_segments;
pub mod mount;

pub use app::Application;
pub use config::{Config, ServiceName};

/// Every process that runs the services (the binary, and the benchmarks and
/// tests that start them in process) allocates through mimalloc. The hot
/// paths make many small short-lived allocations per event and per
/// identifier, where glibc's malloc spent a quarter of the identity
/// service's warm lookup time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
