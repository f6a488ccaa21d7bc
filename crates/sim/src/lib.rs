//! touchline-sim: a seeded generator of a brand's customers and their journeys across channels,
//! written in the shape each source really delivers (SDK JSON, ad reports and click logs, POS
//! and CRM CSV exports, marketplace and web shop order logs, tickets, surveys), with planted mess
//! at configurable rates and the ground truth beside it: the true person and instant of every
//! record, every defect's place and kind, the true conversion model and the channels' true
//! contributions, churn and opt-outs.
//!
//! Guarantees: the same configuration gives byte-identical output (every person has their own
//! random streams; nothing depends on the wall clock or on hash-map order); memory stays flat in
//! the number of persons (persons are generated and written one at a time, see [`engine`]).

pub mod ads;
pub mod config;
pub mod engine;
pub mod household;
pub mod layout;
pub mod manifest;
pub mod output;
pub mod person;
pub mod record;
pub mod rng;
pub mod send;
pub mod template;
pub mod verify;
pub mod wire;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use config::{
    ConversionModel, DefectKind, PhoneSharing, Preset, Rates, SimConfig, TemplateKind,
};
pub use record::{Event, Identifier};
pub use send::{EventStream, SendOptions, SendSummary, TruthEvent, events, send};

/// Milliseconds per day.
pub const DAY_MS: i64 = 86_400_000;

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Reading or writing a file failed.
    #[error("i/o error on {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// JSON serialisation or parsing failed.
    #[error("json error")]
    Json(#[source] serde_json::Error),
    /// An argument is out of range or malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Verification of an output directory found inconsistencies.
    #[error("verification failed: {0}")]
    Verify(String),
}

