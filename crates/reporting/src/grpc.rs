//! The gRPC adapter of the reporting service: principal, call, reply.

use tonic::{Request, Response, Status};
use touchline_proto::reporting::v1 as pb;
use touchline_proto::reporting::v1::reporting_service_server::ReportingService;

use crate::service::Reporting;

/// The reporting service's gRPC face.
#[derive(Debug, Clone)]
pub struct ReportingApi {
    reporting: Reporting,
}

impl ReportingApi {
    /// The adapter over `reporting`.
    pub fn new(reporting: Reporting) -> Self {
        Self { reporting }
    }
}

#[tonic::async_trait]
impl ReportingService for ReportingApi {
    #[tracing::instrument(
        name = "reporting.get_event_counts",
        skip_all,
        fields(service = "reporting")
    )]
    async fn get_event_counts(
        &self,
        request: Request<pb::GetEventCountsRequest>,
    ) -> Result<Response<pb::GetEventCountsResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        Ok(Response::new(self.reporting.event_counts(&tenant).await?))
    }
}
