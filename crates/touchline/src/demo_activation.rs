//! Activation in the demo: two segments on the tenant, previewed and then created, a webhook
//! receiver inside this process with a destination pointing at it, and the segments' first
//! entries as they appear in the change feed and as signed deliveries, each one verified.
//! 演示中的激活：两个分群（先预览再创建）、进程内的 Webhook 接收端及其推送目标，
//! 以及分群首批进入记录在变更流中和在经签名校验的推送中的样子。

use std::time::{Duration, Instant};

use anyhow::Context as _;
use touchline_proto::modeling::v1 as modeling;
use touchline_proto::modeling::v1::{SegmentChangeKind, SegmentChangeReason, TriggerType};
use touchline_runtime::Shutdown;
use touchline_webhooks::SigningSecret;

use crate::demo_journeys::Modeling;
use crate::demo_receiver::{Delivery, Receiver};
use crate::demo_segments::{self as segments, DemoSegment, Identity, pad};

/// The ids of the demo's destinations start with these, so a later run can remove them (the
/// second marked the probes earlier versions of the demo made, and may still be left over).
const RECEIVER_PREFIX: &str = "demo-receiver-";
const MARK_PREFIX: &str = "demo-mark-";
/// The longest the demo waits for the first entries to be delivered.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Triggers shown per delivery.
const SHOWN_PER_DELIVERY: usize = 2;

