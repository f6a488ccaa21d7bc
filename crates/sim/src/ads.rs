//! Ad platform daily reports: per campaign and account-local day, the clicks the persons made
//! plus impressions and spend drawn from the campaign's rates. Rows re-sent by the platform are
//! appended again at the end, as a later delivery of the same report would be.

use rand::Rng;

use crate::SimError;
use crate::config::DefectKind;
use crate::engine::{Ctx, DOMAIN_ADS, Stats};
use crate::output::{Output, local_day_index, local_midnight_ms};
use crate::record::Field;
use crate::rng;

/// Writes every platform's daily report; updates the ad-report defect counters in `stats`.
pub fn write_daily_reports(ctx: &Ctx, stats: &mut Stats, out: &mut Output) -> Result<(), SimError> {
    let t = ctx.t;
    let rate = ctx.cfg.rates.get(DefectKind::AdReportResent);
    for (pl, platform) in t.platforms.iter().enumerate() {
        let file = ctx.layout.ad0 + 2 * pl;
        let tz = ctx.layout.files[file].tz;
        let first = local_day_index(ctx.start_ms, tz, ctx.start_ms);
        let last = local_day_index(ctx.end_ms - 1, tz, ctx.start_ms);
        let mut resend = Vec::new();
        let mut mess = rng::stream(ctx.cfg.seed, DOMAIN_ADS + 100, pl as u64);
        for day in first..=last {
            let date = i32::try_from(day)
                .ok()
                .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
                .map(|d| d.to_string())
                .unwrap_or_default();
            let midnight = local_midnight_ms(day, tz);
            for (ci, camp) in t
                .campaigns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.platform == pl)
            {
                let clicks = stats.ad_clicks.get(&(ci, day)).copied().unwrap_or(0);
                let mut r = rng::stream(
                    ctx.cfg.seed,
                    DOMAIN_ADS,
                    (ci as u64) << 32 | (day as u64 & 0xFFFF_FFFF),
                );
                let impressions =
                    (clicks as f64 * camp.impressions_per_click * r.random_range(0.8..1.2)).round()
                        as i64
                        + r.random_range(50..500);
                let spend =
                    (clicks as f64 * camp.cpc as f64 * r.random_range(0.85..1.15)).round() as i64;
                let cells = vec![
                    Field::Str(date.clone()),
                    Field::Str(camp.id.into()),
                    Field::Str(camp.name.into()),
                    Field::Int(impressions),
                    Field::Int(clicks as i64),
                    Field::Money(spend),
                    Field::Str(platform.currency.into()),
                ];
                let key = format!("{date}|{}", camp.id);
                out.write_aggregate(ctx, file, &key, &cells, midnight, None)?;
                stats.eligible[DefectKind::AdReportResent as usize] += 1;
                if rate > 0.0 && mess.random_bool(rate) {
                    stats.planted[DefectKind::AdReportResent as usize] += 1;
                    resend.push((key, cells, midnight));
                }
            }
        }
        for (key, cells, midnight) in resend {
            let detail = format!("row {key} delivered again");
            out.write_aggregate(
                ctx,
                file,
                &key,
                &cells,
                midnight,
                Some((DefectKind::AdReportResent.name(), detail)),
            )?;
            stats.defect_records[DefectKind::AdReportResent as usize] += 1;
        }
    }
    Ok(())
}
