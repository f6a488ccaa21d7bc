//! The reporting service: composes dashboards and reports from the modeling
//! service's aggregates. It owns no event data; it reads modeling over gRPC
//! as a platform account, always naming the caller's tenant.
//!
//! Shaped like every service: `grpc` (adapter) → `service` (composition) → `upstream` (the
//! typed modeling client), with `error` mapped to statuses in one place.

pub mod error;
pub mod grpc;
pub mod service;
pub mod shares;
pub mod upstream;

pub use grpc::ReportingApi;
pub use service::Reporting;
pub use upstream::Modeling;
