//! The gRPC adapter of the reporting service.

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use touchline_proto::modeling::v1::CountEventsRequest;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::reporting::v1 as pb;
use touchline_proto::reporting::v1::reporting_service_server::ReportingService;
use touchline_runtime::client::CallCredentials;

use crate::shares::share;

/// A modeling client carrying reporting's platform credentials.
pub type ModelingClient = ModelingServiceClient<InterceptedService<Channel, CallCredentials>>;

/// The reporting service's gRPC face.
#[derive(Debug, Clone)]
pub struct ReportingApi {
    modeling: ModelingClient,
}

impl ReportingApi {
    /// A service reading from `modeling`.
    pub fn new(modeling: ModelingClient) -> Self {
        Self { modeling }
    }
}

fn rows(counts: Vec<touchline_proto::modeling::v1::EventCount>, total: i64) -> Vec<pb::CountRow> {
    counts
        .into_iter()
        .map(|c| pb::CountRow {
            share: share(c.events, total),
            key: c.key,
            events: c.events,
            persons: c.persons,
        })
        .collect()
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
        let counts = self
            .modeling
            .clone()
            .count_events(CountEventsRequest {
                parent: format!("tenants/{tenant}"),
                ..CountEventsRequest::default()
            })
            .await
            .map_err(|status| upstream_failure(&status))?
            .into_inner();
        let total = counts.total_events;
        Ok(Response::new(pb::GetEventCountsResponse {
            total_events: total,
            total_persons: counts.total_persons,
            by_channel: rows(counts.by_channel, total),
            by_event: rows(counts.by_event, total),
        }))
    }
}

/// A failed modeling call as this call's answer: what concerns the caller (its deadline, its
/// rights, a limit) keeps its code; anything else is modeling's trouble, which the caller can
/// only retry. The upstream's text stays in the log.
fn upstream_failure(status: &Status) -> Status {
    tracing::warn!(code = ?status.code(), message = status.message(), "modeling call failed");
    match status.code() {
        tonic::Code::DeadlineExceeded => {
            Status::deadline_exceeded("the modeling service did not answer within the deadline")
        }
        tonic::Code::PermissionDenied => {
            Status::permission_denied("the caller may not read these counts")
        }
        tonic::Code::Unauthenticated => {
            Status::unauthenticated("the caller's credentials were refused")
        }
        tonic::Code::ResourceExhausted => {
            Status::resource_exhausted("the modeling service is at its limit; retry later")
        }
        _ => Status::unavailable("the modeling service did not answer; retry shortly"),
    }
}
