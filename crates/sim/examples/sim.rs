//! Stand-alone runner with the same arguments as `touchline sim`:
//! `cargo run -p touchline-sim --example sim -- --preset small --out DIR`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: touchline_sim::SimArgs,
}

fn main() -> anyhow::Result<()> {
    touchline_sim::run(&Cli::parse().args)
}
