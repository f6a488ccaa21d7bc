//! Assembles a touchline process from its configuration: connects and
//! migrates the database, binds the listeners, mounts the services (see
//! `mount`: each service's routes and its workers) with the trace and auth
//! layers, health and reflection, and runs the shutdown sequence.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tonic::service::RoutesBuilder;
use touchline_auth::{AuthLayer, ScopePolicy, TokenClaims, Verifier};
use touchline_db::sqlx::PgPool;
use touchline_db::sqlx::migrate::Migrator;
use touchline_db::watchdog::{Change, Watchdog};
use touchline_db::{LogNotifier, RequestTable, Upkeep};
use touchline_pipeline::status::PipelineStatus;
use touchline_pipeline::status_api::PipelineApi;
use touchline_runtime::client::CallCredentials;
use touchline_runtime::{HealthHandle, Shutdown};
use touchline_telemetry::GrpcServerTraceLayer;

use crate::config::{Config, ServiceName};
use crate::mount::{Shared, Upstreams, mount};

/// Scopes of the platform account the stages use to call each other.
pub const PIPELINE_SCOPES: [&str; 8] = [
    touchline_auth::PLATFORM_SCOPE,
    "pipeline:read",
    "dictionary:read",
    "identity:resolve",
    "identity:erase",
    "identity:export",
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
        let services = selected_services(&config)?;
        let verifier = Verifier::from_config(&config.auth)
            .await
            .context("auth is not configured: set auth.jwks_file or auth.jwks_url, or for development auth.hs256_secret with auth.allow_hs256 = true")?;
        let policy =
            ScopePolicy::new(touchline_proto::scopes::REQUIRED_SCOPES).context("scope table")?;
        let credentials = CallCredentials::bearer(&pipeline_token(&config)?)
            .context("pipeline token is not valid header text")?;
        let pool = open_database(&config, &services).await?;
        // Bind every listener first so upstream URLs of local services are known.
        let (bound, addresses) = bind_listeners(&config, &services).await?;
        let notifier = start_notifier(pool.as_ref(), &services).await?;
        let mut tasks = JoinSet::new();
        let metrics_addr = serve_metrics(&config, &shutdown, &mut tasks).await?;
        let layers = ServerLayers::new(&config, verifier, policy);
        let pipeline_status = PipelineStatus::new();
        let shared = Shared {
            config: &config,
            pool: pool.as_ref(),
            notifier: notifier.as_ref(),
            credentials: &credentials,
            upstreams: Upstreams {
                local: &addresses,
                configured: &config.pipeline.upstream,
            },
            status: &pipeline_status,
            shutdown: &shutdown,
        };
        let mut background = Vec::new();
        let mut healths = Vec::new();
        for (listener, group) in bound {
            let mut routes = RoutesBuilder::default();
            let mut names: Vec<&str> = group.iter().map(|s| s.grpc_name()).collect();
            names.push(PIPELINE_SERVICE);
            routes.add_service(PipelineApi::server(pipeline_status.clone()));
            let (health, health_service) = HealthHandle::new(&names).await;
            routes.add_service(health_service);
            routes
                .add_service(touchline_runtime::server::reflection(&names).context("reflection")?);
            for service in &group {
                mount(*service, &shared, &mut routes, &mut background).await?;
            }
            serve(
                &config, &layers, routes, listener, &health, &shutdown, &mut tasks,
            );
            health.serving().await;
            healths.push(health);
        }
        for task in background {
            tasks.spawn(task);
        }
        tasks.spawn(report_stuck_consumers(
            pipeline_status.clone(),
            healths.clone(),
            shutdown.clone(),
        ));
        if let Some(pool) = &pool {
            let watchdog = Watchdog::new(config.database.connect_options()?);
            tasks.spawn(watch_database(
                watchdog,
                layers.gate,
                healths,
                shutdown.clone(),
            ));
            spawn_upkeep(pool, &config, &services, &shutdown, &mut tasks);
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

/// The services to run, each once.
fn selected_services(config: &Config) -> anyhow::Result<Vec<ServiceName>> {
    let mut services = config.services.clone();
    services.sort();
    services.dedup();
    anyhow::ensure!(!services.is_empty(), "no services selected");
    Ok(services)
}

/// Connects and migrates the schemas of the services that keep data (all but reporting).
async fn open_database(
    config: &Config,
    services: &[ServiceName],
) -> anyhow::Result<Option<PgPool>> {
    if services.iter().all(|s| *s == ServiceName::Reporting) {
        return Ok(None);
    }
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
    Ok(Some(pool))
}

/// Listeners bound, with the services each serves.
type BoundListeners = Vec<(TcpListener, Vec<ServiceName>)>;

/// Binds one listener per distinct address; services without their own address share
/// `config.listen`.
async fn bind_listeners(
    config: &Config,
    services: &[ServiceName],
) -> anyhow::Result<(BoundListeners, BTreeMap<ServiceName, SocketAddr>)> {
    let mut groups: BTreeMap<SocketAddr, Vec<ServiceName>> = BTreeMap::new();
    for service in services {
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
    Ok((bound, addresses))
}

/// One LISTEN connection for the logs served here (collection's raw log, governance's clean
/// log, identity's changes), when there are any.
async fn start_notifier(
    pool: Option<&PgPool>,
    services: &[ServiceName],
) -> anyhow::Result<Option<LogNotifier>> {
    let channels: Vec<&str> = [
        (
            ServiceName::Collection,
            touchline_collection::RAW_LOG_CHANNEL,
        ),
        (
            ServiceName::Governance,
            touchline_governance::CLEAN_LOG_CHANNEL,
        ),
        (ServiceName::Identity, touchline_identity::CHANGES_CHANNEL),
    ]
    .into_iter()
    .filter(|(service, _)| services.contains(service))
    .map(|(_, channel)| channel)
    .collect();
    match pool {
        Some(pool) if !channels.is_empty() => Ok(Some(
            LogNotifier::start(pool, &channels)
                .await
                .context("LISTEN connection")?,
        )),
        _ => Ok(None),
    }
}

/// Serves the Prometheus scrape endpoint when `telemetry.metrics_listen` is set.
async fn serve_metrics(
    config: &Config,
    shutdown: &Shutdown,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(addr) = config.telemetry.metrics_listen else {
        return Ok(None);
    };
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
    Ok(Some(local))
}

/// The layers every server wraps its routes in.
struct ServerLayers {
    rpc_metrics: touchline_telemetry::RpcMetricsLayer,
    gate: touchline_runtime::gate::DependencyGate,
    verifier: Verifier,
    policy: ScopePolicy,
}

impl ServerLayers {
    fn new(config: &Config, verifier: Verifier, policy: ScopePolicy) -> Self {
        Self {
            // Built once, after telemetry set the global meter provider, and shared by every
            // server: outermost, so it records the code each caller actually got.
            rpc_metrics: touchline_telemetry::RpcMetricsLayer::new()
                .with_server_timeout(Duration::from_millis(config.limits.request_timeout_ms)),
            // Shut while the database does not answer (see `watch_database`); never shut in a
            // process without one.
            gate: touchline_runtime::gate::DependencyGate::new(),
            verifier,
            policy,
        }
    }
}

/// Serves `routes` on `listener` until shutdown, with the shared layers and the drain
/// sequence: health NOT_SERVING, the drain delay, then at most the grace period for open calls.
fn serve(
    config: &Config,
    layers: &ServerLayers,
    routes: RoutesBuilder,
    listener: TcpListener,
    health: &HealthHandle,
    shutdown: &Shutdown,
    tasks: &mut JoinSet<()>,
) {
    let server = touchline_runtime::server::builder(&config.limits)
        .layer(layers.rpc_metrics.clone())
        .layer(touchline_runtime::codes::layer())
        .layer(touchline_runtime::metadata::layer())
        .layer(touchline_runtime::gate::gate_layer(layers.gate.clone()))
        .layer(GrpcServerTraceLayer::new())
        .layer(AuthLayer::new(
            layers.verifier.clone(),
            layers.policy.clone(),
        ))
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
}

/// The database's housekeeping for the schemas served here, and the expiry of idempotency
/// records.
fn spawn_upkeep(
    pool: &PgPool,
    config: &Config,
    services: &[ServiceName],
    shutdown: &Shutdown,
    tasks: &mut JoinSet<()>,
) {
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
        touchline_db::requests::expire_until(expiry_pool, request_tables, stop.wait()).await;
    });
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
