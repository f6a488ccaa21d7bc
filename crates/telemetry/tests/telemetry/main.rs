//! Integration tests for touchline-telemetry, in one binary to save link time.
//!
//! Every trace test calls `install_in_memory()`, which installs one process-wide subscriber;
//! tests run concurrently and share its exporter, so each one finds its own spans by trace or
//! span id. The metrics test is the only one that installs the global meter provider.

mod grpc;
mod metrics;
mod propagation;
mod support;
