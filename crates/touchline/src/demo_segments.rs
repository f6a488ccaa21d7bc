//! The two segments the demo defines on its tenant, each shown with its rule in words and a
//! preview before it is created, then its size once built and the first entries of its
//! change feed.
//! 演示定义的两个分群：先用文字说明规则并预览，再创建；建成后显示人数和变更流的前几条。

use std::time::{Duration, Instant};

use anyhow::Context as _;
use touchline_proto::common::v1::FilterOperator;
use touchline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use touchline_proto::modeling::v1 as modeling;
use touchline_proto::modeling::v1::{SegmentRule, segment_rule::Rule};
use touchline_runtime::client::CallCredentials;

use crate::demo_journeys::Modeling;

pub(crate) type Identity = IdentityServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, CallCredentials>,
>;

/// From this churn score (1 − P(alive)) on, a customer not yet flagged churned is at high
/// risk.
const CHURN_SCORE_AT_LEAST: f64 = 0.3;
/// The checkout segment's rolling window, in days.
const CHECKOUT_DAYS: i64 = 14;
/// Persons of a preview shown.
const SAMPLE: usize = 4;
/// Changes shown per segment.
const CHANGES: i32 = 4;
/// The longest the demo waits for a segment's first build.
const BUILD_TIMEOUT: Duration = Duration::from_secs(60);

/// A segment of the demo: what it is called, its rule, and the rule in both languages.
#[derive(Debug, Clone)]
pub(crate) struct DemoSegment {
    /// The id (the run's suffix appended to one of [`PREFIXES`]).
    pub id: String,
    /// `English / 中文`.
    pub title: &'static str,
    /// The rule in English.
    pub rule_en: String,
    /// The rule in Chinese.
    pub rule_zh: String,
    /// What a reader should know about how the rule is expressed, in both languages; empty
    /// when nothing.
    pub note: &'static str,
    /// The rule.
    pub rule: SegmentRule,
}

impl DemoSegment {
    /// `tenants/{tenant}/segments/{id}` under `parent`.
    pub fn name(&self, parent: &str) -> String {
        format!("{parent}/segments/{}", self.id)
    }
}

/// The ids of the demo's segments start with these, so a later run can remove them.
const PREFIXES: [&str; 2] = ["high-churn-risk-", "checkout-dropouts-"];

fn rule(rule: Rule) -> SegmentRule {
    SegmentRule { rule: Some(rule) }
}

fn churn(condition: modeling::churn_condition::Condition) -> SegmentRule {
    rule(Rule::Churn(modeling::ChurnCondition {
        condition: Some(condition),
    }))
}

fn all_of(rules: Vec<SegmentRule>) -> SegmentRule {
    rule(Rule::AllOf(modeling::SegmentRuleGroup { rules }))
}

fn any_of(rules: Vec<SegmentRule>) -> SegmentRule {
    rule(Rule::AnyOf(modeling::SegmentRuleGroup { rules }))
}

/// Customers likely to be gone soon who have not been flagged churned yet.
fn high_churn_risk(run: &str) -> DemoSegment {
    use modeling::churn_condition::Condition;
    DemoSegment {
        id: format!("{}{run}", PREFIXES[0]),
        title: "high churn risk / 高流失风险",
        rule_en: format!(
            "churn score (1 − P(alive)) ≥ {CHURN_SCORE_AT_LEAST:.2} and not yet flagged churned"
        ),
        rule_zh: format!("流失分（1 − 存活概率）≥ {CHURN_SCORE_AT_LEAST:.2}，且尚未被判定为流失"),
        note: "",
        rule: all_of(vec![
            churn(Condition::Score(modeling::NumberComparison {
                operator: FilterOperator::GreaterThanOrEqual as i32,
                value: CHURN_SCORE_AT_LEAST,
                upper_value: 0.0,
            })),
            churn(Condition::Churned(false)),
        ]),
    }
}

/// Persons who dropped at a step of `names` (an ordered funnel, `window_days` to convert)
/// among attempts started in the last `within_days` days.
fn dropped_at(names: &[&str], step: i32, window_days: i64, within_days: i64) -> SegmentRule {
    let days = |n: i64| prost_types::Duration {
        seconds: n * 86_400,
        nanos: 0,
    };
    rule(Rule::FunnelDropOff(modeling::FunnelDropOffCondition {
        funnel: Some(modeling::FunnelDefinition {
            steps: names
                .iter()
                .map(|name| modeling::FunnelStep {
                    label: String::new(),
                    event: Some(modeling::EventMatcher {
                        event_name: (*name).to_owned(),
                        filters: Vec::new(),
                    }),
                })
                .collect(),
            conversion_window: Some(days(window_days)),
            ..modeling::FunnelDefinition::default()
        }),
        step,
        within_last: Some(days(within_days)),
        // A cart left for an hour is abandoned; a shorter pause may still turn into an order.
        idle_for: Some(prost_types::Duration {
            seconds: 3_600,
            nanos: 0,
        }),
    }))
}

