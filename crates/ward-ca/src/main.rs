//! The `ward-ca` binary: parse arguments, run, and turn any error into one line and exit 1.

use std::process::ExitCode;

use clap::Parser;
use ward_ca::cli::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(
        cli,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ward-ca: error: {err}");
            ExitCode::FAILURE
        }
    }
}
