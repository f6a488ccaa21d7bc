//! Attribution and churn scores against the generator's truth: a retail data set, its period
//! ending at the last midnight (UTC), generated and streamed through the whole application (collection, cleaning,
//! identity, the event store). Churn: ListChurnScores over every buyer under each
//! probability-alive model (BG/NBD, then MBG/NBD, chosen through UpdateModelSettings), each
//! stored person mapped to the true person most of their events came from, and the ROC AUC of
//! the score against who the generator made churn — over all buyers, repeat buyers and
//! one-time buyers — next to the time since the last purchase and to the in-sample churn rate
//! of buyers alike in repeat purchases and weeks since the last purchase (an optimistic bound
//! for scores built from purchase timing), and to the time since the last event of any kind. Attribution: RunAttribution with Markov (order 1) and Shapley (the conversions, conversion-rate and uplift games) over the dictionary's
//! conversions, next to the truth the generator drew conversions from — per channel, the
//! expected removal effect and Shapley conversions of its logistic model — as shares of all
//! credit, with the rank each gives every channel.
//!
//! `cargo run --release -p touchline-e2e --bin model-truth -- [PERSONS] [SEED] [MODEL]`
//! (PERSONS defaults to 20,000, SEED to 42, MODEL to `logistic`). At 5,000 persons the uplift
//! game's shares move by up to 2.7 points with the draw of conversions alone, more than the
//! 0.5 points between the truth's two closest channels (see `truth-consistency`); at 20,000
//! by about 1.3, and the run takes some 3.5 minutes on two cores.
//!
//! MODEL `chain` has the generator draw journeys from its chain conversion model instead: the
//! touches walk a first-order chain over the channels, and the truth is each channel's removal
//! effect on that chain as Markov attribution defines it. Markov's removal effect is not the
//! logistic truth's `p(S) − p(S∖{c})` (it credits a channel with the conversions of the paths
//! through it, not with what it adds to them), so under the logistic model Markov cannot rank
//! as the truth even on perfect data; under the chain model the same question has an answer
//! Markov should recover, and what it misses on the stored data is what the pipeline lost.
//! There is no Shapley truth under the chain model, so only Markov is compared.
//!
//! The stored channels name the generator's touch kinds differently (an ad click arrives on
//! `ads`, a store visit on `pos`, a CRM message on `crm`); the table maps them. The truth
//! values what a touch adds to a journey's conversion probability; the models see only the
//! stored events, in which a conversion's own shopping session (a login on the conversion
//! channel) also precedes the order, and a session opened by an ad, an official-account
//! message, a CRM message or a store's check-in QR code runs in the app, web shop or
//! mini-program. So the shares are compared as what they are: two estimates of the same
//! ranking from different evidence. Three readings of the touches are run:
//! - every classified touchpoint event (the default);
//! - the same, each event read as the channel its `utm_source` names when it has one (the
//!   request's `referrer_field`), so an opened session credits what opened it;
//! - only the events that reach a person (page and screen views, ad clicks, official-account
//!   and CRM messages, store check-ins, service tickets, surveys), which leaves the shopping
//!   session out, with the referrer read too;
//! - the same, with an order's reports (the SDK's `submit_order`, the web shop's and the CRM's
//!   `purchase`) counted as one conversion by `order_id` (the request's
//!   `conversion_key_field`);
//! - the same, with journeys that end after 2 and after 7 days without a touch (the request's
//!   `journey_gap`): a person's spells of interest without an order are journeys that did not
//!   convert, as the truth's are, instead of joining the next order's journey;
//! - the keyed reading without a gap and with the 2-day gap again, each sale stored without a
//!   person credited to the channel that recorded it (the request's `unidentified_conversions`).
//!   The conversion-rate and uplift games leave those sales out by design.
//!
//! Before them, two measures of what the stored data keeps: per channel, the share of the
//! buyers' touch events stored on the buyer (the stored person holding most of their orders),
//! and per channel, of the true converting journeys that touched it, the share whose order's
//! stored journey shows it (and how often a stored journey shows a channel its true journey
//! did not touch).
//!
//! Last, the same models run on the generator's own journey list sent as supplied paths
//! (perfect data), which separates what the stored data loses from how the models' credit
//! differs from the truth's uplift; and the uplift game on bootstrap samples of that list,
//! which says how far its shares move by chance.
//!
//! First of all, where the sent events went (clean, quarantined by first reason, duplicates
//! by kind, stored, set aside by the store), so two runs of one seed that store different
//! counts can be compared stage by stage.
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![allow(
    clippy::too_many_lines,
    reason = "a benchmark's script reads top to bottom"
)]

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use anyhow::Context as _;
use touchline_proto::common::v1::TimeRange;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    AnalysisScope, AttributionModel, AttributionModelResult, AttributionModelType as T,
    EventMatcher, RunAttributionOnPathsRequest, RunAttributionRequest, ShapleyGame,
    UnidentifiedConversions, run_attribution_on_paths_request::PathsInput,
};
use touchline_sim::template::Touch;
use touchline_sim::{ConversionModel, SendOptions, SimConfig, TemplateKind};
use touchline_testkit::{TestApp, token};

