//! Attribution and churn scores against the generator's truth: a retail data set, its period
//! ending today, generated and streamed through the whole application (collection, cleaning,
//! identity, the event store). Churn: ListChurnScores over every buyer, each stored person
//! mapped to the true person most of their events came from, and the ROC AUC of the score
//! against who the generator made churn. Attribution: RunAttribution with Markov (order 1) and Shapley (conversions game) over the dictionary's
//! conversions, next to the truth the generator drew conversions from — per channel, the
//! expected removal effect and Shapley conversions of its logistic model — as shares of all
//! credit, with the rank each gives every channel.
//!
//! `cargo run --release -p touchline-e2e --bin model-truth -- [PERSONS] [SEED]`
//! (PERSONS defaults to 5,000, SEED to 42).
//!
//! The stored channels name the generator's touch kinds differently (an ad click arrives on
//! `ads`, a store visit on `pos`, a CRM message on `crm`); the table maps them. The truth
//! values what a touch adds to a journey's conversion probability; the models see only the
//! stored events, in which a conversion's own shopping session (view, cart, order on the
//! conversion channel) also precedes the order. So the shares are compared as what they are:
//! two estimates of the same ranking from different evidence. Two readings of the touches are
//! run: every classified touchpoint event (the default), and only the events that reach a
//! person (page and screen views, ad clicks, official-account and CRM messages, service
//! tickets, surveys), which leaves the shopping session out. A store visit leaves no event
//! unless it ends in a purchase (the conversion itself), so no model on the stored data can
//! credit it: the rank correlation is also given over the channels the data shows.
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![allow(
    clippy::too_many_lines,
    reason = "a benchmark's script reads top to bottom"
)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use touchline_proto::common::v1::TimeRange;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    AnalysisScope, AttributionModel, AttributionModelResult, AttributionModelType as T,
    CountEventsRequest, EventMatcher, ListChurnScoresRequest, RunAttributionRequest,
};
use touchline_sim::template::Touch;
use touchline_sim::{SendOptions, SimConfig, TemplateKind};
use touchline_testkit::{TestApp, token};

/// The stored channel of each truth touch kind.
fn stored_channel(touch: Touch) -> &'static str {
    match touch {
        Touch::PaidAds => "ads",
        Touch::WechatOa => "wechat_oa",
        Touch::CrmMessage => "crm",
        Touch::MiniProgram => "mini_program",
        Touch::App => "app",
        Touch::Web => "web",
        Touch::StoreVisit => "pos",
        Touch::CustomerService => "customer_service",
    }
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1_000),
        nanos: 0,
    }
}

/// Each channel's share of all credit, over `channels`.
fn shares<'a>(values: &BTreeMap<&'a str, f64>) -> BTreeMap<&'a str, f64> {
    let total: f64 = values.values().sum();
    values
        .iter()
        .map(|(c, v)| (*c, if total == 0.0 { 0.0 } else { v / total }))
        .collect()
}

/// 1-based ranks, largest first.
fn ranks<'a>(values: &BTreeMap<&'a str, f64>) -> BTreeMap<&'a str, usize> {
    let mut order: Vec<(&str, f64)> = values.iter().map(|(c, v)| (*c, *v)).collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    order
        .into_iter()
        .enumerate()
        .map(|(i, (c, _))| (c, i + 1))
        .collect()
}