/// Defines the segments, shows them, and — when the configuration lets the services call a
/// plain-http loopback address — shows their first entries arriving at a local receiver.
pub async fn run(
    modeling: &mut Modeling,
    identity: &mut Identity,
    parent: &str,
    webhooks_allowed: bool,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    println!(
        "\nsegments / 分群: two audiences on the demo tenant, previewed before they are created\n\
         在演示租户上定义两个人群：先预览，再创建"
    );
    remove_previous_destinations(modeling, parent).await?;
    segments::remove_previous(modeling, parent).await?;
    let run = run_suffix();
    let defined = segments::definitions(&run);
    for segment in &defined {
        segments::print_preview(modeling, identity, parent, segment).await?;
    }
    if !webhooks_allowed {
        for segment in &defined {
            segments::create(modeling, parent, segment).await?;
        }
        segments::print_when_active(modeling, parent, &defined).await?;
        segments::print_changes(modeling, identity, parent, &defined).await?;
        println!(
            "\nwebhooks skipped: the configuration does not let the services call a plain-http \
             loopback address; set TOUCHLINE_WEBHOOKS__ALLOW_PLAIN_HTTP=true and \
             TOUCHLINE_WEBHOOKS__ALLOW_LOOPBACK=true (make demo does)\n\
             已跳过 Webhook：当前配置不允许调用本机 http 地址，请设置上述两个环境变量（make demo 会设置）"
        );
        return Ok(());
    }
    let secret = SigningSecret::generate();
    let mut receiver = crate::demo_receiver::start(secret.clone(), shutdown.clone()).await?;
    let (created, destination) =
        create_with_destination(modeling, parent, &receiver, &secret, run).await?;
    segments::print_when_active(modeling, parent, &created).await?;
    segments::print_changes(modeling, identity, parent, &created).await?;
    let titles: Vec<(String, &'static str)> =
        created.iter().map(|s| (s.name(parent), s.title)).collect();
    print_deliveries(modeling, identity, &destination, &mut receiver, &titles).await?;
    keep_printing(receiver, identity.clone(), titles);
    Ok(())
}

/// Four hex digits that tell this run's segments and destination from an earlier run's.
fn run_suffix() -> String {
    format!("{:04x}", rand::random::<u16>())
}

/// Deletes the destinations an earlier run of the demo left on the tenant (their receiver is
/// gone with that run's process).
async fn remove_previous_destinations(modeling: &mut Modeling, parent: &str) -> anyhow::Result<()> {
    let mut page_token = String::new();
    loop {
        let page = modeling
            .list_webhook_destinations(modeling::ListWebhookDestinationsRequest {
                parent: parent.to_owned(),
                page_size: 500,
                page_token,
            })
            .await
            .context("listing webhook destinations")?
            .into_inner();
        for destination in page.webhook_destinations {
            let id = destination.name.rsplit('/').next().unwrap_or_default();
            if id.starts_with(RECEIVER_PREFIX) || id.starts_with(MARK_PREFIX) {
                delete_destination(modeling, destination.name).await?;
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        page_token = page.next_page_token;
    }
}

async fn delete_destination(modeling: &mut Modeling, name: String) -> anyhow::Result<()> {
    modeling
        .delete_webhook_destination(modeling::DeleteWebhookDestinationRequest {
            name,
            allow_missing: true,
            ..modeling::DeleteWebhookDestinationRequest::default()
        })
        .await
        .context("deleting a webhook destination")?;
    Ok(())
}

fn segment_triggers() -> Vec<i32> {
    vec![
        TriggerType::SegmentEntered as i32,
        TriggerType::SegmentExited as i32,
    ]
}

/// Creates the segments and a destination that receives their first entries. The destination
/// starts from what the trigger log retains and takes only these segments' triggers, so the
/// entries a quick first build publishes before it exists still reach it.
async fn create_with_destination(
    modeling: &mut Modeling,
    parent: &str,
    receiver: &Receiver,
    secret: &SigningSecret,
    run: String,
) -> anyhow::Result<([DemoSegment; 2], String)> {
    let defined = segments::definitions(&run);
    for segment in &defined {
        segments::create(modeling, parent, segment).await?;
    }
    let destination =
        create_destination(modeling, parent, receiver, secret, &defined, &run).await?;
    print_destination(&destination, &defined);
    test_delivery(modeling, &destination.name).await?;
    Ok((defined, destination.name))
}

/// Sends the destination a test delivery before any trigger flows, and says how it went.
async fn test_delivery(modeling: &mut Modeling, destination: &str) -> anyhow::Result<()> {
    let sent = modeling
        .test_webhook_destination(modeling::TestWebhookDestinationRequest {
            name: destination.to_owned(),
        })
        .await
        .context("sending the test delivery")?
        .into_inner();
    if sent.delivered {
        println!(
            "  test delivery / 测试推送: {} answered HTTP {} in {} ms / 已应答",
            sent.webhook_id, sent.http_status, sent.duration_ms
        );
    } else {
        println!(
            "  test delivery / 测试推送: {} failed / 失败: {}",
            sent.webhook_id, sent.error
        );
    }
    Ok(())
}

async fn create_destination(
    modeling: &mut Modeling,
    parent: &str,
    receiver: &Receiver,
    secret: &SigningSecret,
    segments: &[DemoSegment],
    run: &str,
) -> anyhow::Result<modeling::WebhookDestination> {
    Ok(modeling
        .create_webhook_destination(modeling::CreateWebhookDestinationRequest {
            parent: parent.to_owned(),
            webhook_destination_id: format!("{RECEIVER_PREFIX}{run}"),
            webhook_destination: Some(modeling::WebhookDestination {
                display_name: "demo receiver / 演示接收端".to_owned(),
                url: receiver.url.clone(),
                types: segment_triggers(),
                segments: segments.iter().map(|s| s.name(parent)).collect(),
                signing_secret: secret.to_string(),
                ..modeling::WebhookDestination::default()
            }),
            deliver_retained: true,
            ..modeling::CreateWebhookDestinationRequest::default()
        })
        .await
        .context("creating the webhook destination")?
        .into_inner()
        .webhook_destination
        .unwrap_or_default())
}

fn print_destination(destination: &modeling::WebhookDestination, segments: &[DemoSegment]) {
    let titles: Vec<&str> = segments.iter().map(|s| s.title).collect();
    println!(
        "\nwebhook destination / Webhook 推送目标: {}\n  \
         url / 地址: {} (a receiver inside this process / 本进程内的接收端)\n  \
         entries and exits of / 推送这些分群的进入与退出: {}\n  \
         signing secret / 签名密钥: whsec_… generated here, held only by the receiver \
         / 在本地随机生成，仅接收端持有 (Standard Webhooks)",
        destination.name,
        destination.url,
        titles.join(", "),
    );
}

/// What arrived so far.
#[derive(Debug, Default)]
struct Tally {
    deliveries: usize,
    triggers: usize,
    verified: usize,
}

impl Tally {
    fn count(&mut self, delivery: &Delivery) {
        self.deliveries += 1;
        self.triggers += delivery.triggers.len();
        self.verified += usize::from(delivery.verified.is_ok());
    }
}

/// Prints what has arrived and not been printed yet.
async fn drain(
    identity: &mut Identity,
    receiver: &mut Receiver,
    titles: &[(String, &'static str)],
    tally: &mut Tally,
) {
    while let Ok(delivery) = receiver.deliveries.try_recv() {
        tally.count(&delivery);
        print_delivery(identity, &delivery, titles).await;
    }
}

/// Prints deliveries as they arrive until the destination has been sent everything in the
/// log, or [`DELIVERY_TIMEOUT`] has passed.
async fn print_deliveries(
    modeling: &mut Modeling,
    identity: &mut Identity,
    destination: &str,
    receiver: &mut Receiver,
    titles: &[(String, &'static str)],
) -> anyhow::Result<()> {
    println!(
        "\nwebhook deliveries / Webhook 推送 (as they arrive at / 到达 {}):",
        receiver.url
    );
    let started = Instant::now();
    let mut tally = Tally::default();
    loop {
        drain(identity, receiver, titles, &mut tally).await;
        let state = modeling
            .get_webhook_destination(modeling::GetWebhookDestinationRequest {
                name: destination.to_owned(),
            })
            .await
            .context("reading the webhook destination")?
            .into_inner()
            .webhook_destination
            .unwrap_or_default();
        if state.delivered_sequence >= state.head_sequence {
            // Each delivery is passed on before it is answered, so all of them are in.
            drain(identity, receiver, titles, &mut tally).await;
            println!(
                "  caught up: {} deliveries, {} triggers, {} of {} signatures verified; delivered \
                 through trigger {}, the log's head\n  \
                 已追上：{} 次推送共 {} 条触发，签名验证通过 {}/{}；已送达至触发日志最新的第 {} 条",
                tally.deliveries,
                tally.triggers,
                tally.verified,
                tally.deliveries,
                state.delivered_sequence,
                tally.deliveries,
                tally.triggers,
                tally.verified,
                tally.deliveries,
                state.delivered_sequence,
            );
            return Ok(());
        }
        if started.elapsed() > DELIVERY_TIMEOUT {
            print_late(&state);
            return Ok(());
        }
        // Woken by the next delivery, or after a moment to read the destination again.
        if let Ok(Some(delivery)) =
            tokio::time::timeout(Duration::from_millis(250), receiver.deliveries.recv()).await
        {
            tally.count(&delivery);
            print_delivery(identity, &delivery, titles).await;
        }
    }
}

fn print_late(state: &modeling::WebhookDestination) {
    let error = if state.last_error.is_empty() {
        "none / 无"
    } else {
        &state.last_error
    };
    println!(
        "  not all delivered after {} s: through trigger {} of {}, state {}, last error: {error}\n  \
         {} 秒内未推送完：已推送至第 {} 条（共 {} 条），最近错误：{error}（推送会继续重试）",
        DELIVERY_TIMEOUT.as_secs(),
        state.delivered_sequence,
        state.head_sequence,
        state.state().as_str_name(),
        DELIVERY_TIMEOUT.as_secs(),
        state.delivered_sequence,
        state.head_sequence,
    );
}

/// Prints deliveries that arrive after the summary, while the services keep serving.
fn keep_printing(
    mut receiver: Receiver,
    mut identity: Identity,
    titles: Vec<(String, &'static str)>,
) {
    tokio::spawn(async move {
        while let Some(delivery) = receiver.deliveries.recv().await {
            print_delivery(&mut identity, &delivery, &titles).await;
        }
    });
}

/// One delivery: its id, size and signature check, then its first few triggers.
async fn print_delivery(
    identity: &mut Identity,
    delivery: &Delivery,
    titles: &[(String, &'static str)],
) {
    let verified = match &delivery.verified {
        Ok(()) => "✓ verified / 已验证".to_owned(),
        Err(error) => format!("✗ {error}"),
    };
    println!(
        "  {}  {:>4} triggers / 条  signature / 签名 {verified}",
        pad(&delivery.id, 36),
        delivery.triggers.len(),
    );
    if let Some(problem) = &delivery.unreadable {
        println!("      unreadable body / 内容无法解析: {problem}");
    }
    for trigger in delivery.triggers.iter().take(SHOWN_PER_DELIVERY) {
        let who = crate::demo_churn::masked(identity, &trigger.person, &trigger.person_id).await;
        let kind = match TriggerType::from_str_name(&trigger.kind) {
            Some(TriggerType::SegmentEntered) => SegmentChangeKind::Entered,
            Some(TriggerType::SegmentExited) => SegmentChangeKind::Exited,
            Some(TriggerType::SegmentMemberUpdated) => SegmentChangeKind::IdentifiersUpdated,
            _ => SegmentChangeKind::Unspecified,
        };
        let reason = SegmentChangeReason::from_str_name(&trigger.segment_change_reason)
            .unwrap_or(SegmentChangeReason::Unspecified);
        let segment = titles
            .iter()
            .find(|(name, _)| *name == trigger.segment)
            .map_or(trigger.segment.as_str(), |(_, title)| title);
        println!(
            "      #{:<6} {}  {}  {}  {}",
            trigger.sequence,
            pad(segment, 32),
            pad(&who, 34),
            pad(segments::kind_label(kind), 15),
            segments::reason_label(reason),
        );
    }
}
