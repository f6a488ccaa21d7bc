//! `manifest.json` and `truth/conversion_model.json`: what was generated, with which parameters,
//! how much of each defect was planted against how many opportunities, and the channels' true
//! contributions to conversion.

use std::path::Path;

use serde_json::{Value, json};

use crate::SimError;
use crate::config::{ConversionModel, DefectKind};
use crate::engine::{Ctx, Stats, chain};
use crate::output::{Output, truth_paths};
use crate::template::Touch;

/// Generator identity written into every manifest; bump the format when output shapes change.
pub const GENERATOR: &str = concat!("touchline-sim ", env!("CARGO_PKG_VERSION"), " format 1");

fn write_json(path: &Path, v: &Value) -> Result<(), SimError> {
    let mut text = serde_json::to_string_pretty(v).map_err(SimError::Json)?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| SimError::io(path, e))
}

/// Writes the conversion model truth: the logistic model's expected removal effects and
/// Shapley shares, or the chain model's removal effects on its expected chain.
pub fn write_model(ctx: &Ctx, stats: &Stats, root: &Path) -> Result<(), SimError> {
    let v = match ctx.cfg.conversion_model {
        ConversionModel::Logistic => logistic_model(ctx, stats),
        ConversionModel::Chain => chain_model(ctx, stats),
    };
    write_json(&root.join(truth_paths::MODEL), &v)
}

fn logistic_model(ctx: &Ctx, stats: &Stats) -> Value {
    let t = ctx.t;
    let removal_total: f64 = stats.removal.iter().sum();
    let shapley_total: f64 = stats.shapley.iter().sum();
    let channels: Vec<Value> = Touch::ALL
        .iter()
        .map(|c| {
            let i = *c as usize;
            json!({
                "channel": c.name(),
                "beta": t.betas[i],
                "touches": stats.touches[i],
                "expected_removal_effect": round6(stats.removal[i]),
                "removal_share": share(stats.removal[i], removal_total),
                "expected_shapley_conversions": round6(stats.shapley[i]),
                "shapley_share": share(stats.shapley[i], shapley_total),
            })
        })
        .collect();
    json!({
        "model": "per journey: p = sigmoid(intercept + propensity + sum of beta over distinct channels touched); \
                  propensity ~ Normal(0, 0.5) per person; conversion drawn from Bernoulli(p)",
        "conversion_model": ConversionModel::Logistic,
        "intercept": t.intercept,
        "propensity_sd": 0.5,
        "channels": channels,
        "journeys": stats.journeys,
        "expected_conversions": round6(stats.expected_conversions),
        "baseline_conversions": round6(stats.baseline_conversions),
        "drawn_conversions": stats.conversions,
        "conversions_by_channel": conversions_by_channel(stats),
        "revenue_fen": stats.revenue,
    })
}

fn chain_model(ctx: &Ctx, stats: &Stats) -> Value {
    let (effects, p) = chain::removal_effects(ctx.t, &stats.chain_journeys);
    let total: f64 = effects.iter().sum();
    let channels: Vec<Value> = Touch::ALL
        .iter()
        .map(|c| {
            let i = *c as usize;
            json!({
                "channel": c.name(),
                "touches": stats.touches[i],
                "next": ctx.t.chain.next[i],
                "convert": ctx.t.chain.convert[i],
                "leave": ctx.t.chain.leave[i],
                "removal_effect": round6(effects[i]),
                "removal_share": share(effects[i], total),
            })
        })
        .collect();
    json!({
        "model": "per journey: the first channel drawn from the touch weights, then each next channel, \
                  converting or leaving from the chain's row of the channel touched (rows renormalised over \
                  the channels that can reach the person); removal effects on the pooled expected chain, \
                  1 - P(conversion | transitions into c leave) / P(conversion), solved exactly",
        "conversion_model": ConversionModel::Chain,
        "channels": channels,
        "journeys": stats.journeys,
        "chain_conversion_probability": round6(p),
        "expected_conversions": round6(stats.expected_conversions),
        "drawn_conversions": stats.conversions,
        "conversions_by_channel": conversions_by_channel(stats),
        "revenue_fen": stats.revenue,
    })
}

fn conversions_by_channel(stats: &Stats) -> Value {
    json!({
        "app": stats.conv_by_channel[0],
        "mini_program": stats.conv_by_channel[1],
        "web": stats.conv_by_channel[2],
        "marketplace": stats.conv_by_channel[3],
        "store": stats.conv_by_channel[4],
    })
}

/// `part` of `total`, to six places (0 of nothing).
fn share(part: f64, total: f64) -> f64 {
    round6(if total > 0.0 { part / total } else { 0.0 })
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Writes `manifest.json`.
pub fn write_manifest(ctx: &Ctx, stats: &Stats, out: &Output) -> Result<(), SimError> {
    let cfg = &ctx.cfg;
    let files: Vec<Value> = ctx
        .layout
        .files
        .iter()
        .zip(&out.files)
        .map(|(spec, sink)| {
            let header_lines = u64::from(spec.format == crate::layout::FileFormat::Csv);
            json!({
                "path": spec.path,
                "format": match spec.format { crate::layout::FileFormat::Csv => "csv", crate::layout::FileFormat::Jsonl => "jsonl" },
                "channel": spec.channel,
                "source": spec.source,
                "time_zone": spec.tz_name,
                "local_time_without_offset": spec.naive_local_time,
                "aggregate": spec.aggregate,
                "header_lines": header_lines,
                "records": sink.lines - header_lines,
            })
        })
        .collect();
    let mut defects = serde_json::Map::new();
    for k in DefectKind::ALL {
        let i = k as usize;
        let e = stats.eligible[i];
        defects.insert(
            k.name().into(),
            json!({
                "configured_rate": cfg.rates.get(k),
                "unit": k.unit(),
                "eligible": e,
                "planted": stats.planted[i],
                "observed_rate": if e > 0 { round6(stats.planted[i] as f64 / e as f64) } else { 0.0 },
                "defect_records": stats.defect_records[i],
            }),
        );
    }
    let total_records: u64 = files.iter().filter_map(|f| f["records"].as_u64()).sum();
    let v = json!({
        "generator": GENERATOR,
        "template": ctx.t.name,
        "seed": cfg.seed,
        "persons": cfg.persons,
        "days": cfg.days,
        "period_start_ms": ctx.start_ms,
        "period_end_ms": ctx.end_ms,
        "end_date": cfg.end_date.to_string(),
        "scopes": {
            "app_id": ctx.t.app_id,
            "mini_program_app_id": ctx.t.mp_app_id,
            "official_account_app_id": ctx.t.oa_app_id,
            "open_platform_id": ctx.t.open_platform_id,
            "crm_system": ctx.t.crm_system,
            "brand": ctx.t.brand,
            "marketplace": ctx.t.marketplace,
        },
        "files": files,
        "total_records": total_records,
        "defects": defects,
        "truth": {
            "records": truth_paths::RECORDS,
            "defects": truth_paths::DEFECTS,
            "persons": truth_paths::PERSONS,
            "journeys": truth_paths::JOURNEYS,
            "churn": truth_paths::CHURN,
            "optouts": truth_paths::OPTOUTS,
            "shared_devices": truth_paths::SHARED_DEVICES,
            "phone_holders": truth_paths::PHONE_HOLDERS,
            "conversion_model": truth_paths::MODEL,
        },
        "persons_churned": stats.churned,
        "persons_opted_out": stats.opted_out,
    });
    write_json(&out.root.join("manifest.json"), &v)
}
