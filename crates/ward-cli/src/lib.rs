//! ward-cli: the conventions every ward binary follows on the command line, in one place.
//!
//! A malformed command line is reported as a single `<bin>: error: ...` line with exit status
//! 2 (clap's usage block folded away), so every bad invocation reads like every other ward
//! error; `--help` and `--version` behave as usual. Logs go to stderr as text or JSON, with
//! the filter from `WARD_LOG` (default `info`) and colours only on a terminal.

#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, ValueEnum};

/// Log output format (`--log-format`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Parses the command line, or reports a malformed one in one line. `Err` carries the exit
/// code the binary should return.
pub fn parse<C: Parser>(bin: &str) -> Result<C, ExitCode> {
    match C::try_parse() {
        Ok(cli) => Ok(cli),
        Err(err) => match err.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => err.exit(),
            _ => {
                let _ = writeln!(
                    std::io::stderr(),
                    "{bin}: {} (see --help)",
                    one_line(&err.render().to_string())
                );
                Err(ExitCode::from(2))
            }
        },
    }
}

/// clap's message without its usage block, folded onto one line.
pub fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Installs the log subscriber (stderr; `WARD_LOG` filter, default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn folds_clap_errors_to_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  --csr <FILE>\n\nUsage: ward-ca issue --csr <FILE>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: the following required arguments were not provided: --csr <FILE>"
        );
    }
}
