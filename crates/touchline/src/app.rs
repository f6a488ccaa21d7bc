//! Assembles a touchline process from its configuration: connects and
//! migrates the database, binds the listeners, mounts the services with the
//! trace and auth layers, health and reflection, starts the pipeline workers,
//! and runs the shutdown sequence.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tonic::service::RoutesBuilder;
use touchline_auth::{AuthLayer, ScopePolicy, TokenClaims, Verifier};
use touchline_collection::CollectionApi;
use touchline_db::sqlx::migrate::Migrator;
use touchline_db::watchdog::{Change, Watchdog};
use touchline_db::{LogNotifier, RequestTable, Upkeep};
use touchline_governance::GovernanceApi;
use touchline_governance::upstream::Collection;
use touchline_governance::worker::CleaningWorker;
use touchline_identity::{IdentityApi, IdentityCache};
use touchline_modeling::ModelingApi;
use touchline_modeling::identity_changes::IdentityChangesWorker;
use touchline_modeling::upstream::{Governance, Identity};
use touchline_modeling::worker::EventStoreWorker;

use touchline_proto::collection::v1::collection_service_server::CollectionServiceServer;
use touchline_proto::governance::v1::governance_service_server::GovernanceServiceServer;
use touchline_proto::identity::v1::identity_service_server::IdentityServiceServer;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::modeling_service_server::ModelingServiceServer;
use touchline_proto::reporting::v1::reporting_service_server::ReportingServiceServer;
use touchline_reporting::ReportingApi;
use touchline_runtime::client::{CallCredentials, lazy_channel};
use touchline_runtime::status::PipelineStatus;
use touchline_runtime::status_api::PipelineApi;
use touchline_runtime::{HealthHandle, Shutdown};
use touchline_telemetry::GrpcServerTraceLayer;

use crate::config::{Config, ServiceName};

/// Scopes of the platform account the stages use to call each other.
pub const PIPELINE_SCOPES: [&str; 6] = [
    touchline_auth::PLATFORM_SCOPE,
    "pipeline:read",
    "identity:resolve",
    "identity:erase",
    "models:read",
    "sources:read",
];

/// A running touchline process.
#[derive(Debug)]
pub struct Application {
    addresses: BTreeMap<ServiceName, SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    shutdown: Shutdown,
    tasks: JoinSet<()>,
}

impl Application {
    /// Builds and starts everything `config` asks for; returns once the
    /// listeners are bound and health reports SERVING.
    pub async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        let services: Vec<ServiceName> = {
            let mut s = config.services.clone();
            s.sort();
            s.dedup();
            s
        };
        anyhow::ensure!(!services.is_empty(), "no services selected");

        let verifier = Verifier::from_config(&config.auth)
            .await
            .context("auth is not configured: set auth.jwks_file or auth.jwks_url, or for development auth.hs256_secret with auth.allow_hs256 = true")?;
        let policy =
            ScopePolicy::new(touchline_proto::scopes::REQUIRED_SCOPES).context("scope table")?;
        let pipeline_token = pipeline_token(&config)?;
        let credentials = CallCredentials::bearer(&pipeline_token)
            .context("pipeline token is not valid header text")?;

        let needs_db = services.iter().any(|s| *s != ServiceName::Reporting);
        let pool = if needs_db {
            let pool = touchline_db::connect(&config.database)
                .await
                .context("cannot reach PostgreSQL (database.url / TOUCHLINE_DATABASE__URL)")?;
            for (service, schema, migrator) in owned_schemas() {
                if services.contains(&service) {
                    touchline_db::migrate(&pool, schema, migrator)
                        .await
                        .with_context(|| format!("migrating schema {schema}"))?;
                }
            }
            Some(pool)
        } else {
            None
        };

        // Bind every listener first so upstream URLs of local services are known.
        let mut groups: BTreeMap<SocketAddr, Vec<ServiceName>> = BTreeMap::new();
        for service in &services {
            let addr = config
                .addresses
                .get(service)
                .copied()
                .unwrap_or(config.listen);
            groups.entry(addr).or_default().push(*service);
        }
        let mut bound = Vec::new();
        let mut addresses = BTreeMap::new();
        for (addr, group) in groups {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let local = listener.local_addr()?;
            for service in &group {
                addresses.insert(*service, local);
            }
            bound.push((listener, group));
        }
        let upstream = |service: ServiceName| -> anyhow::Result<String> {
            match (
                addresses.get(&service),
                config.pipeline.upstream.get(&service),
            ) {
                (Some(local), _) => Ok(format!("http://{local}")),
                (None, Some(url)) => Ok(url.clone()),
                (None, None) => anyhow::bail!(
                    "{} is neither served here nor configured in pipeline.upstream",
                    service.as_str()
                ),
            }
        };

