//! `touchline demo`: starts every service, sends the `small` reference data
//! set through the pipeline, waits until the event store has it, and prints
//! what reporting says — then keeps serving until Ctrl-C.
//! 演示：启动全部服务，发送小型参考数据集，打印报表结果。

use std::time::{Duration, Instant};

use anyhow::Context as _;
use secrecy::SecretString;
use touchline_auth::TokenClaims;
use touchline_proto::governance::v1 as governance;
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::reporting::v1::GetEventCountsRequest;
use touchline_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use touchline_runtime::Shutdown;
use touchline_runtime::client::{CallCredentials, lazy_channel};

use crate::app::Application;
use crate::config::{Config, ServiceName};

/// Options of `touchline demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Persons to generate (the `small` preset has 1,000).
    #[arg(long, default_value_t = 1_000)]
    pub persons: u64,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The tenant to load the data into.
    #[arg(long, default_value = "demo")]
    pub tenant: String,
    /// Exit after printing the summary instead of serving on.
    #[arg(long)]
    pub exit: bool,
}

/// Runs the demo.
#[expect(
    clippy::too_many_lines,
    reason = "the demo's script: start, load, then show each result in turn"
)]
pub async fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<()> {
    // The demo's own lines are the output: the services' logs go to a file it names (unless
    // the configuration chose one), so no log line interleaves with the summary.
    let log_file = config
        .telemetry
        .log_file
        .get_or_insert_with(|| std::env::temp_dir().join("touchline-demo.log"))
        .clone();
    let telemetry = touchline_telemetry::init(&config.telemetry)?;
    println!(
        "service logs: {path}
服务日志：{path}",
        path = log_file.display()
    );
    if config.auth.hs256_secret.is_none()
        && config.auth.jwks_file.is_none()
        && config.auth.jwks_url.is_none()
    {
        // A fresh development secret: tokens minted here die with the process.
        let secret: [u8; 32] = rand::random();
        config.auth.hs256_secret = Some(SecretString::from(hex::encode(secret)));
        config.auth.allow_hs256 = true;
    }
    let secret = config
        .auth
        .hs256_secret
        .clone()
        .context("the demo needs auth.hs256_secret with allow_hs256 = true")?;
    let claims = TokenClaims::new(
        config.auth.issuer.clone(),
        config.auth.audience.clone(),
        "demo",
        args.tenant.clone(),
    )
    .with_scopes([
        "events:write",
        "sources:write",
        "dictionary:write",
        "dictionary:read",
        "quality:read",
        "models:read",
        "reports:read",
        "identity:read",
        "segments:read",
        "segments:write",
        "activation:read",
        "activation:write",
    ])
    .with_roles(["marketing"]);
    let token = touchline_auth::mint_hs256(
        secrecy::ExposeSecret::expose_secret(&secret).as_bytes(),
        &claims,
    )?;

    // The demo's webhook receiver listens on a plain-http loopback address, which the
    // services call only when the operator allows both.
    let webhooks_allowed = config.webhooks.allow_plain_http && config.webhooks.allow_loopback;
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let app = Application::build(config, shutdown.clone()).await?;
    let addr = app
        .address_of(ServiceName::Collection)
        .context("collection is not served")?;
    println!(
        "touchline is serving on {addr} (all five services)\ntouchline 已在 {addr} 启动（五个服务）"
    );
    let credentials = CallCredentials::bearer(&token)?;
    let mut governance = GovernanceServiceClient::with_interceptor(
        lazy_channel(&format!("http://{addr}"))?,
        credentials.clone(),
    );
    let parent = format!("tenants/{}", args.tenant);
    start_from_retail_template(&mut governance, &parent).await?;

    let started = Instant::now();
    let mut cfg =
        touchline_sim::SimConfig::new(touchline_sim::TemplateKind::Retail, args.persons, args.seed);
    // The generated period ends today: churn scores and lifecycle stages are taken as of now,
    // and a period that ended months ago would show every customer as gone.
    cfg.end_date = chrono::Utc::now().date_naive();
    // Journey results cover the generated period (one day of margin for shifted clocks).
    let cfg_range = (cfg.start_ms() - 86_400_000, cfg.end_ms() + 86_400_000);
    let mut opts = touchline_sim::SendOptions::new(addr.to_string(), token.clone());
    opts.progress_every = None;
    let sent = touchline_sim::send(cfg, &opts).await?;
    println!(
        "sent {} events from {} persons in {:.1}s: {} accepted, {} duplicates (planted SDK retries), {} rejected\n\
         已发送 {} 条事件：接收 {}，重复 {}（故意植入的重发），拒收 {}",
        sent.sent,
        args.persons,
        sent.elapsed.as_secs_f64(),
        sent.accepted,
        sent.duplicates,
        sent.rejected_total(),
        sent.sent,
        sent.accepted,
        sent.duplicates,
        sent.rejected_total(),
    );

    let mut reporting = ReportingServiceClient::with_interceptor(
        lazy_channel(&format!("http://{addr}"))?,
        credentials,
    );
    // Governance first: every received event ends clean, quarantined or a duplicate, so
    // the quality report balances once it has caught up. Then the event store, which holds
    // one row per clean message id.
    let deadline = Instant::now() + Duration::from_secs(600);
    let clean = loop {
        let total = governance
            .get_quality_report(governance::GetQualityReportRequest {
                parent: parent.clone(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .total
            .unwrap_or_default();
        let accounted = total.clean + total.quarantined + total.duplicates;
        if (total.received > 0 && accounted >= total.received) || Instant::now() > deadline {
            break total.clean - total.restatements;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (mut last, mut settled_since) = (-1i64, Instant::now());
    let counts = loop {
        let counts = reporting
            .get_event_counts(GetEventCountsRequest::default())
            .await?
            .into_inner();
        if counts.total_events != last {
            last = counts.total_events;
            settled_since = Instant::now();
        }
        let stalled = settled_since.elapsed() > Duration::from_secs(30);
        if counts.total_events >= clean || stalled || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "\nthrough the pipeline in {:.1}s: {} events of {} persons in the event store\n经过管道：事件库中 {} 条事件，{} 位用户\n",
        started.elapsed().as_secs_f64(),
        counts.total_events,
        counts.total_persons,
        counts.total_events,
        counts.total_persons
    );
    println!(
        "{:<22} {:>8} {:>8} {:>7}",
        "channel / 渠道", "events", "persons", "share"
    );
    for row in &counts.by_channel {
        println!(
            "{:<22} {:>8} {:>8} {:>6.1}%",
            row.key,
            row.events,
            row.persons,
            row.share * 100.0
        );
    }
    println!(
        "\n{:<22} {:>8} {:>8} {:>7}",
        "event / 事件", "events", "persons", "share"
    );
    for row in counts.by_event.iter().take(15) {
        println!(
            "{:<22} {:>8} {:>8} {:>6.1}%",
            row.key,
            row.events,
            row.persons,
            row.share * 100.0
        );
    }
    print_quality(&mut governance, &parent).await?;
    let mut modeling = ModelingServiceClient::with_interceptor(
        lazy_channel(&format!("http://{addr}"))?,
        CallCredentials::bearer(&token)?,
    );
    let range = (cfg_range.0, cfg_range.1);
    crate::demo_journeys::print_funnel(&mut modeling, &parent, range).await?;
    crate::demo_journeys::print_retention(&mut modeling, &parent, range).await?;
    crate::demo_journeys::print_lifecycle(&mut modeling, &parent, range).await?;
    crate::demo_journeys::print_paths(&mut modeling, &parent, range).await?;
    crate::demo_attribution::print_attribution(&mut modeling, &parent, range).await?;
    let mut identity = touchline_proto::identity::v1::identity_service_client::IdentityServiceClient::with_interceptor(
        lazy_channel(&format!("http://{addr}"))?,
        CallCredentials::bearer(&token)?,
    );
    crate::demo_churn::print_rfm(&mut modeling, &parent).await?;
    crate::demo_churn::print_churn(&mut modeling, &mut identity, &parent).await?;
    crate::demo_activation::run(
        &mut modeling,
        &mut identity,
        &parent,
        webhooks_allowed,
        &shutdown,
    )
    .await?;
    println!("\ntry: grpcurl -plaintext -H 'authorization: Bearer {token}' {addr} list");
    if args.exit {
        shutdown.trigger();
    } else {
        println!("serving until Ctrl-C / 按 Ctrl-C 退出");
    }
    app.stopped().await;
    telemetry.shutdown()?;
    Ok(())
}

type Governance = GovernanceServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, CallCredentials>,
>;

/// The demo tenant starts from the retail industry template, so aliases such as
/// `submit_order` arrive under their canonical names.
async fn start_from_retail_template(
    governance: &mut Governance,
    parent: &str,
) -> anyhow::Result<()> {
    let applied = governance
        .apply_industry_template(governance::ApplyIndustryTemplateRequest {
            parent: parent.to_owned(),
            template: "retail".to_owned(),
            mode: governance::ApplyTemplateMode::Merge as i32,
            ..Default::default()
        })
        .await
        .context("applying the retail dictionary template")?
        .into_inner();
    let published = governance
        .publish_dictionary_version(governance::PublishDictionaryVersionRequest {
            parent: parent.to_owned(),
            description: "demo: retail template".to_owned(),
            ..Default::default()
        })
        .await;
    // A second run on the same database finds the template published already: governance
    // refuses to publish an unchanged dictionary, and the active version serves as it is.
    let published = match published {
        Ok(reply) => reply.into_inner(),
        Err(status)
            if status.code() == tonic::Code::FailedPrecondition
                && status.message().contains("nothing changed") =>
        {
            println!("event dictionary: unchanged since an earlier run / 事件字典与上次运行相同");
            governance::PublishDictionaryVersionResponse::default()
        }
        Err(status) => return Err(status).context("publishing the dictionary"),
    };
    println!(
        "event dictionary: retail template, {} canonical events, version {}\n事件字典：零售行业模板，{} 个标准事件",
        applied.added_event_names.len()
            + applied.updated_event_names.len()
            + applied.unchanged_event_names.len(),
        published
            .dictionary_version
            .map(|v| v.version)
            .unwrap_or_default(),
        applied.added_event_names.len()
            + applied.updated_event_names.len()
            + applied.unchanged_event_names.len(),
    );
    Ok(())
}

/// What governance made of the data: the quality report's totals and quarantine reasons.
async fn print_quality(governance: &mut Governance, parent: &str) -> anyhow::Result<()> {
    let report = governance
        .get_quality_report(governance::GetQualityReportRequest {
            parent: parent.to_owned(),
            time_zone: "Asia/Shanghai".to_owned(),
            ..Default::default()
        })
        .await
        .context("reading the quality report")?
        .into_inner();
    let Some(total) = report.total else {
        return Ok(());
    };
    println!(
        "\ndata quality / 数据质量: received {} = clean {} + quarantined {} + duplicates {}\n\
         接收 {} = 合格 {} + 隔离 {} + 重复 {}；restatements / 重报 {}，late / 迟到 {}，timestamps corrected / 时间已校正 {}，identified / 可识别 {:.1}%",
        total.received,
        total.clean,
        total.quarantined,
        total.duplicates,
        total.received,
        total.clean,
        total.quarantined,
        total.duplicates,
        total.restatements,
        total.late_events,
        total.timestamps_corrected,
        total.identified_share * 100.0,
    );
    for reason in &total.quarantined_by_reason {
        let name = governance::QuarantineReason::try_from(reason.reason)
            .map(|r| {
                r.as_str_name()
                    .trim_start_matches("QUARANTINE_REASON_")
                    .to_lowercase()
            })
            .unwrap_or_default();
        println!("  quarantined / 隔离 {name:<28} {:>7}", reason.count);
    }
    Ok(())
}
