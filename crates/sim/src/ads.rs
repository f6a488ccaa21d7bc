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
/// One row of an ad platform's daily report, as the platform delivers it.
#[derive(Debug, Clone)]
pub struct ReportRow {
    /// Index of the report's file in the layout.
    pub file: usize,
    /// `date|campaign`, the row's natural key.
    pub key: String,
    /// Cells in the file's column order.
    pub cells: Vec<Field>,
    /// The account-local midnight the row reports on, UTC epoch milliseconds.
    pub day_start_ms: i64,
    /// Whether this is a later delivery of a row already sent.
    pub resent: bool,
}

/// Writes every daily report row to its file, with its truth.
pub fn write_daily_reports(ctx: &Ctx, stats: &mut Stats, out: &mut Output) -> Result<(), SimError> {
    for row in daily_report_rows(ctx, stats) {
        let defect = row.resent.then(|| {
            (
                DefectKind::AdReportResent.name(),
                format!("row {} delivered again", row.key),
            )
        });
        out.write_aggregate(
            ctx,
            row.file,
            &row.key,
            &row.cells,
            row.day_start_ms,
            defect,
        )?;
    }
    Ok(())
}

/// The daily report rows of every platform, first deliveries then re-sent rows per platform.
/// Needs the click counts of all persons, so it runs after the last person. The rows number
/// campaigns × days, independent of the number of persons.
pub fn daily_report_rows(ctx: &Ctx, stats: &mut Stats) -> Vec<ReportRow> {
    let t = ctx.t;
    let rate = ctx.cfg.rates.get(DefectKind::AdReportResent);
    let mut rows = Vec::new();
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
                let row = ReportRow {
                    file,
                    key: format!("{date}|{}", camp.id),
                    cells: vec![
                        Field::Str(date.clone()),
                        Field::Str(camp.id.into()),
                        Field::Str(camp.name.into()),
                        Field::Int(impressions),
                        Field::Int(clicks as i64),
                        Field::Money(spend),
                        Field::Str(platform.currency.into()),
                    ],
                    day_start_ms: midnight,
                    resent: false,
                };
                stats.eligible[DefectKind::AdReportResent as usize] += 1;
                if rate > 0.0 && mess.random_bool(rate) {
                    stats.planted[DefectKind::AdReportResent as usize] += 1;
                    resend.push(ReportRow {
                        resent: true,
                        ..row.clone()
                    });
                }
                rows.push(row);
            }
        }
        stats.defect_records[DefectKind::AdReportResent as usize] += resend.len() as u64;
        rows.extend(resend);
    }
    rows
}
