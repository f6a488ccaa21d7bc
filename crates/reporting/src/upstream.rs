//! The typed client of the one service reporting reads: modeling. The deadline lives here,
//! once; credentials and trace context travel with every call through [`CallCredentials`].

use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{CountEventsRequest, CountEventsResponse};
use touchline_runtime::client::CallCredentials;

use crate::error::ReportingError;

/// Counting reads maintained counters, so it answers fast or not at all.
const COUNT_DEADLINE: Duration = Duration::from_secs(10);

/// Modeling, as reporting uses it.
#[derive(Debug, Clone)]
pub struct Modeling {
    stub: ModelingServiceClient<InterceptedService<Channel, CallCredentials>>,
}

impl Modeling {
    /// Calls through `channel` with `credentials` (reporting's platform account).
    pub fn new(channel: Channel, credentials: CallCredentials) -> Self {
        Self {
            stub: ModelingServiceClient::with_interceptor(channel, credentials),
        }
    }

    /// Every event and person of `tenant`, with the counts by channel and by event.
    pub async fn count_events(&self, tenant: &str) -> Result<CountEventsResponse, ReportingError> {
        let mut request = tonic::Request::new(CountEventsRequest {
            parent: format!("tenants/{tenant}"),
            ..CountEventsRequest::default()
        });
        request.set_timeout(COUNT_DEADLINE);
        self.stub
            .clone()
            .count_events(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ReportingError::modeling(&status))
    }
}
