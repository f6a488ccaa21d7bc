//! The configuration of a touchline process: defaults, then an optional
//! TOML file, then `TOUCHLINE_` environment variables (`__` nests), checked
//! once at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;

use secrecy::SecretString;
use serde::Deserialize;
use touchline_auth::AuthConfig;
use touchline_collection::CollectionConfig;
use touchline_db::DbConfig;
use touchline_identity::IdentityConfig;
use touchline_runtime::ServerLimits;
use touchline_telemetry::TelemetryConfig;

/// One of the five services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    /// Ingestion and the raw log.
    Collection,
    /// Cleaning and the clean log.
    Governance,
    /// The identity graph.
    Identity,
    /// The event store and models.
    Modeling,
    /// Dashboards and reports.
    Reporting,
}

impl ServiceName {
    /// All services, in pipeline order.
    pub const ALL: [ServiceName; 5] = [
        ServiceName::Collection,
        ServiceName::Governance,
        ServiceName::Identity,
        ServiceName::Modeling,
        ServiceName::Reporting,
    ];

    /// Lower-case name, as in config and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Collection => "collection",
            ServiceName::Governance => "governance",
            ServiceName::Identity => "identity",
            ServiceName::Modeling => "modeling",
            ServiceName::Reporting => "reporting",
        }
    }

    /// The full gRPC service name (for health and reflection).
    pub fn grpc_name(self) -> &'static str {
        match self {
            ServiceName::Collection => "touchline.collection.v1.CollectionService",
            ServiceName::Governance => "touchline.governance.v1.GovernanceService",
            ServiceName::Identity => "touchline.identity.v1.IdentityService",
            ServiceName::Modeling => "touchline.modeling.v1.ModelingService",
            ServiceName::Reporting => "touchline.reporting.v1.ReportingService",
        }
    }
}

impl FromStr for ServiceName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceName::ALL
            .into_iter()
            .find(|name| name.as_str() == s.trim())
            .ok_or_else(|| {
                format!("unknown service {s:?}; expected one of collection, governance, identity, modeling, reporting")
            })
    }
}

/// Everything a touchline process is configured by.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the services listen unless `addresses` says otherwise.
    pub listen: SocketAddr,
    /// Per-service listen addresses, overriding `listen`.
    pub addresses: BTreeMap<ServiceName, SocketAddr>,
    /// Which services this process serves (all by default).
    pub services: Vec<ServiceName>,
    /// PostgreSQL.
    pub database: DbConfig,
    /// Collection service settings: batch and rate limits, source policy.
    pub collection: CollectionConfig,
    /// Identity service settings, including the Redis cache.
    pub identity: IdentityConfig,
    /// Token verification.
    pub auth: AuthConfig,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
    /// Server limits.
    pub limits: ServerLimits,
    /// How the pipeline stages reach and authenticate to each other.
    pub pipeline: PipelineConfig,
    /// Cleaning settings that are not per tenant.
    pub governance: touchline_governance::worker::GovernanceSettings,
    /// Which webhook endpoints may be called.
    pub webhooks: WebhookConfig,
}

/// The operator's webhook switches. The defaults call only public `https://` endpoints:
/// a tenant must never make the platform call into its own network.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Allow `http://` endpoints (the payload then travels in clear text).
    pub allow_plain_http: bool,
    /// Allow loopback addresses (a receiver on the same machine: development, tests, demo).
    pub allow_loopback: bool,
    /// Allow private-network addresses.
    pub allow_private: bool,
    /// How long one delivery attempt may take, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_plain_http: false,
            allow_loopback: false,
            allow_private: false,
            timeout_ms: 15_000,
        }
    }
}

impl WebhookConfig {
    /// As the modeling service takes it.
    pub fn options(&self) -> touchline_modeling::service::WebhookOptions {
        touchline_modeling::service::WebhookOptions {
            policy: touchline_webhooks::AddressPolicy {
                allow_plain_http: self.allow_plain_http,
                allow_loopback: self.allow_loopback,
                allow_private: self.allow_private,
            },
            timeout: std::time::Duration::from_millis(self.timeout_ms.max(1)),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            addresses: BTreeMap::new(),
            services: ServiceName::ALL.to_vec(),
            database: DbConfig::default(),
            collection: CollectionConfig::default(),
            identity: IdentityConfig::default(),
            auth: AuthConfig::default(),
            telemetry: TelemetryConfig::default(),
            limits: ServerLimits::default(),
            pipeline: PipelineConfig::default(),
            governance: touchline_governance::worker::GovernanceSettings::default(),
            webhooks: WebhookConfig::default(),
        }
    }
}

/// How stages call each other.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// A platform-account JWT (tenant `*`) the stages present to each
    /// other. Without it, one is minted from the development HS256 secret.
    pub token: Option<SecretString>,
    /// URLs of services this process does not serve itself
    /// (`http://host:port`); services it serves are called on its own address.
    pub upstream: BTreeMap<ServiceName, String>,
}