        let mut tasks = JoinSet::new();
        let mut notifier_channels = Vec::new();
        if services.contains(&ServiceName::Collection) {
            notifier_channels.push(touchline_collection::RAW_LOG_CHANNEL);
        }
        if services.contains(&ServiceName::Governance) {
            notifier_channels.push(touchline_governance::CLEAN_LOG_CHANNEL);
        }
        if services.contains(&ServiceName::Identity) {
            notifier_channels.push(touchline_identity::CHANGES_CHANNEL);
        }
        let notifier = match (&pool, notifier_channels.is_empty()) {
            (Some(pool), false) => Some(
                LogNotifier::start(pool, &notifier_channels)
                    .await
                    .context("LISTEN connection")?,
            ),
            _ => None,
        };

        let metrics_addr = match config.telemetry.metrics_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics endpoint {addr}"))?;
                let local = listener.local_addr()?;
                let stop = shutdown.clone();
                tasks.spawn(touchline_telemetry::metrics::serve_metrics(
                    listener,
                    touchline_telemetry::metrics::handle(),
                    async move { stop.wait().await },
                ));
                Some(local)
            }
            None => None,
        };
        // Built once, after telemetry set the global meter provider, and shared by every
        // server: outermost, so it records the code each caller actually got.
        let rpc_metrics = touchline_telemetry::RpcMetricsLayer::new()
            .with_server_timeout(Duration::from_millis(config.limits.request_timeout_ms));
        // Shut while the database does not answer (see `watch_database`); never shut in a
        // process without one.
        let gate = touchline_runtime::gate::DependencyGate::new();
        let mut healths = Vec::new();
        let pipeline_status = PipelineStatus::new();
        for (listener, group) in bound {
            let mut routes = RoutesBuilder::default();
            let mut names: Vec<&str> = group.iter().map(|s| s.grpc_name()).collect();
            names.push(PIPELINE_SERVICE);
            routes.add_service(PipelineApi::server(pipeline_status.clone()));
            let (health, health_service) = HealthHandle::new(&names).await;
            routes.add_service(health_service);
            routes
                .add_service(touchline_runtime::server::reflection(&names).context("reflection")?);
            let max = config.limits.max_message_bytes;
            for service in &group {
                match (service, &pool, &notifier) {
                    (ServiceName::Collection, Some(pool), Some(notifier)) => {
                        let api = CollectionApi::new(
                            pool.clone(),
                            notifier.clone(),
                            shutdown.clone(),
                            config.collection.clone(),
                        );
                        routes.add_service(
                            CollectionServiceServer::new(api).max_decoding_message_size(max),
                        );
                    }
                    (ServiceName::Governance, Some(pool), Some(notifier)) => {
                        let collection = Collection::new(
                            lazy_channel(&upstream(ServiceName::Collection)?)?,
                            credentials.clone(),
                        );
                        let api = GovernanceApi::new(
                            pool.clone(),
                            notifier.clone(),
                            shutdown.clone(),
                            collection,
                            config.governance.clone(),
                        );
                        routes.add_service(
                            GovernanceServiceServer::new(api).max_decoding_message_size(max),
                        );
                    }
                    (ServiceName::Identity, Some(pool), notifier) => {
                        let cache = IdentityCache::connect(&config.identity)
                            .await
                            .context("identity cache")?;
                        let mut api = IdentityApi::new(pool.clone(), cache);
                        if let Some(notifier) = notifier {
                            api = api.with_notifier(notifier.clone(), shutdown.clone());
                        }
                        // Cache invalidations leave through the outbox.
                        tasks.spawn(api.relay().run(shutdown.clone()));
                        routes.add_service(
                            IdentityServiceServer::new(api).max_decoding_message_size(max),
                        );
                    }
                    (ServiceName::Modeling, Some(pool), _) => {
                        let api = ModelingApi::new(pool.clone()).with_upstreams(
                            Governance::new(
                                lazy_channel(&upstream(ServiceName::Governance)?)?,
                                credentials.clone(),
                            ),
                            Identity::new(
                                lazy_channel(&upstream(ServiceName::Identity)?)?,
                                credentials.clone(),
                            ),
                        );
                        routes.add_service(
                            ModelingServiceServer::new(api).max_decoding_message_size(max),
                        );
                    }
                    (ServiceName::Reporting, _, _) => {
                        let modeling = ModelingServiceClient::with_interceptor(
                            lazy_channel(&upstream(ServiceName::Modeling)?)?,
                            credentials.clone(),
                        );
                        routes.add_service(
                            ReportingServiceServer::new(ReportingApi::new(modeling))
                                .max_decoding_message_size(max),
                        );
                    }
                    (service, _, _) => anyhow::bail!("{} needs the database", service.as_str()),
                }
            }
            let server = touchline_runtime::server::builder(&config.limits)
                .layer(rpc_metrics.clone())
                .layer(touchline_runtime::codes::layer())
                .layer(touchline_runtime::metadata::layer())
                .layer(touchline_runtime::gate::gate_layer(gate.clone()))
                .layer(GrpcServerTraceLayer::new())
                .layer(AuthLayer::new(verifier.clone(), policy.clone()))
                .add_routes(routes.routes());
            let incoming = touchline_runtime::server::incoming(listener);
            let drain_delay = Duration::from_millis(config.limits.drain_delay_ms);
            let grace = Duration::from_millis(config.limits.shutdown_grace_ms);
            let stop = shutdown.clone();
            let deadline = shutdown.clone();
            let stop_health = health.clone();
            tasks.spawn(async move {
                let signal = async move {
                    stop.wait().await;
                    stop_health.not_serving().await;
                    tokio::time::sleep(drain_delay).await;
                };
                let serve = server.serve_with_incoming_shutdown(incoming, signal);
                // The grace period starts when draining does; a server that
                // cannot drain in time is abandoned rather than waited on.
                let mut serve = std::pin::pin!(serve);
                tokio::select! {
                    result = &mut serve => log_server_end(result),
                    () = async { deadline.wait().await; tokio::time::sleep(drain_delay + grace).await } => {
                        tracing::warn!(grace_ms = grace.as_millis() as u64, "shutdown grace period over; abandoning open calls");
                    }
                }
            });
            health.serving().await;
            healths.push(health);
        }

        tasks.spawn(report_stuck_consumers(
            pipeline_status.clone(),
            healths.clone(),
            shutdown.clone(),
        ));
        if pool.is_some() {
            let watchdog = Watchdog::new(config.database.connect_options()?);
            tasks.spawn(watch_database(watchdog, gate, healths, shutdown.clone()));
        }

        if let Some(pool) = &pool {
            let schemas: Vec<String> = owned_schemas()
                .into_iter()
                .filter(|(service, _, _)| services.contains(service))
                .map(|(_, schema, _)| schema.to_owned())
                .collect();
            let upkeep = Upkeep::new(pool.clone(), schemas, config.database.upkeep);
            let stop = shutdown.clone();
            tasks.spawn(async move { upkeep.run_until(stop.wait()).await });
            let request_tables: Vec<RequestTable> = request_tables()
                .into_iter()
                .filter(|(service, _)| services.contains(service))
                .map(|(_, table)| table)
                .collect();
            let (expiry_pool, stop) = (pool.clone(), shutdown.clone());
            tasks.spawn(async move {
                touchline_db::requests::expire_until(expiry_pool, request_tables, stop.wait())
                    .await;
            });
            if services.contains(&ServiceName::Governance) {
                let collection = Collection::new(
                    lazy_channel(&upstream(ServiceName::Collection)?)?,
                    credentials.clone(),
                );
                tasks.spawn(
                    CleaningWorker::new(pool.clone(), collection, config.governance.clone())
                        .with_status(pipeline_status.clone())
                        .run(shutdown.clone()),
                );
            }
            if services.contains(&ServiceName::Modeling) {
                let governance = Governance::new(
                    lazy_channel(&upstream(ServiceName::Governance)?)?,
                    credentials.clone(),
                );
                let identity = Identity::new(
                    lazy_channel(&upstream(ServiceName::Identity)?)?,
                    credentials.clone(),
                );
                tasks.spawn(
                    IdentityChangesWorker::new(pool.clone(), identity.clone())
                        .with_status(pipeline_status.clone())
                        .run(shutdown.clone()),
                );
                tasks.spawn(
                    EventStoreWorker::new(pool.clone(), governance, identity)
                        .with_status(pipeline_status.clone())
                        .run(shutdown.clone()),
                );
            }
        }
        for (service, addr) in &addresses {
            tracing::info!(service = service.as_str(), %addr, "serving");
        }
        Ok(Self {
            addresses,
            metrics_addr,
            shutdown,
            tasks,
        })
    }

    /// Where the Prometheus scrape endpoint listens, when `telemetry.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where each served service listens.
    pub fn addresses(&self) -> &BTreeMap<ServiceName, SocketAddr> {
        &self.addresses
    }

    /// The address of `service`, if served here.
    pub fn address_of(&self, service: ServiceName) -> Option<SocketAddr> {
        self.addresses.get(&service).copied()
    }

    /// The shutdown handle of this process.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Waits until shutdown has completed (servers drained, workers stopped).
    pub async fn stopped(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The services that keep tables, with their schema and its migrations.
/// The idempotency-key tables of the services that keep them.
fn request_tables() -> [(ServiceName, RequestTable); 3] {
    [
        (
            ServiceName::Collection,
            touchline_collection::store::sources::REQUESTS,
        ),
        (
            ServiceName::Governance,
            touchline_governance::store::REQUESTS,
        ),
        (
            ServiceName::Identity,
            touchline_identity::store::admin::REQUESTS,
        ),
    ]
}

fn owned_schemas() -> [(ServiceName, &'static str, &'static Migrator); 4] {
    [
        (
            ServiceName::Collection,
            touchline_collection::SCHEMA,
            &touchline_collection::MIGRATOR,
        ),
        (
            ServiceName::Governance,
            touchline_governance::SCHEMA,
            &touchline_governance::MIGRATOR,
        ),
        (
            ServiceName::Identity,
            touchline_identity::SCHEMA,
            &touchline_identity::MIGRATOR,
        ),
        (
            ServiceName::Modeling,
            touchline_modeling::SCHEMA,
            &touchline_modeling::MIGRATOR,
        ),
    ]
}

fn log_server_end(result: Result<(), tonic::transport::Error>) {
    match result {
        Ok(()) => tracing::info!("server drained and stopped"),
        Err(err) => tracing::error!(error = %err, "server failed"),
    }
}

/// The token the stages present to each other.
/// The gRPC name of the pipeline status service every server mounts.
const PIPELINE_SERVICE: &str = "touchline.pipeline.v1.PipelineService";

/// Every second, turns the pipeline service's health entry NOT_SERVING while a consumer of
/// this process is stuck (and SERVING again once none is), logging each change once.
async fn report_stuck_consumers(
    status: PipelineStatus,
    healths: Vec<HealthHandle>,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut stuck = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.wait() => return,
        }
        record_lag(&status);
        let now = status.any_stuck();
        if now == stuck {
            continue;
        }
        stuck = now;
        if stuck {
            tracing::warn!("a pipeline consumer is stuck; see GetPipelineStatus");
        } else {
            tracing::info!("no pipeline consumer is stuck any more");
        }
        for health in &healths {
            health.set_service(PIPELINE_SERVICE, !stuck).await;
        }
    }
}

