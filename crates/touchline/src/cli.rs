//! Command-line interface. 命令行入口。

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret as _;
use touchline_auth::TokenClaims;
use touchline_runtime::Shutdown;

use crate::app::Application;
use crate::config::{Config, ServiceName};

/// touchline — omnichannel touchpoint data platform / 全渠道触点数据中台
#[derive(Debug, Parser)]
#[command(name = "touchline", version, about)]
pub struct Cli {
    /// A TOML configuration file (environment variables TOUCHLINE_* override it).
    #[arg(long, global = true, env = "TOUCHLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve services (all five by default) / 启动服务
    Serve {
        /// Comma-separated subset: collection,governance,identity,modeling,reporting.
        #[arg(long, value_delimiter = ',')]
        services: Vec<ServiceName>,
        /// Listen address for every service served (overrides config `listen`).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Apply database migrations of every service and exit / 执行数据库迁移
    Migrate,
    /// Mint a development token signed with the HS256 secret / 签发开发用令牌
    Token {
        /// The tenant the token acts for (`*` for a platform account).
        #[arg(long)]
        tenant: String,
        /// Comma-separated scopes, e.g. events:write,models:read.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Comma-separated roles, e.g. marketing.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// The token subject.
        #[arg(long, default_value = "developer")]
        subject: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
    /// Start everything, load a generated multi-channel data set, show results / 演示
    Demo(crate::demo::DemoArgs),
    /// Generate the reference multi-channel data set / 生成参考数据集
    Sim(touchline_sim::SimArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let config: Config =
        touchline_runtime::config::load(cli.config.as_deref(), &["config", "token"])
            .map_err(|err| anyhow::anyhow!("{err}"))?;
    match cli.command {
        Command::Sim(args) => touchline_sim::run(&args),
        Command::Token {
            tenant,
            scopes,
            roles,
            subject,
            ttl_secs,
        } => {
            let secret = config.auth.hs256_secret.as_ref().context(
                "set auth.hs256_secret (TOUCHLINE_AUTH__HS256_SECRET) to mint development tokens",
            )?;
            let claims = TokenClaims::new(
                config.auth.issuer.clone(),
                config.auth.audience.clone(),
                subject,
                tenant,
            )
            .with_scopes(scopes)
            .with_roles(roles)
            .with_ttl(Duration::from_secs(ttl_secs));
            println!(
                "{}",
                touchline_auth::mint_hs256(secret.expose_secret().as_bytes(), &claims)?
            );
            Ok(())
        }
        Command::Migrate => runtime()?.block_on(migrate(&config)),
        Command::Serve { services, listen } => {
            let mut config = config;
            if !services.is_empty() {
                config.services = services;
            }
            if let Some(listen) = listen {
                config.listen = listen;
            }
            runtime()?.block_on(serve(config))
        }
        Command::Demo(args) => runtime()?.block_on(crate::demo::run(config, args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let telemetry = touchline_telemetry::init(&config.telemetry)?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let app = Application::build(config, shutdown).await?;
    app.stopped().await;
    telemetry.shutdown()?;
    Ok(())
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let pool = touchline_db::connect(&config.database)
        .await
        .context("cannot reach PostgreSQL (database.url / TOUCHLINE_DATABASE__URL)")?;
    for (schema, migrator) in [
        (
            touchline_collection::SCHEMA,
            &touchline_collection::MIGRATOR,
        ),
        (
            touchline_governance::SCHEMA,
            &touchline_governance::MIGRATOR,
        ),
        (touchline_identity::SCHEMA, &touchline_identity::MIGRATOR),
        (touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR),
    ] {
        touchline_db::migrate(&pool, schema, migrator)
            .await
            .with_context(|| format!("migrating schema {schema}"))?;
        println!("migrated {schema}");
    }
    Ok(())
}
