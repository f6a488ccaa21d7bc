//! The reporting service: composes dashboards and reports from the modeling
//! service's aggregates. It owns no event data; it reads modeling over gRPC
//! as a platform account, always naming the caller's tenant.

pub mod grpc;
pub mod shares;

pub use grpc::ReportingApi;
