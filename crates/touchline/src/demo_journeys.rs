//! The journey results the demo prints once the data is in: the purchase funnel broken down
//! by channel, a weekly retention grid, the lifecycle per week and the top touchpoint paths.
//! 演示中的旅程分析结果：购买漏斗（按渠道拆分）、周留存、生命周期、热门触点路径。

use touchline_proto::common::v1::TimeRange;
use touchline_proto::modeling::v1 as modeling;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_runtime::client::CallCredentials;

pub(crate) type Modeling = ModelingServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, CallCredentials>,
>;

/// The purchase funnel of the retail template.
const STEPS: [(&str, &str); 4] = [
    ("view_item", "浏览商品"),
    ("add_to_cart", "加入购物车"),
    ("submit_order", "提交订单"),
    ("pay_order", "支付"),
];

pub(crate) fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1_000),
        nanos: 0,
    }
}

/// A duration as people read it: `45s`, `12m`, `3.4h`, `2.1d`.
fn human(duration: Option<&prost_types::Duration>) -> String {
    let Some(duration) = duration else {
        return "-".to_owned();
    };
    let seconds = duration.seconds as f64 + f64::from(duration.nanos) / 1e9;
    match seconds {
        s if s < 90.0 => format!("{s:.0}s"),
        s if s < 5_400.0 => format!("{:.0}m", s / 60.0),
        s if s < 172_800.0 => format!("{:.1}h", s / 3_600.0),
        s => format!("{:.1}d", s / 86_400.0),
    }
}

fn request(parent: &str, range: (i64, i64)) -> modeling::RunFunnelRequest {
    modeling::RunFunnelRequest {
        parent: parent.to_owned(),
        funnel: Some(modeling::FunnelDefinition {
            steps: STEPS
                .iter()
                .map(|(name, _)| modeling::FunnelStep {
                    label: String::new(),
                    event: Some(modeling::EventMatcher {
                        event_name: (*name).to_owned(),
                        filters: Vec::new(),
                    }),
                })
                .collect(),
            conversion_window: Some(prost_types::Duration {
                seconds: 14 * 86_400,
                nanos: 0,
            }),
            breakdown: Some(modeling::FunnelBreakdown {
                breakdown: Some(modeling::Breakdown {
                    field: "channel".to_owned(),
                    limit: 8,
                }),
                attribution: modeling::FunnelBreakdownAttribution::FirstTouch as i32,
                step: 0,
            }),
            scope: Some(utc_scope(range)),
            ..modeling::FunnelDefinition::default()
        }),
    }
}

/// The range `[start, end)` in ms as a scope, in UTC.
pub(crate) fn utc_scope(range: (i64, i64)) -> modeling::AnalysisScope {
    modeling::AnalysisScope {
        time_range: Some(TimeRange {
            start_time: Some(timestamp(range.0)),
            end_time: Some(timestamp(range.1)),
        }),
        ..modeling::AnalysisScope::default()
    }
}

/// Prints the purchase funnel over `range` (ms), overall and by first-touch channel.
pub async fn print_funnel(
    modeling: &mut Modeling,
    parent: &str,
    range: (i64, i64),
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let funnel = modeling
        .run_funnel(request(parent, range))
        .await?
        .into_inner();
    let elapsed = started.elapsed();
    println!(
        "\npurchase funnel, 14-day window / 购买漏斗（14 天转化窗口）: {} persons considered, answered in {} ms",
        funnel
            .computation
            .as_ref()
            .map_or(0, |c| c.persons_considered),
        elapsed.as_millis()
    );
    println!(
        "{:<28} {:>8} {:>9} {:>8} {:>9} {:>9}",
        "step / 步骤", "persons", "drop-off", "overall", "step conv", "median"
    );
    for (step, (_, zh)) in funnel.steps.iter().zip(STEPS) {
        println!(
            "{:<28} {:>8} {:>9} {:>7.1}% {:>8.1}% {:>9}",
            format!("{} {} / {zh}", step.step, step.label),
            step.count,
            step.drop_off,
            step.overall_conversion_rate * 100.0,
            step.step_conversion_rate * 100.0,
            human(step.median_conversion_time.as_ref()),
        );
    }
    println!(
        "\nby first-touch channel / 按首次触点渠道: persons at each step, view → pay conversion"
    );
    for row in &funnel.breakdown_results {
        let counts: Vec<String> = row.steps.iter().map(|s| s.count.to_string()).collect();
        let overall = row.steps.last().map_or(0.0, |s| s.overall_conversion_rate);
        println!(
            "  {:<20} {:<28} {:>6.1}%",
            if row.value.is_empty() {
                "(none / 无)"
            } else {
                &row.value
            },
            counts.join(" → "),
            overall * 100.0
        );
    }
    if let Some(other) = &funnel.other {
        let counts: Vec<String> = other.steps.iter().map(|s| s.count.to_string()).collect();
        println!(
            "  {:<20} {}  ({} more channels / 其余 {} 个渠道)",
            "other / 其他",
            counts.join(" → "),
            funnel.omitted_breakdown_values,
            funnel.omitted_breakdown_values
        );
    }
    Ok(())
}

