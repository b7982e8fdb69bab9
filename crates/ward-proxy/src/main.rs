//! The `ward-proxy` binary: parse arguments, run, and turn any error into one line on stderr
//! (exit 1 for a refused operation or a failed check, 2 for a malformed command line).

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use ward_proxy::cli::{run, Cli, Outcome};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => match err.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => err.exit(),
            _ => {
                eprintln!(
                    "ward-proxy: {} (see --help)",
                    one_line(&err.render().to_string())
                );
                return ExitCode::from(2);
            }
        },
    };
    // An unlocked handle: `run` prints from other threads while this call runs.
    match run(cli, &mut std::io::stdout()) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Refused) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("ward-proxy: error: {err}");
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