/// Persons who put something in the cart lately and did not pay within the conversion
/// window: the purchase funnel's drop-offs before submitting the order or before paying it.
fn checkout_dropouts(run: &str) -> DemoSegment {
    let days = CHECKOUT_DAYS;
    let funnel = ["add_to_cart", "submit_order", "pay_order"];
    DemoSegment {
        id: format!("{}{run}", PREFIXES[1]),
        title: "dropped at checkout / 结账流失",
        rule_en: format!(
            "in the funnel add_to_cart → submit_order → pay_order (3 days to convert), \
             dropped before submit_order or before pay_order, attempts of the last {days} days"
        ),
        rule_zh: format!(
            "漏斗 add_to_cart → submit_order → pay_order（3 天内转化）中，\
             近 {days} 天的尝试在提交订单或支付前流失"
        ),
        note: "",
        rule: any_of(vec![
            dropped_at(&funnel, 2, 3, days),
            dropped_at(&funnel, 3, 3, days),
        ]),
    }
}

/// The demo's segments, their ids ending in `run`.
pub(crate) fn definitions(run: &str) -> [DemoSegment; 2] {
    [high_churn_risk(run), checkout_dropouts(run)]
}

/// Deletes the segments an earlier run of the demo left on the tenant.
pub(crate) async fn remove_previous(modeling: &mut Modeling, parent: &str) -> anyhow::Result<()> {
    let mut page_token = String::new();
    let mut previous = Vec::new();
    loop {
        let page = modeling
            .list_segments(modeling::ListSegmentsRequest {
                parent: parent.to_owned(),
                page_size: 500,
                page_token,
            })
            .await
            .context("listing segments")?
            .into_inner();
        previous.extend(page.segments.into_iter().map(|s| s.name).filter(|name| {
            let id = name.rsplit('/').next().unwrap_or_default();
            PREFIXES.iter().any(|p| id.starts_with(p))
        }));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    for name in previous {
        modeling
            .delete_segment(modeling::DeleteSegmentRequest {
                name,
                allow_missing: true,
                ..modeling::DeleteSegmentRequest::default()
            })
            .await
            .context("deleting a segment of an earlier demo run")?;
    }
    Ok(())
}

fn request(
    parent: &str,
    segment: &DemoSegment,
    validate_only: bool,
) -> modeling::CreateSegmentRequest {
    modeling::CreateSegmentRequest {
        parent: parent.to_owned(),
        segment_id: segment.id.clone(),
        segment: Some(modeling::Segment {
            display_name: segment.title.to_owned(),
            description: if segment.note.is_empty() {
                segment.rule_en.clone()
            } else {
                format!("{} ({})", segment.rule_en, segment.note)
            },
            rule: Some(segment.rule.clone()),
            ..modeling::Segment::default()
        }),
        validate_only,
        ..modeling::CreateSegmentRequest::default()
    }
}

/// Prints the segment's rule in words and who it would select now (`validate_only`).
pub(crate) async fn print_preview(
    modeling: &mut Modeling,
    identity: &mut Identity,
    parent: &str,
    segment: &DemoSegment,
) -> anyhow::Result<()> {
    let reply = modeling
        .create_segment(request(parent, segment, true))
        .await
        .with_context(|| format!("previewing the segment {}", segment.title))?
        .into_inner();
    let preview = reply.preview.unwrap_or_default();
    println!(
        "\n{}\n  rule / 规则: {}\n               {}",
        segment.title, segment.rule_en, segment.rule_zh
    );
    if !segment.note.is_empty() {
        println!("  note / 说明: {}", segment.note);
    }
    let mut sample = Vec::new();
    for person in preview.sample_persons.iter().take(SAMPLE) {
        let id = person.rsplit('/').next().unwrap_or_default();
        sample.push(crate::demo_churn::masked(identity, person, id).await);
    }
    println!(
        "  preview / 预览 (validate_only): {} persons now / 当前 {} 人\n  sample / 样例: {}",
        preview.member_count,
        preview.member_count,
        if sample.is_empty() {
            "none / 无".to_owned()
        } else {
            sample.join(", ")
        }
    );
    Ok(())
}

/// Creates the segment; its first build starts at once.
pub(crate) async fn create(
    modeling: &mut Modeling,
    parent: &str,
    segment: &DemoSegment,
) -> anyhow::Result<()> {
    modeling
        .create_segment(request(parent, segment, false))
        .await
        .with_context(|| format!("creating the segment {}", segment.title))?;
    Ok(())
}

async fn get(modeling: &mut Modeling, name: &str) -> anyhow::Result<modeling::Segment> {
    Ok(modeling
        .get_segment(modeling::GetSegmentRequest {
            name: name.to_owned(),
        })
        .await
        .with_context(|| format!("reading the segment {name}"))?
        .into_inner()
        .segment
        .unwrap_or_default())
}

/// Waits until each segment is active and prints its size.
pub(crate) async fn print_when_active(
    modeling: &mut Modeling,
    parent: &str,
    segments: &[DemoSegment],
) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("\nsegments built / 分群已建成:");
    for segment in segments {
        let current = loop {
            let current = get(modeling, &segment.name(parent)).await?;
            if current.state == modeling::SegmentState::Active as i32 {
                break current;
            }
            anyhow::ensure!(
                started.elapsed() < BUILD_TIMEOUT,
                "the segment {} was still building after {} s",
                segment.title,
                BUILD_TIMEOUT.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        println!(
            "  {} ACTIVE / 已生效, {:>5} members / 人  ({})",
            pad(segment.title, 32),
            current.member_count,
            current.name
        );
    }
    Ok(())
}

/// `entered / 进入`, `exited / 退出` or `identifiers updated / 标识更新`.
pub(crate) fn kind_label(kind: modeling::SegmentChangeKind) -> &'static str {
    match kind {
        modeling::SegmentChangeKind::Entered => "entered / 进入",
        modeling::SegmentChangeKind::Exited => "exited / 退出",
        modeling::SegmentChangeKind::IdentifiersUpdated => "identifiers updated / 标识更新",
        modeling::SegmentChangeKind::Unspecified => "? / 未知",
    }
}

/// Why a membership changed, in both languages.
pub(crate) fn reason_label(reason: modeling::SegmentChangeReason) -> &'static str {
    use modeling::SegmentChangeReason as R;
    match reason {
        R::Unspecified => "unspecified / 未指定",
        R::RuleEvaluated => "rule evaluated / 规则判定",
        R::TimeWindow => "time window / 时间窗口",
        R::RuleChanged => "rule changed / 规则变更",
        R::ConsentChanged => "consent changed / 营销授权变更",
        R::PersonMerged => "person merged / 用户合并",
        R::PersonSplit => "person split / 用户拆分",
        R::PersonErased => "person erased / 用户删除",
        R::SegmentDeleted => "segment deleted / 分群删除",
        R::SegmentCreated => "segment created / 分群新建",
        R::IdentifiersChanged => "identifiers changed / 标识变更",
    }
}

