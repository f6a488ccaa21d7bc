//! The touchline binary's library: configuration, the application that
//! serves any subset of the five services, and the commands (`serve`,
//! `migrate`, `token`, `demo`, `sim`). `main.rs` only parses and dispatches,
//! so tests can start the real application in-process.

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;

pub use app::Application;
pub use config::{Config, ServiceName};
