//! ward-cli: the conventions every ward binary follows on the command line, in one place.
//!
//! A malformed command line is reported as a single `<bin>: error: ...` line with exit status
//! 2 (clap's usage block folded away), so every bad invocation reads like every other ward
//! error; `--help` and `--version` behave as usual (the version names the commit). Logs go to
//! stderr ([`LogArgs`]); listings print as text or stable JSON ([`OutputArg`]); shell
//! completions come from the same command definition ([`completions`]); both daemons export
//! [`VERSION`] and [`COMMIT`] as `ward_build_info`.

#![forbid(unsafe_code)]

mod log;
mod output;

pub use clap_complete::Shell;
pub use log::{init_logging, log_filter, LogArgs, LogFormat};
pub use output::{completions, missing_examples, print_json, Output, OutputArg};

use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

/// The release, from the workspace manifest.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit the binaries were built from (`unknown` outside a git checkout unless
/// `WARD_COMMIT` was set at build time).
pub const COMMIT: &str = env!("WARD_COMMIT");
/// `--version` text: release and commit.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("WARD_COMMIT"),
    ")"
);

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