// The binary's own folder holds its churn half (the attribution half is this file).
#[path = "model_truth/accounting.rs"]
mod accounting;
#[path = "model_truth/churn.rs"]
mod churn;
#[path = "model_truth/noise.rs"]
mod noise;
#[path = "model_truth/reach.rs"]
mod reach;
#[path = "truth_shares.rs"]
mod truth_shares;

use truth_shares::{by_stored_channel, ranks, shares, spearman, stored_channel, true_journeys};

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
    let persons: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let seed: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(42);
    let mut cfg = SimConfig::new(TemplateKind::Retail, persons, seed);
    cfg.conversion_model = match args.next().as_deref() {
        None | Some("logistic") => ConversionModel::Logistic,
        Some("chain") => ConversionModel::Chain,
        Some(other) => anyhow::bail!("MODEL is `logistic` or `chain`, not `{other}`"),
    };
    // Churn scores are computed as of now, so the period ends at the last midnight (UTC)
    // before now: a period ending today would hold events of the hours still to come, which
    // governance rightly quarantines as in the future, fewer the later the run, so two runs
    // of one seed would store different events.
    cfg.end_date = chrono::Utc::now().date_naive() - chrono::Duration::days(1);

    let scratch = std::env::temp_dir().join(format!("model-truth-{}", std::process::id()));
    let truth = Truth::of(
        &cfg,
        &touchline_sim::generate(cfg.clone(), &scratch, &mut |_| {})?,
    );
    let journeys_csv = std::fs::read_to_string(scratch.join("truth/journeys.csv"))?;
    // person_id,churn_date,churn_ms,last_activity_ms
    let churned: HashMap<String, i64> = std::fs::read_to_string(scratch.join("truth/churn.csv"))?
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cells = line.split(',');
            let person = cells.next()?.to_owned();
            let churn_ms = cells.nth(1)?.parse().ok()?;
            Some((person, churn_ms))
        })
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
            "segments:write",
            "segments:read",
            "quality:read",
            "quarantine:read",
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
    touchline_e2e::mark_analysable(
        &mut modeling,
        "truth",
        &["properties.utm_source", "properties.order_id"],
    )
    .await
    .context("marking utm_source and order_id analysable")?;
    // The store has caught up when its count stops moving for five seconds. A larger data
    // set takes longer (50,000 persons had not settled after five minutes on two cores), so
    // the patience grows with it: 25 s per thousand persons, five minutes at least.
    let patience = std::time::Duration::from_secs(300.max(persons / 40));
    let last = touchline_e2e::wait_for_quiet_store(&mut modeling, 5, patience).await?;
    println!(
        "{persons} persons: {} events sent, {} accepted, {last} stored ({:.0} s)",
        sent.sent,
        sent.accepted,
        started.elapsed().as_secs_f64()
    );
    accounting::print(app.channel(&token)?, &mut modeling, last).await?;

    // Every stored event, and the true person each sent message came from.
    let stored = touchline_e2e::stored_events(&mut modeling).await?;
    let mut truth_of_message: HashMap<String, String> = HashMap::new();
    let mut stream = touchline_sim::events(cfg.clone())?;
    while let Some(event) = stream.next_with_truth() {
        if let Some(person) = event.person {
            truth_of_message.insert(event.event.message_id, person);
        }
    }
    churn::churn_auc(&mut modeling, &cfg, (&stored, &truth_of_message), &churned).await?;

    let reaching = [
        "page_view",
        "screen_view",
        "ad_click",
        "oa_event",
        "oa_follower",
        "marketing_send",
        "store_checkin",
        "service_ticket",
        "survey_response",
    ];
    reach::touches_reaching_the_buyer(&stored, &truth_of_message, &reaching);
    reach::converting_journeys_kept(
        &stored,
        &truth_of_message,
        &reaching,
        &journeys_csv,
        |name| {
            Touch::ALL
                .iter()
                .find(|t| t.name() == name)
                .map(|t| stored_channel(*t))
        },
    );
    let identified = identified_segment(&mut modeling).await?;
    let keyed = "events that reach a person, read as their referrer; an order's reports (SDK, \
                 web shop, CRM) one conversion by order_id";
    let gapped = |days| Some((days, None));
    for (reading, touches, referrer, key, gap) in [
        ("every classified touchpoint event", &[][..], "", "", None),
        (
            "every classified touchpoint event, read as its referrer when it has one",
            &[][..],
            "properties.utm_source",
            "",
            None,
        ),
        (
            "events that reach a person (no shopping session), read as their referrer",
            &reaching[..],
            "properties.utm_source",
            "",
            None,
        ),
        (
            keyed,
            &reaching[..],
            "properties.utm_source",
            "properties.order_id",
            None,
        ),
        (
            keyed,
            &reaching[..],
            "properties.utm_source",
            "properties.order_id",
            gapped(2),
        ),
        (
            keyed,
            &reaching[..],
            "properties.utm_source",
            "properties.order_id",
            gapped(7),
        ),
        (
            keyed,
            &reaching[..],
            "properties.utm_source",
            "properties.order_id",
            Some((2, Some(identified.as_str()))),
        ),
    ] {
        match gap {
            None => println!("\n=== touches: {reading}"),
            Some((days, None)) => println!(
                "\n=== touches: {reading}; a journey ends after {days} days without a touch"
            ),
            Some((days, Some(_))) => println!(
                "\n=== touches: {reading}; a journey ends after {days} days without a touch; \
                 only persons identity holds a phone of (no anonymous fragment)"
            ),
        }
        let reading = Reading {
            touches,
            referrer,
            key,
            gap_days: gap.map(|g| g.0),
            segment: gap.and_then(|g| g.1),
            credit: false,
        };
        compare(&mut modeling, &cfg, reading, &truth).await?;
    }
    for gap_days in [None, Some(2)] {
        match gap_days {
            None => println!(
                "\n=== touches: {keyed}; each sale without a person credited to the channel that recorded it"
            ),
            Some(days) => println!(
                "\n=== touches: {keyed}; a journey ends after {days} days without a touch; each sale without a person credited to the channel that recorded it"
            ),
        }
        let reading = Reading {
            touches: &reaching,
            referrer: "properties.utm_source",
            key: "properties.order_id",
            gap_days,
            segment: None,
            credit: true,
        };
        compare(&mut modeling, &cfg, reading, &truth).await?;
    }
    println!("\n=== the generator's own journeys as supplied paths (perfect data)");
    oracle(&mut modeling, &journeys_csv, &truth).await?;
    app.stop().await;
    Ok(())
}

