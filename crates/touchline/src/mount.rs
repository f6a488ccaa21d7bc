//! The mount contract: what a service adds to a process — its gRPC routes and the background
//! tasks that belong to it (the cleaning worker with governance, the event-store and
//! identity-changes workers with modeling, the outbox relay with identity) — given what the
//! process shares. `Application::build` mounts every selected service through [`mount`]; a new
//! service or worker is one more function here, not another branch through the build.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::Context as _;
use sqlx::PgPool;
use tonic::service::RoutesBuilder;
use tonic::transport::Channel;
use touchline_collection::CollectionApi;
use touchline_db::LogNotifier;
use touchline_governance::GovernanceApi;
use touchline_governance::upstream::Collection;
use touchline_governance::worker::CleaningWorker;
use touchline_identity::{IdentityApi, IdentityCache};
use touchline_modeling::ModelingApi;
use touchline_modeling::identity_changes::IdentityChangesWorker;
use touchline_modeling::upstream::{Governance, Identity};
use touchline_modeling::worker::EventStoreWorker;
use touchline_pipeline::status::PipelineStatus;
use touchline_proto::collection::v1::collection_service_server::CollectionServiceServer;
use touchline_proto::governance::v1::governance_service_server::GovernanceServiceServer;
use touchline_proto::identity::v1::identity_service_server::IdentityServiceServer;
use touchline_proto::modeling::v1::modeling_service_server::ModelingServiceServer;
use touchline_proto::reporting::v1::reporting_service_server::ReportingServiceServer;
use touchline_reporting::ReportingApi;
use touchline_runtime::Shutdown;
use touchline_runtime::client::{CallCredentials, lazy_channel};

use crate::config::{Config, ServiceName};

/// A background task of a service, started once every listener serves (a worker's first
/// call then finds its upstream ready).
pub type Background = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Where each service a process calls can be reached: served here, or configured.
#[derive(Debug)]
pub struct Upstreams<'a> {
    /// Services served by this process, at their bound address.
    pub local: &'a BTreeMap<ServiceName, SocketAddr>,
    /// `pipeline.upstream` of the configuration.
    pub configured: &'a BTreeMap<ServiceName, String>,
}

impl Upstreams<'_> {
    /// A lazily connected channel to `service`.
    pub fn channel(&self, service: ServiceName) -> anyhow::Result<Channel> {
        let url = match (self.local.get(&service), self.configured.get(&service)) {
            (Some(local), _) => format!("http://{local}"),
            (None, Some(url)) => url.clone(),
            (None, None) => anyhow::bail!(
                "{} is neither served here nor configured in pipeline.upstream",
                service.as_str()
            ),
        };
        lazy_channel(&url).with_context(|| format!("the address of {}", service.as_str()))
    }
}

/// What the process shares with every service it mounts.
#[derive(Debug)]
pub struct Shared<'a> {
    /// The whole configuration.
    pub config: &'a Config,
    /// The database, for every service but reporting.
    pub pool: Option<&'a PgPool>,
    /// LISTEN/NOTIFY wake-ups of the logs served here.
    pub notifier: Option<&'a LogNotifier>,
    /// The pipeline account's credentials, for calls between services.
    pub credentials: &'a CallCredentials,
    /// Where the other services are.
    pub upstreams: Upstreams<'a>,
    /// The consumers' positions and errors, reported by every worker.
    pub status: &'a PipelineStatus,
    /// The process's shutdown.
    pub shutdown: &'a Shutdown,
}

impl Shared<'_> {
    fn pool(&self, service: ServiceName) -> anyhow::Result<&PgPool> {
        self.pool
            .with_context(|| format!("{} needs the database", service.as_str()))
    }

    fn notifier(&self, service: ServiceName) -> anyhow::Result<&LogNotifier> {
        self.notifier
            .with_context(|| format!("{} needs the log notifier", service.as_str()))
    }
}

