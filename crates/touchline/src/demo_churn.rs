//! The customer-value results the demo prints: RFM segment sizes with their names in both
//! languages, and the persons most likely to have left, shown by masked identifiers only.
//! 演示中的客户价值结果：RFM 分群规模（中英文名称），以及流失可能性最高的用户（仅显示脱敏标识）。

use touchline_analytics::churn::rfm::RfmSegment;
use touchline_proto::identity::v1 as identity;
use touchline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use touchline_proto::modeling::v1 as modeling;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_runtime::client::CallCredentials;

type Channel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, CallCredentials>;

/// Persons shown in the churn list.
const TOP: i32 = 10;

/// The segment's English and Chinese names, e.g. `Champions / 冠军客户`.
fn segment_label(number: i32) -> String {
    u8::try_from(number)
        .ok()
        .and_then(RfmSegment::from_code)
        .map_or_else(
            || "unspecified / 未指定".to_owned(),
            |s| format!("{} / {}", s.name_en(), s.name_zh_cn()),
        )
}

/// Prints persons per RFM segment over the last year's purchases.
pub async fn print_rfm(
    modeling: &mut ModelingServiceClient<Channel>,
    parent: &str,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let reply = modeling
        .run_rfm(modeling::RunRfmRequest {
            parent: parent.to_owned(),
            ..modeling::RunRfmRequest::default()
        })
        .await?
        .into_inner();
    println!(
        "\nRFM segments / RFM 客户分群: {} persons with a purchase in the last 365 days / 近 365 天有购买的用户 ({} ms)",
        reply.person_count,
        started.elapsed().as_millis()
    );
    println!(
        "{:<40} {:>8} {:>7} {:>12}",
        "segment / 分群", "persons", "share", "avg spend"
    );
    for segment in &reply.segments {
        println!(
            "{:<40} {:>8} {:>6.1}% {:>12.2}",
            if segment.display_name_en.is_empty() {
                segment_label(segment.segment)
            } else {
                format!(
                    "{} / {}",
                    segment.display_name_en, segment.display_name_zh_cn
                )
            },
            segment.person_count,
            segment.share * 100.0,
            segment.mean_monetary
        );
    }
    Ok(())
}

/// A person's first masked identifier (`138****5678`), or a shortened id when identity
/// cannot say.
pub(crate) async fn masked(
    identity: &mut IdentityServiceClient<Channel>,
    person: &str,
    id: &str,
) -> String {
    let profile = identity
        .get_profile(identity::GetProfileRequest {
            name: person.to_owned(),
        })
        .await;
    let shown = profile.ok().and_then(|reply| {
        let person = reply.into_inner().person?;
        let first = person.identifiers.into_iter().next()?;
        Some(format!("{}:{}", first.r#type, first.masked_value))
    });
    shown.unwrap_or_else(|| format!("{}…", id.chars().take(8).collect::<String>()))
}

/// The name of the probability-alive model behind the scores, as the settings report it.
fn model_label(number: i32) -> &'static str {
    match modeling::ChurnModel::try_from(number) {
        Ok(modeling::ChurnModel::BgNbd) => "BG/NBD",
        Ok(modeling::ChurnModel::MbgNbd) => "MBG/NBD",
        _ => "unspecified / 未指定",
    }
}

/// Prints the persons with the highest churn score (opted-out persons are never listed).
pub async fn print_churn(
    modeling: &mut ModelingServiceClient<Channel>,
    identity: &mut IdentityServiceClient<Channel>,
    parent: &str,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let reply = modeling
        .list_churn_scores(modeling::ListChurnScoresRequest {
            parent: parent.to_owned(),
            page_size: TOP,
            ..modeling::ListChurnScoresRequest::default()
        })
        .await?
        .into_inner();
    let churn = modeling
        .get_model_settings(modeling::GetModelSettingsRequest {
            name: format!("{parent}/modelSettings"),
        })
        .await?
        .into_inner()
        .model_settings
        .and_then(|s| s.churn)
        .unwrap_or_default();
    let period_days = churn
        .bg_nbd
        .and_then(|b| b.prediction_period)
        .map_or(30, |d| d.seconds / 86_400);
    let model = churn.model;
    println!(
        "\nhighest churn scores / 流失分最高的用户 (1 − P(alive), {}, of {} persons / 共 {} 位, {} ms)",
        model_label(model),
        reply.total_size,
        reply.total_size,
        started.elapsed().as_millis()
    );
    println!(
        "{:<34} {:>7} {:>8} {:>9} {:>12} {:>14}",
        "person / 用户 (masked / 脱敏)",
        "score",
        "P(alive)",
        "purchases",
        format!("next {period_days}d/预计"),
        "churned / 流失"
    );
    for score in &reply.scores {
        let who = masked(identity, &score.person, &score.person_id).await;
        let inactive_days = score
            .inactive_for
            .map_or(0.0, |d| d.seconds as f64 / 86_400.0);
        println!(
            "{:<34} {:>7.3} {:>8.3} {:>9} {:>12.2} {:>14}",
            who,
            score.score.unwrap_or(0.0),
            score.probability_alive.unwrap_or(1.0),
            if score.score.is_some() {
                score.repeat_purchases + 1
            } else {
                0
            },
            score.expected_purchases.unwrap_or(0.0),
            if score.churned {
                format!("yes/是 {inactive_days:.0}d")
            } else {
                "no/否".to_owned()
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_named_in_both_languages() {
        assert_eq!(segment_label(1), "Champions / 冠军客户");
        assert_eq!(segment_label(0), "unspecified / 未指定");
    }

    #[test]
    fn models_are_named() {
        assert_eq!(model_label(modeling::ChurnModel::MbgNbd as i32), "MBG/NBD");
        assert_eq!(model_label(modeling::ChurnModel::BgNbd as i32), "BG/NBD");
        assert_eq!(model_label(0), "unspecified / 未指定");
    }
}