/// Spearman's rank correlation of two rankings over the same channels.
fn spearman(a: &BTreeMap<&str, usize>, b: &BTreeMap<&str, usize>) -> f64 {
    let n = a.len() as f64;
    let d2: f64 = a
        .iter()
        .map(|(c, r)| {
            let d = *r as f64 - b.get(c).copied().unwrap_or(0) as f64;
            d * d
        })
        .sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

fn credited<'a>(result: &AttributionModelResult, names: &[&'a str]) -> BTreeMap<&'a str, f64> {
    names
        .iter()
        .map(|name| {
            let credit = result
                .channels
                .iter()
                .find(|c| c.channel == *name)
                .map_or(0.0, |c| c.conversions);
            (*name, credit)
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let persons: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5_000);
    let seed: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(42);
    let mut cfg = SimConfig::new(TemplateKind::Retail, persons, seed);
    // Churn scores are computed as of now: the period ends today.
    cfg.end_date = chrono::Utc::now().date_naive();

    let scratch = std::env::temp_dir().join(format!("model-truth-{}", std::process::id()));
    let truth = touchline_sim::generate(cfg.clone(), &scratch, &mut |_| {})?;
    let churned: HashSet<String> = std::fs::read_to_string(scratch.join("truth/churn.csv"))?
        .lines()
        .skip(1)
        .filter_map(|line| line.split(',').next().map(str::to_owned))
        .collect();
    std::fs::remove_dir_all(&scratch).ok();

    let app = TestApp::spawn().await?;
    let token = token(
        "truth",
        &[
            "events:write",
            "sources:write",
            "sources:read",
            "models:read",
            "dictionary:read",
            "dictionary:write",
        ],
    );
    touchline_e2e::publish_retail_dictionary(
        app.channel(&token)?,
        "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
    )
    .await?;
    let mut opts = SendOptions::new(app.addr().to_string(), token.clone());
    opts.progress_every = None;
    let started = Instant::now();
    let sent = touchline_sim::send(cfg.clone(), &opts).await?;
    let mut modeling = ModelingServiceClient::new(app.channel(&token)?);
    // The store has caught up when its count stops moving for five seconds.
    let (mut last, mut still) = (-1, 0);
    while still < 5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let total = modeling
            .count_events(CountEventsRequest::default())
            .await?
            .into_inner()
            .total_events;
        (last, still) = if total == last {
            (last, still + 1)
        } else {
            (total, 0)
        };
    }
    println!(
        "{persons} persons: {} events sent, {} accepted, {last} stored ({:.0} s)",
        sent.sent,
        sent.accepted,
        started.elapsed().as_secs_f64()
    );

    churn_auc(&mut modeling, &cfg, &churned).await?;

    let reaching = [
        "page_view",
        "screen_view",
        "ad_click",
        "oa_event",
        "oa_follower",
        "marketing_send",
        "service_ticket",
        "survey_response",
    ];
    for (reading, touches) in [
        ("every classified touchpoint event", &[][..]),
        (
            "events that reach a person (no shopping session)",
            &reaching[..],
        ),
    ] {
        println!("\n=== touches: {reading}");
        compare(&mut modeling, &cfg, touches, &truth).await?;
    }
    app.stop().await;
    Ok(())
}

type Modeling = ModelingServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        touchline_runtime::client::CallCredentials,
    >,
>;

async fn compare(
    modeling: &mut Modeling,
    cfg: &SimConfig,
    touches: &[&str],
    truth: &touchline_sim::Summary,
) -> anyhow::Result<()> {
    let model = |kind: T| AttributionModel {
        r#type: kind.into(),
        markov_order: 1,
        ..AttributionModel::default()
    };
    let reply = modeling
        .run_attribution(RunAttributionRequest {
            models: vec![model(T::Markov), model(T::Shapley)],
            touchpoint_events: touches
                .iter()
                .map(|name| EventMatcher {
                    event_name: (*name).to_owned(),
                    filters: Vec::new(),
                })
                .collect(),
            scope: Some(AnalysisScope {
                time_range: Some(TimeRange {
                    start_time: Some(timestamp(cfg.start_ms())),
                    end_time: Some(timestamp(cfg.end_ms() + 86_400_000)),
                }),
                ..AnalysisScope::default()
            }),
            ..RunAttributionRequest::default()
        })
        .await
        .context("RunAttribution")?
        .into_inner();
    let summary = reply.summary.unwrap_or_default();
    println!(
        "journeys: {:.0} converting, {:.0} direct, {:.0} not converting, {} paths; truth: {} journeys, {} conversions drawn",
        summary.conversions,
        summary.direct_conversions,
        summary.non_converting_journeys,
        summary.path_count,
        truth.stats.journeys,
        truth.stats.conversions
    );
    let names: Vec<&'static str> = Touch::ALL.iter().map(|t| stored_channel(*t)).collect();
    let truth_removal: BTreeMap<&'static str, f64> = Touch::ALL
        .iter()
        .map(|t| (stored_channel(*t), truth.stats.removal[*t as usize]))
        .collect();
    let truth_shapley: BTreeMap<&'static str, f64> = Touch::ALL
        .iter()
        .map(|t| (stored_channel(*t), truth.stats.shapley[*t as usize]))
        .collect();
    let markov = credited(&reply.results[0], &names);
    let shapley = credited(&reply.results[1], &names);
    for (title, ours, theirs) in [
        (
            "Markov, order 1, vs expected removal effects",
            &markov,
            &truth_removal,
        ),
        (
            "Shapley, conversions game, vs expected Shapley conversions",
            &shapley,
            &truth_shapley,
        ),
    ] {
        let (ours_share, theirs_share) = (shares(ours), shares(theirs));
        let (ours_rank, theirs_rank) = (ranks(ours), ranks(theirs));
        println!("\n{title}");
        println!(
            "  {:<18}{:>12}{:>12}{:>12}{:>8}{:>8}",
            "channel", "truth share", "our share", "difference", "truth#", "our#"
        );
        let mut worst: f64 = 0.0;
        for name in &names {
            let (t, o) = (theirs_share[name], ours_share[name]);
            worst = worst.max((o - t).abs());
            println!(
                "  {name:<18}{:>11.1}%{:>11.1}%{:>+11.1}%{:>8}{:>8}",
                t * 100.0,
                o * 100.0,
                (o - t) * 100.0,
                theirs_rank[name],
                ours_rank[name]
            );
        }
        let seen: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| {
                reply
                    .results
                    .iter()
                    .any(|r| r.channels.iter().any(|c| c.channel == *name))
            })
            .collect();
        let only_seen = |values: &BTreeMap<&'static str, f64>| -> BTreeMap<&'static str, f64> {
            values
                .iter()
                .filter(|(c, _)| seen.contains(c))
                .map(|(c, v)| (*c, *v))
                .collect()
        };
        println!(
            "  rank correlation (Spearman) {:.3} over all 8 channels, {:.3} over the {} the data shows; largest share difference {:.1} points",
            spearman(&ours_rank, &theirs_rank),
            spearman(&ranks(&only_seen(ours)), &ranks(&only_seen(theirs))),
            seen.len(),
            worst * 100.0
        );
    }
    Ok(())
}