/// Each consumer's lag, as gauges per log, consumer and tenant.
fn record_lag(status: &PipelineStatus) {
    let metrics = touchline_telemetry::metrics::pipeline();
    for row in status.rows(std::time::SystemTime::now()) {
        let log = match row.consumer.as_str() {
            touchline_governance::RAW_LOG_CONSUMER => "raw",
            touchline_modeling::CLEAN_LOG_CONSUMER => "clean",
            _ => "identity_changes",
        };
        metrics.record_lag(
            log,
            &row.consumer,
            &row.tenant,
            row.lag_events(),
            row.lag.as_secs_f64(),
        );
    }
}

/// Pings the database every second: while it does not answer, calls are refused at once with
/// UNAVAILABLE and a retry hint, and health reports NOT_SERVING; both come back when it does.
/// Each outage is logged twice (when it starts, and when it ends with its length and the
/// failed pings), never once per ping.
async fn watch_database(
    mut watchdog: Watchdog,
    gate: touchline_runtime::gate::DependencyGate,
    healths: Vec<HealthHandle>,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(touchline_db::watchdog::PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.wait() => return,
        }
        match watchdog.check().await {
            Some(Change::Down) => {
                gate.set_down(true);
                tracing::warn!(
                    "the database does not answer; refusing calls with UNAVAILABLE until it does"
                );
                for health in &healths {
                    health.not_serving().await;
                }
            }
            Some(Change::Up { outage, failures }) => {
                gate.set_down(false);
                tracing::info!(
                    outage_ms = outage.as_millis() as u64,
                    failed_pings = failures,
                    "the database answers again"
                );
                if !shutdown.is_triggered() {
                    for health in &healths {
                        health.serving().await;
                    }
                }
            }
            None => {}
        }
    }
}

fn pipeline_token(config: &Config) -> anyhow::Result<String> {
    if let Some(token) = &config.pipeline.token {
        return Ok(token.expose_secret().to_owned());
    }
    match (&config.auth.hs256_secret, config.auth.allow_hs256) {
        (Some(secret), true) => {
            let claims = TokenClaims::new(
                config.auth.issuer.clone(),
                config.auth.audience.clone(),
                "touchline-pipeline",
                touchline_auth::PLATFORM_TENANT,
            )
            .with_scopes(PIPELINE_SCOPES)
            .with_roles(["service"])
            .with_ttl(Duration::from_secs(365 * 24 * 3600));
            Ok(touchline_auth::mint_hs256(
                secret.expose_secret().as_bytes(),
                &claims,
            )?)
        }
        _ => anyhow::bail!(
            "pipeline.token is not set: give the stages a platform-account token (tenant \"*\", scopes {}) \
             or enable the development HS256 secret",
            PIPELINE_SCOPES.join(" ")
        ),
    }
}