/// Prints the first changes of each segment's feed, read by cursor.
pub(crate) async fn print_changes(
    modeling: &mut Modeling,
    identity: &mut Identity,
    parent: &str,
    segments: &[DemoSegment],
) -> anyhow::Result<()> {
    println!(
        "\nchange feed / 变更流 (ListSegmentChanges, first {CHANGES} per segment / 每个分群前 {CHANGES} 条):"
    );
    println!(
        "  seq/序号  {}  {}  {}  reason / 原因",
        pad("segment / 分群", 32),
        pad("person / 用户 (masked / 脱敏)", 34),
        pad("change / 变更", 15),
    );
    for segment in segments {
        let page = modeling
            .list_segment_changes(modeling::ListSegmentChangesRequest {
                parent: segment.name(parent),
                page_size: CHANGES,
                ..modeling::ListSegmentChangesRequest::default()
            })
            .await
            .with_context(|| format!("reading the changes of {}", segment.title))?
            .into_inner();
        for change in &page.changes {
            let who = crate::demo_churn::masked(identity, &change.person, &change.person_id).await;
            println!(
                "  {:>8}  {}  {}  {}  {}",
                change.sequence,
                pad(segment.title, 32),
                pad(&who, 34),
                pad(kind_label(change.kind()), 15),
                reason_label(change.reason()),
            );
        }
    }
    Ok(())
}

/// Columns a terminal gives `c`: two for CJK ideographs and full-width forms, else one.
fn columns(c: char) -> usize {
    match u32::from(c) {
        0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFF00..=0xFF60 => {
            2
        }
        _ => 1,
    }
}

/// `text` padded with spaces to `width` terminal columns (never cut).
pub(crate) fn pad(text: &str, width: usize) -> String {
    let used: usize = text.chars().map(columns).sum();
    format!("{text}{}", " ".repeat(width.saturating_sub(used)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_text_pads_by_terminal_columns() {
        assert_eq!(pad("ab", 4), "ab  ");
        assert_eq!(pad("分群", 6), "分群  ");
        assert_eq!(pad("abcdef", 3), "abcdef");
    }

    #[test]
    fn each_segment_has_its_own_prefix_and_run_suffix() {
        let [churn, checkout] = definitions("ab12");
        assert_eq!(churn.id, "high-churn-risk-ab12");
        assert_eq!(checkout.id, "checkout-dropouts-ab12");
        assert_eq!(
            churn.name("tenants/demo"),
            "tenants/demo/segments/high-churn-risk-ab12"
        );
    }
}
