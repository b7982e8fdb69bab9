//! ward-cli: the conventions every ward binary follows on the command line, in one place.
//!
//! A malformed command line is reported as a single `<bin>: error: ...` line with exit status
//! 2 (clap's usage block folded away), so every bad invocation reads like every other ward
//! error; `--help` and `--version` behave as usual. Logs go to stderr as text or JSON, with
//! the filter from `WARD_LOG`, else the standard `RUST_LOG` (default `info`), and colours
//! only on a terminal.

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

/// The log filter directives: `WARD_LOG` if set, else `RUST_LOG` (the syntax every Rust tool
/// reads, e.g. `ward::access=info,warn`), else `info`; a value that does not parse falls back
/// to `info` and says so, rather than logging nothing.
pub fn log_filter(
    ward_log: Option<&str>,
    rust_log: Option<&str>,
) -> (tracing_subscriber::EnvFilter, Option<String>) {
    let chosen = [("WARD_LOG", ward_log), ("RUST_LOG", rust_log)]
        .into_iter()
        .find_map(|(name, v)| v.filter(|v| !v.trim().is_empty()).map(|v| (name, v)));
    match chosen {
        None => (tracing_subscriber::EnvFilter::new("info"), None),
        Some((name, v)) => match tracing_subscriber::EnvFilter::try_new(v) {
            Ok(f) => (f, None),
            Err(e) => (
                tracing_subscriber::EnvFilter::new("info"),
                Some(format!(
                    "{name}={v:?} is not a log filter ({e}); logging at info"
                )),
            ),
        },
    }
}

/// Installs the log subscriber (stderr; [`log_filter`] from the environment).
pub fn init_logging(format: LogFormat) {
    let ward = std::env::var("WARD_LOG").ok();
    let rust = std::env::var("RUST_LOG").ok();
    let (filter, problem) = log_filter(ward.as_deref(), rust.as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Some(problem) = problem {
        tracing::warn!("{problem}");
    }
}

#[cfg(test)]
mod tests {
    use super::{log_filter, one_line};

    #[test]
    fn ward_log_then_rust_log_then_info() {
        let shown = |w: Option<&str>, r: Option<&str>| {
            let (f, problem) = log_filter(w, r);
            (f.to_string(), problem.is_some())
        };
        assert_eq!(shown(Some("debug"), Some("warn")), ("debug".into(), false));
        assert_eq!(
            shown(None, Some("ward::access=info,warn")).0,
            "ward::access=info,warn"
        );
        assert_eq!(shown(Some(" "), Some("error")), ("error".into(), false));
        assert_eq!(shown(None, None), ("info".into(), false));
        assert_eq!(shown(Some("=][="), None), ("info".into(), true));
    }

    #[test]
    fn folds_clap_errors_to_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  --csr <FILE>\n\nUsage: ward-ca issue --csr <FILE>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: the following required arguments were not provided: --csr <FILE>"
        );
    }
}
