//! The typed client of collection, the one service governance reads from: its raw log, its
//! source registry and its ingest counters.
//!
//! Deadlines and the retries of passing failures (UNAVAILABLE, a deadline) live here, once,
//! for every unary call; the raw-log stream has no deadline (it lives as long as its
//! consumer). Credentials and the W3C trace context travel with every call through
//! [`CallCredentials`]. Failures come back as collection's `tonic::Status`, code intact.

use std::future::Future;
use std::time::Duration;

use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::collection::v1::{
    GetIngestCountsRequest, GetSourceRequest, IngestCount, Source, TailRawEventsRequest,
    TailRawEventsResponse,
};
use touchline_proto::common::v1::TailSelector;
use touchline_runtime::client::CallCredentials;

/// The largest reply governance accepts: a raw-log batch of large events, or a month of ingest
/// counters of a tenant with many sources, passes the default 4 MiB.
const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;
/// A unary call to collection: one indexed read.
const DEADLINE: Duration = Duration::from_secs(10);
/// Tries of a unary call before its passing failure is returned.
const ATTEMPTS: u32 = 3;

/// The generated collection client with governance's credentials.
pub type CollectionStub = CollectionServiceClient<InterceptedService<Channel, CallCredentials>>;

/// Collection, as governance uses it.
#[derive(Debug, Clone)]
pub struct Collection {
    stub: CollectionStub,
}

impl Collection {
    /// Calls through `channel` with `credentials`.
    pub fn new(channel: Channel, credentials: CallCredentials) -> Self {
        Self {
            stub: CollectionServiceClient::with_interceptor(channel, credentials)
                .max_decoding_message_size(MAX_REPLY_BYTES),
        }
    }

    /// The raw log from `selector` on, as a stream that waits for new events.
    pub async fn tail_raw(
        &self,
        selector: TailSelector,
    ) -> Result<tonic::Streaming<TailRawEventsResponse>, tonic::Status> {
        let request = TailRawEventsRequest {
            selector: Some(selector),
        };
        Ok(self
            .stub
            .clone()
            .tail_raw_events(request)
            .await?
            .into_inner())
    }

    /// The source `source` of `tenant` at `revision` (0: the current one); `Ok(None)` when
    /// collection has no such source or revision.
    pub async fn get_source(
        &self,
        tenant: &str,
        source: &str,
        revision: i64,
    ) -> Result<Option<Source>, tonic::Status> {
        let name = format!("tenants/{tenant}/sources/{source}");
        let reply = retrying(|| {
            let mut request = tonic::Request::new(GetSourceRequest {
                name: name.clone(),
                revision,
            });
            request.set_timeout(DEADLINE);
            let mut stub = self.stub.clone();
            async move { stub.get_source(request).await }
        })
        .await;
        match reply {
            Ok(reply) => Ok(reply.into_inner().source),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(status),
        }
    }

    /// The ingest counters of `tenant` for `[start, end)` (at most 31 days), only `sources`
    /// when not empty.
    pub async fn ingest_counts(
        &self,
        tenant: &str,
        start: prost_types::Timestamp,
        end: prost_types::Timestamp,
        sources: &[String],
    ) -> Result<Vec<IngestCount>, tonic::Status> {
        let reply = retrying(|| {
            let mut request = tonic::Request::new(GetIngestCountsRequest {
                parent: format!("tenants/{tenant}"),
                start_time: Some(start),
                end_time: Some(end),
                sources: sources.to_vec(),
            });
            request.set_timeout(DEADLINE);
            let mut stub = self.stub.clone();
            async move { stub.get_ingest_counts(request).await }
        })
        .await?;
        Ok(reply.into_inner().counts)
    }
}

/// Runs `call` until it succeeds, fails for good, or has been tried [`ATTEMPTS`] times,
/// pausing 200 ms more after each passing failure.
async fn retrying<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Err(status)
                if attempt < ATTEMPTS
                    && matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) =>
            {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            other => return other,
        }
    }
}