/// The true person behind each stored person: the one most of its events came from.
async fn true_persons(
    modeling: &mut Modeling,
    cfg: &SimConfig,
) -> anyhow::Result<HashMap<String, String>> {
    let mut truth_of_message: HashMap<String, String> = HashMap::new();
    let mut stream = touchline_sim::events(cfg.clone())?;
    while let Some(event) = stream.next_with_truth() {
        if let Some(person) = event.person {
            truth_of_message.insert(event.event.message_id, person);
        }
    }
    let mut votes: HashMap<String, HashMap<String, u64>> = HashMap::new();
    for stored in touchline_e2e::stored_events(modeling).await? {
        if let Some(person) = truth_of_message.get(&stored.message_id) {
            *votes
                .entry(stored.person_id)
                .or_default()
                .entry(person.clone())
                .or_default() += 1;
        }
    }
    Ok(votes
        .into_iter()
        .filter_map(|(stored, counts)| {
            counts
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                .map(|(person, _)| (stored, person))
        })
        .collect())
}

/// ROC AUC: the chance that a random positive scores above a random negative (ties half).
fn auc(scored: &mut [(f64, bool)]) -> f64 {
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = scored.iter().filter(|s| s.1).count() as f64;
    let negatives = scored.len() as f64 - positives;
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < scored.len() {
        let mut j = i;
        while j < scored.len() && scored[j].0 == scored[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j share their mean.
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * scored[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Every buyer's churn score against who really churned.
async fn churn_auc(
    modeling: &mut Modeling,
    cfg: &SimConfig,
    churned: &HashSet<String>,
) -> anyhow::Result<()> {
    let truth = true_persons(modeling, cfg).await?;
    let (mut scored, mut flagged) = (Vec::new(), Vec::new());
    // BG/NBD gives a buyer without a repeat purchase P(alive) = 1 (dropping out happens only
    // after a purchase in that model), so those buyers are also counted apart, and the time
    // since the last purchase is scored as the plain baseline it is.
    let (mut repeat, mut recency) = (Vec::new(), Vec::new());
    let mut page_token = String::new();
    loop {
        let page = modeling
            .list_churn_scores(ListChurnScoresRequest {
                page_size: 1_000,
                page_token,
                ..ListChurnScoresRequest::default()
            })
            .await
            .context("ListChurnScores")?
            .into_inner();
        for score in page.scores {
            let Some(person) = truth.get(&score.person_id) else {
                continue;
            };
            let really = churned.contains(person);
            if let Some(value) = score.score {
                scored.push((value, really));
                if score.repeat_purchases > 0 {
                    repeat.push((value, really));
                }
                let inactive = score.inactive_for.map_or(0, |d| d.seconds);
                recency.push((inactive as f64, really));
            }
            flagged.push((score.churned, really));
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let positives = scored.iter().filter(|s| s.1).count();
    let flag_hits = flagged.iter().filter(|(f, r)| *f && *r).count();
    let flagged_count = flagged.iter().filter(|(f, _)| *f).count();
    let really = flagged.iter().filter(|(_, r)| *r).count();
    println!(
        "\nchurn: {} buyers scored, {positives} of them truly churned; ROC AUC of 1 − P(alive) {:.3} (target >= 0.8)",
        scored.len(),
        auc(&mut scored)
    );
    let one_time = scored.len() - repeat.len();
    println!(
        "  {one_time} of them bought once (P(alive) = 1 by the model); over the {} repeat buyers the AUC is {:.3}; time since the last purchase alone scores {:.3}",
        repeat.len(),
        auc(&mut repeat),
        auc(&mut recency)
    );
    println!(
        "  inactivity flag: {flagged_count} flagged, {flag_hits} truly churned (precision {:.2}, recall {:.2})",
        flag_hits as f64 / flagged_count.max(1) as f64,
        flag_hits as f64 / really.max(1) as f64
    );
    Ok(())
}
