//! The `ward-ca` binary: parse arguments, run, and turn any error into one line on stderr
//! (exit 1 for a refused operation, 2 for a malformed command line).

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use ward_ca::cli::{run, Cli};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => match err.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => err.exit(),
            _ => {
                eprintln!(
                    "ward-ca: {} (see --help)",
                    one_line(&err.render().to_string())
                );
                return ExitCode::from(2);
            }
        },
    };
    // Unlocked handles: `serve` logs from worker threads while this call runs.
    match run(cli, &mut std::io::stdout(), &mut std::io::stderr()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ward-ca: error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// clap's message without its usage block, folded onto one line.
fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect::<Vec<_>>()
        .join(" ")
}