/// The range as a scope whose days and weeks are cut in China's time zone.
fn scope(range: (i64, i64)) -> modeling::AnalysisScope {
    modeling::AnalysisScope {
        time_zone: "Asia/Shanghai".to_owned(),
        ..utc_scope(range)
    }
}

fn day(timestamp: Option<&prost_types::Timestamp>) -> String {
    timestamp
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| {
            t.with_timezone(&chrono_tz::Asia::Shanghai)
                .format("%m-%d")
                .to_string()
        })
        .unwrap_or_default()
}

const WEEK_MS: i64 = 7 * 86_400_000;

/// Prints weekly retention of the last 8 weeks' first purchases, returns being any event.
pub async fn print_retention(
    modeling: &mut Modeling,
    parent: &str,
    range: (i64, i64),
) -> anyhow::Result<()> {
    let cohorts = (range.1 - 8 * WEEK_MS, range.1);
    let started = std::time::Instant::now();
    let reply = modeling
        .run_retention(modeling::RunRetentionRequest {
            parent: parent.to_owned(),
            start_event: Some(modeling::EventMatcher {
                event_name: "view_item".to_owned(),
                filters: Vec::new(),
            }),
            return_event: Some(modeling::EventMatcher::default()),
            interval: modeling::Interval::Week as i32,
            periods: 6,
            scope: Some(scope(cohorts)),
            ..modeling::RunRetentionRequest::default()
        })
        .await?
        .into_inner();
    println!(
        "\nweekly retention: first product view, back with any event / 周留存：首次浏览商品后再次到访 ({} ms)",
        started.elapsed().as_millis()
    );
    println!(
        "{:<8} {:>6}  week 0 → 5 (%) / 第 0–5 周留存率",
        "cohort", "size"
    );
    let Some(table) = reply.tables.first() else {
        return Ok(());
    };
    for cohort in &table.cohorts {
        let cells: Vec<String> = cohort
            .cells
            .iter()
            .map(|c| format!("{:>5.1}", c.rate * 100.0))
            .collect();
        println!(
            "{:<8} {:>6}  {}",
            day(cohort.start_time.as_ref()),
            cohort.size,
            cells.join(" ")
        );
    }
    let average: Vec<String> = table
        .average
        .iter()
        .map(|c| format!("{:>5.1}", c.rate * 100.0))
        .collect();
    println!("{:<8} {:>6}  {}", "avg/均值", "", average.join(" "));
    Ok(())
}

/// Prints the lifecycle of the last 12 weeks.
pub async fn print_lifecycle(
    modeling: &mut Modeling,
    parent: &str,
    range: (i64, i64),
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let reply = modeling
        .run_lifecycle(modeling::RunLifecycleRequest {
            parent: parent.to_owned(),
            options: Some(modeling::LifecycleOptions {
                interval: modeling::Interval::Week as i32,
                ..modeling::LifecycleOptions::default()
            }),
            scope: Some(scope((range.1 - 12 * WEEK_MS, range.1))),
        })
        .await?
        .into_inner();
    println!(
        "\nlifecycle per week / 每周生命周期 ({} ms)",
        started.elapsed().as_millis()
    );
    println!(
        "{:<8} {:>9} {:>12} {:>15} {:>10} {:>10}",
        "week/周",
        "new/新增",
        "returning/回访",
        "resurrecting/唤回",
        "dormant/沉睡",
        "churned/流失"
    );
    for interval in &reply.intervals {
        println!(
            "{:<8} {:>9} {:>12} {:>15} {:>10} {:>10}",
            day(interval.start_time.as_ref()),
            interval.new_count,
            interval.returning_count,
            interval.resurrecting_count,
            interval.dormant_count,
            interval.churned_count
        );
    }
    Ok(())
}

/// Prints the heaviest transitions between touchpoints from the start of a session.
pub async fn print_paths(
    modeling: &mut Modeling,
    parent: &str,
    range: (i64, i64),
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let reply = modeling
        .run_paths(modeling::RunPathsRequest {
            parent: parent.to_owned(),
            item_kind: modeling::PathItemKind::Touchpoint as i32,
            max_steps: 4,
            collapse_repeats: true,
            max_edges: 10,
            scope: Some(scope(range)),
            ..modeling::RunPathsRequest::default()
        })
        .await?
        .into_inner();
    println!(
        "\ntop touchpoint paths from the first touch of a session / 会话首个触点起的热门路径: {} sessions, {} persons ({} ms)",
        reply.session_count,
        reply.person_count,
        started.elapsed().as_millis()
    );
    for edge in &reply.edges {
        println!(
            "  {:>6} × {:<34} → {:<34} {}",
            edge.transition_count,
            edge.source_key,
            edge.target_key,
            human(edge.mean_time_between.as_ref())
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_say_them() {
        let d = |seconds| prost_types::Duration { seconds, nanos: 0 };
        assert_eq!(human(Some(&d(45))), "45s");
        assert_eq!(human(Some(&d(720))), "12m");
        assert_eq!(human(Some(&d(12_240))), "3.4h");
        assert_eq!(human(Some(&d(181_440))), "2.1d");
        assert_eq!(human(None), "-");
    }
}
