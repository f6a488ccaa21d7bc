//! The PipelineService: [`PipelineStatus`] over gRPC, filtered to the caller's tenant (a
//! platform account sees every tenant).

use std::time::SystemTime;

use touchline_proto::pipeline::v1 as pb;
use touchline_proto::pipeline::v1::pipeline_service_server::{
    PipelineService, PipelineServiceServer,
};

use crate::status::{ConsumerRow, PipelineStatus, State};

/// The service answering GetPipelineStatus from a process's shared status.
#[derive(Debug, Clone)]
pub struct PipelineApi {
    status: PipelineStatus,
}

impl PipelineApi {
    /// The service over `status`, ready to mount.
    pub fn server(status: PipelineStatus) -> PipelineServiceServer<Self> {
        PipelineServiceServer::new(Self { status })
    }
}

#[tonic::async_trait]
impl PipelineService for PipelineApi {
    async fn get_pipeline_status(
        &self,
        request: tonic::Request<pb::GetPipelineStatusRequest>,
    ) -> Result<tonic::Response<pb::GetPipelineStatusResponse>, tonic::Status> {
        let principal = touchline_auth::principal(&request)?;
        let parent = request.into_inner().parent;
        // A platform account without a named tenant sees them all.
        let only: Option<String> = if principal.is_platform() && parent.is_empty() {
            None
        } else {
            Some(principal.tenant_for(&parent)?)
        };
        let consumers: Vec<pb::ConsumerStatus> = self
            .status
            .rows(SystemTime::now())
            .into_iter()
            .filter(|row| only.as_deref().is_none_or(|t| row.tenant == t))
            .map(to_pb)
            .collect();
        let stuck = consumers
            .iter()
            .any(|c| c.state() == pb::ConsumerState::Stuck);
        Ok(tonic::Response::new(pb::GetPipelineStatusResponse {
            consumers,
            stuck,
        }))
    }
}

fn to_pb(row: ConsumerRow) -> pb::ConsumerStatus {
    let lag_events = row.lag_events();
    let state = match row.state {
        State::CaughtUp => pb::ConsumerState::CaughtUp,
        State::CatchingUp => pb::ConsumerState::CatchingUp,
        State::Stuck => pb::ConsumerState::Stuck,
    };
    pb::ConsumerStatus {
        consumer: row.consumer,
        tenant: row.tenant,
        head_sequence: row.head,
        cursor_sequence: row.cursor,
        lag_events,
        lag: prost_types::Duration::try_from(row.lag).ok(),
        last_progress_time: Some(prost_types::Timestamp::from(row.last_progress)),
        last_error: row.last_error.unwrap_or_default(),
        failing_since: row.failing_since.map(prost_types::Timestamp::from),
        state: state as i32,
    }
}
