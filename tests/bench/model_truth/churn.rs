//! Churn scores against the generator's truth: every buyer's score under each
//! probability-alive model, next to simpler scores and to what the purchase history allows.

use std::collections::HashMap;

use anyhow::Context as _;
use touchline_proto::modeling::v1::{
    ChurnModel, ChurnModelEvents, ChurnSettings, EventMatcher, GetModelSettingsRequest,
    ListChurnScoresRequest, ModelSettings, StoredEvent, UpdateModelSettingsRequest,
};
use touchline_sim::SimConfig;

use super::Modeling;

/// The true person behind each stored person: the one most of its events came from.
fn true_persons(
    stored: &[StoredEvent],
    truth_of_message: &HashMap<String, String>,
) -> HashMap<String, String> {
    let mut votes: HashMap<&str, HashMap<&str, u64>> = HashMap::new();
    for event in stored {
        if let Some(person) = truth_of_message.get(&event.message_id) {
            *votes
                .entry(event.person_id.as_str())
                .or_default()
                .entry(person.as_str())
                .or_default() += 1;
        }
    }
    votes
        .into_iter()
        .filter_map(|(stored, counts)| {
            counts
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
                .map(|(person, _)| (stored.to_owned(), person.to_owned()))
        })
        .collect()
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

/// One scored buyer as listed, with the truth.
#[derive(Debug, Clone)]
struct Listed {
    /// The stored person.
    person: String,
    score: f64,
    churned: bool,
    /// When the generator made the person churn.
    churn_ms: Option<i64>,
    repeat_purchases: i64,
    inactive_secs: i64,
    flagged: bool,
}

/// Every scored buyer the truth knows, under the tenant's current settings.
async fn listed(
    modeling: &mut Modeling,
    truth: &HashMap<String, String>,
    churned: &HashMap<String, i64>,
) -> anyhow::Result<Vec<Listed>> {
    let mut out = Vec::new();
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
            let (Some(person), Some(value)) = (truth.get(&score.person_id), score.score) else {
                continue;
            };
            out.push(Listed {
                person: score.person_id.clone(),
                score: value,
                churned: churned.contains_key(person),
                churn_ms: churned.get(person).copied(),
                repeat_purchases: score.repeat_purchases,
                inactive_secs: score.inactive_for.map_or(0, |d| d.seconds),
                flagged: score.churned,
            });
        }
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// Chooses the tenant's probability-alive model; returns the fit it gives.
async fn use_model(modeling: &mut Modeling, model: ChurnModel) -> anyhow::Result<String> {
    let churn = ChurnSettings {
        model: model.into(),
        ..ChurnSettings::default()
    };
    set_churn(modeling, churn, "churn.model").await?;
    let settings = modeling
        .get_model_settings(GetModelSettingsRequest::default())
        .await
        .context("GetModelSettings")?
        .into_inner()
        .model_settings
        .unwrap_or_default();
    let fit = settings
        .churn
        .and_then(|c| c.bg_nbd)
        .and_then(|b| b.last_fit)
        .unwrap_or_default();
    let p = fit.parameters.unwrap_or_default();
    anyhow::ensure!(
        fit.model == i32::from(model),
        "the fit is of the model chosen"
    );
    Ok(format!(
        "r {:.4}, α {:.3} days, a {:.4}, b {:.4}, log-likelihood {:.2} over {} buyers, converged {}",
        p.r, p.alpha, p.a, p.b, fit.log_likelihood, fit.person_count, fit.converged
    ))
}

/// Chooses what the probability-alive model counts: purchase days or days with any event.
async fn use_model_events(modeling: &mut Modeling, events: ChurnModelEvents) -> anyhow::Result<()> {
    let churn = ChurnSettings {
        model_events: events.into(),
        ..ChurnSettings::default()
    };
    set_churn(modeling, churn, "churn.model_events").await
}

/// Sets one field of the churn settings, named by its mask `path`.
async fn set_churn(
    modeling: &mut Modeling,
    churn: ChurnSettings,
    path: &str,
) -> anyhow::Result<()> {
    modeling
        .update_model_settings(UpdateModelSettingsRequest {
            model_settings: Some(ModelSettings {
                churn: Some(churn),
                ..ModelSettings::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![path.to_owned()],
            }),
            ..UpdateModelSettingsRequest::default()
        })
        .await
        .context("UpdateModelSettings")?;
    Ok(())
}

/// Makes every event count, as qualifying activity (the inactivity rule's `inactive_for`
/// then runs from the last event of any kind) or, with `as_purchases`, also as the purchase
/// event the models are fitted on (every day with an event is a "purchase").
async fn every_event_counts(modeling: &mut Modeling, as_purchases: bool) -> anyhow::Result<()> {
    let mut paths = vec!["churn.qualifying_events".to_owned()];
    if as_purchases {
        paths.push("purchase_event".to_owned());
    }
    modeling
        .update_model_settings(UpdateModelSettingsRequest {
            model_settings: Some(ModelSettings {
                purchase_event: Some(EventMatcher::default()),
                churn: Some(ChurnSettings {
                    qualifying_events: vec![EventMatcher::default()],
                    ..ChurnSettings::default()
                }),
                ..ModelSettings::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths }),
            ..UpdateModelSettingsRequest::default()
        })
        .await
        .context("UpdateModelSettings")?;
    Ok(())
}

/// The AUC of `key` over the buyers `keep` selects.
fn auc_over(rows: &[Listed], keep: fn(&Listed) -> bool, key: impl Fn(&Listed) -> f64) -> f64 {
    let mut scored: Vec<(f64, bool)> = rows
        .iter()
        .filter(|row| keep(row))
        .map(|row| (key(row), row.churned))
        .collect();
    auc(&mut scored)
}

/// Each buyer's in-sample churn rate among the buyers with the same repeat purchases (2 or
/// more together) and the same whole weeks since the last purchase: the best any score built
/// from those two figures could do on this sample, and optimistic (it is fitted to the very
/// outcomes it is graded on).
fn cell_rates(rows: &[Listed]) -> Vec<Listed> {
    let cell = |row: &Listed| {
        (
            row.repeat_purchases.min(2),
            row.inactive_secs / (7 * 86_400),
        )
    };
    let mut counts: HashMap<(i64, i64), (f64, f64)> = HashMap::new();
    for row in rows {
        let entry = counts.entry(cell(row)).or_default();
        entry.0 += f64::from(u8::from(row.churned));
        entry.1 += 1.0;
    }
    rows.iter()
        .map(|row| {
            let (churned, all) = counts.get(&cell(row)).copied().unwrap_or((0.0, 1.0));
            Listed {
                score: churned / all,
                ..row.clone()
            }
        })
        .collect()
}

/// Every buyer's churn score against who really churned, under each model, next to the time
/// since the last purchase.
pub(crate) async fn churn_auc(
    modeling: &mut Modeling,
    cfg: &SimConfig,
    (stored, truth_of_message): (&[StoredEvent], &HashMap<String, String>),
    churned: &HashMap<String, i64>,
) -> anyhow::Result<()> {
    let truth = true_persons(stored, truth_of_message);
    let all: fn(&Listed) -> bool = |_| true;
    let repeat: fn(&Listed) -> bool = |row| row.repeat_purchases > 0;
    let once: fn(&Listed) -> bool = |row| row.repeat_purchases == 0;
    let mut lines = Vec::new();
    let mut by_model = Vec::new();
    for (name, model) in [
        ("BG/NBD", ChurnModel::BgNbd),
        ("MBG/NBD", ChurnModel::MbgNbd),
    ] {
        let fit = use_model(modeling, model).await?;
        let rows = listed(modeling, &truth, churned).await?;
        let score = |row: &Listed| row.score;
        lines.push((
            format!("1 − P(alive), {name}"),
            [all, repeat, once].map(|keep| auc_over(&rows, keep, score)),
        ));
        println!("\n{name} fit: {fit}");
        by_model.push((name, rows));
    }
    let rows = by_model
        .last()
        .map(|(_, rows)| rows.clone())
        .unwrap_or_default();
    let recency = |row: &Listed| row.inactive_secs as f64;
    lines.push((
        "time since the last purchase".to_owned(),
        [all, repeat, once].map(|keep| auc_over(&rows, keep, recency)),
    ));
    // The setting built for this: the same purchases and buyers, the model counting days with
    // any event (MBG/NBD is still the model chosen last).
    use_model_events(modeling, ChurnModelEvents::AnyEvent).await?;
    let on_activity = listed(modeling, &truth, churned).await?;
    let by_person: HashMap<&str, &Listed> = on_activity
        .iter()
        .map(|row| (row.person.as_str(), row))
        .collect();
    let on_activity: Vec<Listed> = rows
        .iter()
        .filter_map(|row| {
            Some(Listed {
                score: by_person.get(row.person.as_str())?.score,
                ..row.clone()
            })
        })
        .collect();
    lines.push((
        "1 − P(alive), MBG/NBD, model_events ANY_EVENT".to_owned(),
        [all, repeat, once].map(|keep| auc_over(&on_activity, keep, |row| row.score)),
    ));
    use_model_events(modeling, ChurnModelEvents::Purchases).await?;
    // Purchases are all the models see; the generator's churners stop every kind of activity.
    // The same buyers, graded on the time since their last event of any kind, and by the
    // models fitted on every event instead of purchases (their own repeat counts then differ,
    // so the buyers keep the columns their purchases gave them).
    every_event_counts(modeling, false).await?;
    let active = listed(modeling, &truth, churned).await?;
    let same_buyers = |listed: Vec<Listed>| -> Vec<Listed> {
        let by_person: HashMap<&str, &Listed> = listed
            .iter()
            .map(|row| (row.person.as_str(), row))
            .collect();
        rows.iter()
            .filter_map(|row| {
                let other = by_person.get(row.person.as_str())?;
                Some(Listed {
                    score: other.score,
                    inactive_secs: other.inactive_secs,
                    ..row.clone()
                })
            })
            .collect()
    };
    let active = same_buyers(active);
    lines.push((
        "time since the last event of any kind".to_owned(),
        [all, repeat, once].map(|keep| auc_over(&active, keep, recency)),
    ));
    every_event_counts(modeling, true).await?;
    for (name, model) in [
        ("BG/NBD", ChurnModel::BgNbd),
        ("MBG/NBD", ChurnModel::MbgNbd),
    ] {
        use_model(modeling, model).await?;
        let on_events = same_buyers(listed(modeling, &truth, churned).await?);
        lines.push((
            format!("{name} fitted on every event"),
            [all, repeat, once].map(|keep| auc_over(&on_events, keep, |row| row.score)),
        ));
    }
    let cells = cell_rates(&rows);
    lines.push((
        "in-sample rate per cell (bound)".to_owned(),
        [all, repeat, once].map(|keep| auc_over(&cells, keep, |row| row.score)),
    ));
    let count = |keep: fn(&Listed) -> bool| rows.iter().filter(|row| keep(row)).count();
    let positives =
        |keep: fn(&Listed) -> bool| rows.iter().filter(|row| keep(row) && row.churned).count();
    println!(
        "\nchurn: ROC AUC against who truly churned (target >= 0.8); {} buyers scored, {} truly churned",
        count(all),
        positives(all)
    );
    println!(
        "  {:<38}{:>14}{:>16}{:>17}",
        "score",
        format!("all ({})", count(all)),
        format!("repeat ({})", count(repeat)),
        format!("one-time ({})", count(once))
    );
    for (name, [a, r, o]) in &lines {
        println!("  {name:<38}{a:>14.3}{r:>16.3}{o:>17.3}");
    }
    println!(
        "  truly churned: {} of the repeat buyers, {} of the one-time buyers",
        positives(repeat),
        positives(once)
    );
    println!(
        "  truly churned persons without a purchase (no score, outside the AUC): {}",
        churned.len().saturating_sub(positives(all))
    );
    // Who left shortly before the end has had little time to be missed: their last purchase
    // can be as recent as a loyal buyer's. The same AUCs without them show how much of the gap
    // to a perfect ranking is the observation window.
    let cutoff = cfg.end_ms() - 30 * 86_400_000;
    let late = |row: &Listed| row.churn_ms.is_some_and(|c| c >= cutoff);
    let settled = |rows: &[Listed]| -> Vec<Listed> {
        rows.iter().filter(|row| !late(row)).cloned().collect()
    };
    let mut window = Vec::new();
    for (name, rows) in &by_model {
        window.push(format!(
            "{name} {:.3}",
            auc_over(&settled(rows), all, |row| row.score)
        ));
    }
    window.push(format!(
        "time since the last purchase {:.3}",
        auc_over(&settled(&rows), all, recency)
    ));
    println!(
        "  without the {} churned buyers who left in the period's last 30 days: {}",
        rows.iter().filter(|row| late(row)).count(),
        window.join(", ")
    );
    let flagged = rows.iter().filter(|row| row.flagged).count();
    let hits = rows.iter().filter(|row| row.flagged && row.churned).count();
    println!(
        "  inactivity flag: {flagged} flagged, {hits} truly churned (precision {:.2}, recall {:.2})",
        hits as f64 / flagged.max(1) as f64,
        hits as f64 / positives(all).max(1) as f64
    );
    Ok(())
}