/// Adds `service`'s routes to `routes` and its background tasks to `tasks`.
pub async fn mount(
    service: ServiceName,
    shared: &Shared<'_>,
    routes: &mut RoutesBuilder,
    tasks: &mut Vec<Background>,
) -> anyhow::Result<()> {
    let max = shared.config.limits.max_message_bytes;
    match service {
        ServiceName::Collection => {
            let api = CollectionApi::new(
                shared.pool(service)?.clone(),
                shared.notifier(service)?.clone(),
                shared.shutdown.clone(),
                shared.config.collection.clone(),
            );
            routes.add_service(CollectionServiceServer::new(api).max_decoding_message_size(max));
        }
        ServiceName::Governance => mount_governance(shared, routes, tasks)?,
        ServiceName::Identity => mount_identity(shared, routes, tasks).await?,
        ServiceName::Modeling => mount_modeling(shared, routes, tasks)?,
        ServiceName::Reporting => {
            let modeling = touchline_reporting::Modeling::new(
                shared.upstreams.channel(ServiceName::Modeling)?,
                shared.credentials.clone(),
            );
            let reporting = touchline_reporting::Reporting::new(modeling);
            routes.add_service(
                ReportingServiceServer::new(ReportingApi::new(reporting))
                    .max_decoding_message_size(max),
            );
        }
    }
    Ok(())
}

/// Governance's API and the cleaning worker, both reading collection.
fn mount_governance(
    shared: &Shared<'_>,
    routes: &mut RoutesBuilder,
    tasks: &mut Vec<Background>,
) -> anyhow::Result<()> {
    let service = ServiceName::Governance;
    let pool = shared.pool(service)?;
    let collection = || -> anyhow::Result<Collection> {
        Ok(Collection::new(
            shared.upstreams.channel(ServiceName::Collection)?,
            shared.credentials.clone(),
        ))
    };
    let api = GovernanceApi::new(
        pool.clone(),
        shared.notifier(service)?.clone(),
        shared.shutdown.clone(),
        collection()?,
        shared.config.governance.clone(),
    );
    routes.add_service(
        GovernanceServiceServer::new(api)
            .max_decoding_message_size(shared.config.limits.max_message_bytes),
    );
    tasks.push(Box::pin(
        CleaningWorker::new(
            pool.clone(),
            collection()?,
            shared.config.governance.clone(),
        )
        .with_status(shared.status.clone())
        .run(shared.shutdown.clone()),
    ));
    Ok(())
}

/// Identity's API, with Redis in front when configured, and its cache-invalidation relay.
async fn mount_identity(
    shared: &Shared<'_>,
    routes: &mut RoutesBuilder,
    tasks: &mut Vec<Background>,
) -> anyhow::Result<()> {
    let pool = shared.pool(ServiceName::Identity)?;
    let cache = IdentityCache::connect_to_store(&shared.config.identity, pool)
        .await
        .context("identity cache")?;
    let mut api = IdentityApi::new(pool.clone(), cache);
    if let Some(notifier) = shared.notifier {
        api = api.with_notifier(notifier.clone(), shared.shutdown.clone());
    }
    // Cache invalidations leave through the outbox.
    tasks.push(Box::pin(api.relay().run(shared.shutdown.clone())));
    routes.add_service(
        IdentityServiceServer::new(api)
            .max_decoding_message_size(shared.config.limits.max_message_bytes),
    );
    Ok(())
}

/// Modeling's API and its four workers: the event store (from governance's clean log, persons
/// from identity), identity's changes, segment membership, and webhook delivery.
fn mount_modeling(
    shared: &Shared<'_>,
    routes: &mut RoutesBuilder,
    tasks: &mut Vec<Background>,
) -> anyhow::Result<()> {
    let pool = shared.pool(ServiceName::Modeling)?;
    let governance = Governance::new(
        shared.upstreams.channel(ServiceName::Governance)?,
        shared.credentials.clone(),
    );
    let identity = Identity::new(
        shared.upstreams.channel(ServiceName::Identity)?,
        shared.credentials.clone(),
    );
    let api = ModelingApi::new(pool.clone())
        .with_upstreams(governance.clone(), identity.clone())
        .with_webhooks(shared.config.webhooks.options());
    tasks.push(Box::pin(api.segment_worker().run(shared.shutdown.clone())));
    tasks.push(Box::pin(api.delivery_worker().run(shared.shutdown.clone())));
    routes.add_service(
        ModelingServiceServer::new(api).max_decoding_message_size(
            shared
                .config
                .limits
                .max_message_bytes
                .max(touchline_modeling::MAX_REQUEST_BYTES),
        ),
    );
    tasks.push(Box::pin(
        IdentityChangesWorker::new(pool.clone(), identity.clone())
            .with_status(shared.status.clone())
            .run(shared.shutdown.clone()),
    ));
    tasks.push(Box::pin(
        EventStoreWorker::new(pool.clone(), governance, identity)
            .with_status(shared.status.clone())
            .run(shared.shutdown.clone()),
    ));
    Ok(())
}
