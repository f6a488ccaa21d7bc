//! `touchline`: see `touchline --help`.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = touchline::cli::Cli::parse();
    match touchline::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("touchline: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
