//! Fits the BG/NBD model (or, with `--model mbgnbd`, the MBG/NBD model) to a CSV of customer
//! summaries and writes P(alive) and the expected purchases of every row, for comparison with
//! other tools.
//!
//! Usage: `bgnbd_fit <input.csv> <output.csv> [--model bgnbd|mbgnbd] [--horizon T]
//! [--threads N] [--synthetic N]`
//!
//! The input has a header naming the columns `frequency` (x), `recency` (t_x) and `T`, in any
//! order, and may have others. The output has one line per input row:
//! `p_alive,expected_purchases` (expected purchases in the next `--horizon` time units,
//! default 10). The fitted parameters, the log-likelihood and the fit time go to standard
//! output as `key=value` lines. With `--synthetic N` the input is ignored and N customers are
//! simulated from fixed parameters instead (for timing large fits); no rows are written.

use std::error::Error;
use std::fmt::Write as _;
use std::time::Instant;

use touchline_analytics::churn::bgnbd::{BetaGeoModel, BgNbdParams, CustomerSummary, FitOptions};

struct Args {
    model: BetaGeoModel,
    input: String,
    output: String,
    horizon: f64,
    threads: usize,
    synthetic: Option<usize>,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut positional = Vec::new();
    let (mut horizon, mut threads, mut synthetic) = (10.0, 1, None);
    let mut model = BetaGeoModel::BgNbd;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => {
                model = match args.next().as_deref() {
                    Some("bgnbd") => BetaGeoModel::BgNbd,
                    Some("mbgnbd") => BetaGeoModel::MbgNbd,
                    _ => return Err("--model is bgnbd or mbgnbd".into()),
                }
            }
            "--horizon" => horizon = args.next().ok_or("--horizon needs a value")?.parse()?,
            "--threads" => threads = args.next().ok_or("--threads needs a value")?.parse()?,
            "--synthetic" => {
                synthetic = Some(args.next().ok_or("--synthetic needs a value")?.parse()?)
            }
            _ => positional.push(arg),
        }
    }
    let [input, output] = <[String; 2]>::try_from(positional).map_err(|_| {
        "usage: bgnbd_fit <input.csv> <output.csv> [--model bgnbd|mbgnbd] [--horizon T] \
             [--threads N] [--synthetic N]"
    })?;
    Ok(Args {
        model,
        input,
        output,
        horizon,
        threads,
        synthetic,
    })
}

fn read_summaries(path: &str) -> Result<Vec<CustomerSummary>, Box<dyn Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty input")?
        .split(',')
        .map(str::trim)
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("no column {name}"))
    };
    let (fx, fr, ft) = (column("frequency")?, column("recency")?, column("T")?);
    let mut customers = Vec::new();
    for line in lines.filter(|line| !line.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let cell = |i: usize| cells.get(i).copied().ok_or("short row");
        let x: f64 = cell(fx)?.parse()?;
        customers.push(CustomerSummary::new(
            x.round() as u64,
            cell(fr)?.parse()?,
            cell(ft)?.parse()?,
        )?);
    }
    Ok(customers)
}

/// A small deterministic generator (SplitMix64), so the example needs no extra crates.
struct SplitMix(u64);

impl SplitMix {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Customers with continuous times drawn to look like a BG/NBD population (not an exact
/// simulation: it only has to exercise the fit at scale).
fn synthetic(count: usize) -> Result<Vec<CustomerSummary>, Box<dyn Error>> {
    let mut rng = SplitMix(42);
    let mut customers = Vec::with_capacity(count);
    for _ in 0..count {
        let age = 20.0 + 19.0 * rng.uniform();
        let rate = -0.3 * (1.0 - rng.uniform()).ln() * (0.2 + rng.uniform());
        let dropout = 0.1 + 0.4 * rng.uniform();
        let (mut time, mut x, mut last) = (0.0, 0u64, 0.0);
        loop {
            time += -(1.0 - rng.uniform()).ln() / rate.max(1e-9);
            if time > age {
                break;
            }
            x += 1;
            last = time;
            if rng.uniform() < dropout {
                break;
            }
        }
        customers.push(CustomerSummary::new(x, last, age)?);
    }
    Ok(customers)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let customers = match args.synthetic {
        Some(count) => synthetic(count)?,
        None => read_summaries(&args.input)?,
    };
    let options = FitOptions {
        threads: args.threads,
        ..FitOptions::default()
    };
    let started = Instant::now();
    let fit = args.model.fit(&customers, &options)?;
    let seconds = started.elapsed().as_secs_f64();
    let BgNbdParams { r, alpha, a, b } = fit.params;
    println!(
        "customers={}\nr={r:.12}\nalpha={alpha:.12}\na={a:.12}\nb={b:.12}",
        fit.customer_count
    );
    println!(
        "log_likelihood={:.10}\niterations={}\nconverged={}\nfit_seconds={seconds:.6}",
        fit.log_likelihood, fit.iterations, fit.converged
    );
    if args.synthetic.is_some() {
        return Ok(());
    }
    let mut out = String::from("p_alive,expected_purchases\n");
    for customer in &customers {
        let expected = args
            .model
            .expected_purchases(&fit.params, customer, args.horizon)?;
        writeln!(
            out,
            "{:.17e},{:.17e}",
            args.model.probability_alive(&fit.params, customer),
            expected
        )?;
    }
    std::fs::write(&args.output, out)?;
    Ok(())
}
