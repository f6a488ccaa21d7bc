//! `touchline demo`: starts every service, sends the `small` reference data
//! set through the pipeline, waits until the event store has it, and prints
//! what reporting says — then keeps serving until Ctrl-C.
//! 演示：启动全部服务，发送小型参考数据集，打印报表结果。

use std::time::{Duration, Instant};

use anyhow::Context as _;
use secrecy::SecretString;
use touchline_auth::TokenClaims;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::common::v1 as common;
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

/// Events per IngestEvents call.
const BATCH: usize = 500;

/// Runs the demo.
pub async fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let telemetry = touchline_telemetry::init(&config.telemetry)?;
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
    .with_scopes(["events:write", "models:read", "reports:read"])
    .with_roles(["marketing"]);
    let token = touchline_auth::mint_hs256(
        secrecy::ExposeSecret::expose_secret(&secret).as_bytes(),
        &claims,
    )?;

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
    let mut collection = CollectionServiceClient::with_interceptor(
        lazy_channel(&format!("http://{addr}"))?,
        credentials.clone(),
    );

    let started = Instant::now();
    let cfg =
        touchline_sim::SimConfig::new(touchline_sim::TemplateKind::Retail, args.persons, args.seed);
    let events = touchline_sim::events(cfg)?;
    let (mut sent, mut accepted, mut duplicates, mut rejected) = (0usize, 0i64, 0i64, 0i64);
    let mut batch = Vec::with_capacity(BATCH);
    let mut flush = async |batch: &mut Vec<common::Event>| -> anyhow::Result<()> {
        let response = collection
            .ingest_events(IngestEventsRequest {
                events: std::mem::take(batch),
            })
            .await?
            .into_inner();
        accepted += i64::from(response.accepted_count);
        duplicates += i64::from(response.duplicate_count);
        rejected += i64::from(response.rejected_count);
        Ok(())
    };
    for event in events {
        batch.push(to_proto(event));
        sent += 1;
        if batch.len() == BATCH {
            flush(&mut batch).await?;
        }
    }
    if !batch.is_empty() {
        flush(&mut batch).await?;
    }
    println!(
        "sent {sent} events from {} persons in {:.1}s: {accepted} accepted, {duplicates} duplicates, {rejected} rejected (planted defects)\n\
         已发送 {sent} 条事件：接收 {accepted}，重复 {duplicates}，拒收 {rejected}（含故意植入的脏数据）",
        args.persons,
        started.elapsed().as_secs_f64()
    );

    let mut reporting = ReportingServiceClient::with_interceptor(
        lazy_channel(&format!("http://{addr}"))?,
        credentials,
    );
    // Quarantined events never reach the store, so wait until the counts
    // settle (or everything accepted has arrived) rather than for a number.
    let deadline = Instant::now() + Duration::from_secs(300);
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
        let settled = counts.total_events > 0 && settled_since.elapsed() > Duration::from_secs(5);
        if counts.total_events >= accepted || settled || Instant::now() > deadline {
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

/// The generator's SDK-shaped event as the contract's `Event`.
pub fn to_proto(event: touchline_sim::Event) -> common::Event {
    let kind = match event.kind {
        "identify" => common::EventType::Identify,
        "page" => common::EventType::Page,
        "screen" => common::EventType::Screen,
        "alias" => common::EventType::Alias,
        _ => common::EventType::Track,
    };
    let original_timestamp = match &event.original_timestamp {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    common::Event {
        message_id: event.message_id,
        r#type: kind as i32,
        event: event.event.unwrap_or_default(),
        anonymous_id: event.anonymous_id.unwrap_or_default(),
        user_id: event.user_id.unwrap_or_default(),
        previous_id: String::new(),
        properties: Some(to_struct(event.properties)),
        traits: None,
        context: match event.context {
            serde_json::Value::Object(map) => Some(to_struct(map)),
            _ => None,
        },
        original_timestamp,
        sent_at: event.sent_at.to_string(),
        identifiers: event
            .identifiers
            .into_iter()
            .map(|id| common::Identifier {
                r#type: id.kind.to_string(),
                value: id.value,
                scope: id.scope.unwrap_or_default().to_owned(),
            })
            .collect(),
        source: event.source,
        channel: event.channel.to_owned(),
    }
}

fn to_struct(map: serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
    }
}

fn to_value(value: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}