pub(crate) type Modeling = ModelingServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        touchline_runtime::client::CallCredentials,
    >,
>;

/// How a run reads the stored events.
struct Reading<'a> {
    /// The touchpoint events (none: the dictionary's).
    touches: &'a [&'a str],
    /// The referrer field (empty: none).
    referrer: &'a str,
    /// The conversion key field (empty: none).
    key: &'a str,
    /// The journey gap in days.
    gap_days: Option<i64>,
    /// Only this segment's persons.
    segment: Option<&'a str>,
    /// Whether conversions stored without a person are credited to the channel that
    /// recorded them.
    credit: bool,
}

/// A segment of every person identity holds a phone of: the persons a brand can name, so
/// not the fragments of browsers and mini-programs that never logged in (whose journeys can
/// never convert, since an order names its buyer). Returns its name once its count holds
/// still for three seconds.
async fn identified_segment(modeling: &mut Modeling) -> anyhow::Result<String> {
    use touchline_proto::modeling::v1::{
        CreateSegmentRequest, GetSegmentRequest, IdentifierCondition, Segment, SegmentRule,
        SegmentState, segment_rule,
    };
    let created = modeling
        .create_segment(CreateSegmentRequest {
            segment_id: "identified".to_owned(),
            segment: Some(Segment {
                display_name: "identified / 可识别".to_owned(),
                rule: Some(SegmentRule {
                    rule: Some(segment_rule::Rule::Identifier(IdentifierCondition {
                        r#type: "phone".to_owned(),
                        scope: String::new(),
                    })),
                }),
                ..Segment::default()
            }),
            ..CreateSegmentRequest::default()
        })
        .await
        .context("CreateSegment")?
        .into_inner()
        .segment
        .unwrap_or_default();
    let (mut last, mut since) = (-1, Instant::now());
    loop {
        let segment = modeling
            .get_segment(GetSegmentRequest {
                name: created.name.clone(),
            })
            .await?
            .into_inner()
            .segment
            .unwrap_or_default();
        if segment.state != SegmentState::Active as i32 || segment.member_count != last {
            (last, since) = (segment.member_count, Instant::now());
        } else if since.elapsed().as_secs() >= 3 {
            println!("\n{last} persons hold a phone (segment {})", created.name);
            return Ok(created.name);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

async fn compare(
    modeling: &mut Modeling,
    cfg: &SimConfig,
    reading: Reading<'_>,
    truth: &Truth,
) -> anyhow::Result<()> {
    let reply = modeling
        .run_attribution(RunAttributionRequest {
            models: models(),
            touchpoint_events: reading
                .touches
                .iter()
                .map(|name| EventMatcher {
                    event_name: (*name).to_owned(),
                    filters: Vec::new(),
                })
                .collect(),
            scope: Some(AnalysisScope {
                time_range: Some(TimeRange {
                    start_time: Some(touchline_e2e::at(cfg.start_ms())),
                    end_time: Some(touchline_e2e::at(cfg.end_ms() + 86_400_000)),
                }),
                segment: reading.segment.unwrap_or_default().to_owned(),
                ..AnalysisScope::default()
            }),
            referrer_field: reading.referrer.to_owned(),
            conversion_key_field: reading.key.to_owned(),
            journey_gap: reading.gap_days.map(|days| prost_types::Duration {
                seconds: days * 86_400,
                nanos: 0,
            }),
            unidentified_conversions: if reading.credit {
                UnidentifiedConversions::RecordingChannel.into()
            } else {
                UnidentifiedConversions::Apart.into()
            },
            ..RunAttributionRequest::default()
        })
        .await
        .context("RunAttribution")?
        .into_inner();
    let summary = reply.summary.unwrap_or_default();
    println!(
        "journeys: {:.0} converting, {:.0} direct, {:.0} not converting, {} paths; {:.0} conversions without a person ({:.0} credited); truth: {} journeys, {} conversions drawn",
        summary.conversions,
        summary.direct_conversions,
        summary.non_converting_journeys,
        summary.path_count,
        summary.unidentified_conversions,
        summary.unidentified_credited,
        truth.journeys,
        truth.conversions
    );
    report(&reply.results, truth);
    Ok(())
}

/// The generator's own journeys (every true touch, every drawn conversion, nothing lost on
/// the way) as supplied paths: what the same models give on perfect data, which tells a
/// difference of the models from the truth's definition apart from what the stored data
/// loses.
async fn oracle(modeling: &mut Modeling, journeys_csv: &str, truth: &Truth) -> anyhow::Result<()> {
    let journeys = true_journeys(journeys_csv);
    let paths = path_counts(
        journeys
            .iter()
            .map(|(path, converted)| (path.as_str(), *converted)),
    );
    let reply = modeling
        .run_attribution_on_paths(RunAttributionOnPathsRequest {
            paths_input: Some(PathsInput::PathsText(paths_text(&paths))),
            models: models(),
            ..RunAttributionOnPathsRequest::default()
        })
        .await
        .context("RunAttributionOnPaths")?
        .into_inner();
    println!("{} distinct true paths", paths.len());
    report(&reply.results, truth);
    match &truth.shapley {
        Some(shapley) => {
            let uplift = AttributionModel {
                r#type: T::Shapley.into(),
                shapley_game: ShapleyGame::Uplift.into(),
                ..AttributionModel::default()
            };
            noise::print(
                modeling,
                &journeys,
                (uplift, "Shapley, uplift game"),
                shapley,
            )
            .await?;
        }
        None => {
            let markov = models().swap_remove(0);
            let title = "Markov, order 1";
            noise::print(modeling, &journeys, (markov, title), &truth.removal).await?;
        }
    }
    Ok(())
}

/// Conversions and non-conversions per distinct path.
fn path_counts<'a>(
    journeys: impl Iterator<Item = (&'a str, bool)>,
) -> BTreeMap<&'a str, (u64, u64)> {
    let mut paths: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (path, converted) in journeys {
        let entry = paths.entry(path).or_default();
        if converted {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    paths
}

/// The `path;conversions;value;nulls` text of path counts.
fn paths_text(paths: &BTreeMap<&str, (u64, u64)>) -> String {
    paths
        .iter()
        .map(|(path, (conversions, nulls))| format!("{path};{conversions};0;{nulls}\n"))
        .collect()
}

/// The models compared: Markov of order 1, Shapley on the conversions game, on the
/// conversion-rate game and on the uplift game.
fn models() -> Vec<AttributionModel> {
    let model = |kind: T| AttributionModel {
        r#type: kind.into(),
        markov_order: 1,
        ..AttributionModel::default()
    };
    vec![
        model(T::Markov),
        model(T::Shapley),
        AttributionModel {
            shapley_game: ShapleyGame::ConversionRate.into(),
            ..model(T::Shapley)
        },
        AttributionModel {
            shapley_game: ShapleyGame::Uplift.into(),
            ..model(T::Shapley)
        },
    ]
}

/// What the generator's run says each channel is worth.
pub(crate) struct Truth {
    /// Per stored channel, the removal effect: the logistic model's expected
    /// `Σ p(S) − p(S∖{c})`, or the chain model's removal effect on its expected chain.
    removal: BTreeMap<&'static str, f64>,
    /// Per stored channel, the logistic model's expected Shapley conversions (none under the
    /// chain model).
    shapley: Option<BTreeMap<&'static str, f64>>,
    /// What the removal effects are, for the tables' titles.
    removal_title: &'static str,
    journeys: u64,
    conversions: u64,
}

impl Truth {
    fn of(cfg: &SimConfig, summary: &touchline_sim::Summary) -> Truth {
        let stats = &summary.stats;
        let (removal, shapley, removal_title) = match cfg.conversion_model {
            ConversionModel::Logistic => (
                by_stored_channel(&stats.removal),
                Some(by_stored_channel(&stats.shapley)),
                "expected removal effects (logistic model)",
            ),
            ConversionModel::Chain => {
                let template = touchline_sim::template::get(cfg.template);
                let (effects, _) =
                    touchline_sim::engine::chain::removal_effects(template, &stats.chain_journeys);
                (
                    by_stored_channel(&effects),
                    None,
                    "removal effects of the true chain",
                )
            }
        };
        Truth {
            removal,
            shapley,
            removal_title,
            journeys: stats.journeys,
            conversions: stats.conversions,
        }
    }
}

/// The shares and ranks of [`models`]' results (in that order) next to the truth's.
fn report(results: &[AttributionModelResult], truth: &Truth) {
    let (Some(markov_result), Some(shapley_result), Some(rate_result), Some(uplift_result)) = (
        results.first(),
        results.get(1),
        results.get(2),
        results.get(3),
    ) else {
        println!("  (no results)");
        return;
    };
    let names: Vec<&'static str> = Touch::ALL.iter().map(|t| stored_channel(*t)).collect();
    let markov_title = format!("Markov, order 1, vs {}", truth.removal_title);
    let mut tables = vec![(
        markov_title.as_str(),
        credited(markov_result, &names),
        &truth.removal,
    )];
    if let Some(truth_shapley) = &truth.shapley {
        tables.extend([
            (
                "Shapley, conversions game, vs expected Shapley conversions",
                credited(shapley_result, &names),
                truth_shapley,
            ),
            (
                "Shapley, conversion-rate game, vs expected Shapley conversions",
                credited(rate_result, &names),
                truth_shapley,
            ),
            (
                "Shapley, uplift game (fitted logistic model), vs expected Shapley conversions",
                credited(uplift_result, &names),
                truth_shapley,
            ),
        ]);
    }
    for (title, ours, theirs) in &tables {
        let (ours, theirs) = (ours, *theirs);
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
                results
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
}
