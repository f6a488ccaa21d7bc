//! The attribution the demo prints once the data is in: which channels get the credit for
//! orders under every model side by side, and what each channel's ad spend returned. A touch
//! is credited to what opened it when its events name one (`utm_source`: an ad's landing, a
//! message link, a store's check-in QR code), not to the app or web shop it ran in. An order
//! is every conversion of the dictionary (the SDK's `submit_order`, the web shop's, the CRM's,
//! the stores' and the marketplace's `purchase`), each order once by its `order_id`.
//! 演示中的归因结果：各模型下各渠道获得的订单功劳，以及各渠道广告花费的回报；
//! 触点按打开它的来源（utm_source）归因；同一订单（order_id）的多条上报只计一次。

use std::collections::BTreeMap;

use touchline_proto::modeling::v1 as modeling;
use touchline_proto::modeling::v1::AttributionModelType as T;
use touchline_proto::modeling::v1::ShapleyGame as Game;

use crate::demo_journeys::{Modeling, utc_scope};

/// The property naming what opened a session.
const REFERRER: &str = "properties.utm_source";
/// The property naming the order a conversion reports.
const ORDER_KEY: &str = "properties.order_id";

/// The models printed (with the Markov order and the Shapley game), with their column
/// headings. The last credits only what touches add to a journey's chance of converting
/// (增量归因), where the others also credit orders that would have come anyway.
const MODELS: [(T, i32, Game, &str); 8] = [
    (T::FirstTouch, 0, Game::Unspecified, "first/首次"),
    (T::LastTouch, 0, Game::Unspecified, "last/末次"),
    (T::Linear, 0, Game::Unspecified, "linear/线性"),
    (T::PositionBased, 0, Game::Unspecified, "U-shape/位置"),
    (T::TimeDecay, 0, Game::Unspecified, "decay/衰减"),
    (T::Markov, 1, Game::Unspecified, "markov/马尔可夫"),
    (T::Shapley, 0, Game::Unspecified, "shapley/沙普利"),
    (T::Shapley, 0, Game::Uplift, "uplift/增量"),
];

fn request(parent: &str, range: (i64, i64)) -> modeling::RunAttributionRequest {
    modeling::RunAttributionRequest {
        parent: parent.to_owned(),
        models: MODELS
            .iter()
            .map(|(kind, order, game, _)| modeling::AttributionModel {
                r#type: (*kind).into(),
                markov_order: *order,
                shapley_game: (*game).into(),
                ..modeling::AttributionModel::default()
            })
            .collect(),
        costs: Some(modeling::CostInput {
            costs: Some(modeling::cost_input::Costs::CostEvents(
                modeling::CostEvents {
                    event: Some(modeling::EventMatcher {
                        event_name: "ad_report".to_owned(),
                        filters: Vec::new(),
                    }),
                    cost_field: "properties.spend".to_owned(),
                    channel_field: String::new(),
                },
            )),
            currency: "CNY".to_owned(),
        }),
        scope: Some(utc_scope(range)),
        referrer_field: REFERRER.to_owned(),
        conversion_key_field: ORDER_KEY.to_owned(),
        ..modeling::RunAttributionRequest::default()
    }
}

/// Marks the referrer and order properties analysable in the tenant's model settings, which a
/// request must before it reads them.
async fn mark_analysable(modeling: &mut Modeling, parent: &str) -> anyhow::Result<()> {
    modeling
        .update_model_settings(modeling::UpdateModelSettingsRequest {
            model_settings: Some(modeling::ModelSettings {
                name: format!("{parent}/modelSettings"),
                analysable_properties: vec![REFERRER.to_owned(), ORDER_KEY.to_owned()],
                ..modeling::ModelSettings::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["analysable_properties".to_owned()],
            }),
            ..modeling::UpdateModelSettingsRequest::default()
        })
        .await?;
    Ok(())
}

/// The journey totals of an attribution reply, with where orders went unidentified.
fn print_summary(summary: &modeling::AttributionSummary, elapsed: std::time::Duration) {
    println!(
        "\nattribution of orders, touches credited to what opened them ({REFERRER}) / 订单归因（触点按打开来源归因）: {:.0} orders with touches, {:.0} direct, {:.0} without a person (left out of the table; unidentified_conversions = RECORDING_CHANNEL would credit each to the channel that recorded it / 无法识别到人的订单，此表不计入；设 unidentified_conversions = RECORDING_CHANNEL 可计入记录它的渠道), {:.0} journeys without an order, {} channels, {} paths ({} ms)",
        summary.conversions,
        summary.direct_conversions,
        summary.unidentified_conversions,
        summary.non_converting_journeys,
        summary.channel_count,
        summary.path_count,
        elapsed.as_millis()
    );
    if !summary.unidentified_by_channel.is_empty() {
        let places: Vec<String> = summary
            .unidentified_by_channel
            .iter()
            .map(|c| format!("{} {:.0}", c.channel, c.conversions))
            .collect();
        println!(
            "  orders without a person, by channel / 无法识别到人的订单（按渠道）: {}",
            places.join(", ")
        );
    }
}

/// Prints the orders each model credits to each channel, and ROI per channel under Markov.
pub async fn print_attribution(
    modeling: &mut Modeling,
    parent: &str,
    range: (i64, i64),
) -> anyhow::Result<()> {
    mark_analysable(modeling, parent).await?;
    let started = std::time::Instant::now();
    let reply = modeling
        .run_attribution(request(parent, range))
        .await?
        .into_inner();
    print_summary(
        &reply.summary.clone().unwrap_or_default(),
        started.elapsed(),
    );
    let mut by_channel: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (column, result) in reply.results.iter().enumerate() {
        for channel in &result.channels {
            by_channel
                .entry(channel.channel.clone())
                .or_insert_with(|| vec![0.0; MODELS.len()])[column] = channel.conversions;
        }
    }
    print!("  {:<18}", "channel / 渠道");
    for (_, _, _, heading) in MODELS {
        print!("{heading:>16}");
    }
    println!();
    for (channel, credits) in &by_channel {
        print!("  {channel:<18}");
        for credit in credits {
            print!("{credit:>16.1}");
        }
        println!();
    }
    let markov = reply.results.iter().find(|r| {
        r.model
            .as_ref()
            .is_some_and(|m| m.r#type == i32::from(T::Markov))
    });
    if let Some(markov) = markov {
        println!(
            "  ROI under Markov / 马尔可夫模型下的投入产出 ({} cost report rows, {} left out):",
            reply.cost_rows, reply.cost_rows_left_out
        );
        println!(
            "  {:<18}{:>14}{:>14}{:>16}{:>14}",
            "channel / 渠道", "cost/花费", "orders/订单", "cost per order", "ROAS/回报率"
        );
        for channel in markov.channels.iter().filter(|c| c.cost > 0.0) {
            println!(
                "  {:<18}{:>14.0}{:>14.1}{:>16.1}{:>14.2}",
                channel.channel,
                channel.cost,
                channel.conversions,
                channel.cost_per_conversion,
                channel.return_on_spend
            );
        }
        if let Some(details) = &markov.markov {
            let effects: Vec<String> = details
                .removal_effects
                .iter()
                .map(|r| format!("{} {:.2}", r.channel, r.removal_effect))
                .collect();
            println!("  removal effects / 移除效应: {}", effects.join(", "));
        }
    }
    Ok(())
}