impl SimError {
    /// An i/o error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> SimError {
        SimError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Command-line arguments of `touchline sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Industry template.
    #[arg(long, value_enum, default_value = "retail")]
    pub template: TemplateKind,
    /// Size preset (small ≈ 1,000 persons, medium ≈ 20,000, large = 1,000,000).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Number of persons (overrides the preset).
    #[arg(long)]
    pub persons: Option<u64>,
    /// Seed of all randomness.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory (files per source, truth/, manifest.json).
    #[arg(long, required_unless_present = "send")]
    pub out: Option<PathBuf>,
    /// Length of the period in days.
    #[arg(long, default_value_t = 180)]
    pub days: u32,
    /// Last day of the period (YYYY-MM-DD, UTC).
    #[arg(long, default_value = "2026-06-30")]
    pub end_date: chrono::NaiveDate,
    /// Override one defect rate, e.g. `--rate event_alias=0.1` (repeatable).
    #[arg(long = "rate", value_name = "KIND=RATE")]
    pub rates: Vec<String>,
    /// Multiply every defect rate by this factor (0 for clean data).
    #[arg(long, default_value_t = 1.0)]
    pub mess: f64,
    /// Share of households (pairs of persons) whose members use one phone number.
    #[arg(long, default_value_t = PhoneSharing::default().family)]
    pub family_phones: f64,
    /// Share of households whose phone number the carrier recycles from one to the other.
    #[arg(long, default_value_t = PhoneSharing::default().recycled)]
    pub recycled_phones: f64,
    /// How journeys convert: `logistic` (independent touches, a logistic model over the
    /// channels touched) or `chain` (touches walk a first-order chain over the channels).
    #[arg(long, value_enum, default_value = "logistic")]
    pub conversion_model: ConversionModel,
    /// Stream the events to a collection service at this address instead of writing files.
    #[arg(long, value_name = "ADDR")]
    pub send: Option<String>,
    /// Bearer token for `--send`.
    #[arg(long, env = "TOUCHLINE_TOKEN")]
    pub token: Option<String>,
    /// Events per second for `--send` (0 = as fast as accepted).
    #[arg(long, default_value_t = 0)]
    pub send_rate: u64,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

impl SimArgs {
    /// Resolves the arguments into a run configuration.
    pub fn config(&self) -> Result<SimConfig, SimError> {
        let persons = self
            .persons
            .or(self.preset.map(Preset::persons))
            .unwrap_or(Preset::Small.persons());
        let mut cfg = SimConfig::new(self.template, persons, self.seed);
        cfg.days = self.days;
        cfg.end_date = self.end_date;
        cfg.conversion_model = self.conversion_model;
        if !(self.mess >= 0.0 && self.mess.is_finite()) {
            return Err(SimError::InvalidArgument(format!(
                "--mess must be a non-negative number, got {}",
                self.mess
            )));
        }
        cfg.rates.scale(self.mess);
        cfg.phones = PhoneSharing {
            family: self.family_phones,
            recycled: self.recycled_phones,
        };
        for spec in &self.rates {
            cfg.rates.apply_override(spec)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Progress of a run, reported every few thousand persons.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Persons written.
    pub persons_done: u64,
    /// Persons in the run.
    pub persons_total: u64,
    /// Records written so far.
    pub records: u64,
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Data lines written (person records and aggregate rows, headers excluded).
    pub records: u64,
    /// Cross-person counters, for reports and benchmarks.
    pub stats: engine::Stats,
}

/// Generates the run `cfg` into `dir`, calling `progress` periodically.
pub fn generate(
    cfg: SimConfig,
    dir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Summary, SimError> {
    let ctx = engine::Ctx::new(cfg)?;
    std::fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    let mut out = output::Output::create(dir, &ctx)?;
    let mut stats = engine::Stats::default();
    let mut buf = engine::PersonOut::default();
    let total = ctx.cfg.persons;
    let step = (total / 100).clamp(1, 10_000);
    for idx in 0..total {
        let person = engine::generate_person(&ctx, idx, &mut stats, &mut buf);
        out.write_person(&ctx, &person, &buf)?;
        if (idx + 1) % step == 0 || idx + 1 == total {
            progress(Progress {
                persons_done: idx + 1,
                persons_total: total,
                records: stats.records,
            });
        }
    }
    ads::write_daily_reports(&ctx, &mut stats, &mut out)?;
    out.flush()?;
    manifest::write_model(&ctx, &stats, dir)?;
    manifest::write_manifest(&ctx, &stats, &out)?;
    let records = out
        .files
        .iter()
        .zip(&ctx.layout.files)
        .map(|(s, spec)| s.lines - u64::from(spec.format == layout::FileFormat::Csv))
        .sum();
    Ok(Summary { records, stats })
}

/// Runs `touchline sim` with parsed arguments.
pub fn run(args: &SimArgs) -> anyhow::Result<()> {
    let cfg = args.config()?;
    if let Some(addr) = &args.send {
        return send_run(cfg, addr, args);
    }
    let Some(dir) = &args.out else {
        anyhow::bail!("--out is required unless --send is given");
    };
    let started = Instant::now();
    let quiet = args.quiet;
    let mut report = |p: Progress| {
        if quiet {
            return;
        }
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "sim: {}/{} persons, {} records, {:.0} records/s | 已生成 {}/{} 人, {} 条记录",
            p.persons_done,
            p.persons_total,
            p.records,
            p.records as f64 / secs,
            p.persons_done,
            p.persons_total,
            p.records
        );
    };
    let summary = generate(cfg, dir, &mut report)?;
    if !quiet {
        eprintln!(
            "sim: wrote {} records to {} in {:.1}s | 已写入 {} 条记录",
            summary.records,
            dir.display(),
            started.elapsed().as_secs_f64(),
            summary.records
        );
    }
    Ok(())
}

/// Streams the run to a collection service, on a runtime of its own.
fn send_run(cfg: SimConfig, addr: &str, args: &SimArgs) -> anyhow::Result<()> {
    let Some(token) = args.token.clone() else {
        anyhow::bail!(
            "--send needs --token or TOUCHLINE_TOKEN (scopes events:write sources:write; \
             `touchline token` mints one) | 发送需要令牌"
        );
    };
    let mut opts = SendOptions::new(addr, token);
    opts.rate = args.send_rate;
    if args.quiet {
        opts.progress_every = None;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let summary = runtime.block_on(send::send(cfg, &opts))?;
    eprintln!(
        "sim: sent {} events in {:.1}s: {} accepted, {} duplicates, {} rejected {:?}; {} sources registered\n\
         已发送 {} 条事件：接收 {}，重复 {}，拒收 {}",
        summary.sent,
        summary.elapsed.as_secs_f64(),
        summary.accepted,
        summary.duplicates,
        summary.rejected_total(),
        summary.rejected,
        summary.sources_registered,
        summary.sent,
        summary.accepted,
        summary.duplicates,
        summary.rejected_total(),
    );
    Ok(())
}
