//! The parts every gRPC server of touchline is built from: limits, health
//! and reflection. The binary assembles them with the auth and trace layers.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Limits applied to every server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerLimits {
    /// Largest accepted request message, bytes (default 4 MiB).
    pub max_message_bytes: usize,
    /// Requests in flight per connection before new ones wait.
    pub concurrency_per_connection: usize,
    /// Upper bound on a unary call; a shorter `grpc-timeout` wins.
    pub request_timeout_ms: u64,
    /// How long health reports NOT_SERVING before the listener closes, so
    /// load balancers stop routing first.
    pub drain_delay_ms: u64,
    /// How long in-flight calls may take to finish once draining.
    pub shutdown_grace_ms: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            concurrency_per_connection: 256,
            request_timeout_ms: 30_000,
            drain_delay_ms: 1_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// A tonic server builder with touchline's limits applied. Serve it with
/// [`incoming`]: the builder's own socket options apply only to listeners
/// tonic binds itself.
pub fn builder(limits: &ServerLimits) -> Server {
    Server::builder()
        .concurrency_limit_per_connection(limits.concurrency_per_connection)
        .timeout(Duration::from_millis(limits.request_timeout_ms))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_max_header_list_size(Some(crate::metadata::MAX_HEADER_LIST_BYTES))
}

/// The connections accepted on `listener`, with `TCP_NODELAY` and TCP
/// keepalive set on each.
///
/// Without `TCP_NODELAY` a reply that HTTP/2 writes in several segments
/// waits for the client's delayed acknowledgement (about 40 ms on Linux)
/// whenever a segment is still unacknowledged: every unary call then takes
/// at least that long, whatever the server's own work.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE))
}

/// Idle time before TCP keepalive probes a connection.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Reflection over the touchline contracts and health, listing only the
/// services this process mounts.
pub fn reflection(
    mounted: &[&str],
) -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(touchline_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health");
    for name in mounted {
        builder = builder.with_service_name(*name);
    }
    builder.build_v1()
}

/// The health status of the services one process serves. Everything starts
/// NOT_SERVING; the binary flips to SERVING once migrations ran and
/// dependencies answered, and back during shutdown.
#[derive(Clone)]
pub struct HealthHandle {
    reporter: HealthReporter,
    services: Vec<String>,
}

impl std::fmt::Debug for HealthHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthHandle")
            .field("services", &self.services)
            .finish()
    }
}

impl HealthHandle {
    /// Starts the health service for `services` (full gRPC names), all NOT_SERVING.
    pub async fn new(
        services: &[&str],
    ) -> (
        Self,
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    ) {
        let (reporter, server) = tonic_health::server::health_reporter();
        let handle = Self {
            reporter,
            services: services.iter().map(|s| (*s).to_owned()).collect(),
        };
        handle.set_all(ServingStatus::NotServing).await;
        (handle, server)
    }

    /// Every service and the overall ("") status SERVING.
    pub async fn serving(&self) {
        self.set_all(ServingStatus::Serving).await;
    }

    /// Every service and the overall status NOT_SERVING.
    pub async fn not_serving(&self) {
        self.set_all(ServingStatus::NotServing).await;
    }

    /// One service's status, leaving the others and the overall status as they are.
    pub async fn set_service(&self, service: &str, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status(service, status).await;
    }

    async fn set_all(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        for service in &self.services {
            self.reporter.set_service_status(service, status).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt as _;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_do_not_wait_to_coalesce_writes() -> std::io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut accepted = incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await?;
        let stream = accepted
            .next()
            .await
            .ok_or_else(|| std::io::Error::other("the listener closed"))??;
        assert!(
            stream.nodelay()?,
            "TCP_NODELAY is set on the accepted socket"
        );
        Ok(())
    }
}
